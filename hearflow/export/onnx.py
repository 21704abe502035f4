"""Checkpoint → two ONNX graphs (audio, visual) + manifest.json.

Exporter: ``torch.onnx.export(..., dynamo=True)``, i.e. torch.export followed by the
ONNX Script translation. It is the exporter PyTorch maintains (the TorchScript one is
deprecated), it takes symbolic ``dynamic_shapes`` (named batch and time axes), and its
optimisation pass folds eval-mode BatchNorm into the convolutions, so the graphs hold
only Conv/Relu/Add/MaxPool plus the attention and normalisation ops.

Opset: 18, pinned. It is the opset torchlib (the exporter's op library) is written in,
so no version-conversion pass runs on the graph, and ONNX Runtime and the TensorRT 10 /
11 ONNX parsers all support it.

Dynamic axes: batch on every input/output (the same files run batch 1 live and batch N
offline) and the spectrogram's time axis T (a ``sample_rate: native`` PreprocessConfig
gives another T per source rate; the convolutional trunk and the global max pool accept
any T). Image size S and frequency bins F stay fixed: they come from the
PreprocessConfig stored with the model, and static spatial sizes let the runtimes plan
their kernels.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hearflow import __version__
from hearflow.config import to_dict
from hearflow.export.manifest import UnsupportedModel, onnx_metadata, tensor_spec, write_manifest
from hearflow.model.backbones import BACKBONE_WIDTHS
from hearflow.model.checkpoint import WEIGHTS, file_sha256, load_checkpoint, read_meta
from hearflow.model.htf import HTFModel, ModelConfig
from hearflow.runtime.backends import OnnxRuntimeBackend
from hearflow.runtime.manifest import FORMAT, GRAPH_FILES, GRAPHS, MANIFEST, ExportError, time_range

OPSET = 18
EXAMPLE_BATCH = 2
"""Example batch for tracing: 1 would be specialised by torch.export (0/1 are special)."""
CHECK_ATOL = 1e-4
"""Largest ONNX Runtime vs PyTorch difference the post-export check accepts."""

# Every ModelConfig field with the values this exporter knows how to export (None: any
# value). A field missing here (added to ModelConfig later) makes export refuse the
# model instead of silently exporting something it has not been checked for.
EXPORTABLE = {
    "backbone": set(BACKBONE_WIDTHS),
    "flow": {"cnn", "maxpool", "none"},
    "feature_size": {7, 14},
    "proj_dim": None,
    "pretrained": None,  # initialisation only: the weights are in the checkpoint
    "freeze_vision": None,  # training only
}


class AudioGraph(nn.Module):
    """spectrogram (B, 1, F, T) → audio_embedding (B, D): :meth:`HTFModel.embed_audio`."""

    def __init__(self, model: HTFModel):
        super().__init__()
        self.model = model

    def forward(self, spectrogram):
        return self.model.embed_audio(spectrogram)


class VisualGraph(nn.Module):
    """frame, flow, audio_embedding → map (B, m, n): :meth:`HTFModel.localize`."""

    def __init__(self, model: HTFModel):
        super().__init__()
        self.model = model

    def forward(self, frame, flow, audio_embedding):
        return self.model.localize(frame, flow, audio_embedding)


class VisualGraphNoFlow(VisualGraph):
    """The visual graph of a model without flow (LVS/EZ-VSL): no flow input at all."""

    def forward(self, frame, audio_embedding):
        return self.model.localize(frame, None, audio_embedding)


def check_exportable(model_cfg: dict, source: str = "model") -> None:
    """Raise UnsupportedModel unless every field and value of ``model_cfg`` is known here."""
    unknown = sorted(set(model_cfg) - set(EXPORTABLE))
    if unknown:
        raise UnsupportedModel(
            f"{source}: model config field(s) {', '.join(unknown)} unknown to the exporter of hearflow "
            f"{__version__} (known: {', '.join(EXPORTABLE)}); export with the hearflow version that trained it"
        )
    for key, allowed in EXPORTABLE.items():
        if allowed is not None and key in model_cfg and model_cfg[key] not in allowed:
            raise UnsupportedModel(
                f"{source}: model {key}={model_cfg[key]!r} cannot be exported "
                f"(supported: {', '.join(map(str, sorted(allowed, key=str)))})"
            )


def example_inputs(cfg: ModelConfig, pre, batch: int = EXAMPLE_BATCH, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 inputs of every graph input name for ``batch`` items at the
    PreprocessConfig's sizes (spectrogram at the nominal T; unit-norm audio embeddings)."""
    rng = np.random.default_rng(seed)
    s, f, t = pre.image_size, pre.spectrogram_bins, time_range(pre)[1]
    emb = rng.standard_normal((batch, cfg.embed_dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    out = {
        "spectrogram": rng.standard_normal((batch, 1, f, t)).astype(np.float32),
        "frame": rng.standard_normal((batch, 3, s, s)).astype(np.float32),
        "audio_embedding": emb,
    }
    if cfg.flow != "none":
        out["flow"] = rng.uniform(-1, 1, (batch, 2, s, s)).astype(np.float32)
    return out


def _graph_specs(cfg: ModelConfig, pre, map_side: tuple[int, int]) -> dict:
    """Inputs/outputs of both graphs, with 'batch' and 'time' for the dynamic axes."""
    s, f, d = pre.image_size, pre.spectrogram_bins, cfg.embed_dim
    visual_in = [tensor_spec("frame", ["batch", 3, s, s])]
    if cfg.flow != "none":
        visual_in.append(tensor_spec("flow", ["batch", 2, s, s]))
    visual_in.append(tensor_spec("audio_embedding", ["batch", d]))
    return {
        "audio": {
            "file": GRAPH_FILES["audio"],
            "inputs": [tensor_spec("spectrogram", ["batch", 1, f, "time"])],
            "outputs": [tensor_spec("audio_embedding", ["batch", d])],
        },
        "visual": {
            "file": GRAPH_FILES["visual"],
            "inputs": visual_in,
            "outputs": [tensor_spec("map", ["batch", *map_side])],
        },
    }


def export_module(module: nn.Module, inputs: dict[str, np.ndarray], spec: dict, metadata: dict, path: Path,
                  opset: int, dynamic: bool = True) -> None:
    """Export one graph (with dynamic batch and time axes unless ``dynamic`` is False) to ``path``."""
    import onnx
    from torch.export import Dim

    names = [t["name"] for t in spec["inputs"]]
    args = tuple(torch.from_numpy(inputs[n]) for n in names)
    batch = Dim("batch", min=1, max=4096)
    time = Dim("time", min=1, max=65536)
    axes = {t["name"]: {i: (batch if a == "batch" else time) for i, a in enumerate(t["shape"]) if isinstance(a, str)}
            for t in spec["inputs"]}
    try:
        with warnings.catch_warnings():
            # the exporter warns that the shared batch Dim is "renamed"; harmless
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
            program = torch.onnx.export(
                module.eval(), args, dynamo=True, opset_version=opset, input_names=names,
                output_names=[t["name"] for t in spec["outputs"]], dynamic_shapes=axes if dynamic else None,
                optimize=True, verbose=False,
            )
    except Exception as exc:  # the exporter raises many kinds; the CLI wants one line
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # it colours its messages
        first = text.splitlines()[0] if text else type(exc).__name__
        raise ExportError(f"torch.onnx.export failed on the {spec['file']} graph: {first}") from exc
    proto = program.model_proto
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"hearflow {__version__} export ({spec['file']})"
    tmp = path.with_name(path.name + ".tmp")
    # one self-contained file: the ResNet18 graphs are far below protobuf's 2 GB limit
    onnx.save_model(proto, str(tmp), save_as_external_data=False)
    tmp.replace(path)


def _check_parity(folder: Path, model: HTFModel, inputs: dict[str, np.ndarray]) -> float:
    """Run both graphs with ONNX Runtime on ``inputs`` and return the largest difference
    from PyTorch (audio embedding and map); raises ExportError above CHECK_ATOL."""
    be = OnnxRuntimeBackend(folder, device="cpu")
    with torch.inference_mode():
        emb_t = model.embed_audio(torch.from_numpy(inputs["spectrogram"])).numpy()
        flow = torch.from_numpy(inputs["flow"]) if "flow" in inputs else None
        map_t = model.localize(torch.from_numpy(inputs["frame"]), flow,
                               torch.from_numpy(inputs["audio_embedding"])).numpy()
    emb_o = be.embed_audio(inputs["spectrogram"])
    map_o = be.localize(inputs["frame"], inputs.get("flow"), inputs["audio_embedding"])
    diff = float(max(np.abs(emb_o - emb_t).max(), np.abs(map_o - map_t).max()))
    if not diff <= CHECK_ATOL:
        raise ExportError(f"{folder}: ONNX Runtime differs from PyTorch by {diff:.2e} (> {CHECK_ATOL}); "
                          "the export is not faithful, please report this model config")
    return diff


EXPORT_FILE_SUFFIXES = (".onnx", ".engine", ".engine.json", ".tmp", ".cache")
"""What an export folder may hold besides manifest.json (graphs, engines, keys, caches)."""


def _prepare_out(out: Path) -> None:
    """Create ``out``, refusing a non-empty folder that is not a previous (or interrupted) export."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder")
    if out.is_dir() and not (out / MANIFEST).is_file():
        foreign = [p.name for p in out.iterdir() if not p.name.endswith(EXPORT_FILE_SUFFIXES)]
        if foreign:
            raise ExportError(f"{out}: folder is not empty and is not a hearflow export folder "
                              f"(it holds {foreign[0]}); choose another --to")
    out.mkdir(parents=True, exist_ok=True)


def export_onnx(checkpoint, out, opset: int = OPSET, check: bool = True) -> dict:
    """Export a hearflow checkpoint to ``out``/{audio,visual}.onnx + manifest.json.

    checkpoint: checkpoint folder or its model.safetensors.
    out: export folder (created; a previous export there is replaced).
    opset: ONNX opset (18 unless you know why).
    check: run both graphs once with ONNX Runtime and compare with PyTorch.
    Returns the manifest dict (``check_max_diff`` added when checked).
    """
    if opset < 18:
        raise ExportError(f"opset {opset} is too old: the dynamo exporter needs opset >= 18")
    meta = read_meta(checkpoint)  # CheckpointError for missing/corrupt checkpoints
    check_exportable(meta.get("model", {}), str(checkpoint))
    ck = load_checkpoint(checkpoint)
    model, cfg, pre = ck.model.eval(), ck.model_cfg, ck.preprocess
    out = Path(out)
    _prepare_out(out)

    inputs = example_inputs(cfg, pre)
    with torch.inference_mode():
        flow = torch.from_numpy(inputs["flow"]) if "flow" in inputs else None
        map_side = tuple(model.localize(torch.from_numpy(inputs["frame"]), flow,
                                        torch.from_numpy(inputs["audio_embedding"])).shape[1:])
    graphs = _graph_specs(cfg, pre, map_side)
    lo, nominal, hi = time_range(pre)
    data = {
        "format": FORMAT,
        "hearflow_version": __version__,
        "source": {"checkpoint": Path(checkpoint).resolve().name if Path(checkpoint).is_dir()
                   else Path(checkpoint).resolve().parent.name,
                   "weights_file": WEIGHTS, "weights_sha256": ck.sha256,
                   "epoch": ck.meta.get("epoch")},
        "model": to_dict(cfg),
        "preprocess": pre.to_dict(),
        "opset": opset,
        "time_frames": {"min": lo, "nominal": nominal, "max": hi},
        "graphs": graphs,
        "default_backend": "onnxruntime",
        "tensorrt": None,
    }
    # a stale manifest must not describe half-written files if the export fails below
    (out / MANIFEST).unlink(missing_ok=True)
    modules = {"audio": AudioGraph(model), "visual": (VisualGraph if cfg.flow != "none" else VisualGraphNoFlow)(model)}
    for graph in GRAPHS:
        path = out / graphs[graph]["file"]
        export_module(modules[graph], inputs, graphs[graph], onnx_metadata(data, graph), path, opset)
        graphs[graph]["sha256"] = file_sha256(path)
    write_manifest(out, data)
    if check:
        data["check_max_diff"] = _check_parity(out, model, inputs)
    return data
