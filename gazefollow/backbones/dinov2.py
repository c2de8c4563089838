"""DINOv2 (Oquab et al. 2023) as a shared backbone, through transformers' ``Dinov2Model`` and
``Dinov2WithRegistersModel``: sizes small / base / large / giant (patch 14; ``tiny`` for
tests and CPU runs), optionally with 4 register tokens.

The module maps an ImageNet-normalised image [B, 3, S, S] (S a multiple of 14) to its patch
tokens after the final norm, as a map [B, D, S/14, S/14]: DINOv2's ``x_norm_patchtokens``,
the features Gaze-LLE reads. It is built for its input size: the released weights' 37 x 37
position grid (518 px) is resampled to the input's grid when the weights load, the way
DINOv2's own code resamples it at every forward (``dinov2_weights.py``), so no resampling
runs per image. Frozen by default (``model.freeze_backbone``); on a GPU it can run under
bfloat16 autocast (``model.dinov2_bf16``).

Weights (``model.backbone_weights``): a Hugging Face folder (``facebook/dinov2-base``:
``config.json`` + ``model.safetensors``), a model id where there is internet, or DINOv2's
own torch.hub file (``dinov2_vitb14_pretrain.pth`` ...), mapped key by key with a report.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from gazefollow.backbones.base import Backbone

PATCH = 14
# size: (width, blocks, heads); giant uses the SwiGLU MLP
DINOV2_SIZES = {"tiny": (32, 2, 2), "small": (384, 12, 6), "base": (768, 12, 12),
                "large": (1024, 24, 16), "giant": (1536, 40, 24)}
HUB_NAMES = {"small": "vits14", "base": "vitb14", "large": "vitl14", "giant": "vitg14"}


@dataclass
class DINOv2Config:
    """The ``model`` keys of the DINOv2 backbone."""

    dinov2_size: str = "base"  # tiny | small | base | large | giant (DINOV2_SIZES)
    dinov2_registers: int = 0  # 4: the _reg4 models (Dinov2WithRegistersModel)
    # a Hugging Face folder or model id, or DINOv2's torch.hub file; none: random weights
    backbone_weights: Optional[str] = None
    freeze_backbone: bool = True  # frozen features (not trained, not saved, not in the EMA)
    # on a GPU, run DINOv2 under bfloat16 autocast (features back in float32); a CPU ignores it
    dinov2_bf16: bool = False

    CHOICES = {"dinov2_size": tuple(DINOV2_SIZES), "dinov2_registers": (0, 4)}


def dinov2_hf_config(size: str, registers: int, image_size: int):
    """transformers' configuration of a DINOv2 of this size at this input size."""
    from transformers import Dinov2Config, Dinov2WithRegistersConfig  # slow to import

    width, blocks, heads = DINOV2_SIZES[size]
    common = dict(hidden_size=width, num_hidden_layers=blocks, num_attention_heads=heads,
                  patch_size=PATCH, image_size=image_size, mlp_ratio=4, layerscale_value=1.0,
                  layer_norm_eps=1e-6, use_swiglu_ffn=size == "giant", qkv_bias=True)
    if registers:
        return Dinov2WithRegistersConfig(num_register_tokens=registers, **common)
    return Dinov2Config(**common)


class DINOv2Features(nn.Module):
    """Patch tokens after the final norm as a map [B, D, S/14, S/14] (see the module
    docstring); ``out_channels`` = D."""

    def __init__(self, size: str, registers: int, image_size: int, bf16: bool = False):
        super().__init__()
        from transformers import Dinov2Model, Dinov2WithRegistersModel

        config = dinov2_hf_config(size, registers, image_size)
        self.model = (Dinov2WithRegistersModel if registers else Dinov2Model)(config)
        self.size, self.registers, self.image_size = size, registers, image_size
        self.grid = image_size // PATCH
        self.out_channels = config.hidden_size
        self.bf16 = bf16

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16 and image.is_cuda):
            tokens = self.model(pixel_values=image).last_hidden_state.float()
        patches = tokens[:, 1 + self.registers:]  # after the class and register tokens
        return patches.transpose(1, 2).reshape(len(image), -1, self.grid, self.grid)


def build_dinov2(model_cfg, image_size: int, log=print) -> DINOv2Features:
    """The backbone of ``model.dinov2_*`` at ``image_size``, its weights loaded from
    ``model.backbone_weights`` (reported), frozen with ``model.freeze_backbone``."""
    from gazefollow.backbones.dinov2_weights import load_dinov2_weights

    features = DINOv2Features(model_cfg.dinov2_size, model_cfg.dinov2_registers, image_size,
                              model_cfg.dinov2_bf16)
    if model_cfg.backbone_weights:
        load_dinov2_weights(features, model_cfg.backbone_weights,
                            trust_pickle=False, log=log)
    if model_cfg.freeze_backbone:
        features.requires_grad_(False)
    return features


def _dinov2_problem(model_cfg, image_size: int) -> str | None:
    if image_size % PATCH:
        return (f"DINOv2 cuts images into {PATCH} px patches: an input of {image_size} px is "
                f"not a multiple of {PATCH} (224 and 448 are)")
    return None


BACKBONE = Backbone("dinov2", build_dinov2, _dinov2_problem, config=DINOv2Config)
