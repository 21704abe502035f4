"""The live views without a desktop: ``--sink http`` (page, MJPEG, JSON) and ``--sink foxglove``.

Real parts only: servers on loopback sockets, an HTTP client parsing the MJPEG stream, a
real WebSocket client speaking the Foxglove protocol, and Debian's headless chromium
loading the page from a running engine.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from hearflow.engine.packets import Result
from hearflow.engine.sinks import SinkRunner, StreamInfo, parse_sinks
from hearflow.engine.sinks.foxglove import TOPICS, FoxgloveSink
from hearflow.engine.sinks.http import BOUNDARY, HttpSink
from hearflow.engine.sinks.live import parse_bind
from hearflow.engine.wire import encode_message
from hearflow.errors import HearflowError
from loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
W, H, FPS = 160, 120, 25
SCREENSHOT = ROOT / "docs" / "img" / "live_page.png"


def make_result(seq: int, w: int = W, h: int = H, noise: bool = False) -> Result:
    t = time.monotonic()
    if noise:  # incompressible: big JPEGs that fill socket buffers quickly
        rgb = np.random.default_rng(seq).integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[..., 1] = (seq * 7) % 256
    return Result(
        seq=seq, capture_seq=seq + seq // 5, t_capture=t - 0.03, t_media=seq / FPS, t_result=t - 0.01,
        map=np.linspace(-1, 1, 49, dtype=np.float32).reshape(7, 7), peak=(0.75, 0.25), peak_value=1.0,
        confidence=0.8, audio_rms_db=-20.0, warming_up=False, frame_size=(w, h), rgb=rgb,
    )


def start(sink, lossless=False) -> SinkRunner:
    runner = SinkRunner(sink, queue_size=4, lossless=lossless, log=lambda msg: None)
    runner.start(StreamInfo(fps=FPS, frame_size=(W, H), model="test-model", realtime=not lossless))
    return runner


class Feeder:
    """Puts results into a runner at ``fps`` from a thread until stopped."""

    def __init__(self, runner: SinkRunner, fps: float = 50.0, **kwargs):
        self.runner, self.period, self.kwargs = runner, 1.0 / fps, kwargs
        self.seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.runner.put_result(make_result(self.seq, **self.kwargs))
            self.seq += 1
            time.sleep(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def mjpeg_parts(port: int, count: int, timeout: float = 20.0) -> list[tuple[dict, bytes]]:
    """Read ``count`` parts of /stream.mjpg the way any multipart client does."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", "/stream.mjpg")
    r = conn.getresponse()
    assert r.status == 200
    assert r.getheader("Content-Type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
    parts = []
    try:
        while len(parts) < count:
            line = r.fp.readline()
            if not line.strip():
                continue
            assert line.strip() == f"--{BOUNDARY}".encode(), line
            headers = {}
            while (line := r.fp.readline().strip()):
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            parts.append((headers, r.fp.read(int(headers["content-length"]))))
    finally:
        conn.close()
    return parts


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- --sink parsing
def test_bind_argument_forms():
    assert parse_bind("", "127.0.0.1", 8080, "http") == ("127.0.0.1", 8080)
    assert parse_bind("9000", "127.0.0.1", 8080, "http") == ("127.0.0.1", 9000)
    assert parse_bind("0.0.0.0:9000", "127.0.0.1", 8080, "http") == ("0.0.0.0", 9000)
    assert parse_bind("[::1]:9000", "127.0.0.1", 8080, "http") == ("::1", 9000)
    (sink,) = parse_sinks("http:0")
    assert isinstance(sink, HttpSink) and (sink.host, sink.port) == ("127.0.0.1", 0)
    (sink,) = parse_sinks("foxglove:127.0.0.1:0")
    assert isinstance(sink, FoxgloveSink) and (sink.host, sink.port) == ("127.0.0.1", 0)


@pytest.mark.parametrize("spec, match", [
    ("http:70000", "out of range"),
    ("http:-1", "port must be a number"),
    ("http:web", "port must be a number"),
    ("http:::1:80", "IPv6 address in brackets"),
    ("http:192.0.2.1:0", "cannot listen on 192.0.2.1:0"),  # TEST-NET: not an address of this machine
    ("http:no-such-host.invalid:0", "unknown address"),
    ("foxglove:65536", "out of range"),
])
def test_bad_bind_arguments_are_one_line(spec, match):
    with pytest.raises(HearflowError, match=match) as info:
        parse_sinks(spec)
    assert "\n" not in str(info.value)


def test_port_in_use_fails_before_the_model_loads(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        for kind in ("http", "foxglove"):
            with pytest.raises(HearflowError, match=f"cannot listen on 127.0.0.1:{port}"):
                parse_sinks(f"{kind}:{port}")
        # the CLI: one line, and about the port, not the (missing) model
        p = subprocess.run([sys.executable, "-m", "hearflow.cli", "run", "--model", str(tmp_path / "no-model"),
                            "--video", "synth", "--audio", "synth", "--sink", f"jsonl:{tmp_path / 'a.jsonl'},http:{port}"],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert f"http:{port}" in lines[0] and "Address already in use" in lines[0], lines[0]


# --------------------------------------------------------------------------- http sink
def test_mjpeg_stream_and_json_endpoints():
    sink = HttpSink("127.0.0.1", 0)
    runner = start(sink)
    try:
        port = sink.port
        assert port > 0
        status, _, body = get(port, "/heatmap.json")
        assert status == 503  # nothing yet: says so instead of serving an empty header
        with Feeder(runner, fps=50):
            parts = mjpeg_parts(port, 6)
            seqs = [int(h["x-hearflow-seq"]) for h, _ in parts]
            assert seqs == sorted(set(seqs)), seqs  # strictly increasing frame numbers
            for headers, jpeg in parts:
                assert headers["content-type"] == "image/jpeg"
                img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                assert img is not None and img.shape == (H, W, 3)
                # the peak marker is drawn at (0.75, 0.25) of the frame: white there
                assert img[int(0.25 * H), int(0.75 * W)].min() > 200
            status, headers, body = get(port, "/heatmap.json")
            assert status == 200 and headers["Content-Type"] == "application/json"
            header = json.loads(body)
            wire_header = json.loads(encode_message(make_result(0), model="test-model")[1])
            assert set(header) == set(wire_header)  # the ZeroMQ header's fields, all of them
            assert header["encoding"] == "32FC1" and header["map_shape"] == [7, 7] and header["model"] == "test-model"
            time.sleep(0.3)
            s = json.loads(get(port, "/status.json")[2])
            assert s["source"] == "live" and s["received"] > 5
            assert 20 < s["fps_out"] < 80  # fed at 50 fps
            assert s["latency_ms"]["p50"] >= 30.0  # t_capture is 30 ms before the put
            assert s["dropped"]["before_inference"] > 0  # capture_seq runs ahead of seq
            assert "computed_from" in s
            status, _, body = get(port, "/")
            assert status == 200 and b'src="stream.mjpg"' in body and b"status.json" in body
            assert b"http://" not in body and b"https://" not in body  # nothing from the internet
            assert get(port, "/nope")[0] == 404
            assert get(port, "/status.json", method="POST")[0] == 405  # read-only
            assert get(port, "/", method="DELETE")[0] == 405
    finally:
        runner.stop()
    with pytest.raises(OSError):  # closed with the sink
        get(port, "/status.json")


def raw_viewer(port: int, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
    return s


def test_jpeg_encoded_once_per_frame_and_only_while_watched():
    sink = HttpSink("127.0.0.1", 0)
    runner = start(sink, lossless=True)
    viewers = []
    try:
        for i in range(10):
            runner.put_result(make_result(i))
        wait_for(lambda: runner.written == 10, what="10 writes")
        assert sink.encoded == 0  # nobody watches: nothing drawn or encoded
        viewers = [raw_viewer(sink.port) for _ in range(3)]
        wait_for(lambda: sink.hub.viewers == 3, what="3 viewers")
        for i in range(10, 40):
            runner.put_result(make_result(i))
        wait_for(lambda: runner.written == 40, what="40 writes")
        assert sink.encoded == 30  # once per frame, not once per viewer
        for v in viewers:
            v.settimeout(5)
            assert v.recv(65536).startswith(b"HTTP/1.0 200")
            v.close()
        wait_for(lambda: sink.hub.viewers == 0, what="viewers gone")
        for i in range(40, 50):
            runner.put_result(make_result(i))
        wait_for(lambda: runner.written == 50, what="50 writes")
        assert sink.encoded == 30
    finally:
        for v in viewers:
            v.close()
        runner.stop()


def test_stalled_viewer_slows_neither_the_sink_nor_other_viewers():
    """A lossless runner waits whenever the sink's write waits: if write ever waited for a
    viewer, the stalled one (which never reads) would hold up every put below."""
    sink = HttpSink("127.0.0.1", 0)
    runner = start(sink, lossless=True)
    stalled = raw_viewer(sink.port, rcvbuf=4096)
    got: list[int] = []
    stop = threading.Event()

    def reader():
        conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=20)
        conn.request("GET", "/stream.mjpg")
        r = conn.getresponse()
        while not stop.is_set():
            line = r.fp.readline()
            if not line:
                return
            if line.lower().startswith(b"x-hearflow-seq:"):
                got.append(int(line.split(b":")[1]))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        wait_for(lambda: sink.hub.viewers == 2, what="2 viewers")
        n = 150
        t0 = time.monotonic()
        for i in range(n):  # 640x480 noise: ~0.5 MB JPEGs, far beyond any socket buffer
            runner.put_result(make_result(i, 640, 480, noise=True))
            time.sleep(0.005)
        wait_for(lambda: runner.written == n, timeout=60, what="every result written")
        elapsed = time.monotonic() - t0
        assert runner.dropped == 0 and sink.encoded == n
        assert elapsed < 0.5 * n * 1.0  # far from stalling (10 s send timeout per frame)
        wait_for(lambda: got and got[-1] == n - 1, timeout=10, what="the reading viewer gets the newest frame")
        assert len(got) > n // 4, len(got)  # it kept receiving while the other one stalled
    finally:
        stop.set()
        stalled.close()
        runner.stop()


# --------------------------------------------------------------------------- foxglove sink
def _decoders(advertised: list[dict]) -> dict:
    """Per channel id: a function decoding a message, from the schema the server advertised."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    out = {}
    for ch in advertised:
        if ch["encoding"] == "json":
            out[ch["id"]] = lambda b: json.loads(b)
            continue
        assert ch["encoding"] == "protobuf" and ch["schemaEncoding"] == "protobuf"
        fds = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(ch["schema"]))
        for fd in fds.file:
            try:
                pool.Add(fd)
            except TypeError:  # shared dependency (Timestamp, Color, ...) added already
                pass
        cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(ch["schemaName"]))
        out[ch["id"]] = cls.FromString
    return out


PROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]


async def _foxglove_client(port: int, topics: list[str], timeout: float = 20.0) -> dict:
    """Subscribe to ``topics`` and return the first decoded message of each, by topic."""
    import websockets

    # foxglove-sdk's server speaks the Foxglove WebSocket protocol v1 under the subprotocol
    # name foxglove.sdk.v1; older servers (ws-protocol) call it foxglove.websocket.v1
    async with websockets.connect(f"ws://127.0.0.1:{port}", subprotocols=PROTOCOLS) as ws:
        assert ws.subprotocol in PROTOCOLS
        channels: dict[str, dict] = {}
        async with asyncio.timeout(timeout):
            while not all(t in channels for t in topics):
                msg = await ws.recv()
                if isinstance(msg, str):
                    m = json.loads(msg)
                    if m["op"] == "advertise":
                        channels.update({c["topic"]: c for c in m["channels"]})
            wanted = [channels[t] for t in topics]
            decode = _decoders(wanted)
            subs = {i: c for i, c in enumerate(wanted)}
            await ws.send(json.dumps({"op": "subscribe",
                                      "subscriptions": [{"id": i, "channelId": c["id"]} for i, c in subs.items()]}))
            got: dict[str, object] = {}
            while len(got) < len(topics):
                msg = await ws.recv()
                if isinstance(msg, bytes) and msg[0] == 0x01:  # message data
                    _, sub_id, _log_time = struct.unpack_from("<BIQ", msg)
                    ch = subs[sub_id]
                    got.setdefault(ch["topic"], decode[ch["id"]](msg[13:]))
            return got


def test_foxglove_client_decodes_every_channel():
    sink = FoxgloveSink("127.0.0.1", 0)
    runner = start(sink)
    try:
        assert sink.port > 0
        with Feeder(runner, fps=50):
            time.sleep(0.3)
            assert sink.encoded == 0  # no overlay subscriber yet: nothing encoded
            got = asyncio.run(_foxglove_client(sink.port, list(TOPICS.values())))
        heat = got[TOPICS["heatmap"]]
        assert (heat.width, heat.height, heat.encoding, heat.step) == (7, 7, "32FC1", 28)
        assert heat.frame_id == "camera" and abs(heat.timestamp.seconds - time.time()) < 60
        np.testing.assert_array_equal(np.frombuffer(heat.data, "<f4").reshape(7, 7), make_result(0).map)
        overlay = got[TOPICS["overlay"]]
        assert overlay.format == "jpeg"
        img = cv2.imdecode(np.frombuffer(overlay.data, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (H, W, 3)
        assert sink.encoded > 0
        peaks = got[TOPICS["peaks"]]
        (circle,) = peaks.circles
        assert (circle.position.x, circle.position.y) == pytest.approx((0.75 * W, 0.25 * H))
        assert peaks.texts[0].text == "conf 0.80"
        status = got[TOPICS["status"]]
        assert status["source"] == "live" and status["received"] > 0 and "fps_out" in status
    finally:
        runner.stop()


# --------------------------------------------------------------------------- a running engine
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(url: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start; the page is ours.
    # --virtual-time-budget: let the page's script run (status polls) before the dump/screenshot.
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=900,520",
         "--virtual-time-budget=3000", *args, url],
        capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_engine_page_in_headless_chromium(tmp_path):
    summary_path = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hearflow.cli", "run", "--model", str(ROOT / "checkpoints" / "synth_tiny"),
         "--video", "synth", "--audio", "synth", "--realtime", "--duration", "12", "--sink", "http:0",
         "--summary", str(summary_path), "--no-status"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
    stalled = None
    try:
        wait_for(lambda: any("live page at" in ln for ln in log) or proc.poll() is not None, timeout=120,
                 what="the engine's page")
        m = next((re.search(r"http://127\.0\.0\.1:(\d+)/", ln) for ln in log if "live page at" in ln), None)
        assert m, "".join(log)
        port = int(m.group(1))
        url = f"http://127.0.0.1:{port}/"
        stalled = raw_viewer(port, rcvbuf=4096)  # a viewer that never reads, for the whole run
        wait_for(lambda: json.loads(get(port, "/status.json")[2])["received"] >= 10, timeout=60,
                 what="10 results")

        shot = tmp_path / "page.png"
        p = _chromium(url, f"--screenshot={shot}", tmp_path=tmp_path)
        assert shot.exists(), p.stderr[-2000:]
        img = cv2.imread(str(shot))
        assert img.shape[:2] == (520, 900)
        # the live image occupies the left part of the page: coloured (heatmap, synthetic
        # scene), unlike the page's flat dark background and its grey text
        view = img[80:480, 24:420]
        hsv = cv2.cvtColor(view, cv2.COLOR_BGR2HSV)
        colourful = (hsv[..., 1] > 80) & (hsv[..., 2] > 80)
        assert colourful.mean() > 0.3, f"only {colourful.mean():.0%} of the image area is coloured"
        assert view.std() > 20
        background = img[330:470, 480:880]  # plain page below the stats table
        assert background.std() < 3 and background.mean() < 40

        p = _chromium(url, "--dump-dom", tmp_path=tmp_path)
        dom = p.stdout
        text = {k: re.search(rf'id="{k}"[^>]*>([^<]*)<', dom).group(1) for k in ("state", "fps", "latency", "level")}
        assert text["state"] in ("live", "warming up"), text
        assert re.fullmatch(r"\d+\.\d / \d+\.\d fps", text["fps"]), text
        assert re.fullmatch(r"\d+ / \d+ ms", text["latency"]), text
        assert re.fullmatch(r"-?\d+\.\d dBFS( \(warming up\))?", text["level"]), text
        if os.environ.get("HEARFLOW_UPDATE_SCREENSHOT"):  # the README's picture
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            from PIL import Image

            small = cv2.resize(img, (img.shape[1] * 2 // 3, img.shape[0] * 2 // 3), interpolation=cv2.INTER_AREA)
            # a 128-colour palette keeps the committed picture small
            Image.fromarray(small[..., ::-1]).quantize(128).save(SCREENSHOT, optimize=True)

        assert proc.wait(timeout=120) == 0, "".join(log)
    finally:
        if stalled is not None:
            stalled.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    summary = json.loads(summary_path.read_text())
    (name,) = [k for k in summary["sinks"] if k.startswith("http:")]
    http_sink = summary["sinks"][name]
    # the stalled viewer cost the engine nothing: the sink kept up with every processed frame
    assert not http_sink["failed"]
    assert http_sink["written"] + http_sink["dropped"] == summary["processed"]
    assert http_sink["dropped"] <= max(2, summary["processed"] // 50), summary


def test_engine_heartbeat_state_wins_over_what_results_tell():
    from hearflow.engine.sinks.live import LiveStats

    stats = LiveStats()
    assert "engine" not in stats.status() and stats.status()["source"] != "source lost"
    stats.set_engine({"state": "source lost", "last_error": "camera 0: no frame for 2.0 s", "fps_in": 0.0})
    status = stats.status()
    assert status["source"] == "source lost"
    assert status["engine"] == {"state": "source lost", "last_error": "camera 0: no frame for 2.0 s"}
    stats.set_engine({"state": "running"})
    assert stats.status()["source"] != "source lost"  # running: the results' own view stands
