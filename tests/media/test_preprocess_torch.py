"""The torch preprocessing against the numpy one (OpenCV, PIL, scipy-equivalent numpy).

Frames: within 1/255 (one uint8 step) after each filter — OpenCV and PIL compute with
fixed-point weights, the torch path with float32 ones. Gray: exact. Normalisation: float32
rounding. Spectrogram: ≤ 1e-4 in the log domain.
"""

import cv2
import numpy as np
import pytest
import torch

from hearflow.media import preprocess_torch as pt
from hearflow.media.audio import log_spectrogram
from hearflow.media.flow import encode_flow
from hearflow.media.frames import normalize_frame, resize_frame, to_gray
from hearflow.media.preprocess import PreprocessConfig, htf_compat

SIZES = [(480, 640), (72, 128), (333, 517), (150, 150), (1000, 37), (224, 225), (100, 300)]
"""Shrink both axes, enlarge both, odd sizes, square, tall and thin (one axis grows), one
pixel off the target, wide."""


def image(h, w, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels else (h, w)
    noise = rng.integers(0, 256, shape, dtype=np.uint8)
    # half noise (worst case for rounding), half smooth (what cameras give)
    return noise if seed % 2 == 0 else cv2.GaussianBlur(noise, (0, 0), 2.0)


def torch_resize(img, cfg):
    x = pt.to_chw(torch.from_numpy(img)) if img.ndim == 3 else torch.from_numpy(img).float()
    out = pt.resize(x, cfg)
    return (out.permute(1, 2, 0) if img.ndim == 3 else out).numpy()


@pytest.mark.parametrize("mode", pt.FILTERS)
@pytest.mark.parametrize("size", SIZES)
def test_resize_matches_the_library_filter(mode, size):
    cfg = PreprocessConfig(image_resize=mode)
    for seed in (0, 1):
        img = image(*size, seed=seed)
        ref = resize_frame(img, cfg).astype(np.float32)
        got = torch_resize(img, cfg)
        assert got.shape == ref.shape == (224, 224, 3)
        diff = np.abs(got - ref)
        assert diff.max() <= 1.0, f"{mode} {size}: off by {diff.max()}"
        assert (diff > 0).mean() < 0.2  # rounding ties only, not a shifted grid


def test_resize_of_a_grayscale_image_and_the_identity():
    cfg = PreprocessConfig(image_resize="pil_bicubic")
    img = image(90, 160, seed=3, channels=0)
    assert np.abs(torch_resize(img, cfg) - resize_frame(img, cfg)).max() <= 1.0
    same = torch.zeros(3, 224, 224)
    assert pt.resize(same, cfg) is same  # already the model size: untouched, like resize_frame


def test_tap_tables_are_cached_per_device():
    a = pt._device_table(640, 224, "area", True, torch.device("cpu"))
    b = pt._device_table(640, 224, "area", True, torch.device("cpu"))
    assert a is b and a.layout == torch.sparse_csr  # sparse on a CPU
    idx, w = pt.tap_table(640, 224, "area")
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-9)  # every filter keeps a flat image flat


def test_gray_is_opencvs_exactly():
    img = image(333, 517, seed=0)
    got = pt.to_gray(pt.to_chw(torch.from_numpy(img))).numpy()
    np.testing.assert_array_equal(got, to_gray(img))


def test_normalize_matches():
    cfg = PreprocessConfig()
    rgb = image(224, 224, seed=2)
    got = pt.normalize(pt.to_chw(torch.from_numpy(rgb)), cfg).numpy()
    np.testing.assert_allclose(got, normalize_frame(rgb, cfg), atol=1e-6)


def flow_field(shape, seed, amplitude):
    """A smooth random displacement field (coarse noise enlarged), pixels."""
    coarse = np.random.default_rng(seed).standard_normal((6, 8, 2)).astype(np.float32) * amplitude
    return cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("shape", [(224, 224), (120, 160), (480, 640)])
def test_signed_flow_encoding(shape):
    cfg = PreprocessConfig(flow_resolution="native" if shape != (224, 224) else "model")
    raw = flow_field(shape, 4, 15.0)
    ref = encode_flow(raw, 30.0, cfg)
    got = pt.encode_flow(torch.from_numpy(raw), 30.0, cfg)[0].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert (np.abs(ref) == 1).any()  # the clip is exercised


@pytest.mark.parametrize("shape", [(224, 224), (360, 480)])
def test_htf_uint8_flow_encoding(shape):
    cfg = htf_compat()
    raw = flow_field(shape, 5, 100.0)
    ref = encode_flow(raw, 30.0, cfg)
    got = pt.encode_flow(torch.from_numpy(raw), 30.0, cfg)[0].numpy()
    assert np.abs(got - ref).max() <= 1 / 255 + 1e-6
    assert (ref == 0).mean() > 0.2  # negative motion saturated to 0


@pytest.mark.parametrize("rate", [22050, 16000])
def test_log_spectrogram_matches(rate):
    cfg = PreprocessConfig()
    n = cfg.window_samples(rate)
    rng = np.random.default_rng(6)
    t = np.arange(n) / rate
    waves = np.stack([
        0.3 + 0.1 * rng.standard_normal(n),  # a DC offset: the detrending matters
        0.5 * np.sin(2 * np.pi * 440 * t),
        np.zeros(n),  # silence: log(eps)
    ]).astype(np.float32)
    ref = log_spectrogram(waves, rate, cfg)
    got = pt.log_spectrogram(torch.from_numpy(waves), rate, cfg).numpy()
    assert got.shape == ref.shape == (3, cfg.spectrogram_bins, cfg.spectrogram_frames(rate))
    assert np.abs(got - ref).max() <= 1e-4


def test_short_audio_is_an_error():
    with pytest.raises(ValueError, match="nperseg"):
        pt.log_spectrogram(torch.zeros(100), 22050, PreprocessConfig())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    cfg = htf_compat()
    img = image(480, 640, seed=1)
    x = pt.to_chw(torch.from_numpy(img))
    np.testing.assert_allclose(pt.resize(x.cuda(), cfg).cpu().numpy(), pt.resize(x, cfg).numpy(), atol=1.0)
    np.testing.assert_array_equal(pt.to_gray(x.cuda()).cpu().numpy(), pt.to_gray(x).numpy())
    wave = torch.from_numpy(np.random.default_rng(7).standard_normal(66150).astype(np.float32) * 0.1)
    np.testing.assert_allclose(pt.log_spectrogram(wave.cuda(), 22050, cfg).cpu().numpy(),
                               pt.log_spectrogram(wave, 22050, cfg).numpy(), atol=1e-4)


@pytest.mark.parametrize("mode,quantize", [("area", True), ("bilinear", False)])
def test_resample_to_a_rectangle(mode, quantize):
    """Any output size (the bounded flow working size, and a field resized back)."""
    img = image(120, 160, seed=1, channels=0).astype(np.float32)
    for oh, ow in [(45, 60), (240, 320)]:
        flag = cv2.INTER_AREA if mode == "area" else cv2.INTER_LINEAR
        src = img.astype(np.uint8) if quantize else img
        ref = cv2.resize(src, (ow, oh), interpolation=flag).astype(np.float32)
        got = pt.resample(torch.from_numpy(img), (oh, ow), mode, quantize=quantize).numpy()
        assert got.shape == (oh, ow)
        assert np.abs(got - ref).max() <= (1.0 if quantize else 1e-3)
