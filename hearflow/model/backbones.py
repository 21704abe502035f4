"""Encoder trunks: torchvision's ResNet18 structure, with the input channels, width and
layer4 stride as parameters.

Attribute names match torchvision's ``resnet18`` (``conv1``, ``bn1``, ``layer1`` ...
``layer4``), so torchvision's ImageNet weights and the HTF / EZ-VSL checkpoints load by
key. ``width=64`` is the paper's ResNet18 (512 output channels); smaller widths give the
fast CPU variants (``width=16`` → 128 channels, about 16× fewer FLOPs).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1

BACKBONE_WIDTHS = {"resnet18": 64, "resnet18_w32": 32, "resnet18_w16": 16}


class ResNetTrunk(nn.Module):
    """ResNet18 without pool and fc: image (B, in_channels, H, W) → features (B, 8·width, H/32, W/32).

    in_channels: 3 for RGB frames, 2 for optical flow, 1 for spectrograms.
    width: channels of the first stage (64 = torchvision's resnet18).
    layer4_stride: 2 (torchvision) or 1 (LVS's 14×14 maps at 224 input).
    """

    def __init__(self, in_channels: int = 3, width: int = 64, layer4_stride: int = 2):
        super().__init__()
        self.out_channels = 8 * width
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._inplanes = width
        self.layer1 = self._make_layer(width, 1)
        self.layer2 = self._make_layer(2 * width, 2)
        self.layer3 = self._make_layer(4 * width, 2)
        self.layer4 = self._make_layer(8 * width, layer4_stride)
        # torchvision's initialisation, so a random trunk starts like theirs
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes:
            downsample = nn.Sequential(conv1x1(self._inplanes, planes, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self._inplanes, planes, stride, downsample), BasicBlock(planes, planes)]
        self._inplanes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def create_trunk(backbone: str, in_channels: int, layer4_stride: int = 2) -> ResNetTrunk:
    """Build the trunk named ``backbone`` (see BACKBONE_WIDTHS)."""
    if backbone not in BACKBONE_WIDTHS:
        raise ValueError(f"unknown backbone {backbone!r} (known: {', '.join(BACKBONE_WIDTHS)})")
    return ResNetTrunk(in_channels, BACKBONE_WIDTHS[backbone], layer4_stride)
