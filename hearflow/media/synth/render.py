"""Rendering: :class:`SynthScene` turns a spec into frames, audio and boxes at any time; :func:`render_clip`, a clip."""

from __future__ import annotations

import math

import cv2
import numpy as np

from hearflow.media.synth.config import SynthConfig
from hearflow.media.synth.sampling import sample_spec
from hearflow.media.synth.sounds import hash64, hash_noise, sound_signal
from hearflow.media.synth.spec import ClipSpec, envelope
from hearflow.media.synth.sprites import make_sprite, visible_box, visible_fraction


class SynthScene:
    """Renders a :class:`ClipSpec`: frames, audio, masks and boxes as pure functions of time.

    Works for any frame index / sample index ≥ 0, beyond the clip's duration too
    (objects keep moving, sounds keep repeating), so a live source can stream it.
    """

    def __init__(self, spec: ClipSpec):
        self.spec = spec
        self.width, self.height = spec.width, spec.height
        self.fps, self.sample_rate = spec.fps, spec.sample_rate
        self.sprites = [make_sprite(o) for o in spec.objects]
        self.background = _background(spec)
        rng = np.random.default_rng([spec.seed, 1])
        # a bank of noise twice the frame size; each frame takes a window at a hashed
        # offset: fresh-looking noise per frame without drawing 200k normals every time
        bank = rng.standard_normal((2 * self.height, 2 * self.width, 3), dtype=np.float32) * spec.video_noise
        self._noise_bank = np.round(bank).astype(np.int16)
        self._onset_sample = int(round(spec.sound_onset * spec.sample_rate))

    # --- video -----------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        """Frames in the clip (the scene itself is endless)."""
        return self.spec.n_frames

    def positions(self, i: int) -> list[tuple[int, int]]:
        """Integer top-left of every object's sprite at frame i (drawing order)."""
        out = []
        for o in self.spec.objects:
            x, y = o.motion.pixel(i)
            out.append((int(x), int(y)))
        return out

    def frame(self, i: int, noise: bool = True) -> np.ndarray:
        """RGB uint8 (height, width, 3) frame i (at time i / fps)."""
        img = self.background.copy()
        for (rgb, mask), (x, y) in zip(self.sprites, self.positions(i)):
            h, w = mask.shape
            x0, x1 = max(0, -x), min(w, self.width - x)
            y0, y1 = max(0, -y), min(h, self.height - y)
            if x0 >= x1 or y0 >= y1:
                continue
            region = img[y + y0 : y + y1, x + x0 : x + x1]
            m = mask[y0:y1, x0:x1]
            region[m] = rgb[y0:y1, x0:x1][m]
        if noise and self.spec.video_noise > 0:
            h = hash64(self.spec.seed, np.array([i]))[0]
            oy = int(h % np.uint64(self.height))
            ox = int((h >> np.uint64(32)) % np.uint64(self.width))
            window = self._noise_bank[oy : oy + self.height, ox : ox + self.width]
            img = np.clip(img.astype(np.int16) + window, 0, 255).astype(np.uint8)
        return img

    def frame_at(self, t: float, noise: bool = True) -> np.ndarray:
        """The frame shown at time t seconds (the last frame starting at or before t)."""
        return self.frame(int(math.floor(t * self.fps + 1e-6)), noise=noise)

    def masks(self, i: int) -> list[np.ndarray]:
        """Full-frame boolean mask of every object at frame i (drawing order, occlusion ignored)."""
        out = []
        for (_, mask), (x, y) in zip(self.sprites, self.positions(i)):
            full = np.zeros((self.height, self.width), bool)
            h, w = mask.shape
            x0, x1 = max(0, -x), min(w, self.width - x)
            y0, y1 = max(0, -y), min(h, self.height - y)
            if x0 < x1 and y0 < y1:
                full[y + y0 : y + y1, x + x0 : x + x1] = mask[y0:y1, x0:x1]
            out.append(full)
        return out

    def boxes(self, i: int) -> list[tuple[int, int, int, int] | None]:
        """Tight pixel box [x1, y1, x2, y2) of each object's in-frame pixels at frame i."""
        return [
            visible_box(mask, x, y, self.width, self.height)
            for (_, mask), (x, y) in zip(self.sprites, self.positions(i))
        ]

    def visible_fractions(self, i: int) -> list[float]:
        """Fraction of each object's pixels inside the frame at frame i."""
        return [
            visible_fraction(mask, x, y, self.width, self.height)
            for (_, mask), (x, y) in zip(self.sprites, self.positions(i))
        ]

    # --- audio -----------------------------------------------------------------------
    def audio(self, start: int, n: int) -> np.ndarray:
        """float32 mono samples [start, start + n) (sample s is at time s / sample_rate).

        Before the onset only the noise floor sounds; a 10 ms fade-in follows it. A sound
        with an envelope (twins_all_move) is multiplied by it.
        """
        idx = np.arange(start, start + n, dtype=np.int64)
        out = np.zeros(n, np.float64)
        snd = self.spec.sound
        if snd is not None and n > 0:
            on = idx >= self._onset_sample
            if on.any():
                sr = self.sample_rate
                u = idx[on] - self._onset_sample + int(round(snd.offset * sr))
                ramp = np.minimum((idx[on] - self._onset_sample) / (0.01 * sr), 1.0)
                out[on] = sound_signal(snd, u, sr) * ramp
                if snd.env_freq > 0:  # twins_all_move: the loudness the sounding twin's speed follows
                    out[on] *= envelope(2 * np.pi * snd.env_freq * idx[on] / sr + snd.env_phase, snd.env_floor)
        if self.spec.audio_noise > 0:
            out += self.spec.audio_noise * hash_noise(self.spec.seed ^ 0x5A5A, idx)
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def audio_at(self, t0: float, t1: float) -> np.ndarray:
        """Audio from t0 to t1 seconds."""
        s0 = int(round(t0 * self.sample_rate))
        return self.audio(s0, max(0, int(round(t1 * self.sample_rate)) - s0))


def _background(spec: ClipSpec) -> np.ndarray:
    """Procedural low-saturation texture: octaves of smooth noise plus a gradient, tinted."""
    rng = np.random.default_rng([spec.seed, 0])
    W, H = spec.width, spec.height
    lum = np.zeros((H, W), np.float32)
    for cells, amp in ((3, 1.0), (7, 0.5), (18, 0.3), (50, 0.15)):
        small = rng.standard_normal((cells, cells)).astype(np.float32)
        lum += amp * cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    lum /= max(float(lum.std()), 1e-6)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    grad = ((xx / W - 0.5) * math.cos(theta) + (yy / H - 0.5) * math.sin(theta)) * 2
    base = rng.uniform(80, 170)
    value = base + spec.background_contrast * (0.6 * lum + 0.5 * rng.uniform(0.3, 1.0) * grad)
    hue = rng.uniform(0, 1)
    sat = rng.uniform(0, spec.background_saturation)
    tint = _hsv_to_rgb(hue, sat)  # per-channel factors around 1
    img = value[..., None] * tint[None, None, :]
    # a second, weaker noise field in another hue keeps it from looking like one gel
    small = rng.standard_normal((9, 9)).astype(np.float32)
    chroma = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    img += chroma[..., None] * (_hsv_to_rgb(rng.uniform(0, 1), spec.background_saturation) - 1) * 40
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _hsv_to_rgb(h: float, s: float) -> np.ndarray:
    """RGB factors (max 1 → scaled to mean 1) of a hue at saturation s and full value."""
    px = np.array([[[h * 180, s * 255, 255]]], np.float32).astype(np.uint8)
    rgb = cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255
    return rgb / max(float(rgb.mean()), 1e-6)


def render_clip(spec: ClipSpec, scene: SynthScene | None = None):
    """Render a clip in memory.

    Returns (frames (n_frames, H, W, 3) uint8, audio (n_samples,) float32,
    boxes (n_frames, n_objects, 4) int32 visible pixel boxes in drawing order, -1 where
    an object is entirely outside the frame).
    """
    scene = scene or SynthScene(spec)
    n = spec.n_frames
    frames = np.empty((n, spec.height, spec.width, 3), np.uint8)
    boxes = np.full((n, len(spec.objects), 4), -1, np.int32)
    for i in range(n):
        frames[i] = scene.frame(i)
        for k, b in enumerate(scene.boxes(i)):
            if b is not None:
                boxes[i, k] = b
    audio = scene.audio(0, spec.n_samples)
    return frames, audio, boxes


def scene_from_config(cfg: SynthConfig | None = None, seed: int = 0, **kwargs) -> SynthScene:
    """A scene for a live synthetic source: ``sample_spec(cfg, default_rng(seed), **kwargs)``."""
    cfg = cfg or SynthConfig()
    return SynthScene(sample_spec(cfg, np.random.default_rng(seed), **kwargs))
