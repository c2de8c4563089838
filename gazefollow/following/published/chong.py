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

``model_videoatttarget.pt`` (ModelSpatioTemporal: ``convlstm_scene.*`` and ``bn_ds`` in its
blocks) is recognised and refused by name: its ConvLSTM is not among these configurations yet.
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


def chong_name(state: dict) -> str:
    if any(key.startswith("convlstm_scene.") for key in state):
        raise ValueError("this is Chong et al.'s ModelSpatioTemporal (model_videoatttarget.pt: "
                         "its ConvLSTM keys convlstm_scene.*); only their ModelSpatial files "
                         "(model_demo.pt, model_gazefollow.pt) load here so far")
    return "chong2020_spatial"


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
            "data.head_inputs=chong", "data.head_enlarge=0.1", "data.scene_resize=pil"]


def chong_to_ours(state: dict) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(the weights under our model's names, the file's keys with no place here)."""
    ours, dropped = {}, []
    for key, value in state.items():
        match = BACKBONE_KEY.fullmatch(key)
        inout = next((prefix for prefix in INOUT if key.startswith(prefix)), None)
        if match:
            ours[f"gaze.{match[2]}_backbone.{match[1]}{match[3]}"] = value
        elif key.startswith("attn."):
            ours["gaze." + key] = value
        elif inout:
            ours[INOUT[inout] + key[len(inout):]] = value
        elif key.startswith(DECODER):
            ours["head." + key] = value
        else:
            dropped.append(key)
    return ours, dropped
