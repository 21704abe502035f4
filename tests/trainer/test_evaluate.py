"""`hearflow eval`: any method's maps against Flickr XML / VGG-SS json / a synth folder; a model run."""

import json
import os
import subprocess
import sys
from pathlib import Path

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


# --------------------------------------------------------------------------- bad maps, via the CLI
ROOT = Path(__file__).resolve().parents[2]  # the checkout, so the subprocess runs this code


def hearflow_cli(*args, timeout=120) -> subprocess.CompletedProcess:
    """`hearflow ARGS` in a fresh process, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "hearflow.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def assert_one_line_error(proc, *words):
    """Exit 2, a single `error: ...` line on stderr that holds each of ``words``, no traceback."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("error: "), err
    for w in words:
        assert str(w) in err, (w, err)
    return err


def write_bad(path: Path, kind: str) -> None:
    if kind == "nan":
        m = np.zeros((7, 7), np.float32)
        m[3, 3] = np.nan
        np.save(path, m)
    elif kind == "inf":
        np.save(path, np.full((7, 7), np.inf, np.float32))
    elif kind == "empty":
        np.save(path, np.zeros((0, 14), np.float32))
    elif kind == "text":
        path.write_text("0.1 0.2 0.3\n0.4 0.5 0.6\n")
    elif kind == "object":
        np.save(path, np.array([[{"x": 1}, None]], dtype=object), allow_pickle=True)
    elif kind == "strings":
        np.save(path, np.array([["a", "b"], ["c", "d"]]))


@pytest.mark.parametrize("kind, words", [
    ("nan", ["NaN or infinite", "1 "]),
    ("inf", ["NaN or infinite", "49"]),
    ("empty", ["empty", "0×14"]),
    ("text", ["not a NumPy .npy file"]),
    ("object", ["object array"]),
    ("strings", ["not numbers"]),
])
@pytest.mark.slow
def test_bad_map_file_is_one_line_naming_it(tmp_path, kind, words):
    write_vggss(tmp_path / "ann.json", [{"file": "a", "class": "x", "bbox": [[0.1, 0.1, 0.6, 0.6]]},
                                        {"file": "b", "class": "y", "bbox": [[0.2, 0.2, 0.5, 0.5]]}])
    (tmp_path / "maps").mkdir()
    np.save(tmp_path / "maps" / "a.npy", perfect_map([0.1, 0.1, 0.6, 0.6]))
    write_bad(tmp_path / "maps" / "b.npy", kind)
    proc = hearflow_cli("eval", "--heatmaps", tmp_path / "maps", "--annotations", tmp_path / "ann.json",
                        "--out", tmp_path / "out")
    assert_one_line_error(proc, tmp_path / "maps" / "b.npy", *words)
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.slow
def test_bad_npz_entry_and_non_zip_npz_are_named(tmp_path):
    write_vggss(tmp_path / "ann.json", [{"file": "a", "class": "x", "bbox": [[0.1, 0.1, 0.6, 0.6]]}])
    np.savez(tmp_path / "nan.npz", a=np.full((7, 7), np.nan, np.float32))
    with pytest.raises(HearflowError, match=r"nan\.npz \(entry 'a'\): the map holds 49 NaN"):
        evaluate.load_maps(tmp_path / "nan.npz")
    np.savez(tmp_path / "obj.npz", a=np.array([[None]], dtype=object))
    with pytest.raises(HearflowError, match=r"obj\.npz \(entry 'a'\): holds an object array"):
        evaluate.load_maps(tmp_path / "obj.npz")
    (tmp_path / "text.npz").write_text("a,b\n1,2\n")
    proc = hearflow_cli("eval", "--heatmaps", tmp_path / "text.npz", "--annotations", tmp_path / "ann.json",
                        "--out", tmp_path / "out")
    assert_one_line_error(proc, tmp_path / "text.npz", "not a zip archive")


@pytest.mark.slow
def test_missing_maps_are_an_error_unless_allowed(tmp_path):
    ids = [f"clip{i}" for i in range(8)]
    write_vggss(tmp_path / "ann.json", [{"file": k, "class": "x", "bbox": [[0.1, 0.1, 0.6, 0.6]]} for k in ids]
                + [{"file": "negative", "class": "x", "bbox": []}])  # no box: never needs a map
    (tmp_path / "maps").mkdir()
    for k in ids[:2]:
        np.save(tmp_path / "maps" / f"{k}.npy", perfect_map([0.1, 0.1, 0.6, 0.6]))
    args = ["eval", "--heatmaps", tmp_path / "maps", "--annotations", tmp_path / "ann.json", "--out", tmp_path / "out"]
    err = assert_one_line_error(hearflow_cli(*args), tmp_path / "maps", "no map for 6 of 8 annotated clips",
                                "clip2, clip3, clip4, clip5, clip6, ... 1 more", "--allow-missing")
    assert "negative" not in err
    assert not (tmp_path / "out").exists()
    ok = hearflow_cli(*args, "--allow-missing")
    assert ok.returncode == 0, ok.stderr
    assert "scored 2 of 8 annotated clips (6 without a map, e.g. clip2, clip3" in ok.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n"] == 2 and summary["annotated"] == 8 and summary["annotated_without_map"] == 6
    assert summary["missing_maps"] == ids[2:]


def test_maps_of_one_split_need_not_cover_the_others(tmp_path):
    """A synth dataset's annotations.json holds every split; test maps are checked against test only."""
    recs = [{"file": f"{s}_{i}", "class": "x", "bbox": [[0.1, 0.1, 0.6, 0.6]], "split": s}
            for s in ("train", "test") for i in range(3)]
    write_vggss(tmp_path / "annotations.json", recs)
    np.savez(tmp_path / "maps.npz", **{f"test_{i}": perfect_map([0.1, 0.1, 0.6, 0.6]) for i in range(3)})
    s = evaluate.evaluate_heatmaps(tmp_path / "maps.npz", tmp_path, tmp_path / "out")
    assert s["n"] == 3 and s["annotated"] == 3 and s["annotated_without_map"] == 0
    np.savez(tmp_path / "maps2.npz", **{f"test_{i}": perfect_map([0.1, 0.1, 0.6, 0.6]) for i in range(2)})
    with pytest.raises(HearflowError, match=r"no map for 1 of 3 annotated clips .*\(test_2\)"):
        evaluate.evaluate_heatmaps(tmp_path / "maps2.npz", tmp_path, tmp_path / "out2")
