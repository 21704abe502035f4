"""INT8 graphs for the CPU: ONNX Runtime static quantization of an export folder.

    quantize_export("exports/htf")                          # synthetic scenes as calibration
    quantize_export("exports/htf", calibration="data/synth")  # 64 clips of a dataset

writes ``audio.int8.onnx`` and ``visual.int8.onnx`` beside the FP32 graphs (kept: they
are the reference, TensorRT builds from them, and ``precision="fp32"`` still loads
them), records them in the manifest's ``int8`` section and sets ``precision: int8``,
so :class:`~hearflow.runtime.backends.OnnxRuntimeBackend` loads the INT8 graphs by default.

Recipe: ``quant_pre_process``, then ``quantize_static`` (QDQ, MinMax calibration, QUInt8
activations, QInt8 per-channel weights) on the Conv/ReLU/Add/MaxPool nodes of the three
ResNet trunks only. Calibration inputs are made with the media layer, from a dataset
folder or prepared cache (its train split first) or from synthetic scenes; the visual
graph is calibrated with the embeddings the FP32 audio graph gives for the same clips.
Why these settings, and what they cost and gain: docs/benchmarks.md ("INT8").
"""

from __future__ import annotations

import ast
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader

from hearflow.export.manifest import onnx_metadata, write_manifest
from hearflow.media.audio import audio_input
from hearflow.media.flow import FlowEstimator
from hearflow.media.frames import normalize_frame, resize_frame
from hearflow.media.preprocess import PreprocessConfig
from hearflow.media.synth import SynthConfig, scene_from_config
from hearflow.model.checkpoint import file_sha256
from hearflow.runtime.backends import OnnxRuntimeBackend
from hearflow.runtime.manifest import GRAPHS, INT8_FILES, ExportError, Manifest, read_manifest
from hearflow.trainer.data import CacheIndex, ClipDataset
from hearflow.trainer.clip_cache import ensure_cache

CALIBRATION_CLIPS = 64
"""Clips calibrated on by default: MinMax ranges of a ResNet settle within a few dozen."""
CALIBRATION_BATCH = 8
"""Items per calibration call (the MinMax calibrator keeps only each tensor's min/max per
call, so this bounds the activations in memory, not the statistics)."""
CALIBRATION_SPLITS = ("train", "val")
"""Dataset splits calibration prefers, in order (all clips when none of them exists)."""
TRUNK_OPS = ("Conv", "Relu", "Add", "MaxPool")
"""Op types quantized inside the ResNet trunks."""
ENCODERS = ("visual_encoder", "flow_encoder", "audio_encoder")
"""The model's trunk modules (names from :class:`hearflow.model.htf.HTFModel`)."""
WARN_CORRELATION = 0.95
"""Mean INT8 vs FP32 map correlation below which the export warns."""
SCOPE_KEY = "pkg.torch.onnx.name_scopes"
"""Node metadata in which torch's dynamo exporter records the module each node comes from."""


# --------------------------------------------------------------------------- calibration data
def synthetic_inputs(pre: PreprocessConfig, clips: int = CALIBRATION_CLIPS, seed: int = 0) -> dict[str, np.ndarray]:
    """Model inputs of ``clips`` synthetic scenes, made as the engine makes them.

    pre: the model's PreprocessConfig (sizes, normalisation, flow, audio window).
    clips: number of scenes (one frame each, a different scene per seed).
    seed: seed of the first scene.
    Returns frame (N, 3, S, S), flow (N, 2, S, S) and spectrogram (N, 1, F, T), float32.
    """
    rate = pre.rate_for(22050)
    cfg = SynthConfig(sample_rate=rate)
    estimator = FlowEstimator(pre)
    frames, flows, specs = [], [], []
    for k in range(clips):
        scene = scene_from_config(cfg, seed=seed + k)
        # a frame late enough for a full audio window on either side (the scene is endless);
        # the offset varies where the moving objects are along their paths
        i = int(round((pre.audio_seconds + 0.5) * scene.fps)) + k % 7
        t = i / scene.fps
        rgb = resize_frame(scene.frame(i), pre)
        frames.append(normalize_frame(rgb, pre))
        pair = (i - 1, i) if pre.flow_pair == "previous" else (i, i + 1)
        a, b = (estimator.gray(scene.frame(j)) for j in pair)
        flows.append(estimator(a, b, scene.fps))
        wave = scene.audio(0, int(round((t + pre.audio_seconds) * rate)))
        specs.append(audio_input(wave, rate, t, pre))
    return {"frame": np.stack(frames), "flow": np.stack(flows), "spectrogram": np.stack(specs).astype(np.float32)}


def dataset_inputs(data, pre: PreprocessConfig, clips: int = CALIBRATION_CLIPS,
                   progress: bool = True) -> tuple[dict[str, np.ndarray], str]:
    """Model inputs of ``clips`` clips of a dataset folder or prepared cache.

    data: a dataset folder (``hearflow synth`` output, videos + annotations...) or its
        prepared cache; it is prepared with ``pre`` first if needed (as ``hearflow eval`` does).
    pre: the model's PreprocessConfig.
    clips: how many clips, spread evenly over the first split of CALIBRATION_SPLITS present.
    progress: show the preparation's progress bar.
    Returns (inputs as :func:`synthetic_inputs`, the split used).
    """
    index = CacheIndex(ensure_cache(data, pre, progress=progress))
    split, indices = "all", index.indices()
    for name in CALIBRATION_SPLITS:
        if index.indices(name):
            split, indices = name, index.indices(name)
            break
    if not indices:
        raise ExportError(f"{data}: no prepared clips to calibrate on")
    chosen = [indices[int(j)] for j in np.linspace(0, len(indices) - 1, min(clips, len(indices)))]
    dataset = ClipDataset(index, chosen)
    items = [dataset[k] for k in range(len(dataset))]
    out = {key: np.stack([it[src].numpy() for it in items]) for key, src in
           (("frame", "frame"), ("flow", "flow"), ("spectrogram", "spec"))}
    return out, split


# --------------------------------------------------------------------------- quantization
def trunk_nodes(model) -> list[str]:
    """Names of the nodes to quantize: TRUNK_OPS nodes inside the ENCODERS.

    model: an onnx.ModelProto exported by hearflow (dynamo exporter). The exporter records
    each node's module path in its metadata; a graph without it (another exporter) is
    refused rather than quantized blindly.
    """
    names, scoped = [], False
    for node in model.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        if SCOPE_KEY not in meta:
            continue
        scoped = True
        # a Python list literal of module paths, outermost first: ['', 'model.visual_encoder', ...]
        scopes = ast.literal_eval(meta[SCOPE_KEY])
        in_trunk = any(part in ENCODERS for scope in scopes for part in str(scope).split("."))
        if node.op_type in TRUNK_OPS and in_trunk:
            names.append(node.name)
    if not scoped:
        raise ExportError("the graph has no module scopes in its node metadata (not exported by hearflow's "
                          "exporter); re-export it with `hearflow export`")
    return names


class _Feed(CalibrationDataReader):
    """The calibration reader ORT asks for: one input dict per get_next(), then None."""

    def __init__(self, batches: list[dict]):
        self._batches = batches
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._batches)


def _batches(inputs: dict[str, np.ndarray], names: list[str], size: int) -> list[dict]:
    n = len(next(iter(inputs.values())))
    return [{k: np.ascontiguousarray(inputs[k][i:i + size]) for k in names} for i in range(0, n, size)]


def quantize_graph(src, dst, batches: list[dict], reduce_range: bool = False,
                   per_channel: bool = True) -> int:
    """Quantize one FP32 graph file ``src`` into ``dst`` (QDQ, static); returns the number
    of nodes quantized.

    batches: calibration feeds (input name → array), as the graph takes them.
    reduce_range: 7-bit weights (x86 CPUs without VNNI); see docs/benchmarks.md.
    per_channel: one weight scale per output channel (ResNet channels differ a lot in range).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="hearflow-int8-") as tmp:
        pre_path = os.path.join(tmp, "pre.onnx")
        quant_pre_process(str(src), pre_path, skip_symbolic_shape=True)
        nodes = trunk_nodes(onnx.load(pre_path, load_external_data=False))
        quantize_static(
            pre_path, str(dst), _Feed(batches),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(TRUNK_OPS),
            nodes_to_quantize=nodes,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            # symmetric int8 weights (zero point 0: what the u8s8 kernels want), asymmetric
            # u8 activations (ORT's defaults, spelled out)
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    return len(nodes)


def _stamp(path: Path, metadata: dict[str, str], doc: str) -> None:
    """Give the quantized graph hearflow's metadata_props and doc string (whatever the
    quantizer carried over from the FP32 file, or not, depending on the ORT version)."""
    import onnx

    proto = onnx.load(str(path))
    proto.doc_string = doc
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    tmp = path.with_name(path.name + ".tmp")
    onnx.save_model(proto, str(tmp), save_as_external_data=False)
    tmp.replace(path)


def _agreement(folder: Path, inputs: dict[str, np.ndarray], uses_flow: bool) -> dict:
    """INT8 vs FP32 on ``inputs``: the smallest cosine between audio embeddings and the
    smallest / mean Pearson correlation between maps (per item)."""
    runs = {}
    for precision in ("fp32", "int8"):
        be = OnnxRuntimeBackend(folder, device="cpu", precision=precision)
        emb = be.embed_audio(inputs["spectrogram"])
        maps = be.localize(inputs["frame"], inputs["flow"] if uses_flow else None, emb)
        runs[precision] = (emb, maps.reshape(len(maps), -1))
    (e32, m32), (e8, m8) = runs["fp32"], runs["int8"]
    cos = np.sum(e32 * e8, axis=1) / (np.linalg.norm(e32, axis=1) * np.linalg.norm(e8, axis=1))
    a, b = m32 - m32.mean(1, keepdims=True), m8 - m8.mean(1, keepdims=True)
    corr = np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return {"audio_cosine_min": round(float(cos.min()), 4), "map_correlation_min": round(float(corr.min()), 4),
            "map_correlation_mean": round(float(corr.mean()), 4), "clips": len(corr)}


def _calibration_inputs(manifest: Manifest, calibration, clips: int,
                        progress: bool) -> tuple[dict[str, np.ndarray], str, str | None]:
    """Calibration inputs of all graph inputs, the audio embeddings included.

    Returns (inputs, source name, dataset split or None for synthetic scenes).
    """
    pre = manifest.preprocess
    if calibration is None:
        inputs, source, split = synthetic_inputs(pre, clips), "synthetic", None
    else:
        if not Path(calibration).exists():
            raise ExportError(f"{calibration}: calibration data not found (give a dataset folder or a cache)")
        inputs, split = dataset_inputs(calibration, pre, clips, progress)
        source = Path(calibration).resolve().name
    # the visual graph is calibrated with the embeddings its audio inputs really produce
    fp32 = OnnxRuntimeBackend(manifest.path, device="cpu", precision="fp32", verify=False)
    inputs["audio_embedding"] = fp32.embed_audio(inputs["spectrogram"])
    return inputs, source, split


def _quantize_graphs(manifest: Manifest, inputs: dict[str, np.ndarray], reduce_range: bool,
                     per_channel: bool) -> dict:
    """Write both INT8 graph files; returns the ``graphs`` and ``nodes_quantized`` parts of
    the manifest's int8 section."""
    data, folder = manifest.data, manifest.path
    section = {"graphs": {}, "nodes_quantized": {}}
    for graph in GRAPHS:
        names = manifest.input_names(graph)
        path = folder / INT8_FILES[graph]
        section["nodes_quantized"][graph] = quantize_graph(
            manifest.graph_path(graph), path, _batches(inputs, names, CALIBRATION_BATCH),
            reduce_range=reduce_range, per_channel=per_channel)
        _stamp(path, onnx_metadata(data, graph, precision="int8"),
               f"hearflow {data['hearflow_version']} export ({INT8_FILES[graph]}, INT8 static quantization)")
        section["graphs"][graph] = {"file": INT8_FILES[graph], "sha256": file_sha256(path)}
    return section


def _settings_record(reduce_range: bool, per_channel: bool) -> dict:
    """The manifest's record of how the graphs were quantized."""
    return {
        "tool": f"onnxruntime {ort.__version__} quantize_static", "format": "QDQ",
        "activations": "QUInt8", "weights": "QInt8", "per_channel": per_channel, "reduce_range": reduce_range,
        "op_types": list(TRUNK_OPS),
        "float": "flow attention, projections, global max pool, L2 normalisation, similarity",
    }


def quantize_export(folder, calibration=None, clips: int = CALIBRATION_CLIPS, reduce_range: bool = False,
                    per_channel: bool = True, default: bool = True, progress: bool = True) -> dict:
    """Add INT8 graphs to the export folder ``folder``; returns the updated manifest dict.

    folder: an ONNX export folder (``hearflow export``).
    calibration: dataset folder or prepared cache to calibrate on; None = synthetic scenes.
    clips: calibration clips (default 64).
    reduce_range: 7-bit weights for x86 CPUs without VNNI (see docs/benchmarks.md).
    per_channel: per-output-channel weight scales.
    default: make INT8 the precision the onnxruntime backend loads (manifest ``precision``).
    progress: progress bar while a dataset is being prepared.
    The manifest's ``int8`` section records the graphs, calibration, settings and the
    INT8 vs FP32 agreement measured on the calibration clips (``check``).
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    manifest.check_files()
    if clips < 1:
        raise ExportError(f"calibration clips must be >= 1, got {clips}")
    inputs, source, split = _calibration_inputs(manifest, calibration, clips, progress)

    # a stale int8 section must not describe half-written files if quantization fails
    data = manifest.data
    data.pop("int8", None)
    data["precision"] = "fp32"
    write_manifest(folder, data)
    section = _quantize_graphs(manifest, inputs, reduce_range, per_channel)
    section["calibration"] = {"source": source, "split": split, "clips": len(inputs["frame"]), "method": "minmax"}
    section["quantization"] = _settings_record(reduce_range, per_channel)
    data["int8"] = section
    write_manifest(folder, data)
    section["check"] = _agreement(folder, inputs, manifest.uses_flow)
    if section["check"]["map_correlation_mean"] < WARN_CORRELATION:
        warnings.warn(f"{folder}: INT8 maps correlate only {section['check']['map_correlation_mean']:.3f} with "
                      "FP32 on the calibration clips; check the accuracy with `hearflow eval` before using them",
                      stacklevel=2)
    if default:
        data["precision"] = "int8"
    write_manifest(folder, data)
    return data
