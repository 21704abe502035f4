"""Frames, optical flow and augmentation: real OpenCV and PIL, synthetic textures."""

import cv2
import numpy as np
import pytest
from PIL import Image

from hearflow.media.augment import augment_pair
from hearflow.media.flow import FlowEstimator, encode_flow, zero_flow
from hearflow.media.frames import (
    denormalize_frame,
    frame_input,
    normalize_frame,
    resize_frame,
    to_gray,
)
from hearflow.media.preprocess import PreprocessConfig, htf_compat

S = 224
CFG = PreprocessConfig()


def texture(h, w, seed=0, sigma=5.0):
    """Smooth random grayscale texture (blurred noise stretched to 0..255)."""
    noise = np.random.default_rng(seed).standard_normal((h, w)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigma)
    noise = (noise - noise.min()) / (noise.max() - noise.min()) * 255
    return noise.astype(np.uint8)


def shifted(img, dx, dy):
    """img moved right by dx and down by dy pixels (sub-pixel, cubic interpolation)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    h, w = img.shape[:2]
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def interior(a, margin=20):
    """The (..., H, W) array without a border of `margin` pixels (flow is poor at edges)."""
    return a[..., margin:-margin, margin:-margin]


def rgb(gray):
    return np.repeat(gray[..., None], 3, axis=2)


def median(flow):
    """Per-channel median of a 2×H×W flow over its interior."""
    return np.median(interior(flow), axis=(1, 2))


# --- frames ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic", "pil_bicubic"])
def test_resize_modes(mode):
    cfg = PreprocessConfig(image_resize=mode)
    img = np.random.default_rng(1).integers(0, 256, (72, 128, 3), dtype=np.uint8)
    out = resize_frame(img, cfg)
    assert out.shape == (S, S, 3) and out.dtype == np.uint8
    assert resize_frame(img[..., 0], cfg).shape == (S, S)
    if mode == "pil_bicubic":  # what torchvision's Resize((224, 224), BICUBIC) does on PIL
        expected = np.asarray(Image.fromarray(img).resize((S, S), Image.Resampling.BICUBIC))
    else:
        flag = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
        expected = cv2.resize(img, (S, S), interpolation=flag[mode])
    np.testing.assert_array_equal(out, expected)
    out[0, 0] = 0  # writable (overlays draw on it)
    # A constant image stays constant whatever the filter.
    flat = np.full((720, 1280, 3), 77, np.uint8)
    assert (resize_frame(flat, cfg) == 77).all()
    # Already at the model size: no work, no copy.
    same = np.zeros((S, S, 3), np.uint8)
    assert resize_frame(same, cfg) is same


def test_normalize_hand_values():
    px = np.zeros((S, S, 3), np.uint8)
    px[..., 0], px[..., 1], px[..., 2] = 0, 128, 255
    x = normalize_frame(px, CFG)
    assert x.shape == (3, S, S) and x.dtype == np.float32
    # (0/255 - 0.485)/0.229, (128/255 - 0.456)/0.224, (255/255 - 0.406)/0.225
    np.testing.assert_allclose(x[:, 5, 7], [-2.1179039, 0.2051821, 2.64], atol=1e-6)
    batch = normalize_frame(np.stack([px, px[::-1]]), CFG)
    assert batch.shape == (2, 3, S, S)
    np.testing.assert_array_equal(batch[0], x)


def test_denormalize_round_trip_and_frame_input():
    imgs = np.random.default_rng(2).integers(0, 256, (3, S, S, 3), dtype=np.uint8)
    back = denormalize_frame(normalize_frame(imgs, CFG), CFG)
    assert back.dtype == np.uint8 and back.flags.c_contiguous
    np.testing.assert_array_equal(back, imgs)
    x = frame_input(np.zeros((480, 640, 3), np.uint8), CFG)
    assert x.shape == (3, S, S) and x.dtype == np.float32
    g = to_gray(imgs[0])
    assert g.shape == (S, S) and g.dtype == np.uint8 and to_gray(g) is g


# --- flow -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_recovers_subpixel_translation(method):
    a = texture(S, S)
    b = shifted(a, 1.3, 0.6)
    raw = FlowEstimator(PreprocessConfig(flow=method)).raw(a, b)
    assert raw.shape == (S, S, 2) and raw.dtype == np.float32
    err = np.hypot(raw[..., 0] - 1.3, raw[..., 1] - 0.6)
    assert np.median(interior(err)) < 0.2


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_sign_convention(method):
    est = FlowEstimator(PreprocessConfig(flow=method))
    a = est.gray(rgb(texture(S, S)))
    down_right = est(a, shifted(a, 2.0, 1.0), fps=25.0)
    up_left = est(a, shifted(a, -2.0, -1.0), fps=25.0)
    assert down_right.shape == (2, S, S) and down_right.dtype == np.float32
    # 25 fps = the reference rate: values are pixels / flow_clip (20).
    np.testing.assert_allclose(median(down_right), [0.1, 0.05], atol=0.01)
    np.testing.assert_allclose(median(up_left), [-0.1, -0.05], atol=0.01)


def test_fps_scaling_gives_motion_per_reference_frame():
    # 50 px/s: 5/3 px per frame at 30 fps, 1 px per frame at 50 fps; 2 px per 1/25 s.
    cfg = PreprocessConfig(flow="farneback")
    est = FlowEstimator(cfg)
    a = texture(S, S, seed=3)
    at30 = est(a, shifted(a, 5 / 3, 0.0), fps=30.0)
    at50 = est(a, shifted(a, 1.0, 0.0), fps=50.0)
    m30, m50 = np.median(interior(at30[0])), np.median(interior(at50[0]))
    assert m30 == pytest.approx(0.1, abs=0.01) and m50 == pytest.approx(0.1, abs=0.01)
    assert m30 == pytest.approx(m50, abs=0.01)
    # Exact on a synthetic field.
    field = np.full((S, S, 2), 5 / 3, np.float32)
    np.testing.assert_allclose(
        encode_flow(field, 30.0, cfg), encode_flow(field * 0.6, 50.0, cfg), atol=1e-6
    )


def test_clipping():
    field = np.zeros((S, S, 2), np.float32)
    field[..., 0], field[..., 1] = 30.0, -50.0
    out = encode_flow(field, 25.0, CFG)
    assert (out[0] == 1.0).all() and (out[1] == -1.0).all()
    field[..., 0], field[..., 1] = 10.0, 5.0  # at 50 fps: 20 px and 10 px per 1/25 s
    out = encode_flow(field, 50.0, CFG)
    np.testing.assert_allclose(out[0], 1.0)
    np.testing.assert_allclose(out[1], 0.5)


def test_native_and_model_resolution_same_units():
    # Synthetic: (4, 3) px at 448×336 is (2, 2) model pixels at 224×224.
    field = np.empty((336, 448, 2), np.float32)
    field[..., 0], field[..., 1] = 4.0, 3.0
    native = PreprocessConfig(flow="farneback", flow_resolution="native")
    np.testing.assert_allclose(encode_flow(field, 25.0, native), 0.1, atol=1e-6)
    # Real estimates from the same frames at both resolutions agree.
    a = rgb(texture(336, 448, seed=4, sigma=4.0))
    b = shifted(a, 4.0, 3.0)
    outs = []
    for resolution in ("native", "model"):
        est = FlowEstimator(PreprocessConfig(flow="farneback", flow_resolution=resolution))
        ga, gb = est.gray(a), est.gray(b)
        assert ga.shape == ((336, 448) if resolution == "native" else (S, S))
        outs.append(median(est(ga, gb, fps=25.0)))
    np.testing.assert_allclose(outs[0], [0.1, 0.1], atol=0.01)
    np.testing.assert_allclose(outs[1], [0.1, 0.1], atol=0.01)


def test_htf_uint8_conversion_matches_opencv_image_writer():
    cfg = htf_compat()
    field = np.random.default_rng(5).uniform(-5, 260, (S, S, 2)).astype(np.float32)
    field[0, :8, 0] = [0.5, 1.5, 2.5, -0.6, 254.5, 255.5, 3.49, 300.0]
    out = encode_flow(field, 25.0, cfg)  # already S×S: no resize
    for c in range(2):
        # PNG has no float32 encoder, so OpenCV converts with saturate_cast<uchar>.
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(field[..., c]))
        expected = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(np.rint(out[c] * 255).astype(np.uint8), expected)
    assert np.rint(out[0, 0, :8] * 255).tolist() == [0, 2, 2, 0, 254, 255, 3, 255]


def test_htf_uint8_known_motion():
    cfg = htf_compat()  # Farneback at native resolution, PIL bicubic resize
    est = FlowEstimator(cfg)
    a = est.gray(rgb(texture(240, 320, seed=6)))
    assert a.shape == (240, 320)
    right = est(a, shifted(a, 2.0, 0.0), fps=30.0)
    assert np.median(interior(right[0])) == pytest.approx(2 / 255, abs=1e-6)
    assert np.median(interior(right[1])) == 0.0
    left = est(a, shifted(a, -2.0, 0.0), fps=30.0)
    assert (left[0] == 0).all()  # negative motion saturates to 0 (HTF's JPEG flow)


def test_no_flow_gives_zeros():
    cfg = PreprocessConfig(flow="none")
    est = FlowEstimator(cfg)
    a = est.gray(np.zeros((100, 200, 3), np.uint8))
    out = est(a, a, fps=25.0)
    assert out.shape == (2, S, S) and not out.any()
    np.testing.assert_array_equal(zero_flow(cfg), out)


# --- augmentation ---------------------------------------------------------------------


def ramp_pair():
    """A frame whose R/G channels are the x/y pixel index and a flow equal to 0.002 × that."""
    y, x = np.mgrid[0:S, 0:S]
    frame = np.stack([x, y, np.zeros_like(x)], axis=-1).astype(np.uint8)
    flow = np.stack([x, y]).astype(np.float32) * 0.002
    return frame, flow


def test_flip_negates_x():
    frame, flow = ramp_pair()
    f2, fl2 = augment_pair(frame, flow, np.random.default_rng(0), CFG, (1, 1), flip_p=1.0)
    np.testing.assert_array_equal(f2, frame[:, ::-1])
    np.testing.assert_array_equal(fl2[0], -flow[0][:, ::-1])
    np.testing.assert_array_equal(fl2[1], flow[1][:, ::-1])
    assert f2.flags.c_contiguous and fl2.flags.c_contiguous
    # htf_uint8 cannot represent negated motion: flipped spatially only.
    _, fl3 = augment_pair(frame, flow, np.random.default_rng(0), htf_compat(), (1, 1), 1.0)
    np.testing.assert_array_equal(fl3, flow[:, :, ::-1])


def test_crop_scales_flow_by_zoom():
    frame, flow = ramp_pair()
    frame0, flow0 = frame.copy(), flow.copy()
    for seed in range(3):
        rng = np.random.default_rng(seed)
        f2, fl2 = augment_pair(frame, flow, rng, CFG, scale=(0.5, 0.5), flip_p=0.0)
        assert f2.shape == (S, S, 3) and fl2.shape == (2, S, S) and fl2.dtype == np.float32
        # Same crop in frame and flow, and flow values × the zoom factor 2.
        for c in range(2):
            np.testing.assert_allclose(
                interior(fl2[c] / 2 / 0.002, 4), interior(f2[..., c], 4), atol=1.0
            )
    np.testing.assert_array_equal(frame, frame0)  # inputs untouched
    np.testing.assert_array_equal(flow, flow0)
    # Zoomed values are clipped back to [-1, 1]; htf_uint8 values are kept.
    big = np.full((2, S, S), 0.7, np.float32)
    _, out = augment_pair(frame, big, np.random.default_rng(0), CFG, (0.5, 0.5), 0.0)
    np.testing.assert_allclose(out, 1.0)
    _, out = augment_pair(frame, big, np.random.default_rng(0), htf_compat(), (0.5, 0.5), 0.0)
    np.testing.assert_allclose(out, 0.7, atol=1e-6)
