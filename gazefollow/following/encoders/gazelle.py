"""The ``gazelle`` encoder: Gaze-LLE's prompted scene tokens (Ryan et al., CVPR 2025) on a
frozen foundation backbone, delivering the conditioning contract, so Gaze-LLE's own decoder
(``model.head: gazelle``), the diffusion UNet and the regression head all sit on it.

The scene goes through the backbone once per distinct image of the batch (several people of
one image share its features). Its patch map [B, Db, g, g] is projected to ``gazelle_dim`` by
a 1x1 convolution, a fixed 2D sin/cos position encoding is added, and the person's head box,
drawn as a binary map on the g x g token grid (its corners rounded to the grid as Gaze-LLE
rounds them: half to even), times one learned embedding (``head_token``). With
``gazelle_inout_token`` a learned in/out token is put in front. Three transformer blocks
(pre-norm, dim 256, 8 heads, MLP ratio 4, stochastic depth 0.1) mix the tokens.

The conditioning: ``context`` the scene tokens after the blocks [B, g², D]; ``spatial`` the
same tokens as a map [B, D, g, g]; ``inout_features`` the in/out token after the blocks (the
mean scene token without one). Attribute names follow the released decoder files
(``linear``, ``head_token``, ``inout_token``, ``transformer.<i>.attn.qkv`` ...), so they load
by their key names (``following/published/gazelle.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gazefollow.backbones import backbone_problem, build_backbone
from gazefollow.following.encoders.base import GazeEncoder
from gazefollow.following.models.conditioning import Conditioning, ConditioningWidths


@dataclass
class GazelleConfig:
    """The ``model`` keys of the gazelle encoder (beside its backbone's, e.g. ``dinov2_*``)."""

    gazelle_backbone: str = "dinov2"  # the scene backbone (backbones/): a patch-token map
    gazelle_dim: int = 256  # token width of the decoder
    gazelle_layers: int = 3  # transformer blocks
    gazelle_heads: int = 8
    gazelle_mlp_ratio: float = 4.0
    gazelle_drop_path: float = 0.1  # stochastic depth of every block (training only)
    # LayerNorm eps of the blocks: 1e-5 is torch's nn.LayerNorm, the norm timm's Block used
    # when Gaze-LLE was trained and released
    gazelle_norm_eps: float = 1e-5
    gazelle_inout_token: bool = False  # a learned in/out token (the _inout models)

    CHOICES = {"gazelle_backbone": ("dinov2",)}


def sincos_position_map(dim: int, height: int, width: int) -> torch.Tensor:
    """The fixed 2D position encoding [dim, height, width] Gaze-LLE adds to its tokens: the
    first half of the channels encode the column (sin at even, cos at odd channels), the
    second half the row, with frequencies 10000^(-2i / (dim / 2))."""
    if dim % 4:
        raise ValueError(f"a 2D sin/cos position encoding needs a width divisible by 4, not {dim}")
    half = dim // 2
    frequencies = torch.exp(torch.arange(0.0, half, 2) * -(math.log(10000.0) / half))
    columns = torch.arange(0.0, width)[:, None] * frequencies  # [W, half / 2]
    rows = torch.arange(0.0, height)[:, None] * frequencies  # [H, half / 2]
    encoding = torch.zeros(dim, height, width)
    encoding[0:half:2] = columns.sin().t()[:, None, :].expand(-1, height, -1)
    encoding[1:half:2] = columns.cos().t()[:, None, :].expand(-1, height, -1)
    encoding[half::2] = rows.sin().t()[:, :, None].expand(-1, -1, width)
    encoding[half + 1::2] = rows.cos().t()[:, :, None].expand(-1, -1, width)
    return encoding


def head_box_maps(head_box: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Normalised xyxy boxes [B, 4] -> binary maps [B, height, width]: 1 on rows
    round(y1 h) .. round(y2 h) - 1 and columns round(x1 w) .. round(x2 w) - 1 (rounded half
    to even, in float64, as Python's ``round`` in Gaze-LLE)."""
    scale = torch.tensor([width, height, width, height], dtype=torch.float64,
                         device=head_box.device)
    x1, y1, x2, y2 = torch.round(head_box.double() * scale).long().unbind(1)
    rows = torch.arange(height, device=head_box.device)
    columns = torch.arange(width, device=head_box.device)
    inside_rows = (rows[None] >= y1[:, None]) & (rows[None] < y2[:, None])
    inside_columns = (columns[None] >= x1[:, None]) & (columns[None] < x2[:, None])
    return (inside_rows[:, :, None] & inside_columns[:, None, :]).float()


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: each sample's residual branch dropped with probability ``rate`` (the
    kept ones scaled by 1 / (1 - rate)); the identity at evaluation."""
    if not training or rate == 0.0:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1 / sqrt(head width)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class TokenBlock(nn.Module):
    """A pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)), each branch
    under stochastic depth."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, drop_path_rate: float,
                 eps: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.attn = SelfAttention(dim, heads)
        self.mlp = MLP(dim, int(dim * mlp_ratio))
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path_rate, self.training)


def per_distinct_image(backbone: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The backbone's features of each sample, computed once per distinct image (people of
    one image come as copies of it)."""
    if image.shape[0] == 1:
        return backbone(image)
    distinct, which = torch.unique(image.flatten(1), dim=0, return_inverse=True)
    if distinct.shape[0] == image.shape[0]:
        return backbone(image)
    return backbone(distinct.view(-1, *image.shape[1:]))[which]


class GazelleEncoder(GazeEncoder):
    """See the module docstring."""

    name = "gazelle"
    PARTS = {"scene": ("backbone",), "decoder": ("linear", "head_token", "transformer"),
             "inout_token": ("inout_token",)}
    CONFIG = GazelleConfig

    @classmethod
    def config_problem(cls, model_cfg, data_cfg) -> str | None:
        problem = backbone_problem(model_cfg.gazelle_backbone, model_cfg, data_cfg.input_size)
        if problem is None and model_cfg.gazelle_dim % model_cfg.gazelle_heads:
            problem = (f"model.gazelle_dim ({model_cfg.gazelle_dim}) must be a multiple of "
                       f"model.gazelle_heads ({model_cfg.gazelle_heads})")
        return problem or super().config_problem(model_cfg, data_cfg)

    def __init__(self, model_cfg, data_cfg):
        super().__init__()
        dim = model_cfg.gazelle_dim
        self.backbone = build_backbone(model_cfg.gazelle_backbone, model_cfg, data_cfg.input_size)
        self.grid = self.backbone.grid
        self.linear = nn.Conv2d(self.backbone.out_channels, dim, 1)
        self.head_token = nn.Embedding(1, dim)
        self.register_buffer("pos_embed", sincos_position_map(dim, self.grid, self.grid))
        self.inout_token = nn.Embedding(1, dim) if model_cfg.gazelle_inout_token else None
        self.transformer = nn.Sequential(*[
            TokenBlock(dim, model_cfg.gazelle_heads, model_cfg.gazelle_mlp_ratio,
                       model_cfg.gazelle_drop_path, model_cfg.gazelle_norm_eps)
            for _ in range(model_cfg.gazelle_layers)])
        self.widths = ConditioningWidths(context=dim, inout=dim, spatial=dim)

    def forward(self, batch: dict) -> Conditioning:
        features = per_distinct_image(self.backbone, batch["image"])
        x = self.linear(features) + self.pos_embed
        head = head_box_maps(batch["head_box"], self.grid, self.grid).to(x.dtype)
        x = x + head[:, None] * self.head_token.weight.view(1, -1, 1, 1)
        tokens = x.flatten(2).transpose(1, 2)  # [B, g², D], row by row
        if self.inout_token is not None:
            first = self.inout_token.weight.expand(tokens.shape[0], 1, -1)
            tokens = torch.cat([first, tokens], dim=1)
        tokens = self.transformer(tokens)
        if self.inout_token is not None:
            inout, tokens = tokens[:, 0], tokens[:, 1:]
        else:
            inout = tokens.mean(dim=1)
        spatial = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, self.grid, self.grid)
        return {"context": tokens, "spatial": spatial, "inout_features": inout}


ENCODER = GazelleEncoder
