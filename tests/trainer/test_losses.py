"""Losses on tiny tensors whose maps are known, against the formulas written out in scalars."""

import math

import pytest
import torch

from hearflow.trainer.losses import LossConfig, compute_loss, ezvsl_loss, htf_loss, htf_paper_loss

# Two images with 1×2 maps of unit 2-d features, two unit audio embeddings, so that
#   S_00 = [1, 0]   S_01 = [0, 1]   S_10 = [0.6, 1]   S_11 = [0.8, 0]
VISUAL = torch.tensor(
    [
        [[[1.0, 0.0]], [[0.0, 1.0]]],  # image 0: position 0 = (1, 0), position 1 = (0, 1)
        [[[0.6, 1.0]], [[0.8, 0.0]]],  # image 1: position 0 = (0.6, 0.8), position 1 = (1, 0)
    ]
)
AUDIO = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
S = {(0, 0): [1.0, 0.0], (0, 1): [0.0, 1.0], (1, 0): [0.6, 1.0], (1, 1): [0.8, 0.0]}


def sig(x):
    return 1 / (1 + math.exp(-x))


def wmean(w, s):
    return sum(a * b for a, b in zip(w, s)) / sum(w)


def test_fixture_maps():
    maps = torch.einsum("kchw,jc->kjhw", VISUAL, AUDIO)
    for (k, j), expected in S.items():
        assert maps[k, j, 0].tolist() == pytest.approx(expected)


def test_htf_loss_by_hand():
    c = LossConfig()
    total = 0.0
    for k in range(2):
        skk = S[k, k]
        pos = wmean([sig((v - 0.65) / 0.03) for v in skk], skk)
        hard = wmean([1 - sig((v - 0.40) / 0.03) for v in skk], skk)
        j = 1 - k
        neg = wmean([sig((v - 0.65) / 0.03) for v in S[k, j]], S[k, j])
        logits = [pos / 0.07, neg / 0.07, hard / 0.07]
        total += -logits[0] + math.log(sum(math.exp(x) for x in logits))
    assert htf_loss(VISUAL, AUDIO, c).item() == pytest.approx(total / 2, rel=1e-5)
    # constants are config fields: a different epsilon changes the value
    assert htf_loss(VISUAL, AUDIO, LossConfig(epsilon=0.5)).item() != pytest.approx(total / 2, rel=1e-3)


def test_htf_paper_loss_by_hand():
    total = 0.0
    for k in range(2):
        skk = S[k, k]
        pos = wmean([sig((v - 0.65) / 0.03) for v in skk], skk)
        neg = wmean([1 - sig((v - 0.40) / 0.03) for v in skk], skk) + sum(S[k, 1 - k]) / 2
        total += -math.log(math.exp(pos) / (math.exp(pos) + math.exp(neg)))
    assert htf_paper_loss(VISUAL, AUDIO).item() == pytest.approx(total, rel=1e-5)


def test_ezvsl_loss_by_hand():
    logits = [[max(S[k, j]) / 0.03 for j in range(2)] for k in range(2)]

    def ce(rows):
        return sum(-rows[i][i] + math.log(sum(math.exp(x) for x in rows[i])) for i in range(2)) / 2

    cols = [[logits[k][j] for k in range(2)] for j in range(2)]
    assert ezvsl_loss(VISUAL, AUDIO).item() == pytest.approx(ce(logits) + ce(cols), rel=1e-5)


@pytest.mark.parametrize("name", ["htf", "htf_paper", "ezvsl"])
def test_loss_falls_when_pairs_match(name):
    """Moving each audio towards its own image's sounding region lowers every loss."""
    torch.manual_seed(0)
    visual = torch.nn.functional.normalize(torch.randn(4, 8, 3, 3), dim=1)
    target = visual[:, :, 1, 1]  # each image's centre position
    noise = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    good = torch.nn.functional.normalize(target + 0.1 * noise, dim=1)
    bad = torch.nn.functional.normalize(target[[1, 2, 3, 0]] + 0.1 * noise, dim=1)
    cfg = LossConfig(name=name)
    assert compute_loss(visual, good, cfg) < compute_loss(visual, bad, cfg)


def test_gradients_flow_to_both_inputs():
    visual = torch.nn.functional.normalize(torch.randn(3, 8, 2, 2), dim=1).requires_grad_()
    audio = torch.nn.functional.normalize(torch.randn(3, 8), dim=1).requires_grad_()
    for name in ("htf", "htf_paper", "ezvsl"):
        visual.grad = audio.grad = None
        compute_loss(visual, audio, LossConfig(name=name)).backward()
        assert visual.grad.abs().sum() > 0 and audio.grad.abs().sum() > 0


def test_extra_negatives_add_one_logit_each():
    """An extra (silence-like) embedding adds a negative logit built like N_kj (htf) or a
    column of image→audio logits (ezvsl)."""
    extra = torch.tensor([[0.6, 0.8]])
    c = LossConfig()
    total = 0.0
    for k in range(2):
        skk = S[k, k]
        pos = wmean([sig((v - 0.65) / 0.03) for v in skk], skk)
        hard = wmean([1 - sig((v - 0.40) / 0.03) for v in skk], skk)
        negs = []
        for other in (S[k, 1 - k], [float(VISUAL[k, :, 0, i] @ extra[0]) for i in range(2)]):
            negs.append(wmean([sig((v - 0.65) / 0.03) for v in other], other))
        logits = [x / 0.07 for x in [pos, *negs, hard]]
        total += -logits[0] + math.log(sum(math.exp(x) for x in logits))
    assert htf_loss(VISUAL, AUDIO, c, extra).item() == pytest.approx(total / 2, rel=1e-5)
    assert ezvsl_loss(VISUAL, AUDIO, c, extra).item() > ezvsl_loss(VISUAL, AUDIO, c).item()
    assert htf_paper_loss(VISUAL, AUDIO, c, extra).item() != pytest.approx(htf_paper_loss(VISUAL, AUDIO).item())


def test_htf_loss_with_the_true_pair_kept_as_the_authors_code():
    """true_pair_negative: N_kk joins the negatives times (1 - 100), as the released code."""
    total = 0.0
    for k in range(2):
        skk = S[k, k]
        pos = wmean([sig((v - 0.65) / 0.03) for v in skk], skk)
        hard = wmean([1 - sig((v - 0.40) / 0.03) for v in skk], skk)
        negs = [wmean([sig((v - 0.65) / 0.03) for v in S[k, j]], S[k, j]) * (1 - 100 * (j == k)) for j in range(2)]
        logits = [pos / 0.07] + [n / 0.07 for n in negs] + [hard / 0.07]
        total += -logits[0] + math.log(sum(math.exp(x) for x in logits))
    got = htf_loss(VISUAL, AUDIO, LossConfig(true_pair_negative=True)).item()
    assert got == pytest.approx(total / 2, rel=1e-5)
    # the flaw it reproduces: when the true pair's similarity is negative (here S_kk = −0.1
    # everywhere) N_kk × (−99) becomes a large positive logit and the loss explodes
    opposite = -0.1 * AUDIO[:, :, None, None].expand(2, 2, 1, 2)
    flipped = htf_loss(opposite, AUDIO, LossConfig(true_pair_negative=True)).item()
    assert flipped > htf_loss(opposite, AUDIO, LossConfig()).item() + 100
