"""``hearflow train CONFIG [overrides]``: self-supervised training, readable top to bottom.

1. set up (distributed when launched by torchrun; seeds; run folder with config.yaml)
2. data: prepare the cache if needed, split train / val (never the test split)
3. model, optimizer, schedule; resume from the run folder's last checkpoint if asked
4. per epoch: train, validate, write metrics (CSV, TensorBoard, curves.png), save
   last/ (every epoch) and best/ (by the validation metric)

A killed run loses at most the current epoch: ``--resume`` continues from last/ with the
optimizer, schedule, epoch and random state, and gives the same weights an uninterrupted
run would. Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m hearflow.cli train ...``
(NCCL on CUDA, gloo on CPU); rank 0 writes everything.
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from hearflow import config as config_io
from hearflow.errors import HearflowError
from hearflow.model import create_model
from hearflow.model.checkpoint import load_checkpoint, save_checkpoint
from hearflow.trainer.experiment import ExperimentConfig
from hearflow.trainer.data import CacheIndex, ClipDataset, worker_context
from hearflow.trainer.losses import compute_loss
from hearflow.trainer.clip_cache import ensure_cache, resolve_layout

STATE = "train_state.pt"
METRICS_CSV = "metrics.csv"


@dataclass
class Process:
    """Where this process runs: its rank among ``world`` (rank 0 writes everything), device, run folder."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    out: Path

    @property
    def master(self) -> bool:
        return self.rank == 0


@dataclass
class TrainData:
    """The prepared cache split into a training loader (sharded over the processes) and a validation set."""

    index: CacheIndex
    train_set: ClipDataset
    val_set: ClipDataset | None
    val_idx: list[int]
    rate: int
    """The cache's audio rate (fixed unless "native"): the extra negatives are made at it."""
    sampler: DistributedSampler
    loader: DataLoader


@dataclass
class TrainState:
    """What changes from epoch to epoch. ``model`` may be DDP-wrapped; ``core`` is the bare model."""

    model: torch.nn.Module
    core: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    select: str
    """The validation metric that picks best/."""
    start_epoch: int = 0
    best: float = float("-inf")


def train(cfg: ExperimentConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train as ``cfg`` says; returns the run folder."""
    # the run folder records the layout used, so a rerun reads the data the same way
    cfg = replace(cfg, data=replace(cfg.data, layout=resolve_layout(cfg.data.path, cfg.data.layout)))
    # 1. set up: processes, device, run folder with config.yaml, seeds
    proc = setup_process(cfg, resume)
    # 2. data: the cache (prepared by rank 0 if needed), train / val split, loader
    data = load_data(cfg, proc, progress)
    # 3. model, optimizer, schedule; resume from the run folder's last checkpoint if asked
    state = build_training(cfg, proc, data, resume)
    writer = _open_writer(cfg, proc, data, state)
    # 4. per epoch: train, validate, write metrics, save last/ and best/
    state.model.train()
    for epoch in range(state.start_epoch, cfg.train.epochs):
        t0 = time.time()
        row = train_one_epoch(cfg, proc, data, state, epoch, progress)
        if proc.master:
            _end_epoch(cfg, proc, data, state, writer, epoch, row, t0)
        if proc.world > 1:
            dist.barrier()
    # 5. tear down
    if writer is not None:
        writer.close()
    if proc.world > 1:
        dist.destroy_process_group()
    return proc.out


# --------------------------------------------------------------------------- 1. set up
def setup_process(cfg: ExperimentConfig, resume: bool) -> Process:
    """Process group, device and threads; rank 0 writes the run folder's config.yaml; then the seeds."""
    rank, world, local_rank = _distributed()
    proc = Process(rank, world, local_rank, _device(cfg.train.device, local_rank), Path(cfg.train.out))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if proc.master:
        _write_run_config(cfg, proc.out, resume)
    torch.manual_seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    random.seed(cfg.train.seed)
    return proc


def _write_run_config(cfg: ExperimentConfig, out: Path, resume: bool) -> None:
    """config.yaml in the run folder; a resumed run must have the same config (only the epochs may grow)."""
    out.mkdir(parents=True, exist_ok=True)
    if resume and (out / "config.yaml").is_file():
        old = config_io.load(ExperimentConfig, out / "config.yaml")
        if old.data.layout == "auto":  # written before the layout was recorded
            old = replace(old, data=replace(old.data, layout=cfg.data.layout))
        if replace(old, train=replace(old.train, epochs=cfg.train.epochs)) != cfg:
            raise HearflowError(f"{out}/config.yaml differs from this run's config: resume needs the same config")
    config_io.save(cfg, out / "config.yaml")


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


# --------------------------------------------------------------------------- 2. data
def load_data(cfg: ExperimentConfig, proc: Process, progress: bool) -> TrainData:
    """The cache (rank 0 prepares it, the others wait), split, datasets and the sharded training loader."""
    cache = None
    if proc.master:
        flow_user = f"model.flow is {cfg.model.flow}" if cfg.model.flow != "none" else None
        cache = ensure_cache(cfg.data.path, cfg.preprocess, cfg.data.cache or None,
                             cfg.data.prepare_workers or None, progress, layout=cfg.data.layout,
                             flow_user=flow_user, announce=True)
    if proc.world > 1:  # the others wait until rank 0 has prepared the cache
        box = [str(cache) if proc.master else None]
        dist.broadcast_object_list(box, src=0)
        cache = Path(box[0])
    index = CacheIndex(cache)
    train_idx, val_idx = split_indices(index, cfg)
    train_set = ClipDataset(index, train_idx, augment=cfg.train.augment, crop_scale=cfg.train.crop_scale,
                            seed=cfg.train.seed, crop=cfg.train.crop)
    val_set = ClipDataset(index, val_idx) if val_idx else None
    per_rank = cfg.train.batch_size // proc.world
    if per_rank < 2:
        raise HearflowError(f"train.batch_size {cfg.train.batch_size} over {proc.world} processes leaves < 2 per batch")
    if len(train_set) < per_rank * proc.world:
        raise HearflowError(f"only {len(train_set)} training clips for a batch of {cfg.train.batch_size}: "
                            "lower train.batch_size")
    sampler = DistributedSampler(train_set, num_replicas=proc.world, rank=proc.rank, shuffle=True,
                                 seed=cfg.train.seed, drop_last=True)
    loader = DataLoader(train_set, batch_size=per_rank, sampler=sampler, drop_last=True,
                        num_workers=cfg.data.workers, persistent_workers=False,
                        multiprocessing_context=worker_context(cfg.data.workers),
                        pin_memory=proc.device.type == "cuda")
    return TrainData(index, train_set, val_set, val_idx, index.done[train_idx[0]]["rate"], sampler, loader)


def split_indices(index: CacheIndex, cfg: ExperimentConfig) -> tuple[list[int], list[int]]:
    """Training and validation clip indices. Validation is never the test split."""
    train = index.indices(cfg.data.train_split)
    val = index.indices(cfg.data.val_split)
    if cfg.data.val_split == cfg.data.test_split:
        raise HearflowError("data.val_split must differ from data.test_split: model selection never sees the test set")
    if not val and cfg.data.val_fraction > 0:  # hold out a deterministic slice of train
        rng = np.random.default_rng(12345)
        order = rng.permutation(len(train))
        n_val = max(1, int(round(cfg.data.val_fraction * len(train))))
        val = sorted(train[i] for i in order[:n_val])
        train = sorted(train[i] for i in order[n_val:])
    if not train:
        raise HearflowError(
            f"{index.path}: no prepared clips in split '{cfg.data.train_split}' (splits: {index.splits()})"
        )
    return train, val


# --------------------------------------------------------------------------- 3. model, optimizer, schedule
def build_training(cfg: ExperimentConfig, proc: Process, data: TrainData, resume: bool) -> TrainState:
    """Model (made after the seeds, so its initial weights follow train.seed), optimizer, LR schedule,
    the selection metric; the state of the last checkpoint when resuming; DDP around the model."""
    model = create_model(cfg.model).to(proc.device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt_cls = torch.optim.AdamW if cfg.optim.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, len(data.loader)))
    state = TrainState(model, model, optimizer, scheduler, _selection_metric(cfg, data))
    if resume:
        _resume(cfg, proc, state)
    if proc.world > 1:
        device_ids = [proc.local_rank] if proc.device.type == "cuda" else None
        state.model = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    return state


def _selection_metric(cfg: ExperimentConfig, data: TrainData) -> str:
    """train.select, where "auto" means the adaptive cIoU when the validation clips have boxes, else the loss."""
    if cfg.train.select != "auto":
        return cfg.train.select
    has_boxes = data.val_set is not None and any(data.index.clips[i]["boxes"] for i in data.val_idx)
    return "ciou_adap@0.5" if has_boxes else "val_loss"


def _resume(cfg: ExperimentConfig, proc: Process, state: TrainState) -> None:
    """Weights from last/, optimizer, schedule, epoch, best value and torch's random state from train_state.pt."""
    out = proc.out
    if not (out / "last" / "model.safetensors").is_file() or not (out / STATE).is_file():
        raise HearflowError(f"{out}: nothing to resume (no last/ checkpoint); run without --resume")
    state.model.load_state_dict(load_checkpoint(out / "last").model.state_dict())
    saved = torch.load(out / STATE, map_location="cpu", weights_only=True)
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.start_epoch, state.best = saved["epoch"] + 1, saved["best"]
    torch.set_rng_state(saved["rng"]["torch"])
    if proc.master:
        print(f"resuming {out} at epoch {state.start_epoch + 1}/{cfg.train.epochs}")


def _lr_lambda(cfg: ExperimentConfig, steps_per_epoch: int):
    total = max(1, cfg.train.epochs * steps_per_epoch)
    warm = int(cfg.optim.warmup_epochs * steps_per_epoch)

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.optim.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
        return 1.0

    return f


# --------------------------------------------------------------------------- 4. epochs
def _open_writer(cfg: ExperimentConfig, proc: Process, data: TrainData, state: TrainState):
    """Rank 0: the TensorBoard writer (a resumed run drops the steps after its checkpoint) and the run banner."""
    if not proc.master:
        return None
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(proc.out / "tb"), purge_step=state.start_epoch)
    print(f"training on {proc.device} ({proc.world} process{'es' if proc.world > 1 else ''}): "
          f"{len(data.train_set)} train / {len(data.val_idx)} val clips, batch {cfg.train.batch_size}, "
          f"{cfg.train.epochs} epochs, selecting best by {state.select}; run folder {proc.out}")
    return writer


def train_one_epoch(cfg: ExperimentConfig, proc: Process, data: TrainData, state: TrainState, epoch: int,
                    progress: bool) -> dict:
    """One pass over this process's shard; returns the epoch's row: epoch (from 1), mean train loss, LR."""
    data.sampler.set_epoch(epoch)
    data.train_set.set_epoch(epoch)
    set_train_mode(state.model, state.core, cfg)
    total, count = 0.0, 0
    loader = data.loader
    bar = tqdm(_batches(loader, proc.device), total=len(loader), desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
               unit="batch", disable=None if (proc.master and progress) else True, leave=False)
    for step, batch in enumerate(bar):
        extra_specs = extra_negative_spectrograms(cfg, data.rate, (cfg.train.seed, epoch, step))
        loss, _ = _forward_loss(state.model, batch, cfg, proc.device, extra_specs)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.scheduler.step()
        total, count = total + loss.item(), count + 1
        bar.set_postfix(loss=f"{total / count:.4f}")
    return {"epoch": epoch + 1, "train_loss": total / max(1, count), "lr": state.scheduler.get_last_lr()[0]}


def set_train_mode(model: torch.nn.Module, core: torch.nn.Module, cfg: ExperimentConfig) -> None:
    """Training mode; with train.visual_bn "train", a frozen visual encoder's BatchNorm layers
    too (the authors' Lightning code: batch statistics, running statistics drifting)."""
    model.train()  # HTFModel.train keeps a frozen visual encoder in eval mode
    if cfg.train.visual_bn == "train" and cfg.model.freeze_vision:
        for m in core.visual_encoder.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.train()


def _batches(loader, device):
    for b in loader:
        yield {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in b.items()}


def extra_negative_spectrograms(cfg: ExperimentConfig, rate: int, seed) -> torch.Tensor | None:
    """Spectrograms (E, 1, F, T) of cfg.loss.extra_negatives, made by the media layer from
    fresh random noise each call: "silence" is noise at -80 dBFS, "noise" white noise at -20 dBFS."""
    kinds = cfg.loss.extra_negatives
    if not kinds:
        return None
    from hearflow.media.audio import log_spectrogram

    unknown = set(kinds) - {"silence", "noise"}
    if unknown:
        raise HearflowError(f"loss.extra_negatives: unknown kind(s) {sorted(unknown)} (known: silence, noise)")
    rng = np.random.default_rng(seed)
    n = cfg.preprocess.window_samples(rate)
    level = {"silence": 1e-4, "noise": 0.1}
    waves = np.stack([level[k] * rng.standard_normal(n) for k in kinds]).astype(np.float32)
    return torch.from_numpy(log_spectrogram(waves, rate, cfg.preprocess)[:, None].astype(np.float32))


def _forward_loss(model, batch, cfg: ExperimentConfig, device: torch.device, extra_specs=None):
    use_amp = cfg.train.amp and device.type == "cuda"
    extra = None if extra_specs is None else extra_specs.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        out = model(batch["frame"], batch["flow"], batch["spec"], extra)
    extra_audio = out["extra_audio"].float() if extra is not None else None
    # the loss divides cosines by small temperatures: compute it in float32
    return compute_loss(out["visual"].float(), out["audio"].float(), cfg.loss, extra_audio), out


@torch.no_grad()
def validate(model, dataset: ClipDataset, cfg: ExperimentConfig, device: torch.device) -> dict:
    """Validation loss and, when the clips have boxes, the localization metrics."""
    from hearflow.trainer.evaluate import score_maps

    model.eval()
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, shuffle=False, num_workers=cfg.data.workers,
                        multiprocessing_context=worker_context(cfg.data.workers))
    losses, maps = [], {}
    for batch in _batches(loader, device):
        loss, out = _forward_loss(model, batch, cfg, device)
        if len(batch["index"]) > 1:  # a contrastive loss needs at least one negative
            losses.append(float(loss) * len(batch["index"]))
        for i, m in zip(batch["index"].tolist(), out["map"].float().cpu().numpy()):
            maps[i] = m
    model.train()
    result = {"val_loss": sum(losses) / max(1, len(dataset))}
    clips = dataset.index.clips
    if any(clips[i]["boxes"] for i in maps):
        summary = score_maps({i: maps[i] for i in maps if clips[i]["boxes"]}, clips)[1]
        result.update({k: summary[k] for k in ("pointing", "ciou_adap@0.5", "ciou@0.5", "mean_ciou_adap")})
    return result


def _end_epoch(cfg: ExperimentConfig, proc: Process, data: TrainData, state: TrainState, writer, epoch: int,
               row: dict, t0: float) -> None:
    """Rank 0 after an epoch: validate, pick best/, save, log and print the row."""
    if data.val_set is not None:
        row.update(validate(state.core, data.val_set, cfg, proc.device))
    row["seconds"] = round(time.time() - t0, 1)
    improved = data.val_set is None or _selection_value(state.select, row) > state.best
    if improved and data.val_set is not None:
        state.best = _selection_value(state.select, row)
    _save(proc.out, state.core, cfg, epoch, row, state.optimizer, state.scheduler, state.best, improved)
    _log(proc.out, writer, row)
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
          + ("  *best*" if improved else ""))


def _selection_value(metric: str, result: dict) -> float:
    """Larger is better."""
    if metric == "val_loss":
        return -result["val_loss"]
    return result.get(metric, float("-inf"))


def _save(out: Path, model, cfg, epoch: int, row: dict, optimizer, scheduler, best: float, improved: bool):
    """last/ every epoch (with the resumable state), best/ when the validation metric improved."""
    extra = {"epoch": epoch + 1, "metrics": row, "run": str(out)}
    save_checkpoint(out / "last", model, cfg.preprocess, **extra)
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch,
             "best": best, "rng": {"torch": torch.get_rng_state()}}
    torch.save(state, out / (STATE + ".tmp"))
    (out / (STATE + ".tmp")).replace(out / STATE)
    if improved:
        save_checkpoint(out / "best", model, cfg.preprocess, **extra)


def _log(out: Path, writer, row: dict) -> None:
    path = out / METRICS_CSV
    rows = []
    if path.is_file():
        with open(path) as f:
            rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < row["epoch"]]  # resume rewrites the tail
    rows.append(row)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    for k, v in row.items():
        if k != "epoch" and isinstance(v, (int, float)):
            writer.add_scalar(k, v, row["epoch"])
    writer.flush()
    _plot_curves(out, rows)


def _plot_curves(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) for r in rows]
    metrics = [k for k in ("pointing", "ciou_adap@0.5", "ciou@0.5") if any(k in r and r[k] != "" for r in rows)]
    fig, axes = plt.subplots(1, 2 if metrics else 1, figsize=(10 if metrics else 5, 3.5), squeeze=False)
    ax = axes[0][0]
    for k in ("train_loss", "val_loss"):
        vals = [float(r[k]) for r in rows if r.get(k) not in (None, "")]
        if vals:
            ax.plot(epochs[: len(vals)], vals, marker="o", label=k)
    ax.set_xlabel("epoch"), ax.set_title("loss"), ax.legend()
    if metrics:
        ax = axes[0][1]
        for k in metrics:
            ax.plot(epochs, [float(r[k]) if r.get(k) not in (None, "") else float("nan") for r in rows],
                    marker="o", label=k)
        ax.set_ylim(0, 1), ax.set_xlabel("epoch"), ax.set_title("validation"), ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=80)
    plt.close(fig)
