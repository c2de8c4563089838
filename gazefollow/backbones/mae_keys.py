"""MAE checkpoints in the ViT estimator's names (``run.init_weights``, format ``mae``).

An MAE pre-training checkpoint (``mae_b16_checkpoint-299.pth``: ``{"model": state dict,
"optimizer", "epoch", ...}``) holds timm's ViT names. Each goes to ``transformers``' ViTModel
(the names of transformers 5.x: ``layers.i.attention.q_proj`` ..., where 4.x had
``encoder.layer.i.attention.attention.query``) under ``backbone.``:

- ``cls_token``, ``pos_embed`` -> ``backbone.embeddings.cls_token``, ``.position_embeddings``
  (the patch grid resized, bicubic, to the model's; the class row kept);
- ``patch_embed.proj.*`` -> ``backbone.embeddings.patch_embeddings.projection.*``;
- ``blocks.i.norm1.*``, ``norm2.*`` -> ``backbone.layers.i.layernorm_before.*``,
  ``layernorm_after.*``;
- ``blocks.i.attn.qkv.*`` -> split in three blocks of rows: ``...attention.q_proj.*``,
  ``k_proj.*``, ``v_proj.*``; ``blocks.i.attn.proj.*`` -> ``...attention.o_proj.*``;
- ``blocks.i.mlp.fc1.*``, ``fc2.*`` -> ``...mlp.fc1.*``, ``...mlp.fc2.*``;
- ``norm.*`` -> ``backbone.layernorm.*``.

The pre-training decoder (``decoder_*``, ``mask_token``), a classifier (``head.*``) and the
global-pool norm of fine-tuned files (``fc_norm.*``, applied to mean-pooled tokens, which
this class-token model does not use) are dropped and listed. Any other key keeps its name and
is reported as unexpected.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

DROPPED = ("decoder_", "mask_token", "head.", "fc_norm.")
TOP = {"cls_token": "embeddings.cls_token", "pos_embed": "embeddings.position_embeddings",
       "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
       "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
       "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}
BLOCK = {"norm1": "layernorm_before", "norm2": "layernorm_after",
         "attn.proj": "attention.o_proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
BLOCK_KEY = re.compile(r"blocks\.(\d+)\.(.+)\.(weight|bias)")


def is_mae(keys: list[str]) -> bool:
    return "patch_embed.proj.weight" in keys and any(k.startswith("blocks.") for k in keys)


def resize_positions(table: torch.Tensor, length: int) -> torch.Tensor:
    """[1, 1 + g*g, C] -> [1, length, C]: the class row kept, the g x g grid resized
    (bicubic, as MAE's interpolate_pos_embed) to the model's grid."""
    if table.shape[1] == length:
        return table
    old, new = math.isqrt(table.shape[1] - 1), math.isqrt(length - 1)
    grid = table[:, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return torch.cat([table[:, :1], grid.permute(0, 2, 3, 1).reshape(1, new * new, -1)
                      .to(table.dtype)], dim=1)


def mae_to_vit(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
               prefix: str = "backbone.") -> tuple[dict[str, torch.Tensor], list[str]]:
    """-> ({model key: tensor}, the file keys dropped on purpose). ``own``: the model's state
    dict, for the position table's length."""
    out, dropped = {}, []
    for key, value in state.items():
        if key.startswith(DROPPED):
            dropped.append(key)
        elif key in TOP:
            out[prefix + TOP[key]] = value
        elif (match := BLOCK_KEY.fullmatch(key)) and match[2] == "attn.qkv":
            layer = f"{prefix}layers.{match[1]}.attention."
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{layer}{name}.{match[3]}"] = part.clone()
        elif match and match[2] in BLOCK:
            out[f"{prefix}layers.{match[1]}.{BLOCK[match[2]]}.{match[3]}"] = value
        else:
            out[key] = value  # no place in the model: reported as unexpected
    positions = prefix + TOP["pos_embed"]
    if positions in out and positions in own:
        out[positions] = resize_positions(out[positions], own[positions].shape[1])
    return out, dropped
