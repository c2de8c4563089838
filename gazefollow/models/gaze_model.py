"""The full model: gaze part (encoders, conditioner, in/out head) + diffusion part (UNet)."""
from __future__ import annotations

import torch
from torch import nn

from gazefollow.models.denoiser import HeatmapDenoiser
from gazefollow.models.gaze_encoder import GazeEncoder


class InOutHead(nn.Module):
    """Pooled scene+face features [B, F] -> in-frame logit [B]."""

    def __init__(self, in_features: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(1)


class GazeDiffusionModel(nn.Module):
    """``encode`` runs once per sample; ``denoise`` runs once per diffusion step.

    The two parts are separate attributes so the optimiser can give each its own learning rate
    (``parameter_groups``) and either encoder can be frozen.
    """

    def __init__(self, model_cfg, output_size: int, out_channels: int = 1):
        super().__init__()
        self.gaze = GazeEncoder(model_cfg, output_size)
        self.inout_head = InOutHead(self.gaze.conditioner.inout_dim, model_cfg.inout_hidden)
        self.denoiser = HeatmapDenoiser(model_cfg, output_size, out_channels)
        self.frozen = [enc for enc, frozen in ((self.gaze.scene, model_cfg.freeze_scene),
                                               (self.gaze.face, model_cfg.freeze_face)) if frozen]
        for encoder in self.frozen:
            encoder.requires_grad_(False)

    def train(self, mode: bool = True):
        """Frozen encoders stay in eval mode, so their BatchNorm statistics do not drift."""
        super().train(mode)
        for encoder in self.frozen:
            encoder.eval()
        return self

    def encode(self, batch: dict) -> dict:
        """-> {"context" [B, N, D], "spatial" [B, C, h, w], "inout_logit" [B], ...}"""
        cond = self.gaze(batch)
        cond["inout_logit"] = self.inout_head(cond["inout_features"])
        return cond

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        """One denoiser call: x_t [B, 1, O, O], t [B] -> model output [B, 1, O, O]."""
        return self.denoiser(x_t, t, cond)

    def forward(self, batch: dict, x_t: torch.Tensor, t: torch.Tensor) -> tuple:
        """Training entry (one call, so DDP sees every used parameter): (model output, cond)."""
        cond = self.encode(batch)
        return self.denoise(x_t, t, cond), cond

    def parameter_groups(self, lr: float, gaze_lr: float | None) -> list[dict]:
        """The seed's split: diffusion part and gaze part, each with its own learning rate."""
        def trainable(module):
            return [p for p in module.parameters() if p.requires_grad]
        return [
            {"params": trainable(self.denoiser), "lr": lr, "name": "diffusion"},
            {"params": trainable(self.gaze) + trainable(self.inout_head),
             "lr": gaze_lr if gaze_lr is not None else lr, "name": "gaze"},
        ]


def build_model(config) -> GazeDiffusionModel:
    """The full model for a Config (heatmap size from data.output_size)."""
    return GazeDiffusionModel(config.model, config.data.output_size,
                              out_channels=config.model.unet_inout_channels)
