"""``--sink mcap:FILE.mcap``: the stream recorded as ROS 2 messages in an MCAP file.

It opens in Foxglove and in ``ros2 bag`` (with the MCAP storage plugin). Channels:

| topic | schema (encoding) | what |
| --- | --- | --- |
| ``/hearflow/heatmap`` | ``sensor_msgs/msg/Image`` (cdr) | the map, ``32FC1``, as on the wire |
| ``/hearflow/overlay`` | ``sensor_msgs/msg/CompressedImage`` (cdr) | the blended JPEG (with the overlay flag) |
| ``/hearflow/bearing`` | ``geometry_msgs/msg/Vector3Stamped`` (cdr) | unit bearing of the peak, camera optical frame (with a camera model) |
| ``/hearflow/heatmap_header`` | ``hearflow.heatmap/1`` (json) | each heatmap's wire header: peaks with track ids, confidence, azimuth/elevation, camera |
| ``/hearflow/status`` | ``hearflow.status/1`` (json) | the engine's heartbeat |

Header stamps are the wire header's (capture time, wall clock); each message's log time is
that stamp (status: its own stamp). Crash safety: messages go into a chunk that is
written and flushed to the file at least every ``flush_interval`` seconds, so a killed
run leaves every chunk before the last second readable (no summary section: read it
with a streaming reader, or ``mcap recover``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path


from hearflow.engine import draw
from hearflow.engine.packets import Result
from hearflow.engine.sinks.base import Sink, SinkOptions, StreamInfo, check_writable
from hearflow.engine.sinks.registry import register_sink
from hearflow.engine.wire import HEATMAP_SCHEMA, STATUS_SCHEMA, encode_message, encode_status
from hearflow.errors import HearflowError

TOPICS = {"heatmap": "/hearflow/heatmap", "overlay": "/hearflow/overlay", "bearing": "/hearflow/bearing",
          "header": "/hearflow/heatmap_header", "status": "/hearflow/status"}

_SEP = "=" * 80
_HEADER_DEFS = f"""{_SEP}
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
{_SEP}
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
"""
# ROS 2 message definitions in the concatenated form MCAP's ros2msg encoding uses
MSGDEFS = {
    "sensor_msgs/msg/Image": "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
                             "uint8 is_bigendian\nuint32 step\nuint8[] data\n" + _HEADER_DEFS,
    "sensor_msgs/msg/CompressedImage": "std_msgs/Header header\nstring format\nuint8[] data\n" + _HEADER_DEFS,
    "geometry_msgs/msg/Vector3Stamped": "std_msgs/Header header\ngeometry_msgs/Vector3 vector\n" + _HEADER_DEFS
                                        + f"{_SEP}\nMSG: geometry_msgs/Vector3\nfloat64 x\nfloat64 y\nfloat64 z\n",
}


def ros_header(h: dict) -> dict:
    """std_msgs/Header fields from a wire header."""
    return {"stamp": {"sec": int(h["stamp"]["sec"]), "nanosec": int(h["stamp"]["nanosec"])}, "frame_id": h["frame_id"]}


def image_msg(h: dict, payload: bytes) -> dict:
    """sensor_msgs/msg/Image fields from a heatmap message (wire header + payload)."""
    return {"header": ros_header(h), "height": h["height"], "width": h["width"], "encoding": h["encoding"],
            "is_bigendian": h["is_bigendian"], "step": h["step"], "data": payload}


def compressed_msg(h: dict, jpeg: bytes) -> dict:
    """sensor_msgs/msg/CompressedImage fields from an overlay message."""
    return {"header": ros_header(h), "format": "jpeg", "data": jpeg}


def bearing_msg(h: dict) -> dict | None:
    """geometry_msgs/msg/Vector3Stamped of the peak's bearing; None without a camera model."""
    b = h.get("bearing")
    if b is None:
        return None
    return {"header": ros_header(h), "vector": {"x": b["x"], "y": b["y"], "z": b["z"]}}


def _json_schema(title: str, required: list[str]) -> bytes:
    return json.dumps({"title": title, "type": "object", "required": required}).encode()


@register_sink("mcap", "mcap:FILE.mcap")
class McapSink(Sink):
    """Record the stream as ROS 2 messages in an MCAP file (see the module docstring).

    path: output file (parent folders are created; an existing file is replaced).
    frame_id: frame_id of every message header.
    overlay: also record the blended frame as sensor_msgs/CompressedImage.
    flush_interval: seconds of messages at most held in memory before a chunk is written
        and flushed (what a killed run can lose).
    """

    def __init__(self, path, frame_id: str = "camera", overlay: bool = False, jpeg_quality: int = 80,
                 alpha: float = 0.45, flush_interval: float = 1.0):
        self.path = Path(path)
        self.name = f"mcap:{path}"
        self.frame_id = frame_id
        self.overlay = overlay
        self.wants_frames = overlay
        self.jpeg_quality = jpeg_quality
        self.alpha = alpha
        self.flush_interval = flush_interval
        self.counts: dict[str, int] = {}
        """Messages written per topic."""
        self._f = None
        self._ros = None
        self._schemas: dict = {}
        self._json_channels: dict[str, int] = {}
        self._model = ""
        self._next_flush = 0.0

    @classmethod
    def from_spec(cls, arg: str, options: SinkOptions) -> McapSink:
        if not arg:
            raise ValueError("give the output file, e.g. mcap:out/run.mcap")
        return cls(arg, frame_id=options.frame_id, overlay=options.zmq_overlay, jpeg_quality=options.jpeg_quality,
                   alpha=options.alpha)

    def spec_key(self) -> str:
        return str(self.path.resolve())

    def check(self) -> None:
        check_writable(self.path, self.name)

    def open(self, info: StreamInfo) -> None:
        from mcap.writer import CompressionType
        from mcap_ros2.writer import Writer

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "wb")
        except OSError as exc:
            raise HearflowError(f"{self.name}: cannot write {self.path}: {exc.strerror or exc}") from None
        # chunks end by time (flush), not size: a large limit so a chunk never splits early
        self._ros = Writer(self._f, chunk_size=64 * 1024 * 1024, compression=CompressionType.ZSTD)
        self._schemas = {name: self._ros.register_msgdef(name, text) for name, text in MSGDEFS.items()}
        raw = self._ros._writer  # mcap_ros2 writes CDR only; the JSON channels go on its underlying mcap writer
        for key, schema, required in (("header", HEATMAP_SCHEMA, ["schema", "stamp", "seq", "peak", "peaks"]),
                                      ("status", STATUS_SCHEMA, ["schema", "stamp", "state"])):
            sid = raw.register_schema(schema, "jsonschema", _json_schema(schema, required))
            self._json_channels[key] = raw.register_channel(TOPICS[key], "json", sid)
        self._model = info.model or ""
        self._next_flush = time.monotonic() + self.flush_interval

    def _write_ros(self, key: str, schema: str, msg: dict, log_time: int, seq: int) -> None:
        self._ros.write_message(TOPICS[key], self._schemas[schema], msg, log_time=log_time,
                                publish_time=time.time_ns(), sequence=seq)
        self.counts[TOPICS[key]] = self.counts.get(TOPICS[key], 0) + 1

    def _write_json(self, key: str, header: dict, log_time: int) -> None:
        self._ros._writer.add_message(self._json_channels[key], log_time=log_time, publish_time=time.time_ns(),
                                      data=json.dumps(header, allow_nan=False).encode(), sequence=int(header["seq"]))
        self.counts[TOPICS[key]] = self.counts.get(TOPICS[key], 0) + 1

    def write(self, result: Result) -> None:
        wall_offset = time.time() - time.monotonic()
        _, header_b, payload = encode_message(result, frame_id=self.frame_id, wall_offset=wall_offset,
                                              model=self._model)
        h = json.loads(header_b)
        t = h["stamp"]["sec"] * 1_000_000_000 + h["stamp"]["nanosec"]
        seq = int(h["seq"])
        self._write_ros("heatmap", "sensor_msgs/msg/Image", image_msg(h, payload), t, seq)
        bearing = bearing_msg(h)
        if bearing is not None:
            self._write_ros("bearing", "geometry_msgs/msg/Vector3Stamped", bearing, t, seq)
        self._write_json("header", h, t)
        if self.overlay and result.rgb is not None:
            jpeg = draw.overlay_jpeg(result.rgb, result.map, result.peak, self.alpha, result.confidence,
                                     self.jpeg_quality)
            self._write_ros("overlay", "sensor_msgs/msg/CompressedImage", compressed_msg(h, jpeg), t, seq)
        self._maybe_flush()

    def write_status(self, status: dict) -> None:
        if self._ros is None:
            return
        h = json.loads(encode_status(status, frame_id=self.frame_id)[1])
        self._write_json("status", h, h["stamp"]["sec"] * 1_000_000_000 + h["stamp"]["nanosec"])
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if time.monotonic() >= self._next_flush:
            self._ros._writer.flush()  # ends the chunk and hands it to the OS: a SIGKILL no longer loses it
            self._next_flush = time.monotonic() + self.flush_interval

    def close(self) -> None:
        ros, f = self._ros, self._f
        self._ros = self._f = None
        try:
            if ros is not None:
                ros.finish()  # the summary and footer: indexed, seekable
        finally:
            if f is not None:
                f.close()


__all__ = ["McapSink", "MSGDEFS", "TOPICS", "bearing_msg", "compressed_msg", "image_msg"]
