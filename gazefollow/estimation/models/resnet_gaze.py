"""ResNet baselines for gaze estimation: our ResNet (torchvision's parameter names, so
ImageNet files load through ``run.init_weights``), global average pooling, a linear layer to
(pitch, yaw). As in ETH-XGaze's baseline, the whole face goes in at 224 px."""
from __future__ import annotations

import torch
from torch import nn

from gazefollow.backbones.resnet import ResNet

SHAPES = {"resnet18": ([2, 2, 2, 2], "basic"), "resnet50": ([3, 4, 6, 3], "bottleneck")}


class ResNetGaze(nn.Module):
    def __init__(self, layers: list[int], block: str = "basic", inplanes: int = 64,
                 stem_pool: bool = True):
        super().__init__()
        self.backbone = ResNet(layers, inplanes=inplanes, block=block, stem_pool=stem_pool)
        self.fc = nn.Linear(self.backbone.out_channels, 2)

    @classmethod
    def named(cls, name: str, inplanes: int = 64) -> ResNetGaze:
        if name not in SHAPES:
            raise ValueError(f"unknown ResNet '{name}': use one of {sorted(SHAPES)}")
        layers, block = SHAPES[name]
        return cls(layers, block, inplanes)

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        """face [B, 3, S, S] (ImageNet-normalised RGB) -> [B, 2] pitch, yaw."""
        return self.fc(self.backbone(face).mean(dim=(2, 3)))
