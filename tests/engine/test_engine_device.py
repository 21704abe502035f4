"""The engine with ``--device cpu``: inputs built in torch from the captured frames, real runs.

Tolerance between the host (numpy) and the device (torch) runs: the resized frames may
differ by one uint8 step where OpenCV's fixed-point weights round differently from float32
ones, and the log spectrograms by ≤ 1e-4; through the tiny committed model that moves
cosine-similarity map values by well under 0.01 (measured: 8e-4 at most on this clip), so maps must
agree within 0.01. (Not the argmax cell: the best two cells of this model's maps are often
closer than 1e-3, so a peak may move to its neighbour with no real difference.)
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from hearflow.cli import main
from hearflow.engine.benchmark import camera_clip
from hearflow.engine.inputs import DeviceInputs
from hearflow.engine.packets import FramePacket
from hearflow.media.preprocess import PreprocessConfig
from hearflow.model import ModelConfig, create_model
from hearflow.model.checkpoint import save_checkpoint
from hearflow.runtime import device_frames

CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "synth_tiny"
MAP_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """2 s of a synthetic scene, 160×120 at 15 fps (the model enlarges it: resize rounding matters)."""
    return camera_clip(tmp_path_factory.mktemp("clip") / "cam.mp4", 160, 120, fps=15.0, seconds=2.0)


def run_maps(model, clip, tmp_path, device=None):
    out = tmp_path / f"{device or 'host'}.jsonl"
    argv = ["run", "--model", str(model), "--video", str(clip), "--sink", f"jsonl:{out}", "--no-status",
            "--threads", "1"] + (["--device", device] if device else [])
    assert main(argv) == 0
    import json

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return [np.array(r["map"], dtype=np.float64) for r in rows]


def assert_close_maps(host, dev):
    assert len(host) == len(dev) == 30
    worst = max(np.abs(h - d).max() for h, d in zip(host, dev))
    assert worst <= MAP_TOLERANCE, worst
    assert min(np.ptp(h) for h in host) > 0.05  # maps with structure, not a flat field any input would give


def test_device_cpu_run_matches_the_host_run(clip, tmp_path):
    host = run_maps(CHECKPOINT, clip, tmp_path)
    dev = run_maps(CHECKPOINT, clip, tmp_path, device="cpu")
    assert_close_maps(host, dev)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@CUDA
def test_device_cuda_run_matches_the_host_run(clip, tmp_path):
    assert_close_maps(run_maps(CHECKPOINT, clip, tmp_path), run_maps(CHECKPOINT, clip, tmp_path, device="cuda"))


def test_device_cuda_without_a_gpu_is_one_error_line(clip, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    rc = main(["run", "--model", str(CHECKPOINT), "--video", str(clip), "--sink", f"jsonl:{tmp_path}/r.jsonl",
               "--no-status", "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == ["error: device 'cuda' asked for, but PyTorch sees no CUDA GPU (use --device cpu)"]
    assert not (tmp_path / "r.jsonl").exists()  # nothing ran: the check comes before the model loads


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("pair", ["previous", "next"])
def test_device_flow_pairs_the_same_frames_as_the_host(pair, device, clip, tmp_path):
    torch.manual_seed(0)
    model = tmp_path / "model"
    pre = PreprocessConfig(image_size=64, flow="farneback", flow_pair=pair)
    save_checkpoint(model, create_model(ModelConfig(backbone="resnet18_w16")), pre)
    assert_close_maps(run_maps(model, clip, tmp_path), run_maps(model, clip, tmp_path, device=device))


def packet(seq, rgb, prev_rgb):
    return FramePacket(seq=seq, t_capture=0.0, t_media=seq / 25, rgb=rgb, frame=None, gray=None, prev_gray=None,
                       fps=25.0, prev_rgb=prev_rgb)


def test_each_frame_goes_up_once_and_a_skipped_one_only_when_needed():
    pre = PreprocessConfig(image_size=64, flow="farneback")
    inputs = DeviceInputs(pre, 22050, uses_flow=True, device="cpu")
    assert not inputs.frames_on_host and not inputs.gray_on_host
    frames = [np.random.default_rng(i).integers(0, 256, (120, 160, 3), dtype=np.uint8) for i in range(4)]
    first = packet(0, frames[0], None)
    assert inputs.prev_gray(first) is None
    assert float(inputs.flow(None, first).abs().sum()) == 0  # no earlier frame: zeros
    for seq in (1, 3):  # frame 2 was dropped before inference
        pkt = packet(seq, frames[seq], frames[seq - 1])
        flow = inputs.flow(inputs.prev_gray(pkt), pkt)
        assert flow.shape == (1, 2, 64, 64)
        inputs.frame(pkt)  # cached: no second upload
    assert inputs.dev.uploads == 4  # frames 0, 1, 3, and 2 for 3's flow
