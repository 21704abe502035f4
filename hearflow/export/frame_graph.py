"""The frame graph: two captured uint8 frames and the audio embedding → map, in one ONNX file.

``hearflow export CKPT --to DIR --frame-graph [WxH]`` writes ``frame.onnx`` beside
``audio.onnx`` and ``visual.onnx`` and lists it in manifest.json (``frame_graph``)::

    earlier (1, H, W, 3) uint8, later (1, H, W, 3) uint8, audio_embedding (1, D) float32,
    fps () float32  →  map (1, m, n)

Inside: resize with the config's filter, normalisation, grayscale, torch Farneback flow
(:func:`hearflow.media.flow_torch.raw_flow`, with ``flow_max_side``), the flow's
encoding, and the visual network — the same torch functions the engine's ``--device``
path runs, traced once, so a runtime that takes this file needs nothing of hearflow's
preprocessing. The frame size is fixed at export (a camera's size does not change); the
map belongs to ``later`` (``flow_pair: previous``) or ``earlier`` (``next``). Batch 1: it
is the live per-frame graph.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hearflow.export.onnx import export_module
from hearflow.media import flow_torch
from hearflow.media import preprocess_torch as pt
from hearflow.media.preprocess import PreprocessConfig
from hearflow.model.checkpoint import file_sha256
from hearflow.runtime.manifest import FRAME_GRAPH_FILE, ExportError

CHECK_ATOL = 2e-3
"""Largest map difference ONNX Runtime may show against the torch module. Looser than the
two-graph check (1e-4): Farneback's per-pixel 2×2 solves amplify float rounding where a
window has little texture; measured differences are ~1e-4 to ~7e-4."""


class FrameGraph(nn.Module):
    """``model`` (eval) with its preprocessing ``pre`` in front, as one module."""

    def __init__(self, model, pre: PreprocessConfig):
        super().__init__()
        self.model, self.pre = model.eval(), pre
        self.uses_flow = model.cfg.flow != "none"

    def forward(self, earlier, later, audio_embedding, fps):
        pre = self.pre
        x = pt.to_chw(torch.cat([earlier, later]))  # (2, 3, H, W) 0..255
        resized = pt.resize(x, pre)
        mine = resized[1:] if pre.flow_pair == "previous" else resized[:1]
        frame = pt.normalize(mine, pre)
        if not self.uses_flow:
            return self.model.localize(frame, None, audio_embedding)
        gray = pt.to_gray(resized if pre.flow_resolution == "model" else x)
        flow = pt.encode_flow(flow_torch.raw_flow(gray[:1], gray[1:], pre), fps, pre)
        return self.model.localize(frame, flow, audio_embedding)


def check_flow(model_flow: str, flow: str) -> bool:
    """Whether the graph computes a flow; ExportError (one line) when it cannot be the
    model's: DIS has no torch version, and another flow would be train/serve skew."""
    uses_flow = model_flow != "none" and flow != "none"
    if uses_flow and flow == "dis":
        raise ExportError("--frame-graph needs Farneback flow (flow: farneback or torch_farneback); this model was "
                          "trained with DIS, which has no torch version: export without --frame-graph")
    return uses_flow


def parse_frame_size(text: str) -> tuple[int, int]:
    """'640x480' → (640, 480); ExportError (one line) otherwise."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ExportError(f"--frame-graph takes the camera's frame size as WxH (e.g. 640x480), not {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise ExportError(f"--frame-graph size {w}x{h} is outside 16..8192 pixels per side")
    return w, h


def example_frames(size: tuple[int, int], embed_dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A textured frame and the same scene moved by (3, 2) pixels, a unit audio embedding, 30 fps."""
    w, h = size
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    big = np.kron(base, np.ones((8, 8, 1), np.uint8)).astype(np.float32)
    big = (big + rng.normal(0, 6, big.shape)).clip(0, 255).astype(np.uint8)  # fine texture for the flow
    emb = rng.standard_normal((1, embed_dim)).astype(np.float32)
    return {"earlier": big[None, :h, :w].copy(), "later": big[None, 2:h + 2, 3:w + 3].copy(),
            "audio_embedding": emb / np.linalg.norm(emb), "fps": np.array(30.0, np.float32)}


@contextlib.contextmanager
def _exportable_filters():
    """Convolutions rather than in-place shifted sums in flow_torch while tracing: one
    Conv node per filter pass instead of dozens of Mul/Add nodes."""
    saved, flow_torch.CPU_SHIFTED_SUMS = flow_torch.CPU_SHIFTED_SUMS, False
    try:
        yield
    finally:
        flow_torch.CPU_SHIFTED_SUMS = saved


def add_frame_graph(checkpoint, out, data: dict, size: tuple[int, int], check: bool = True) -> dict:
    """Write ``out``/frame.onnx for frames of ``size`` (W, H) of the checkpoint exported in
    ``data`` (its manifest dict); returns the manifest with ``frame_graph`` added (written)."""
    from hearflow.export.manifest import onnx_metadata, write_manifest
    from hearflow.model.checkpoint import load_checkpoint

    ck = load_checkpoint(checkpoint)
    map_shape = data["graphs"]["visual"]["outputs"][0]["shape"][1:]
    entry = export_frame_graph(ck.model.eval(), ck.preprocess, Path(out), size, data, data["opset"], map_shape,
                               check=check)
    data = dict(data, frame_graph=entry)
    write_manifest(out, data)
    return data


def export_frame_graph(model, pre: PreprocessConfig, out: Path, size: tuple[int, int], data: dict, opset: int,
                       map_shape, check: bool = True) -> dict:
    """Write ``out``/frame.onnx for frames of ``size`` (W, H); returns its manifest entry."""
    from hearflow.export.manifest import onnx_metadata
    uses_flow = check_flow(model.cfg.flow, pre.flow)
    note = "OpenCV Farneback runs as torch Farneback inside the graph" if uses_flow and pre.flow == "farneback" else None
    module = FrameGraph(model, pre)
    inputs = example_frames(size, model.cfg.embed_dim)
    w, h = size
    spec = {"file": FRAME_GRAPH_FILE,
            "inputs": [{"name": "earlier", "shape": [1, h, w, 3], "dtype": "uint8"},
                       {"name": "later", "shape": [1, h, w, 3], "dtype": "uint8"},
                       {"name": "audio_embedding", "shape": [1, model.cfg.embed_dim]},
                       {"name": "fps", "shape": []}],
            "outputs": [{"name": "map", "shape": [1, *map_shape]}]}
    path = out / FRAME_GRAPH_FILE
    with _exportable_filters():
        export_module(module, inputs, spec, onnx_metadata(data, "frame", spec=spec), path, opset, dynamic=False)
    entry = dict(spec, sha256=file_sha256(path), frame_size=[w, h], flow_pair=pre.flow_pair)
    if note:
        entry["note"] = note
    if check:
        entry["check_max_diff"] = check_frame_graph(path, module, inputs)
    return entry


def check_frame_graph(path, module: FrameGraph, inputs: dict[str, np.ndarray]) -> float:
    """ONNX Runtime against the torch module on ``inputs``; ExportError above CHECK_ATOL."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, inputs)[0]
    with torch.inference_mode():
        want = module(*(torch.from_numpy(inputs[k]) for k in ("earlier", "later", "audio_embedding", "fps"))).numpy()
    diff = float(np.abs(got - want).max())
    if not diff <= CHECK_ATOL or np.argmax(got) != np.argmax(want):
        raise ExportError(f"{path}: ONNX Runtime differs from PyTorch by {diff:.2e} (> {CHECK_ATOL}) or in the peak; "
                          "the frame graph is not faithful, please report this model config")
    return diff


__all__ = ["CHECK_ATOL", "FrameGraph", "add_frame_graph", "check_flow", "check_frame_graph", "export_frame_graph", "parse_frame_size"]
