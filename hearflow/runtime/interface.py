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

    def embed_audio(self, spectrograms: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def localize(self, frames: np.ndarray, flows: np.ndarray | None, audio_embeddings: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} backend ({self.device}), model {self.source}"


def f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)
