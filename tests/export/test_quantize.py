"""INT8 export (ONNX Runtime static quantization): the mechanics, on a tiny random model.

Random weights say nothing about accuracy (see docs/benchmarks.md for a trained model);
here: the INT8 graphs load, run at batch 1 and N, follow FP32 closely on real inputs made
by the media layer, are really quantized where they should be and float where they should
not, and the manifest / ONNX metadata / backend agree on which precision is loaded.
"""

import json

import numpy as np
import onnx
import pytest
import torch

from hearflow.errors import HearflowError
from hearflow.export import ExportError, export_model, format_export, read_manifest, read_onnx_metadata
from hearflow.export.quantize import dataset_inputs, synthetic_inputs, trunk_nodes
from hearflow.media.preprocess import PreprocessConfig
from hearflow.model import ModelConfig, create_model
from hearflow.model.checkpoint import save_checkpoint
from hearflow.runtime.backends import OnnxRuntimeBackend, load_backend
from hearflow.runtime.manifest import INT8_FILES

CFG = ModelConfig(backbone="resnet18_w16", flow="cnn")
PRE = PreprocessConfig(image_size=128)  # small frames keep the file fast; the graph is the same
CLIPS = 12


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each item's flattened maps."""
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory, synth_dir):
    """(checkpoint, export folder, manifest dict) of a tiny model exported with --int8,
    calibrated on the train split of a `hearflow synth` dataset."""
    root = tmp_path_factory.mktemp("int8")
    torch.manual_seed(0)
    model = create_model(CFG)
    for m in model.modules():  # non-trivial BatchNorm statistics to fold
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    save_checkpoint(root / "ckpt", model, PRE)
    data = export_model(root / "ckpt", root / "export", check=False, int8=True, calibration=synth_dir,
                        calibration_clips=CLIPS, progress=False)
    return root / "ckpt", root / "export", data


@pytest.fixture(scope="module")
def test_inputs(synth_dir):
    """Real model inputs of clips the calibration did not see (the test split)."""
    from hearflow.trainer.data import CacheIndex, ClipDataset
    from hearflow.trainer.clip_cache import ensure_cache

    index = CacheIndex(ensure_cache(synth_dir, PRE, progress=False))
    items = [it for it in ClipDataset(index, index.indices("test"))]
    return {k: np.stack([it[src].numpy() for it in items])
            for k, src in (("frame", "frame"), ("flow", "flow"), ("spectrogram", "spec"))}


@pytest.mark.slow
def test_int8_runs_at_batch_1_and_n_and_follows_fp32(int8_export, test_inputs):
    _, out, _ = int8_export
    int8 = OnnxRuntimeBackend(out, device="cpu", threads=1)
    fp32 = OnnxRuntimeBackend(out, device="cpu", threads=1, precision="fp32")
    assert int8.precision == "int8" and fp32.precision == "fp32" and "int8" in int8.describe()
    x = test_inputs
    n = len(x["frame"])
    emb8, emb32 = int8.embed_audio(x["spectrogram"]), fp32.embed_audio(x["spectrogram"])
    assert emb8.shape == emb32.shape == (n, CFG.embed_dim) and emb8.dtype == np.float32
    cos = (emb8 * emb32).sum(1) / np.linalg.norm(emb8, axis=1)  # fp32 embeddings are unit-norm
    assert cos.min() > 0.95
    side = PRE.image_size // 32
    maps8 = int8.localize(x["frame"], x["flow"], emb32)
    maps32 = fp32.localize(x["frame"], x["flow"], emb32)
    assert maps8.shape == maps32.shape == (n, side, side) and maps8.dtype == np.float32
    corr = _corr(maps8, maps32)
    assert corr.min() > 0.95, corr
    # batch 1 gives what the same item gives inside a batch (no cross-item statistics)
    one = int8.localize(x["frame"][:1], x["flow"][:1], emb32[:1])
    np.testing.assert_allclose(one[0], maps8[0], atol=1e-4)
    np.testing.assert_allclose(int8.embed_audio(x["spectrogram"][:1])[0], emb8[0], atol=1e-4)


def test_manifest_metadata_and_format_record_the_precision(int8_export, synth_dir):
    _, out, data = int8_export
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest == json.loads(json.dumps(data))
    q = manifest["int8"]
    assert q["calibration"] == {"source": synth_dir.name, "split": "train", "clips": CLIPS, "method": "minmax"}
    assert q["quantization"]["activations"] == "QUInt8" and q["quantization"]["weights"] == "QInt8"
    assert q["quantization"]["per_channel"] is True and q["quantization"]["reduce_range"] is False
    assert q["check"]["map_correlation_min"] > 0.95 and q["check"]["clips"] == CLIPS
    m = read_manifest(out)
    assert m.precision == "int8" and m.precisions == ("fp32", "int8")
    for graph, file in INT8_FILES.items():
        assert q["graphs"][graph]["file"] == file and m.graph_path(graph, "int8") == out / file
        assert m.graph_path(graph) == out / manifest["graphs"][graph]["file"]  # FP32 kept, the default path
        meta8, meta32 = read_onnx_metadata(out / file), read_onnx_metadata(m.graph_path(graph))
        assert meta8["precision"] == "int8" and meta32["precision"] == "fp32"
        assert meta8["graph"] == graph and meta8["inputs"] == meta32["inputs"]
        assert meta8["source_sha256"] == manifest["source"]["weights_sha256"]
    text = format_export(data, out)
    assert "visual.int8.onnx" in text and "INT8" in text and synth_dir.name in text
    assert load_backend(out).precision == "int8"
    assert load_backend(out, precision="fp32").precision == "fp32"
    assert load_backend(out, "onnxruntime-fp32").precision == "fp32"
    assert load_backend(out, "onnxruntime-int8").precision == "int8"


def test_only_the_trunks_are_quantized(int8_export):
    _, out, data = int8_export
    for graph, file in INT8_FILES.items():
        proto = onnx.load(str(out / file))
        ops = [n.op_type for n in proto.graph.node]
        assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
        inits = {i.name: i for i in proto.graph.initializer}
        int8_weights = [i for i in inits.values() if i.data_type == onnx.TensorProto.INT8]
        float_convs = [n for n in proto.graph.node if n.op_type == "Conv" and n.input[1] in inits
                       and inits[n.input[1]].data_type == onnx.TensorProto.FLOAT]
        assert len(int8_weights) >= 20  # the trunk convolutions (20 in a ResNet18 trunk)
        # the flow attention's query/key/value 1×1 convs stay float; the audio graph has none
        assert len(float_convs) == (3 if graph == "visual" else 0)
        # the head computes in float: its ops neither read dequantized tensors (only the
        # trunk's output, read by the global max pool / attention, is one) nor get quantized
        producers = {o: n.op_type for n in proto.graph.node for o in n.output}
        consumers = {}
        for node in proto.graph.node:
            for i in node.input:
                consumers.setdefault(i, []).append(node.op_type)
        for node in proto.graph.node:
            if node.op_type in ("ReduceL2", "Softmax", "Einsum", "MatMul", "Div"):
                assert all(producers.get(i) != "DequantizeLinear" for i in node.input), node.name
            if node.op_type in ("ReduceMax", "ReduceL2", "Softmax", "Einsum", "MatMul", "Div"):
                assert "QuantizeLinear" not in consumers.get(node.output[0], []), node.name
        assert data["int8"]["nodes_quantized"][graph] == len(trunk_nodes(onnx.load(str(out / f"{graph}.onnx"))))


def test_synthetic_calibration_inputs():
    pre = PreprocessConfig(image_size=96)
    x = synthetic_inputs(pre, clips=3, seed=5)
    t = pre.spectrogram_frames(pre.rate_for(22050))
    assert x["frame"].shape == (3, 3, 96, 96) and x["flow"].shape == (3, 2, 96, 96)
    assert x["spectrogram"].shape == (3, 1, pre.spectrogram_bins, t)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in x.values())
    assert np.abs(x["flow"]).max() > 0  # scenes with moving objects give some flow
    assert x["spectrogram"].std() > 0 and x["frame"].std() > 0.1
    again = synthetic_inputs(pre, clips=3, seed=5)
    assert all(np.array_equal(x[k], again[k]) for k in x)  # deterministic


def test_dataset_calibration_inputs_prefer_train(synth_dir):
    x, split = dataset_inputs(synth_dir, PRE, clips=5, progress=False)
    assert split == "train" and x["frame"].shape == (5, 3, 128, 128) and x["spectrogram"].shape[:2] == (5, 1)


@pytest.mark.slow
def test_precision_errors(int8_export, tmp_path):
    import shutil

    ckpt, out, _ = int8_export
    # re-exporting an INT8 folder without --int8 drops the INT8 graphs: an FP32-only export
    plain = shutil.copytree(out, tmp_path / "plain")
    export_model(ckpt, plain, check=False)
    assert not any((plain / f).exists() for f in INT8_FILES.values())
    assert read_manifest(plain).precisions == ("fp32",) and "int8" not in json.loads((plain / "manifest.json").read_text())
    assert OnnxRuntimeBackend(plain, device="cpu").precision == "fp32"
    with pytest.raises(ExportError, match="no int8 graphs"):
        OnnxRuntimeBackend(plain, device="cpu", precision="int8")
    with pytest.raises(HearflowError, match="unknown precision"):
        OnnxRuntimeBackend(out, device="cpu", precision="fp8")
    with pytest.raises(HearflowError, match="onnxruntime backend"):
        load_backend(ckpt, precision="int8")
    with pytest.raises(HearflowError, match="unknown backend 'onnxruntime-fp8'"):
        load_backend(out, "onnxruntime-fp8")
    with pytest.raises(HearflowError, match="contradicts"):
        load_backend(out, "onnxruntime-int8", precision="fp32")
    # options that need --int8, --int8 with TensorRT, missing calibration data
    with pytest.raises(ExportError, match="apply to --int8"):
        export_model(ckpt, tmp_path / "x", calibration=tmp_path)
    with pytest.raises(ExportError, match="--int8"):
        export_model(ckpt, tmp_path / "x", format="tensorrt", int8=True)
    with pytest.raises(ExportError, match="not found"):
        export_model(ckpt, tmp_path / "x", int8=True, calibration=tmp_path / "nope")
    assert not (tmp_path / "x").exists()  # refused before exporting anything


def test_damaged_int8_graph_or_manifest(int8_export, tmp_path):
    import shutil

    _, out, _ = int8_export
    copy = shutil.copytree(out, tmp_path / "copy")
    (copy / "visual.int8.onnx").write_bytes(b"not onnx")
    with pytest.raises(ExportError, match="sha256"):
        OnnxRuntimeBackend(copy, device="cpu")
    OnnxRuntimeBackend(copy, device="cpu", precision="fp32")  # the FP32 graphs are intact
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["int8"]["graphs"]["audio"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="'int8' section"):
        read_manifest(copy)
    manifest["precision"] = "fp64"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="unknown precision"):
        read_manifest(copy)


@pytest.mark.slow
def test_bench_compares_fp32_and_int8(int8_export):
    from hearflow.export.model_benchmark import bench_model, format_bench

    ckpt, out, _ = int8_export
    kw = dict(batch_sizes=(1,), threads=1, warmup=1, iterations=3, budget_s=1.0)
    # a checkpoint: one temporary export, given INT8 graphs of its own, serves both runs
    result = bench_model(ckpt, "onnxruntime-fp32,onnxruntime-int8", **kw)
    assert [r["backend"] for r in result["runs"]] == ["onnxruntime", "onnxruntime-int8"]
    assert [r["precision"] for r in result["runs"]] == ["fp32", "int8"]
    assert all(r["per_frame_ms"] > 0 for r in result["runs"])
    assert "onnxruntime-int8" in format_bench(result)
    # an export folder: plain onnxruntime loads its default precision
    assert bench_model(out, "onnxruntime", **kw)["runs"][0]["precision"] == "int8"
    with pytest.raises(HearflowError, match="unknown backend"):
        bench_model(out, "onnxruntime-int4", **kw)
