"""The paper-faithful training options (configs/htf_paper.yaml): frozen encoder's BatchNorm mode, crop mode."""

from pathlib import Path

import numpy as np
import torch

from hearflow import config
from hearflow.model import create_model
from hearflow.trainer.experiment import ExperimentConfig
from hearflow.trainer.train import set_train_mode

REPO = Path(__file__).resolve().parents[2]


def test_htf_paper_preset_names_each_difference():
    cfg = config.load(ExperimentConfig, REPO / "configs" / "htf_paper.yaml")
    assert cfg.train.visual_bn == "train" and cfg.train.crop == "short_side_crop"
    assert cfg.loss.true_pair_negative and cfg.model.freeze_vision
    assert cfg.preprocess.flow_encoding == "htf_uint8" and cfg.preprocess.flow_pair == "next"
    default = ExperimentConfig()  # hearflow's choices stay the defaults
    assert (default.train.visual_bn, default.train.crop, default.loss.true_pair_negative) == ("eval", "zoom", False)


def _bn_stats_after_a_step(visual_bn: str) -> tuple[torch.Tensor, bool]:
    cfg = config.load(ExperimentConfig, None, ["model.backbone=resnet18_w16", "model.freeze_vision=true",
                                                f"train.visual_bn={visual_bn}"])
    torch.manual_seed(0)
    model = create_model(cfg.model)
    set_train_mode(model, model, cfg)
    bn = next(m for m in model.visual_encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    out = model(torch.randn(4, 3, 64, 64) * 3 + 1, torch.randn(4, 2, 64, 64), torch.randn(4, 1, 64, 40))
    out["map"].sum().backward()
    frozen = all(p.grad is None for p in model.visual_encoder.parameters())
    return (bn.running_mean - before).abs().max(), frozen and bn.training == (visual_bn == "train")


def test_visual_bn_train_lets_the_frozen_encoders_statistics_drift():
    drift, ok = _bn_stats_after_a_step("train")
    assert ok and drift > 1e-3  # batch statistics used, running statistics updated
    drift, ok = _bn_stats_after_a_step("eval")
    assert ok and drift == 0  # hearflow's default: the frozen encoder is left as it is


def test_clip_dataset_uses_the_crop_mode_and_the_recorded_aspect(synth_dir, tmp_path):
    from hearflow.trainer.clip_cache import ensure_cache
    from hearflow.trainer.data import CacheIndex, ClipDataset

    cfg = config.load(ExperimentConfig, None, ["preprocess.image_size=64"])
    cache = ensure_cache(synth_dir, cfg.preprocess, str(tmp_path / "cache"), 1, False, layout="videos")
    index = CacheIndex(cache)
    idx = index.indices("train")[:2]
    assert all(index.done[i]["aspect"] == 1.0 for i in idx)  # square synthetic frames
    zoom = ClipDataset(index, idx, augment=True, seed=1)
    paper = ClipDataset(index, idx, augment=True, seed=1, crop="short_side_crop")
    plain = ClipDataset(index, idx)
    for k in range(2):
        a, b, c = (d[k]["frame"].numpy() for d in (zoom, paper, plain))
        assert a.shape == b.shape == c.shape == (3, 64, 64)
        assert not np.array_equal(a, b) and not np.array_equal(b, c)
