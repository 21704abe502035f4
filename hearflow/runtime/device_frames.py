"""Model inputs built on a torch device: a captured frame and audio go up once, inputs stay there.

    dev = DeviceFrames(cfg, "cuda")           # or "cpu": the same torch code, on the CPU
    up = dev.frame(rgb)                       # uint8 H×W×3 → Uploaded(frame (1,3,S,S), gray | None)
    flow = dev.flow(prev.gray, up.gray, fps)  # (1, 2, S, S), on the device
    spec = dev.spectrogram(samples, rate)     # (1, 1, F, T)

Each step is :mod:`hearflow.media.preprocess_torch`, i.e. the preprocessing of
:mod:`hearflow.media` (same PreprocessConfig, same results within rounding).

Optical flow: Farneback runs on the device through ``hearflow.media.flow_torch``; DIS
(OpenCV only) is computed on the host with :class:`hearflow.media.flow.FlowEstimator` and its encoded result uploaded
(:meth:`DeviceFrames.upload_flow`); ``flow_on_device`` says which, and the reason is
logged once.

Memory: the uint8 frame and the audio window are copied into buffers made once per
shape — on CUDA through pinned host staging buffers with asynchronous copies — so a frame
costs one host→device copy of its bytes. The torch ops after it take their memory from
torch's caching allocator, which reuses blocks: after the first frame no device memory is
allocated from the driver. One inference thread does upload, preprocessing and model in
order on torch's current stream; a side stream would only add synchronisation, since
nothing runs beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hearflow.media import preprocess_torch as pt
from hearflow.media.flow_torch import raw_flow
from hearflow.media.preprocess import PreprocessConfig


@dataclass
class Uploaded:
    """One frame's inputs on the device."""

    frame: torch.Tensor
    """(1, 3, S, S) normalised model input."""
    gray: torch.Tensor | None
    """(H', W') float32 grayscale 0..255 at the flow resolution; None unless the flow runs on the device."""


def check_device(device: str) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, usable here; else one-line HearflowError
    (GPUUnavailable when a CUDA device is asked for and torch sees none, or not that one)."""
    from hearflow.errors import GPUUnavailable, HearflowError

    kind, _, index = device.partition(":")
    if device in ("auto", "cpu"):
        return
    if kind != "cuda" or (index and not index.isdigit()):
        raise HearflowError(f"unknown device {device!r} (auto, cpu, cuda or cuda:N)")
    if not torch.cuda.is_available():
        raise GPUUnavailable(f"device {device!r} asked for, but PyTorch sees no CUDA GPU (use --device cpu)")
    if index and int(index) >= torch.cuda.device_count():
        raise GPUUnavailable(f"no GPU {device} (this machine has {torch.cuda.device_count()})")


def flow_placement(cfg: PreprocessConfig) -> tuple[bool, str | None]:
    """(flow on the device?, why not — a one-line note, or None) for cfg.flow."""
    if cfg.flow == "none":
        return False, None
    if cfg.flow == "dis":
        return False, "note: DIS optical flow has no torch version; it runs on the host and is uploaded"
    return True, None


class DeviceFrames:
    """Uploads frames and audio to ``device`` and builds the model inputs there.

    cfg: the model's PreprocessConfig. device: 'cpu', 'cuda' or 'cuda:N' (a torch.device).
    log: one-line logger for the flow placement note (printed once, here).
    Not thread-safe: one instance per inference thread.
    """

    def __init__(self, cfg: PreprocessConfig, device, log=None):
        self.cfg = cfg
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.flow_on_device, note = flow_placement(cfg)
        if note and log is not None:
            log(note)
        self._buffers: dict = {}  # (name, shape, dtype) → (pinned host staging | None, device buffer, event)
        self._zero_flow = None
        self.uploads = 0
        """Host→device copies made (frames, audio windows and host flows)."""

    # --- uploads ------------------------------------------------------------------
    def _buffer(self, name: str, shape: tuple, dtype: torch.dtype):
        key = (name, shape, dtype)
        buf = self._buffers.get(key)
        if buf is None:
            staging = torch.empty(shape, dtype=dtype, pin_memory=True) if self.cuda else None
            buf = self._buffers[key] = (staging, torch.empty(shape, dtype=dtype, device=self.device),
                                        torch.cuda.Event() if self.cuda else None)
        return buf

    def upload(self, array: np.ndarray, name: str = "frame") -> torch.Tensor:
        """Copy ``array`` into this shape's device buffer (reused: valid until the next
        upload of the same name and shape) and return it."""
        src = torch.from_numpy(np.ascontiguousarray(array))
        staging, dev, done = self._buffer(name, tuple(src.shape), src.dtype)
        self.uploads += 1
        if staging is None:  # CPU: the "device" buffer is host memory
            dev.copy_(src)
            return dev
        done.synchronize()  # the previous copy out of the staging buffer has finished
        staging.copy_(src)
        dev.copy_(staging, non_blocking=True)
        done.record(torch.cuda.current_stream(self.device))  # the stream the copy went on
        return dev

    # --- frames and flow ----------------------------------------------------------
    def frame(self, rgb: np.ndarray) -> Uploaded:
        """One captured uint8 H×W×3 RGB frame → its model input and (device flow) its gray."""
        x = self.upload(rgb).movedim(-1, -3)  # uint8 (3, H, W) view; resize converts as it reads
        resized = pt.resize(x, self.cfg)
        gray = None
        if self.flow_on_device:
            gray = pt.to_gray(resized if self.cfg.flow_resolution == "model" else x)
        return Uploaded(pt.normalize(resized, self.cfg)[None], gray)

    def gray(self, rgb: np.ndarray) -> torch.Tensor:
        """The flow-resolution gray of a frame only (the previous frame after a drop)."""
        x = self.upload(rgb).movedim(-1, -3)
        return pt.to_gray(pt.resize(x, self.cfg) if self.cfg.flow_resolution == "model" else x)

    def flow(self, gray_a: torch.Tensor, gray_b: torch.Tensor, fps: float) -> torch.Tensor:
        """(1, 2, S, S) encoded flow from gray_a (earlier) to gray_b (later), on the device."""
        return pt.encode_flow(self.raw_flow(gray_a, gray_b), fps, self.cfg)

    def raw_flow(self, gray_a: torch.Tensor, gray_b: torch.Tensor) -> torch.Tensor:
        """(1, H', W', 2) displacement in pixels of the grays' size (media.flow_torch.raw_flow)."""
        return raw_flow(gray_a[None], gray_b[None], self.cfg)

    def upload_flow(self, flow: np.ndarray) -> torch.Tensor:
        """A host-computed encoded flow (2, S, S) → (1, 2, S, S) on the device."""
        return self.upload(np.asarray(flow, dtype=np.float32), name="flow")[None]

    def zero_flow(self) -> torch.Tensor:
        """(1, 2, S, S) zeros, made once (the model only reads its inputs)."""
        if self._zero_flow is None:
            s = self.cfg.image_size
            self._zero_flow = torch.zeros((1, 2, s, s), dtype=torch.float32, device=self.device)
        return self._zero_flow

    # --- audio --------------------------------------------------------------------
    def spectrogram(self, samples: np.ndarray, rate: int) -> torch.Tensor:
        """(n,) float32 audio window → (1, 1, F, T) log spectrogram on the device."""
        wave = self.upload(np.asarray(samples, dtype=np.float32), name="audio")
        return pt.log_spectrogram(wave, rate, self.cfg)[None, None]

    def blank_spectrogram(self, rate: int) -> torch.Tensor:
        """Zeros shaped like one audio-graph input (1, 1, F, T)."""
        shape = (1, 1, self.cfg.spectrogram_bins, self.cfg.spectrogram_frames(rate))
        return torch.zeros(shape, dtype=torch.float32, device=self.device)
