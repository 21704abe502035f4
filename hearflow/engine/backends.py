"""One small inference interface, implemented by several runtimes.

    backend = load_backend(model_path, backend=None)     # checkpoint folder or export folder
    emb  = backend.embed_audio(spectrograms)            # (B, 1, F, T) float32 → (B, D)
    maps = backend.localize(frames, flows, emb)         # (B, 3, S, S), (B, 2, S, S) | None, (B, D) → (B, m, n)

Inputs and outputs are numpy float32 arrays, so the evaluator and the engine do not care
which runtime is underneath. ``backend.preprocess`` is the PreprocessConfig the model was
trained with: callers build inputs from it with :mod:`hearflow.media`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hearflow.errors import HearflowError
from hearflow.media.preprocess import PreprocessConfig


class Backend:
    """Base class: subclasses set the attributes and implement the two calls."""

    name: str = ""
    preprocess: PreprocessConfig
    model_config: dict
    uses_flow: bool
    source: str = ""
    """What was loaded (path), for messages and summaries."""

    def embed_audio(self, spectrograms: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def localize(self, frames: np.ndarray, flows: np.ndarray | None, audio_embeddings: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} backend, model {self.source}"


class TorchBackend(Backend):
    """PyTorch eager, CPU or CUDA, from a hearflow checkpoint.

    path: checkpoint folder or its model.safetensors.
    device: 'auto' (CUDA when available), 'cpu' or 'cuda'.
    threads: torch CPU threads (0 = torch's default).
    """

    name = "torch"

    def __init__(self, path, device: str = "auto", threads: int = 0):
        import torch

        from hearflow.model.checkpoint import load_checkpoint

        if threads:
            torch.set_num_threads(threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.torch = torch
        self.device = torch.device(device)
        ck = load_checkpoint(path, device=self.device)
        self.model = ck.model.eval()
        self.preprocess = ck.preprocess
        self.model_config = ck.meta["model"]
        self.uses_flow = self.model.uses_flow
        self.source = str(path)

    def _t(self, x: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def embed_audio(self, spectrograms: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.model.embed_audio(self._t(spectrograms)).float().cpu().numpy()

    def localize(self, frames: np.ndarray, flows: np.ndarray | None, audio_embeddings: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            flow = self._t(flows) if (self.uses_flow and flows is not None) else None
            maps = self.model.localize(self._t(frames), flow, self._t(audio_embeddings))
            return maps.float().cpu().numpy()


BACKENDS = {"torch": TorchBackend}


def is_export_dir(path) -> bool:
    return (Path(path) / "manifest.json").is_file()


def load_backend(path, backend: str | None = None, device: str = "auto", threads: int = 0) -> Backend:
    """Load a model for inference.

    path: a checkpoint folder (or model.safetensors) or an export folder (manifest.json).
    backend: 'torch', 'onnxruntime' or 'tensorrt'; None = torch for a checkpoint, the
        manifest's default for an export folder.
    """
    path = Path(path)
    if not path.exists():
        raise HearflowError(f"{path}: model not found (give a checkpoint folder or an export folder)")
    if backend is None:
        if is_export_dir(path):
            import json

            backend = json.loads((path / "manifest.json").read_text()).get("default_backend", "onnxruntime")
        else:
            backend = "torch"
    if backend not in BACKENDS:
        raise HearflowError(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})")
    if backend == "torch":
        return TorchBackend(path, device=device, threads=threads)
    return BACKENDS[backend](path, device=device, threads=threads)
