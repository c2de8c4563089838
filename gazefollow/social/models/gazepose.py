"""GazePose: GazeLSTM plus pose priors read by cross-attention over the key frame's features.

Beside GazeLSTM's temporal branch, the middle (key) frame's last ResNet map, projected to
``lam.gazepose_dmodel`` with sine position embeddings, is the memory of a transformer
(``gazepose_encoder_layers`` encoder and ``gazepose_decoder_layers`` decoder layers,
``gazepose_heads`` heads, pre-norm). Eight queries read it:

- three head-pose queries: with ``lam.gazepose_head_prior``, the embeddings of the key
  frame's |yaw|, |pitch| and |roll| binned every ``gazepose_split`` degrees (90 / split + 1
  bins each, GazePose's tables); without, three learned vectors;
- five landmark queries: with ``lam.gazepose_landmark_prior``, for each of the five points
  the embedding of its cell on a ``gazepose_dsplit`` grid over [-2, 2]^2 (x and y relative to
  the eyes' middle, in crop sizes) joined with the embedding of its visibility binned every
  ``gazepose_csplit``; without, five learned vectors.

The queries are added to learned target embeddings (once, at the input; GazePose's DETR
decoder adds them in every layer). The eight outputs, flattened, go through ``fusion_layer``
to 2F, are joined with the LSTM's 2F, then ``combine_layer`` (4F -> F) and ``last_layer``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from gazefollow.social.models.gazelstm import GazeLSTM

HEAD_QUERIES, LANDMARK_QUERIES = 3, 5


def sine_positions(height: int, width: int, dim: int, device) -> torch.Tensor:
    """DETR's normalised sine embedding of a height x width grid -> [h * w, dim]."""
    quarter = dim // 4
    scale = 2 * math.pi
    ys = (torch.arange(1, height + 1, device=device, dtype=torch.float32) / height) * scale
    xs = (torch.arange(1, width + 1, device=device, dtype=torch.float32) / width) * scale
    freqs = 10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    y = ys[:, None] / freqs  # [h, q]
    x = xs[:, None] / freqs
    y = torch.cat([y.sin(), y.cos()], dim=1)[:, None].expand(height, width, 2 * quarter)
    x = torch.cat([x.sin(), x.cos()], dim=1)[None].expand(height, width, 2 * quarter)
    return torch.cat([y, x], dim=2).reshape(height * width, 4 * quarter)


def pose_bins(head_pose: torch.Tensor, split: float) -> torch.Tensor:
    """[B, 3] yaw, pitch, roll (degrees) -> the bin of each |angle| (90 degrees at most)."""
    return torch.floor(head_pose.abs().clamp(max=90) / split).long()


def landmark_cells(vector: torch.Tensor, dsplit: float, csplit: float) -> tuple:
    """[B, 15] (x 5, y 5, visibility 5) -> (grid cell [B, 5], visibility bin [B, 5])."""
    lines = int(round(4 / dsplit)) + 1
    x, y, c = vector[:, :5], vector[:, 5:10], vector[:, 10:]
    col = torch.floor((x.clamp(-2, 2) + 2) / dsplit).long().clamp(max=lines - 1)
    row = torch.floor((y.clamp(-2, 2) + 2) / dsplit).long().clamp(max=lines - 1)
    bins = int(round(1 / csplit))
    return col * lines + row, torch.floor(c.clamp(0, 1) / csplit).long().clamp(max=bins)


class GazePose(GazeLSTM):
    def __init__(self, model_cfg, lam_cfg):
        super().__init__(model_cfg, lam_cfg)
        cfg, width, d = lam_cfg, lam_cfg.feature_dim, lam_cfg.gazepose_dmodel
        self.cfg = cfg
        if cfg.gazepose_head_prior:
            bins = int(90 / cfg.gazepose_split) + 1
            self.pose_embed = nn.ModuleList(nn.Embedding(bins, d) for _ in range(HEAD_QUERIES))
        else:
            self.head_query = nn.Parameter(torch.randn(HEAD_QUERIES, d))
        if cfg.gazepose_landmark_prior:
            lines = int(round(4 / cfg.gazepose_dsplit)) + 1
            self.cell_embed = nn.Embedding(lines * lines, d // 2)
            self.seen_embed = nn.Embedding(int(round(1 / cfg.gazepose_csplit)) + 1, d - d // 2)
        else:
            self.landmark_query = nn.Parameter(torch.randn(LANDMARK_QUERIES, d))
        self.target = nn.Parameter(torch.randn(HEAD_QUERIES + LANDMARK_QUERIES, d))
        self.input_proj = nn.Conv2d(self.base_model.out_channels, d, kernel_size=1)
        layer = dict(d_model=d, nhead=cfg.gazepose_heads, dim_feedforward=cfg.gazepose_feedforward,
                     dropout=0.1, batch_first=True, norm_first=True)
        # pre-norm layers, each stack closed by a LayerNorm (DETR's normalize_before)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer),
                                             cfg.gazepose_encoder_layers, norm=nn.LayerNorm(d),
                                             enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer),
                                             cfg.gazepose_decoder_layers, norm=nn.LayerNorm(d))
        self.fusion_layer = nn.Linear((HEAD_QUERIES + LANDMARK_QUERIES) * d, 2 * width)
        self.combine_layer = nn.Linear(4 * width, width)
        self.last_layer = nn.Linear(width, 2)

    def queries(self, batch: dict, count: int) -> torch.Tensor:
        if self.cfg.gazepose_head_prior:
            bins = pose_bins(batch["head_pose"], self.cfg.gazepose_split)
            head = torch.stack([embed(bins[:, i]) for i, embed in enumerate(self.pose_embed)], 1)
        else:
            head = self.head_query.expand(count, -1, -1)
        if self.cfg.gazepose_landmark_prior:
            cells, seen = landmark_cells(batch["landmarks"], self.cfg.gazepose_dsplit,
                                         self.cfg.gazepose_csplit)
            marks = torch.cat([self.cell_embed(cells), self.seen_embed(seen)], dim=2)
        else:
            marks = self.landmark_query.expand(count, -1, -1)
        return torch.cat([head, marks], dim=1) + self.target

    def forward(self, batch: dict) -> torch.Tensor:
        temporal, key_map = self.temporal(batch)
        memory = self.input_proj(key_map)
        b, d, h, w = memory.shape
        memory = memory.flatten(2).transpose(1, 2) + sine_positions(h, w, d, memory.device)
        decoded = self.decoder(self.queries(batch, b), self.encoder(memory))
        fused = self.fusion_layer(decoded.flatten(1))
        return self.last_layer(self.combine_layer(torch.cat([temporal, fused], dim=1)))
