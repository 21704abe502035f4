"""DeviceFrames: inputs built in torch on a device (CPU here; CUDA when there is a GPU)."""

import numpy as np
import pytest
import torch

from hearflow.errors import GPUUnavailable, HearflowError
from hearflow.media.audio import log_spectrogram
from hearflow.media.frames import normalize_frame, resize_frame, to_gray
from hearflow.media.preprocess import IMAGENET_STD, PreprocessConfig
from hearflow.runtime.device_frames import DeviceFrames, check_device, flow_placement

ONE_STEP = 1 / 255 / min(IMAGENET_STD) + 1e-5
"""One uint8 step of the resized frame, after normalisation (what the filters may differ by)."""


def frame(h=120, w=160, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_frame_input_matches_the_host_path():
    cfg = PreprocessConfig(image_size=64, image_resize="bilinear")
    dev = DeviceFrames(cfg, "cpu")
    rgb = frame()
    up = dev.frame(rgb)
    assert up.frame.shape == (1, 3, 64, 64) and up.frame.dtype == torch.float32
    host = normalize_frame(resize_frame(rgb, cfg), cfg)
    assert np.abs(up.frame[0].numpy() - host).max() <= ONE_STEP


def test_upload_buffers_are_made_once_per_shape():
    dev = DeviceFrames(PreprocessConfig(image_size=64, flow="none"), "cpu")
    a = dev.upload(frame(seed=1))
    b = dev.upload(frame(seed=2))
    assert a.data_ptr() == b.data_ptr()  # the same buffer, refilled
    np.testing.assert_array_equal(b.numpy(), frame(seed=2))
    dev.upload(frame(60, 80))
    assert dev.uploads == 3 and len(dev._buffers) == 2


def test_spectrogram_matches_the_host_path():
    cfg = PreprocessConfig()
    dev = DeviceFrames(cfg, "cpu")
    wave = (np.random.default_rng(3).standard_normal(cfg.window_samples(16000)) * 0.2).astype(np.float32)
    spec = dev.spectrogram(wave, 16000)
    assert spec.shape == (1, 1, cfg.spectrogram_bins, cfg.spectrogram_frames(16000))
    assert np.abs(spec[0, 0].numpy() - log_spectrogram(wave, 16000, cfg)).max() <= 1e-4
    assert dev.blank_spectrogram(16000).shape == spec.shape


def test_dis_flow_stays_on_the_host_and_says_so_once():
    lines = []
    dev = DeviceFrames(PreprocessConfig(flow="dis"), "cpu", log=lines.append)
    assert not dev.flow_on_device
    assert len(lines) == 1 and lines[0].startswith("note: DIS")
    assert flow_placement(PreprocessConfig(flow="none")) == (False, None)
    up = dev.frame(frame())
    assert up.gray is None  # the host makes the gray for a host flow
    flow = dev.upload_flow(np.ones((2, 224, 224), np.float32))
    assert flow.shape == (1, 2, 224, 224) and float(flow.sum()) == 2 * 224 * 224


def test_farneback_runs_on_the_device():
    for flow in ("farneback", "torch_farneback"):
        assert flow_placement(PreprocessConfig(flow=flow)) == (True, None)


def test_device_farneback_flow_sees_the_motion():
    cfg = PreprocessConfig(image_size=64, flow="farneback")
    dev = DeviceFrames(cfg, "cpu")
    base = np.random.default_rng(4).integers(0, 256, (24, 32), dtype=np.uint8)
    big = np.kron(base, np.ones((5, 5), np.uint8))  # blocky texture, 120×160
    rgb_a = np.repeat(big[..., None], 3, axis=2)
    rgb_b = np.roll(rgb_a, 2, axis=1)  # 2 px to the right
    a, b = dev.frame(rgb_a), dev.frame(rgb_b)
    np.testing.assert_array_equal(a.gray.numpy(), to_gray(resize_frame(rgb_a, cfg)))
    flow = dev.flow(a.gray, b.gray, 25.0)[0].numpy()
    assert flow.shape == (2, 64, 64)
    assert np.median(flow[0, 8:-8, 8:-8]) > 0  # rightward


def test_check_device():
    check_device("auto")
    check_device("cpu")
    for bad in ("tpu", "cuda:x", "gpu0"):
        with pytest.raises(HearflowError, match="unknown device"):
            check_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(GPUUnavailable, match="no CUDA GPU"):
            check_device("cuda")
    else:
        with pytest.raises(GPUUnavailable, match="no GPU"):
            check_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_uses_pinned_staging_and_matches_cpu():
    cfg = PreprocessConfig(image_resize="pil_bicubic")
    cpu, gpu = DeviceFrames(cfg, "cpu"), DeviceFrames(cfg, "cuda")
    for seed in range(3):
        rgb = frame(480, 640, seed)
        got = gpu.frame(rgb).frame
        assert got.is_cuda
        assert np.abs(got.cpu().numpy() - cpu.frame(rgb).frame.numpy()).max() <= ONE_STEP
    (staging, buf, _), = gpu._buffers.values()
    assert staging.is_pinned() and buf.is_cuda
    wave = (np.random.default_rng(5).standard_normal(cfg.window_samples(22050)) * 0.2).astype(np.float32)
    np.testing.assert_allclose(gpu.spectrogram(wave, 22050).cpu().numpy(), cpu.spectrogram(wave, 22050).numpy(),
                               atol=1e-4)


def test_bounded_flow_resolution_matches_the_host_estimator():
    from hearflow.media.flow import FlowEstimator

    cfg = PreprocessConfig(image_size=64, flow="torch_farneback", flow_resolution="native", flow_max_side=80)
    base = np.random.default_rng(6).integers(0, 256, (24, 32), dtype=np.uint8)
    big = np.kron(base, np.ones((5, 5), np.uint8))  # 120×160: shrunk to 60×80 for the flow
    rgb_a = np.repeat(big[..., None], 3, axis=2)
    rgb_b = np.roll(rgb_a, 3, axis=1)
    host = FlowEstimator(cfg).raw(to_gray(rgb_a), to_gray(rgb_b))
    dev = DeviceFrames(cfg, "cpu")
    got = dev.raw_flow(dev.frame(rgb_a).gray, dev.frame(rgb_b).gray)[0].numpy()
    assert got.shape == host.shape == big.shape + (2,)
    assert np.median(np.abs(got - host)) < 0.05  # same algorithm; only resampling rounding differs
