"""PreprocessConfig: every choice that turns raw video + audio into model inputs.

One instance of this dataclass is saved inside every checkpoint and every exported model,
and the trainer, the evaluator and the engine all build their inputs from it through
``hearflow.media``. Changing preprocessing means changing a field here, never writing
a second implementation somewhere else (train/serve skew is the bug this avoids).

Presets: ``default`` (hearflow's own), ``htf_compat`` (what the Hear-The-Flow authors'
released models were trained on) and ``ezvsl_compat`` (EZ-VSL's).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessConfig:
    # --- frames -------------------------------------------------------------------
    image_size: int = 224
    """Model input is image_size × image_size (the frame is resized, not cropped)."""
    image_resize: Literal["area", "bilinear", "bicubic", "pil_bicubic"] = "area"
    """Resize filter: OpenCV area (antialiased, fast), bilinear, bicubic, or PIL bicubic
    (what torchvision's Resize on PIL images does: HTF, LVS and EZ-VSL)."""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    """Per-channel RGB mean subtracted after scaling to [0, 1]."""
    std: tuple[float, float, float] = IMAGENET_STD
    """Per-channel RGB std divided after subtracting the mean."""

    # --- optical flow -------------------------------------------------------------
    flow: Literal["dis", "farneback", "torch_farneback", "none"] = "dis"
    """Flow provider: OpenCV DIS (preset FAST), Farneback (OpenCV, HTF's parameters),
    torch_farneback (the same algorithm in torch, same numbers to float rounding, also on
    GPUs), or none (zeros)."""
    flow_resolution: Literal["model", "native"] = "model"
    """Compute flow on grayscale frames resized to the model size, or at the source's
    native resolution (HTF; slower) and resize the flow afterwards."""
    flow_max_side: int | None = None
    """If set, flow is computed on frames shrunk (area filter) so that their longest side is
    at most this, and the field is resized back and rescaled to the source's pixel scale
    (faster HTF-compatible native flow). None: no bound."""
    flow_pair: Literal["previous", "next"] = "previous"
    """Flow from the previous source frame into this one (causal: what a live engine has),
    or from this frame to the next (HTF's released preprocessing)."""
    flow_encoding: Literal["signed", "htf_uint8"] = "signed"
    """signed: float, model-resolution pixels per 1/flow_ref_fps s, clipped to ±flow_clip,
    divided by flow_clip. htf_uint8: HTF's JPEG-era encoding, each component rounded and
    saturated to 0..255 at native resolution (negative motion becomes 0), resized, /255."""
    flow_ref_fps: float = 25.0
    """Flow is rescaled to displacement per 1/flow_ref_fps s, so 30 and 50 fps sources
    give the same scale (signed encoding only)."""
    flow_clip: float = 20.0
    """Displacements beyond ±flow_clip pixels are clipped; the result is divided by it."""

    # --- audio --------------------------------------------------------------------
    sample_rate: int | Literal["native"] = 22050
    """Audio is downmixed to mono and resampled to this rate; ``native`` keeps each
    file's own rate (EZ-VSL)."""
    audio_seconds: float = 3.0
    """Length of the audio window around each frame."""
    audio_window: Literal["centered", "trailing"] = "centered"
    """Window placement: centred on the frame time (HTF training; needs the future) or
    trailing, ending at the frame time (what a live engine can have)."""
    audio_pad: Literal["tile", "zeros"] = "tile"
    """Audio shorter than the window is repeated (HTF/LVS) or zero-padded."""
    nperseg: int = 512
    """Spectrogram segment length (scipy.signal.spectrogram nperseg)."""
    noverlap: int = 274
    """Spectrogram segment overlap (scipy.signal.spectrogram noverlap)."""
    log_eps: float = 1e-7
    """log(S + log_eps) avoids log(0) on silence."""
    log_divisor: float = 12.0
    """The log spectrogram is divided by this (HTF)."""

    PRESETS = {}  # filled below; class attribute, not a field

    def __post_init__(self):
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32, got {self.image_size}")
        if self.flow_encoding == "htf_uint8" and self.flow == "none":
            raise ValueError("flow_encoding htf_uint8 needs a flow provider")
        if self.noverlap >= self.nperseg:
            raise ValueError("noverlap must be smaller than nperseg")
        if self.audio_seconds <= 0:
            raise ValueError("audio_seconds must be positive")
        if self.flow_max_side is not None and self.flow_max_side < 32:
            raise ValueError(f"flow_max_side must be >= 32 or null, got {self.flow_max_side}")

    # --- derived values -----------------------------------------------------------
    @property
    def uses_flow(self) -> bool:
        return self.flow != "none"

    def rate_for(self, native_rate: int) -> int:
        """The sample rate audio from a source at ``native_rate`` is resampled to."""
        return native_rate if self.sample_rate == "native" else int(self.sample_rate)

    def window_samples(self, rate: int) -> int:
        """Number of samples in one audio window at ``rate``."""
        return int(round(self.audio_seconds * rate))

    def spectrogram_frames(self, rate: int) -> int:
        """Number of spectrogram time steps for one window at ``rate`` (276 for HTF)."""
        n = self.window_samples(rate)
        step = self.nperseg - self.noverlap
        return (n - self.nperseg) // step + 1

    @property
    def spectrogram_bins(self) -> int:
        return self.nperseg // 2 + 1

    def to_dict(self) -> dict:
        from hearflow.config import to_dict

        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "preprocess") -> "PreprocessConfig":
        from hearflow.config import from_dict

        return from_dict(cls, data, source)

    def fingerprint(self) -> str:
        """Short stable hash of every field: caches and exports are keyed by it.

        Fields added later are left out while they hold their default, so configs that
        existed before keep their hash (and their prepared caches).
        """
        data = self.to_dict()
        for name, default in _LATER_FIELDS.items():
            if data.get(name) == default:
                del data[name]
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def replace(self, **changes) -> "PreprocessConfig":
        return dataclasses.replace(self, **changes)


# Fields added after configs were first saved, with the default that leaves them out of
# the fingerprint.
_LATER_FIELDS = {"flow_max_side": None}


def htf_compat() -> PreprocessConfig:
    """What the Hear-The-Flow authors' released checkpoints were trained on.

    Image and flow resized to 224×224 with PIL bicubic; Farneback flow at the video's
    native resolution between the annotated frame and the next one, stored as 8-bit
    images (negative motion saturates to 0) and divided by 255; audio 22,050 Hz mono,
    3 s centred on the frame, log spectrogram / 12.
    """
    return PreprocessConfig(
        image_resize="pil_bicubic",
        flow="farneback",
        flow_resolution="native",
        flow_pair="next",
        flow_encoding="htf_uint8",
        sample_rate=22050,
        audio_window="centered",
    )


def ezvsl_compat() -> PreprocessConfig:
    """EZ-VSL's preprocessing: PIL bicubic 224×224, audio 3 s centred at the file's own rate."""
    return PreprocessConfig(
        image_resize="pil_bicubic",
        flow="none",
        sample_rate="native",
        audio_window="centered",
    )


PreprocessConfig.PRESETS.update(
    {"default": PreprocessConfig, "htf_compat": htf_compat, "ezvsl_compat": ezvsl_compat}
)
