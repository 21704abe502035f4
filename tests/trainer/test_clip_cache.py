"""`hearflow prepare`: a folder of real videos → a cache; bad files reported; resume."""

import json
import shutil

import numpy as np
import pytest

from hearflow.media.preprocess import PreprocessConfig
from hearflow.media.sample import video_sample
from hearflow.trainer.data import CacheIndex, ClipDataset
from hearflow.trainer.clip_cache import PrepareError, discover, prepare

CFG = PreprocessConfig(image_size=96)


@pytest.fixture(scope="module")
def dataset_with_bad_files(synth_dir, tmp_path_factory):
    """A copy of the synth set plus a corrupt mp4 and an empty one among the videos."""
    root = tmp_path_factory.mktemp("withbad")
    shutil.copytree(synth_dir, root, dirs_exist_ok=True)
    good = sorted((root / "videos").glob("*.mp4"))[0]
    data = good.read_bytes()
    (root / "videos" / "train_corrupt.mp4").write_bytes(data[: len(data) // 3])
    (root / "videos" / "train_empty.mp4").write_bytes(b"")
    return root


def test_prepare_reports_bad_files_and_prepares_the_rest(dataset_with_bad_files, tmp_path):
    report = prepare(dataset_with_bad_files, tmp_path / "cache", CFG, workers=2, progress=False)
    assert report["clips"] == 30 and report["prepared"] == 28 and report["bad"] == 2
    bad = {b["id"]: b["error"] for b in report["bad_files"]}
    assert set(bad) == {"train_corrupt", "train_empty"}
    assert "train_corrupt.mp4" in bad["train_corrupt"] and "train_empty.mp4" in bad["train_empty"]
    assert json.loads((tmp_path / "cache" / "report.json").read_text())["bad"] == 2
    index = CacheIndex(tmp_path / "cache")
    assert index.splits() == {"train": 16, "val": 4, "test": 8}


def test_cache_holds_exactly_the_media_layer_sample(synth_dir, tmp_path):
    prepare(synth_dir, tmp_path / "c", CFG, workers=1, progress=False)
    index = CacheIndex(tmp_path / "c")
    i = index.indices("test")[0]
    clip = index.clips[i]
    s = video_sample(clip["video"], clip["t"], CFG)
    frames = np.load(tmp_path / "c" / "frames.npy", mmap_mode="r")
    flows = np.load(tmp_path / "c" / "flows.npy", mmap_mode="r")
    assert np.array_equal(frames[i], s.frame)
    assert np.allclose(flows[i], s.flow, atol=1e-3)  # stored as float16
    ds = ClipDataset(index, [i])
    item = ds[0]
    assert item["frame"].shape == (3, 96, 96) and item["flow"].shape == (2, 96, 96)
    assert item["spec"].shape == (1, 257, 276)
    audio, rate = ds.audio_of(i)
    assert rate == 22050 and np.abs(audio - s.audio).max() < 1e-4  # int16 storage
    assert clip["box_format"] == "vggss" and len(clip["boxes"]) == 1


def test_resume_skips_done_clips(synth_dir, tmp_path):
    out = tmp_path / "c"
    prepare(synth_dir, out, CFG, workers=1, progress=False)
    lines = (out / "done.jsonl").read_text().splitlines()
    # simulate an interruption after 10 clips (and a line cut by the crash)
    (out / "done.jsonl").write_text("\n".join(lines[:10]) + "\n" + lines[10][:7])
    frames_before = np.load(out / "frames.npy").copy()
    report = prepare(synth_dir, out, CFG, workers=1, progress=False)
    assert report["prepared"] == 28 and report["pending"] == 0
    assert len((out / "done.jsonl").read_text().splitlines()) == 29  # 10 + the cut line + 18 new
    assert len(CacheIndex(out).indices()) == 28  # every record readable again
    assert np.array_equal(np.load(out / "frames.npy"), frames_before)


def test_refuses_a_cache_made_with_another_config(synth_dir, tmp_path):
    prepare(synth_dir, tmp_path / "c", CFG, workers=1, progress=False)
    with pytest.raises(PrepareError, match="different PreprocessConfig"):
        prepare(synth_dir, tmp_path / "c", CFG.replace(flow="farneback"), workers=1, progress=False)


def test_discover_layouts_and_errors(synth_dir, tmp_path):
    layout, clips = discover(synth_dir)
    assert layout == "videos" and len(clips) == 28
    assert {c.split for c in clips} == {"train", "val", "test"}
    with pytest.raises(PrepareError, match="not found"):
        discover(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match="no videos found"):
        discover(tmp_path / "empty")


def test_flickr_layout_still_frames_zero_flow(tmp_path):
    """frames/<id>.jpg + audio/<id>.wav + Annotations/<id>.xml: flow is zeros and says so."""
    import cv2

    from hearflow.media.annotations import write_flickr_xml
    from hearflow.media.encode import write_clip

    root = tmp_path / "flickr"
    (root / "frames").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for cid in ("111", "222"):
        cv2.imwrite(str(root / "frames" / f"{cid}.jpg"), rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))
        tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(22050 * 4) / 22050)
        write_clip(root / "audio" / f"{cid}.wav", None, audio=tone.astype(np.float32), sample_rate=22050,
                   audio_codec="pcm_s16le")
        write_flickr_xml(root / "Annotations" / f"{cid}.xml", cid, [[10, 20, 100, 200], [12, 22, 98, 190]], "dog")
    report = prepare(root, tmp_path / "c", CFG, workers=1, progress=False)
    assert report["layout"] == "flickr" and report["prepared"] == 2
    assert any("no flow" in note for note in report["notes"])
    index = CacheIndex(tmp_path / "c")
    assert index.clips[0]["box_format"] == "flickr" and index.clips[0]["boxes"][0] == [10, 20, 100, 200]
    assert not np.load(tmp_path / "c" / "flows.npy").any()
