"""The inference-backend interface every runtime implements (see :mod:`hearflow.runtime.backends`)."""

from __future__ import annotations

import numpy as np

from hearflow.errors import HearflowError
from hearflow.media.preprocess import PreprocessConfig


class BackendUnavailable(HearflowError):
    """A remote backend cannot answer now (server unreachable, request timed out): this
    call's inputs are lost, a later call tries again. The engine counts such frames and
    goes on; every other error stops it."""


class Backend:
    """Base class: subclasses set the attributes and implement the two calls."""

    name: str = ""
    preprocess: PreprocessConfig
    model_config: dict
    uses_flow: bool
    source: str = ""
    """What was loaded (path), for messages and summaries."""
    device: str = "cpu"
    frame_size: tuple[int, int] | None = None
    """(width, height) of the frames :meth:`localize_frames` takes: the export's frame
    graph (frame.onnx), None when this backend runs none."""

    def embed_audio(self, spectrograms: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def localize_frames(self, earlier: np.ndarray, later: np.ndarray, audio_embedding: np.ndarray,
                        fps: float) -> np.ndarray:
        """The frame graph: two (1, H, W, 3) uint8 RGB frames and (1, D) → map (1, m, n),
        preprocessing and flow included (see hearflow.export.frame_graph)."""
        raise NotImplementedError(f"the {self.name} backend runs no frame graph")

    def localize(self, frames: np.ndarray, flows: np.ndarray | None, audio_embeddings: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} backend ({self.device}), model {self.source}"


def is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch")


def f32(x) -> np.ndarray:
    """A contiguous float32 numpy array (a torch tensor is copied to the host)."""
    if is_tensor(x):
        x = x.detach().float().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)
