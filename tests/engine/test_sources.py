"""Engine sources with real parts: PyAV files, OpenCV, PortAudio through ALSA, GStreamer.

Only hardware that cannot exist here is faked: the camera (a cv2.VideoCapture-like
object injected at the device boundary). The microphone goes through the real
sounddevice → PortAudio → ALSA path, with ALSA's ``file`` plugin as the capture device.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from hearflow.engine.mailbox import Mailbox
from hearflow.engine.ring import AudioRing
from hearflow.engine.sources import CameraSource
from hearflow.engine.sources import (
    AudioFileSource,
    CaptureContext,
    FileSource,
    SynthVideoSource,
    open_sources,
    parse_audio_spec,
    parse_video_spec,
)
from hearflow.errors import HearflowError, MissingDependency
from hearflow.media.encode import write_clip
from hearflow.media.preprocess import PreprocessConfig

CFG = PreprocessConfig(image_size=32)
FPS = 25
SECONDS = 2.0
FILE_RATE = 44100  # resampled to the engine's 22050 by the source
ONSET = 0.8  # the tone starts here


def make_ctx(source_rate=None, realtime=False, **kw):
    ring = AudioRing(source_rate) if source_rate else None
    logs = []
    ctx = CaptureContext(
        clock0=time.monotonic(), preprocess=CFG, mailbox=Mailbox(lossless=not realtime), ring=ring,
        realtime=realtime, log=logs.append, **kw,
    )
    return ctx, logs


def run_and_collect(source, ctx, consume_delay=0.0, timeout=20.0):
    """Run source.run(ctx) in a thread and take every packet until it ends."""
    th = threading.Thread(target=source.run, args=(ctx,), daemon=True)
    th.start()
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pkt = ctx.mailbox.get(timeout=0.05)
        if pkt is None:
            if not th.is_alive() and ctx.mailbox.empty():
                break
            continue
        got.append((time.monotonic(), pkt))
        if consume_delay:
            time.sleep(consume_delay)
    ctx.stop.set()
    th.join(5)
    assert not th.is_alive()
    return got


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """64×64, 25 fps, 2 s H.264 + AAC; frame i has brightness 4·i; a 440 Hz tone from 0.8 s."""
    path = tmp_path_factory.mktemp("src") / "tone.mp4"
    n = int(SECONDS * FPS)
    frames = np.zeros((n, 64, 64, 3), np.uint8)
    for i in range(n):
        frames[i] = 4 * i
        frames[i, 8:24, 8 + i : 24 + i] = 255  # a moving square: something for the flow
    t = np.arange(int(SECONDS * FILE_RATE)) / FILE_RATE
    audio = np.where(t >= ONSET, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    write_clip(path, frames, fps=FPS, audio=audio, sample_rate=FILE_RATE)
    return path


@pytest.fixture(scope="module")
def silent_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "noaudio.mp4"
    write_clip(path, np.zeros((5, 64, 64, 3), np.uint8), fps=FPS)
    return path


def onset_time(x, rate, threshold=0.1):
    return np.flatnonzero(np.abs(x) > threshold)[0] / rate


# --------------------------------------------------------------------------- files
def test_file_offline_delivers_every_frame_with_audio_in_sync(clip):
    video, audio = open_sources(str(clip), "same", CFG, realtime=False)
    assert audio is video and video.fps == FPS and video.size == (64, 64) and video.rate == 22050
    chunks = []
    ctx, _ = make_ctx(video.rate, realtime=False, audio_taps=[chunks.append])
    got = [p for _, p in run_and_collect(video, ctx)]

    assert len(got) == SECONDS * FPS and ctx.mailbox.dropped == 0 and ctx.counters.frames == len(got)
    assert [p.seq for p in got] == list(range(len(got)))
    np.testing.assert_allclose([p.t_media for p in got], np.arange(len(got)) / FPS, atol=1e-6)
    assert all(b.t_capture >= a.t_capture for a, b in zip(got, got[1:]))
    for i, p in enumerate(got):
        assert p.rgb.shape == (64, 64, 3) and p.frame.shape == (32, 32, 3) and p.gray.shape == (32, 32)
        assert abs(int(p.rgb[60, 60, 0]) - 4 * i) <= 3  # the frame for this time, in order
        assert p.prev_gray is (got[i - 1].gray if i else None)  # the previous *captured* frame
        assert p.fps == FPS

    ring = ctx.ring
    assert ring.start_time == 0.0 and ring.end_time == pytest.approx(SECONDS, abs=0.01)
    wave, k = ring.window(ring.end_time, ring.capacity)
    assert k == ring.written == ctx.counters.audio_samples
    # the tone starts at 0.8 s, within one AAC frame (1024 samples at 44.1 kHz)
    assert onset_time(wave, ring.rate) == pytest.approx(ONSET, abs=1024 / FILE_RATE)
    # the taps saw the same stream, contiguous and on the same timeline
    assert sum(len(c.samples) for c in chunks) == k
    for a, b in zip(chunks, chunks[1:]):
        assert b.t_media == pytest.approx(a.t_media + len(a.samples) / a.rate, abs=1e-6)
    # the whole track for centred windows is the same audio
    full, rate = video.full_audio
    assert rate == ring.rate
    np.testing.assert_allclose(full[:k], wave, atol=1e-6)


def test_file_realtime_drops_frames_for_a_slow_consumer_instead_of_lagging(clip):
    video, _ = open_sources(str(clip), "none", CFG, realtime=True)
    assert video.full_audio is None
    ctx, _ = make_ctx(None, realtime=True, duration=1.2)
    got = run_and_collect(video, ctx, consume_delay=0.1)  # 10 fps consumer, 25 fps source
    frames = [p for _, p in got]
    assert ctx.mailbox.dropped > 0 and len(frames) < 0.8 * ctx.counters.frames
    assert max(p.t_media for p in frames) < 1.2
    for t_taken, p in got:
        assert p.t_capture == pytest.approx(ctx.clock0 + p.t_media, abs=1e-9)  # paced like a camera
        assert t_taken - p.t_capture < 0.1 + 0.1  # always a recent frame, never a backlog
    assert any(p.seq != q.seq + 1 for p, q in zip(frames[1:], frames))  # gaps: frames skipped


def test_audio_file_realtime_paced_and_offline_whole(clip):
    src = AudioFileSource(str(clip), CFG, realtime=True)
    src.open()
    ctx, _ = make_ctx(src.rate, realtime=True, duration=0.5)
    t0 = time.monotonic()
    src.run(ctx)
    elapsed = time.monotonic() - ctx.clock0
    assert 0.35 < elapsed < 1.5 and time.monotonic() - t0 > 0.3  # paced, not all at once
    assert ctx.ring.end_time == pytest.approx(0.5, abs=0.06)
    assert src.full_audio is None

    off = AudioFileSource(str(clip), CFG, realtime=False)
    off.open()
    ctx, _ = make_ctx(off.rate, realtime=False)
    off.run(ctx)
    wave, rate = off.full_audio
    assert rate == 22050 and len(wave) == ctx.ring.written
    assert onset_time(wave, rate) == pytest.approx(ONSET, abs=1024 / FILE_RATE)


# --------------------------------------------------------------------------- synth
def test_synth_offline_frames_and_audio_match_the_scene():
    video, audio = open_sources("synth:3", "synth", CFG, realtime=False)
    assert audio is video and video.fps == 25 and video.rate == 22050
    ctx, _ = make_ctx(video.rate, realtime=False, duration=1.0)
    got = [p for _, p in run_and_collect(video, ctx)]
    assert len(got) == 25
    np.testing.assert_allclose([p.t_media for p in got], np.arange(25) / 25)
    w, h = video.size
    assert all(p.rgb.shape == (h, w, 3) and p.frame.shape == (32, 32, 3) for p in got)
    np.testing.assert_array_equal(got[7].rgb, video.scene.frame(7))
    # audio written up to the last frame's time, equal to the scene's own sound
    n = int(round(24 / 25 * 22050))
    assert ctx.ring.written == n
    np.testing.assert_array_equal(ctx.ring.latest(n)[0], video.scene.audio(0, n))


def test_synth_realtime_is_paced():
    video = SynthVideoSource(1, CFG, realtime=True, with_audio=False)
    video.open()
    ctx, _ = make_ctx(None, realtime=True, duration=0.4)
    got = run_and_collect(video, ctx)
    assert 6 <= len(got) <= 10  # frames 0..9 (t < 0.4 s); a loaded machine may skip one
    for t_taken, p in got:
        assert p.t_capture == pytest.approx(ctx.clock0 + p.t_media)
        assert t_taken >= p.t_capture - 1e-3


# --------------------------------------------------------------------------- camera (fake)
class FakeWorld:
    """A camera in real time: frame i exists from start + i/fps; it can be unplugged."""

    def __init__(self, fps=50.0, depth=4):
        self.fps, self.depth = fps, depth
        self.start = time.monotonic()
        self.plugged = True
        self.opens = []  # times of open attempts

    def produced(self):
        return int((time.monotonic() - self.start) * self.fps)


class FakeCapture:
    """cv2.VideoCapture stand-in. Like V4L2 it queues up to `depth` frames and hands out
    the oldest queued one, so a reader slower than the camera gets stale frames."""

    def __init__(self, world):
        self.world = world
        self.opened = world.plugged
        self.next = world.produced()

    def isOpened(self):
        return self.opened

    def read(self):
        w = self.world
        if not (self.opened and w.plugged):
            return False, None
        self.next = max(self.next, w.produced() - w.depth)  # older ones were overwritten
        while w.produced() <= self.next:
            time.sleep(0.002)
        i = self.next
        self.next += 1
        bgr = np.zeros((24, 32, 3), np.uint8)
        bgr[0, 0] = (i & 255, (i >> 8) & 255, 0)  # B, G: the frame index
        return True, bgr

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: self.world.fps, cv2.CAP_PROP_FRAME_WIDTH: 32,
                cv2.CAP_PROP_FRAME_HEIGHT: 24}.get(prop, 0.0)

    def set(self, prop, value):
        return False

    def release(self):
        self.opened = False


def frame_index(rgb):
    return int(rgb[0, 0, 2]) + 256 * int(rgb[0, 0, 1])  # RGB: B is the last channel


def test_camera_hands_out_the_newest_frame_to_a_slow_consumer():
    world = FakeWorld(fps=50.0)
    cam = CameraSource(0, CFG, capture_factory=lambda i: FakeCapture(world))
    cam.open()
    assert cam.fps == 50.0 and cam.size == (32, 24)
    ctx, _ = make_ctx(None, realtime=True, duration=0.8)
    lags = []
    th = threading.Thread(target=cam.run, args=(ctx,), daemon=True)
    th.start()
    while th.is_alive():
        pkt = ctx.mailbox.get(timeout=0.05)
        if pkt is None:
            continue
        lags.append(world.produced() - 1 - frame_index(pkt.rgb))
        time.sleep(0.1)  # a consumer at 10 fps
    th.join(2)
    assert len(lags) >= 5 and ctx.mailbox.dropped > 0
    # always (nearly) the newest frame, never the camera's backlog of `depth` frames
    assert np.median(lags) <= 1 and max(lags) <= 8  # a stale reader would lag by ~depth (4)
    assert ctx.counters.frames >= 0.7 * 0.8 * 50


def test_camera_lost_is_retried_with_backoff_and_recovers():
    world = FakeWorld(fps=100.0)
    attempts = []
    fail_first = [2]

    def factory(i):
        attempts.append(time.monotonic())
        cap = FakeCapture(world)  # not opened while unplugged
        if not world.plugged:
            fail_first[0] -= 1
            if fail_first[0] == 0:
                world.plugged = True  # plugged back in after two failed attempts
        return cap

    cam = CameraSource(0, CFG, capture_factory=factory, backoff=(0.05, 1.0))
    cam.open()
    ctx, logs = make_ctx(None, realtime=True)
    th = threading.Thread(target=cam.run, args=(ctx,), daemon=True)
    th.start()
    got = []
    while len(got) < 40:
        pkt = ctx.mailbox.get(timeout=2)
        assert pkt is not None
        got.append(pkt)
        if len(got) == 5:
            world.plugged = False  # unplugged
    ctx.stop.set()
    th.join(2)
    assert not th.is_alive()
    assert any("lost" in m for m in logs) and any("back" in m for m in logs)
    assert ctx.counters.reconnects == 1 and ctx.counters.errors >= 1
    retries = attempts[1:]  # attempts[0] is open()
    assert len(retries) == 3
    gaps = np.diff(retries)
    assert gaps[1] > gaps[0] * 1.4  # 0.05 s, then 0.1 s, then 0.2 s: exponential
    # after the gap the flow is not computed across it, and capture continues
    seqs = [p.seq for p in got]
    assert seqs == sorted(seqs)
    assert sum(p.prev_gray is None for p in got) >= 1


def test_missing_real_camera_is_one_clear_line():
    with pytest.raises(HearflowError) as exc:
        open_sources("63", "none", CFG, realtime=True)
    msg = str(exc.value)
    assert "camera 63" in msg and "not available" in msg and "\n" not in msg


# --------------------------------------------------------------------------- microphone
MIC_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    import numpy as np
    from hearflow.engine.capture import CaptureContext
    from hearflow.engine.mailbox import Mailbox
    from hearflow.engine.ring import AudioRing
    from hearflow.errors import MissingDependency
    from hearflow.media.preprocess import PreprocessConfig
    try:
        from hearflow.engine.sources.microphone import MicSource
        mic = MicSource(None, PreprocessConfig())
        mic.open()
    except MissingDependency as exc:
        print(json.dumps({"skip": str(exc)}))
        sys.exit(0)
    n = int(sys.argv[1])
    ring = AudioRing(mic.rate)
    seen = {}

    def tap(chunk):  # runs in PortAudio's callback, right after the ring write
        seen.setdefault("first", [chunk.t_media, chunk.t_capture, chunk.rate])
        if "head" not in seen and ring.written >= n:
            seen["head"] = ring.window(ring.start_time + n / ring.rate, n)[0].tolist()

    ctx = CaptureContext(clock0=time.monotonic(), preprocess=PreprocessConfig(), mailbox=Mailbox(),
                         ring=ring, audio_taps=[tap], log=lambda m: print(m, file=sys.stderr))
    th = threading.Thread(target=mic.run, args=(ctx,))
    th.start()
    deadline = time.monotonic() + 10
    while "head" not in seen and time.monotonic() < deadline:
        time.sleep(0.05)
    ctx.stop.set()
    th.join(5)
    print(json.dumps({"seen": seen, "written": ring.written, "rate": mic.rate, "alive": th.is_alive(),
                      "counters": ctx.counters.as_dict()}))
    """
)


def test_mic_through_real_portaudio_and_alsa(tmp_path):
    """ALSA's `file` PCM over a `null` slave is the default capture device: it reads its
    `infile` as raw samples, as fast as asked (unpaced). PortAudio opens that PCM in
    float32 (its first choice; the null slave accepts anything), so the raw file holds
    float32 samples, which must come out of the ring bit-exact."""
    n = 40_000
    expected = ((np.arange(n + 5000) % 1000) / 1000 - 0.5).astype("<f4")
    raw = tmp_path / "in.raw"
    expected.tofile(raw)
    (tmp_path / ".asoundrc").write_text(
        'pcm.!default {\n  type file\n  slave.pcm "null"\n  file "/dev/null"\n'
        f'  infile "{raw}"\n  format "raw"\n}}\n'
    )
    env = dict(os.environ, HOME=str(tmp_path))  # ALSA reads ~/.asoundrc when PortAudio starts
    proc = subprocess.run([sys.executable, "-c", MIC_SCRIPT, str(n)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in out:
        pytest.skip(f"{out['skip']} (apt install libportaudio2; pip install 'hearflow[audio]')")
    assert not out["alive"]
    seen = out["seen"]
    assert "head" in seen, out
    np.testing.assert_array_equal(np.asarray(seen["head"], np.float32), expected[:n])
    t_media, t_capture, rate = seen["first"]
    assert rate == out["rate"] == 22050
    assert 0 <= t_media < 5  # seconds since clock0, from PortAudio's ADC time
    assert out["counters"]["audio_samples"] == out["written"] >= n


# --------------------------------------------------------------------------- GStreamer
@pytest.fixture(scope="module")
def gst():
    from hearflow.engine.sources.gstreamer import import_gst

    try:
        return import_gst()
    except MissingDependency as exc:
        pytest.skip(f"{exc} (apt install python3-gst-1.0)")


GST_VIDEO = ("gst:videotestsrc num-buffers=30 ! video/x-raw,width=64,height=48,framerate=30/1 ! videoconvert "
             "! video/x-raw,format=RGB ! appsink name=sink")
GST_AUDIO = ("gst:audiotestsrc num-buffers=20 ! audioconvert ! audioresample "
             "! audio/x-raw,format=F32LE,channels=1,rate=22050 ! appsink")


def test_gst_video_and_audio_offline(gst):
    video, audio = open_sources(GST_VIDEO, GST_AUDIO, CFG, realtime=False)
    assert video.fps == 30 and video.size == (64, 48) and audio.rate == 22050
    ctx, _ = make_ctx(audio.rate, realtime=False)
    ath = threading.Thread(target=audio.run, args=(ctx,))
    ath.start()
    got = [p for _, p in run_and_collect(video, ctx)]
    ath.join(5)
    assert len(got) == 30 and ctx.mailbox.dropped == 0
    t = np.array([p.t_media for p in got])
    assert np.all(np.diff(t) > 0)
    np.testing.assert_allclose(t, np.arange(30) / 30, atol=1e-3)
    assert all(p.rgb.shape == (48, 64, 3) and p.frame.shape == (32, 32, 3) for p in got)
    ring = ctx.ring
    assert ring.written == 20 * 1024  # audiotestsrc: 1024 samples per buffer
    wave, k = ring.latest(ring.written)
    assert 0.5 < np.abs(wave).max() <= 1.0  # the test tone, not silence


def test_gst_video_realtime_maps_timestamps_to_the_engine_clock(gst):
    video, _ = open_sources(GST_VIDEO.replace("num-buffers=30", "num-buffers=12"), "none", CFG, realtime=True)
    ctx, _ = make_ctx(None, realtime=True)
    got = run_and_collect(video, ctx)
    assert len(got) >= 8
    for t_taken, p in got:
        assert p.t_media == pytest.approx(p.t_capture - ctx.clock0)
        assert t_taken - 0.3 <= p.t_capture <= t_taken
    t = [p.t_media for _, p in got]
    assert all(b > a for a, b in zip(t, t[1:]))
    assert t[-1] - t[0] == pytest.approx((got[-1][1].seq - got[0][1].seq) / 30, abs=0.1)  # paced at 30 fps


@pytest.mark.parametrize(
    "spec, words",
    [
        ("gst:nosuchelement ! appsink", "nosuchelement"),
        ("gst:videotestsrc ! fakesink", "appsink"),
        ("gst:audiotestsrc ! appsink", "does not start"),  # audio caps cannot become RGB
    ],
)
def test_gst_errors_are_one_line(gst, spec, words):
    with pytest.raises(HearflowError) as exc:
        open_sources(spec, "none", CFG, realtime=True)
    assert words in str(exc.value) and "\n" not in str(exc.value)


# --------------------------------------------------------------------------- specs
def test_spec_parsing():
    assert parse_video_spec("0") == ("camera", 0)
    assert parse_video_spec("rtsp://cam.local/stream") == ("file", "rtsp://cam.local/stream")
    assert parse_video_spec("https://x/y.mp4") == ("file", "https://x/y.mp4")
    assert parse_video_spec("gst:videotestsrc ! appsink") == ("gst", "videotestsrc ! appsink")
    assert parse_video_spec("synth") == ("synth", 0) and parse_video_spec("synth:5") == ("synth", 5)
    assert parse_audio_spec("mic") == ("mic", None)
    assert parse_audio_spec("mic:2") == ("mic", 2) and parse_audio_spec("mic:USB Audio") == ("mic", "USB Audio")
    assert parse_audio_spec("none") == ("none", None) and parse_audio_spec("same") == ("same", None)
    assert parse_audio_spec("a/b.wav") == ("file", "a/b.wav")


@pytest.mark.parametrize(
    "video, audio, realtime, words",
    [
        ("ftp://host/x.mp4", "none", True, "unknown video source"),
        ("webcam:0", "none", True, "unknown video source"),
        ("synth:abc", "none", True, "integer seed"),
        ("synth", "bogus:1", True, "unknown audio source"),
        ("{missing}", "none", True, "no such file"),
        ("synth", "{missing}", True, "no such file"),
        ("{silent}", "same", True, "no audio stream"),
        ("{silent}", "{silent}", False, "no audio stream"),
        ("0", "same", True, "--audio same needs a video file"),
        ("{clip}", "synth", True, "needs --video synth"),
        ("{clip}", "mic", False, "live"),
        ("0", "none", False, "live"),
    ],
)
def test_spec_errors_are_one_line(tmp_path, clip, silent_clip, video, audio, realtime, words):
    names = {"missing": str(tmp_path / "nope.mp4"), "silent": str(silent_clip), "clip": str(clip)}
    with pytest.raises(HearflowError) as exc:
        open_sources(video.format(**names), audio.format(**names), CFG, realtime=realtime)
    msg = str(exc.value)
    assert words in msg and "\n" not in msg, msg


def test_file_source_without_audio_request_ignores_the_track(clip):
    video, audio = open_sources(str(clip), "none", CFG, realtime=False)
    assert audio is None and video.rate is None and video.full_audio is None
    assert isinstance(video, FileSource)


def test_missing_microphone_is_one_clear_line():
    with pytest.raises(HearflowError) as exc:  # MissingDependency too, where PortAudio is absent
        open_sources("synth", "mic:no-such-microphone-xyz", CFG, realtime=True)
    msg = str(exc.value)
    assert ("no microphone" in msg or "libportaudio2" in msg) and "\n" not in msg


class FakeSoundDevice:
    """The part of the sounddevice module MicSource uses, for a microphone that can be
    unplugged: while unplugged, opening fails and a running stream stops calling back and
    turns inactive, as PortAudio does when its device vanishes."""

    class PortAudioError(Exception):
        pass

    def __init__(self, block=441):
        self.plugged, self.block, self.opened = True, block, 0

    def InputStream(self, device, channels, samplerate, dtype, blocksize, callback):  # noqa: N802 - sounddevice's name
        if not self.plugged:
            raise self.PortAudioError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
        self.opened += 1
        return FakeStream(self, samplerate, callback)


class FakeStream:
    def __init__(self, sd, rate, callback):
        self.sd, self.rate, self.callback = sd, rate, callback
        self.active, self._stop = False, threading.Event()

    def start(self):
        self.active = True
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        n, k = self.sd.block, 0
        while not self._stop.is_set():
            if not self.sd.plugged:
                self.active = False  # the device vanished: no more callbacks
                return
            now = time.monotonic()
            block = np.full((n, 1), k % 7 / 10, np.float32)
            info = type("TimeInfo", (), {"inputBufferAdcTime": now - n / self.rate, "currentTime": now})()
            self.callback(block, n, info, 0)
            k += 1
            time.sleep(n / self.rate)

    def close(self):
        self._stop.set()
        self.active = False


def test_mic_lost_is_reopened_with_backoff_and_audio_resumes():
    from hearflow.engine.sources.microphone import MicSource

    sd = FakeSoundDevice()
    mic = MicSource(None, CFG, backoff=(0.05, 0.4))
    mic.sd = sd  # what open() sets after checking the device; the fake stands in for PortAudio
    ctx, logs = make_ctx(mic.rate, realtime=True)
    th = threading.Thread(target=mic.run, args=(ctx,), daemon=True)
    th.start()

    def wait_for(cond, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            time.sleep(0.02)
        return cond()

    assert wait_for(lambda: ctx.ring.written >= mic.rate // 4)
    sd.plugged = False
    assert wait_for(lambda: any("lost" in m for m in logs))
    time.sleep(0.3)  # a few reopening attempts fail while it is unplugged
    before = ctx.ring.written
    sd.plugged = True
    assert wait_for(lambda: any("is back" in m for m in logs))
    assert wait_for(lambda: ctx.ring.written >= before + mic.rate // 4)
    ctx.stop.set()
    th.join(3)
    assert not th.is_alive()
    assert ctx.counters.reconnects == 1 and ctx.counters.errors >= 1 and sd.opened == 2
    assert any("unavailable" in m and "PaErrorCode" in m for m in logs)  # the failed reopenings, with the cause
    # the ring's timeline follows the clock across the gap instead of splicing the two stretches
    assert abs(ctx.ring.end_time - (time.monotonic() - ctx.clock0)) < 0.2


# --------------------------------------------------------------------------- offline video with a live mic
def test_mic_with_offline_video_says_why_in_the_users_terms(clip):
    """A file video runs offline by default: the message must not blame a --no-realtime nobody typed."""
    with pytest.raises(HearflowError) as exc:
        open_sources(str(clip), "mic", CFG, realtime=False)
    msg = str(exc.value)
    assert msg.startswith(f"--audio mic is a live microphone, but --video {clip} is a video file, processed "
                          "offline by default"), msg
    assert "--audio same" in msg and "add --realtime" in msg and "--no-realtime" not in msg and "\n" not in msg
    # other videos run offline only when asked: then the flag is named, and what to drop
    with pytest.raises(HearflowError) as exc:
        open_sources("synth", "mic:1", CFG, realtime=False)
    msg = str(exc.value)
    assert "--audio mic:1" in msg and "--video synth is the synthetic scene" in msg and "with --no-realtime" in msg
    assert "drop --no-realtime" in msg
    with pytest.raises(HearflowError) as exc:
        open_sources("gst:videotestsrc ! appsink", "mic", CFG, realtime=False)
    msg = str(exc.value)
    assert "a gst: pipeline" in msg and "--audio gst:<pipeline>" in msg and "--audio same" not in msg
    with pytest.raises(HearflowError) as exc:
        open_sources("0", "mic", CFG, realtime=False, camera_factory=lambda *a: None)
    assert "--video 0 is a live camera" in str(exc.value) and "drop --no-realtime" in str(exc.value)


def test_cli_mic_with_file_video_is_one_line(tmp_path, clip):
    """`hearflow run --video FILE --audio mic` as typed (no --realtime flag at all)."""
    import torch

    from hearflow.model import ModelConfig, create_model
    from hearflow.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ck", create_model(ModelConfig(backbone="resnet18_w16")), CFG)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-m", "hearflow.cli", "run", "--model", str(tmp_path / "ck"),
                           "--video", str(clip), "--audio", "mic", "--sink", f"jsonl:{tmp_path / 'r.jsonl'}",
                           "--no-status", "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=300)
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: --audio mic is a live microphone") and str(clip) in err, err
    assert "--no-realtime" not in err
