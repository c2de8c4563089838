"""MobileNetV2 (Sandler et al. 2018), written here with torchvision's module layout and
parameter names (``features.N...``, ``classifier.1``), so ImageNet ``mobilenet_v2`` weight
files load into it without torchvision (which this project must not install).
"""
from __future__ import annotations

import torch
from torch import nn

from gazefollow.backbones.base import Backbone

# (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2
INVERTED_RESIDUALS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                      (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def conv_bn_relu6(inp: int, out: int, kernel: int = 3, stride: int = 1,
                  groups: int = 1) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv (no bias), batch norm, ReLU6 as [0], [1], [2]."""
    return nn.Sequential(nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups,
                                   bias=False),
                         nn.BatchNorm2d(out), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expansion: int):
        super().__init__()
        hidden = round(inp * expansion)
        self.use_residual = stride == 1 and inp == out
        layers = [conv_bn_relu6(inp, hidden, kernel=1)] if expansion != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """Width 1.0: ``features`` (stride 32, 1280 channels out) and ``classifier``."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        layers, channels = [conv_bn_relu6(3, 32, stride=2)], 32
        for expansion, out, repeats, stride in INVERTED_RESIDUALS:
            for k in range(repeats):
                layers.append(InvertedResidual(channels, out, stride if k == 0 else 1,
                                               expansion))
                channels = out
        layers.append(conv_bn_relu6(channels, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:  # torchvision's initialisation
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3))
        return self.classifier(pooled)


GAZENET_CHANNELS = 256  # GazeNet's feature width (4 x 4 at 112 px)


class GazeNetFeatures(nn.Sequential):
    """MobileNetV2's features with the last layer replaced by a 1x1 conv-BN-ReLU6 to 256
    channels: GazeNet's backbone, and a face branch for gaze following
    (``model.face_backbone: gazenet``). Keys ``0.0.weight`` ... as torchvision's
    ``features.``; a map at 1/32 of the input size."""

    out_channels = GAZENET_CHANNELS

    def __init__(self):
        features = MobileNetV2().features
        features[-1] = conv_bn_relu6(320, GAZENET_CHANNELS, kernel=1)
        super().__init__(*features)


def _gazenet_problem(model_cfg, image_size: int) -> str | None:
    if image_size < 32:
        return f"model.face_backbone=gazenet reduces a face 32x; data.face_size={image_size} " \
               "is below 32"
    return None


BACKBONE = Backbone("gazenet", lambda model_cfg, image_size: GazeNetFeatures(), _gazenet_problem)
