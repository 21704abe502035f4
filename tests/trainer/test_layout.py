"""A dataset folder holding both layouts: videos/ + annotations.json + splits/ and, beside
them, the Flickr-style frames/ + audio/ + Annotations/ (a common export). The videos are
preferred, --layout chooses, the first line says what was read, and a flow model on still
frames is warned about."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from hearflow.media.decode import read_audio, read_frames
from hearflow.media.encode import write_clip
from hearflow.media.preprocess import PreprocessConfig
from hearflow.trainer.clip_cache import PrepareError, ensure_cache, find_clips, prepare, resolve_layout

ROOT = Path(__file__).resolve().parents[2]
CFG = PreprocessConfig(image_size=64)


def hearflow_cli(*args, timeout=300) -> subprocess.CompletedProcess:
    """`hearflow ARGS` in a fresh process running this checkout, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "hearflow.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def mixed(synth_dir, tmp_path_factory):
    """The synth set (16 train / 4 val / 8 test videos, boxes for all in annotations.json,
    Annotations/<id>.xml for the 8 test clips) plus frames/<id>.jpg and audio/<id>.wav of
    every clip: its first frame and its whole track, as an export writes them."""
    root = tmp_path_factory.mktemp("mixed")
    shutil.copytree(synth_dir, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".hearflow-cache"))
    (root / "frames").mkdir()
    for video in sorted((root / "videos").glob("*.mp4")):
        frame = next(iter(read_frames(video))).rgb
        cv2.imwrite(str(root / "frames" / f"{video.stem}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        audio, rate = read_audio(video, None)
        write_clip(root / "audio" / f"{video.stem}.wav", None, audio=audio, sample_rate=rate, audio_codec="pcm_s16le")
    return root


def expected_counts(root: Path) -> tuple[int, int]:
    """Clips with boxes in annotations.json (the videos layout) and in Annotations/*.xml (the Flickr one)."""
    from hearflow.media.annotations import read_flickr_xml

    vggss = sum(1 for r in json.loads((root / "annotations.json").read_text()) if r["bbox"])
    flickr = sum(1 for p in (root / "Annotations").glob("*.xml") if read_flickr_xml(p))
    return vggss, flickr


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_auto_prefers_the_videos_and_flickr_is_chosen_by_name(mixed, tmp_path):
    auto = find_clips(mixed)
    assert auto.layout == "videos" and resolve_layout(mixed) == "videos"
    assert len(auto.clips) == 28 and all(c.video and not c.image for c in auto.clips)
    assert "frames/ + audio/ also present, ignored — use --layout flickr" in auto.why
    still = find_clips(mixed, layout="flickr")
    assert still.layout == "flickr" and all(c.image and c.audio and not c.video for c in still.clips)
    assert {c.split for c in still.clips} == {"train", "val", "test"}  # splits/ applies to both
    assert sum(1 for c in still.clips if c.boxes) == expected_counts(mixed)[1] < len(still.clips)
    # without videos the still frames are the only layout, and auto takes them
    only = tmp_path / "only"
    for part in ("frames", "audio", "Annotations", "splits"):
        shutil.copytree(mixed / part, only / part)
    assert find_clips(only).layout == "flickr" and "also present" not in find_clips(only).why
    with pytest.raises(PrepareError, match="no videos found"):
        find_clips(only, layout="videos")
    with pytest.raises(PrepareError, match=r"layout flickr needs frames/ and audio/ folders \(frames/ missing"):
        find_clips(mixed / "videos", layout="flickr")


@pytest.mark.slow
def test_prepare_cli_says_the_layout_counts_and_flow_and_layout_flickr_switches(mixed, tmp_path):
    boxes_videos, boxes_flickr = expected_counts(mixed)
    proc = hearflow_cli("prepare", mixed, tmp_path / "v", "image_size=64", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout)[0] == (
        f"dataset {mixed}: layout videos (videos/ + annotations.json; frames/ + audio/ also present, ignored — "
        f"use --layout flickr for them); clips train 16 / val 4 / test 8; boxes {boxes_videos}; flow: yes")
    assert json.loads((tmp_path / "v" / "cache.json").read_text())["layout"] == "videos"

    proc = hearflow_cli("prepare", mixed, tmp_path / "f", "image_size=64", "--workers", "2", "--layout", "flickr")
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout)[0] == (
        f"dataset {mixed}: layout flickr (frames/ + audio/ + Annotations/; videos/ also present, ignored); "
        f"clips train 16 / val 4 / test 8; boxes {boxes_flickr}; flow: no (still frames)")
    assert json.loads((tmp_path / "f" / "cache.json").read_text())["layout"] == "flickr"

    # the same clip ids in another layout: the cache is refused, not resumed
    proc = hearflow_cli("prepare", mixed, tmp_path / "v", "image_size=64", "--layout", "flickr")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert lines(proc.stderr) == [f"error: {tmp_path / 'v'}: this cache was prepared from the videos layout, "
                                  "this run reads the flickr layout; use another folder or delete it"]


@pytest.mark.slow
def test_a_finished_cache_of_the_other_layout_is_never_reused(mixed, tmp_path):
    flickr = ensure_cache(mixed, CFG, tmp_path / "c", workers=2, progress=False, layout="flickr")
    with pytest.raises(PrepareError, match="prepared from the flickr layout, this run reads the videos layout"):
        ensure_cache(mixed, CFG, tmp_path / "c", progress=False)  # auto = videos here
    with pytest.raises(PrepareError, match="prepared from the flickr layout, not videos"):
        ensure_cache(flickr, CFG, progress=False, layout="videos")  # the cache given as the data
    assert ensure_cache(flickr, CFG, progress=False) == flickr  # auto takes the cache as it is


@pytest.mark.slow
def test_train_with_still_frames_warns_a_flow_model_and_records_the_layout(mixed, tmp_path):
    common = ["configs/synth_tiny.yaml", f"data.path={mixed}", "data.workers=0", "data.prepare_workers=2",
              "preprocess.image_size=64", "model.feature_size=7", "train.batch_size=8", "train.epochs=1",
              "train.threads=2", "--no-progress"]
    proc = hearflow_cli("train", *common, f"train.out={tmp_path / 'still'}", "--layout", "flickr")
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout)[0].startswith(f"dataset {mixed}: layout flickr (")
    assert lines(proc.stdout)[0].endswith("; flow: no (still frames)")
    warnings = [line for line in lines(proc.stderr) if line.startswith("warning:")]
    assert warnings == ["warning: model.flow is cnn, but the flickr layout has still frames only, so every clip's "
                        "flow is zero; use --layout videos for the videos in this folder"]
    assert "layout: flickr" in (tmp_path / "still" / "config.yaml").read_text()

    proc = hearflow_cli("train", *common, f"train.out={tmp_path / 'auto'}")
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout)[0].startswith(f"dataset {mixed}: layout videos (")
    assert lines(proc.stdout)[0].endswith("; flow: yes") and "warning" not in proc.stderr
    assert "layout: videos" in (tmp_path / "auto" / "config.yaml").read_text()  # what auto chose, recorded

    proc = hearflow_cli("train", *common, "data.layout=stills")
    assert proc.returncode == 2 and lines(proc.stderr) == [
        "error: command line: 'data.layout' must be 'auto' or 'videos' or 'flickr', got 'stills'"]


@pytest.mark.slow
def test_eval_of_a_flow_model_on_still_frames_warns(mixed, tmp_path):
    model = ROOT / "checkpoints" / "synth_tiny"
    proc = hearflow_cli("eval", model, mixed, "--out", tmp_path / "e", "--layout", "flickr", "--no-listen",
                        "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout)[0].startswith(f"dataset {mixed}: layout flickr (")
    assert [line for line in lines(proc.stderr) if line.startswith("warning:")] == [
        "warning: synth_tiny uses flow, but the flickr layout has still frames only, so every clip's flow is "
        "zero; use --layout videos for the videos in this folder"]
    # scored against the Flickr XML boxes of the test split, the only boxes that layout has
    assert json.loads((tmp_path / "e" / "summary.json").read_text())["n"] == expected_counts(mixed)[1]
