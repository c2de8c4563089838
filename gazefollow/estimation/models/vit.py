"""The ViT estimator (``model.estimator: vit``): UniGaze's recipe, an MAE-pretrained Vision
Transformer whose class token, after the final LayerNorm, goes through one linear layer to
pitch and yaw.

The transformer is Hugging Face ``transformers``' ``ViTModel`` (no torchvision, no timm), built
from ``model.vit_size``: ``b16`` (ViT-B/16), ``l16``, ``h14`` or ``tiny`` (for tests), at
``data.face_size`` (a multiple of the patch). LayerNorm eps is 1e-6, as in MAE and timm
(``ViTConfig``'s default is 1e-12). MAE checkpoints load through ``run.init_weights``
(``mae_keys.py``). ``model.vit_freeze_blocks: N`` freezes the embeddings and the first N
blocks; ``optim.layer_decay`` (below 1) gives layer-wise learning rates (``layer_ids``).

One difference from UniGaze: ``ViTModel`` has no stochastic depth (UniGaze's drop_path 0.1).
"""
from __future__ import annotations

import torch
from torch import nn

# size: (patch, hidden, layers, heads, MLP width)
VIT_SIZES = {"tiny": (16, 32, 2, 2, 64), "b16": (16, 768, 12, 12, 3072),
             "l16": (16, 1024, 24, 16, 4096), "h14": (14, 1280, 32, 16, 5120)}


def vit_config(size: str, image_size: int):
    from transformers import ViTConfig  # imported on use: it is slow to import

    patch, hidden, layers, heads, mlp = VIT_SIZES[size]
    return ViTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=mlp, patch_size=patch, image_size=image_size,
                     layer_norm_eps=1e-6, qkv_bias=True, hidden_act="gelu")


def vit_face_features(size: str, image_size: int) -> nn.Module:
    """A ViT as the gaze-following face branch (``model.face_backbone: vit``): ``ViTModel``'s
    own keys (so a ViT estimation run's ``backbone.*`` starts it), giving the class token as
    a 1 x 1 map [B, hidden, 1, 1], which the branch pools as it pools a ResNet's map."""
    from transformers import ViTModel

    class ViTFeatures(ViTModel):
        def forward(self, face: torch.Tensor) -> torch.Tensor:  # noqa: D401
            tokens = super().forward(pixel_values=face).last_hidden_state
            return tokens[:, 0, :, None, None]

    features = ViTFeatures(vit_config(size, image_size), add_pooling_layer=False)
    features.out_channels = features.config.hidden_size
    return features


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
