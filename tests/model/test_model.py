"""The HTF model: shapes, OFLN against a loop, the LVS path, checkpoints, pretrained loading."""

import math

import pytest
import torch
import torch.nn.functional as F

from hearflow.errors import HearflowError
from hearflow.media.preprocess import PreprocessConfig, htf_compat
from hearflow.model import ModelConfig, create_model
from hearflow.model.checkpoint import CheckpointError, load_checkpoint, read_meta, save_checkpoint
from hearflow.model.htf import FlowAttention

TINY = ModelConfig(backbone="resnet18_w16")


def inputs(b=2, size=64, t=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, 3, size, size, generator=g),
        torch.randn(b, 2, size, size, generator=g),
        torch.randn(b, 1, 257, t, generator=g),
    )


@pytest.mark.parametrize(
    "cfg,side,dim",
    [
        (TINY, 7, 128),
        (ModelConfig(backbone="resnet18_w16", feature_size=14), 14, 128),
        (ModelConfig(backbone="resnet18_w16", flow="none", proj_dim=32), 7, 32),
        (ModelConfig(backbone="resnet18_w16", flow="maxpool"), 7, 128),
    ],
)
def test_shapes_and_range(cfg, side, dim):
    torch.manual_seed(0)
    model = create_model(cfg).eval()
    frame, flow, spec = (x for x in inputs(size=224, t=276))
    with torch.no_grad():
        out = model(frame, flow, spec)
    assert out["map"].shape == (2, side, side)
    assert out["visual"].shape == (2, dim, side, side)
    assert out["audio"].shape == (2, dim)
    assert out["map"].abs().max() <= 1 + 1e-5
    assert torch.allclose(out["visual"].norm(dim=1), torch.ones(2, side, side), atol=1e-5)
    # the separately callable paths give the same map as forward
    with torch.no_grad():
        emb = model.embed_audio(spec)
        assert torch.allclose(model.localize(frame, flow, emb), out["map"], atol=1e-6)


def test_paper_model_has_paper_sizes():
    model = create_model(ModelConfig())
    assert model.attention.query.weight.shape == (64, 512, 1, 1)
    assert model.attention.value.weight.shape == (512, 512, 1, 1)
    assert model.flow_encoder.conv1.weight.shape == (64, 2, 7, 7)
    assert model.audio_encoder.conv1.weight.shape == (64, 1, 7, 7)


def test_ofln_matches_hand_written_loop():
    torch.manual_seed(1)
    att = FlowAttention(16, 8).requires_grad_(False)
    v = torch.randn(1, 16, 2, 3)
    f = torch.randn(1, 8, 2, 3)
    out = att(v, f)
    q = att.query(v)[0].flatten(1)  # (2, N)
    k = att.key(f)[0].flatten(1)
    val = att.value(v)[0].flatten(1)  # (16, N)
    n = v.shape[2] * v.shape[3]
    expected = torch.zeros(16, n)
    for i in range(n):  # visual position i
        energies = [float(q[:, i] @ k[:, j]) / math.sqrt(16 // 8) for j in range(n)]
        z = sum(math.exp(e) for e in energies)
        for j in range(n):  # gather values at positions j, weighted by attention over flow
            expected[:, i] += math.exp(energies[j]) / z * val[:, j]
    assert torch.allclose(out[0].flatten(1), expected, atol=1e-5)


def test_flow_off_is_the_lvs_path():
    """With the attention's values zeroed, the flow model reduces exactly to flow 'none'."""
    torch.manual_seed(2)
    htf = create_model(TINY).eval()
    lvs = create_model(TINY, flow="none").eval()
    lvs.load_state_dict(htf.state_dict(), strict=False)
    frame, flow, spec = inputs()
    with torch.no_grad():
        htf.attention.value.weight.zero_()
        htf.attention.value.bias.zero_()
        a, b = htf(frame, flow, spec)["map"], lvs(frame, None, spec)["map"]
        v = F.normalize(lvs.visual_encoder(frame), dim=1)
        aud = F.normalize(lvs.audio_encoder(spec).amax(dim=(2, 3)), dim=1)
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(b, torch.einsum("bchw,bc->bhw", v, aud), atol=1e-6)
    with pytest.raises(ValueError, match="pass flow"):
        htf.visual_embedding(frame, None)


def test_freeze_vision_keeps_weights_and_bn_stats():
    model = create_model(TINY, freeze_vision=True).train()
    before = {k: v.clone() for k, v in model.visual_encoder.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    out = model(*inputs())
    out["map"].sum().backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in model.visual_encoder.state_dict().items())
    assert model.audio_encoder.conv1.weight.grad is not None


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(3)
    model = create_model(ModelConfig(backbone="resnet18_w16", proj_dim=16)).eval()
    pre = htf_compat()
    save_checkpoint(tmp_path / "ck", model, pre, epoch=4, metrics={"loss": 0.5})
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.model_cfg == model.cfg and ck.preprocess == pre
    assert ck.meta["epoch"] == 4 and ck.meta["metrics"]["loss"] == 0.5
    x = inputs()
    with torch.no_grad():
        assert torch.equal(ck.model(*x)["map"], model(*x)["map"])
    # the weights file alone carries the configs
    (tmp_path / "ck" / "meta.json").unlink()
    assert read_meta(tmp_path / "ck" / "model.safetensors")["preprocess"]["flow"] == "farneback"


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_checkpoint(tmp_path / "empty")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(bad)
    # weights that do not fit the config
    model = create_model(TINY)
    save_checkpoint(tmp_path / "ck", model, PreprocessConfig())
    from safetensors.torch import load_file, save_file
    import json

    path = tmp_path / "ck" / "model.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    state = load_file(str(path))
    state.pop("attention.key.weight")
    save_file(state, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="do not fit the model config"):
        load_checkpoint(tmp_path / "ck")
    meta = json.loads(meta["hearflow"])
    assert meta["model"]["backbone"] == "resnet18_w16"


def test_pretrained_from_cache_and_clear_error_when_missing(tmp_path, monkeypatch):
    import torchvision
    from torchvision.models import ResNet18_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints" / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"not a checkpoint")
    with pytest.raises(HearflowError, match="model.pretrained=none"):
        create_model(ModelConfig(pretrained="imagenet"))
    torch.manual_seed(4)
    reference = torchvision.models.resnet18().state_dict()
    torch.save(reference, cache)
    model = create_model(ModelConfig(pretrained="imagenet", freeze_vision=True))
    assert torch.equal(model.visual_encoder.layer3[1].conv2.weight, reference["layer3.1.conv2.weight"])
    assert torch.equal(model.flow_encoder.layer1[0].bn1.running_var, reference["layer1.0.bn1.running_var"])
    assert model.flow_encoder.conv1.weight.shape[1] == 2
    assert not any(p.requires_grad for p in model.visual_encoder.parameters())
    with pytest.raises(ValueError, match="needs backbone resnet18"):
        ModelConfig(pretrained="imagenet", backbone="resnet18_w16")
