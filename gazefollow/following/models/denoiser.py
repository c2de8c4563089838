"""The diffusion head's network: a diffusers ``UNet2DConditionModel`` over gaze heatmaps."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from torch import nn

from gazefollow.following.models.conditioning import (Conditioning, ConditioningWidths,
                                                      conditioning_maps)


@dataclass
class UNetConfig:
    """The ``model`` keys of the heatmap heads' UNet (the regression decoder uses its width
    and norm groups)."""

    unet_inout_channels: int = 1  # heatmap channels denoised by the UNet
    unet_inplanes: int = 32
    unet_multipliers: list[int] = field(default_factory=lambda: [1, 2, 4])
    unet_attention_levels: list[int] = field(default_factory=lambda: [2])  # levels with cross-attn
    unet_layers_per_block: int = 1  # unet_residual
    # the UNet runs at output_size / unet_patch_size: pixel-unshuffle in, pixel-shuffle out
    # (4x fewer positions at 2, where most of its cost was; docs/predict.md, Speed)
    unet_patch_size: int = 2
    unet_heads: int = 4
    unet_transformer_layers: int = 1
    unet_dropout: float = 0.0
    unet_norm_groups: int = 16
    unet_scale_shift_norm: bool = False  # time embedding as scale and shift (ADM's option)

    STORED_DEFAULTS = {"unet_patch_size": 1}  # the UNets before the key ran at full resolution


class HeatmapDenoiser(nn.Module):
    """UNet over [x_t, spatial conditioning, x/y coordinates, direction field], cross-attending
    to the context tokens.

    The per-pixel conditioning (``conditioning_maps``) is concatenated to the noisy heatmap: a
    prototype of the synthetic task found that cross-attention tokens alone learn *where*
    very slowly. Levels listed in ``unet_attention_levels`` (0 = highest resolution) get
    cross-attention blocks; the mid block always has one.

    With ``unet_patch_size`` p > 1 the UNet sees the input folded into p x p patches
    (pixel-unshuffle: p*p times the channels at 1/p the size) and its output is unfolded back:
    every level then costs p*p times less, and no input pixel is thrown away.
    """

    def __init__(self, model_cfg, output_size: int, out_channels: int,
                 widths: ConditioningWidths):
        super().__init__()
        cfg = model_cfg
        channels = tuple(cfg.unet_inplanes * m for m in cfg.unet_multipliers)
        attention = set(cfg.unet_attention_levels)
        self.patch = cfg.unet_patch_size
        area = self.patch ** 2
        down = tuple("CrossAttnDownBlock2D" if lvl in attention else "DownBlock2D"
                     for lvl in range(len(channels)))
        up = tuple("CrossAttnUpBlock2D" if lvl in attention else "UpBlock2D"
                   for lvl in reversed(range(len(channels))))
        self.unet = UNet2DConditionModel(
            sample_size=output_size // self.patch,
            in_channels=(cfg.unet_inout_channels + widths.map_channels) * area,
            out_channels=out_channels * area,
            down_block_types=down,
            up_block_types=up,
            block_out_channels=channels,
            layers_per_block=cfg.unet_layers_per_block,
            cross_attention_dim=widths.context,
            attention_head_dim=cfg.unet_heads,  # diffusers' name for the number of heads here
            transformer_layers_per_block=cfg.unet_transformer_layers,
            dropout=cfg.unet_dropout,
            norm_num_groups=cfg.unet_norm_groups,
            # ADM's use_scale_shift_norm: the time embedding scales and shifts the normalised
            # features instead of being added to them
            resnet_time_scale_shift="scale_shift" if cfg.unet_scale_shift_norm else "default",
        )

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """x_t [B, C, O, O], t [B] (training timesteps) -> model output [B, C_out, O, O]."""
        inputs = torch.cat([x_t, *conditioning_maps(cond, x_t)], dim=1)
        if self.patch > 1:
            inputs = F.pixel_unshuffle(inputs, self.patch)
        out = self.unet(inputs, t, encoder_hidden_states=cond["context"]).sample
        return F.pixel_shuffle(out, self.patch) if self.patch > 1 else out
