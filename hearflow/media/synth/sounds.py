"""Each class's sound as a pure function of (sound spec, sample index), and counter-based noise."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import signal

from hearflow.media.synth.spec import SoundSpec


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def hash64(seed: int, idx: np.ndarray) -> np.ndarray:
    """splitmix64 of (seed, idx): counter-based randomness, so any sample range is pure."""
    with np.errstate(over="ignore"):
        z = idx.astype(np.int64).astype(np.uint64) * _GOLDEN + np.uint64(seed & 0xFFFFFFFFFFFF) * np.uint64(
            0xD1B54A32D192ED03
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_noise(seed: int, idx: np.ndarray) -> np.ndarray:
    """Approximately standard-normal noise (float64), a pure function of (seed, sample index).

    Sum of four 16-bit uniforms from one 64-bit hash (Irwin–Hall), scaled to unit variance.
    """
    h = hash64(seed, np.asarray(idx))
    s = np.zeros(h.shape, np.float64)
    for k in range(4):
        s += ((h >> np.uint64(16 * k)) & np.uint64(0xFFFF)).astype(np.float64)
    return (s / 65536.0 - 2.0) * math.sqrt(3.0)


@lru_cache(maxsize=64)
def _bandpass(lo: float, hi: float, sr: int):
    return signal.butter(2, [lo, hi], btype="band", fs=sr, output="sos")


def _bursts(snd: SoundSpec, u: np.ndarray, sr: int) -> np.ndarray:
    """Drum: band-passed noise bursts on a beat, each rendered whole so chunks agree."""
    period = 0.25 / snd.rate
    length = int(0.16 * sr)
    fc = 1500.0 * snd.pitch
    sos = _bandpass(fc / 1.7, min(fc * 1.7, 0.45 * sr), sr)
    out = np.zeros(u.shape, np.float64)
    u0, u1 = int(u[0]), int(u[-1]) + 1
    env = np.exp(-np.arange(length) / (0.035 * sr))
    k0 = math.floor((u0 - length) / (period * sr))
    k1 = math.floor(u1 / (period * sr))
    for k in range(k0, k1 + 1):
        b = int(round(k * period * sr))
        lo, hi = max(b, u0), min(b + length, u1)
        if lo >= hi:
            continue
        accent = 0.55 + 0.45 * (hash_noise(snd.seed + 7, np.array([k]))[0] > 0)  # strong/weak beats
        burst = signal.sosfilt(sos, hash_noise(snd.seed, np.arange(length) + k * length)) * env
        burst *= accent / (np.abs(burst).max() + 1e-9)  # equal peaks: the level cap holds for every burst
        out[lo - u0 : hi - u0] += burst[lo - b : hi - b]
    return out


def sound_signal(snd: SoundSpec, u: np.ndarray, sr: int) -> np.ndarray:
    """The raw sound (times snd.gain) at sound-local sample indices ``u`` (consecutive ints)."""
    t = u / sr
    two_pi = 2 * np.pi
    p, r, kind = snd.pitch, snd.rate, snd.kind
    if kind == "hum":  # low harmonic hum with a slow swell
        f0 = 90.0 * p
        x = sum(k**-1.2 * np.sin(two_pi * k * f0 * t + 0.7 * k) for k in range(1, 9))
        x = x * (1 + 0.15 * np.sin(two_pi * 0.7 * r * t))
    elif kind == "buzz":  # band-limited square wave: odd harmonics, 1/k
        f0 = 200.0 * p
        x = sum(np.sin(two_pi * k * f0 * t) / k for k in range(1, int(0.45 * sr / f0) + 1, 2))
    elif kind == "drum":
        x = _bursts(snd, u, sr)
    elif kind == "chirp":  # exponential up-sweeps, 2 per second
        period, dur = 0.5 / r, 0.3 / r
        f1, f2 = 580.0 * p, 2320.0 * p
        tau = np.mod(t, period)
        k = math.log(f2 / f1)
        phase = two_pi * f1 * dur / k * (np.exp(k * np.minimum(tau, dur) / dur) - 1)
        env = np.where(tau < dur, np.sin(np.pi * np.minimum(tau, dur) / dur) ** 2, 0.0)
        x = env * np.sin(phase)
    elif kind == "bell":  # inharmonic partials, struck every 0.8 s
        period = 0.8 / r
        tau = np.mod(t, period)
        f0 = 460.0 * p
        x = sum(
            a * np.exp(-tau / d) * np.sin(two_pi * f0 * q * tau)
            for q, a, d in ((1.0, 1.0, 0.5), (2.32, 0.7, 0.3), (4.25, 0.5, 0.18), (6.63, 0.35, 0.1))
        )
        x = x * np.minimum(tau / 0.002, 1.0)  # soft attack: no click at the strike
    elif kind == "tremolo":  # tone with a deep 6 Hz amplitude modulation
        f0 = 230.0 * p
        tone = np.sin(two_pi * f0 * t) + 0.3 * np.sin(two_pi * 2 * f0 * t)
        x = tone * (1 - 0.9 * (0.5 + 0.5 * np.sin(two_pi * 6.0 * r * t)))
    elif kind == "clicks":  # train of short high clicks, 25 per second
        period = 0.04 / r
        tau = np.mod(t, period)
        x = np.exp(-tau / 0.0015) * np.sin(two_pi * 5000.0 * p * tau)
    elif kind == "whistle":  # high sine with vibrato
        fc, fv = 3000.0 * p, 5.0 * r
        x = np.sin(two_pi * fc * t + (0.03 * fc / fv) * np.sin(two_pi * fv * t))
    elif kind == "noise":  # broadband
        x = hash_noise(snd.seed, u)
    else:
        raise ValueError(f"unknown sound {kind!r}")
    return snd.gain * np.asarray(x, np.float64)
