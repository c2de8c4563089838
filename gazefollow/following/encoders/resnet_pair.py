"""The ``resnet_pair`` encoder: scene and face ResNets, and the conditioner that turns them
into a ``Conditioning``: context tokens for cross-attention, a spatial map and a gaze
direction field concatenated to the head's input, and pooled features for the in/out head.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from gazefollow.backbones import backbone_problem, build_backbone
from gazefollow.backbones.resnet import ResNet
from gazefollow.following.encoders.base import GazeEncoder
from gazefollow.following.models.conditioning import (Conditioning, ConditioningWidths, box_centre,
                                                      coord_channels)


class Conditioner(nn.Module):
    """Scene map + face map -> context tokens [B, grid² + 1, D], spatial map, in/out features.

    Scene tokens: the scene map average-pooled to ``grid x grid``, projected to width D, plus a
    learned position embedding. Face token: the globally pooled face map, projected. The spatial
    map is a 1x1 convolution over the scene map with the face vector broadcast to every location
    (so each position knows the facing direction), resized to the heatmap size by the head.
    """

    def __init__(self, scene_channels: int, face_channels: int, context_dim: int, grid: int,
                 spatial_channels: int):
        super().__init__()
        self.grid = grid
        self.scene_proj = nn.Linear(scene_channels, context_dim)
        self.face_proj = nn.Linear(face_channels, context_dim)
        self.position = nn.Parameter(torch.zeros(1, grid * grid + 1, context_dim))
        nn.init.normal_(self.position, std=0.02)
        self.norm = nn.LayerNorm(context_dim)
        self.spatial = None
        if spatial_channels:
            self.spatial = nn.Sequential(
                nn.Conv2d(scene_channels + face_channels, 2 * spatial_channels, 1),
                nn.ReLU(inplace=True),
                nn.Conv2d(2 * spatial_channels, spatial_channels, 1),
            )
        self.inout_dim = scene_channels + face_channels

    def forward(self, scene: torch.Tensor, face_vec: torch.Tensor) -> Conditioning:
        """scene map [B, Cs, h, w], pooled face features [B, Cf] -> conditioning dict."""
        pooled = F.adaptive_avg_pool2d(scene, self.grid)
        tokens = torch.cat([
            self.scene_proj(rearrange(pooled, "b c h w -> b (h w) c")),
            self.face_proj(face_vec).unsqueeze(1),
        ], dim=1)
        out = {
            "context": self.norm(tokens + self.position),  # [B, grid² + 1, D]
            "inout_features": torch.cat([scene.mean(dim=(2, 3)), face_vec], dim=1),
        }
        if self.spatial is not None:
            face_map = face_vec[:, :, None, None].expand(-1, -1, *scene.shape[2:])
            out["spatial"] = self.spatial(torch.cat([scene, face_map], dim=1))
        return out


class DirectionField(nn.Module):
    """A gaze direction from the face features, and its field over the heatmap grid.

    After Lian et al. (ACCV 2018): at each heatmap pixel p, the cosine between the predicted
    direction d and the offset from the head centre h, relu((p - h)/|p - h| . d) ** gamma,
    one channel per gamma (larger gamma = narrower cone). It hands the denoiser *where* the
    person looks as a map, so the UNet only has to pick the salient object inside the cone.
    Coordinates are normalised like the protocol's points (pixel i <-> i / size).
    """

    def __init__(self, face_channels: int, gammas: list[float]):
        super().__init__()
        self.proj = nn.Linear(face_channels, 2)
        self.register_buffer("gammas", torch.tensor(gammas, dtype=torch.float32),
                             persistent=False)

    def forward(self, face_vec: torch.Tensor, head_box: torch.Tensor, size: int) -> tuple:
        direction = F.normalize(self.proj(face_vec), dim=1)  # [B, 2]
        head = box_centre(head_box)  # [B, 2], normalised xy
        axis = torch.arange(size, device=face_vec.device, dtype=face_vec.dtype) / size
        ys, xs = torch.meshgrid(axis, axis, indexing="ij")
        offset = torch.stack([xs, ys]).unsqueeze(0) - head[:, :, None, None]  # [B, 2, S, S]
        cosine = (F.normalize(offset, dim=1) * direction[:, :, None, None]).sum(1, keepdim=True)
        field = cosine.clamp(min=0) ** self.gammas.view(1, -1, 1, 1)  # [B, G, S, S]
        return direction, field


@dataclass
class ResNetPairConfig:
    """The ``model`` keys of the resnet_pair encoder (beside the scene and face ResNets')."""

    scene_stem_pool: bool = True  # the stem max-pool; off keeps 2x more resolution on small inputs
    scene_coord_channels: bool = True  # add x/y coordinate channels to the scene input
    scene_token_grid: int = 4  # scene features pooled to grid x grid context tokens
    spatial_channels: int = 8  # scene+face feature channels concatenated to the UNet input; 0 = off
    direction_field: bool = True  # gaze-direction field channels concatenated to the UNet input
    direction_gammas: list[float] = field(default_factory=lambda: [1.0, 8.0])  # cone sharpness


class ResNetPairEncoder(GazeEncoder):
    """Scene ResNet on RGB + head channel (+ coordinates), face ResNet (or GazeNet's
    MobileNetV2, which is then not a ResNet part) on the head crop."""

    name = "resnet_pair"
    PARTS = {"scene": ("scene",), "face": ("face",), "conditioner": ("conditioner", "direction")}
    RESNET_PARTS = ("scene", "face")
    CONFIG = ResNetPairConfig

    @classmethod
    def config_problem(cls, model_cfg, data_cfg) -> str | None:
        # the face branch is a backbone of the registry (model.face_backbone)
        problem = backbone_problem(model_cfg.face_backbone, model_cfg, data_cfg.face_size)
        return problem or super().config_problem(model_cfg, data_cfg)

    def __init__(self, model_cfg, data_cfg):
        super().__init__()
        self.output_size = data_cfg.output_size
        self.coords = model_cfg.scene_coord_channels
        self.scene = ResNet(model_cfg.scene_layers, model_cfg.scene_inplanes,
                            in_channels=4 + 2 * self.coords, block=model_cfg.block,
                            stem_pool=model_cfg.scene_stem_pool)
        # resnet (face_layers, block, face_inplanes), gazenet or vit (vit_size): each can
        # start from a gaze-estimation run of the same backbone (run.init_weights)
        self.face = build_backbone(model_cfg.face_backbone, model_cfg, data_cfg.face_size)
        self.conditioner = Conditioner(self.scene.out_channels, self.face.out_channels,
                                       model_cfg.context_dim, model_cfg.scene_token_grid,
                                       model_cfg.spatial_channels)
        self.direction = None
        if model_cfg.direction_field:
            self.direction = DirectionField(self.face.out_channels, model_cfg.direction_gammas)
        self.widths = ConditioningWidths(
            context=model_cfg.context_dim, inout=self.conditioner.inout_dim,
            spatial=model_cfg.spatial_channels,
            field=len(model_cfg.direction_gammas) if model_cfg.direction_field else 0)

    def forward(self, batch: dict) -> Conditioning:
        image = batch["image"]  # [B, 3, S, S]
        parts = [image, batch["head_channel"]]
        if self.coords:
            parts.append(coord_channels(image.shape[0], image.shape[-1], image.device,
                                        image.dtype))
        scene = self.scene(torch.cat(parts, dim=1))
        face_vec = self.face(batch["face"]).mean(dim=(2, 3))  # [B, Cf]
        cond = self.conditioner(scene, face_vec)
        if self.direction is not None:
            cond["direction"], cond["field"] = self.direction(
                face_vec, batch["head_box"], self.output_size)
        return cond


ENCODER = ResNetPairEncoder
