"""Bridge hearflow's ZeroMQ stream into ROS 2 topics: a node to run in your ROS 2 environment.

    hearflow run ... --sink zmq --camera-fov 90          # publisher, tcp://127.0.0.1:5555
    source /opt/ros/<distro>/setup.bash                  # a ROS 2 environment with rclpy
    pip install pyzmq numpy                              # (if the environment lacks them)
    python examples/ros2_bridge.py --endpoint tcp://127.0.0.1:5555

Published topics (the same names and types as ``--sink mcap`` records):

    /hearflow/heatmap         sensor_msgs/msg/Image            the map, 32FC1
    /hearflow/overlay         sensor_msgs/msg/CompressedImage  blended JPEG (hearflow run --zmq-overlay)
    /hearflow/bearing         geometry_msgs/msg/Vector3Stamped unit bearing of the peak, camera optical
                                                               frame (x right, y down, z forward; needs
                                                               --camera-fov or --camera-info)
    /hearflow/heatmap_header  std_msgs/msg/String              each map's JSON header: peaks with track
                                                               ids, azimuth/elevation, confidence, ...
    /hearflow/status          std_msgs/msg/String              the JSON heartbeat: engine state, rates,
                                                               drops, latency, last error

Header stamps are hearflow's (capture time, wall clock); frame_id is ``hearflow run
--frame-id``. Only pyzmq, numpy and rclpy are needed; hearflow need not be installed here.
The message-building functions below return plain dicts of the ROS fields, so they can
be tested (and reused) without ROS.
"""

from __future__ import annotations

import argparse
import json

TOPICS = {
    "hearflow.heatmap": [("/hearflow/heatmap", "sensor_msgs/msg/Image"),
                         ("/hearflow/bearing", "geometry_msgs/msg/Vector3Stamped"),
                         ("/hearflow/heatmap_header", "std_msgs/msg/String")],
    "hearflow.overlay": [("/hearflow/overlay", "sensor_msgs/msg/CompressedImage")],
    "hearflow.status": [("/hearflow/status", "std_msgs/msg/String")],
}
"""ZeroMQ topic → the ROS 2 (topic, type) pairs its messages become."""


# --------------------------------------------------------------------------- messages (plain functions, no ROS)
def ros_header(h: dict) -> dict:
    """std_msgs/msg/Header fields from a hearflow wire header."""
    return {"stamp": {"sec": int(h["stamp"]["sec"]), "nanosec": int(h["stamp"]["nanosec"])},
            "frame_id": str(h.get("frame_id", "camera"))}


def image_fields(h: dict, payload: bytes) -> dict:
    """sensor_msgs/msg/Image from a hearflow.heatmap message (the header mirrors it field by field)."""
    return {"header": ros_header(h), "height": int(h["height"]), "width": int(h["width"]),
            "encoding": h["encoding"], "is_bigendian": int(h["is_bigendian"]), "step": int(h["step"]),
            "data": bytes(payload)}


def compressed_fields(h: dict, jpeg: bytes) -> dict:
    """sensor_msgs/msg/CompressedImage from a hearflow.overlay message."""
    return {"header": ros_header(h), "format": "jpeg", "data": bytes(jpeg)}


def bearing_fields(h: dict) -> dict | None:
    """geometry_msgs/msg/Vector3Stamped of the peak's bearing; None when the run has no camera model."""
    b = h.get("bearing")
    if b is None:
        return None
    return {"header": ros_header(h), "vector": {"x": float(b["x"]), "y": float(b["y"]), "z": float(b["z"])}}


def string_fields(h: dict) -> dict:
    """std_msgs/msg/String holding the header as JSON (status, peaks)."""
    return {"data": json.dumps(h, allow_nan=False)}


def messages(topic: str, header: dict, payload: bytes) -> list[tuple[str, str, dict]]:
    """(ROS topic, ROS type, fields) for one ZeroMQ message [topic, header, payload]."""
    if topic == "hearflow.heatmap":
        out = [("/hearflow/heatmap", "sensor_msgs/msg/Image", image_fields(header, payload))]
        bearing = bearing_fields(header)
        if bearing is not None:
            out.append(("/hearflow/bearing", "geometry_msgs/msg/Vector3Stamped", bearing))
        return out + [("/hearflow/heatmap_header", "std_msgs/msg/String", string_fields(header))]
    if topic == "hearflow.overlay":
        return [("/hearflow/overlay", "sensor_msgs/msg/CompressedImage", compressed_fields(header, payload))]
    if topic == "hearflow.status":
        return [("/hearflow/status", "std_msgs/msg/String", string_fields(header))]
    return []


def fill(msg, fields: dict):
    """Set a ROS message's fields (nested messages recursively) from a dict; returns msg."""
    for name, value in fields.items():
        if isinstance(value, dict):
            fill(getattr(msg, name), value)
        else:
            setattr(msg, name, value)
    return msg


# --------------------------------------------------------------------------- the node (needs rclpy)
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="hearflow's ZeroMQ publisher")
    p.add_argument("--no-overlay", action="store_true", help="do not subscribe to the JPEG overlays")
    args = p.parse_args(argv)

    import rclpy
    import zmq
    from geometry_msgs.msg import Vector3Stamped
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import String

    types = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage,
             "geometry_msgs/msg/Vector3Stamped": Vector3Stamped, "std_msgs/msg/String": String}
    rclpy.init()
    node = rclpy.create_node("hearflow_bridge")
    pubs = {topic: node.create_publisher(types[typ], topic, qos_profile_sensor_data)
            for pairs in TOPICS.values() for topic, typ in pairs}
    sock = zmq.Context().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 4)  # little queued: stale maps are worth nothing
    for zt in TOPICS:
        if not (args.no_overlay and zt == "hearflow.overlay"):
            sock.setsockopt(zmq.SUBSCRIBE, zt.encode())
    sock.connect(args.endpoint)
    node.get_logger().info(f"bridging {args.endpoint} → {', '.join(pubs)}")
    try:
        while rclpy.ok():
            if not sock.poll(100):  # short polls keep Ctrl-C and shutdown responsive
                continue
            topic, header, payload = sock.recv_multipart()
            try:
                h = json.loads(header)
            except ValueError:
                continue
            for ros_topic, typ, fields in messages(topic.decode(errors="replace"), h, payload):
                pubs[ros_topic].publish(fill(types[typ](), fields))  # uint8[] fields take bytes
    except KeyboardInterrupt:
        pass
    finally:
        sock.close(linger=0)
        node.destroy_node()
        rclpy.shutdown()


if __name__ == "__main__":
    main()
