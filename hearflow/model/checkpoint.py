"""Checkpoints: weights in safetensors, configs inside the file and in a JSON sidecar.

A checkpoint is a folder::

    model.safetensors   weights; header metadata "hearflow" = JSON of meta.json's core
    meta.json           model config, PreprocessConfig, hearflow version, epoch, metrics

The safetensors header carries the model config and the PreprocessConfig too, so the
weights file alone is enough to rebuild the model and its preprocessing (the sidecar is
for people and tools). Loading never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from hearflow import __version__
from hearflow.config import from_dict, to_dict
from hearflow.errors import ConfigError, HearflowError
from hearflow.media.preprocess import PreprocessConfig
from hearflow.model.htf import HTFModel, ModelConfig

WEIGHTS = "model.safetensors"
SIDECAR = "meta.json"


class CheckpointError(HearflowError):
    """A checkpoint is missing, corrupt or was written by something else."""


@dataclass
class Checkpoint:
    model: HTFModel
    model_cfg: ModelConfig
    preprocess: PreprocessConfig
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def sha256(self) -> str:
        return file_sha256(self.path / WEIGHTS) if self.path else ""


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path, model: HTFModel, preprocess: PreprocessConfig, **extra) -> Path:
    """Write ``model`` (its own config included) and ``preprocess`` to folder ``path``.

    extra: anything JSON-serialisable for the sidecar (epoch, metrics, run name...).
    The weights file is written to a temporary name and renamed, so an interrupted save
    never leaves a half-written checkpoint under the real name.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    core = {
        "format": "hearflow-checkpoint/1",
        "hearflow_version": __version__,
        "model": to_dict(model.cfg),
        "preprocess": to_dict(preprocess),
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"hearflow": json.dumps(core)})
    tmp.replace(path / WEIGHTS)
    sidecar = dict(core, **extra)
    (path / (SIDECAR + ".tmp")).write_text(json.dumps(sidecar, indent=2, default=str))
    (path / (SIDECAR + ".tmp")).replace(path / SIDECAR)
    return path


def read_meta(path) -> dict:
    """The configs stored in a checkpoint's weights header (plus the sidecar when present)."""
    folder, weights = _locate(path)
    try:
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc})") from None
    if "hearflow" not in header:
        raise CheckpointError(f"{weights}: no hearflow metadata in this safetensors file (not a hearflow checkpoint)")
    meta = json.loads(header["hearflow"])
    sidecar = folder / SIDECAR
    if sidecar.is_file():
        try:
            meta = {**json.loads(sidecar.read_text()), **meta}
        except json.JSONDecodeError:
            pass  # the weights header is authoritative; a damaged sidecar loses only extras
    return meta


def _locate(path) -> tuple[Path, Path]:
    path = Path(path)
    if path.is_dir():
        weights = path / WEIGHTS
        if not weights.is_file():
            raise CheckpointError(f"{path}: no {WEIGHTS} in this folder (not a hearflow checkpoint)")
        return path, weights
    if path.is_file():
        return path.parent, path
    raise CheckpointError(f"{path}: checkpoint not found")


def load_checkpoint(path, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model and its PreprocessConfig from a checkpoint folder or weights file."""
    folder, weights = _locate(path)
    meta = read_meta(path)
    try:
        model_cfg = from_dict(ModelConfig, meta["model"], f"{weights} (model config)")
        preprocess = from_dict(PreprocessConfig, meta["preprocess"], f"{weights} (preprocess config)")
    except (KeyError, ConfigError) as exc:
        raise CheckpointError(f"{weights}: unusable configs in checkpoint ({exc})") from None
    model = HTFModel(model_cfg)
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: cannot read weights ({exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights}: weights do not fit the model config ({str(exc).splitlines()[0]})") from None
    model.to(device).eval()
    return Checkpoint(model, model_cfg, preprocess, meta, folder)
