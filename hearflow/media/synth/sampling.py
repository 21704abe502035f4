"""Scene sampling: drawing a :class:`ClipSpec` (classes, looks, trajectories, sound) from a config and a generator."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

from hearflow.errors import ConfigError
from hearflow.media.synth.config import (
    CLASS_STYLES,
    NEGATIVE_KINDS,
    REGIMES,
    SPLIT_CODE,
    TWINS_REGIMES,
    RegimeWeights,
    SynthConfig,
)
from hearflow.media.synth.sounds import sound_signal
from hearflow.media.synth.spec import ClipSpec, Motion, ObjectSpec, SoundSpec
from hearflow.media.synth.sprites import shape_mask, visible_fraction


def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of clip ``index`` of ``split``: independent of worker count and order."""
    return np.random.default_rng([int(seed), SPLIT_CODE.get(split, 3), int(index)])


def regime_cycle(weights: RegimeWeights | dict, n: int) -> list[str]:
    """Deterministic weighted round robin of regimes for n clips (smooth: evenly spread)."""
    w = weights.as_dict() if isinstance(weights, RegimeWeights) else dict(weights)
    names = [r for r in REGIMES if w.get(r, 0) > 0]
    total = sum(w[r] for r in names)
    current = {r: 0.0 for r in names}
    out = []
    for _ in range(n):
        for r in names:
            current[r] += w[r]
        pick = max(names, key=lambda r: current[r])  # first of the largest: stable
        current[pick] -= total
        out.append(pick)
    return out


def _jitter_colour(rgb, rng, amount: float) -> tuple[int, int, int]:
    c = np.asarray(rgb, np.float64) * (1 + rng.uniform(-amount, amount))
    c += rng.uniform(-1, 1, 3) * 80 * amount  # slight tint
    return tuple(int(v) for v in np.clip(np.round(c), 0, 255))


def _sample_look(cfg: SynthConfig, rng, cls: str, side_range) -> tuple:
    """Size, colours and texture of one object: (w, h, colour, colour2, pattern, angle)."""
    style = CLASS_STYLES[cls]
    side = rng.uniform(*side_range)
    ratio = math.exp(rng.uniform(-math.log(cfg.aspect), math.log(cfg.aspect)))
    # area stays side² of the frame; clamp so it always fits
    w = int(round(min(side * math.sqrt(ratio), 0.95) * cfg.width))
    h = int(round(min(side / math.sqrt(ratio), 0.95) * cfg.height))
    w, h = max(w, 6), max(h, 6)
    shade = rng.uniform(-cfg.shade_jitter, cfg.shade_jitter)
    colour = _jitter_colour(np.asarray(style.colour) * (1 + shade), rng, cfg.shade_jitter / 3)
    colour2 = _jitter_colour(np.asarray(style.colour2) * (1 + shade), rng, cfg.shade_jitter / 3)
    pattern = min(w, h) * rng.uniform(0.15, 0.22)
    angle = rng.uniform(0, np.pi) if style.texture == "stripes" else 0.0
    return w, h, colour, colour2, pattern, angle


def _shrink_look(look: tuple, f: float) -> tuple:
    w, h, colour, colour2, pattern, angle = look
    return max(6, round(w * f)), max(6, round(h * f)), colour, colour2, pattern * f, angle


def _allowed_area(cfg: SynthConfig, w: int, h: int, overhang: float) -> tuple[float, float, float, float]:
    """Top-left range keeping at most ``overhang`` of the sprite's width/height outside."""
    ox, oy = math.floor(overhang * w), math.floor(overhang * h)
    return (float(-ox), float(cfg.width - w + ox), float(-oy), float(cfg.height - h + oy))


def _sample_motion(cfg: SynthConfig, rng, area, moves: bool, pulsing: bool = False) -> Motion:
    """A trajectory in ``area``; ``pulsing``: a bounce whose speed follows a slow envelope."""
    xlo, xhi, ylo, yhi = area
    if not moves:
        return Motion("static", float(round(rng.uniform(xlo, xhi))), float(round(rng.uniform(ylo, yhi))), area)
    speed = rng.uniform(*cfg.speed) * cfg.width / 256.0
    if pulsing:  # bounce only: its speed is then exactly the base speed times the envelope
        return _bounce(rng, area, speed, rng.uniform(0, 2 * np.pi), lambda: dict(
            env_rate=2 * np.pi * rng.uniform(*cfg.twin_envelope_hz) / cfg.fps,
            env_phase=rng.uniform(0, 2 * np.pi),
            env_floor=cfg.twin_envelope_floor,
        ))
    kind = cfg.motion if cfg.motion != "mixed" else ("bounce" if rng.random() < 0.5 else "sine")
    theta = rng.uniform(0, 2 * np.pi)
    if kind == "sine":
        # amplitude vector along theta within the half ranges; omega gives the peak speed
        half_x, half_y = (xhi - xlo) / 2, (yhi - ylo) / 2
        amp = rng.uniform(0.5, 1.0) * min(
            half_x / max(abs(math.cos(theta)), 1e-6), half_y / max(abs(math.sin(theta)), 1e-6)
        )
        ax, ay = abs(amp * math.cos(theta)), abs(amp * math.sin(theta))
        if math.hypot(ax, ay) >= 4:  # else too cramped to oscillate: bounce instead
            return Motion(
                "sine",
                x0=rng.uniform(xlo + ax, xhi - ax),
                y0=rng.uniform(ylo + ay, yhi - ay),
                area=area,
                ax=ax,
                ay=ay,
                omega=speed / math.hypot(ax, ay),
                phase=rng.uniform(0, 2 * np.pi),
                psi=float(rng.choice([0.0, np.pi / 2, rng.uniform(0, np.pi)])),
            )
    return _bounce(rng, area, speed, theta)


def _bounce(rng, area, speed: float, theta: float, envelope=None) -> Motion:
    """A bounce from a random start in ``area`` (drawn before ``envelope()``'s fields, so a
    seed gives the clips it always gave)."""
    xlo, xhi, ylo, yhi = area
    x0, y0 = rng.uniform(xlo, xhi), rng.uniform(ylo, yhi)
    return Motion("bounce", x0=x0, y0=y0, area=area, vx=speed * math.cos(theta), vy=speed * math.sin(theta),
                  **(envelope() if envelope else {}))


def _max_overlap(objs: list[ObjectSpec], frames: np.ndarray) -> float:
    """Largest intersection / smaller-box area over object pairs and the given frames."""
    boxes = []
    for o in objs:
        x, y = o.motion.position(frames)
        boxes.append((x, y, x + o.w, y + o.h, o.w * o.h))
    worst = 0.0
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            ax0, ay0, ax1, ay1, aa = boxes[a]
            bx0, by0, bx1, by1, ba = boxes[b]
            iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
            ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
            worst = max(worst, float((iw * ih).max()) / min(aa, ba))
    return worst


def _sound_gain(cfg: SynthConfig, snd: SoundSpec, rng) -> float:
    """Gain that brings the sound's RMS to the configured loudness (± jitter), peaks below 0.9."""
    probe = dataclasses.replace(snd, gain=1.0)
    raw = sound_signal(probe, np.arange(2 * cfg.sample_rate), cfg.sample_rate)
    rms = float(np.sqrt(np.mean(raw**2))) + 1e-9
    db = rng.uniform(-cfg.loudness_jitter_db, cfg.loudness_jitter_db)
    # sparse sounds (drum, clicks) would clip at the RMS target: cap the peak instead
    return min(cfg.loudness * 10 ** (db / 20) / rms, 0.9 / (float(np.abs(raw).max()) + 1e-9))


def sample_spec(
    cfg: SynthConfig,
    rng: np.random.Generator,
    *,
    clip_id: str = "clip",
    split: str = "train",
    regime: str | None = None,
    negative: str | None | Literal["auto"] = "auto",
    source_class: str | None = None,
) -> ClipSpec:
    """Draw one clip's spec.

    cfg: the dataset config.
    rng: the clip's generator (see :func:`clip_rng`); the spec is a pure function of it.
    clip_id / split: recorded in the spec.
    regime: one of REGIMES; None draws one with ``cfg.regime_weights``.
    negative: "auto" draws with ``cfg.negative_fraction``; None forces a positive clip;
    a kind from NEGATIVE_KINDS forces that negative.
    source_class: force the sounding (or, for a negative, the source-role) object's class.
    """
    # the steps draw from rng in this order; changing it changes every dataset
    regime = _pick_regime(cfg, rng, regime)
    negative = _pick_negative(cfg, rng, negative)
    classes = _pick_classes(cfg, rng, negative, source_class)
    if regime in TWINS_REGIMES:
        objs, source_index = _place_twins(cfg, rng, regime, classes[0])
    else:
        objs = _place_objects(cfg, rng, regime, classes)
        source_index = len(objs) - 1
    onset = cfg.sound_onset + (rng.uniform(0, cfg.sound_onset_jitter) if cfg.sound_onset_jitter > 0 else 0.0)
    mid_time = (min(onset, cfg.duration) + cfg.duration) / 2
    sound, sound_class = _sample_sound(cfg, rng, negative, classes[0], objs)
    if sound is not None and negative is None:
        sound = _follow_speed(cfg, sound, objs[source_index].motion)
    return ClipSpec(
        clip_id=clip_id,
        split=split,
        width=cfg.width,
        height=cfg.height,
        fps=cfg.fps,
        duration=cfg.duration,
        sample_rate=cfg.sample_rate,
        regime=regime,
        negative=negative,
        sound_onset=float(onset),
        annotate_frame=min(cfg.n_frames - 1, int(round(mid_time * cfg.fps))),
        objects=tuple(objs),
        source_index=source_index,
        sound=sound,
        sound_class=sound_class,
        seed=int(rng.integers(0, 2**31 - 1)),
        video_noise=cfg.video_noise,
        audio_noise=cfg.audio_noise,
        background_contrast=cfg.background_contrast,
        background_saturation=cfg.background_saturation,
    )


def _follow_speed(cfg: SynthConfig, sound: SoundSpec, motion: Motion) -> SoundSpec:
    """The sound with the loudness envelope of a pulsing motion (same envelope, same clock)."""
    if motion.env_rate <= 0:
        return sound
    return dataclasses.replace(
        sound,
        env_freq=motion.env_rate * cfg.fps / (2 * np.pi),
        env_phase=motion.env_phase,
        env_floor=motion.env_floor,
    )


def _pick_regime(cfg: SynthConfig, rng, regime: str | None) -> str:
    """The given regime (checked), or one drawn with ``cfg.regime_weights``."""
    weights = cfg.regime_weights.as_dict()
    if regime is None:
        names = [r for r in REGIMES if weights[r] > 0]
        p = np.array([weights[r] for r in names])
        regime = str(rng.choice(names, p=p / p.sum()))
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r} (known: {', '.join(REGIMES)})")
    return regime


def _pick_negative(cfg: SynthConfig, rng, negative: str | None) -> str | None:
    """The given negative kind or None (checked); "auto" draws with ``cfg.negative_fraction``."""
    if negative == "auto":
        negative = None
        if cfg.negative_fraction > 0 and rng.random() < cfg.negative_fraction:
            negative = str(rng.choice(list(cfg.negative_kinds)))
    if negative is not None and negative not in NEGATIVE_KINDS:
        raise ValueError(f"unknown negative kind {negative!r} (known: {', '.join(NEGATIVE_KINDS)})")
    return negative


def _pick_classes(cfg: SynthConfig, rng, negative: str | None, source_class: str | None) -> list[str]:
    """The classes on screen, all different: the source-role object's first."""
    # an off-screen sound needs one more class than is shown
    max_n = cfg.max_objects if negative != "offscreen" else min(cfg.max_objects, len(cfg.classes) - 1)
    if max_n < 1:
        raise ConfigError("an 'offscreen' negative needs at least two classes")
    n_obj = int(rng.integers(min(cfg.min_objects, max_n), max_n + 1))
    pool = list(cfg.classes)
    if source_class is not None:
        if source_class not in CLASS_STYLES:
            raise ValueError(f"unknown class {source_class!r}")
        pool = [c for c in pool if c != source_class]
        return [source_class] + [str(c) for c in rng.permutation(pool)[: n_obj - 1]]
    return [str(c) for c in rng.permutation(pool)[:n_obj]]


def _place_objects(cfg: SynthConfig, rng, regime: str, classes: list[str]) -> list[ObjectSpec]:
    """Looks (fixed for the clip), who moves, and trajectories; the source object is last (on top)."""
    src_cls, dis_cls = classes[0], classes[1:]
    src_look = _sample_look(cfg, rng, src_cls, cfg.source_side)
    dis_looks = [_sample_look(cfg, rng, c, cfg.distractor_side) for c in dis_cls]
    src_moves = regime in ("source_moves", "all_move")
    dis_moves = [regime == "all_move" or (regime == "distractor_moves" and k == 0) for k in range(len(dis_cls))]
    source = (src_cls, src_look, _source_area(cfg, src_cls, src_look), src_moves)
    return _place_apart(cfg, rng, source, dis_cls, dis_looks, dis_moves)


def _place_twins(cfg: SynthConfig, rng, regime: str, cls: str) -> tuple[list[ObjectSpec], int]:
    """2+ identical objects of class ``cls``, one of them (drawn at random) sounding.

    One look for all (size drawn where the source and distractor size ranges meet),
    the same allowed area, the sounding one anywhere in the drawing order. Who moves
    follows ``regime``. Rejection sampling as in :func:`_place_apart`, but shrinking
    every twin alike (they stay identical) and dropping silent twins only.
    Returns (objects, index of the sounding one).
    """
    n = int(rng.integers(max(2, cfg.min_objects), max(2, cfg.max_objects) + 1))
    lo, hi = max(cfg.source_side[0], cfg.distractor_side[0]), min(cfg.source_side[1], cfg.distractor_side[1])
    look = _sample_look(cfg, rng, cls, (lo, hi) if lo <= hi else cfg.distractor_side)
    src = int(rng.integers(n))
    area = _source_area(cfg, cls, look)
    check = np.arange(0, cfg.n_frames, 2)
    best, best_score = None, math.inf
    for attempt in range(80):
        if attempt in (16, 32):
            look = _shrink_look(look, 0.85)
            area = _source_area(cfg, cls, look)
        if attempt in (48, 64) and n > 2:
            n -= 1
            src = min(src, n - 1)  # drop the last silent twin (or the last, if src was last)
        objs = [ObjectSpec(cls, *look, _sample_motion(cfg, rng, area, *_twin_moves(regime, k, src))) for k in range(n)]
        score = _max_overlap(objs, check)
        if score < best_score:
            best, best_score = (objs, src), score
        if score <= cfg.max_overlap:
            break
    return best


def _twin_moves(regime: str, k: int, src: int) -> tuple[bool, bool]:
    """(moves, pulsing) of twin k when twin ``src`` sounds."""
    if regime == "twins_all_move":
        return True, True
    if regime == "twins_source_moves":
        return k == src, False
    first_silent = 1 if src == 0 else 0
    return k == first_silent, False  # twins_distractor_moves


def _source_area(cfg: SynthConfig, cls: str, look: tuple) -> tuple[float, float, float, float]:
    """The sounding object's allowed area, keeping ``cfg.min_visible`` of it in frame.

    The overhang per axis is as large as min_visible allows for a rectangle, verified on
    the true mask at the area's corners (the visible part anywhere else contains the one
    at some corner), else halved, else 0.
    """
    w, h = look[0], look[1]
    mask = shape_mask(CLASS_STYLES[cls].shape, w, h)
    full = 1 - math.sqrt(cfg.min_visible)
    for overhang in (full, full / 2, 0.0):
        area = _allowed_area(cfg, w, h, overhang)
        corners = [(area[i], area[j]) for i in (0, 1) for j in (2, 3)]
        worst = min(visible_fraction(mask, int(x), int(y), cfg.width, cfg.height) for x, y in corners)
        if worst >= cfg.min_visible:
            break
    return area


def _place_apart(cfg: SynthConfig, rng, source: tuple, dis_cls, dis_looks, dis_moves) -> list[ObjectSpec]:
    """Positions and velocities by rejection sampling on the overlap over the whole clip.

    source: (class, look, area, moves) of the sounding object. When the frame is too
    crowded, shrink the distractors (twice, by 15 %), then drop one; the least
    overlapping draw wins if none is below ``cfg.max_overlap``.
    """
    src_cls, src_look, src_area, src_moves = source
    dis_areas = [_allowed_area(cfg, lk[0], lk[1], 0.25) for lk in dis_looks]
    check = np.arange(0, cfg.n_frames, 2)
    best, best_score = None, math.inf
    for attempt in range(80):
        if attempt in (16, 32):
            dis_looks = [_shrink_look(lk, 0.85) for lk in dis_looks]
            dis_areas = [_allowed_area(cfg, lk[0], lk[1], 0.25) for lk in dis_looks]
        if attempt in (48, 64) and len(dis_looks) + 1 > cfg.min_objects:
            dis_looks, dis_cls, dis_areas, dis_moves = dis_looks[:-1], dis_cls[:-1], dis_areas[:-1], dis_moves[:-1]
        objs = [
            ObjectSpec(c, *lk, _sample_motion(cfg, rng, area, mv))
            for c, lk, area, mv in zip(dis_cls, dis_looks, dis_areas, dis_moves)
        ]
        objs.append(ObjectSpec(src_cls, *src_look, _sample_motion(cfg, rng, src_area, src_moves)))
        score = _max_overlap(objs, check) if len(objs) > 1 else 0.0
        if score < best_score:
            best, best_score = objs, score
        if score <= cfg.max_overlap:
            break
    return best


def _sample_sound(
    cfg: SynthConfig, rng, negative: str | None, src_cls: str, objs: list[ObjectSpec]
) -> tuple[SoundSpec | None, str]:
    """The clip's sound and the class heard: the source's, noise, an off-screen class's, or none."""
    if negative == "silence":
        return None, "silence"
    if negative == "noise":
        kind, sound_class = "noise", "noise"
    elif negative == "offscreen":
        off = [c for c in cfg.classes if c not in {o.cls for o in objs}]
        sound_class = str(rng.choice(off))
        kind = CLASS_STYLES[sound_class].sound
    else:
        kind, sound_class = CLASS_STYLES[src_cls].sound, src_cls
    sound = SoundSpec(
        kind=kind,
        pitch=float(1 + rng.uniform(-cfg.pitch_jitter, cfg.pitch_jitter)),
        rate=float(1 + rng.uniform(-cfg.pitch_jitter, cfg.pitch_jitter)),
        gain=1.0,
        offset=float(rng.uniform(0, 2.0)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )
    return dataclasses.replace(sound, gain=_sound_gain(cfg, sound, rng)), sound_class
