"""The short_side_crop augmentation (the HTF authors' transform) against a frame/flow whose values say where each pixel came from."""

import numpy as np
import pytest

from hearflow.media.augment import PAPER_CROP, PAPER_SHORT_SIDE, augment, short_side_crop_pair
from hearflow.media.preprocess import PreprocessConfig, htf_compat

S = 224
CFG = PreprocessConfig(image_resize="bilinear")


def ramp_pair():
    """R/G channels = x/y pixel index, flow = 0.002 × that (so flow / 0.002 says where a pixel was)."""
    y, x = np.mgrid[0:S, 0:S]
    frame = np.stack([x, y, np.zeros_like(x)], axis=-1).astype(np.uint8)
    return frame, np.stack([x, y]).astype(np.float32) * 0.002


@pytest.mark.parametrize("aspect", [1.0, 16 / 9, 0.75])
def test_short_side_crop_restores_the_aspect_and_scales_the_flow(aspect):
    frame, flow = ramp_pair()
    short = S * PAPER_SHORT_SIDE / PAPER_CROP  # 246 at S = 224
    fx = (short * max(aspect, 1) if aspect >= 1 else short) / S  # resize factor along x
    fy = (short if aspect >= 1 else short / aspect) / S
    origins = set()
    for seed in range(4):
        f2, fl2 = short_side_crop_pair(frame, flow, np.random.default_rng(seed), CFG, aspect=aspect, flip_p=0.0)
        assert f2.shape == (S, S, 3) and fl2.shape == (2, S, S) and fl2.dtype == np.float32
        # the frame shows source pixels at 1/f spacing, and the flow values are scaled by f per axis
        m = slice(4, -4)
        assert np.abs(np.diff(f2[m, m, 0].astype(float), axis=1).mean() - 1 / fx) < 0.02
        assert np.abs(np.diff(f2[m, m, 1].astype(float), axis=0).mean() - 1 / fy) < 0.02
        np.testing.assert_allclose(fl2[0][m, m] / fx / 0.002, f2[m, m, 0], atol=1.0)
        np.testing.assert_allclose(fl2[1][m, m] / fy / 0.002, f2[m, m, 1], atol=1.0)
        origins.add((int(f2[0, 0, 0]), int(f2[0, 0, 1])))
    assert len(origins) > 1  # a random crop, not a fixed one


def test_short_side_crop_flips_and_keeps_uint8_flow_values():
    frame, flow = ramp_pair()
    a, fa = short_side_crop_pair(frame, flow, np.random.default_rng(1), CFG, flip_p=0.0)
    b, fb = short_side_crop_pair(frame, flow, np.random.default_rng(1), CFG, flip_p=1.0)
    np.testing.assert_array_equal(b, a[:, ::-1])
    np.testing.assert_allclose(fb[0], -fa[0][:, ::-1])
    # htf_uint8: values are not rescaled (they cannot be), only moved
    big = np.full((2, S, S), 0.7, np.float32)
    _, out = short_side_crop_pair(frame, big, np.random.default_rng(0), htf_compat(), flip_p=1.0)
    np.testing.assert_allclose(out, 0.7, atol=1e-6)


def test_augment_dispatches_and_refuses_unknown_modes():
    frame, flow = ramp_pair()
    a = augment(frame, flow, np.random.default_rng(3), CFG, "short_side_crop")
    b = short_side_crop_pair(frame, flow, np.random.default_rng(3), CFG)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="unknown crop mode"):
        augment(frame, flow, np.random.default_rng(3), CFG, "squash")
