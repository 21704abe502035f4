"""Training: exact resume, DDP with 2 gloo processes, outputs of a run."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from hearflow import config
from hearflow.errors import HearflowError
from hearflow.model.checkpoint import load_checkpoint
from hearflow.trainer.experiment import ExperimentConfig
from hearflow.trainer.train import train


def small_cfg(data, out, **over):
    overrides = [
        f"data.path={data}", f"train.out={out}", "data.workers=0", "preprocess.image_size=64",
        "model.backbone=resnet18_w16", "train.batch_size=8", "train.epochs=2", "train.threads=2",
    ] + [f"{k}={v}" for k, v in over.items()]
    return config.load(ExperimentConfig, None, overrides)


def weights(path):
    return load_checkpoint(path).model.state_dict()


def test_resume_gives_the_same_weights(synth_dir, tmp_path):
    full = train(small_cfg(synth_dir, tmp_path / "full"), progress=False)
    half = small_cfg(synth_dir, tmp_path / "half", **{"train.epochs": 1})
    train(half, progress=False)
    train(small_cfg(synth_dir, tmp_path / "half"), resume=True, progress=False)
    a, b = weights(full / "last"), weights(tmp_path / "half" / "last")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    rows = list(csv.DictReader(open(tmp_path / "half" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert (full / "curves.png").stat().st_size > 0 and (full / "best" / "model.safetensors").is_file()
    assert load_checkpoint(full / "last").meta["epoch"] == 2


def test_resume_refuses_a_different_config(synth_dir, tmp_path):
    train(small_cfg(synth_dir, tmp_path / "r", **{"train.epochs": 1}), progress=False)
    with pytest.raises(HearflowError, match="differs"):
        train(small_cfg(synth_dir, tmp_path / "r", **{"optim.lr": 0.5}), resume=True, progress=False)
    with pytest.raises(HearflowError, match="nothing to resume"):
        train(small_cfg(synth_dir, tmp_path / "fresh"), resume=True, progress=False)


def test_validation_split_is_never_the_test_split(synth_dir, tmp_path):
    with pytest.raises(HearflowError, match="never sees the test set"):
        train(small_cfg(synth_dir, tmp_path / "x", **{"data.val_split": "test"}), progress=False)


@pytest.mark.slow
def test_ddp_two_gloo_processes(synth_dir, tmp_path):
    cfg = small_cfg(synth_dir, tmp_path / "ddp", **{"train.epochs": 1, "train.threads": 1})
    cfg_path = config.save(cfg, tmp_path / "ddp.yaml")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    proc = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", "29517", "-m", "hearflow.cli", "train",
         str(cfg_path), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(2 processes)" in proc.stdout
    assert load_checkpoint(tmp_path / "ddp" / "last").meta["epoch"] == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_loader_workers_give_the_same_training(synth_dir, tmp_path):
    # workers come from a fork server; OpenCV's pool running here first must not matter
    import cv2
    import numpy as np

    cv2.resize(np.zeros((2000, 2000, 3), np.uint8), (1500, 1500), interpolation=cv2.INTER_CUBIC)
    a = train(small_cfg(synth_dir, tmp_path / "w0", **{"train.epochs": 1}), progress=False)
    b = train(small_cfg(synth_dir, tmp_path / "w2", **{"train.epochs": 1, "data.workers": 2}), progress=False)
    wa, wb = weights(a / "last"), weights(b / "last")
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=1e-5), k


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(synth_dir, tmp_path):
    # real subprocesses and a real SIGKILL, through the script that records the measurement
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    script, recipe = os.path.join(root, "scripts", "kill_resume.py"), os.path.join(root, "configs", "synth_tiny.yaml")
    overrides = [f"data.path={synth_dir}", "data.workers=0", "preprocess.image_size=64", "model.backbone=resnet18_w16",
                 "train.batch_size=4", "train.epochs=3", "train.threads=2"]
    proc = subprocess.run([sys.executable, script, recipe, *overrides, "--out", str(tmp_path / "kr")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    verdict = json.loads((tmp_path / "kr" / "verdict.json").read_text())
    # killed inside epoch 2 (or, on a machine much faster than the timing run, just after it)
    assert verdict["same"] and verdict["epochs_done_at_kill"] in (1, 2)
