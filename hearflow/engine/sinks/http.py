"""``--sink http[:[ADDR:]PORT]``: a live web page served from the engine process.

    /              the page: the overlay stream and the engine state, updated live
    /stream.mjpg   the overlay (heatmap blended on the frame, peak marked) as MJPEG
                   (multipart/x-mixed-replace): an <img> tag, VLC or cv2.VideoCapture
    /heatmap.json  the latest result's header (the ZeroMQ header's fields, docs/wire_format.md)
    /status.json   the engine state (LiveStats: fps, latency, drops, level, source state)

No build step and nothing from the internet: the page is a string in this module.
Read-only: only GET and HEAD are answered.

Threads: the sink thread (``write``) updates the state and, only while at least one
stream viewer is connected, draws and JPEG-encodes the overlay once per frame into a
one-slot hub; one server thread per connection sends the newest JPEG whenever it is
ready for one. A slow viewer skips frames, a stalled one blocks only its own thread
(and is dropped after ``SEND_TIMEOUT_S``); ``write`` never waits for a viewer.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from hearflow.engine import draw
from hearflow.engine.packets import Result
from hearflow.engine.sinks.base import Sink, SinkOptions, StreamInfo
from hearflow.engine.sinks.live import LiveStats, check_bind, is_loopback_host, parse_bind, url_host
from hearflow.engine.sinks.registry import register_sink
from hearflow.engine.wire import encode_message
from hearflow.errors import HearflowError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
BOUNDARY = "hearflowframe"
SEND_TIMEOUT_S = 10.0
"""A viewer whose socket accepts nothing for this long is disconnected."""


class FrameHub:
    """The newest JPEG, handed from the sink thread to every viewer thread (newest wins)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._seq = -1
        self._jpeg = b""
        self._closed = False
        self.viewers = 0
        """Stream connections open now; the sink encodes only while this is > 0."""

    def publish(self, seq: int, jpeg: bytes) -> None:
        with self._cond:
            self._seq, self._jpeg = seq, jpeg
            self._cond.notify_all()

    def next_after(self, seq: int, timeout: float = 1.0) -> tuple[int, bytes] | None:
        """The newest frame later than ``seq`` (waiting up to ``timeout``); None when closed.

        Returns (seq, b"") on timeout, so a viewer thread can re-check its connection.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._seq > seq, timeout)
            if self._closed:
                return None
            if self._seq > seq:
                return self._seq, self._jpeg
            return seq, b""

    def join(self) -> None:
        with self._cond:
            self.viewers += 1

    def leave(self) -> None:
        with self._cond:
            self.viewers -= 1

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@register_sink("http", "http[:[ADDR:]PORT]")
class HttpSink(Sink):
    """Serve the live page, the MJPEG overlay stream and JSON state over HTTP.

    host, port: where to listen; default 127.0.0.1:8080 (this machine only). Another
        address (0.0.0.0, a LAN address) must be given explicitly and is logged: the
        page has no authentication. Port 0 picks a free one (``port`` then holds it).
    frame_id: frame_id in /heatmap.json (as in the ZeroMQ header).
    jpeg_quality: quality of the stream's JPEGs (1..100).
    alpha: heatmap blend weight of the overlay.
    """

    wants_frames = True

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, frame_id: str = "camera",
                 jpeg_quality: int = 80, alpha: float = 0.45):
        self.host, self.port = host, port
        self.name = f"http:{url_host(host)}:{port}"
        self.frame_id = frame_id
        self.jpeg_quality = int(jpeg_quality)
        self.alpha = alpha
        self.stats = LiveStats()
        self.hub = FrameHub()
        self.encoded = 0
        """Overlay JPEGs encoded (once per frame, only while someone watches)."""
        self._header = b""
        self._lock = threading.Lock()
        self._model = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_spec(cls, arg: str, options: SinkOptions) -> HttpSink:
        host, port = parse_bind(arg, DEFAULT_HOST, DEFAULT_PORT, "http")
        check_bind(host, port)  # a taken port or a foreign address fails here, before the model loads
        return cls(host, port, frame_id=options.frame_id, jpeg_quality=options.jpeg_quality, alpha=options.alpha)

    def spec_key(self) -> str:
        return f"http:{self.port}" if self.port else f"http:{id(self)}"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else "::1" if self.host == "::" else self.host
        return f"http://{url_host(host)}:{self.port}/"

    def open(self, info: StreamInfo) -> None:
        self._model = info.model or ""
        server_cls = _Server6 if ":" in self.host else _Server
        try:
            server = server_cls((self.host, self.port), _Handler)
        except OSError as exc:
            raise HearflowError(f"{self.name}: cannot listen: {exc.strerror or exc}") from None
        server.sink = self
        self._server = server
        self.port = server.server_address[1]
        self.name = f"http:{url_host(self.host)}:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"{self.name} server", daemon=True)
        self._thread.start()
        info.log(f"http: live page at {self.url} (MJPEG at {self.url}stream.mjpg)")
        if not is_loopback_host(self.host):
            info.log(f"http: listening on {self.host}: other machines can open the page (no authentication)")

    def write(self, result: Result) -> None:
        self.stats.add(result)
        header = encode_message(result, frame_id=self.frame_id, model=self._model)[1]
        with self._lock:
            self._header = header
        if self.hub.viewers > 0 and result.rgb is not None:
            self.hub.publish(result.seq, self._encode(result))

    def _encode(self, result: Result) -> bytes:
        jpeg = draw.overlay_jpeg(result.rgb, result.map, result.peak, self.alpha, result.confidence,
                                 self.jpeg_quality)
        self.encoded += 1
        return jpeg

    def latest_header(self) -> bytes:
        with self._lock:
            return self._header

    def write_status(self, status: dict) -> None:
        self.stats.set_engine(status)

    def status(self) -> dict:
        out = self.stats.status()
        out["viewers"] = self.hub.viewers
        return out

    def close(self) -> None:
        self.hub.close()  # viewer threads end their streams
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None


def _peer_closed(conn: socket.socket) -> bool:
    """True when the other end has closed (only a write would notice otherwise)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck viewer never keeps the process alive
    sink: HttpSink


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "hearflow"
    protocol_version = "HTTP/1.0"  # one request per connection; the stream ends with it

    def do_GET(self):
        self._route(body=True)

    def do_HEAD(self):
        self._route(body=False)

    def _route(self, body: bool) -> None:
        sink = self.server.sink
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE.encode("utf-8"), body)
        elif path == "/status.json":
            self._send(HTTPStatus.OK, "application/json", json.dumps(sink.status()).encode(), body)
        elif path == "/heatmap.json":
            header = sink.latest_header()
            if header:
                self._send(HTTPStatus.OK, "application/json", header, body)
            else:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, "application/json", b'{"error": "no result yet"}', body)
        elif path == "/stream.mjpg":
            if body:
                self._stream(sink)
            else:
                self._send(HTTPStatus.OK, f"multipart/x-mixed-replace; boundary={BOUNDARY}", b"", False)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found: / /stream.mjpg /heatmap.json /status.json\n",
                       body)

    def _read_only(self):
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = _read_only

    def _send(self, status, ctype: str, data: bytes, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _stream(self, sink: HttpSink) -> None:
        hub = sink.hub
        self.connection.settimeout(SEND_TIMEOUT_S)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        hub.join()
        seq = -1
        try:
            while True:
                got = hub.next_after(seq)
                if got is None:  # the sink closed
                    self.wfile.write(f"--{BOUNDARY}--\r\n".encode())
                    return
                seq, jpeg = got
                if not jpeg:  # no new frame for a while: end here if the viewer has left
                    if _peer_closed(self.connection):
                        return
                    continue
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                    f"X-Hearflow-Seq: {seq}\r\n\r\n".encode() + jpeg + b"\r\n")
        except OSError:  # the viewer went away or stopped reading for SEND_TIMEOUT_S
            pass
        finally:
            hub.leave()

    def log_message(self, format, *args):  # one line per request would drown the status line
        pass


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hearflow live</title>
<style>
 body { margin: 0; font: 15px/1.4 system-ui, sans-serif; background: #16181c; color: #e8e8e8; }
 header { padding: 8px 14px; background: #23262c; display: flex; gap: 16px; align-items: baseline; }
 h1 { font-size: 17px; margin: 0; }
 main { display: flex; gap: 16px; padding: 14px; align-items: flex-start; }
 @media (max-width: 700px) { main { flex-direction: column; } }
 #view { height: min(calc(100vh - 90px), 720px); width: auto; max-width: 100%; }
 table { border-collapse: collapse; min-width: 260px; }
 td { padding: 3px 10px; border-bottom: 1px solid #333; }
 td:first-child { color: #9aa; }
 #state.live { color: #6d6; } #state.warm { color: #ec5; } #state.bad { color: #f66; }
 #bar { height: 8px; background: #333; } #bar div { height: 8px; width: 0; background: #fa3; }
 footer { padding: 0 14px; color: #889; font-size: 13px; }
 a { color: #8ab4f8; }
</style></head>
<body>
<header><h1>hearflow live</h1><span id="state">connecting</span></header>
<main>
 <img id="view" src="stream.mjpg" alt="live overlay (heatmap on the frame, peak marked)">
 <div>
  <table id="stats">
   <tr><td>confidence</td><td><span id="confidence">-</span><div id="bar"><div></div></div></td></tr>
   <tr><td>fps in / out</td><td id="fps">-</td></tr>
   <tr><td>latency p50 / p99</td><td id="latency">-</td></tr>
   <tr><td>dropped frames</td><td id="dropped">-</td></tr>
   <tr><td>audio level</td><td id="level">-</td></tr>
   <tr><td>peak</td><td id="peak">-</td></tr>
   <tr><td>frame</td><td id="frame">-</td></tr>
   <tr><td>viewers</td><td id="viewers">-</td></tr>
  </table>
 </div>
</main>
<footer>Stream: <a href="stream.mjpg">stream.mjpg</a> &middot; <a href="heatmap.json">heatmap.json</a>
 &middot; <a href="status.json">status.json</a></footer>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const num = (x, d) => (x === null || x === undefined) ? "-" : Number(x).toFixed(d);
async function tick() {
  try {
    const r = await fetch("status.json", {cache: "no-store"});
    const s = await r.json();
    const state = $("state");
    state.textContent = s.source;
    state.className = s.source === "live" ? "live" : s.source.startsWith("warming") ? "warm" : "bad";
    $("stats").title = "computed from " + s.computed_from;
    if (s.received > 0) {
      $("confidence").textContent = num(s.confidence, 2);
      $("bar").firstElementChild.style.width = (100 * Math.max(0, Math.min(1, s.confidence || 0))) + "%";
      $("fps").textContent = num(s.fps_in, 1) + " / " + num(s.fps_out, 1) + " fps";
      $("latency").textContent = num(s.latency_ms.p50, 0) + " / " + num(s.latency_ms.p99, 0) + " ms";
      $("dropped").textContent = s.dropped.before_inference + " engine / " + s.dropped.before_this_sink + " page";
      $("level").textContent = num(s.audio_rms_db, 1) + " dBFS" + (s.warming_up ? " (warming up)" : "");
      $("peak").textContent = "x " + num(s.peak.x, 2) + "  y " + num(s.peak.y, 2) + "  value " + num(s.peak.value, 2);
      $("frame").textContent = "#" + s.seq + "  t " + num(s.t_media, 2) + " s  " + s.frame_size.join("x");
    }
    $("viewers").textContent = s.viewers;
  } catch (e) {
    $("state").textContent = "engine not reachable";
    $("state").className = "bad";
  }
}
tick();
setInterval(tick, 500);
</script>
</body></html>
"""

__all__ = ["HttpSink", "FrameHub", "PAGE"]
