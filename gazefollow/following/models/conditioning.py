"""The conditioning contract between a gaze encoder and a heatmap head, declared once.

An encoder (``gazefollow/following/encoders/``) turns a batch into a ``Conditioning`` and
reports its widths as ``ConditioningWidths``; heads and the in/out head size themselves from
those widths, never from the config a second time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import torch
import torch.nn.functional as F

# The loss terms' key of the head's predicted heatmap [B, 1, O, O] (with its gradient), which
# the objective's point and KL losses read and never log.
PREDICTED_HEATMAP = "predicted_heatmap"


class _Required(TypedDict):
    context: torch.Tensor  # [B, N, D] tokens the UNet cross-attends to
    # [B, F] pooled features for the in/out head, or [B, F, g, g] maps (widths.inout_grid = g)
    inout_features: torch.Tensor


class Conditioning(_Required, total=False):
    """What an encoder returns (a dict at run time, so DDP, autocast and torch.compile see
    plain tensors). Optional maps are concatenated to the head's input per pixel."""

    spatial: torch.Tensor  # [B, C, h, w] feature map, resized to the heatmap by the head
    direction: torch.Tensor  # [B, 2] predicted gaze direction (unit, normalised image xy)
    field: torch.Tensor  # [B, G, O, O] direction field at the heatmap size
    inout_logit: torch.Tensor  # [B], added by the model from ``inout_features``
    # [B, C, h, w]: Chong et al.'s ConvLSTM output (model.temporal=chong), added by the model
    recurrent: torch.Tensor


@dataclass(frozen=True)
class ConditioningWidths:
    """The sizes of a Conditioning, reported by the encoder that makes it."""

    context: int  # D
    inout: int  # F
    inout_grid: int = 0  # g when inout_features are maps (the Chong-style in/out head)
    spatial: int = 0  # C; 0 = no spatial map
    field: int = 0  # G; 0 = no direction field

    @property
    def map_channels(self) -> int:
        """Channels of ``conditioning_maps``: the spatial map with 2 coordinate maps, and
        the direction field."""
        return (self.spatial + 2 if self.spatial else 0) + self.field


def coord_channels(batch: int, size: int, device, dtype) -> torch.Tensor:
    """x and y coordinates in [-1, 1] as two maps [B, 2, size, size]."""
    axis = torch.linspace(-1, 1, size, device=device, dtype=dtype)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xs, ys]).unsqueeze(0).expand(batch, -1, -1, -1)


def box_centre(head_box: torch.Tensor) -> torch.Tensor:
    """Centre (x, y) of normalised xyxy head boxes [B, 4] -> [B, 2]."""
    return (head_box[:, :2] + head_box[:, 2:]) / 2


def conditioning_maps(cond: Conditioning, like: torch.Tensor) -> list[torch.Tensor]:
    """The per-pixel conditioning at the heatmap size of ``like`` [B, C, O, O]: the spatial
    map resized to it with two coordinate maps, and the direction field
    (``ConditioningWidths.map_channels`` channels in all)."""
    maps = []
    if "spatial" in cond:
        size = like.shape[-1]
        spatial = F.interpolate(cond["spatial"], size=(size, size), mode="bilinear",
                                align_corners=False)
        maps += [spatial.to(like.dtype), coord_channels(like.shape[0], size, like.device,
                                                        like.dtype)]
    if "field" in cond:
        maps.append(cond["field"].to(like.dtype))
    return maps
