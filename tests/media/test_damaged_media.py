"""Damaged media is decoded as far as it can be, and the damage is reported.

The fixtures are real H.264 + AAC files made here with PyAV, then damaged at the bytes of
chosen packets (found by demuxing, so the damage always hits packet data) or cut short.
"""

import warnings

import av
import numpy as np
import pytest

from hearflow.errors import CorruptMedia
from hearflow.media import decode
from hearflow.media.encode import write_clip

FPS, N, RATE, SECONDS = 25, 100, 44100, 4.0
H, W = 96, 128


def moving_texture(n):
    """A random texture sliding right by 3 px a frame: every frame differs, P-frames carry real data."""
    tex = np.random.default_rng(0).integers(0, 256, (H, 2 * W, 3), np.uint8)
    return np.stack([np.roll(tex, 3 * i, axis=1)[:, :W] for i in range(n)])


def two_tones(seconds, rate):
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)


def packets(path, kind):
    """(pts seconds, byte position, size) of every stored packet of the first ``kind`` stream."""
    with av.open(str(path)) as c:
        s = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [(float(p.pts * p.time_base), p.pos, p.size) for p in c.demux(s) if p.dts is not None]


def overwrite(src, dst, spans):
    """Copy ``src`` with the bytes of each (offset, length) span replaced by fixed junk."""
    data = bytearray(src.read_bytes())
    for offset, length in spans:
        data[offset : offset + length] = np.random.default_rng(offset).bytes(length)
    dst.write_bytes(bytes(data))
    return dst


def remux_faststart(src, dst):
    """Copy an mp4 with the moov atom (the index) moved to the front."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def reference_video_frames(path):
    """What PyAV decodes when it skips the packets that fail (single-threaded, as ffmpeg -threads 1)."""
    n = 0
    with av.open(str(path)) as c:
        for packet in c.demux(c.streams.video[0]):
            try:
                n += len(packet.decode())
            except av.FFmpegError:
                pass
    return n


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("damaged")
    clip = write_clip(d / "clip.mp4", moving_texture(N), FPS, two_tones(SECONDS, RATE), RATE, video_options={"g": 25})
    data = clip.read_bytes()
    assert data.find(b"mdat") < data.find(b"moov")  # index at the end: the damage lands in packet data

    # a) a few hundred bytes overwritten inside three video packets in the middle of the file
    video = packets(clip, "video")
    spans = [(pos + 8, min(300, size - 8)) for _, pos, size in (video[35], video[50], video[62])]
    corrupt = overwrite(clip, d / "corrupt.mp4", spans)
    # c) three AAC packets overwritten whole (two adjacent, one alone): audio-only damage
    audio = packets(clip, "audio")
    lost = [audio[k] for k in (40, 41, 120)]
    corrupt_audio = overwrite(clip, d / "corrupt_audio.mp4", [(pos, size) for _, pos, size in lost])
    # b) index at the front, file cut at half its size
    faststart = remux_faststart(clip, d / "faststart.mp4")
    fs = faststart.read_bytes()
    assert fs.find(b"moov") < fs.find(b"mdat")
    truncated = d / "truncated.mp4"
    truncated.write_bytes(fs[: len(fs) // 2])
    return {"clip": clip, "corrupt": corrupt, "damaged_at": [video[k][0] for k in (35, 50, 62)],
            "corrupt_audio": corrupt_audio, "audio_lost": lost, "truncated": truncated}


def split(items):
    items = list(items)
    video = [i for i in items if isinstance(i, decode.VideoFrame)]
    blocks = [i for i in items if isinstance(i, decode.AudioBlock)]
    return video, blocks


def check_blocks_contiguous(blocks, rate):
    assert blocks[0].t == 0.0
    for a, b in zip(blocks, blocks[1:]):
        assert b.t == pytest.approx(a.t + len(a.samples) / rate, abs=1e-9)


# ------------------------------------------------------------------ a) corrupt packets
def test_corrupt_packets_are_skipped(files):
    path = files["corrupt"]
    reference = reference_video_frames(path)
    assert reference >= 0.9 * N  # the damage is local: ffmpeg gets nearly everything
    report = decode.DamageReport()
    video, blocks = split(decode.iter_media(path, 22050, report=report))
    print(f"corrupt.mp4: reference {reference} frames, iter_media {len(video)} frames; {report.describe()}")
    assert len(video) >= 0.9 * reference
    ts = [f.t for f in video]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    idx = [f.index for f in video]
    assert all(b > a for a, b in zip(idx, idx[1:]))
    assert all(f.index == round(f.t * FPS) for f in video)  # lost frames keep their numbers
    # the audio track is intact and still in sync
    check_blocks_contiguous(blocks, 22050)
    assert sum(len(b.samples) for b in blocks) == round(SECONDS * 22050)
    # the report counts the damage and says where it was
    assert report.damaged and report.video_packets_skipped >= 1 and report.audio_packets_skipped == 0
    assert report.video_frames == len(video) and report.video_frames_expected == N
    assert report.video_frames_lost == N - len(video)
    assert not report.truncated and report.audio_gaps == []
    assert all(min(abs(t - d) for d in files["damaged_at"]) < 0.5 for t in report.where)
    line = report.describe()
    assert "\n" not in line and line.startswith(f"{path}: damaged media") and "skipped" in line

    # the other readers decode past it the same way
    r2 = decode.DamageReport()
    frames = list(decode.read_frames(path, report=r2))
    assert [f.t for f in frames] == ts and r2.video_packets_skipped == report.video_packets_skipped


def test_frames_around_damage(files):
    path = files["corrupt"]
    report = decode.DamageReport()
    list(decode.read_frames(path, report=report))
    missing = sorted(set(range(N)) - {f.index for f in decode.read_frames(path, report=decode.DamageReport())})
    assert missing
    with pytest.raises(CorruptMedia, match="undecodable"):  # the annotated frame itself is lost
        decode.frames_around(path, missing[0] / FPS, report=decode.DamageReport())
    good = next(i for i in range(N) if all(abs(i - m) > 3 for m in missing))
    frames, pos, fps = decode.frames_around(path, good / FPS, report=decode.DamageReport())
    assert frames[pos].index == good and fps == FPS


def test_damage_without_a_report_warns(files):
    with pytest.warns(decode.DamagedMediaWarning, match="damaged media"):
        assert len(list(decode.read_frames(files["corrupt"]))) >= 0.9 * N
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an intact file gives no warning
        list(decode.iter_media(files["clip"], 22050))
    with pytest.raises(CorruptMedia, match="undecodable packet"):  # probe is the strict check
        decode.probe(files["corrupt"])


# ------------------------------------------------------------------ b) truncated file
def test_truncated_faststart_gives_frames_up_to_the_cut(files):
    path = files["truncated"]
    reference = reference_video_frames(path)
    report = decode.DamageReport()
    items = list(decode.iter_media(path, 22050, report=report))
    video, blocks = split(items)
    print(f"truncated.mp4: reference {reference} frames, iter_media {len(video)} frames; {report.describe()}")
    assert len(video) >= 0.4 * N
    assert [f.index for f in video] == list(range(len(video)))
    assert report.truncated and report.declared_end == pytest.approx(SECONDS, abs=0.05)
    assert video[-1].t < report.decoded_end < SECONDS - 1
    assert "truncated" in report.describe()
    # audio runs up to about the cut too, contiguous
    check_blocks_contiguous(blocks, 22050)
    audio_end = sum(len(b.samples) for b in blocks) / 22050
    assert abs(audio_end - video[-1].t) < 0.5
    x, rate = decode.read_audio(path, 22050, report=decode.DamageReport())
    assert len(x) == sum(len(b.samples) for b in blocks)
    # a frame before the cut is usable; one after it is not
    frames, pos, _ = decode.frames_around(path, 0.5)
    assert frames[pos].index == round(0.5 * FPS)
    with pytest.raises(CorruptMedia, match="truncated"):
        decode.frames_around(path, 3.5)
    with pytest.raises(CorruptMedia, match="truncated"):
        decode.probe(path)


# ------------------------------------------------------------------ c) audio damage
def test_lost_audio_is_silence_at_its_time(files):
    path = files["corrupt_audio"]
    report = decode.DamageReport()
    x, rate = decode.read_audio(path, None, report=report)
    clean, _ = decode.read_audio(files["clip"], None)
    assert rate == RATE and len(x) == len(clean) == round(SECONDS * RATE)  # total duration unchanged
    assert report.audio_packets_skipped == 3 and report.video_packets_skipped == 0
    frame = 1024 / RATE
    lost = files["audio_lost"]
    assert [round(s / frame) for s, _ in report.audio_gaps] == [round(lost[0][0] / frame), round(lost[2][0] / frame)]
    assert report.audio_seconds_lost == pytest.approx(3 * frame, abs=1e-6)
    for start, seconds in report.audio_gaps:  # silence exactly where the packets were
        i0, i1 = round(start * rate), round((start + seconds) * rate)
        assert np.all(x[i0:i1] == 0) and np.abs(clean[i0:i1]).max() > 0.1
    # away from the gaps (and the AAC overlap into the next frame) the audio is as intact
    keep = np.ones(len(x), bool)
    for start, seconds in report.audio_gaps:
        keep[round((start - frame) * rate) : round((start + seconds + 2 * frame) * rate)] = False
    np.testing.assert_array_equal(x[keep], clean[keep])
    assert report.audio_lost_between(0.0, 0.5) == 0.0
    assert report.audio_lost_between(0.0, SECONDS) == pytest.approx(3 * frame, abs=1e-6)

    # the streaming reader gives the same samples, contiguous, and every video frame
    r2 = decode.DamageReport()
    video, blocks = split(decode.iter_media(path, None, report=r2))
    assert len(video) == N
    check_blocks_contiguous(blocks, RATE)
    np.testing.assert_array_equal(np.concatenate([b.samples for b in blocks]), x)
    assert r2.audio_gaps == report.audio_gaps


# ------------------------------------------------------------------ samples (prepare/eval)
def test_sample_usable_when_its_frame_and_window_decode(files):
    from hearflow.media.preprocess import PreprocessConfig
    from hearflow.media.sample import video_sample

    cfg = PreprocessConfig(image_size=32, audio_seconds=1.0, sample_rate=16000, flow="none")
    # audio lost at ~0.93 s and ~2.79 s: a window clear of both is fine, one over them is not
    s = video_sample(files["corrupt_audio"], 1.8, cfg)
    assert s.t == pytest.approx(1.8) and len(s.audio) == 16000 and np.abs(s.audio).max() > 0.1
    with pytest.raises(CorruptMedia, match="audio window 2.30..3.30 s is damaged"):
        video_sample(files["corrupt_audio"], 2.8, cfg)
    # the cut at ~1.76 s: before it usable, a window reaching past it not
    assert video_sample(files["truncated"], 0.6, cfg).t == pytest.approx(0.6)
    with pytest.raises(CorruptMedia, match="truncated"):
        video_sample(files["truncated"], 1.6, cfg)
    with pytest.raises(CorruptMedia, match="truncated"):
        video_sample(files["truncated"], 3.0, cfg)
    # a lost video frame refuses only the samples that need it
    missing = sorted(set(range(N)) - {f.index for f in decode.read_frames(files["corrupt"],
                                                                           report=decode.DamageReport())})
    with pytest.raises(CorruptMedia, match="undecodable"):
        video_sample(files["corrupt"], missing[0] / FPS, cfg)
    assert video_sample(files["corrupt"], 0.6, cfg).t == pytest.approx(0.6)
