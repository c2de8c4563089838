"""A configurable ResNet with torchvision's parameter names (ImageNet ``resnet*.pth`` files load).

Differences from torchvision are configuration only: any number of stages with any number of
blocks, any stem width, any number of input channels, and an optional stem max-pool (small
inputs keep more resolution without it; it has no parameters, so names are unchanged).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from gazefollow.backbones.base import Backbone


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)  # stride on the 3x3, as torchvision v1.5
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """Feature extractor: returns the last stage's map [B, out_channels, H/stride, W/stride].

    Args:
        layers (list[int]): blocks per stage, e.g. [3, 4, 6, 3] for ResNet-34/50.
        inplanes (int, default 64): stem width; stage i has width inplanes * 2**i.
        in_channels (int, default 3): input channels (RGB plus any extra maps).
        block (str, default "basic"): "basic" or "bottleneck".
        stem_pool (bool, default True): the stem's 3x3 stride-2 max-pool.
        planes (list[int], optional): each stage's width instead of inplanes * 2**i.
        strides (list[int], optional): each stage's stride instead of 1, 2, 2 ...
        shortcut_norms (int, default 1): BatchNorms after a shortcut's 1x1 convolution; 2 in
            Chong et al.'s video model, whose blocks add a second one (``downsample.2``).
    """

    def __init__(self, layers: list[int], inplanes: int = 64, in_channels: int = 3,
                 block: str = "basic", stem_pool: bool = True,
                 planes: list[int] | None = None, strides: list[int] | None = None,
                 shortcut_norms: int = 1):
        super().__init__()
        block_cls = BLOCKS[block]
        planes = planes or [inplanes * 2**stage for stage in range(len(layers))]
        strides = strides or [1] + [2] * (len(layers) - 1)
        self.conv1 = nn.Conv2d(in_channels, inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem_pool else nn.Identity()
        self.stride = 4 if stem_pool else 2
        channels = inplanes
        for stage, blocks in enumerate(layers):
            self.stride *= strides[stage]
            stage_blocks, channels = self._make_stage(block_cls, channels, planes[stage], blocks,
                                                      strides[stage], shortcut_norms)
            self.add_module(f"layer{stage + 1}", stage_blocks)
        self.num_stages = len(layers)
        self.out_channels = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _make_stage(block_cls, inplanes: int, planes: int, blocks: int, stride: int,
                    shortcut_norms: int = 1):
        downsample, width = None, planes * block_cls.expansion
        if stride != 1 or inplanes != width:
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, width, 1, stride=stride, bias=False),
                *[nn.BatchNorm2d(width) for _ in range(shortcut_norms)])
        modules = [block_cls(inplanes, planes, stride, downsample)]
        channels = planes * block_cls.expansion
        modules += [block_cls(channels, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*modules), channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in range(self.num_stages):
            x = getattr(self, f"layer{stage + 1}")(x)
        return x


@dataclass
class ResNetConfig:
    """The ``model`` keys of a face (or frame) ResNet: ``model.face_backbone=resnet`` in gaze
    following, the ResNet estimators, Looking-At-Me's frame encoder."""

    face_layers: list[int] = field(default_factory=lambda: [3, 4, 6, 3])  # blocks per stage
    face_inplanes: int = 64  # the first stage's width
    block: str = "basic"  # basic | bottleneck (torchvision's BasicBlock / Bottleneck)
    face_stem_pool: bool = True  # the stem max-pool; off keeps 2x more resolution

    CHOICES = {"block": ("basic", "bottleneck")}


def _face_resnet(model_cfg, image_size: int) -> ResNet:
    """Our ResNet on a face crop: ``model.face_layers``, ``face_inplanes``, ``block``,
    ``face_stem_pool``."""
    return ResNet(model_cfg.face_layers, model_cfg.face_inplanes, in_channels=3,
                  block=model_cfg.block, stem_pool=model_cfg.face_stem_pool)


BACKBONE = Backbone("resnet", _face_resnet, config=ResNetConfig)
