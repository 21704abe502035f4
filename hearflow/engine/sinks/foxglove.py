"""``--sink foxglove[:[ADDR:]PORT]``: a Foxglove WebSocket server (the ``foxglove-sdk`` package).

Open Foxglove (app or web) → "Open connection" → ``ws://HOST:PORT`` (default
ws://127.0.0.1:8765). Topics, every message stamped with the frame's wall-clock capture
time (the ZeroMQ header's ``stamp``), so an MCAP recording of them looks the same:

    /hearflow/heatmap   foxglove.RawImage, 32FC1: the m×n similarity map (row 0 = top)
    /hearflow/overlay   foxglove.CompressedImage, jpeg: the heatmap blended on the frame
                        (drawn and encoded only while a client subscribes to it)
    /hearflow/peaks     foxglove.ImageAnnotations: the peak circle and its confidence, in
                        the overlay's pixel coordinates (add it to the overlay's Image panel)
    /hearflow/status    JSON: the engine state (as /status.json of the http sink)

The server keeps at most ``backlog`` messages per client and drops the oldest for a slow
one, so a client never slows the engine.
"""

from __future__ import annotations

import time

import foxglove
import numpy as np
from foxglove.channels import CompressedImageChannel, ImageAnnotationsChannel, RawImageChannel
from foxglove.messages import (
    CircleAnnotation,
    Color,
    CompressedImage,
    ImageAnnotations,
    Point2,
    RawImage,
    TextAnnotation,
    Timestamp,
)

from hearflow.engine import draw
from hearflow.engine.packets import Result
from hearflow.engine.sinks.base import Sink, SinkOptions, StreamInfo
from hearflow.engine.sinks.live import LiveStats, check_bind, is_loopback_host, parse_bind, url_host
from hearflow.engine.sinks.registry import register_sink
from hearflow.errors import HearflowError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765
TOPICS = {
    "heatmap": "/hearflow/heatmap",
    "overlay": "/hearflow/overlay",
    "peaks": "/hearflow/peaks",
    "status": "/hearflow/status",
}
STATUS_EVERY_S = 0.5
"""The status channel is published at most this often (it is a summary, not per frame)."""


@register_sink("foxglove", "foxglove[:[ADDR:]PORT]")
class FoxgloveSink(Sink):
    """Publish heatmap, overlay, peak annotations and status to Foxglove over WebSocket.

    host, port: where to listen; default 127.0.0.1:8765 (this machine only); another
        address must be given explicitly and is logged (no authentication). Port 0
        picks a free one (``port`` then holds it).
    frame_id: frame_id of the images.
    jpeg_quality: quality of the overlay JPEGs (1..100).
    alpha: heatmap blend weight of the overlay.
    backlog: messages buffered per client before the oldest is dropped.
    """

    wants_frames = True

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, frame_id: str = "camera",
                 jpeg_quality: int = 80, alpha: float = 0.45, backlog: int = 16):
        self.host, self.port = host, port
        self.name = f"foxglove:{url_host(host)}:{port}"
        self.frame_id = frame_id
        self.jpeg_quality = int(jpeg_quality)
        self.alpha = alpha
        self.backlog = backlog
        self.stats = LiveStats()
        self.encoded = 0
        """Overlay JPEGs encoded (only while a client subscribes to the overlay)."""
        self._server = None
        self._ctx = None
        self._channels: dict = {}
        self._last_status = float("-inf")

    @classmethod
    def from_spec(cls, arg: str, options: SinkOptions) -> FoxgloveSink:
        host, port = parse_bind(arg, DEFAULT_HOST, DEFAULT_PORT, "foxglove")
        check_bind(host, port)  # a taken port or a foreign address fails here, before the model loads
        return cls(host, port, frame_id=options.frame_id, jpeg_quality=options.jpeg_quality, alpha=options.alpha)

    def spec_key(self) -> str:
        return f"foxglove:{self.port}" if self.port else f"foxglove:{id(self)}"

    def open(self, info: StreamInfo) -> None:
        # a context of its own: its channels go to this server only, not to the SDK's global
        # one; kept referenced, since the SDK closes a collected context's channels
        self._ctx = ctx = foxglove.Context()
        try:
            self._server = foxglove.start_server(name="hearflow", host=self.host, port=self.port, context=ctx,
                                                 message_backlog_size=self.backlog)
        except Exception as exc:  # the SDK raises its own error type for a failed bind
            raise HearflowError(f"{self.name}: cannot listen: {exc}") from None
        self.port = self._server.port
        self.name = f"foxglove:{url_host(self.host)}:{self.port}"
        self._channels = {
            "heatmap": RawImageChannel(TOPICS["heatmap"], context=ctx),
            "overlay": CompressedImageChannel(TOPICS["overlay"], context=ctx),
            "peaks": ImageAnnotationsChannel(TOPICS["peaks"], context=ctx),
            "status": foxglove.Channel(TOPICS["status"], schema=STATUS_SCHEMA, message_encoding="json", context=ctx),
        }
        info.log(f"foxglove: serving ws://{url_host(self.host)}:{self.port} (topics {', '.join(TOPICS.values())})")
        if not is_loopback_host(self.host):
            info.log(f"foxglove: listening on {self.host}: other machines can connect (no authentication)")

    def write(self, result: Result) -> None:
        now = time.monotonic()
        self.stats.add(result, now)
        ch = self._channels
        ns = int(round((result.t_capture + time.time() - now) * 1e9))  # wall-clock capture time
        stamp = Timestamp(ns // 1_000_000_000, ns % 1_000_000_000)
        heat = np.ascontiguousarray(result.map, dtype="<f4")
        m, n = heat.shape
        ch["heatmap"].log(RawImage(timestamp=stamp, frame_id=self.frame_id, width=int(n), height=int(m),
                                   encoding="32FC1", step=4 * int(n), data=heat.tobytes()))
        if result.rgb is not None and ch["overlay"].has_sinks():
            ch["overlay"].log(CompressedImage(timestamp=stamp, frame_id=self.frame_id, format="jpeg",
                                              data=self._encode(result)))
        ch["peaks"].log(self._annotations(result, stamp))
        if now - self._last_status >= STATUS_EVERY_S:
            self._last_status = now
            ch["status"].log(self.stats.status(now))

    def write_status(self, status: dict) -> None:
        # the engine's heartbeat reaches Foxglove even when no frame does (a lost camera)
        self.stats.set_engine(status)
        if self._channels:
            self._channels["status"].log(self.stats.status())

    def _annotations(self, result: Result, stamp) -> ImageAnnotations:
        """A circle and a label per tracked peak (the map's peak when none is above the
        threshold), in the overlay's pixel coordinates."""
        w, h = result.frame_size
        conf = float(np.nan_to_num(result.confidence))
        marks = [(p.x, p.y, f"#{p.track_id} {p.value:+.2f}") for p in result.peaks] or \
            [(float(result.peak[0]), float(result.peak[1]), f"conf {conf:.2f}")]
        white = Color(r=1.0, g=1.0, b=1.0, a=1.0)
        circles, texts = [], []
        for nx, ny, label in marks:
            x, y = float(nx) * w, float(ny) * h
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            circles.append(CircleAnnotation(timestamp=stamp, position=Point2(x=x, y=y),
                                            diameter=max(8.0, 0.06 * max(w, h)), thickness=2.0,
                                            outline_color=white, fill_color=Color(a=0.0)))
            texts.append(TextAnnotation(timestamp=stamp, position=Point2(x=x + 0.04 * w, y=y), text=label,
                                        font_size=max(10.0, 0.04 * h), text_color=white,
                                        background_color=Color(a=0.6)))
        return ImageAnnotations(timestamp=stamp, circles=circles, texts=texts)

    def _encode(self, result: Result) -> bytes:
        jpeg = draw.overlay_jpeg(result.rgb, result.map, result.peak, self.alpha, result.confidence,
                                 self.jpeg_quality)
        self.encoded += 1
        return jpeg

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels = {}
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self._ctx = None


STATUS_SCHEMA = {
    "type": "object",
    "title": "hearflow.status",
    "description": "Engine state computed from the results this sink received (LiveStats)",
    "properties": {
        "source": {"type": "string"},
        "received": {"type": "integer"},
        "seq": {"type": "integer"},
        "confidence": {"type": "number"},
        "audio_rms_db": {"type": "number"},
        "warming_up": {"type": "boolean"},
        "fps_in": {"type": "number"},
        "fps_out": {"type": "number"},
        "latency_ms": {"type": "object", "properties": {"p50": {"type": "number"}, "p99": {"type": "number"}}},
        "dropped": {"type": "object", "properties": {"before_inference": {"type": "integer"},
                                                     "before_this_sink": {"type": "integer"}}},
    },
}

__all__ = ["FoxgloveSink", "TOPICS"]
