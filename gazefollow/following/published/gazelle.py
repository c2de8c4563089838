"""Gaze-LLE's released decoder files (fkryan/gazelle, v1.0.0): ``gazelle_dinov2_vitb14.pt``,
``gazelle_dinov2_vitl14.pt`` (GazeFollow) and their ``_inout`` versions (GazeFollow ->
VideoAttentionTarget). Each is a plain state dict of the decoder alone (the DINOv2 backbone
comes from ``model.backbone_weights``):

- ``linear.{weight,bias}`` [256, Db, 1, 1]: Db = 768 (ViT-B/14) or 1024 (ViT-L/14);
- ``head_token.weight`` [1, 256], ``pos_embed`` [256, 32, 32] (the fixed sin/cos buffer);
- ``transformer.<i>.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`` (timm's Block);
- ``heatmap_head.0.{weight,bias}`` (ConvTranspose2d), ``heatmap_head.1.weight`` (1x1 conv);
- ``_inout`` only: ``inout_token.weight`` [1, 256], ``inout_head.{0,3}.{weight,bias}``.

The encoder and head keep these attribute names, so the keys move by a prefix.
"""
from __future__ import annotations

import torch

DECODER_KEYS = ("linear.weight", "head_token.weight", "heatmap_head.0.weight",
                "transformer.0.attn.qkv.weight")
BACKBONE_WIDTHS = {768: "vitb14", 1024: "vitl14"}
PREFIXES = {"linear.": "gaze.linear.", "head_token.": "gaze.head_token.",
            "inout_token.": "gaze.inout_token.", "transformer.": "gaze.transformer.",
            "pos_embed": "gaze.pos_embed", "heatmap_head.": "head.heatmap_head.",
            "inout_head.": "inout_head.net."}


def is_gazelle_file(state) -> bool:
    return isinstance(state, dict) and all(key in state for key in DECODER_KEYS)


def gazelle_name(state: dict) -> str:
    """The released model a decoder state dict is, e.g. "gazelle_dinov2_vitb14_inout"."""
    width = state["linear.weight"].shape[1]
    if width not in BACKBONE_WIDTHS:
        raise ValueError(f"a Gaze-LLE decoder on a {width}-wide backbone: the released ones "
                         f"read DINOv2 ViT-B/14 (768) or ViT-L/14 (1024)")
    inout = "_inout" if "inout_token.weight" in state else ""
    return f"gazelle_dinov2_{BACKBONE_WIDTHS[width]}{inout}"


def gazelle_to_ours(state: dict) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(the decoder's weights under our model's names, the keys left out: a backbone saved
    with the decoder, which ``model.backbone_weights`` gives instead)."""
    ours, dropped = {}, []
    for key, value in state.items():
        prefix = next((p for p in PREFIXES if key.startswith(p)), None)
        if prefix is None:
            if key.startswith("backbone."):
                dropped.append(key)
                continue
            raise ValueError(f"'{key}' is not a key of Gaze-LLE's decoder")
        ours[PREFIXES[prefix] + key[len(prefix):]] = value
    return ours, dropped
