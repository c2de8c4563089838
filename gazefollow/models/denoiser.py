"""The diffusion part: a diffusers ``UNet2DConditionModel`` that denoises gaze heatmaps."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from torch import nn

from gazefollow.models.gaze_encoder import coord_channels


def conditioning_channels(model_cfg) -> int:
    """Channels of ``conditioning_maps``: spatial features + 2 coordinates, direction field."""
    channels = model_cfg.spatial_channels + 2 if model_cfg.spatial_channels else 0
    return channels + (len(model_cfg.direction_gammas) if model_cfg.direction_field else 0)


def conditioning_maps(cond: dict, like: torch.Tensor, spatial_channels: int) -> list:
    """The per-pixel conditioning at the heatmap size of ``like`` [B, C, O, O]: the spatial
    scene+face features resized to it with two coordinate maps, and the direction field."""
    maps = []
    if spatial_channels:
        size = like.shape[-1]
        spatial = F.interpolate(cond["spatial"], size=(size, size), mode="bilinear",
                                align_corners=False)
        maps += [spatial.to(like.dtype), coord_channels(like.shape[0], size, like.device,
                                                        like.dtype)]
    if "field" in cond:
        maps.append(cond["field"].to(like.dtype))
    return maps


class HeatmapDenoiser(nn.Module):
    """UNet over [x_t, spatial conditioning, x/y coordinates, direction field], cross-attending
    to the tokens.

    The spatial conditioning (when ``spatial_channels`` > 0) is resized to the heatmap size and
    concatenated to the noisy heatmap, with two coordinate maps: DESIGN.md §7 found that
    cross-attention tokens alone learn *where* very slowly. Levels listed in
    ``unet_attention_levels`` (0 = highest resolution) get cross-attention blocks; the mid block
    always has one.
    """

    def __init__(self, model_cfg, output_size: int, out_channels: int):
        super().__init__()
        cfg = model_cfg
        self.spatial_channels = cfg.spatial_channels
        extra = conditioning_channels(cfg)
        widths = tuple(cfg.unet_inplanes * m for m in cfg.unet_multipliers)
        attention = set(cfg.unet_attention_levels)
        down = tuple("CrossAttnDownBlock2D" if lvl in attention else "DownBlock2D"
                     for lvl in range(len(widths)))
        up = tuple("CrossAttnUpBlock2D" if lvl in attention else "UpBlock2D"
                   for lvl in reversed(range(len(widths))))
        self.unet = UNet2DConditionModel(
            sample_size=output_size,
            in_channels=cfg.unet_inout_channels + extra,
            out_channels=out_channels,
            down_block_types=down,
            up_block_types=up,
            block_out_channels=widths,
            layers_per_block=cfg.unet_layers_per_block,
            cross_attention_dim=cfg.context_dim,
            attention_head_dim=cfg.unet_heads,  # diffusers' name for the number of heads here
            transformer_layers_per_block=cfg.unet_transformer_layers,
            dropout=cfg.unet_dropout,
            norm_num_groups=cfg.unet_norm_groups,
        )

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        """x_t [B, C, O, O], t [B] (training timesteps) -> model output [B, C_out, O, O]."""
        inputs = [x_t, *conditioning_maps(cond, x_t, self.spatial_channels)]
        return self.unet(torch.cat(inputs, dim=1), t,
                         encoder_hidden_states=cond["context"]).sample
