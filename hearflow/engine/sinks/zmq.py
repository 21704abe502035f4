"""``--sink zmq[:ENDPOINT]``: each result on a ZeroMQ PUB socket (the robot-facing stream).

The messages are :mod:`hearflow.engine.wire`'s. The socket never waits for subscribers:
a tiny send high-water mark and non-blocking sends mean a slow or stalled subscriber
just misses messages (it sees a gap in ``seq``).
"""

from __future__ import annotations

import errno
import threading
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
    stream: the stream's name with ``--streams`` (topics become ``hearflow.heatmap.NAME``
        etc., and the streams' zmq sinks on one endpoint share its socket); "" = one stream.
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
        stream: str = "",
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
        self.stream = stream
        self.sent = 0
        """Messages handed to ZeroMQ."""
        self.dropped = 0
        """Messages ZeroMQ refused at once (zmq.Again). A PUB socket drops for a slow
        subscriber silently instead; subscribers see those as gaps in seq."""
        self._pub: _Publisher | None = None
        self._model = ""

    @classmethod
    def from_spec(cls, arg: str, options: SinkOptions) -> ZmqSink:
        # port range and host resolve now, while --sink is parsed, before any model loads
        return cls(check_endpoint(arg or DEFAULT_ENDPOINT, bind=True), frame_id=options.frame_id,
                   overlay=options.zmq_overlay, jpeg_quality=options.jpeg_quality, alpha=options.alpha,
                   stream=options.stream)

    def open(self, info: StreamInfo) -> None:
        # streams of one process share a socket per endpoint (subscribers tell them apart by
        # topic); a single stream gets a context of its own, so closing never waits on others
        self._pub = _Publisher.acquire(self.endpoint, self.name, shared=bool(self.stream), sndhwm=self.sndhwm,
                                       linger_ms=self.linger_ms)
        self.endpoint = self._pub.endpoint
        self.name = f"zmq:{self.endpoint}"  # the real port when '*' picked one
        self._model = info.model or ""
        if not is_loopback(self.endpoint) and self._pub.users == 1:
            info.log(f"zmq: publishing on {self.endpoint}: other machines can subscribe (no authentication)")

    def write(self, result) -> None:
        wall_offset = time.time() - time.monotonic()
        self._send(encode_message(result, frame_id=self.frame_id, wall_offset=wall_offset, model=self._model,
                                  stream=self.stream))
        if self.overlay and result.rgb is not None:
            jpeg = draw.overlay_jpeg(result.rgb, result.map, result.peak, self.alpha, result.confidence,
                                     self.jpeg_quality)
            h, w = result.rgb.shape[:2]
            self._send(encode_message(result, frame_id=self.frame_id, jpeg=jpeg, jpeg_size=(w, h),
                                      wall_offset=wall_offset, model=self._model, stream=self.stream))

    def write_status(self, status: dict) -> None:
        self._send(encode_status(status, frame_id=self.frame_id, stream=self.stream))

    def _send(self, parts: list[bytes]) -> None:
        if self._pub.send(parts):
            self.sent += 1
        else:
            self.dropped += 1

    def close(self) -> None:
        if self._pub is not None:
            self._pub.release()
            self._pub = None


class _Publisher:
    """A bound PUB socket, shared by the zmq sinks of several streams on one endpoint.

    A ZeroMQ socket is not thread-safe and every sink writes from its own thread, so
    sends go through a lock (held for a non-blocking send: microseconds).
    """

    _shared: dict[str, _Publisher] = {}
    _registry_lock = threading.Lock()

    def __init__(self, endpoint: str, name: str, sndhwm: int, linger_ms: int):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        self.sock.setsockopt(zmq.LINGER, linger_ms)
        self.linger_ms = linger_ms
        try:
            self.sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self.sock.close(linger=0)
            self.ctx.term()
            if exc.errno == errno.ENODEV:  # libzmq's word for a host or interface it cannot find
                host = endpoint.partition("://")[2].rpartition(":")[0]
                raise HearflowError(f"{name}: cannot bind: no interface or resolvable host {host!r}") from None
            raise HearflowError(f"{name}: cannot bind: {exc}") from None
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT) or endpoint
        self.key: str | None = None
        self.users = 1
        self.lock = threading.Lock()

    @classmethod
    def acquire(cls, endpoint: str, name: str, shared: bool, sndhwm: int, linger_ms: int) -> _Publisher:
        if not shared:
            return cls(endpoint, name, sndhwm, linger_ms)
        with cls._registry_lock:
            pub = cls._shared.get(endpoint)
            if pub is not None:
                pub.users += 1
                return pub
            pub = cls._shared[endpoint] = cls(endpoint, name, sndhwm, linger_ms)
            pub.key = endpoint
            return pub

    def send(self, parts: list[bytes]) -> bool:
        """False when ZeroMQ refused the message at once (zmq.Again)."""
        with self.lock:
            try:
                self.sock.send_multipart(parts, flags=zmq.NOBLOCK)
                return True
            except zmq.Again:
                return False

    def release(self) -> None:
        with self._registry_lock:
            self.users -= 1
            if self.users > 0:
                return
            if self.key is not None:
                self._shared.pop(self.key, None)
        self.sock.close(linger=self.linger_ms)
        self.ctx.term()


__all__ = ["ZmqSink"]
