"""Reading a prepared cache as a torch Dataset.

Frames are stored as uint8 and audio as the raw window, so normalisation and the
spectrogram are computed here by the media layer's functions (one definition), and the
training augmentation (same random crop/flip of frame and flow) comes from
:mod:`hearflow.media.augment`. Augmentation randomness is a function of
(seed, epoch, clip index), so a resumed run sees exactly what an uninterrupted one would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hearflow.errors import HearflowError
from hearflow.media.audio import log_spectrogram
from hearflow.media.augment import augment
from hearflow.media.frames import normalize_frame
from hearflow.media.preprocess import PreprocessConfig


class CacheIndex:
    """The clips of a prepared cache and their status (see :mod:`hearflow.trainer.clip_cache`)."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            meta = json.loads((self.path / "cache.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise HearflowError(f"{self.path}: not a prepared hearflow cache ({exc})") from None
        self.preprocess = PreprocessConfig.from_dict(meta["preprocess"], f"{self.path}/cache.json")
        self.layout = meta["layout"]
        self.clips = meta["clips"]
        self.done = {}
        for line in (self.path / "done.jsonl").read_text().splitlines() if (self.path / "done.jsonl").is_file() else []:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.done[rec["index"]] = rec

    def indices(self, split: str | None = None, with_boxes: bool = False) -> list[int]:
        """Prepared (status ok) clip indices of ``split`` (None = all)."""
        out = []
        for i, clip in enumerate(self.clips):
            rec = self.done.get(i)
            if not rec or rec["status"] != "ok":
                continue
            if split is not None and clip["split"] != split:
                continue
            if with_boxes and not clip["boxes"]:
                continue
            out.append(i)
        return out

    def splits(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for i in self.indices():
            counts[self.clips[i]["split"]] = counts.get(self.clips[i]["split"], 0) + 1
        return counts


class ClipDataset(Dataset):
    """Samples of a prepared cache: dict(frame (3,S,S), flow (2,S,S), spec (1,F,T), index).

    cache: the cache folder; indices: which clips (see :meth:`CacheIndex.indices`).
    augment: apply the training augmentation (random crop + flip, same on frame and flow).
    crop_scale: range of the crop side as a fraction of the frame (zoom augmentation only).
    crop: the augmentation's crop mode (see :mod:`hearflow.media.augment`): zoom or
        short_side_crop (which uses each clip's recorded source aspect ratio).
    seed: base of the augmentation randomness; call :meth:`set_epoch` each epoch.
    audio_override: replace every clip's audio (for "does it listen?" tests): 'silence',
        'noise', or 'shuffle' (another clip's audio, a fixed derangement).
    """

    def __init__(
        self,
        cache,
        indices: list[int],
        augment: bool = False,
        crop_scale: tuple[float, float] = (0.8, 1.0),
        seed: int = 0,
        crop: str = "zoom",
        audio_override: str | None = None,
    ):
        self.index = cache if isinstance(cache, CacheIndex) else CacheIndex(cache)
        self.cfg = self.index.preprocess
        self.indices = list(indices)
        self.augment = augment
        self.crop_scale = tuple(crop_scale)
        self.crop = crop
        self.seed = seed
        self.epoch = 0
        self.audio_override = audio_override
        self._arrays = None  # opened lazily in each worker process (memmaps do not pickle well)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getstate__(self):
        # sent to worker processes: they reopen the memmaps rather than receive copies
        return {**self.__dict__, "_arrays": None}

    def __len__(self) -> int:
        return len(self.indices)

    def _open(self):
        if self._arrays is None:
            self._arrays = {
                name: np.load(self.index.path / f"{name}.npy", mmap_mode="r") for name in ("frames", "flows", "audio")
            }
        return self._arrays

    def audio_of(self, i: int) -> tuple[np.ndarray, int]:
        """Clip i's stored audio window (float32) and its rate."""
        arrays = self._open()
        rec = self.index.done[i]
        return arrays["audio"][i, : rec["samples"]].astype(np.float32) / 32767, rec["rate"]

    def __getitem__(self, k: int) -> dict:
        i = self.indices[k]
        arrays = self._open()
        frame = np.asarray(arrays["frames"][i])
        flow = np.asarray(arrays["flows"][i], dtype=np.float32)
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            aspect = float(self.index.done[i].get("aspect", 1.0))  # caches made before it was recorded: 1
            frame, flow = augment(frame, flow, rng, self.cfg, self.crop, scale=self.crop_scale, aspect=aspect)
        audio, rate = self._audio(k, i)
        spec = log_spectrogram(audio, rate, self.cfg)[None]
        return {
            "frame": torch.from_numpy(normalize_frame(frame, self.cfg)),
            "flow": torch.from_numpy(np.ascontiguousarray(flow)),
            "spec": torch.from_numpy(spec.astype(np.float32)),
            "index": i,
        }

    def _audio(self, k: int, i: int) -> tuple[np.ndarray, int]:
        if self.audio_override is None:
            return self.audio_of(i)
        audio, rate = self.audio_of(i)
        if self.audio_override == "silence":
            return np.zeros_like(audio), rate
        if self.audio_override == "noise":
            rng = np.random.default_rng((self.seed, i, 7))
            return (0.1 * rng.standard_normal(len(audio))).astype(np.float32), rate
        if self.audio_override == "shuffle":
            other = self.indices[(k + max(1, len(self.indices) // 2)) % len(self.indices)]
            return self.audio_of(other)
        raise ValueError(f"unknown audio_override {self.audio_override!r}")


def worker_context(num_workers: int):
    """The multiprocessing context for DataLoader workers (None when loading in-process).

    A fork server rather than plain fork: a worker forked from a process whose OpenCV or
    OpenMP thread pool is already running (an evaluation, the engine, a notebook) waits
    forever on threads that were not copied. The server itself never runs those pools, and
    preloading this module keeps each worker's start as cheap as a fork.
    """
    if num_workers <= 0:
        return None
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None  # platforms without it (Windows) spawn by default
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["hearflow.trainer.data"])
    return ctx
