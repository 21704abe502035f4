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

from damaged_media import FPS, N, RATE, SECONDS, make_damaged_files, packets, reference_video_frames  # noqa: F401


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_damaged_files(tmp_path_factory.mktemp("damaged"))


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
