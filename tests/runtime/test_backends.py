"""The inference-backend interface: load_backend dispatch, ONNX Runtime session settings,
the evaluator giving the same metrics on torch and onnxruntime, and one-line errors for
damaged export folders and unavailable devices/runtimes."""

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch

from hearflow.errors import GPUUnavailable, HearflowError, MissingDependency
from hearflow.export import ExportError, export_model
from hearflow.export.onnx import example_inputs
from hearflow.media.preprocess import PreprocessConfig
from hearflow.model import ModelConfig, create_model
from hearflow.model.checkpoint import save_checkpoint
from hearflow.runtime.backends import OnnxRuntimeBackend, TorchBackend, load_backend, physical_cores

CFG = ModelConfig(backbone="resnet18_w16", flow="cnn")
PRE = PreprocessConfig(image_size=128)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """(checkpoint dir, export dir) of one tiny random model."""
    root = tmp_path_factory.mktemp("backends")
    torch.manual_seed(0)
    save_checkpoint(root / "ckpt", create_model(CFG), PRE)
    export_model(root / "ckpt", root / "export", check=False)
    return root / "ckpt", root / "export"


@pytest.fixture
def export_copy(model_dirs, tmp_path):
    """A copy of the export folder a test may damage."""
    return shutil.copytree(model_dirs[1], tmp_path / "export")


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- dispatch
@pytest.mark.slow
def test_load_backend_picks_the_runtime_from_the_folder(model_dirs):
    ckpt, export = model_dirs
    assert isinstance(load_backend(ckpt), TorchBackend)
    be = load_backend(export)
    assert isinstance(be, OnnxRuntimeBackend)
    assert be.preprocess == PRE and be.model_config["backbone"] == "resnet18_w16" and be.uses_flow
    assert isinstance(load_backend(export, "onnxruntime", device="cpu", threads=1), OnnxRuntimeBackend)


def test_load_backend_refuses_mismatched_requests(model_dirs, tmp_path):
    ckpt, export = model_dirs
    with pytest.raises(HearflowError) as e:
        load_backend(export, "torch")
    assert "checkpoint" in one_line(e)
    with pytest.raises(HearflowError) as e:
        load_backend(ckpt, "onnxruntime")
    assert "hearflow export" in one_line(e)
    with pytest.raises(HearflowError) as e:
        load_backend(export, "openvino")
    assert "unknown backend" in one_line(e)
    with pytest.raises(HearflowError) as e:
        load_backend(tmp_path / "missing")
    assert "not found" in one_line(e)


def test_backends_agree(model_dirs):
    ckpt, export = model_dirs
    tb, ob = load_backend(ckpt, device="cpu"), load_backend(export, device="cpu")
    x = example_inputs(CFG, PRE, batch=3, seed=4)
    emb_t, emb_o = tb.embed_audio(x["spectrogram"]), ob.embed_audio(x["spectrogram"])
    assert emb_o.dtype == np.float32 and np.abs(emb_t - emb_o).max() <= 1e-4
    maps_t, maps_o = tb.localize(x["frame"], x["flow"], emb_t), ob.localize(x["frame"], x["flow"], emb_t)
    assert maps_o.shape == (3, 4, 4) and np.abs(maps_t - maps_o).max() <= 1e-4
    # float64 and non-contiguous inputs are converted, not rejected
    assert np.abs(ob.localize(x["frame"].astype(np.float64), x["flow"][:, :, :, :], emb_t) - maps_o).max() <= 1e-6
    with pytest.raises(HearflowError) as e:
        ob.localize(x["frame"], None, emb_t)
    assert "flow" in one_line(e)


# ----------------------------------------------------------------------------- onnxruntime settings
def test_onnxruntime_sessions_and_threads(model_dirs):
    _, export = model_dirs
    be = OnnxRuntimeBackend(export, device="cpu")
    assert be.threads == physical_cores() and 1 <= physical_cores() <= (__import__("os").cpu_count() or 1)
    sessions = dict(be.sessions)
    x = example_inputs(CFG, PRE, batch=1)
    be.localize(x["frame"], x["flow"], be.embed_audio(x["spectrogram"]))
    assert be.sessions == sessions  # made once, reused
    for sess in sessions.values():
        opts = sess.get_session_options()
        assert opts.intra_op_num_threads == physical_cores()
        assert opts.inter_op_num_threads == 1
        assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
        assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        assert sess.get_providers() == ["CPUExecutionProvider"]
    one = OnnxRuntimeBackend(export, device="cpu", threads=1)
    assert all(s.get_session_options().intra_op_num_threads == 1 for s in one.sessions.values())


def test_cuda_asked_for_without_a_gpu(model_dirs):
    ckpt, export = model_dirs
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(GPUUnavailable) as e:
        load_backend(export, device="cuda")
    assert "onnxruntime-gpu" in one_line(e)
    if not torch.cuda.is_available():
        with pytest.raises(GPUUnavailable) as e:
            load_backend(ckpt, device="cuda")
        assert "--device cpu" in one_line(e)


def test_tensorrt_backend_without_tensorrt(model_dirs):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here (tests/test_tensorrt.py covers it)")
    except ImportError:
        pass
    with pytest.raises(MissingDependency) as e:
        load_backend(model_dirs[1], "tensorrt")
    assert "pip install 'hearflow[gpu]'" in one_line(e)


# ----------------------------------------------------------------------------- damaged exports
def test_manifest_missing_or_corrupt(export_copy):
    manifest = export_copy / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])
    with pytest.raises(ExportError) as e:
        load_backend(export_copy)
    assert "not valid JSON" in one_line(e)
    manifest.write_text(json.dumps({**json.loads(text), "format": "something-else/9"}))
    with pytest.raises(ExportError) as e:
        load_backend(export_copy)
    assert "hearflow-export/1" in one_line(e)
    data = json.loads(text)
    del data["graphs"]["visual"]
    manifest.write_text(json.dumps(data))
    with pytest.raises(ExportError) as e:
        load_backend(export_copy)
    assert "visual" in one_line(e)
    manifest.unlink()
    with pytest.raises(ExportError) as e:
        load_backend(export_copy)
    assert "manifest.json" in one_line(e)


def test_onnx_file_missing_or_corrupt(export_copy):
    visual = export_copy / "visual.onnx"
    blob = visual.read_bytes()
    visual.write_bytes(blob[: len(blob) // 3])
    with pytest.raises(ExportError) as e:
        load_backend(export_copy)
    assert "sha256" in one_line(e) and "visual.onnx" in one_line(e)
    # without the hash check, the runtime's own failure is still one clear line
    with pytest.raises(ExportError) as e:
        OnnxRuntimeBackend(export_copy, device="cpu", verify=False)
    assert "cannot load" in one_line(e)
    visual.unlink()
    with pytest.raises(ExportError) as e:
        load_backend(export_copy)
    assert "missing" in one_line(e)


# ----------------------------------------------------------------------------- evaluator
def test_evaluator_gives_the_same_metrics_on_torch_and_onnxruntime(model_dirs, tmp_path):
    from hearflow.media.synth import SynthConfig, generate
    from hearflow.trainer.evaluate import evaluate_model

    ckpt, export = model_dirs
    data = tmp_path / "synth"
    generate(data, SynthConfig(duration=1.0), train=0, val=0, test=6, seed=1, workers=1, progress=False)
    kw = dict(listen=False, save_maps=True, workers=1, progress=False, device="cpu")
    s_torch = evaluate_model(ckpt, data, tmp_path / "eval_torch", backend="torch", **kw)
    s_ort = evaluate_model(export, data, tmp_path / "eval_ort", **kw)
    assert s_torch["backend"] == "torch" and s_ort["backend"] == "onnxruntime"
    assert s_torch["n"] == s_ort["n"] > 0
    # decisions (peak location, success at 0.5) identical; continuous means within
    # what 1e-6 differences in the maps can move a thresholded IoU
    for key in ("pointing", "ciou@0.5", "ciou_adap@0.5"):
        assert s_torch[key] == s_ort[key], key
    for key in ("auc", "auc_adap", "mean_ciou", "mean_ciou_adap"):
        assert s_torch[key] == pytest.approx(s_ort[key], abs=1e-4), key
    with np.load(tmp_path / "eval_torch" / "maps.npz") as a, np.load(tmp_path / "eval_ort" / "maps.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert max(np.abs(a[k] - b[k]).max() for k in a.files) <= 1e-4


# ----------------------------------------------------------------------------- benchmark
def test_bench_model_reports_latency_and_throughput(model_dirs):
    from hearflow.export.model_benchmark import bench_model, format_bench

    ckpt, export = model_dirs
    kw = dict(batch_sizes=(1, 2), warmup=1, iterations=3, budget_s=1.0, threads=1, device="cpu")
    ort_run = bench_model(export, **kw)
    torch_run = bench_model(ckpt, "torch", **kw)
    for result, name in ((ort_run, "onnxruntime"), (torch_run, "torch")):
        (run,) = result["runs"]
        assert run["backend"] == name and run["threads"] == 1
        order = [(r["graph"], r["batch"]) for r in run["rows"]]
        assert order == [("audio", 1), ("visual", 1), ("audio", 2), ("visual", 2)]
        assert all(r["n"] == 3 and 0 < r["min_ms"] <= r["median_ms"] <= r["p99_ms"] for r in run["rows"])
        one = {r["graph"]: r["median_ms"] for r in run["rows"] if r["batch"] == 1}
        assert run["per_frame_ms"] == pytest.approx(one["visual"] + one["audio"] / 3)
    assert ort_run["image_size"] == 128 and ort_run["spectrogram"] == [257, 276]
    text = format_bench(ort_run, goal_ms=1e6)
    assert "onnxruntime" in text and "goal ≤ 1e+06 ms: met" in text
    with pytest.raises(HearflowError):
        bench_model(export, "torch", **kw)
