"""Temporal fusion of per-frame conditioning (``model.temporal: convlstm | attention``).

A clip's T frames go through the encoder once each (as one batch of B * T); then every
tensor of the Conditioning is fused over time into the last (target) frame's, before the
heatmap head and the in/out head read it:

- ``convlstm``: maps (the spatial map, the in/out maps) go through a ConvLSTM with 3x3
  kernels; tokens (the context the UNet attends to, pooled in/out features) through an
  LSTM per token (a 1x1 ConvLSTM), as Chong et al. (CVPR 2020) run a ConvLSTM over video;
- ``attention``: every token or map location of the target frame attends over the T frames
  at that place (multi-head, with a learned embedding of each frame's place in the clip).

Either adds its output to the target frame's features through a zero-initialised
projection, so a temporal model starts as the single-frame one and learns what time adds.

``chong`` is Chong et al.'s ModelSpatioTemporal (CVPR 2020), a different design: a 2-layer
ConvLSTM (``StackedConvLSTM``) between their decoder's compression and its deconvolutions
(``model.head: chong`` owns it, under their key names). It trains on clips from a zero state
and streams at evaluation and prediction: each track from its first frame, its state carried
from frame to frame (``GazeModel.encode``), as their evaluation runs a whole track.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gazefollow.following.models.conditioning import Conditioning


@dataclass
class TemporalConfig:
    """The ``model`` keys of video models (docs/video.md): ``temporal`` fuses each clip's
    per-frame conditioning (data.clip_length frames up to the target, data.frame_stride apart)."""

    temporal: str = "none"  # none | convlstm | attention | chong
    temporal_heads: int = 4  # attention's heads (1 where they do not divide a width)

    CHOICES = {"temporal": ("none", "convlstm", "attention", "chong")}


FRAME_KEYS = ("image", "head_channel", "face", "head_box", "depth")  # per-frame encoder inputs


def clip_inputs(batch: dict) -> tuple[dict, int, int]:
    """The clip's per-frame inputs (``clip_<key>`` [B, T, ...]) as one batch of B * T."""
    clip = batch["clip_image"]
    b, t = clip.shape[:2]
    flat = {key: batch[f"clip_{key}"].flatten(0, 1) for key in FRAME_KEYS
            if f"clip_{key}" in batch}
    return flat, b, t


class ConvLSTMCell(nn.Module):
    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.gates = nn.Conv2d(2 * channels, 4 * channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, state: tuple | None) -> tuple:
        h, c = state if state is not None else (torch.zeros_like(x), torch.zeros_like(x))
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class StackedConvLSTM(nn.Module):
    """Chong et al.'s ConvLSTM (their ``convolutional_rnn.Conv2dLSTM``, one direction): per
    layer ``weight_ih_l{k}`` / ``weight_hh_l{k}`` [4C, C, 3, 3] and their biases, the input
    and the hidden state convolved apart (zero padding 1) and summed, gates in the order
    input, forget, cell, output; dropout between layers while training."""

    def __init__(self, channels: int, layers: int, dropout: float = 0.5, kernel: int = 3):
        super().__init__()
        self.layers, self.dropout, self.padding = layers, dropout, kernel // 2
        shape = (4 * channels, channels, kernel, kernel)
        for k in range(layers):
            for kind in ("ih", "hh"):
                self.register_parameter(f"weight_{kind}_l{k}", nn.Parameter(torch.empty(shape)))
                self.register_parameter(f"bias_{kind}_l{k}", nn.Parameter(torch.empty(shape[0])))
        bound = 1 / channels ** 0.5  # their reset_parameters: uniform(-1/sqrt(C), 1/sqrt(C))
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def _conv(self, x: torch.Tensor, kind: str, k: int) -> torch.Tensor:
        return F.conv2d(x, getattr(self, f"weight_{kind}_l{k}"), getattr(self, f"bias_{kind}_l{k}"),
                        padding=self.padding)

    def step(self, x: torch.Tensor, state: list | None) -> tuple[torch.Tensor, list]:
        """One time step of [N, C, h, w] -> (the last layer's output, the new state: one
        (h, c) per layer); a None state is zeros."""
        new_state = []
        for k in range(self.layers):
            h, c = state[k] if state is not None else (torch.zeros_like(x),) * 2
            gates = self._conv(x, "ih", k) + self._conv(h, "hh", k)
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            new_state.append((h, c))
            x = F.dropout(h, self.dropout, self.training) if k < self.layers - 1 else h
        return x, new_state


class ConvLSTMFusion(nn.Module):
    """[B, T, C, h, w] (kernel 3) or [B, T, N, C] tokens (kernel 1) -> the last frame's."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.cell = ConvLSTMCell(channels, kernel)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        tokens = frames.dim() == 4  # [B, T, N, C] -> maps [B, T, C, N, 1]
        maps = frames.transpose(2, 3).unsqueeze(-1) if tokens else frames
        state = None
        for step in range(maps.shape[1]):
            state = self.cell(maps[:, step], state)
        fused = maps[:, -1] + self.out(state[0])
        return fused.squeeze(-1).transpose(1, 2) if tokens else fused


class AttentionFusion(nn.Module):
    """Each place of the last frame attends over its T frames: [B, T, N, C] or maps."""

    def __init__(self, channels: int, frames: int, heads: int):
        super().__init__()
        self.when = nn.Parameter(torch.zeros(frames, channels))
        self.norm = nn.LayerNorm(channels)
        self.attend = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        maps = frames.dim() == 5
        if maps:
            b, t, c, h, w = frames.shape
            frames = frames.flatten(3).transpose(2, 3)  # [B, T, h*w, C]
        b, t, n, c = frames.shape
        sequence = frames.permute(0, 2, 1, 3).reshape(b * n, t, c) + self.when[:t]
        sequence = self.norm(sequence)
        attended, _ = self.attend(sequence[:, -1:], sequence, sequence, need_weights=False)
        fused = frames[:, -1] + self.out(attended[:, 0]).view(b, n, c)
        return fused.transpose(1, 2).reshape(b, c, h, w) if maps else fused


def _shape_of(key: str, widths) -> tuple[int, str] | None:
    """(channels, "map" | "tokens") of a Conditioning entry, from the encoder's widths."""
    if key == "context":
        return widths.context, "tokens"
    if key == "inout_features":
        return widths.inout, "map" if widths.inout_grid else "tokens"
    if key == "spatial" and widths.spatial:
        return widths.spatial, "map"
    if key == "field" and widths.field:
        return widths.field, "map"
    return None


class TemporalFusion(nn.Module):
    """One fusion module per Conditioning entry the encoder makes."""

    KEYS = ("context", "inout_features", "spatial", "field")

    def __init__(self, kind: str, widths, clip_length: int, heads: int):
        super().__init__()
        self.fusers = nn.ModuleDict()
        for key in self.KEYS:
            shape = _shape_of(key, widths)
            if shape is None:
                continue
            channels, form = shape
            if kind == "convlstm":
                self.fusers[key] = ConvLSTMFusion(channels, 3 if form == "map" else 1)
            else:
                self.fusers[key] = AttentionFusion(channels, clip_length,
                                                   heads if channels % heads == 0 else 1)

    def forward(self, cond: Conditioning, b: int, t: int) -> Conditioning:
        fused = {}
        for key, value in cond.items():
            frames = value.view(b, t, *value.shape[1:])
            if key in self.fusers:
                frames = frames.unsqueeze(2) if frames.dim() == 3 else frames  # pooled: 1 token
                out = self.fusers[key](frames)
                fused[key] = out.squeeze(1) if value.dim() == 2 else out
            else:  # anything else (a predicted direction) is the last frame's
                fused[key] = frames[:, -1]
        return fused
