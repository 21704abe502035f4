"""Importing the authors' released HTF and EZ-VSL checkpoints.

No released file can be downloaded here, so each test builds the authors' model as their
``model.py`` defines it (torchvision ResNet18s with their changes, their attention
layer), fills it with random weights and saves its state dict in the layouts their
scripts write. The imported hearflow model must give the same map as that reference.
"""

from __future__ import annotations

import argparse
import json
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from hearflow.errors import HearflowError
from hearflow.media.flow import FlowEstimator
from hearflow.media.preprocess import ezvsl_compat, htf_compat
from hearflow.model.checkpoint import CheckpointError, load_checkpoint
from hearflow.model.importers import import_checkpoint, import_summary, read_foreign

SPEC_SHAPE = (1, 257, 276)  # 3 s at 22,050 Hz, nperseg 512, noverlap 274


# --------------------------------------------------------------------------- the authors' models
def _their_resnet(in_channels: int, audio: bool = False) -> nn.Module:
    """ResNet18 changed as HTF / EZ-VSL do: conv1 input channels, pooling, no fc."""
    net = resnet18()
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)
    net.avgpool = nn.AdaptiveMaxPool2d((1, 1)) if audio else nn.Identity()
    net.fc = nn.Identity()
    return net


class TheirSelfAttn(nn.Module):
    """denfed/heartheflow model.py ``Self_Attn``, written out as there."""

    def __init__(self, in_dim: int, key_in_dim: int):
        super().__init__()
        self.chanel_in = in_dim
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, kernel_size=1)
        self.key_conv = nn.Conv2d(key_in_dim, in_dim // 8, kernel_size=1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, kernel_size=1)

    def forward(self, x, v):
        b, c, width, height = x.size()
        proj_query = self.query_conv(x).view(b, -1, width * height).permute(0, 2, 1)
        proj_key = self.key_conv(v).view(b, -1, width * height)
        energy = torch.bmm(proj_query, proj_key) / math.sqrt(self.chanel_in // 8)
        attention = torch.softmax(energy, dim=-1)
        proj_value = self.value_conv(x).view(b, -1, width * height)
        out = torch.bmm(proj_value, attention.permute(0, 2, 1))
        return out.view(b, c, width, height)


class TheirHTF(nn.Module):
    """denfed/heartheflow ``HearTheFlowVSSLModel``: the modules and the map its forward returns."""

    def __init__(self, flowtype: str):
        super().__init__()
        self.flowtype = flowtype
        self.imgnet = _their_resnet(3)
        self.audnet = _their_resnet(1, audio=True)
        if flowtype == "cnn":
            self.flownet = _their_resnet(2)
            self.flowatt = TheirSelfAttn(512, 512)
        else:
            self.flownet = nn.AdaptiveMaxPool2d((7, 7))
            self.flowatt = TheirSelfAttn(512, 2)

    def forward(self, image, flow, audio):
        img = self.imgnet(image).view(-1, 512, 7, 7)
        aud = F.normalize(self.audnet(audio), dim=1)
        flow = self.flownet(flow).view(-1, 512, 7, 7) if self.flowtype == "cnn" else self.flownet(flow)
        attended = F.normalize(img + self.flowatt(img, flow), dim=1)
        # lvs_loss's PosLogits: the localization map
        return torch.einsum("ncqa,nchw->nqa", attended, aud.unsqueeze(2).unsqueeze(3))


class TheirEZVSL(nn.Module):
    """stoneMo/EZ-VSL ``EZVSL``: the map is the un-divided cosine (their logits times τ)."""

    def __init__(self, dim: int):
        super().__init__()
        self.imgnet = _their_resnet(3)
        self.img_proj = nn.Conv2d(512, dim, kernel_size=(1, 1))
        self.audnet = _their_resnet(1, audio=True)
        self.aud_proj = nn.Linear(512, dim)

    def forward(self, image, audio):
        img = F.normalize(self.img_proj(self.imgnet(image).unflatten(1, (512, 7, 7))), dim=1)
        aud = F.normalize(self.aud_proj(self.audnet(audio)), dim=1)
        return torch.einsum("nchw,nc->nhw", img, aud)


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics (so eval-mode BN is really exercised)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(int(torch.randint(1, 100_000, (1,), generator=g)))
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.ndim == 1:  # BatchNorm weight
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:  # conv / linear weight, He-scaled
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * math.sqrt(2.0 / fan_in))
    return module.eval()


def _inputs(batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    frame = torch.randn((batch, 3, 224, 224), generator=g)
    flow = torch.rand((batch, 2, 224, 224), generator=g)  # htf_uint8 flow lies in [0, 1]
    spec = torch.randn((batch, *SPEC_SHAPE), generator=g) - 1.0
    return frame, flow, spec


# Batch 2 for the main model (checks nothing mixes samples), 1 elsewhere: ResNet18 on a
# 2-core CPU is the cost of this file.
@pytest.fixture(scope="module")
def htf_cnn():
    model = _randomize(TheirHTF("cnn"), seed=1)
    frame, flow, spec = _inputs()
    with torch.no_grad():
        expected = model(frame, flow, spec)
    return model.state_dict(), (frame, flow, spec), expected


@pytest.fixture(scope="module")
def htf_maxpool():
    model = _randomize(TheirHTF("maxpool"), seed=2)
    frame, flow, spec = _inputs(batch=1, seed=1)
    with torch.no_grad():
        expected = model(frame, flow, spec)
    return model.state_dict(), (frame, flow, spec), expected


@pytest.fixture(scope="module")
def ezvsl():
    model = _randomize(TheirEZVSL(512), seed=3)
    frame, _, spec = _inputs(batch=1, seed=3)
    with torch.no_grad():
        expected = model(frame, spec)
    return model.state_dict(), (frame, spec), expected


# --------------------------------------------------------------------------- the key layouts
def test_generated_layouts_match_the_published_key_lists(htf_cnn, htf_maxpool, ezvsl):
    """Facts copied from the authors' model.py state dicts (key counts, a few shapes)."""
    cnn, maxpool, ez = htf_cnn[0], htf_maxpool[0], ezvsl[0]
    assert (len(cnn), len(maxpool), len(ez)) == (366, 246, 244)
    for sd in (cnn, maxpool, ez):
        assert sum(k.startswith("imgnet.") for k in sd) == 120
        assert sum(k.startswith("audnet.") for k in sd) == 120
        assert not any(".fc." in k for k in sd)
        assert sd["audnet.conv1.weight"].shape == (64, 1, 7, 7)
        assert sd["imgnet.bn1.num_batches_tracked"].dtype == torch.int64
        assert sd["imgnet.bn1.num_batches_tracked"].shape == ()
    assert sum(k.startswith("flownet.") for k in cnn) == 120
    assert cnn["flownet.conv1.weight"].shape == (64, 2, 7, 7)
    assert cnn["flowatt.query_conv.weight"].shape == (64, 512, 1, 1)
    assert cnn["flowatt.key_conv.weight"].shape == (64, 512, 1, 1)
    assert cnn["flowatt.value_conv.weight"].shape == (512, 512, 1, 1)
    assert maxpool["flowatt.key_conv.weight"].shape == (64, 2, 1, 1)
    assert not any(k.startswith("flownet.") for k in maxpool)
    assert ez["img_proj.weight"].shape == (512, 512, 1, 1)
    assert ez["aud_proj.weight"].shape == (512, 512)


# --------------------------------------------------------------------------- equivalence
def _hearflow_map(ckpt, frame, flow, spec):
    with torch.no_grad():
        return ckpt.model(frame, flow, spec)["map"]


def test_htf_cnn_import_reproduces_their_map(htf_cnn, tmp_path):
    sd, (frame, flow, spec), expected = htf_cnn
    src = tmp_path / "flickr.pth"
    torch.save({"model": sd}, src)  # the released .pth files: HTF's test.py loads weights['model']
    out = import_checkpoint("htf", src, tmp_path / "imported")
    ckpt = load_checkpoint(out)
    assert ckpt.model_cfg.flow == "cnn" and ckpt.model_cfg.proj_dim == 0
    assert ckpt.preprocess == htf_compat()
    assert torch.equal(ckpt.model.attention.key.weight, sd["flowatt.key_conv.weight"])
    assert torch.equal(ckpt.model.flow_encoder.layer4[1].bn2.running_var, sd["flownet.layer4.1.bn2.running_var"])
    got = _hearflow_map(ckpt, frame, flow, spec)
    assert got.shape == expected.shape == (2, 7, 7)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    source = ckpt.meta["imported_from"]
    assert source["layout"] == "model" and source["variant"] == "cnn" and source["preset"] == "htf_compat"
    assert source["source_file"] == "flickr.pth" and len(source["source_sha256"]) == 64
    line = import_summary(out)
    assert "\n" not in line and "Hear-The-Flow" in line and "htf_compat" in line


@pytest.mark.parametrize("layout", ["model", "lightning", "bare"])
def test_htf_file_layouts(htf_maxpool, tmp_path, layout):
    sd = htf_maxpool[0]
    src = tmp_path / "weights.ckpt"
    if layout == "model":
        torch.save({"model": sd}, src)
    elif layout == "lightning":
        # what HTF's train.py (Lightning 1.8, save_hyperparameters of an argparse Namespace) writes
        torch.save({
            "epoch": 12,
            "pytorch-lightning_version": "1.8.6",
            "state_dict": {"model." + k: v for k, v in sd.items()},
            "hyper_parameters": {"args": argparse.Namespace(flowtype="maxpool", tau=0.03, trimap=1)},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}]}],
        }, src)
    else:
        torch.save(sd, src)
    state, found = read_foreign(src)
    assert found == layout
    assert list(state) == list(sd) and all(torch.equal(state[k], sd[k]) for k in sd)


def test_ezvsl_ddp_prefix_and_numpy_scores_are_accepted(ezvsl, tmp_path):
    sd = ezvsl[0]
    src = tmp_path / "best.pth"
    # EZ-VSL's train.py: DDP's module. prefix, optimizer state, numpy scores next to the weights
    torch.save({
        "model": {"module." + k: v for k, v in sd.items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0, 1]}]},
        "epoch": 20,
        "best_cIoU": np.float64(0.8193),
        "best_Auc": np.float32(0.6258),
    }, src)
    state, found = read_foreign(src)
    assert found == "model"
    assert list(state) == list(sd) and all(torch.equal(state[k], sd[k]) for k in sd)


def test_htf_maxpool_import_reproduces_their_map(htf_maxpool, tmp_path):
    sd, (frame, flow, spec), expected = htf_maxpool
    src = tmp_path / "htf_maxpool.pth"
    torch.save({"model": sd}, src)
    ckpt = load_checkpoint(import_checkpoint("htf", src, tmp_path / "imported"))
    assert ckpt.model_cfg.flow == "maxpool" and ckpt.model.flow_encoder is None
    assert ckpt.preprocess == htf_compat()
    torch.testing.assert_close(_hearflow_map(ckpt, frame, flow, spec), expected, atol=1e-5, rtol=0)


def test_ezvsl_import_reproduces_their_map(ezvsl, tmp_path):
    sd, (frame, spec), expected = ezvsl
    src = tmp_path / "best.pth"
    torch.save({"model": {"module." + k: v for k, v in sd.items()}, "epoch": 20}, src)
    ckpt = load_checkpoint(import_checkpoint("ezvsl", src, tmp_path / "imported"))
    assert ckpt.model_cfg.flow == "none" and ckpt.model_cfg.proj_dim == 512
    assert ckpt.preprocess == ezvsl_compat()
    assert ckpt.meta["imported_from"]["preset"] == "ezvsl_compat"
    torch.testing.assert_close(_hearflow_map(ckpt, frame, None, spec), expected, atol=1e-5, rtol=0)


def test_ezvsl_projection_width_is_read_from_the_weights(tmp_path):
    sd = _randomize(TheirEZVSL(128), seed=4).state_dict()
    src = tmp_path / "ezvsl_128.pth"
    torch.save({"model": sd}, src)
    ckpt = load_checkpoint(import_checkpoint("ezvsl", src, tmp_path / "imported"))
    assert ckpt.model_cfg.proj_dim == 128 and ckpt.model_cfg.embed_dim == 128
    assert torch.equal(ckpt.model.audio_proj.weight, sd["aud_proj.weight"])
    assert torch.equal(ckpt.model.visual_proj.bias, sd["img_proj.bias"])


# --------------------------------------------------------------------------- errors
def _save_model(sd, path):
    torch.save({"model": sd}, path)
    return path


def test_unknown_missing_and_misshaped_keys_are_listed(htf_maxpool, tmp_path):
    sd = dict(htf_maxpool[0])
    sd["imgnet.fc.weight"] = torch.zeros(1000, 512)
    del sd["audnet.layer4.1.bn2.running_var"]
    sd["flowatt.value_conv.weight"] = torch.zeros(256, 512, 1, 1)
    with pytest.raises(HearflowError) as info:
        import_checkpoint("htf", _save_model(sd, tmp_path / "bad.pth"), tmp_path / "out")
    msg = str(info.value)
    assert "1 unknown key: imgnet.fc.weight" in msg
    assert "1 missing key: audnet.layer4.1.bn2.running_var" in msg
    assert "1 mis-shaped key: flowatt.value_conv.weight [256, 512, 1, 1] (expected [512, 512, 1, 1])" in msg
    assert "\n" not in msg
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_long_key_lists_are_cut_with_a_count(ezvsl, tmp_path):
    sd = {k: v for k, v in ezvsl[0].items() if not k.startswith("audnet.")}
    with pytest.raises(HearflowError, match=r"120 missing keys: audnet\.conv1\.weight, .*\.\.\. and 114 more"):
        import_checkpoint("ezvsl", _save_model(sd, tmp_path / "bad.pth"), tmp_path / "out")


def test_wrong_kind_points_at_the_other_importer(ezvsl, tmp_path):
    with pytest.raises(HearflowError, match="looks like an EZ-VSL checkpoint"):
        import_checkpoint("htf", _save_model(ezvsl[0], tmp_path / "ez.pth"), tmp_path / "out")


class _Pickled:  # stands for anything that is not a tensor container
    pass


def test_files_that_need_unpickling_are_refused(ezvsl, tmp_path):
    src = tmp_path / "full_object.pth"
    torch.save({"model": ezvsl[0], "args": _Pickled()}, src)
    with pytest.raises(HearflowError, match="only weights-only files are accepted") as info:
        import_checkpoint("ezvsl", src, tmp_path / "out")
    assert "_Pickled" in str(info.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(CheckpointError, match="file not found"):
        import_checkpoint("htf", tmp_path / "nope.pth", tmp_path / "out")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(HearflowError, match="not a readable PyTorch checkpoint"):
        import_checkpoint("htf", junk, tmp_path / "out")
    with pytest.raises(HearflowError, match="unknown checkpoint kind"):
        import_checkpoint("lvs", junk, tmp_path / "out")


def test_an_existing_checkpoint_is_not_overwritten(ezvsl, tmp_path):
    src = _save_model(ezvsl[0], tmp_path / "best.pth")
    out = import_checkpoint("ezvsl", src, tmp_path / "out")
    with pytest.raises(HearflowError, match="already holds a checkpoint"):
        import_checkpoint("ezvsl", src, out)
    assert import_checkpoint("ezvsl", src, out, overwrite=True) == out


# --------------------------------------------------------------------------- htf_compat flow
def _texture(height: int, width: int) -> np.ndarray:
    """A smooth random texture (RGB uint8) that Farneback tracks well."""
    rng = np.random.default_rng(0)
    gray = cv2.GaussianBlur(rng.uniform(0, 255, (height, width)).astype(np.float32), (0, 0), 2.0)
    gray = cv2.normalize(gray, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def test_htf_compat_flow_keeps_only_positive_motion():
    """HTF stored each flow component as an 8-bit image: +3 px → 3/255, −3 px → 0."""
    cfg = htf_compat()
    est = FlowEstimator(cfg)
    canvas = _texture(240, 326)
    # 320×240 frames; b(x) = a(x − 3): the content moves 3 px to the right
    a, b = canvas[:, 6:326], canvas[:, 3:323]
    right = est(est.gray(a), est.gray(b), fps=25.0)
    assert est.gray(a).shape == (240, 320)  # flow at native resolution
    assert right.shape == (2, 224, 224) and right.dtype == np.float32
    inner = (slice(24, -24), slice(24, -24))
    assert np.median(right[0][inner]) == pytest.approx(3 / 255)
    assert np.mean(right[0][inner] == np.float32(3 / 255)) > 0.9
    assert np.all(right[1][inner] == 0)  # no vertical motion
    left = est(est.gray(b), est.gray(a), fps=25.0)
    assert np.all(left == 0)  # negative motion saturates to 0


# --------------------------------------------------------------------------- export + engine
@pytest.mark.slow
def test_imported_htf_exports_to_onnx_and_runs_in_the_engine(htf_maxpool, tmp_path):
    """The imported model (htf_compat: Farneback at native resolution, flow to the next
    frame, centred audio) goes through ONNX export and the engine on a real clip."""
    from hearflow.engine.run import RunOptions, run_engine
    from hearflow.export import export_model
    from hearflow.media.encode import write_clip
    from hearflow.model.importers import import_checkpoint

    ckpt = import_checkpoint("htf", _save_model(htf_maxpool[0], tmp_path / "htf.pth"), tmp_path / "imported")
    export_model(ckpt, tmp_path / "onnx")
    rng = np.random.default_rng(0)
    frames = np.stack([np.roll(_texture(120, 160), 2 * i, axis=1) for i in range(12)])
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)).astype(np.float32)
    write_clip(tmp_path / "clip.mp4", frames, 25, tone + 0.001 * rng.standard_normal(22050).astype(np.float32), 22050)
    summary = run_engine(RunOptions(tmp_path / "onnx", str(tmp_path / "clip.mp4"), "same", f"jsonl:{tmp_path}/r.jsonl",
                                    realtime=False, status=False))
    assert summary["backend"] == "onnxruntime" and summary["processed"] == summary["captured"] == 12
    rows = [json.loads(line) for line in open(tmp_path / "r.jsonl")]
    assert [r["capture_seq"] for r in rows] == list(range(12))  # flow to the next frame: one frame late, none lost
    assert all(np.array(r["map"]).shape == (7, 7) for r in rows)
