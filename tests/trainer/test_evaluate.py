"""`hearflow eval`: any method's maps against Flickr XML / VGG-SS json / a synth folder; a model run."""

import json

import numpy as np
import pytest

from hearflow.cli import main
from hearflow.errors import HearflowError
from hearflow.media.annotations import write_flickr_xml, write_vggss
from hearflow.trainer import evaluate, metrics


def perfect_map(box_norm, size=7):
    """A map that is 1 inside the box's cells and 0 elsewhere."""
    m = np.zeros((size, size), np.float32)
    x1, y1, x2, y2 = box_norm
    cx = (np.arange(size) + 0.5) / size
    m[np.ix_((cx >= y1) & (cx <= y2), (cx >= x1) & (cx <= x2))] = 1
    return m


def test_heatmaps_against_vggss_json_npz_and_npy(tmp_path):
    records = [
        {"file": "a", "class": "x", "bbox": [[0.1, 0.1, 0.6, 0.6]]},
        {"file": "b", "class": "y", "bbox": [[0.5, 0.4, 0.95, 0.95]]},
        {"file": "c", "class": "z", "bbox": [[0.3, 0.3, 0.3, 0.3]]},  # degenerate: skipped
    ]
    write_vggss(tmp_path / "ann.json", records)
    maps = {"a": perfect_map([0.1, 0.1, 0.6, 0.6]), "b": np.flipud(perfect_map([0.5, 0.4, 0.95, 0.95])).copy(),
            "c": np.ones((7, 7), np.float32), "unknown": np.zeros((3, 3), np.float32)}
    np.savez(tmp_path / "maps.npz", **maps)
    s = evaluate.evaluate_heatmaps(tmp_path / "maps.npz", tmp_path / "ann.json", tmp_path / "out")
    assert s["n"] == 2 and s["skipped"] == 1 and s["maps_without_annotation"] == ["unknown"]
    expected = [metrics.score_clip(maps[k], metrics.gt_map_vggss(r["bbox"])) for k, r in zip("ab", records)]
    assert s["pointing"] == pytest.approx(np.mean([e["pointing"] for e in expected]))
    assert s["mean_ciou_adap"] == pytest.approx(np.mean([e["ciou_adaptive"] for e in expected]))
    for name in ("summary.json", "per_clip.csv", "success_curve.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    # the folder-of-npy form gives the same numbers
    (tmp_path / "npy").mkdir()
    for k, m in maps.items():
        np.save(tmp_path / "npy" / f"{k}.npy", m)
    s2 = evaluate.evaluate_heatmaps(tmp_path / "npy", tmp_path / "ann.json", tmp_path / "out2")
    assert s2["mean_ciou"] == pytest.approx(s["mean_ciou"])


def test_heatmaps_against_flickr_xml_via_cli(tmp_path, capsys):
    boxes = [[40, 40, 200, 200], [50, 30, 210, 190]]
    write_flickr_xml(tmp_path / "Annotations" / "111.xml", "111", boxes, "dog")
    np.save(tmp_path / "111.npy", perfect_map([0.2, 0.2, 0.75, 0.75]))
    (tmp_path / "maps").mkdir()
    (tmp_path / "111.npy").rename(tmp_path / "maps" / "111.npy")
    rc = main(["eval", "--heatmaps", str(tmp_path / "maps"), "--annotations", str(tmp_path / "Annotations"),
               "--out", str(tmp_path / "out")])
    assert rc == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    expected = metrics.score_clip(np.load(tmp_path / "maps" / "111.npy"), metrics.gt_map_flickr(boxes))
    assert summary["mean_ciou"] == pytest.approx(expected["ciou"])
    assert "pointing" in capsys.readouterr().out


def test_heatmap_errors(tmp_path):
    write_vggss(tmp_path / "ann.json", [{"file": "a", "class": "x", "bbox": [[0, 0, 1, 1]]}])
    with pytest.raises(HearflowError, match="no heatmap id matches"):
        np.savez(tmp_path / "m.npz", b=np.zeros((7, 7)))
        evaluate.evaluate_heatmaps(tmp_path / "m.npz", tmp_path / "ann.json", tmp_path / "o")
    with pytest.raises(HearflowError, match="must be 2-D"):
        np.savez(tmp_path / "m3.npz", a=np.zeros((1, 7, 7)))
        evaluate.evaluate_heatmaps(tmp_path / "m3.npz", tmp_path / "ann.json", tmp_path / "o")
    assert main(["eval", "--heatmaps", str(tmp_path / "none"), "--annotations", "x", "--out", str(tmp_path)]) == 2


def test_model_eval_outputs_and_listen_check(synth_dir, tmp_path):
    import torch

    from hearflow.media.preprocess import PreprocessConfig
    from hearflow.model import ModelConfig, create_model
    from hearflow.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = create_model(ModelConfig(backbone="resnet18_w16"))
    save_checkpoint(tmp_path / "ck", model, PreprocessConfig(image_size=64))
    s = evaluate.evaluate_model(tmp_path / "ck", synth_dir, tmp_path / "out", batch_size=8, progress=False)
    assert s["n"] == 8 and s["split"] == "test" and s["backend"] == "torch"
    assert set(s["listen"]) == {"silence", "noise", "shuffle"}
    assert set(s["by_regime"]) <= {"source_moves", "all_move", "distractor_moves", "static"}
    for name in ("overlay_grid.png", "by_regime.png", "success_curve.png", "per_clip.csv"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    center = evaluate.evaluate_model(None, synth_dir, tmp_path / "c", baseline="center", progress=False)
    expected = metrics.summarize([
        metrics.score_clip(metrics.center_prior_map(7), evaluate.gt_of(c))
        for c in json.loads((next(synth_dir.glob(".hearflow-cache/*")) / "cache.json").read_text())["clips"]
        if c["split"] == "test"
    ])
    assert center["pointing"] == pytest.approx(expected["pointing"])
