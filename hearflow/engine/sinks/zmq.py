"""``--sink zmq[:ENDPOINT]``: each result on a ZeroMQ PUB socket (the robot-facing stream).

The messages are :mod:`hearflow.engine.wire`'s. The socket never waits for subscribers:
a tiny send high-water mark and non-blocking sends mean a slow or stalled subscriber
just misses messages (it sees a gap in ``seq``).
"""

from __future__ import annotations

import errno
import time

import zmq

from hearflow.engine import draw
from hearflow.engine.sinks.base import Sink, SinkOptions, StreamInfo
from hearflow.engine.sinks.registry import register_sink
from hearflow.engine.wire import (
    DEFAULT_ENDPOINT,
    check_endpoint,
    encode_message,
    encode_status,
    is_loopback,
    normalize_endpoint,
)
from hearflow.errors import HearflowError


@register_sink("zmq", "zmq[:ENDPOINT]")
class ZmqSink(Sink):
    """Publish each result on a ZeroMQ PUB socket (the robot-facing stream), and the
    engine's status messages on topic hearflow.status.

    endpoint: where to bind; default tcp://127.0.0.1:5555 (this machine only). Binding
        to another interface (tcp://*:5555, tcp://192.168.1.10:5555) must be asked for
        explicitly and is logged: the stream has no authentication. A port of ``*``
        (tcp://127.0.0.1:*) picks a free one; ``endpoint`` then holds the real one.
    frame_id: ROS-style frame_id in every header.
    overlay: also publish the blended frame as JPEG on topic hearflow.overlay.
    jpeg_quality: quality of those JPEGs (1..100).
    alpha: heatmap blend weight of the overlay image.
    sndhwm: messages queued per subscriber before ZeroMQ drops for it; small, so a
        stalled subscriber costs no memory and never blocks the engine.
    linger_ms: how long close() may spend sending what is still queued.
    """

    wants_audio = False

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        frame_id: str = "camera",
        overlay: bool = False,
        jpeg_quality: int = 80,
        alpha: float = 0.45,
        sndhwm: int = 2,
        linger_ms: int = 200,
    ):
        self.endpoint = normalize_endpoint(endpoint)
        self.name = f"zmq:{self.endpoint}"
        self.frame_id = frame_id
        self.overlay = overlay
        self.wants_frames = overlay
        self.jpeg_quality = jpeg_quality
        self.alpha = alpha
        self.sndhwm = sndhwm
        self.linger_ms = linger_ms
        self.sent = 0
        """Messages handed to ZeroMQ."""
        self.dropped = 0
        """Messages ZeroMQ refused at once (zmq.Again). A PUB socket drops for a slow
        subscriber silently instead; subscribers see those as gaps in seq."""
        self._ctx = None
        self._sock = None
        self._model = ""

    @classmethod
    def from_spec(cls, arg: str, options: SinkOptions) -> ZmqSink:
        # port range and host resolve now, while --sink is parsed, before any model loads
        return cls(check_endpoint(arg or DEFAULT_ENDPOINT, bind=True), frame_id=options.frame_id,
                   overlay=options.zmq_overlay, jpeg_quality=options.jpeg_quality, alpha=options.alpha)

    def open(self, info: StreamInfo) -> None:
        # a context of its own: closing it never waits on anybody else's sockets
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, self.sndhwm)
        sock.setsockopt(zmq.LINGER, self.linger_ms)
        try:
            sock.bind(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            self._ctx.term()
            self._ctx = None
            if exc.errno == errno.ENODEV:  # libzmq's word for a host or interface it cannot find
                host = self.endpoint.partition("://")[2].rpartition(":")[0]
                raise HearflowError(f"{self.name}: cannot bind: no interface or resolvable host {host!r}") from None
            raise HearflowError(f"{self.name}: cannot bind: {exc}") from None
        self._sock = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT) or self.endpoint
        self.name = f"zmq:{self.endpoint}"  # the real port when '*' picked one
        self._model = info.model or ""
        if not is_loopback(self.endpoint):
            info.log(f"zmq: publishing on {self.endpoint}: other machines can subscribe (no authentication)")

    def write(self, result) -> None:
        wall_offset = time.time() - time.monotonic()
        self._send(encode_message(result, frame_id=self.frame_id, wall_offset=wall_offset, model=self._model))
        if self.overlay and result.rgb is not None:
            jpeg = draw.overlay_jpeg(result.rgb, result.map, result.peak, self.alpha, result.confidence,
                                     self.jpeg_quality)
            h, w = result.rgb.shape[:2]
            self._send(encode_message(result, frame_id=self.frame_id, jpeg=jpeg, jpeg_size=(w, h),
                                      wall_offset=wall_offset, model=self._model))

    def write_status(self, status: dict) -> None:
        self._send(encode_status(status, frame_id=self.frame_id))

    def _send(self, parts: list[bytes]) -> None:
        try:
            self._sock.send_multipart(parts, flags=zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:
            self.dropped += 1

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=self.linger_ms)
            self._sock = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None


__all__ = ["ZmqSink"]
