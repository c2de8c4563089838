"""The ViT estimator (``estimation.estimator: vit``): UniGaze's recipe, an MAE-pretrained Vision
Transformer whose class token, after the final LayerNorm, goes through one linear layer to
pitch and yaw.

The transformer is Hugging Face ``transformers``' ``ViTModel`` (no torchvision, no timm), built
from ``model.vit_size``: ``b16`` (ViT-B/16), ``l16``, ``h14`` or ``tiny`` (for tests), at
``data.face_size`` (a multiple of the patch). LayerNorm eps is 1e-6, as in MAE and timm
(``ViTConfig``'s default is 1e-12). MAE checkpoints load through ``run.init_weights``
(``mae_keys.py``). ``estimation.vit_freeze_blocks: N`` freezes the embeddings and the first N
blocks; ``optim.layer_decay`` (below 1) gives layer-wise learning rates (``layer_ids``).

One difference from UniGaze: ``ViTModel`` has no stochastic depth (UniGaze's drop_path 0.1).
"""
from __future__ import annotations

import torch
from torch import nn

from gazefollow.backbones.vit import vit_config


class ViTGaze(nn.Module):
    """face [B, 3, S, S] (ImageNet-normalised RGB) -> [B, 2] pitch, yaw."""

    def __init__(self, size: str, image_size: int, freeze_blocks: int = 0):
        super().__init__()
        from transformers import ViTModel

        self.backbone = ViTModel(vit_config(size, image_size), add_pooling_layer=False)
        self.head = nn.Linear(self.backbone.config.hidden_size, 2)
        self.num_layers = self.backbone.config.num_hidden_layers
        if freeze_blocks:
            frozen = [self.backbone.embeddings, *self.backbone.layers[:freeze_blocks]]
            for module in frozen:
                module.requires_grad_(False)

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone(pixel_values=face).last_hidden_state  # after the final norm
        return self.head(tokens[:, 0])

    def layer_ids(self) -> tuple[dict[int, int], int]:
        """({parameter id: layer}, L + 1) for layer-wise decay, as MAE counts layers: the
        embeddings 0, block i i + 1, the final norm and the head L + 1 (the full rate)."""
        ids = {}
        for name, parameter in self.named_parameters():
            if name.startswith("backbone.embeddings."):
                ids[id(parameter)] = 0
            elif name.startswith("backbone.layers."):
                ids[id(parameter)] = int(name.split(".")[2]) + 1
            else:
                ids[id(parameter)] = self.num_layers + 1
        return ids, self.num_layers + 1
