"""The experiment config: everything ``hearflow train`` needs, in plain sections.

Loaded from ``configs/*.yaml`` with dotted overrides (see :mod:`hearflow.config`), and
saved as ``config.yaml`` in every run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hearflow.media.preprocess import PreprocessConfig
from hearflow.model.htf import ModelConfig
from hearflow.trainer.losses import LossConfig


@dataclass(frozen=True)
class DataConfig:
    path: str = "data/synth"
    """Dataset folder (videos + annotations, or the Flickr layout) or a prepared cache."""
    layout: Literal["auto", "videos", "flickr"] = "auto"
    """How the dataset folder is read: videos (+ annotations.json), the Flickr still frames
    (frames/ + audio/ + Annotations/: no flow), or auto = videos whenever there are any.
    A run's config.yaml records the layout that was used, never auto."""
    cache: str = ""
    """Where the prepared cache goes; empty = <path>/.hearflow-cache/<preprocess fingerprint>-<layout>."""
    train_split: str = "train"
    val_split: str = "val"
    """Model selection uses this split, never the test split. If the dataset has no such
    split, val_fraction of the training clips are held out (deterministically) instead."""
    val_fraction: float = 0.05
    test_split: str = "test"
    workers: int = 2
    """DataLoader worker processes (0 = load in the training process)."""
    prepare_workers: int = 0
    """Processes for preparing the cache (0 = one per CPU)."""


@dataclass(frozen=True)
class OptimConfig:
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: float = 0.0
    """Linear warm-up length in epochs (fractions allowed), before the schedule."""


@dataclass(frozen=True)
class TrainConfig:
    out: str = "runs/exp"
    """Run folder: config.yaml, metrics.csv, TensorBoard logs, checkpoints last/ and best/."""
    epochs: int = 20
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    """auto = cuda when available, else cpu."""
    amp: bool = True
    """bfloat16 autocast on CUDA (ignored on CPU)."""
    augment: bool = True
    crop: Literal["zoom", "short_side_crop"] = "zoom"
    """Augmentation crop (hearflow/media/augment.py): zoom = a random 80-100 % square crop
    of the prepared frame resized back; short_side_crop = the HTF authors' resize of the
    short side to 246 (aspect kept) and random 224 crop. Both flip at random."""
    crop_scale: tuple[float, float] = (0.8, 1.0)
    """zoom's crop side range as a fraction of the frame."""
    visual_bn: Literal["eval", "train"] = "eval"
    """With model.freeze_vision: eval keeps the frozen visual encoder's BatchNorm layers in
    eval mode (its running statistics are used and kept); train leaves them in training
    mode as the HTF authors' code does (batch statistics, running statistics drift)."""
    select: Literal["auto", "val_loss", "pointing", "ciou_adap@0.5", "ciou@0.5"] = "auto"
    """Metric on the validation split that picks best/: auto = ciou_adap@0.5 when the
    validation clips have boxes, else the validation loss."""
    threads: int = 0
    """torch CPU threads (0 = torch's default)."""


@dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
