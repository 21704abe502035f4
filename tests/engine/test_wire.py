"""ZeroMQ wire format and publisher, with real sockets and real subscriber processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from hearflow.engine.packets import Result
from hearflow.engine.sinks import SinkRunner, StreamInfo, parse_sinks
from hearflow.engine.sinks.zmq import ZmqSink
from hearflow.engine.wire import (
    DEFAULT_ENDPOINT,
    HEATMAP_SCHEMA,
    HEATMAP_TOPIC,
    OVERLAY_TOPIC,
    STATUS_TOPIC,
    WireError,
    check_endpoint,
    decode_message,
    encode_message,
    is_loopback,
    listen,
    normalize_endpoint,
)
from hearflow.errors import HearflowError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "robot_subscriber.py"


def make_map(seq: int, shape=(7, 7)) -> np.ndarray:
    """A map that differs per seq and is exactly representable in float32."""
    rng = np.random.default_rng(seq)
    return rng.uniform(-1, 1, shape).astype(np.float32)


def make_result(seq: int, shape=(7, 7), heat=None, rgb=None) -> Result:
    t = time.monotonic()
    return Result(
        seq=seq, capture_seq=seq + 3, t_capture=t - 0.015, t_media=seq / 25, t_result=t - 0.005,
        map=make_map(seq, shape) if heat is None else heat, peak=(0.25, 0.75), peak_value=0.6,
        confidence=0.8, audio_rms_db=-23.5, warming_up=seq < 2, frame_size=(160, 120), rgb=rgb,
    )


def start_zmq(lossless=False, **kwargs) -> tuple[ZmqSink, SinkRunner]:
    """A ZmqSink on a free loopback port (kwargs go to ZmqSink), running."""
    sink = ZmqSink("tcp://127.0.0.1:*", **kwargs)
    runner = SinkRunner(sink, lossless=lossless)
    runner.start(StreamInfo(model="test-model"))
    return sink, runner


def spawn(args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-u", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


def publish_until_exit(runner: SinkRunner, proc: subprocess.Popen, period=0.01, limit=30.0, shape=(7, 7)) -> int:
    """Publish seq 0, 1, 2, ... until the subscriber exits (it joins late: PUB/SUB)."""
    seq, deadline = 0, time.monotonic() + limit
    while proc.poll() is None and time.monotonic() < deadline:
        runner.put_result(make_result(seq, shape))
        seq += 1
        time.sleep(period)
    return seq


# --------------------------------------------------------------------------- format
def test_encode_decode_round_trip():
    r = make_result(5, shape=(7, 9))
    parts = encode_message(r, frame_id="head_cam", t_publish=r.t_capture + 0.02, wall_offset=1000.0, model="m1")
    assert [type(p) for p in parts] == [bytes, bytes, bytes]
    assert parts[0] == HEATMAP_TOPIC.encode()
    assert parts[2] == r.map.astype("<f4").tobytes()  # little-endian row-major float32, nothing else
    topic, h, heat = decode_message(parts)
    assert topic == HEATMAP_TOPIC
    np.testing.assert_array_equal(heat, r.map)
    assert heat.dtype == np.float32 and heat.shape == (7, 9)
    assert h["schema"] == HEATMAP_SCHEMA
    assert (h["height"], h["width"], h["step"], h["encoding"], h["is_bigendian"]) == (7, 9, 36, "32FC1", 0)
    assert h["frame_id"] == "head_cam" and h["seq"] == 5 and h["capture_seq"] == 8 and h["model"] == "m1"
    wall = r.t_capture + 1000.0
    assert h["stamp"]["sec"] == int(wall) and abs(h["stamp"]["nanosec"] * 1e-9 - (wall - int(wall))) < 1e-6
    assert h["peak"] == {"x": 0.25, "y": 0.75, "value": 0.6}
    assert h["latency_ms"] == pytest.approx(20.0, abs=1e-3)
    assert h["frame_size"] == [160, 120] and h["map_shape"] == [7, 9]
    assert h["confidence"] == 0.8 and h["warming_up"] is False and h["audio_rms_db"] == -23.5
    assert h["t_capture"] == r.t_capture and h["t_media"] == r.t_media


def test_overlay_message_and_bad_messages():
    jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 128, np.uint8))[1].tobytes()
    r = make_result(1)
    r.confidence = float("nan")  # JSON cannot hold NaN: it travels as null
    topic, h, payload = decode_message(encode_message(r, jpeg=jpeg))
    assert topic == OVERLAY_TOPIC and h["encoding"] == "jpeg" and payload == jpeg
    assert (h["width"], h["height"]) == (160, 120) and h["confidence"] is None
    assert cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)

    good = encode_message(make_result(2))
    with pytest.raises(WireError, match="3 frames"):
        decode_message(good[:2])
    with pytest.raises(WireError, match="payload"):
        decode_message([good[0], good[1], good[2][:-4]])
    with pytest.raises(WireError, match="header"):
        decode_message([good[0], b"{not json", good[2]])
    with pytest.raises(WireError, match="schema"):
        decode_message([good[0], b"{}", good[2]])


def test_endpoints():
    assert normalize_endpoint("5556") == "tcp://127.0.0.1:5556"
    assert normalize_endpoint(DEFAULT_ENDPOINT) == "tcp://127.0.0.1:5555"
    with pytest.raises(ValueError):
        normalize_endpoint("localhost:5555")
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("ipc:///tmp/hf") and is_loopback("tcp://[::1]:1")
    assert not is_loopback("tcp://*:5555") and not is_loopback("tcp://0.0.0.0:5555")


def test_bind_conflict_is_one_line_error():
    sink, runner = start_zmq()
    try:
        with pytest.raises(HearflowError, match="cannot bind"):
            SinkRunner(ZmqSink(sink.endpoint)).start(StreamInfo())
    finally:
        runner.stop()


# --------------------------------------------------------------------------- real subscribers
def test_subscriber_process_receives_exact_maps(tmp_path):
    sink, runner = start_zmq()
    proc = spawn(["-m", "hearflow.engine.wire", sink.endpoint, "--count", "20", "--save", str(tmp_path),
                  "--timeout", "30"])
    try:
        publish_until_exit(runner, proc, period=0.005)
        out, err = proc.communicate(timeout=10)
    finally:
        runner.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    headers = [json.loads(line) for line in (tmp_path / "headers.jsonl").read_text().splitlines()]
    assert len(headers) == 20
    assert len([ln for ln in out.splitlines() if ln.startswith(HEATMAP_TOPIC + " seq")]) == 20
    seqs = [h["seq"] for h in headers]
    stamps = [h["stamp"]["sec"] + h["stamp"]["nanosec"] * 1e-9 for h in headers]
    assert seqs == sorted(set(seqs)), "seq strictly increasing"
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "stamps increasing"
    assert abs(stamps[-1] - time.time()) < 60, "stamp is wall-clock (UNIX) time"
    for h in headers:
        assert h["topic"] == HEATMAP_TOPIC and h["schema"] == HEATMAP_SCHEMA
        assert isinstance(h["stamp"]["sec"], int) and 0 <= h["stamp"]["nanosec"] < 10**9
        assert isinstance(h["latency_ms"], float) and 0 < h["latency_ms"] < 5000
        assert isinstance(h["confidence"], float) and isinstance(h["warming_up"], bool)
        assert h["frame_id"] == "camera" and h["model"] == "test-model"
        heat = np.load(tmp_path / f"{h['seq']:08d}.npy")
        np.testing.assert_array_equal(heat, make_map(h["seq"]))
    assert runner.failed is False and sink.dropped == 0


def test_example_robot_subscriber():
    sink, runner = start_zmq()
    proc = spawn([str(EXAMPLE), sink.endpoint, "--count", "3", "--timeout", "20"])
    try:
        publish_until_exit(runner, proc, period=0.01)
        out, err = proc.communicate(timeout=10)
    finally:
        runner.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 and all(ln.startswith("seq ") and "map 7x7" in ln for ln in lines), out


def test_example_robot_subscriber_times_out():
    proc = spawn([str(EXAMPLE), "tcp://127.0.0.1:1", "--count", "1", "--timeout", "0.3"])
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1 and "no message within" in err


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and SIGSTOP")
def test_stalled_subscriber_does_not_slow_the_publisher():
    shape = (128, 128)  # 64 KiB per map: 500 of them (32 MiB) are far more than socket buffers hold
    heat = make_map(0, shape)
    sink = ZmqSink("tcp://127.0.0.1:*")
    # lossless: every put waits for the sink, so a publisher that blocked would show here
    runner = SinkRunner(sink, lossless=True)
    runner.start(StreamInfo())

    def burst(seq0: int) -> float:
        t = time.perf_counter()
        for k in range(seq0, seq0 + 500):
            runner.put_result(make_result(k, heat=heat))
        while runner.pending:
            time.sleep(0.001)
        return time.perf_counter() - t

    proc = None
    try:
        baseline = burst(0)  # nobody subscribed
        proc = spawn(["-m", "hearflow.engine.wire", sink.endpoint, "--timeout", "60"])
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        seq, deadline = 10_000, time.monotonic() + 30
        while not lines and time.monotonic() < deadline:  # until it is really receiving
            runner.put_result(make_result(seq, heat=heat))
            seq += 1
            time.sleep(0.02)
        assert lines, "subscriber never received anything"
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(0.2)
        before, mem0 = len(lines), rss_mib()
        stalled = burst(20_000)
        stalled2 = burst(30_000)
        mem1 = rss_mib()
        assert max(stalled, stalled2) < 5 * baseline + 1.0, (baseline, stalled, stalled2)
        assert mem1 - mem0 < 16, f"publisher memory grew by {mem1 - mem0:.1f} MiB"
        assert runner.written >= 1000 + 500 and runner.dropped == 0
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(1.0)
        got = [ln for ln in lines[before:] if ln.startswith(HEATMAP_TOPIC + " seq")]
        # the 1000 published while it was stopped mostly never reached it; it saw the gap
        assert len(got) < 500, len(got)
        assert any("gap" in ln for ln in lines[before:])
    finally:
        if proc is not None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()
        t = time.perf_counter()
        runner.stop()
        assert time.perf_counter() - t < 5, "close must not hang on a dead subscriber"


def test_realtime_puts_stay_fast_with_stalled_in_process_subscriber():
    """A SUB socket with a tiny RCVHWM that never reads: put_result never waits."""
    sink, runner = start_zmq()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(sink.endpoint)
    try:
        time.sleep(0.2)
        heat = make_map(0, (128, 128))
        worst = 0.0
        for k in range(500):
            t = time.perf_counter()
            runner.put_result(make_result(k, heat=heat))
            worst = max(worst, time.perf_counter() - t)
        assert worst < 0.05, f"a put took {worst * 1000:.1f} ms"
        runner.stop()
        assert runner.written + runner.dropped == 500 and runner.written >= 1
    finally:
        runner.stop()
        sub.close(linger=0)
        ctx.term()


def test_listen_saves_maps_and_overlays(tmp_path):
    sink, runner = start_zmq(overlay=True)
    lines: list[str] = []
    box: list[int] = []
    th = threading.Thread(target=lambda: box.append(listen(
        sink.endpoint, count=8, save_dir=tmp_path, topics=(HEATMAP_TOPIC, OVERLAY_TOPIC), timeout=20,
        out=lines.append)))
    th.start()
    rgb = np.full((120, 160, 3), 100, np.uint8)
    seq = 0
    try:
        while th.is_alive() and seq < 2000:
            runner.put_result(make_result(seq, rgb=rgb))
            seq += 1
            time.sleep(0.01)
        th.join(5)
    finally:
        runner.stop()
    assert box == [8]
    npys = sorted(tmp_path.glob("*.npy"))
    jpgs = sorted(tmp_path.glob("*.jpg"))
    assert npys and jpgs and len(npys) + len(jpgs) == 8
    for p in npys:
        np.testing.assert_array_equal(np.load(p), make_map(int(p.stem)))
    img = cv2.imread(str(jpgs[0]))
    assert img.shape == (120, 160, 3)
    assert any(ln.startswith(OVERLAY_TOPIC) and "jpeg 160x120" in ln for ln in lines)


def test_listen_timeout_returns():
    t = time.monotonic()
    assert listen("tcp://127.0.0.1:1", count=1, timeout=0.3, out=lambda s: None) == 0
    assert time.monotonic() - t < 3


# --------------------------------------------------------------------------- bad endpoints and messages
def assert_one_line_error(proc: subprocess.CompletedProcess, *words) -> str:
    """Exit 2 and a single `error: ...` line on stderr holding each of ``words``, no traceback."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("error: "), err
    for w in words:
        assert w in err, (w, err)
    return err


def run_cli(*args, timeout=60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def test_ports_out_of_range_and_unknown_hosts_are_refused():
    for bad in ("70000", "0", "tcp://127.0.0.1:70000", "tcp://127.0.0.1:http", "tcp://127.0.0.1", "tcp://[::1]"):
        with pytest.raises(ValueError, match="port|HOST:PORT"):
            normalize_endpoint(bad)
    assert normalize_endpoint("65535") == "tcp://127.0.0.1:65535"
    with pytest.raises(ValueError, match="cannot resolve host 'no-such-host.invalid'"):
        check_endpoint("tcp://no-such-host.invalid:5555", bind=True)
    with pytest.raises(ValueError, match="for binding"):
        check_endpoint("tcp://*:5555", bind=False)
    nic = socket.if_nameindex()[0][1]  # ZeroMQ binds to an interface by name too
    for ok in ("tcp://*:5555", "tcp://localhost:5555", "tcp://[::1]:5555", f"tcp://{nic}:5555", "ipc:///tmp/hf"):
        assert check_endpoint(ok, bind=True) == ok
    with pytest.raises(HearflowError, match=r"--sink 'zmq:70000': port 70000 is out of range \(1..65535\)"):
        parse_sinks("overlay,zmq:70000")
    # a sink built without parse_sinks still names the host when the bind fails
    with pytest.raises(HearflowError, match="cannot bind: no interface or resolvable host 'no-such-host.invalid'"):
        SinkRunner(ZmqSink("tcp://no-such-host.invalid:5555")).start(StreamInfo())


@pytest.mark.parametrize("sink, words", [
    ("zmq:70000", ["zmq:70000", "port 70000 is out of range (1..65535)"]),
    ("zmq:tcp://no-such-host.invalid:5555", ["cannot resolve host 'no-such-host.invalid'"]),
])
def test_run_rejects_bad_zmq_sink_before_loading_the_model(tmp_path, sink, words):
    # the model does not exist: the error must be the sink's, found first
    proc = run_cli("-m", "hearflow.cli", "run", "--model", str(tmp_path / "no-model"), "--video", "synth",
                   "--sink", sink, "--no-status")
    err = assert_one_line_error(proc, *words)
    assert "no-model" not in err


@pytest.mark.parametrize("entry", [["-m", "hearflow.cli", "listen"], ["-m", "hearflow.engine.wire"]])
@pytest.mark.parametrize("endpoint, words", [
    ("bogus", ["not a ZeroMQ endpoint: 'bogus'"]),
    ("99999", ["port 99999 is out of range"]),
    ("tcp://no-such-host.invalid:5555", ["cannot resolve host 'no-such-host.invalid'"]),
])
def test_listen_bad_endpoint_is_one_line(entry, endpoint, words):
    assert_one_line_error(run_cli(*entry, endpoint, "--timeout", "5"), *words)


def test_listen_says_it_is_waiting():
    with socket.socket() as s:  # a port nobody publishes on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_cli("-m", "hearflow.cli", "listen", str(port), "--timeout", "0.5")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.splitlines()
    assert err[0] == f"waiting for messages on tcp://127.0.0.1:{port} (topics {HEATMAP_TOPIC}, {STATUS_TOPIC})", err
    assert "no messages" in err[-1] and proc.stdout.strip() == "0 messages"


def test_listen_reports_rejected_messages_apart_from_gaps():
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)  # XPUB: learn when the subscriber is there, so nothing is lost joining
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    lines: list[str] = []
    stats: dict = {}
    box: list[int] = []
    th = threading.Thread(target=lambda: box.append(listen(
        f"tcp://127.0.0.1:{port}", count=4, timeout=20, out=lines.append, stats=stats)))
    th.start()
    try:
        assert pub.poll(10000), "no subscription arrived"
        pub.recv()

        def good(seq):
            return encode_message(make_result(seq))

        short = good(1)
        short[2] = short[2][:-4]  # a payload one float short: rejected, but its seq is readable
        garbage = [HEATMAP_TOPIC.encode(), b"{not json", b"x"]  # seq unreadable: stands for seq 3
        for parts in (good(0), short, good(2), garbage, good(4), good(7)):
            pub.send_multipart(parts)
        th.join(20)
    finally:
        pub.close(linger=0)
        ctx.term()
    assert box == [4]
    assert stats == {"received": 4, "rejected": 2, "missed": 2, "status": 0}
    rejected = [ln for ln in lines if ln.startswith("rejected message")]
    gaps = [ln for ln in lines if "gap" in ln]
    assert len(rejected) == 2 and rejected[0].startswith("rejected message seq 1: payload is"), rejected
    assert gaps == [f"{HEATMAP_TOPIC} gap: 2 message(s) missed"], lines  # 5 and 6, not the rejected 1 and 3
