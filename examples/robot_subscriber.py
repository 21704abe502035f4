"""Receive hearflow's sound-source heatmaps on a robot: plain pyzmq + numpy, copy freely.

    hearflow run ... --sink zmq                       # publisher, tcp://127.0.0.1:5555
    python examples/robot_subscriber.py               # this subscriber
    python examples/robot_subscriber.py tcp://192.168.1.10:5555 --count 10 --timeout 5

Each message is [topic, header JSON, payload]; the payload is the m×n map as
little-endian float32 (docs/wire_format.md). Only the newest message is used: a slow
control loop skips stale maps instead of falling behind.
"""

import argparse
import json
import sys

import numpy as np
import zmq


def newest(sock):
    """Wait for a message, then drain the socket and return only the newest one."""
    parts = sock.recv_multipart()
    while True:
        try:
            parts = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return parts


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5555")
    p.add_argument("--count", type=int, default=0, help="stop after N messages (0 = run until Ctrl-C)")
    p.add_argument("--timeout", type=float, default=0, help="fail if no message comes for this many seconds")
    args = p.parse_args()

    sock = zmq.Context().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 2)  # keep little queued: we only want the newest
    sock.setsockopt(zmq.LINGER, 0)
    if args.timeout:
        sock.setsockopt(zmq.RCVTIMEO, int(args.timeout * 1000))
    sock.setsockopt(zmq.SUBSCRIBE, b"hearflow.heatmap")
    sock.connect(args.endpoint)

    n = 0
    while not args.count or n < args.count:
        try:
            topic, header, payload = newest(sock)
        except zmq.Again:
            sys.exit(f"no message within {args.timeout} s from {args.endpoint}")
        except KeyboardInterrupt:
            break
        h = json.loads(header)
        heat = np.frombuffer(payload, "<f4").reshape(h["height"], h["width"])
        # where to look: the peak in pixels of the camera frame
        w_px, h_px = h["frame_size"]
        x, y = h["peak"]["x"] * w_px, h["peak"]["y"] * h_px
        t = h["stamp"]["sec"] + h["stamp"]["nanosec"] * 1e-9  # wall-clock capture time
        print(f"seq {h['seq']} t {t:.3f} peak ({x:.0f}, {y:.0f}) px conf {h['confidence']:.2f} "
              f"latency {h['latency_ms']:.1f} ms map {heat.shape[0]}x{heat.shape[1]} max {heat.max():+.3f}",
              flush=True)
        n += 1


if __name__ == "__main__":
    main()
