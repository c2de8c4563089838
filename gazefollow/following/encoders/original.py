"""The ``original`` encoder: the gaze part of the original research code, as a configuration.

Two Bottleneck ResNets with a fifth, stride-1 stage (a 1024 x 7 x 7 map at 224 px): the scene
branch reads RGB + the head mask, the face branch the head crop. The two maps become 49 + 49
context tokens of width 1024, each with a fixed 2-D sinusoidal position encoding, and their
concatenation feeds the Chong-style in/out head (``gaze_model.ConvInOutHead``).

Options of the original, each a config key:

- ``model.adm_attention_module``: head-position attention. The pooled face vector and the head
  mask (max-pooled three times) give one softmax weight per scene location; the context is
  then the reweighted scene map and the face map, without position encoding (as there).
- ``model.depth_branch``: a third ResNet over a depth map of the scene (+ the head mask). Two
  1x1 encoders fuse (scene, face) and (depth, face); the context is their 49 + 49 tokens.

Attribute names follow the original's (``scene_backbone``, ``face_backbone``, ``attn``,
``depth_backbone``, ``scene_encoder``, ``depth_encoder``), so its checkpoints and initial
weights map onto this module by a prefix (``gazefollow/original/checkpoints.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from gazefollow.backbones.resnet import ResNet
from gazefollow.following.encoders.base import GazeEncoder
from gazefollow.following.models.conditioning import Conditioning, ConditioningWidths

STAGES = 5  # the original's ResNets always have five stages


def original_resnet(layers: list[int], inplanes: int, in_channels: int,
                    shortcut_norms: int = 1) -> ResNet:
    """Bottleneck stages of widths inplanes x (1, 2, 4, 8, 4), the fifth one at stride 1."""
    return ResNet(layers, inplanes, in_channels=in_channels, block="bottleneck",
                  planes=[inplanes * m for m in (1, 2, 4, 8, 4)], strides=[1, 2, 2, 2, 1],
                  shortcut_norms=shortcut_norms)


def feature_grid(input_size: int) -> int:
    """Side of the ResNets' output map: five stride-2 steps, each rounding up."""
    size = input_size
    for _ in range(5):
        size = math.ceil(size / 2)
    return size


def sinusoidal_2d(rows: int, cols: int, channels: int) -> torch.Tensor:
    """The original's fixed 2-D position encoding [rows, cols, channels]: the first half of
    the (rounded-up) channels encode the row, the second half the column, each as interleaved
    sin / cos at geometric frequencies; cut to ``channels``."""
    half = int(math.ceil(channels / 4) * 2)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, half, 2).float() / half))

    def encode(length: int) -> torch.Tensor:  # [length, half]
        angles = torch.arange(length).float()[:, None] * inv_freq[None]
        return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)

    table = torch.zeros(rows, cols, 2 * half)
    table[:, :, :half] = encode(rows)[:, None]
    table[:, :, half:] = encode(cols)[None]
    return table[:, :, :channels]


def _original_problem(model_cfg) -> str | None:
    if model_cfg.face_backbone != "resnet":
        return "model.face_backbone is an option of the resnet_pair encoder"
    for key in ("scene_layers", "face_layers", "depth_layers"):
        if len(getattr(model_cfg, key)) != STAGES:
            return f"model.{key} needs {STAGES} stages (the original's [3, 4, 6, 3, 2])"
    width = model_cfg.scene_inplanes * 16  # the fifth stage: inplanes x 4, Bottleneck x 4
    inplanes = {model_cfg.scene_inplanes, model_cfg.face_inplanes,
                *([model_cfg.depth_inplanes] if model_cfg.depth_branch else [])}
    if len(inplanes) > 1:
        return "the scene, face (and depth) ResNets need the same inplanes: their maps are fused"
    if model_cfg.context_dim != width:
        return (f"model.context_dim (--unet_context_vector) must be the maps' width {width} "
                f"(16 x model.scene_inplanes), got {model_cfg.context_dim}")
    return None



class FusionEncoder(nn.Module):
    """The depth variant's 1x1 fusion: [B, 2C, g, g] -> [B, C, g, g] (conv, BN, ReLU)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(2 * channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))


@dataclass
class OriginalEncoderConfig:
    """The ``model`` keys of the original research code's options (model.encoder=original)."""

    adm_attention_module: bool = False  # head-position attention over the scene map
    depth_branch: bool = False  # a third ResNet over a depth map (data.depth_suffix)
    depth_layers: list[int] = field(default_factory=lambda: [3, 4, 6, 3, 2])
    depth_inplanes: int = 64


class OriginalEncoder(GazeEncoder):
    """Scene (RGB + head mask) and face ResNets -> 2 x grid² tokens of the maps' width."""

    name = "original"
    PARTS = {"scene": ("scene_backbone",), "face": ("face_backbone",), "attention": ("attn",),
             "depth": ("depth_backbone",), "fusion": ("scene_encoder", "depth_encoder")}
    RESNET_PARTS = ("scene", "face", "depth")
    CONFIG = OriginalEncoderConfig
    # the head-position attention whatever model.adm_attention_module says (Chong et al.'s)
    ALWAYS_ATTENDS = False

    def __init__(self, model_cfg, data_cfg):
        super().__init__()
        input_size, norms = data_cfg.input_size, self.shortcut_norms(model_cfg)
        self.scene_backbone = original_resnet(model_cfg.scene_layers, model_cfg.scene_inplanes, 4,
                                              norms)
        self.face_backbone = original_resnet(model_cfg.face_layers, model_cfg.face_inplanes, 3,
                                             norms)
        channels = self.scene_backbone.out_channels
        self.grid = feature_grid(input_size)
        self.attn = self.depth_backbone = self.scene_encoder = self.depth_encoder = None
        if model_cfg.adm_attention_module or self.ALWAYS_ATTENDS:
            mask_side = math.ceil(input_size / 8)  # three stride-2 max-pools
            self.attn = nn.Linear(mask_side ** 2 + channels, self.grid ** 2)
        if model_cfg.depth_branch:  # depth as a 3-channel colour map + the head mask
            self.depth_backbone = original_resnet(model_cfg.depth_layers,
                                                  model_cfg.depth_inplanes, 4)
            self.scene_encoder, self.depth_encoder = FusionEncoder(channels), FusionEncoder(
                channels)
        self.register_buffer("position", sinusoidal_2d(self.grid, self.grid, channels),
                             persistent=False)
        self.widths = ConditioningWidths(context=channels, inout=2 * channels,
                                         inout_grid=self.grid)

    @classmethod
    def config_problem(cls, model_cfg, data_cfg) -> str | None:
        return _original_problem(model_cfg)

    @staticmethod
    def shortcut_norms(model_cfg) -> int:
        """BatchNorms on each ResNet block's shortcut (``ResNet``)."""
        return 1

    def _tokens(self, feature_map: torch.Tensor, encode_position: bool) -> torch.Tensor:
        tokens = rearrange(feature_map, "b c h w -> b h w c")
        if encode_position:
            tokens = tokens + self.position.to(tokens.dtype)
        return rearrange(tokens, "b h w c -> b (h w) c")

    def _head_attention(self, scene: torch.Tensor, face: torch.Tensor,
                        mask: torch.Tensor) -> torch.Tensor:
        """The scene map reweighted by a softmax over its locations, from face + head mask."""
        face_vec = face.mean(dim=(2, 3))
        for _ in range(3):
            mask = F.max_pool2d(mask, kernel_size=3, stride=2, padding=1)
        logits = self.attn(torch.cat([mask.flatten(1), face_vec], dim=1))
        weights = logits.softmax(dim=1).view(-1, 1, self.grid, self.grid)
        return scene * weights

    def forward(self, batch: dict) -> Conditioning:
        mask = batch["head_channel"]
        scene = self.scene_backbone(torch.cat([batch["image"], mask], dim=1))
        face = self.face_backbone(batch["face"])
        if self.depth_backbone is not None:
            depth = self.depth_backbone(torch.cat([batch["depth"], mask], dim=1))
            context = torch.cat([
                self._tokens(self.scene_encoder(torch.cat([scene, face], dim=1)), False),
                self._tokens(self.depth_encoder(torch.cat([depth, face], dim=1)), False)], dim=1)
        elif self.attn is not None:
            scene = self._head_attention(scene, face, mask)
            context = torch.cat([self._tokens(scene, False), self._tokens(face, False)], dim=1)
        else:
            context = torch.cat([self._tokens(scene, True), self._tokens(face, True)], dim=1)
        return {"context": context, "inout_features": torch.cat([scene, face], dim=1)}


ENCODER = OriginalEncoder
