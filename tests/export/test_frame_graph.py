"""frame.onnx (hearflow export --frame-graph): two uint8 frames + audio embedding → map in
one graph, on a real ONNX Runtime session, against the torch path and the two-graph engine."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hearflow.engine.benchmark import camera_clip
from hearflow.export import export_model
from hearflow.export.frame_graph import FrameGraph
from hearflow.media.decode.video import read_frames
from hearflow.media.preprocess import PreprocessConfig
from hearflow.model import ModelConfig, create_model
from hearflow.model.checkpoint import save_checkpoint
from hearflow.runtime.backends import load_backend
from hearflow.runtime.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[2]
SIZE = (160, 120)


def hearflow(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "hearflow", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return camera_clip(tmp_path_factory.mktemp("fg") / "cam.mp4", *SIZE, 15.0, 1.0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny torch-Farneback model exported with a 160×120 frame graph, and without one."""
    tmp = tmp_path_factory.mktemp("fg_export")
    torch.manual_seed(0)
    pre = dataclasses.replace(PreprocessConfig(), image_size=64, flow="torch_farneback")
    model = create_model(ModelConfig(backbone="resnet18_w16"))
    ck = save_checkpoint(tmp / "ck", model, pre)
    export_model(ck, tmp / "with", frame_graph=SIZE)
    export_model(ck, tmp / "without")
    return tmp


@pytest.mark.slow
def test_frame_graph_matches_the_torch_module_on_real_frames(exported, clip):
    m = read_manifest(exported / "with")
    fg = m.frame_graph
    assert fg["frame_size"] == list(SIZE) and fg["check_max_diff"] <= 2e-3
    assert [t["name"] for t in fg["inputs"]] == ["earlier", "later", "audio_embedding", "fps"]
    assert (exported / "with" / fg["file"]).is_file() and read_manifest(exported / "without").frame_graph is None
    be = load_backend(exported / "with")
    assert be.frame_size == SIZE
    from hearflow.model.checkpoint import load_checkpoint

    ck = load_checkpoint(exported / "ck")
    module = FrameGraph(ck.model, ck.preprocess)
    frames = [f for _, f in zip(range(6), read_frames(clip))]
    emb = be.embed_audio(np.random.default_rng(1).standard_normal((1, 1, 257, 276)).astype(np.float32))
    for a, b in zip(frames, frames[1:]):
        got = be.localize_frames(a.rgb[None], b.rgb[None], emb, 15.0)
        with torch.inference_mode():
            want = module(torch.from_numpy(a.rgb[None]), torch.from_numpy(b.rgb[None]), torch.from_numpy(emb),
                          torch.tensor(15.0)).numpy()
        assert np.argmax(got) == np.argmax(want)
        np.testing.assert_allclose(got, want, atol=2e-3)


@pytest.mark.slow
def test_the_engine_uses_the_frame_graph_and_gives_the_two_graph_maps(exported, clip, tmp_path):
    runs = {}
    for name in ("with", "without"):
        proc = hearflow("run", "--model", exported / name, "--video", clip, "--sink", f"jsonl:{tmp_path}/{name}.jsonl",
                        "--no-status")
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[name] = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    assert len(runs["with"]) == len(runs["without"]) == 15
    assert [r["peak"] for r in runs["with"]] == [r["peak"] for r in runs["without"]]
    np.testing.assert_allclose([r["peak_value"] for r in runs["with"]], [r["peak_value"] for r in runs["without"]],
                               atol=2e-3)


@pytest.mark.slow
def test_a_source_of_another_size_runs_the_two_graphs_with_a_note(exported, tmp_path):
    other = camera_clip(tmp_path / "small.mp4", 96, 64, 15.0, 0.5)
    proc = hearflow("run", "--model", exported / "with", "--video", other, "--sink", f"jsonl:{tmp_path}/r.jsonl",
                    "--no-status")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "frame graph takes 160x120 frames and this source gives 96x64" in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["processed"] == summary["captured"] == len((tmp_path / "r.jsonl").read_text().splitlines()) > 0


def test_a_dis_model_cannot_have_a_frame_graph(tmp_path):
    ck = save_checkpoint(tmp_path / "ck", create_model(ModelConfig(backbone="resnet18_w16")),
                         PreprocessConfig(image_size=64))  # flow: dis
    proc = hearflow("export", ck, "--to", tmp_path / "out", "--frame-graph", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --frame-graph needs Farneback flow (flow: farneback or torch_farneback); this model was trained "
        "with DIS, which has no torch version: export without --frame-graph"]
    assert not (tmp_path / "out").exists()  # refused before the export started


@pytest.mark.parametrize("text", ["640", "axb", "8x8", "640x480x3"])
def test_bad_frame_sizes_are_one_line(tmp_path, text):
    proc = hearflow("export", ROOT / "checkpoints" / "synth_tiny", "--to", tmp_path / "out", "--frame-graph", text,
                    timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --frame-graph") and "\n" == proc.stderr[-1:]
