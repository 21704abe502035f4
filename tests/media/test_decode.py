"""hearflow.media.decode on real files made here with PyAV's real encoders (no mocks).

Every clip encodes what a test checks: frame i has mean brightness 10 + 4·i, and the
audio holds a short click at a known time, so content, timestamps and audio/video
alignment are all checked against what was written.
"""

import subprocess
import sys
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from hearflow import cli
from hearflow.errors import CorruptMedia, EmptyMedia, MediaError, MediaNotFound, NoAudioStream, NoVideoStream
from hearflow.media import decode
from hearflow.media.encode import write_clip

H, W = 48, 64


def ramp_frames(n):
    """n flat frames; frame i has value 10 + 4·i (so the index is readable after lossy coding)."""
    return np.stack([np.full((H, W, 3), 10 + 4 * i, np.uint8) for i in range(n)])


def index_from_rgb(rgb):
    return round((float(rgb.mean()) - 10) / 4)


def click_track(seconds, rate, click_at, channels=1):
    """Silence with a 3 ms click at ``click_at`` s in every channel: (channels, n) float32."""
    n = round(seconds * rate)
    x = np.zeros((channels, n), np.float32)
    i = round(click_at * rate)
    x[:, i : i + max(3, rate * 3 // 1000)] = 0.9
    return x if channels > 1 else x[0]


def tone(seconds, rate, amp, freq=441.0):
    return (amp * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)).astype(np.float32)


def onset(x, rate):
    """Time of the first sample above half the peak: where the click is."""
    return int(np.argmax(np.abs(x) > 0.5 * np.abs(x).max())) / rate


def remux_faststart(src, dst):
    """Copy an mp4 with the moov atom moved to the front (PyAV's writer puts it at the end)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:  # demuxer's end-of-stream flush packets
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


def write_offset_mkv(path, rate=16000):
    """Video from 0.2 s (25 fps, 25 frames), PCM audio 0.3..0.8 s and 1.0..1.5 s (a gap),
    with clicks at 0.5 s and 1.2 s of stream time."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = c.add_stream("pcm_s16le", rate=rate)
        a.layout = "mono"
        for i, rgb in enumerate(ramp_frames(25)):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts, f.time_base = i + 5, Fraction(1, 25)
            c.mux(v.encode(f))
        for start, click in ((0.3, 0.5), (1.0, 1.2)):
            x = click_track(0.5, rate, click - start)
            f = av.AudioFrame.from_ndarray((x * 32767).astype(np.int16)[None], format="s16", layout="mono")
            f.sample_rate, f.pts, f.time_base = rate, round(start * rate), Fraction(1, rate)
            c.mux(a.encode(f))
        c.mux(v.encode(None))
        c.mux(a.encode(None))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Every test file, written once: name -> path."""
    d = tmp_path_factory.mktemp("media")
    p = {}
    # 25 fps, keyframe every 10 frames so seeking lands mid-file; AAC stereo 44.1 kHz
    p["mp4"] = write_clip(d / "clip25.mp4", ramp_frames(50), 25, click_track(2.0, 44100, 0.7, 2), 44100,
                          video_options={"g": 10})
    p["mkv"] = write_clip(d / "clip30.mkv", ramp_frames(45), 30, click_track(1.5, 22050, 0.9), 22050,
                          video_options={"g": 12})
    p["mov"] = write_clip(d / "clip.mov", ramp_frames(25), 25, click_track(1.0, 48000, 0.4, 6), 48000)
    p["webm"] = write_clip(d / "clip.webm", ramp_frames(8), 25, click_track(0.5, 48000, 0.25, 2), 48000)
    p["avi"] = write_clip(d / "clip.avi", ramp_frames(25), 25, click_track(1.0, 8000, 0.6), 8000,
                          video_options={"b": "2M"})  # default mpeg4 rate blurs the ramp
    p["mp3"] = write_clip(d / "song.mp3", None, audio=click_track(1.3, 44100, 0.65, 2), sample_rate=44100,
                          audio_codec="libmp3lame")
    p["ogg"] = write_clip(d / "voice.ogg", None, audio=click_track(1.3, 48000, 0.35), sample_rate=48000,
                          audio_codec="libopus")
    p["wav"] = write_clip(d / "stereo8k.wav", None, audio=click_track(1.3, 8000, 0.55, 2), sample_rate=8000,
                          audio_codec="pcm_s16le")
    left = np.stack([tone(1.0, 8000, 0.6), np.zeros(8000, np.float32)])
    p["left_wav"] = write_clip(d / "left.wav", None, audio=left, sample_rate=8000, audio_codec="pcm_s16le")
    p["left_mp4"] = write_clip(d / "left.mp4", None, audio=left, sample_rate=8000)  # AAC
    fc = np.zeros((6, 4800), np.float32)
    fc[2] = tone(0.1, 48000, 0.6)  # front centre only (5.1 order: FL FR FC LFE BL BR)
    p["fc_wav"] = write_clip(d / "centre51.wav", None, audio=fc, sample_rate=48000, audio_codec="pcm_s16le")
    p["silent"] = write_clip(d / "silent.mp4", ramp_frames(10), 25)
    p["short_audio"] = write_clip(d / "short_audio.mp4", ramp_frames(50), 25, click_track(0.3, 44100, 0.1), 44100)
    p["offset"] = d / "offset.mkv"
    write_offset_mkv(p["offset"])

    # broken files
    p["empty"] = d / "empty.mp4"
    p["empty"].write_bytes(b"")
    p["random"] = d / "random.mp4"
    p["random"].write_bytes(np.random.default_rng(0).bytes(20000))
    data = p["mp4"].read_bytes()
    p["cut_moov_end"] = d / "cut_moov_end.mp4"
    p["cut_moov_end"].write_bytes(data[: len(data) // 2])
    remux_faststart(p["mp4"], d / "faststart.mp4")
    data = (d / "faststart.mp4").read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    p["cut_faststart"] = d / "cut_faststart.mp4"
    p["cut_faststart"].write_bytes(data[: len(data) // 2])
    p["dir"] = d / "folder.mp4"
    p["dir"].mkdir()
    p["missing"] = d / "missing.mp4"
    return p


# ----------------------------------------------------------------------------- video
@pytest.mark.parametrize("name, n, fps", [("mp4", 50, 25), ("mkv", 45, 30), ("mov", 25, 25),
                                          ("webm", 8, 25), ("avi", 25, 25)])
def test_read_frames_count_timestamps_content(media, name, n, fps):
    frames = list(decode.read_frames(media[name]))
    assert len(frames) == n
    assert [f.index for f in frames] == list(range(n))
    ts = np.array([f.t for f in frames])
    assert np.all(np.diff(ts) > 0)
    np.testing.assert_allclose(ts, np.arange(n) / fps, atol=1e-3)  # Matroska: whole ms
    assert all(f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8 for f in frames)
    assert [index_from_rgb(f.rgb) for f in frames] == list(range(n))
    assert decode.video_fps(media[name]) == pytest.approx(fps)


@pytest.mark.parametrize("name, fps, start, end, first, last", [
    ("mp4", 25, 0.48, 1.0, 12, 24),     # start on a frame is inclusive, end exclusive
    ("mp4", 25, 1.25, None, 32, 49),    # seek lands on the keyframe at 1.2 s, 1.20 and 1.24 dropped
    ("mp4", 25, None, 0.2, 0, 4),
    ("mkv", 30, 10 / 30, 20 / 30, 10, 19),  # stored as 0.333 / 0.667 s: still on the bound
])
def test_read_frames_range(media, name, fps, start, end, first, last):
    frames = list(decode.read_frames(media[name], start=start, end=end))
    assert [f.index for f in frames] == list(range(first, last + 1))
    assert [index_from_rgb(f.rgb) for f in frames] == [f.index for f in frames]  # index right after a seek
    np.testing.assert_allclose([f.t for f in frames], np.arange(first, last + 1) / fps, atol=1e-3)


@pytest.mark.parametrize("t, before, after, indices, pos", [
    (0.0, 1, 1, [0, 1], 0),              # start: nothing before
    (0.02, 1, 1, [0, 1], 0),             # exactly between two frames: the earlier one
    (1.23, 3, 2, [28, 29, 30, 31, 32, 33], 3),  # middle, across a keyframe (30)
    (1.01, 0, 0, [25], 0),
    (1.96, 1, 1, [48, 49], 1),           # last frame
    (7.5, 2, 1, [47, 48, 49], 2),        # past the end: the last frame
])
def test_frames_around(media, t, before, after, indices, pos):
    frames, p, fps = decode.frames_around(media["mp4"], t, before=before, after=after)
    assert fps == 25.0
    assert [f.index for f in frames] == indices
    assert [index_from_rgb(f.rgb) for f in frames] == indices
    np.testing.assert_allclose([f.t for f in frames], np.array(indices) / 25, atol=1e-6)
    assert p == pos


def test_frames_around_30fps_matroska(media):
    frames, pos, fps = decode.frames_around(media["mkv"], 1.0, before=1, after=1)
    assert fps == pytest.approx(30.0)
    assert [index_from_rgb(f.rgb) for f in frames] == [29, 30, 31] == [f.index for f in frames]
    assert pos == 1


# ----------------------------------------------------------------------------- audio
# name, native rate, written seconds, codec frame (samples at the native rate)
AUDIO_FILES = [
    ("mp4", 44100, 2.0, 1024),  # AAC stereo
    ("mkv", 22050, 1.5, 1024),  # AAC mono, no end-padding info in Matroska
    ("mov", 48000, 1.0, 1024),  # AAC 5.1
    ("webm", 48000, 0.5, 960),  # Opus stereo
    ("ogg", 48000, 1.3, 960),   # Opus mono
    ("avi", 8000, 1.0, 1),      # PCM mono
    ("wav", 8000, 1.3, 1),      # PCM stereo
    ("mp3", 44100, 1.3, 1152),  # MP3 stereo
]
CLICKS = {"mp4": 0.7, "mkv": 0.9, "mov": 0.4, "webm": 0.25, "ogg": 0.35, "avi": 0.6, "wav": 0.55, "mp3": 0.65}


@pytest.mark.parametrize("rate", [22050, None])
@pytest.mark.parametrize("name, native, seconds, frame", AUDIO_FILES)
def test_read_audio_length_and_alignment(media, name, native, seconds, frame, rate):
    x, r = decode.read_audio(media[name], rate)
    assert r == (rate or native)
    assert x.dtype == np.float32 and x.ndim == 1
    assert np.abs(x).max() <= 1.0
    # within one codec frame of the written length (plus one sample of resampling rounding)
    assert abs(len(x) / r - seconds) <= frame / native + 1 / r
    if name in ("mp4", "mov"):  # the MP4 edit list lets the end padding be trimmed exactly
        assert abs(len(x) - seconds * r) <= 1
    # the click is where it was written: priming samples dropped, same clock as the video
    assert onset(x, r) == pytest.approx(CLICKS[name], abs=frame / native + 2 / r)


@pytest.mark.parametrize("name, expected", [
    ("left_wav", 0.3),   # stereo, tone in L only: (L + R) / 2
    ("left_mp4", 0.3),   # same through AAC
    ("fc_wav", 0.6 * 0.2929),  # 5.1, front centre only: ffmpeg's normalised 5.1 -> mono gain
])
def test_downmix_gain(media, name, expected):
    x, r = decode.read_audio(media[name], None)
    body = x[len(x) // 5 : -len(x) // 5]  # away from codec start/end transients
    assert np.abs(body).max() == pytest.approx(expected, rel=0.03)


def test_audio_gaps_and_late_start_on_the_video_clock(media):
    """Audio starting after the video and with a hole is padded so times still match."""
    path = media["offset"]
    frames = list(decode.read_frames(path))
    assert len(frames) == 25
    # video starts at 0.2 s of stream time, audio at 0.3 s: the clock starts with the video
    assert frames[0].t == pytest.approx(0.0, abs=1e-3)
    for rate in (None, 22050):
        x, r = decode.read_audio(path, rate)
        assert len(x) / r == pytest.approx(1.3, abs=2 / r)
        assert np.all(x[: round(0.09 * r)] == 0) and np.all(x[round(0.61 * r) : round(0.79 * r)] == 0)
        first_click = onset(x, r)
        second_click = round(0.9 * r) + onset(x[round(0.9 * r) :], r) * r
        assert first_click == pytest.approx(0.3, abs=2 / r)  # 0.5 s stream time - 0.2 s
        assert second_click / r == pytest.approx(1.0, abs=2 / r)  # 1.2 s stream time - 0.2 s


# ------------------------------------------------------------------------ iter_media
@pytest.mark.parametrize("name, n_frames, switches", [
    ("mp4", 50, 40), ("webm", 8, 8), ("offset", 25, 4),
    ("short_audio", 50, 2),  # audio stops at 0.3 s, video goes on to 2 s
])
def test_iter_media_order_and_coverage(media, name, n_frames, switches):
    items = list(decode.iter_media(media[name], 22050))
    ts = [i.t for i in items]
    assert all(b >= a - 1e-9 for a, b in zip(ts, ts[1:])), "not in time order"
    video = [i for i in items if isinstance(i, decode.VideoFrame)]
    blocks = [i for i in items if isinstance(i, decode.AudioBlock)]
    assert [f.index for f in video] == list(range(n_frames))
    assert [index_from_rgb(f.rgb) for f in video] == list(range(n_frames))
    assert blocks[0].t == 0.0 and all(b.rate == 22050 for b in blocks)
    for a, b in zip(blocks, blocks[1:]):  # contiguous
        assert b.t == pytest.approx(a.t + len(a.samples) / 22050, abs=1e-9)
    x, _ = decode.read_audio(media[name], 22050)
    np.testing.assert_array_equal(np.concatenate([b.samples for b in blocks]), x)
    # both streams really interleave (offset.mkv has two 0.5 s PCM packets: few switches)
    kinds = [isinstance(i, decode.VideoFrame) for i in items]
    assert sum(a != b for a, b in zip(kinds, kinds[1:])) >= switches


def test_iter_media_single_stream(media):
    only_video = list(decode.iter_media(media["mp4"], 22050, audio=False))
    assert len(only_video) == 50 and all(isinstance(i, decode.VideoFrame) for i in only_video)
    only_audio = list(decode.iter_media(media["mp4"], None, video=False))
    assert all(isinstance(i, decode.AudioBlock) and i.rate == 44100 for i in only_audio)
    assert sum(len(b.samples) for b in only_audio) == 88200
    assert len(list(decode.iter_media(media["silent"], 22050, audio=False))) == 10
    with pytest.raises(NoAudioStream):
        list(decode.iter_media(media["silent"], 22050))
    with pytest.raises(NoVideoStream):
        list(decode.iter_media(media["wav"], 22050))


# -------------------------------------------------------------------------- bad files
BAD = [
    ("empty", EmptyMedia),
    ("random", CorruptMedia),
    ("cut_moov_end", CorruptMedia),
    ("cut_faststart", CorruptMedia),
    ("dir", MediaNotFound),
    ("missing", MediaNotFound),
]
CALLS = {
    "probe": lambda p: decode.probe(p),
    "read_audio": lambda p: decode.read_audio(p, 22050),
    "read_frames": lambda p: list(decode.read_frames(p)),
    "frames_around": lambda p: decode.frames_around(p, 1.5),
    "iter_media": lambda p: list(decode.iter_media(p, 22050)),
}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("name, error", BAD)
def test_bad_files_raise_typed_errors(media, name, error, call):
    with pytest.raises(error) as info:
        CALLS[call](media[name])
    message = str(info.value)
    assert media[name].name in message and "\n" not in message
    assert message.startswith(str(media[name]) + ": ")


def test_missing_streams(media):
    with pytest.raises(NoAudioStream, match="silent.mp4: no audio stream"):
        decode.read_audio(media["silent"], 22050)
    for call in (lambda p: list(decode.read_frames(p)), lambda p: decode.frames_around(p, 0.5),
                 decode.video_fps):
        with pytest.raises(NoVideoStream, match="stereo8k.wav: no video stream"):
            call(media["wav"])


def test_read_image(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200  # red: checks the BGR -> RGB swap
    rgb[5:10, 5:10] = (10, 150, 250)
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(decode.read_image(path), rgb)
    (tmp_path / "bad.jpg").write_bytes(np.random.default_rng(1).bytes(500))
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases = [("bad.jpg", CorruptMedia), ("empty.jpg", EmptyMedia), ("nope.jpg", MediaNotFound), (".", MediaNotFound)]
    for name, error in cases:
        with pytest.raises(error) as info:
            decode.read_image(tmp_path / name)
        assert isinstance(info.value, MediaError) and str(tmp_path / name) in str(info.value)


# ----------------------------------------------------------------------------- probe
def test_probe_reports_streams_and_decode(media):
    info = decode.probe(media["mp4"], sample_rate=22050)
    assert info.video.codec == "h264" and (info.video.width, info.video.height) == (W, H)
    assert info.video.fps == 25.0 and info.video.frames == 50
    assert info.audio.codec == "aac" and info.audio.sample_rate == 44100
    assert info.audio.channels == 2 and info.audio.layout == "stereo"
    assert info.duration == pytest.approx(2.0, abs=0.03)
    d = info.decoded
    assert d.video_frames == 50 and d.first_frame_t == 0.0 and d.last_frame_t == pytest.approx(1.96)
    assert d.audio_rate == 22050 and d.audio_seconds == pytest.approx(2.0, abs=1e-4)
    text = info.describe()
    for part in ("clip25.mp4", "video: h264 64x48", "25.000 fps", "audio: aac 44100 Hz, 2 channels (stereo)",
                 "decoded video: 50 frames", "decoded audio: 2.000 s mono at 22050 Hz"):
        assert part in text

    surround = decode.probe(media["mov"], decode=False)
    assert surround.audio.channels == 6 and surround.audio.layout == "5.1" and surround.decoded is None
    audio_only = decode.probe(media["mp3"])
    assert audio_only.video is None and "video: none" in audio_only.describe()
    video_only = decode.probe(media["silent"])
    assert video_only.audio is None and video_only.decoded.video_frames == 10


def test_cli_probe_good_file(media, capsys):
    assert cli.main(["probe", str(media["mkv"]), "--sample-rate", "16000"]) == 0
    out = capsys.readouterr().out
    assert "clip30.mkv" in out and "30.000 fps" in out and "decoded audio: 1.5" in out and "16000 Hz" in out


def test_cli_probe_bad_file_subprocess(media):
    run = subprocess.run([sys.executable, "-m", "hearflow.cli", "probe", str(media["webm"]), str(media["random"])],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "video: vp9" in run.stdout and "audio: opus 48000 Hz" in run.stdout
    errors = run.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: {media['random']}: ")
