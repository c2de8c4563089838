"""The ``chong`` encoder: the scene and face pathways of Chong et al., "Detecting Attended
Visual Targets in Video" (CVPR 2020), ModelSpatial: two Bottleneck ResNet-50s with a fifth,
stride-1 stage (a 1024 x 7 x 7 map at 224 px), the scene one on RGB + the head channel, and
the head-position attention (the pooled face vector with the head channel max-pooled three
times -> one softmax weight per scene location). The attended scene map and the face map,
concatenated [B, 2C, g, g], are the ``spatial`` map Chong et al.'s decoder reads
(``model.head: chong``) and the in/out head's maps; their 2 g² tokens are the ``context``.

With ``model.temporal: chong`` (their ModelSpatioTemporal) every block's shortcut has the
second BatchNorm of their ``BottleneckConvLSTM`` (``bn_ds``, after the shortcut's own).

It is the ``original`` encoder with its attention always on (the original research code grew
out of this model), under the released files' attribute names (``following/published``).
"""
from __future__ import annotations

import torch

from gazefollow.following.encoders.original import OriginalEncoder, _original_problem
from gazefollow.following.models.conditioning import Conditioning, ConditioningWidths


class ChongEncoder(OriginalEncoder):
    """See the module docstring."""

    name = "chong"
    PARTS = {"scene": ("scene_backbone",), "face": ("face_backbone",), "attention": ("attn",)}
    RESNET_PARTS = ("scene", "face")
    CONFIG = None  # the original encoder's keys (its ResNets' stages and widths)
    ALWAYS_ATTENDS = True

    @classmethod
    def config_problem(cls, model_cfg, data_cfg) -> str | None:
        if model_cfg.depth_branch:
            return "model.depth_branch is an option of the original encoder, not Chong et al.'s"
        return _original_problem(model_cfg)

    @staticmethod
    def shortcut_norms(model_cfg) -> int:
        return 2 if model_cfg.temporal == "chong" else 1

    def __init__(self, model_cfg, data_cfg):
        super().__init__(model_cfg, data_cfg)
        channels = self.scene_backbone.out_channels
        self.widths = ConditioningWidths(context=channels, inout=2 * channels,
                                         inout_grid=self.grid, spatial=2 * channels)

    def forward(self, batch: dict) -> Conditioning:
        mask = batch["head_channel"]
        scene = self.scene_backbone(torch.cat([batch["image"], mask], dim=1))
        face = self.face_backbone(batch["face"])
        scene = self._head_attention(scene, face, mask)
        fused = torch.cat([scene, face], dim=1)
        context = torch.cat([self._tokens(scene, False), self._tokens(face, False)], dim=1)
        return {"context": context, "inout_features": fused, "spatial": fused}


ENCODER = ChongEncoder
