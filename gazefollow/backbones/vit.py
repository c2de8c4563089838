"""The ViT backbone (transformers' ``ViTModel``, MAE / UniGaze sizes): its configuration by
size, and the class-token feature map the gaze-following face branch uses."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gazefollow.backbones.base import Backbone

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


@dataclass
class ViTConfig:
    """The ``model`` key of the ViT (estimator vit, gaze following's face_backbone=vit)."""

    vit_size: str = "b16"  # tiny | b16 | l16 | h14 (VIT_SIZES)

    CHOICES = {"vit_size": tuple(VIT_SIZES)}


def _vit_problem(model_cfg, image_size: int) -> str | None:
    patch = VIT_SIZES[model_cfg.vit_size][0]
    if image_size % patch:
        return (f"model.face_backbone=vit cuts faces into {patch} px patches: "
                f"data.face_size={image_size} is not a multiple of {patch}")
    return None


# model.vit_size at data.face_size
BACKBONE = Backbone("vit", lambda model_cfg, image_size: vit_face_features(
    model_cfg.vit_size, image_size), _vit_problem, config=ViTConfig)
