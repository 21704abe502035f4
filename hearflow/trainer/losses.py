"""Self-supervised localization losses. Any loss works with flow on or off.

All take ``visual`` (B, D, m, n) and ``audio`` (B, D), both L2-normalised, and build the
maps of every image k against every audio j in the batch:

    S_kj = <visual_k, audio_j>  (B, B, m, n), cosine values; S_kk is the true pair.

Pseudo masks (LVS/HTF): PM_p = σ((S_kk − ε_p)/τ_m), PM_n = σ((S_kk − ε_n)/τ_m)
with ε_p = 0.65, ε_n = 0.40, τ_m = 0.03.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossConfig:
    name: Literal["htf", "htf_paper", "ezvsl"] = "htf"
    """htf: as released in the HTF (= LVS) code; htf_paper: as the HTF paper writes it;
    ezvsl: EZ-VSL's multiple-instance contrastive loss."""
    epsilon: float = 0.65
    """ε_p: the positive pseudo-mask threshold on cosine similarity."""
    epsilon_neg: float = 0.40
    """ε_n: the negative pseudo-mask threshold (HTF: ε − margin 0.25, "trimap")."""
    mask_tau: float = 0.03
    """τ_m: softness of the sigmoid pseudo masks."""
    logit_tau: float = 0.07
    """Temperature the htf logits are divided by."""
    ezvsl_tau: float = 0.03
    """Temperature of the ezvsl logits."""
    true_pair_negative: bool = False
    """htf only: keep the true pair among the negatives, its logit multiplied by
    (1 − 100), as the authors' released code does (a large positive logit when S_kk is
    negative); False leaves it out (the paper's definition)."""
    extra_negatives: tuple[str, ...] = ()
    """Sounds that match no image, added as negatives for every image in each batch:
    any of "silence" and "noise" (white noise). Not in the papers: without it a model's
    map barely changes when the audio is silent (see docs/results.md)."""


def _masked_mean(weight: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """<weight, value> / Σ weight over the spatial dims (..., m, n) → (...)."""
    return (weight * value).sum(dim=(-2, -1)) / weight.sum(dim=(-2, -1)).clamp_min(1e-12)


def pseudo_masks(s_kk: torch.Tensor, cfg: LossConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """PM_p and PM_n of the true-pair maps (B, m, n)."""
    pm_p = torch.sigmoid((s_kk - cfg.epsilon) / cfg.mask_tau)
    pm_n = torch.sigmoid((s_kk - cfg.epsilon_neg) / cfg.mask_tau)
    return pm_p, pm_n


def htf_loss(visual: torch.Tensor, audio: torch.Tensor, cfg: LossConfig = LossConfig(),
             extra: torch.Tensor | None = None) -> torch.Tensor:
    """The released HTF/LVS loss.

        Pos_k  = <PM_p, S_kk> / Σ PM_p
        Hard_k = <1 − PM_n, S_kk> / Σ (1 − PM_n)                 (background of the true pair)
        N_kj   = <σ((S_kj − ε_p)/τ_m), S_kj> / Σ σ((S_kj − ε_p)/τ_m)   for every j ≠ k
        L      = mean_k CE([Pos_k, N_k·, Hard_k] / τ_logit, target 0)

    The authors' code keeps j = k among the negatives, multiplied by (1 − 100) to push
    it away; that turns into a large positive logit when S_kk is negative, so here j = k
    is excluded outright (the paper's definition) unless ``cfg.true_pair_negative``.

    extra (E, D): audio embeddings of sounds that match no image (cfg.extra_negatives);
    each adds a logit N_ke built like N_kj.
    """
    b = visual.shape[0]
    s_all = torch.einsum("kchw,jc->kjhw", visual, audio)  # (B, B, m, n)
    s_kk = s_all.diagonal(dim1=0, dim2=1).permute(2, 0, 1)  # (B, m, n)
    pm_p, pm_n = pseudo_masks(s_kk, cfg)
    pos = _masked_mean(pm_p, s_kk)  # (B,)
    hard = _masked_mean(1 - pm_n, s_kk)  # (B,)
    neg_all = _masked_mean(torch.sigmoid((s_all - cfg.epsilon) / cfg.mask_tau), s_all)  # (B, B)
    if cfg.true_pair_negative:  # the authors' code: N_kk kept, times (1 − 100)
        neg = neg_all * (1 - 100 * torch.eye(b, dtype=neg_all.dtype, device=visual.device))
    else:
        off_diag = ~torch.eye(b, dtype=torch.bool, device=visual.device)
        neg = neg_all[off_diag].view(b, b - 1)
    if extra is not None:
        s_extra = torch.einsum("kchw,ec->kehw", visual, extra)
        neg = torch.cat([neg, _masked_mean(torch.sigmoid((s_extra - cfg.epsilon) / cfg.mask_tau), s_extra)], dim=1)
    logits = torch.cat([pos[:, None], neg, hard[:, None]], dim=1) / cfg.logit_tau
    target = torch.zeros(b, dtype=torch.long, device=visual.device)
    return F.cross_entropy(logits, target)


def htf_paper_loss(visual: torch.Tensor, audio: torch.Tensor, cfg: LossConfig = LossConfig(),
                   extra: torch.Tensor | None = None) -> torch.Tensor:
    """The loss as the HTF paper writes it.

        Pos_k = <PM_p, S_kk> / |PM_p|
        Neg_k = <1 − PM_n, S_kk> / |1 − PM_n| + 1/(m·n) Σ_{j≠k} <1, S_kj>
        L     = −Σ_k log( exp(Pos_k) / (exp(Pos_k) + exp(Neg_k)) )

    |·| is the L1 norm (the masks are non-negative, so it is their sum); no temperature;
    summed (not averaged) over the batch, as written. ``extra`` embeddings join the j ≠ k sum.
    """
    b = visual.shape[0]
    s_all = torch.einsum("kchw,jc->kjhw", visual, audio)
    s_kk = s_all.diagonal(dim1=0, dim2=1).permute(2, 0, 1)
    pm_p, pm_n = pseudo_masks(s_kk, cfg)
    pos = _masked_mean(pm_p, s_kk)
    off_diag = ~torch.eye(b, dtype=torch.bool, device=visual.device)
    others = (s_all.mean(dim=(-2, -1)) * off_diag).sum(dim=1)  # 1/(m·n) Σ_{j≠k} <1, S_kj>
    if extra is not None:
        others = others + torch.einsum("kchw,ec->kehw", visual, extra).mean(dim=(-2, -1)).sum(dim=1)
    neg = _masked_mean(1 - pm_n, s_kk) + others
    return -(pos - torch.logaddexp(pos, neg)).sum()


def ezvsl_loss(visual: torch.Tensor, audio: torch.Tensor, cfg: LossConfig = LossConfig(),
               extra: torch.Tensor | None = None) -> torch.Tensor:
    """EZ-VSL's multiple-instance contrastive loss.

        l_kj = max_{positions} S_kj / τ
        L    = CE(l, diag) + CE(lᵀ, diag)   (image→audio and audio→image; summed, as EZ-VSL's code)

    ``extra`` embeddings add columns to the image→audio term only (they have no image).
    """
    b = visual.shape[0]
    logits = torch.einsum("kchw,jc->kjhw", visual, audio).flatten(2).amax(dim=2) / cfg.ezvsl_tau
    target = torch.arange(b, device=visual.device)
    rows = logits
    if extra is not None:
        rows = torch.cat([logits, torch.einsum("kchw,ec->kehw", visual, extra).flatten(2).amax(dim=2) / cfg.ezvsl_tau],
                         dim=1)
    return F.cross_entropy(rows, target) + F.cross_entropy(logits.t(), target)


LOSSES = {"htf": htf_loss, "htf_paper": htf_paper_loss, "ezvsl": ezvsl_loss}


def compute_loss(visual: torch.Tensor, audio: torch.Tensor, cfg: LossConfig,
                 extra: torch.Tensor | None = None) -> torch.Tensor:
    """The loss named by ``cfg.name``; ``extra`` (E, D) = embeddings of cfg.extra_negatives."""
    return LOSSES[cfg.name](visual, audio, cfg, extra)
