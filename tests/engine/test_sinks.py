"""Sink runner (queues, failures, shutdown), the JSONL / video / overlay sinks, --sink parsing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from hearflow.engine import draw
from hearflow.engine.packets import AudioChunk, Result
from hearflow.engine.sinks import (
    JsonlSink,
    OverlaySink,
    Sink,
    SinkRunner,
    StreamInfo,
    VideoSink,
    parse_sinks,
)
from hearflow.engine.sinks.zmq import ZmqSink
from hearflow.errors import HearflowError

ROOT = Path(__file__).resolve().parents[2]
W, H, FPS, SR = 160, 120, 25, 22050


def make_result(seq: int, t_media: float | None = None, rgb: bool = False, confidence: float = 0.8) -> Result:
    t = time.monotonic()
    frame = None
    if rgb:
        frame = np.zeros((H, W, 3), np.uint8)
        frame[..., 1] = (seq * 7) % 256
    return Result(
        seq=seq, capture_seq=seq, t_capture=t - 0.02, t_media=seq / FPS if t_media is None else t_media,
        t_result=t - 0.01, map=np.linspace(-1, 1, 49, dtype=np.float32).reshape(7, 7), peak=(0.9, 0.9),
        peak_value=1.0, confidence=confidence, audio_rms_db=-20.0, warming_up=False, frame_size=(W, H), rgb=frame,
    )


class Recorder(Sink):
    """Records what it gets; sleeps per write; raises at write number ``fail_at``."""

    wants_audio = True

    def __init__(self, name="rec", delay=0.0, fail_at=None):
        self.name, self.delay, self.fail_at = name, delay, fail_at
        self.items, self.opened, self.closes = [], 0, 0

    def open(self, info):
        self.opened += 1

    def write(self, result):
        if self.fail_at is not None and len(self.items) == self.fail_at:
            raise OSError(28, "No space left on device")
        time.sleep(self.delay)
        self.items.append(result.seq)

    def write_audio(self, chunk):
        self.items.append(("audio", chunk.t_media))

    def close(self):
        self.closes += 1


def start(sink, **kwargs) -> SinkRunner:
    runner = SinkRunner(sink, **kwargs)
    runner.start(StreamInfo(fps=FPS, frame_size=(W, H), audio_rate=SR))
    return runner


# --------------------------------------------------------------------------- runner
def test_realtime_drops_oldest_and_never_blocks():
    sink = Recorder(delay=0.03)
    runner = start(sink, queue_size=4)
    worst = 0.0
    for k in range(40):
        t = time.perf_counter()
        runner.put_result(make_result(k))
        worst = max(worst, time.perf_counter() - t)
    runner.stop()
    assert worst < 0.02, f"a put took {worst * 1000:.1f} ms"
    assert runner.dropped > 0 and runner.written + runner.dropped == 40
    assert sink.items == sorted(sink.items) and sink.items[-1] == 39, "the newest results survive"
    assert sink.items[-4:] == [36, 37, 38, 39], "stop() drains what is queued"
    assert sink.closes == 1


def test_lossless_blocks_and_drops_nothing():
    sink = Recorder(delay=0.005)
    runner = start(sink, queue_size=2, lossless=True)
    t = time.perf_counter()
    for k in range(30):
        runner.put_result(make_result(k))
    elapsed = time.perf_counter() - t
    runner.stop()
    assert sink.items == list(range(30)) and runner.dropped == 0 and runner.written == 30
    assert elapsed > 0.005 * 25, "puts waited for the sink"


def test_audio_and_results_keep_their_order():
    sink = Recorder()
    runner = start(sink, lossless=True)
    expected = []
    for k in range(5):
        runner.put_audio(AudioChunk(t_capture=0.0, t_media=k * 0.1, samples=np.zeros(10, np.float32), rate=SR))
        runner.put_result(make_result(k))
        expected += [("audio", k * 0.1), k]
    runner.stop()
    assert sink.items == expected


def test_failing_sink_is_logged_once_and_disabled_others_go_on():
    lines = []
    log_lock = threading.Lock()

    def log(line):
        with log_lock:
            lines.append(line)

    bad, good = Recorder("video:full.mp4", fail_at=3), Recorder("jsonl:ok.jsonl")
    bad_runner = start(bad, lossless=True, log=log)
    good_runner = start(good, lossless=True, log=log)
    for k in range(20):
        bad_runner.put_result(make_result(k))  # never raises, never blocks once disabled
        good_runner.put_result(make_result(k))
    bad_runner.stop()
    good_runner.stop()
    assert bad_runner.failed and isinstance(bad_runner.error, OSError)
    assert bad.items == [0, 1, 2] and bad.closes == 1
    assert len(lines) == 1 and "video:full.mp4" in lines[0] and "No space left" in lines[0]
    assert good.items == list(range(20)) and not good_runner.failed


def test_stop_closes_and_is_idempotent_and_reports_publish_times():
    seen = []
    sink = Recorder()
    runner = start(sink, on_published=lambda r, t: seen.append((r.seq, t - r.t_capture)))
    runner.put_result(make_result(0))
    runner.stop()
    runner.stop()
    runner.put_result(make_result(1))  # after stop: ignored
    assert sink.opened == 1 and sink.closes == 1
    assert [s for s, _ in seen] == [0] and seen[0][1] > 0 and runner.last_publish_t is not None


def test_open_failure_raises_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HearflowError, match="cannot write") as e:
        SinkRunner(JsonlSink(blocker / "sub" / "a.jsonl")).start(StreamInfo())
    assert "\n" not in str(e.value) and str(e.value).startswith("jsonl:")
    with pytest.raises(HearflowError, match="cannot write"):
        SinkRunner(VideoSink(blocker / "a.mp4")).start(StreamInfo())


# --------------------------------------------------------------------------- jsonl
def test_jsonl_lines_parse_and_are_flushed(tmp_path):
    path = tmp_path / "out" / "a.jsonl"
    sink = JsonlSink(path)
    runner = start(sink, lossless=True)
    for k in range(5):
        runner.put_result(make_result(k))
    bad = make_result(5)
    bad.map = bad.map.copy()
    bad.map[0, 0] = np.nan
    bad.audio_rms_db = float("-inf")
    runner.put_result(bad)
    while runner.pending or runner.written < 6:
        time.sleep(0.005)
    text = path.read_text()  # before close: every line already on disk
    runner.stop()
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == 6
    fields = {"seq", "capture_seq", "t_capture", "t_media", "t_result", "latency_ms", "peak", "peak_value",
              "confidence", "audio_rms_db", "warming_up", "frame_size", "map"}
    for k, rec in enumerate(records):
        assert fields <= rec.keys() and rec["seq"] == k
        assert rec["frame_size"] == [W, H] and len(rec["map"]) == 7 and len(rec["map"][0]) == 7
        assert rec["latency_ms"] > 0
    assert records[0]["map"][0][1] == round(float(np.float32(-1 + 2 / 48)), 4)
    assert records[5]["map"][0][0] is None and records[5]["audio_rms_db"] is None


# --------------------------------------------------------------------------- video
def tone(seconds: float, freq=440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def write_video(path, audio: np.ndarray, frames, t0=0.0, block=1024, skip_audio=()) -> VideoSink:
    """Feed results and audio blocks interleaved by time, as the engine does."""
    sink = VideoSink(path)
    runner = start(sink, lossless=True)
    a = 0
    for k in frames:
        while a < min((k + 1) / FPS * SR, len(audio)):
            if a // block not in skip_audio:
                runner.put_audio(AudioChunk(t_capture=0.0, t_media=t0 + a / SR, samples=audio[a:a + block], rate=SR))
            a += block
        runner.put_result(make_result(k, t_media=t0 + k / FPS, rgb=True))
    runner.stop()
    assert not runner.failed, runner.error
    return sink


def decode(path):
    with av.open(str(path)) as c:
        times = [float(f.time) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
        rate = c.streams.audio[0].rate
    return times, pcm, rate


def dominant_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * SR / len(x))


def test_video_sink_writes_synced_mp4(tmp_path):
    audio = tone(2.0)
    click = int(1.0 * SR)
    audio[click:click + 64] = 1.0  # a click at 1.000 s to check sync
    path = tmp_path / "v" / "out.mp4"
    write_video(path, audio, range(50), t0=7.5)  # a live source: t_media does not start at 0
    times, pcm, rate = decode(path)
    assert rate == SR
    assert len(times) == 50
    np.testing.assert_allclose(times, np.arange(50) / FPS, atol=1e-3)
    assert abs(len(pcm) / SR - 2.0) <= 1024 / SR + 1e-6  # ± one AAC frame
    assert abs(dominant_hz(pcm[4096:4096 + 8192]) - 440) < 5
    found = int(np.argmax(np.abs(pcm[click - 2000:click + 2000]) > 0.8)) + click - 2000
    assert abs(found - click) < 0.005 * SR, f"click at {found / SR:.4f} s, expected 1.0 s"


def test_video_sink_dropped_frames_and_audio_stay_in_sync(tmp_path):
    audio = tone(2.0)
    click = int(1.5 * SR)
    audio[click:click + 64] = 1.0
    frames = [k for k in range(50) if k % 3 != 1]  # realtime dropped frames: variable frame rate
    path = tmp_path / "vfr.mp4"
    write_video(path, audio, frames, skip_audio={5, 6, 20})  # lost audio blocks become silence
    times, pcm, _ = decode(path)
    np.testing.assert_allclose(times, np.array(frames) / FPS, atol=1e-3)
    assert abs(len(pcm) / SR - 2.0) <= 1024 / SR + 1e-6
    assert np.abs(pcm[5 * 1024 + 300:7 * 1024 - 300]).max() < 0.05, "a gap is silence"
    found = int(np.argmax(np.abs(pcm[click - 2000:click + 2000]) > 0.8)) + click - 2000
    assert abs(found - click) < 0.005 * SR


def test_video_sink_audio_before_first_frame_sets_origin(tmp_path):
    # inference warm-up: the first result is for t_media 0.4 while audio starts at 0
    path = tmp_path / "late.mp4"
    sink = write_video(path, tone(2.0), range(10, 50))
    assert sink.time_origin == 0.0
    times, pcm, _ = decode(path)
    np.testing.assert_allclose(times, np.arange(10, 50) / FPS, atol=1e-3)
    assert abs(len(pcm) / SR - 2.0) <= 1024 / SR + 1e-6


def test_video_sink_stopped_early_still_plays(tmp_path):
    path = tmp_path / "half.mp4"
    write_video(path, tone(2.0), range(25))  # close() after half of the clip
    times, pcm, _ = decode(path)
    assert len(times) == 25
    assert abs(len(pcm) / SR - 1.0) <= 1024 / SR + 1e-6
    with av.open(str(path)) as c:  # the overlay was drawn: heatmap colours, not the plain green frame
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert frame[..., 0].mean() > 20 or frame[..., 2].mean() > 20


def test_video_sink_without_audio(tmp_path):
    sink = VideoSink(tmp_path / "mute.mp4")
    runner = SinkRunner(sink, lossless=True)
    runner.start(StreamInfo(fps=FPS, frame_size=(W, H), audio_rate=None))
    for k in range(5):
        runner.put_result(make_result(k, rgb=True))
    runner.stop()
    with av.open(str(tmp_path / "mute.mp4")) as c:
        assert not c.streams.audio and len(list(c.decode(video=0))) == 5


def test_video_sink_with_no_frame_leaves_no_file(tmp_path):
    path = tmp_path / "none.mp4"
    runner = start(VideoSink(path))
    runner.put_audio(AudioChunk(t_capture=0.0, t_media=0.0, samples=tone(0.1), rate=SR))
    runner.stop()
    assert not path.exists() and not runner.failed


# --------------------------------------------------------------------------- drawing
def test_draw_overlay_scales_with_confidence():
    rgb = np.full((H, W, 3), 90, np.uint8)
    heat = np.zeros((7, 7), np.float32)
    heat[1, 5] = 1.0
    quiet = draw.overlay(rgb, heat, None, (), confidence=0.0)
    np.testing.assert_array_equal(quiet, rgb)  # silence leaves the frame untouched
    loud = draw.overlay(rgb, heat, (5.5 / 7, 1.5 / 7), ["conf 1.00"], confidence=1.0)
    assert loud.shape == rgb.shape and loud.dtype == np.uint8 and rgb.max() == 90  # input untouched
    # JET: red at the map's maximum (RGB order), blue where it is flat
    hot = loud[int(1.5 / 7 * H) + 8, int(5.5 / 7 * W) + 8]
    cold = loud[int(5.5 / 7 * H), int(1.5 / 7 * W)]
    assert hot[0] > hot[2] and cold[2] > cold[0]
    bgr = draw.overlay(rgb, heat, None, (), confidence=1.0, order="bgr")
    assert bgr[int(5.5 / 7 * H), int(1.5 / 7 * W)][0] > bgr[int(5.5 / 7 * H), int(1.5 / 7 * W)][2]


# --------------------------------------------------------------------------- overlay
def test_overlay_without_display_fails_at_open(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("display detection is for Linux")
    with pytest.raises(HearflowError, match="needs a display.*video:out.mp4") as e:
        SinkRunner(OverlaySink()).start(StreamInfo())
    assert "\n" not in str(e.value)


OVERLAY_SCRIPT = textwrap.dedent("""
    import time, numpy as np
    from hearflow.engine.packets import Result
    from hearflow.engine.sinks import OverlaySink, SinkRunner, StreamInfo
    info = StreamInfo(fps=25, frame_size=(160, 120))
    sink = OverlaySink()
    runner = SinkRunner(sink)
    runner.start(info)
    print("opened", flush=True)
    k, end = 0, time.monotonic() + float(__import__("sys").argv[1])
    while not info.stop.is_set() and time.monotonic() < end:
        t = time.monotonic()
        runner.put_result(Result(seq=k, capture_seq=k, t_capture=t, t_media=k / 25, t_result=t,
            map=np.eye(7, dtype=np.float32), peak=(0.5, 0.5), peak_value=0.3, confidence=0.7,
            audio_rms_db=-20.0, warming_up=False, frame_size=(160, 120), rgb=np.zeros((120, 160, 3), np.uint8)))
        k += 1
        time.sleep(0.02)
    runner.stop()
    print("shown", sink.shown, "stopped", info.stop.is_set(), "failed", runner.failed, flush=True)
""")


@pytest.fixture
def xvfb():
    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb not installed")
    proc = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    display = ":" + proc.stdout.readline().strip()
    yield display
    proc.terminate()
    proc.wait(10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Xvfb")
def test_overlay_window_on_xvfb_and_q_stops(xvfb):
    env = dict(os.environ, DISPLAY=xvfb, PYTHONPATH=str(ROOT))
    seconds = "1.0" if not shutil.which("xdotool") else "15"
    p = subprocess.Popen([sys.executable, "-c", OVERLAY_SCRIPT, seconds], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "opened"
        if shutil.which("xdotool"):  # press q in the window: the run must stop
            subprocess.run(["xdotool", "search", "--sync", "--name", "^hearflow$", "windowfocus", "--sync",
                            "key", "q"], env=env, timeout=10, capture_output=True)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    words = out.split()
    assert int(words[1]) > 0 and words[5] == "False", out
    if shutil.which("xdotool"):
        assert words[3] == "True", "q must set StreamInfo.stop"


# --------------------------------------------------------------------------- parsing
def test_parse_sinks():
    sinks = parse_sinks("overlay, video:out/a.mp4,zmq:tcp://127.0.0.1:5555,jsonl:out/a.jsonl", zmq_overlay=True,
                        frame_id="head")
    assert [type(s) for s in sinks] == [OverlaySink, VideoSink, ZmqSink, JsonlSink]
    assert [s.name for s in sinks] == ["overlay", "video:out/a.mp4", "zmq:tcp://127.0.0.1:5555", "jsonl:out/a.jsonl"]
    assert sinks[2].overlay and sinks[2].wants_frames and sinks[2].frame_id == "head"
    assert parse_sinks("zmq")[0].endpoint == "tcp://127.0.0.1:5555"
    assert parse_sinks("zmq:6000")[0].endpoint == "tcp://127.0.0.1:6000"
    assert parse_sinks("zmq:tcp://*:5555")[0].endpoint == "tcp://*:5555"
    assert not parse_sinks("zmq")[0].wants_frames
    assert [s.wants_audio for s in parse_sinks("video:a.mkv,jsonl:b.jsonl")] == [True, False]


@pytest.mark.parametrize("spec, match", [
    ("", "no sink"),
    ("speaker", "unknown sink 'speaker'"),
    ("video", "give the output file"),
    ("video:", "give the output file"),
    ("jsonl", "give the output file"),
    ("video:out.avi", "must end in"),
    ("overlay:big", "takes no argument"),
    ("zmq:localhost:5555", "not a ZeroMQ endpoint"),
    ("jsonl:a.jsonl,jsonl:a.jsonl", "given twice"),
    ("overlay,overlay", "given twice"),
])
def test_parse_sinks_errors(spec, match):
    with pytest.raises(HearflowError, match=match) as e:
        parse_sinks(spec)
    assert "\n" not in str(e.value)


def test_video_sink_to_mkv_keeps_the_recording_as_is(tmp_path):
    path = tmp_path / "out.mkv"
    write_video(path, tone(1.0), range(25))
    assert not (tmp_path / "out.mkv.partial.mkv").exists()
    with av.open(str(path)) as c:
        assert c.streams.audio[0].codec_context.name == "pcm_s16le"  # renamed, not re-encoded
    times, pcm, _ = decode(path)
    assert len(times) == 25 and abs(len(pcm) / SR - 1.0) < 1e-3


def test_video_sink_that_cannot_finish_fails_and_keeps_the_recording(tmp_path):
    path = tmp_path / "out.mp4"
    lines = []
    runner = SinkRunner(VideoSink(path), lossless=True, log=lines.append)
    runner.start(StreamInfo(fps=FPS, frame_size=(W, H), audio_rate=SR))
    for k in range(10):
        runner.put_result(make_result(k, rgb=True))
    path.mkdir()  # something in the way of the final file: the remux cannot write it
    runner.stop()
    assert runner.failed and runner.report()["failed"]
    assert "could not write" in runner.report()["error"] and "kept in" in runner.report()["error"]
    assert any("failed while closing" in line for line in lines)
    with av.open(str(tmp_path / "out.mp4.partial.mkv")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 10


def test_video_sink_never_overwrites_a_crashed_recording(tmp_path):
    path = tmp_path / "out.mp4"
    (tmp_path / "out.mp4.partial.mkv").write_bytes(b"an earlier run's recording")
    lines = []
    runner = SinkRunner(VideoSink(path), lossless=True)
    runner.start(StreamInfo(fps=FPS, frame_size=(W, H), audio_rate=SR, log=lines.append))
    runner.stop()
    kept = list(tmp_path.glob("out.mp4.crashed-*.mkv"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"an earlier run's recording"
    assert any(str(kept[0]) in line for line in lines)
