"""TensorRT engines: parity with PyTorch (FP32 within 1e-3; FP16 same peak and correlation
>= 0.999), batch 1 and 32 from one engine, chunking above the profile, the timing cache,
and automatic rebuilds when the ONNX file or the build key changes.

Needs an NVIDIA GPU and ``pip install 'hearflow[gpu]'``; skipped elsewhere (the profile
logic and, when onnxconverter-common is installed, the FP16 graph conversion run on CPU).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hearflow.export import export_model, read_manifest
from hearflow.export.onnx import example_inputs
from hearflow.media.preprocess import PreprocessConfig, ezvsl_compat
from hearflow.model import ModelConfig, create_model
from hearflow.model.checkpoint import save_checkpoint
from hearflow.runtime.manifest import Manifest
from hearflow.runtime.tensorrt import BuildSettings, profile_shapes

try:
    import tensorrt  # noqa: F401

    HAVE_TRT = True
except (ImportError, OSError):
    HAVE_TRT = False

GPU_REASON = "needs an NVIDIA GPU and `pip install 'hearflow[gpu]'`"
needs_gpu = pytest.mark.skipif(not (HAVE_TRT and torch.cuda.is_available()), reason=GPU_REASON)
TINY = ModelConfig(backbone="resnet18_w16", flow="cnn")


# ----------------------------------------------------------------------------- CPU parts
def _manifest(pre: PreprocessConfig) -> Manifest:
    graphs = {
        "audio": {"inputs": [{"name": "spectrogram", "shape": ["batch", 1, 257, "time"]}]},
        "visual": {"inputs": [{"name": "frame", "shape": ["batch", 3, 224, 224]},
                              {"name": "audio_embedding", "shape": ["batch", 128]}]},
    }
    return Manifest(Path("."), {"graphs": graphs}, pre, {})


def test_profile_covers_batch_and_spectrogram_length():
    s = BuildSettings(opt_batch=1, max_batch=32)
    shapes = profile_shapes(_manifest(PreprocessConfig()), "audio", s)
    assert shapes == {"spectrogram": [[1, 1, 257, 276], [1, 1, 257, 276], [32, 1, 257, 276]]}
    native = profile_shapes(_manifest(ezvsl_compat()), "audio", BuildSettings(opt_batch=8))
    (lo, opt, hi), = native.values()
    assert lo[0] == 1 and opt[0] == 8 and hi[0] == 32 and lo[3] < opt[3] == 276 < hi[3]
    assert profile_shapes(_manifest(PreprocessConfig()), "visual", s)["frame"][2] == [32, 3, 224, 224]
    with pytest.raises(Exception):
        BuildSettings(opt_batch=64, max_batch=32)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_no_gpu_is_a_one_line_error():
    from hearflow.errors import GPUUnavailable
    from hearflow.runtime.tensorrt import require_cuda

    with pytest.raises(GPUUnavailable) as e:
        require_cuda()
    assert "NVIDIA GPU" in str(e.value) and "\n" not in str(e.value)


def _checkpoint(path, cfg=TINY, seed=0):
    torch.manual_seed(seed)
    model = create_model(cfg).eval()
    save_checkpoint(path, model, PreprocessConfig())
    return model


@pytest.mark.slow
def test_fp16_graph_conversion(tmp_path):
    """The mixed-precision graph keeps float32 I/O and the normalisation in FP32."""
    pytest.importorskip("onnxconverter_common", reason="needs `pip install 'hearflow[gpu]'` (onnxconverter-common)")
    import onnx
    import onnxruntime as ort

    from hearflow.runtime.tensorrt import fp16_onnx

    _checkpoint(tmp_path / "ck")
    export_model(tmp_path / "ck", tmp_path / "ex", check=False)
    m = read_manifest(tmp_path / "ex")
    src = m.graph_path("visual")
    dst = fp16_onnx(src, tmp_path / "visual.fp16.onnx")
    proto = onnx.load(str(dst))
    float32 = onnx.TensorProto.FLOAT
    assert all(v.type.tensor_type.elem_type == float32 for v in list(proto.graph.input) + list(proto.graph.output))
    assert any(n.op_type == "Cast" for n in proto.graph.node)
    x = example_inputs(TINY, m.preprocess, batch=4)
    feed = {k: x[k] for k in ("frame", "flow", "audio_embedding")}
    a = ort.InferenceSession(str(src)).run(None, feed)[0]
    b = ort.InferenceSession(str(dst)).run(None, feed)[0]
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] >= 0.999


# ----------------------------------------------------------------------------- GPU
@pytest.fixture(scope="module")
def trt_export(tmp_path_factory):
    """(torch model, export folder with FP32 engines)."""
    root = tmp_path_factory.mktemp("trt")
    model = _checkpoint(root / "ck")
    data = export_model(root / "ck", root / "ex", format="tensorrt")
    assert data["default_backend"] == "tensorrt" and data["tensorrt"]["fp16"] is False
    return model, root / "ex"


def _reference(model, x):
    with torch.inference_mode():
        emb = model.embed_audio(torch.from_numpy(x["spectrogram"]))
        maps = model.localize(torch.from_numpy(x["frame"]), torch.from_numpy(x["flow"]), emb)
    return emb.numpy(), maps.numpy()


@needs_gpu
@pytest.mark.parametrize("batch", [1, 32])
def test_fp32_engine_matches_pytorch(trt_export, batch):
    from hearflow.runtime.backends import TensorRTBackend, load_backend

    model, ex = trt_export
    be = load_backend(ex)
    assert isinstance(be, TensorRTBackend) and be.preprocess == PreprocessConfig()
    x = example_inputs(TINY, be.preprocess, batch=batch, seed=batch)
    emb_t, maps_t = _reference(model, x)
    emb = be.embed_audio(x["spectrogram"])
    assert emb.dtype == np.float32 and np.abs(emb - emb_t).max() <= 1e-3
    maps = be.localize(x["frame"], x["flow"], emb_t)
    assert maps.shape == maps_t.shape and np.abs(maps - maps_t).max() <= 1e-3


def _argmax_agrees(maps, ref, margin=2e-3):
    """Same peak wherever the reference's top two cells differ by more than FP16 noise."""
    b = len(ref)
    flat, got = ref.reshape(b, -1), maps.reshape(b, -1)
    top2 = np.sort(flat, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > margin
    assert clear.sum() >= b // 2, "too few items with a clear peak to judge"
    return (flat.argmax(1) == got.argmax(1))[clear].all()


@needs_gpu
@pytest.mark.parametrize("cfg", [TINY, ModelConfig()], ids=["w16", "paper-r18"])
def test_fp16_engine_keeps_the_peak(cfg, tmp_path):
    pytest.importorskip("onnxconverter_common", reason=GPU_REASON)
    from hearflow.runtime.backends import TensorRTBackend

    model = _checkpoint(tmp_path / "ck", cfg)
    export_model(tmp_path / "ck", tmp_path / "ex", format="tensorrt", fp16=True)
    be = TensorRTBackend(tmp_path / "ex")
    assert be.runner.settings.fp16 and (tmp_path / "ex" / "visual.fp16.engine").is_file()
    for batch in (1, 32):
        x = example_inputs(cfg, be.preprocess, batch=batch, seed=7)
        emb_t, maps_t = _reference(model, x)
        maps = be.localize(x["frame"], x["flow"], be.embed_audio(x["spectrogram"]))
        assert np.corrcoef(maps.ravel(), maps_t.ravel())[0, 1] >= 0.999
        if batch == 32:
            assert _argmax_agrees(maps, maps_t)
        else:
            assert maps.reshape(-1).argmax() == maps_t.reshape(-1).argmax()


@needs_gpu
def test_batches_above_the_profile_are_chunked(trt_export):
    from hearflow.runtime.backends import load_backend

    model, ex = trt_export
    be = load_backend(ex)
    x = example_inputs(TINY, be.preprocess, batch=40, seed=1)
    emb_t, maps_t = _reference(model, x)
    assert np.abs(be.localize(x["frame"], x["flow"], emb_t) - maps_t).max() <= 1e-3


@needs_gpu
def test_engines_are_reused_then_rebuilt_when_stale(trt_export, tmp_path):
    from hearflow.runtime.tensorrt import TIMING_CACHE, EngineSet, key_path

    ex = Path(shutil.copytree(trt_export[1], tmp_path / "ex"))  # other tests keep the original
    assert (ex / TIMING_CACHE).stat().st_size > 0
    engines = EngineSet(read_manifest(ex))
    assert engines.built == {"audio": False, "visual": False}  # up to date: loaded as is
    # another TensorRT version / GPU in the key → rebuilt
    key_file = key_path(ex / "audio.fp32.engine")
    key = json.loads(key_file.read_text())
    key_file.write_text(json.dumps({**key, "tensorrt": "0.0.0", "gpu": "another GPU"}))
    assert EngineSet(read_manifest(ex)).built == {"audio": True, "visual": False}
    assert json.loads(key_file.read_text()) == key
    # another ONNX file (re-export of other weights) → both rebuilt, and correct
    model = _checkpoint(tmp_path / "ck2", seed=5)
    export_model(tmp_path / "ck2", ex, check=False)
    engines = EngineSet(read_manifest(ex))
    assert engines.built == {"audio": True, "visual": True}
    x = example_inputs(TINY, PreprocessConfig(), batch=2)
    _, maps_t = _reference(model, x)
    emb = engines.run("audio", {"spectrogram": x["spectrogram"]})
    maps = engines.run("visual", {"frame": x["frame"], "flow": x["flow"], "audio_embedding": emb})
    assert np.abs(maps - maps_t).max() <= 1e-3
