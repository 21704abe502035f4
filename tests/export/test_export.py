"""ONNX export: parity with PyTorch for every model variant, dynamic axes, self-describing
files, and clear errors for bad checkpoints and options.

Models are tiny (resnet18_w16) with random weights; each variant is exported once per
module (the dynamo exporter takes a few seconds per graph).
"""

import dataclasses
import json

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import load_file, save_file

from hearflow.errors import MissingDependency
from hearflow.export import (
    ExportError,
    UnsupportedModel,
    export_model,
    format_export,
    read_manifest,
    read_onnx_metadata,
)
from hearflow.export.onnx import EXPORTABLE, OPSET, _prepare_out, example_inputs
from hearflow.media.audio import audio_input
from hearflow.media.flow import FlowEstimator
from hearflow.media.frames import frame_input
from hearflow.media.preprocess import PreprocessConfig, ezvsl_compat
from hearflow.media.synth import SynthConfig, scene_from_config
from hearflow.model import ModelConfig, create_model
from hearflow.model.checkpoint import CheckpointError, file_sha256, save_checkpoint
from hearflow.runtime.backends import OnnxRuntimeBackend, load_backend
from hearflow.runtime.manifest import time_range

W16 = "resnet18_w16"
# every flow branch, both map sizes, with and without projection heads
# (smaller frames where the size does not matter, to keep the file fast)
VARIANTS = {
    "cnn-7": (ModelConfig(backbone=W16, flow="cnn"), PreprocessConfig()),
    "maxpool-14": (ModelConfig(backbone=W16, flow="maxpool", feature_size=14), PreprocessConfig(image_size=128)),
    "none-7-proj": (ModelConfig(backbone=W16, flow="none", proj_dim=32), ezvsl_compat()),
    "cnn-14-proj": (ModelConfig(backbone=W16, flow="cnn", feature_size=14, proj_dim=64),
                    PreprocessConfig(image_size=128, flow="farneback")),
}
ATOL = 1e-4


def make_checkpoint(path, cfg: ModelConfig, pre: PreprocessConfig, seed: int = 0):
    torch.manual_seed(seed)
    model = create_model(cfg)
    # random BatchNorm statistics, so folding them into the convolutions is exercised
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    save_checkpoint(path, model, pre, epoch=3)
    return model.eval()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """get(name) → (name, torch model, checkpoint dir, export dir, manifest dict, ORT backend),
    each variant exported once for the whole module."""
    done = {}

    def get(name):
        if name not in done:
            cfg, pre = VARIANTS[name]
            root = tmp_path_factory.mktemp(name)
            model = make_checkpoint(root / "ckpt", cfg, pre)
            # the default variant also runs the exporter's own ONNX Runtime check
            data = export_model(root / "ckpt", root / "export", check=name == "cnn-7")
            done[name] = (name, model, root / "ckpt", root / "export", data,
                          OnnxRuntimeBackend(root / "export", device="cpu"))
        return done[name]

    return get


@pytest.fixture(params=list(VARIANTS))
def exported(request, exports):
    return exports(request.param)


def torch_maps(model, x):
    with torch.inference_mode():
        emb = model.embed_audio(torch.from_numpy(x["spectrogram"]))
        flow = torch.from_numpy(x["flow"]) if "flow" in x else None
        maps = model.localize(torch.from_numpy(x["frame"]), flow, emb)
    return emb.numpy(), maps.numpy()


def assert_same_maps(got, want):
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= ATOL
    b = len(want)
    assert (got.reshape(b, -1).argmax(1) == want.reshape(b, -1).argmax(1)).all()


# ----------------------------------------------------------------------------- parity
@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 5])
def test_parity_random_inputs_batch_1_and_n(exported, batch):
    _, model, _, _, _, be = exported
    x = example_inputs(model.cfg, be.preprocess, batch=batch, seed=batch)
    emb_t, maps_t = torch_maps(model, x)
    emb_o = be.embed_audio(x["spectrogram"])
    assert np.abs(emb_o - emb_t).max() <= ATOL
    maps_o = be.localize(x["frame"], x.get("flow"), emb_o)
    assert_same_maps(maps_o, maps_t)


def real_inputs(pre: PreprocessConfig, n: int = 3) -> dict[str, np.ndarray]:
    """Frames, flows and spectrograms made by hearflow.media from a synthetic scene."""
    scene = scene_from_config(SynthConfig(duration=2.0), seed=3)
    est = FlowEstimator(pre)
    rate = pre.rate_for(scene.sample_rate)
    wave = scene.audio(0, int(4 * scene.sample_rate))  # the scene's rate; resampling not needed
    assert rate == scene.sample_rate
    frames, flows, specs = [], [], []
    for i in (10, 20, 30)[:n]:
        frames.append(frame_input(scene.frame(i), pre))
        flows.append(est(est.gray(scene.frame(i - 1)), est.gray(scene.frame(i)), scene.fps))
        specs.append(audio_input(wave, rate, i / scene.fps, pre))
    return {"frame": np.stack(frames), "flow": np.stack(flows), "spectrogram": np.stack(specs)}


def test_parity_real_inputs(exported):
    _, model, _, _, _, be = exported
    x = real_inputs(be.preprocess)
    if not model.uses_flow:
        del x["flow"]
    emb_t, maps_t = torch_maps(model, x)
    emb_o = be.embed_audio(x["spectrogram"])
    assert np.abs(emb_o - emb_t).max() <= ATOL
    assert_same_maps(be.localize(x["frame"], x.get("flow"), emb_o), maps_t)


def test_spectrogram_time_axis_is_dynamic(exports):
    """Other sample rates give other T (EZ-VSL's native rate): the same audio graph takes them."""
    _, model, _, _, data, be = exports("none-7-proj")
    lo, nominal, hi = time_range(ezvsl_compat())
    assert data["time_frames"] == {"min": lo, "nominal": nominal, "max": hi} and lo < nominal < hi
    for t in (lo, 180, hi):
        spec = np.random.default_rng(t).standard_normal((2, 1, 257, t)).astype(np.float32)
        with torch.inference_mode():
            want = model.embed_audio(torch.from_numpy(spec)).numpy()
        assert np.abs(be.embed_audio(spec) - want).max() <= ATOL


# ----------------------------------------------------------------------------- self-description
def test_manifest_and_onnx_metadata_describe_the_model(exported):
    name, model, ckpt, out, data, _ = exported
    cfg, pre = VARIANTS[name]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "hearflow-export/1" and manifest["opset"] == OPSET >= 18
    assert manifest["default_backend"] == "onnxruntime" and manifest["tensorrt"] is None
    assert manifest["model"] == dataclasses.asdict(cfg)
    assert PreprocessConfig.from_dict(manifest["preprocess"]) == pre
    assert manifest["source"]["weights_sha256"] == file_sha256(ckpt / "model.safetensors")
    side = pre.image_size // (32 if cfg.feature_size == 7 else 16)
    visual_inputs = ["frame", "flow", "audio_embedding"] if cfg.flow != "none" else ["frame", "audio_embedding"]
    for graph, inputs, output, shape in (
        ("audio", ["spectrogram"], "audio_embedding", ["batch", cfg.embed_dim]),
        ("visual", visual_inputs, "map", ["batch", side, side]),
    ):
        g = manifest["graphs"][graph]
        path = out / g["file"]
        assert g["sha256"] == file_sha256(path)
        assert [t["name"] for t in g["inputs"]] == inputs
        assert g["outputs"] == [{"name": output, "shape": shape, "dtype": "float32"}]
        # the file alone: hearflow metadata, and the graph's real I/O matches the manifest
        meta = read_onnx_metadata(path)
        assert meta["graph"] == graph and meta["version"]
        assert meta["source_sha256"] == manifest["source"]["weights_sha256"]
        assert PreprocessConfig.from_dict(meta["preprocess"]) == pre
        assert meta["model"] == manifest["model"] and meta["inputs"] == g["inputs"] and meta["outputs"] == g["outputs"]
        proto = onnx.load(str(path))
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == OPSET
        for value, spec in zip(list(proto.graph.input) + list(proto.graph.output), g["inputs"] + g["outputs"]):
            dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            assert value.name == spec["name"]
            assert dims == spec["shape"]
    # load_backend from the folder alone rebuilds the PreprocessConfig
    be = load_backend(out)
    assert be.name == "onnxruntime" and be.preprocess == pre and be.uses_flow == (cfg.flow != "none")
    assert read_manifest(out).preprocess == pre


def test_format_export_and_check(exported):
    name, _, _, out, data, _ = exported
    text = format_export(data, out)
    assert "audio.onnx" in text and "visual.onnx" in text and "onnxruntime" in text
    if name == "cnn-7":
        assert data["check_max_diff"] <= ATOL and "check:" in text


def test_output_folder_rules(tmp_path, exports):
    """A previous export may be replaced; any other non-empty folder is refused."""
    _prepare_out(exports("cnn-7")[3])
    _prepare_out(tmp_path / "new" / "dir")
    (tmp_path / "interrupted").mkdir()  # an export that failed before writing its manifest
    (tmp_path / "interrupted" / "audio.onnx").write_bytes(b"x")
    _prepare_out(tmp_path / "interrupted")
    assert (tmp_path / "new" / "dir").is_dir()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError) as e:
        _prepare_out(tmp_path / "busy")
    assert "not empty" in one_line(e)
    assert not list(exports("cnn-7")[3].glob("*.tmp"))


# ----------------------------------------------------------------------------- bad input
def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


def test_missing_and_corrupt_checkpoint(tmp_path):
    with pytest.raises(CheckpointError) as e:
        export_model(tmp_path / "nope", tmp_path / "out")
    assert "not found" in one_line(e)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError) as e:
        export_model(tmp_path / "bad", tmp_path / "out")
    assert "safetensors" in one_line(e)
    assert not (tmp_path / "out").exists()


def _rewrite_model_config(path, **changes):
    """Change the model config stored in a checkpoint's safetensors header."""
    weights = path / "model.safetensors"
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        header = json.loads(f.metadata()["hearflow"])
    header["model"].update(changes)
    save_file(load_file(str(weights)), str(weights), metadata={"hearflow": json.dumps(header)})
    (path / "meta.json").unlink()


def test_unknown_model_config_is_refused(tmp_path):
    make_checkpoint(tmp_path / "future", ModelConfig(backbone=W16), PreprocessConfig(image_size=64))
    _rewrite_model_config(tmp_path / "future", attention_heads=4)
    with pytest.raises(UnsupportedModel) as e:
        export_model(tmp_path / "future", tmp_path / "out")
    assert "attention_heads" in one_line(e) and "unknown" in one_line(e)

    make_checkpoint(tmp_path / "variant", ModelConfig(backbone=W16), PreprocessConfig(image_size=64))
    _rewrite_model_config(tmp_path / "variant", flow="raft")
    with pytest.raises(UnsupportedModel) as e:
        export_model(tmp_path / "variant", tmp_path / "out")
    assert "flow='raft'" in one_line(e)


def test_exporter_knows_every_model_config_field():
    """A new ModelConfig field must be reviewed for export (and added to EXPORTABLE)."""
    assert set(EXPORTABLE) == {f.name for f in dataclasses.fields(ModelConfig)}


def test_bad_options_and_output_folder(tmp_path):
    make_checkpoint(tmp_path / "ck", ModelConfig(backbone=W16), PreprocessConfig(image_size=64))
    with pytest.raises(ExportError) as e:
        export_model(tmp_path / "ck", tmp_path / "out", fp16=True)
    assert "--format tensorrt" in one_line(e)
    with pytest.raises(ExportError) as e:
        export_model(tmp_path / "ck", tmp_path / "out", format="tflite")
    assert "tflite" in one_line(e)
    with pytest.raises(ExportError) as e:
        export_model(tmp_path / "ck", tmp_path / "out", opset=17)
    assert "opset" in one_line(e)


def test_tensorrt_export_without_tensorrt(tmp_path):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    make_checkpoint(tmp_path / "ck", ModelConfig(backbone=W16), PreprocessConfig(image_size=64))
    with pytest.raises(MissingDependency) as e:
        export_model(tmp_path / "ck", tmp_path / "out", format="tensorrt")
    assert "pip install 'hearflow[gpu]'" in one_line(e)
    assert not (tmp_path / "out").exists()  # refused before any work
