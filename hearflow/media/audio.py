"""Audio around a frame → model input: a fixed window, then a log spectrogram.

The window is cfg.audio_seconds long, placed around the frame time (centred or
trailing), clipped to [-1, 1] and padded if the audio is too short. Its log spectrogram
is exactly HTF's: ``scipy.signal.spectrogram(x, fs, nperseg=512, noverlap=274)`` with
scipy's defaults, then ``log(S + 1e-7) / 12`` (values from cfg). It is computed here in
vectorised numpy so batches of windows are done in one pass.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hearflow.media.preprocess import PreprocessConfig


@lru_cache(maxsize=8)
def spectrogram_window(nperseg: int) -> tuple[np.ndarray, float]:
    """scipy.signal.spectrogram's default window (periodic Tukey, alpha 0.25) as
    float32, and the sum of its squares (for the density scaling) in float64.

    Shared with the torch spectrogram (hearflow.media.preprocess_torch): one definition."""
    # scipy on first use: importing it takes longer than `hearflow run`'s checks of bad input
    from scipy.signal import get_window

    win = get_window(("tukey", 0.25), nperseg)
    power = float(np.dot(win, win))
    win = win.astype(np.float32)
    win.flags.writeable = False  # shared by every call through the cache
    return win, power


def log_spectrogram(wave: np.ndarray, rate: int, cfg: PreprocessConfig) -> np.ndarray:
    """Log power spectrogram of the last axis: float (..., n) → float32 (..., F, T).

    wave: one signal (n,) or a batch (..., n) of mono samples.
    rate: their sample rate in Hz (the density scaling depends on it).
    F = cfg.nperseg // 2 + 1 frequency bins; T = (n - noverlap) // (nperseg - noverlap)
    segments (257 × 276 for 3 s at 22,050 Hz).

    Equals ``np.log(scipy.signal.spectrogram(wave, fs=rate, nperseg=cfg.nperseg,
    noverlap=cfg.noverlap)[2] + cfg.log_eps) / cfg.log_divisor`` (scipy's defaults:
    Tukey(0.25) window, per-segment mean removal, one-sided PSD with density scaling).
    Unlike scipy, a signal shorter than nperseg is an error rather than a shorter segment.
    """
    nperseg, noverlap = cfg.nperseg, cfg.noverlap
    # float32 throughout: half the memory traffic of float64 and scipy.fft has native
    # float32 transforms; the result stays within ~1e-6 of scipy's float64 computation.
    x = np.asarray(wave, dtype=np.float32)
    if x.ndim == 0 or x.shape[-1] < nperseg:
        raise ValueError(f"need at least nperseg={nperseg} samples, got shape {x.shape}")
    win, win_power = spectrogram_window(nperseg)

    # (..., T, nperseg) view of the overlapping segments; no copy until detrending.
    segs = sliding_window_view(x, nperseg, axis=-1)[..., :: nperseg - noverlap, :]
    d = segs - segs.mean(axis=-1, keepdims=True)  # detrend='constant'
    d *= win
    from scipy import fft as sp_fft  # see spectrogram_window; after the first call a dictionary lookup

    spec = sp_fft.rfft(d, axis=-1)
    power = spec.real**2
    power += spec.imag**2
    power *= np.float32(1.0 / (rate * win_power))  # scaling='density'
    # One-sided spectrum: fold the negative frequencies in, except DC and, for even
    # nperseg, the unpaired Nyquist bin.
    power[..., 1 : None if nperseg % 2 else -1] *= np.float32(2.0)
    power += np.float32(cfg.log_eps)

    # (..., F, T) like scipy; the log writes straight into a C-ordered result.
    out = np.log(power.swapaxes(-1, -2), order="C")
    out /= np.float32(cfg.log_divisor)
    return out


def audio_window(
    wave: np.ndarray,
    rate: int,
    t: float,
    cfg: PreprocessConfig,
    placement: str | None = None,
) -> np.ndarray:
    """The float32 (n,) audio window for a frame at time t, n = cfg.window_samples(rate).

    wave: the whole mono track available, float samples at ``rate`` (sample i is at
        i / rate s); any float dtype, only the window is converted to float32.
    rate: sample rate of ``wave`` in Hz.
    t: the frame time in seconds, on the same clock as ``wave``.
    placement: ``centered`` ([t - d/2, t + d/2]) or ``trailing`` ([t - d, t]), d =
        cfg.audio_seconds; None uses cfg.audio_window.

    Centred: a window that would run past either end of the track is shifted to stay
    inside it rather than padded: with d = 3 s a frame at 0.5 s gets [0, 3] s, and a frame
    0.5 s before the end gets the last 3 s. Trailing: only audio up to t is ever used
    (what a live engine has), so a frame earlier than d gets the audio [0, t] padded as
    below — exactly what the engine computes while it warms up. A track (or, trailing,
    the audio before t) shorter than the window is padded per cfg.audio_pad (``tile``:
    repeated as HTF/LVS do, ``zeros``: zeros after it); no audio gives zeros. Samples are
    clipped to [-1, 1] as LVS does.
    """
    placement = placement or cfg.audio_window
    if placement not in ("centered", "trailing"):
        raise ValueError(f"unknown audio window placement {placement!r}")
    n = cfg.window_samples(rate)
    x = np.asarray(wave)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n,), got shape {x.shape}")
    if x.dtype.kind != "f":
        raise ValueError(f"expected float samples, got dtype {x.dtype}")
    if placement == "trailing":  # never the future: cut the track at the frame time
        x = x[: max(0, min(len(x), int(round(t * rate))))]
    length = len(x)
    if length == 0:
        return np.zeros(n, dtype=np.float32)
    if length < n:
        if cfg.audio_pad == "tile":
            x = np.tile(x, int(n / length) + 1)[:n]
        elif cfg.audio_pad == "zeros":
            x = np.concatenate([x, np.zeros(n - length, dtype=x.dtype)])
        else:
            raise ValueError(f"unknown audio_pad {cfg.audio_pad!r}")
    else:
        frame_sample = int(round(t * rate))
        start = frame_sample - (n // 2 if placement == "centered" else n)
        start = min(max(start, 0), length - n)
        x = x[start : start + n]
    # Clipping after slicing converts only the window, never the whole track.
    return np.clip(x, -1.0, 1.0, dtype=np.float32)


def audio_input(
    wave: np.ndarray,
    rate: int,
    t: float,
    cfg: PreprocessConfig,
    placement: str | None = None,
) -> np.ndarray:
    """The float32 (1, F, T) audio model input for a frame at time t.

    :func:`audio_window` followed by :func:`log_spectrogram`; parameters as there.
    """
    return log_spectrogram(audio_window(wave, rate, t, cfg, placement), rate, cfg)[None]
