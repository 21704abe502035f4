"""The twins regimes: identical objects, one sounding; only motion (and its timing) can tell which."""

import json

import av
import numpy as np
import pytest

from hearflow import config
from hearflow.media import synth
from hearflow.media.annotations import read_vggss
from hearflow.media.synth import SynthConfig, SynthScene, sample_spec
from hearflow.media.synth.config import TWINS_REGIMES

SHORT = SynthConfig(duration=2.0)


def _look(o):
    return (o.cls, o.w, o.h, o.colour, o.colour2, o.pattern, o.angle)


def _speeds(obj, n):
    x, y = obj.motion.position(np.arange(n))
    return np.hypot(np.diff(x), np.diff(y))


@pytest.mark.parametrize("regime", TWINS_REGIMES)
def test_twins_are_identical_and_one_sounds(regime):
    sources = set()
    for seed in range(6):
        spec = sample_spec(SHORT, np.random.default_rng(seed), regime=regime, negative=None)
        assert spec.regime == regime and len(spec.objects) >= 2
        assert len({_look(o) for o in spec.objects}) == 1  # same class, size, colours, texture
        assert spec.sound_class == spec.objects[0].cls
        sources.add(spec.source_index)
        moving = [o.motion.moves for o in spec.objects]
        src = spec.source_index
        if regime == "twins_source_moves":
            assert moving[src] and sum(moving) == 1
        elif regime == "twins_distractor_moves":
            assert not moving[src] and sum(moving) == 1
        else:
            assert all(moving)
        rec = synth.annotation_record(spec)
        assert [o["sounding"] for o in rec["objects"]] == [k == src for k in range(len(spec.objects))]
        box = SynthScene(spec).boxes(spec.annotate_frame)[src]
        assert rec["bbox"] == [[round(v / 256, 6) for v in box]] and rec["regime"] == regime
    assert len(sources) > 1  # the sounding twin is not always at the same drawing position


def _frame_rms(audio, sr, fps, n):
    hop = int(sr / fps)
    return np.array([np.sqrt(np.mean(audio[i * hop : (i + 1) * hop] ** 2)) for i in range(n)])


def test_twins_all_move_sounding_speed_follows_the_loudness():
    cfg = SynthConfig(duration=4.0, audio_noise=0.0)
    for seed in range(3):
        spec = sample_spec(cfg, np.random.default_rng(seed), regime="twins_all_move", negative=None, source_class="hum")
        n = spec.n_frames
        loud = _frame_rms(SynthScene(spec).audio(0, spec.n_samples), cfg.sample_rate, cfg.fps, n - 1)
        corr = [np.corrcoef(_speeds(o, n), loud)[0, 1] for o in spec.objects]
        src = spec.source_index
        assert corr[src] > 0.9, (seed, corr)
        assert all(c < corr[src] - 0.2 for k, c in enumerate(corr) if k != src), (seed, corr)
        # the speed envelope spans the configured floor..1 of the top speed
        s = _speeds(spec.source, n)
        assert s.min() < 0.35 * s.max()


def test_other_regimes_are_unchanged_by_the_twins():
    """The old regimes draw exactly what they drew before the twins existed (no envelope)."""
    spec = sample_spec(SHORT, np.random.default_rng(3), regime="all_move", negative=None)
    assert spec.source_index == len(spec.objects) - 1 and spec.sound.env_freq == 0
    assert len({o.cls for o in spec.objects}) == len(spec.objects)
    assert all(o.motion.env_rate == 0 for o in spec.objects)


def _decode(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_twins_dataset_is_mixed_by_config_and_deterministic(tmp_path):
    cfg = config.load(SynthConfig, "configs/synth_twins.yaml", ["width=64", "height=64", "duration=0.4"])
    for name in ("a", "b"):
        synth.generate(tmp_path / name, cfg, train=7, val=0, test=0, seed=3, workers=1, progress=False)
    a, b = (tmp_path / n / "annotations.json" for n in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()
    records = read_vggss(a)
    assert sorted(r["regime"] for r in records) == sorted(synth.REGIMES)
    for r in records:
        assert np.array_equal(_decode(tmp_path / "a" / "videos" / f"{r['file']}.mp4"),
                              _decode(tmp_path / "b" / "videos" / f"{r['file']}.mp4"))
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert set(summary["regimes"]["train"]) == set(synth.REGIMES)


def test_envelope_config_is_checked():
    with pytest.raises(ValueError, match="twin_envelope"):
        SynthConfig(twin_envelope_floor=1.0)
