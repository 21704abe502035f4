"""Pretrained weights, kept apart from the architecture.

Only torchvision's ImageNet ResNet18 is used (HTF initialises its visual and flow encoders
from it). The weights come from torch's hub cache or the network; offline machines get a
clear message saying where to put the file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hearflow.errors import HearflowError


def imagenet_resnet18_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet ResNet18 state dict (from the hub cache, else downloaded)."""
    from torchvision.models import ResNet18_Weights

    weights = ResNet18_Weights.IMAGENET1K_V1
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # URLError, hash mismatch, partial file...
        raise HearflowError(
            f"ImageNet weights for resnet18 are not available ({type(exc).__name__}: {exc}); "
            f"download {weights.url} to {target}, or set model.pretrained=none"
        ) from None


def load_imagenet(model) -> None:
    """Copy ImageNet ResNet18 weights into ``model``'s visual encoder and, except the
    first conv (2 input channels instead of 3), its flow encoder."""
    state = {k: v for k, v in imagenet_resnet18_state_dict().items() if not k.startswith("fc.")}
    model.visual_encoder.load_state_dict(state)
    if model.flow_encoder is not None:
        flow_state = {k: v for k, v in state.items() if k != "conv1.weight"}
        missing, unexpected = model.flow_encoder.load_state_dict(flow_state, strict=False)
        assert missing == ["conv1.weight"] and not unexpected, (missing, unexpected)
