"""Chong et al.'s released files (ejcgt/attention-target-detection, CVPR 2020):
``model_demo.pt`` and ``model_gazefollow.pt`` (ModelSpatial). Each is ``{"model": state dict}``
with the keys of their ``model.py``:

- ``conv1_scene``, ``bn1_scene``, ``layer{1..5}_scene.<i>.{conv1..3,bn1..3,downsample.0/1}``
  (a Bottleneck ResNet-50 with a fifth stage on RGB + head channel), the same ``_face``;
- ``attn`` (Linear: the max-pooled head channel and the face vector -> 7 x 7 weights);
- ``compress_conv1``, ``compress_bn1``, ``compress_conv2``, ``compress_bn2``, ``deconv1..3``,
  ``deconv_bn1..3``, ``conv4`` (the heatmap decoder);
- ``compress_conv1_inout``, ``compress_bn1_inout``, ``compress_conv2_inout``,
  ``compress_bn2_inout``, ``fc_inout`` (the in/out head).

``model_videoatttarget.pt`` is their ModelSpatioTemporal: the same keys, plus
``convlstm_scene.{weight,bias}_{ih,hh}_l{0,1}`` (a 2-layer ConvLSTM in the decoder, our
``model.temporal: chong``) and ``bn_ds`` in every block of both ResNets (a second BatchNorm on
the shortcut: ``downsample.2`` here; in a block without a shortcut convolution their model
holds it unused, and it is reported as dropped).

The architecture (blocks per stage, widths) is read from the keys, so a file of the same
design at another depth or width loads too.
"""
from __future__ import annotations

import re

import torch

BACKBONE_KEY = re.compile(r"(conv1|bn1|layer\d+)_(scene|face)(\..+)")
INOUT = {"compress_conv1_inout.": "inout_head.conv.0.", "compress_bn1_inout.": "inout_head.conv.1.",
         "compress_conv2_inout.": "inout_head.conv.3.", "compress_bn2_inout.": "inout_head.conv.4.",
         "fc_inout.": "inout_head.fc."}
DECODER = ("compress_conv1.", "compress_bn1.", "compress_conv2.", "compress_bn2.", "deconv1.",
           "deconv_bn1.", "deconv2.", "deconv_bn2.", "deconv3.", "deconv_bn3.", "conv4.")
SPATIAL_KEYS = ("conv1_scene.weight", "conv1_face.weight", "attn.weight", "deconv1.weight",
                "fc_inout.weight")


def is_chong_file(content) -> bool:
    state = content.get("model") if isinstance(content, dict) else None
    return isinstance(state, dict) and all(key in state for key in SPATIAL_KEYS)


def is_video_model(state: dict) -> bool:
    return any(key.startswith("convlstm_scene.") for key in state)


def chong_name(state: dict) -> str:
    if is_video_model(state) and "convlstm_scene.weight_ih_l1" not in state:
        raise ValueError("a ModelSpatioTemporal with a one-layer ConvLSTM: their released "
                         "model_videoatttarget.pt (and their scripts) have two layers")
    return "chong2020_spatiotemporal" if is_video_model(state) else "chong2020_spatial"


def chong_architecture(state: dict) -> list[str]:
    """The config overrides of the model a ModelSpatial state dict is (read from its keys)."""
    def blocks(branch: str) -> list[int]:
        return [1 + max(int(k.split(".")[1]) for k in state if k.startswith(f"layer{s}_{branch}."))
                for s in range(1, 6)]
    inplanes = state["conv1_scene.weight"].shape[0]
    return ["model.encoder=chong", "model.head=chong", "model.face_backbone=resnet",
            f"model.scene_layers={blocks('scene')}", f"model.face_layers={blocks('face')}",
            f"model.scene_inplanes={inplanes}", f"model.face_inplanes={inplanes}",
            f"model.context_dim={16 * inplanes}", "model.adm_attention_module=false",
            f"model.inout_hidden={state['compress_conv1_inout.weight'].shape[0]}",
            "data.input_size=224", "data.face_size=224", "data.output_size=64",
            "data.head_inputs=chong", "data.scene_resize=pil",
            # their VideoAttentionTarget reader crops the (smoothed) box as annotated
            *(["model.temporal=chong", "data.head_enlarge=0.0"] if is_video_model(state)
              else ["data.head_enlarge=0.1"])]


def chong_to_ours(state: dict) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(the weights under our model's names, the file's keys with no place here)."""
    ours, dropped = {}, []
    for key, value in state.items():
        match = BACKBONE_KEY.fullmatch(key)
        if ".bn_ds." in key:  # ModelSpatioTemporal's second shortcut BatchNorm
            block, name = key.split(".bn_ds.")
            if f"{block}.downsample.0.weight" not in state:
                dropped.append(key)  # a block without a shortcut convolution never uses it
                continue
            key = f"{block}.downsample.2.{name}"
            match = BACKBONE_KEY.fullmatch(key)
        inout = next((prefix for prefix in INOUT if key.startswith(prefix)), None)
        if match:
            ours[f"gaze.{match[2]}_backbone.{match[1]}{match[3]}"] = value
        elif key.startswith("attn."):
            ours["gaze." + key] = value
        elif key.startswith("convlstm_scene."):  # their ConvLSTM: a part of the decoder here
            ours["head." + key] = value
        elif inout:
            ours[INOUT[inout] + key[len(inout):]] = value
        elif key.startswith(DECODER):
            ours["head." + key] = value
        else:
            dropped.append(key)
    return ours, dropped
