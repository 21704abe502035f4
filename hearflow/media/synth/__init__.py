"""Synthetic audio-visual clips: several objects on screen, exactly one makes the sound.

No public dataset can be downloaded everywhere, so ``hearflow synth`` writes one that a
small model can learn audio-visual correspondence from in minutes: 8 object classes,
each with its own look (shape, colour, texture) and its own sound (timbre and rhythm),
jittered per clip (pitch, size, shade) so no class is one fixed template. Each clip
shows 2–4 objects of different classes over a textured, low-saturation background;
one of them sounds. A motion regime per clip (source moves / all move / a distractor
moves / static) lets the value of optical flow be measured. The ``twins_*`` regimes (off
by default; ``configs/synth_twins.yaml`` mixes them in) show 2–4 *identical* objects of
one class, one of them sounding, so that appearance cannot decide and only motion can:
the sounding twin moves and the others are static, or a silent twin moves, or all move
with swelling and ebbing speeds, the sounding one's following its sound's loudness.

Three layers:

* :func:`sample_spec` draws a :class:`ClipSpec` (everything random about a clip) from a
  :class:`SynthConfig` and a numpy Generator.
* :class:`SynthScene` renders a spec: ``frame(i)`` and ``audio(start, n)`` are pure
  functions of the spec and the time, defined for any time ≥ 0, so the live engine can
  use a scene as an endless "synthetic camera + microphone" (objects keep bouncing or
  oscillating, sounds keep repeating).
* :func:`render_clip` renders a spec's clip in memory and :func:`generate` writes a
  whole dataset (mp4 + annotations, see :func:`generate`) with a process pool.

Modules: :mod:`~hearflow.media.synth.config` (classes, :class:`SynthConfig`),
:mod:`~hearflow.media.synth.spec` (the spec dataclasses), :mod:`~hearflow.media.synth.sampling`,
:mod:`~hearflow.media.synth.sprites` and :mod:`~hearflow.media.synth.sounds` (looks and
sounds of the classes), :mod:`~hearflow.media.synth.render` (:class:`SynthScene`) and
:mod:`~hearflow.media.synth.dataset` (annotation records, :func:`generate`).

Boxes are ``[x1, y1, x2, y2]`` in pixels with x2/y2 exclusive, or normalised 0–1 (the
pixel box divided by the frame size) in ``annotations.json``.
"""

from hearflow.media.synth.config import (
    CLASS_NAMES,
    CLASS_STYLES,
    NEGATIVE_KINDS,
    REGIMES,
    SPLITS,
    ClassStyle,
    RegimeWeights,
    SynthConfig,
)
from hearflow.media.synth.dataset import annotation_record, flickr_boxes, format_summary, generate
from hearflow.media.synth.render import SynthScene, render_clip, scene_from_config
from hearflow.media.synth.sampling import clip_rng, regime_cycle, sample_spec
from hearflow.media.synth.sounds import hash_noise
from hearflow.media.synth.spec import ClipSpec, Motion, ObjectSpec, SoundSpec
from hearflow.media.synth.sprites import make_sprite, shape_mask, visible_box, visible_fraction

__all__ = [
    "SynthConfig",
    "RegimeWeights",
    "ClassStyle",
    "CLASS_STYLES",
    "CLASS_NAMES",
    "REGIMES",
    "NEGATIVE_KINDS",
    "SPLITS",
    "Motion",
    "ObjectSpec",
    "SoundSpec",
    "ClipSpec",
    "SynthScene",
    "sample_spec",
    "clip_rng",
    "regime_cycle",
    "render_clip",
    "annotation_record",
    "flickr_boxes",
    "scene_from_config",
    "shape_mask",
    "make_sprite",
    "visible_fraction",
    "visible_box",
    "hash_noise",
    "generate",
    "format_summary",
]
