"""The Hear-The-Flow model: where in the frame does the sound come from?

Inputs: frame (B, 3, S, S) normalised RGB, flow (B, 2, S, S), log spectrogram
(B, 1, F, T). Output: the similarity map S (B, m, n) of cosine values in [-1, 1],
m = n = S/32 (7 at 224) or S/16 with ``feature_size: 14``.

    f_v   = visual_encoder(frame)                       (B, C, m, n)
    f_fl  = flow_encoder(flow)                          (B, C, m, n) ("cnn") or maxpool(flow) (B, 2, m, n)
    Q, K, V = Wq f_v, Wk f_fl, Wv f_v                   1×1 convs: C→C/8, C_fl→C/8, C→C
    β     = softmax_j (Q_iᵀ K_j / sqrt(C/8))            attention of visual position i over flow positions j
    E_i   = Σ_j β_ij V_j                                 flow decides where visual features are gathered
    f_enh = normalize(f_v + E)                          (OFLN; with flow "none": normalize(f_v), the LVS model)
    a     = normalize(maxpool(audio_encoder(spec)))     (B, C)
    S_i   = <f_enh_i, a>                                cosine similarity per position

Optional projection heads (EZ-VSL): a 1×1 conv on the visual map and a linear layer on
the audio embedding, applied before the L2 normalisation.

The audio path (:meth:`HTFModel.embed_audio`) and the visual path
(:meth:`HTFModel.visual_embedding` / :meth:`HTFModel.localize`) are separately callable:
the engine runs the audio encoder every hop and the visual path every frame, and export
writes them as two graphs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hearflow.model.backbones import BACKBONE_WIDTHS, create_trunk


@dataclass(frozen=True)
class ModelConfig:
    backbone: Literal["resnet18", "resnet18_w32", "resnet18_w16"] = "resnet18"
    """Encoder trunk for frame, flow and audio: ResNet18 (paper) or a width-reduced one for CPU."""
    flow: Literal["cnn", "maxpool", "none"] = "cnn"
    """Flow branch: a ResNet18 flow encoder (HTF), the flow max-pooled to the map size
    (HTF's "maxpool" variant), or none (the LVS baseline: same code path without attention)."""
    feature_size: Literal[7, 14] = 7
    """Map side at 224 input: 7 (layer4 stride 2) or 14 (layer4 stride 1, as LVS)."""
    proj_dim: int = 0
    """Projection heads as EZ-VSL (1×1 conv on the visual map, linear on audio) to this
    dimension; 0 = none (HTF)."""
    pretrained: Literal["imagenet", "none"] = "none"
    """Initialise the visual (and flow, except its first conv) encoder from torchvision's
    ImageNet ResNet18 weights (resnet18 only), or random init."""
    freeze_vision: bool = False
    """Freeze the visual encoder (HTF's default when pretrained)."""

    def __post_init__(self):
        if self.proj_dim < 0:
            raise ValueError(f"proj_dim must be >= 0, got {self.proj_dim}")
        if self.pretrained == "imagenet" and self.backbone != "resnet18":
            raise ValueError(f"pretrained=imagenet needs backbone resnet18, not {self.backbone}")

    @property
    def channels(self) -> int:
        """Encoder output channels C."""
        return 8 * BACKBONE_WIDTHS[self.backbone]

    @property
    def embed_dim(self) -> int:
        """Dimension of the audio embedding and of the visual features the map compares."""
        return self.proj_dim or self.channels

    @property
    def layer4_stride(self) -> int:
        return 2 if self.feature_size == 7 else 1


class FlowAttention(nn.Module):
    """OFLN: visual positions attend over flow positions; the gathered values are added.

    channels: C, the visual feature channels (query/value input).
    key_channels: channels of the flow features (C for the "cnn" flow encoder, 2 for "maxpool").
    """

    def __init__(self, channels: int, key_channels: int):
        super().__init__()
        self.inner = channels // 8
        self.query = nn.Conv2d(channels, self.inner, kernel_size=1)
        self.key = nn.Conv2d(key_channels, self.inner, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, visual: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """Return E (B, C, m, n): for each visual position, the β-weighted sum of values."""
        b, c, h, w = visual.shape
        q = self.query(visual).flatten(2)  # (B, C/8, N)
        k = self.key(flow).flatten(2)  # (B, C/8, N)
        v = self.value(visual).flatten(2)  # (B, C, N)
        beta = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(self.inner), dim=-1)  # (B, N_vis, N_flow)
        return (v @ beta.transpose(1, 2)).view(b, c, h, w)


class HTFModel(nn.Module):
    """Frame + flow + audio → similarity map. Build it with :func:`hearflow.model.create_model`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.visual_encoder = create_trunk(cfg.backbone, 3, cfg.layer4_stride)
        self.audio_encoder = create_trunk(cfg.backbone, 1)
        self.flow_encoder = None
        self.flow_pool = None
        self.attention = None
        if cfg.flow == "cnn":
            self.flow_encoder = create_trunk(cfg.backbone, 2, cfg.layer4_stride)
            self.attention = FlowAttention(c, c)
        elif cfg.flow == "maxpool":
            self.attention = FlowAttention(c, 2)
        self.visual_proj = nn.Conv2d(c, cfg.proj_dim, kernel_size=1) if cfg.proj_dim else None
        self.audio_proj = nn.Linear(c, cfg.proj_dim) if cfg.proj_dim else None
        # HTF/LVS initialise the audio BatchNorm weights around 1 with a small spread
        for m in self.audio_encoder.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, mean=1.0, std=0.02)
                nn.init.constant_(m.bias, 0.0)
        if cfg.freeze_vision:
            self.visual_encoder.requires_grad_(False)

    @property
    def uses_flow(self) -> bool:
        return self.attention is not None

    def train(self, mode: bool = True):
        super().train(mode)
        if self.cfg.freeze_vision:  # a frozen encoder keeps its BatchNorm statistics too
            self.visual_encoder.eval()
        return self

    # --- audio path ----------------------------------------------------------------
    def embed_audio(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) log spectrogram → (B, D) L2-normalised audio embedding."""
        a = torch.amax(self.audio_encoder(spectrogram), dim=(2, 3))  # global max pool
        if self.audio_proj is not None:
            a = self.audio_proj(a)
        return F.normalize(a, dim=1)

    # --- visual path ---------------------------------------------------------------
    def visual_embedding(self, frame: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, S, S) frame [+ (B, 2, S, S) flow] → (B, D, m, n) L2-normalised features."""
        v = self.visual_encoder(frame)
        if self.attention is not None:
            if flow is None:
                raise ValueError("this model uses optical flow: pass flow")
            if self.flow_encoder is not None:
                f = self.flow_encoder(flow)
            else:
                f = F.adaptive_max_pool2d(flow, v.shape[-2:])
            v = v + self.attention(v, f)
        if self.visual_proj is not None:
            v = self.visual_proj(v)
        return F.normalize(v, dim=1)

    @staticmethod
    def similarity(visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Cosine map of each visual map against its own audio: (B, D, m, n), (B, D) → (B, m, n)."""
        return torch.einsum("bchw,bc->bhw", visual, audio)

    @staticmethod
    def similarity_all(visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Maps of every image k against every audio j: (B, D, m, n), (B', D) → (B, B', m, n)."""
        return torch.einsum("kchw,jc->kjhw", visual, audio)

    def localize(self, frame: torch.Tensor, flow: torch.Tensor | None, audio_embedding: torch.Tensor) -> torch.Tensor:
        """Similarity map (B, m, n) from frames, flows and precomputed audio embeddings."""
        return self.similarity(self.visual_embedding(frame, flow), audio_embedding)

    def forward(self, frame: torch.Tensor, flow: torch.Tensor | None, spectrogram: torch.Tensor,
                extra_spectrograms: torch.Tensor | None = None) -> dict:
        """Everything the losses need: ``map`` (B, m, n), ``visual`` (B, D, m, n), ``audio`` (B, D),
        and ``extra_audio`` (E, D) for sounds that match no image (silence, noise) when given."""
        visual = self.visual_embedding(frame, flow)
        audio = self.embed_audio(spectrogram)
        out = {"map": self.similarity(visual, audio), "visual": visual, "audio": audio}
        if extra_spectrograms is not None:
            out["extra_audio"] = self.embed_audio(extra_spectrograms)
        return out
