"""The streaming engine end to end: real files, real sinks, real subprocesses."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import av
import numpy as np
import pytest
import torch

from hearflow.cli import main
from hearflow.runtime.backends import TorchBackend
from hearflow.engine.pipeline import Engine, EngineConfig, map_peak
from hearflow.engine.run import RunOptions, run_engine
from hearflow.engine.sinks import JsonlSink
from hearflow.engine.sources import open_sources
from hearflow.media.encode import write_clip
from hearflow.media.preprocess import PreprocessConfig
from hearflow.media.synth import SynthConfig, render_clip, sample_spec
from hearflow.model import ModelConfig, create_model
from hearflow.model.checkpoint import save_checkpoint
from hearflow.runtime.confidence import confidence

PRE = PreprocessConfig(image_size=64, audio_window="trailing")
ONSET = 2.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model")
    save_checkpoint(path, create_model(ModelConfig(backbone="resnet18_w16")), PRE)
    return path


@pytest.fixture(scope="module")
def onset_clip(tmp_path_factory):
    """A 4 s synthetic clip (128 px, 25 fps) whose sound starts at 2.0 s."""
    spec = sample_spec(SynthConfig(width=128, height=128, duration=4.0, sound_onset=ONSET),
                       np.random.default_rng(5), negative=None)
    frames, audio, _ = render_clip(spec)
    path = tmp_path_factory.mktemp("clip") / "onset.mp4"
    write_clip(path, frames, 25, audio, 22050)
    return path


def read_jsonl(path):
    return [json.loads(line) for line in open(path)]


def test_offline_file_every_frame_in_order_and_audio_by_timestamp(model_dir, onset_clip, tmp_path):
    summary = run_engine(RunOptions(model_dir, str(onset_clip), "same", f"jsonl:{tmp_path}/r.jsonl,video:{tmp_path}/a.mp4",
                                    realtime=False, status=False))
    assert summary["captured"] == summary["processed"] == 100
    assert summary["dropped"]["before_inference"] == 0
    rows = read_jsonl(tmp_path / "r.jsonl")
    t = np.array([r["t_media"] for r in rows])
    assert len(rows) == 100 and np.all(np.diff(t) > 0)
    assert np.allclose(t, np.arange(100) / 25, atol=1e-3)
    assert [r["seq"] for r in rows] == list(range(100))
    # the trailing window sees the sound only once the frame time passes the onset
    level = np.array([r["audio_rms_db"] for r in rows])
    # (noise floor ≈ -50 dB; the sound's RMS is 0.1, so 30 ms of it in a 3 s window is -40 dB;
    # the audio is re-embedded every 0.1 s hop)
    assert np.all(level[t < ONSET] < -45)
    first_loud = t[level > -40].min()
    assert ONSET < first_loud <= ONSET + 0.2
    # warming up while fewer than 3 s of audio exist
    assert all(r["warming_up"] for r in rows if r["t_media"] < 2.9)
    assert not any(r["warming_up"] for r in rows if r["t_media"] > 3.1)
    # the annotated video decodes, with the audio back in at the right length
    with av.open(str(tmp_path / "a.mp4")) as c:
        n_video = sum(1 for _ in c.decode(video=0))
    with av.open(str(tmp_path / "a.mp4")) as c:
        n_audio = sum(f.samples for f in c.decode(audio=0))
        rate = c.streams.audio[0].rate
    assert n_video == 100
    assert n_audio / rate == pytest.approx(4.0, abs=0.05)


class SlowBackend:
    """A real backend made slow, to see the paced engine drop frames instead of lagging."""

    def __init__(self, inner, delay):
        self.inner, self.delay = inner, delay
        self.name, self.preprocess, self.uses_flow = "slow", inner.preprocess, inner.uses_flow
        self.source, self.model_config = inner.source, inner.model_config

    def embed_audio(self, x):
        return self.inner.embed_audio(x)

    def localize(self, *a):
        time.sleep(self.delay)
        return self.inner.localize(*a)


def test_paced_file_drops_frames_instead_of_lagging(model_dir, onset_clip, tmp_path):
    backend = SlowBackend(TorchBackend(model_dir), delay=0.12)
    video, audio = open_sources(str(onset_clip), "same", backend.preprocess, realtime=True)
    engine = Engine(backend, video, audio, [JsonlSink(tmp_path / "r.jsonl")], EngineConfig(), realtime=True)
    t0 = time.monotonic()
    summary = engine.run()
    elapsed = time.monotonic() - t0
    video.close()
    assert summary["captured"] == 100
    assert summary["dropped"]["before_inference"] > 30
    assert summary["processed"] < 70
    assert elapsed < 4.0 + 1.5  # kept pace with the 4 s source
    rows = read_jsonl(tmp_path / "r.jsonl")
    lag = [r["t_result"] - r["t_capture"] for r in rows]
    assert np.median(lag) < 0.5  # results stay fresh: no backlog builds up
    assert all(b["capture_seq"] > a["capture_seq"] for a, b in zip(rows, rows[1:]))


def test_no_audio_gives_zero_confidence(model_dir, onset_clip, tmp_path):
    summary = run_engine(RunOptions(model_dir, str(onset_clip), "none", f"jsonl:{tmp_path}/r.jsonl", realtime=False,
                                    duration=1.0, status=False))
    rows = read_jsonl(tmp_path / "r.jsonl")
    assert summary["processed"] == 25 and all(r["confidence"] == 0 for r in rows)


def test_confidence_and_peak():
    cfg = EngineConfig()
    assert confidence(0.9, -20, cfg) > 0.9
    assert confidence(0.9, -90, cfg) < 0.01  # silence closes the gate whatever the map says
    assert confidence(0.0, -20, cfg) < 0.01
    m = np.zeros((7, 7), np.float32)
    m[1, 5] = 0.8
    assert map_peak(m) == ((5.5 / 7, 1.5 / 7), pytest.approx(0.8))


def test_zmq_to_a_real_subscriber_process(model_dir, onset_clip, tmp_path):
    port = 5000 + os.getpid() % 1000
    sub = subprocess.Popen(
        [sys.executable, "-m", "hearflow.cli", "listen", f"tcp://127.0.0.1:{port}", "--count", "20",
         "--timeout", "60", "--save", str(tmp_path / "maps")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(1.5)  # let the subscriber connect before the publisher starts
    summary = run_engine(RunOptions(model_dir, str(onset_clip), "same", f"zmq:tcp://127.0.0.1:{port}", realtime=True,
                                    status=False))
    out, err = sub.communicate(timeout=60)
    assert sub.returncode == 0, err
    assert summary["sinks"][f"zmq:tcp://127.0.0.1:{port}"]["written"] == summary["processed"]
    saved = sorted((tmp_path / "maps").glob("*.npy"))
    assert len(saved) == 20
    assert np.load(saved[0]).shape == (2, 2)  # 64 px input → 2×2 map
    assert "20 messages" in out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_finalises_files(model_dir, tmp_path, sig):
    proc = subprocess.Popen(
        [sys.executable, "-m", "hearflow.cli", "run", "--model", str(model_dir), "--video", "synth",
         "--audio", "synth", "--sink", f"video:{tmp_path}/live.mp4,jsonl:{tmp_path}/live.jsonl",
         "--summary", str(tmp_path / "summary.json"), "--no-status"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (tmp_path / "live.jsonl").exists() and len(open(tmp_path / "live.jsonl").readlines()) >= 20:
            break
        time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    # Ctrl-C is an interruption (130, as shells report it); SIGTERM a requested stop (0)
    assert proc.returncode == (130 if sig == signal.SIGINT else 0), err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] and summary["processed"] >= 20
    assert summary["stopped_by"] == sig.name and json.loads(out)["stopped_by"] == sig.name
    assert not (tmp_path / "live.mp4.partial.mkv").exists(), "finished: the partial recording is gone"
    rows = read_jsonl(tmp_path / "live.jsonl")
    with av.open(str(tmp_path / "live.mp4")) as c:
        frames = sum(1 for _ in c.decode(video=0))
    # each sink drops independently when it falls behind (realtime), so compare each with its own count
    assert frames == summary["sinks"][f"video:{tmp_path}/live.mp4"]["written"] >= 15
    assert len(rows) == summary["sinks"][f"jsonl:{tmp_path}/live.jsonl"]["written"] >= 20
    assert "Traceback" not in err


def test_bad_input_is_one_line(model_dir, onset_clip, tmp_path, capsys):
    silent = tmp_path / "silent.mp4"
    write_clip(silent, np.zeros((10, 64, 64, 3), np.uint8), 25)
    cases = [
        (["--video", "ftp:/x", "--audio", "none"], "video"),
        (["--video", str(silent), "--audio", "same", "--sink", f"jsonl:{tmp_path}/x.jsonl"], "no audio"),
        (["--video", str(onset_clip), "--sink", "printer"], "sink"),
    ]
    for extra, needle in cases:
        rc = main(["run", "--model", str(model_dir), "--no-status"] + extra)
        err = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and needle in lines[0].lower(), err
    rc = main(["run", "--model", str(tmp_path / "nope"), "--video", str(onset_clip), "--no-status"])
    assert rc == 2 and "model not found" in capsys.readouterr().err


def test_gstreamer_test_sources(model_dir, tmp_path):
    from hearflow.engine.sources.gstreamer import import_gst

    try:
        import_gst()
    except Exception as exc:
        pytest.skip(f"GStreamer not available ({exc}); apt install python3-gst-1.0")
    video = ("gst:videotestsrc num-buffers=40 pattern=ball ! video/x-raw,width=96,height=96,framerate=20/1 "
             "! videoconvert ! video/x-raw,format=RGB ! appsink name=sink")
    audio = ("gst:audiotestsrc wave=sine freq=440 ! audioconvert ! audioresample "
             "! audio/x-raw,format=F32LE,channels=1,rate=22050 ! appsink name=sink")
    summary = run_engine(RunOptions(model_dir, video, audio, f"jsonl:{tmp_path}/g.jsonl", realtime=True, status=False))
    rows = read_jsonl(tmp_path / "g.jsonl")
    assert summary["processed"] == len(rows) >= 10
    assert rows[-1]["audio_rms_db"] > -30  # the sine reached the ring
    assert rows[0]["frame_size"] == [96, 96]


GST_THEN_CXX = """
import numpy
from hearflow.engine.sources.gstreamer import import_gst
from hearflow.errors import MissingDependency
try:
    import_gst()
except MissingDependency as exc:
    print("skip", exc)
    raise SystemExit(0)
import cv2, av, torch, onnx.defs, onnxruntime
caught = []
for name, f in [("cv2", lambda: cv2.resize(None, (2, 2))), ("av", lambda: av.open("/nonexistent")),
                ("torch", lambda: torch.zeros(-1)), ("onnx", lambda: onnx.defs.get_schema("NoSuchOp", 18, "")),
                ("onnxruntime", lambda: onnxruntime.InferenceSession(b"not a model"))]:
    try:
        f()
    except Exception:
        caught.append(name)
print("caught", ",".join(caught))
"""


def test_cxx_exceptions_still_work_after_gstreamer_started():
    # a fresh process: here torch & co. are already loaded, which hides the problem
    proc = subprocess.run([sys.executable, "-c", GST_THEN_CXX], capture_output=True, text=True, timeout=120)
    if proc.stdout.startswith("skip"):
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.strip() == "caught cv2,av,torch,onnx,onnxruntime"


def test_bench_engine_offline_counts_every_frame(model_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "engine", str(model_dir), "--no-realtime", "--seconds", "2", "--fps", "15",
               "--threads", "1", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    s = json.loads(out.read_text())
    assert s["captured"] == s["processed"] == 30 and s["dropped"]["before_inference"] == 0
    assert s["threads"] == 1 and s["backend"] == "torch" and not s["realtime"]
    assert s["source"]["size"] == [640, 480] and s["latency_ms"]["capture_to_published_p99"] > 0
    assert "processed 30, dropped 0" in text and "(fp32, 1 threads), offline" in text


def test_engine_log_lines_from_many_threads_never_interleave(monkeypatch):
    from hearflow.engine.log import stderr_log

    class SlowStream:
        """stderr that hands the GIL to other threads inside every write, so without the
        lock a line's text and its newline would be split by other threads' writes."""

        def __init__(self):
            self.parts = []

        def write(self, text):
            self.parts.append(text)
            time.sleep(0)
            return len(text)

        def flush(self):
            time.sleep(0)

    stream = SlowStream()
    monkeypatch.setattr(sys, "stderr", stream)
    n_threads, n_lines = 8, 300
    start = threading.Barrier(n_threads)

    def writer(k):
        start.wait()
        for i in range(n_lines):
            stderr_log(f"thread {k} line {i} " + "x" * (i % 50))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    lines = "".join(stream.parts).split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == n_threads * n_lines
    for line in lines:
        m = re.fullmatch(r"thread (\d+) line (\d+) x*", line)
        assert m, f"a line split by another thread's: {line!r}"
        k, i = map(int, m.groups())
        assert line == f"thread {k} line {i} " + "x" * (i % 50)
    for k in range(n_threads):  # each thread's lines whole and in its own order
        assert [int(line.split()[3]) for line in lines if line.startswith(f"thread {k} ")] == list(range(n_lines))
