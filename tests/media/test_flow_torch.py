"""Farneback in torch against OpenCV's, computed here on real-video-like fixtures.

The fixtures are textured scenes panned by known sub-pixel amounts, encoded to H.264
and decoded (so they carry real compression noise); the reference is
``cv2.calcOpticalFlowFarneback`` with the same parameters, run in the test.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

import hearflow.media.flow_torch as flow_torch
from hearflow.cli import main
from hearflow.export.flow_benchmark import (
    endpoint_error,
    h264_roundtrip,
    htf_image_agreement,
    load_map_model,
    map_agreement,
    moving_scene,
    similarity_maps,
)
from hearflow.media.flow import FARNEBACK_PARAMS, FlowEstimator
from hearflow.media.flow_torch import OPTFLOW_FARNEBACK_GAUSSIAN, farneback
from hearflow.media.preprocess_torch import resample
from hearflow.media.frames import to_gray
from hearflow.media.preprocess import PreprocessConfig, htf_compat

OTHER_PARAMS = (0.6, 4, 11, 5, 7, 1.5, OPTFLOW_FARNEBACK_GAUSSIAN)


def clip(width, height, pairs, seed=0):
    """Gray frames of an H.264-decoded panned scene and the true (dx, dy) of each pair."""
    frames, truth = moving_scene(width, height, pairs + 1, seed)
    return [to_gray(f) for f in h264_roundtrip(frames)], truth


def both(grays, params):
    """OpenCV's and torch's flow of each consecutive pair (torch: one batched call)."""
    ref = [cv2.calcOpticalFlowFarneback(a, b, None, *params) for a, b in zip(grays[:-1], grays[1:])]
    stack = torch.from_numpy(np.stack(grays)).float()
    out = farneback(stack[:-1], stack[1:], params).numpy()
    return ref, list(out)


def check_parity(grays, truth, params):
    ref, out = both(grays, params)
    assert out[0].shape == ref[0].shape and out[0].dtype == np.float32
    epe = endpoint_error(out, ref)
    assert epe["mean"] <= 0.05 and epe["p99"] <= 0.5, epe
    assert htf_image_agreement(out, ref) >= 0.99
    # Both are equally close to the true motion (and close to it at all).
    margin = 16
    ours, theirs = endpoint_error(out, truth, margin), endpoint_error(ref, truth, margin)
    assert ours["mean"] == pytest.approx(theirs["mean"], abs=0.01)
    assert ours["mean"] < 0.5
    return epe


@pytest.fixture(scope="module")
def clip224():
    return clip(224, 224, pairs=3, seed=1)


def test_parity_htf_params_224(clip224):
    check_parity(*clip224, FARNEBACK_PARAMS)


def test_parity_htf_params_640x480():
    check_parity(*clip(640, 480, pairs=1, seed=2), FARNEBACK_PARAMS)


def test_parity_other_params_gaussian_window():
    # Odd sizes: non-integer pyramid scales, rounding of level sizes.
    check_parity(*clip(250, 163, pairs=2, seed=3), OTHER_PARAMS)


def test_batch_equals_single_calls(clip224):
    grays = [torch.from_numpy(g).float() for g in clip224[0][:3]]
    batch = farneback(torch.stack(grays[:2]), torch.stack(grays[1:3]))
    assert batch.shape == (2, 224, 224, 2)
    for i in range(2):
        single = farneback(grays[i], grays[i + 1])
        assert single.shape == (224, 224, 2)
        torch.testing.assert_close(batch[i], single, atol=1e-4, rtol=0)


def test_initial_flow_as_opencv(clip224):
    a, b = clip224[0][:2]
    h, w = a.shape
    # A smooth, non-constant first guess (area resizing of it must match too).
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    init = np.dstack([1.5 + xx / w, -0.5 + yy / h]).astype(np.float32)
    params = (0.5, 2, 9, 2, 5, 1.1, 0)
    ref = cv2.calcOpticalFlowFarneback(a, b, init.copy(), *params[:-1], cv2.OPTFLOW_USE_INITIAL_FLOW)
    out = farneback(torch.from_numpy(a), torch.from_numpy(b), params, torch.from_numpy(init)).numpy()
    epe = endpoint_error([out], [ref])
    assert epe["mean"] <= 0.05 and epe["p99"] <= 0.5
    with pytest.raises(ValueError, match="init_flow must have shape"):
        farneback(torch.from_numpy(a), torch.from_numpy(b), params, torch.zeros(h, w + 1, 2))


def test_area_resize_of_a_float_field_matches_opencv():
    # the initial flow is shrunk with this (OpenCV: INTER_AREA on the float field)
    img = np.random.default_rng(0).random((45, 61)).astype(np.float32)
    for size in ((20, 17), (61, 45), (30, 15)):
        ref = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        out = resample(torch.from_numpy(img), (size[1], size[0]), "area", quantize=False)
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


def test_convolution_path_equals_cpu_path(clip224, monkeypatch):
    # GPUs filter with convolutions, CPUs with shifted sums: the same numbers.
    a, b = (torch.from_numpy(g[:96, :128]).float() for g in clip224[0][:2])
    fast = farneback(a, b, OTHER_PARAMS)
    monkeypatch.setattr(flow_torch, "CPU_SHIFTED_SUMS", False)
    torch.testing.assert_close(farneback(a, b, OTHER_PARAMS), fast, atol=1e-4, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu(clip224):
    stack = torch.from_numpy(np.stack(clip224[0])).float()
    cpu = farneback(stack[:-1], stack[1:])
    gpu = farneback(stack[:-1].cuda(), stack[1:].cuda())
    assert gpu.device.type == "cuda"
    assert endpoint_error(list(gpu.cpu().numpy()), list(cpu.numpy()))["p99"] < 0.01


def test_bad_input():
    with pytest.raises(ValueError, match="differ in shape"):
        farneback(torch.zeros(40, 40), torch.zeros(40, 41))
    with pytest.raises(ValueError, match="pyr_scale"):
        farneback(torch.zeros(40, 40), torch.zeros(40, 40), (1.0,) + FARNEBACK_PARAMS[1:])


# --------------------------------------------------------------------------- through FlowEstimator
def test_estimator_providers_agree(clip224):
    a, b = clip224[0][:2]
    ref = FlowEstimator(PreprocessConfig(flow="farneback")).raw(a, b)
    out = FlowEstimator(PreprocessConfig(flow="torch_farneback")).raw(a, b)
    assert out.dtype == np.float32 and out.shape == (224, 224, 2)
    assert endpoint_error([out], [ref])["mean"] <= 0.05


@pytest.mark.parametrize("flow", ["farneback", "torch_farneback"])
def test_flow_max_side_gives_native_scale(flow):
    grays, truth = clip(320, 240, pairs=1, seed=4)
    native = FlowEstimator(PreprocessConfig(flow=flow)).raw(*grays)
    bounded = FlowEstimator(PreprocessConfig(flow=flow, flow_max_side=160)).raw(*grays)
    assert bounded.shape == native.shape == (240, 320, 2)
    # Computed at 160×120, rescaled to native pixels: the same motion as at full size.
    inner = (slice(24, -24), slice(24, -24))
    np.testing.assert_allclose(np.median(bounded[inner], axis=(0, 1)), truth[0], atol=0.15)
    np.testing.assert_allclose(np.median(native[inner], axis=(0, 1)), truth[0], atol=0.15)
    # Frames no larger than the bound are left alone.
    same = FlowEstimator(PreprocessConfig(flow=flow, flow_max_side=320)).raw(*grays)
    np.testing.assert_array_equal(same, native)


def test_htf_model_same_argmax_with_either_provider():
    # An imported HTF model's architecture with random weights, HTF's preprocessing.
    frames, _ = moving_scene(256, 192, 4, seed=5)
    frames = h264_roundtrip(frames)
    grays = [to_gray(f) for f in frames]
    model, _ = load_map_model("htf-random")
    maps = {}
    for flow in ("farneback", "torch_farneback"):
        cfg = htf_compat().replace(flow=flow)
        est = FlowEstimator(cfg)
        flows = [est.raw(a, b) for a, b in zip(grays[:-1], grays[1:])]
        maps[flow] = similarity_maps(model, cfg, frames[:-1], flows, fps=25.0)
    agree = map_agreement(maps["torch_farneback"], maps["farneback"])
    assert agree["argmax_agreement"] == 1.0 and agree["correlation"] > 0.999


# --------------------------------------------------------------------------- config
def test_config_field_and_old_fingerprints():
    # Hashes of configs saved before flow_max_side existed are unchanged (caches stay valid).
    assert PreprocessConfig().fingerprint() == "5d195553981d"
    assert htf_compat().fingerprint() == "5bde757241e9"
    assert htf_compat().replace(flow_max_side=320).fingerprint() != htf_compat().fingerprint()
    old = htf_compat().to_dict()
    del old["flow_max_side"]
    assert PreprocessConfig.from_dict(old) == htf_compat()
    cfg = PreprocessConfig.from_dict({"flow": "torch_farneback", "flow_max_side": 480})
    assert (cfg.flow, cfg.flow_max_side) == ("torch_farneback", 480)
    with pytest.raises(Exception, match="flow_max_side"):
        PreprocessConfig.from_dict({"flow_max_side": 8})


# --------------------------------------------------------------------------- hearflow bench flow
def test_bench_flow_command(tmp_path, capsys):
    out = tmp_path / "flow.json"
    rc = main(["bench", "flow", "htf-random", "--size", "96x64", "--pairs", "2", "--provider",
               "opencv-farneback,torch-farneback:cpu,opencv-farneback@48", "--json", str(out)])
    assert rc in (0, None)
    text = capsys.readouterr().out
    assert "torch-farneback:cpu" in text and "opencv-farneback@48" in text
    rows = json.loads(out.read_text())["runs"]
    assert [r["label"] for r in rows] == ["opencv-farneback", "torch-farneback:cpu", "opencv-farneback@48"]
    assert (rows[1]["provider"], rows[1]["device"], rows[2]["max_side"]) == ("torch-farneback", "cpu", 48)
    assert rows[1]["epe_vs_first"]["mean"] <= 0.05 and rows[1]["htf_uint8_equal"] >= 0.99
    assert rows[1]["map_vs_first"]["argmax_agreement"] == 1.0
    assert all(r["median_ms"] > 0 and r["epe_truth"]["mean"] < 1.0 for r in rows)
    assert main(["bench", "flow", "--provider", "opencv-nope"]) == 2
    assert main(["bench", "flow", "--params", "0.5,3,15"]) == 2
    assert "error:" in capsys.readouterr().err
