"""GazeLSTM for Looking-At-Me: Gaze360's temporal model with a 2-class head, as Ego4D's
baseline and GazePose use it.

Each of the T face crops goes through the same ResNet (ResNet-18 in the recipes), pooled,
then ``fc1`` (to 1000, ReLU) and ``fc2`` (to ``lam.feature_dim``, 256), the layer names
of Gaze360's network. A bidirectional LSTM (``lam.lstm_layers``, 2) runs over the T
features; its output at the middle (key) frame goes through ``last_layer`` to the two
logits (not looking, looking).

Gaze360's released ``gaze360_model.pth`` (``{"state_dict": {"module.base_model.*",
"module.lstm.*", "module.last_layer.*"}}``, saved from DataParallel) starts the frame encoder
and the LSTM through ``run.init_weights`` (format ``gaze360``, ``init_weights.py``): the
``module.`` prefix is stripped and its 3-output ``last_layer`` (gaze and its uncertainty) is
dropped, as the LAM code drops it. That needs Gaze360's shapes: ResNet-18 (``face_layers``
[2, 2, 2, 2], ``face_inplanes`` 64), ``lam_feature_dim`` 256, 2 LSTM layers.
"""
from __future__ import annotations

import torch
from torch import nn

from gazefollow.backbones.resnet import ResNet

IMAGENET_CLASSES = 1000  # fc1's width: the ImageNet classifier Gaze360 keeps


class FrameEncoder(ResNet):
    """A ResNet with Gaze360's two fully connected layers: crop -> (feature [B, F], last
    stage's map [B, C, h, w])."""

    def __init__(self, model_cfg, feature_dim: int):
        super().__init__(model_cfg.face_layers, inplanes=model_cfg.face_inplanes,
                         block=model_cfg.block, stem_pool=model_cfg.face_stem_pool)
        self.fc1 = nn.Linear(self.out_channels, IMAGENET_CLASSES)
        self.fc2 = nn.Linear(IMAGENET_CLASSES, feature_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_map = super().forward(x)
        pooled = feature_map.mean(dim=(2, 3))
        return self.fc2(torch.relu(self.fc1(pooled))), feature_map


class GazeLSTM(nn.Module):
    """faces [B, T, 3, S, S] -> logits [B, 2] of the middle frame."""

    def __init__(self, model_cfg, lam_cfg):
        """``model_cfg``: the frame ResNet's shape (model.face_layers ...); ``lam_cfg``: the
        ``lam`` section (widths)."""
        super().__init__()
        width = lam_cfg.feature_dim
        self.base_model = FrameEncoder(model_cfg, width)
        self.lstm = nn.LSTM(width, width, num_layers=lam_cfg.lstm_layers,
                            bidirectional=True, batch_first=True)
        self.last_layer = nn.Linear(2 * width, 2)

    def temporal_features(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the LSTM's output at the middle frame [B, 2F], the middle frame's map)."""
        b, t = faces.shape[:2]
        features, maps = self.base_model(faces.flatten(0, 1))
        key_maps = maps.view(b, t, *maps.shape[1:])[:, t // 2]
        return self.temporal_from_frames(features.view(b, t, -1), key_maps)

    def temporal_from_frames(self, features: torch.Tensor,
                             key_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``temporal_features`` from frames already encoded by ``base_model``: features
        [B, T, F] and the middle frames' maps (a predictor on a video encodes each crop once,
        not once per window it falls in)."""
        out, _ = self.lstm(features)
        return out[:, features.shape[1] // 2].float(), key_maps

    def temporal(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """From ``batch["faces"]`` [B, T, 3, S, S], or from encoded frames when the batch holds
        ``frame_features`` and ``key_maps``."""
        if "frame_features" in batch:
            return self.temporal_from_frames(batch["frame_features"], batch["key_maps"])
        return self.temporal_features(batch["faces"])

    def forward(self, batch: dict) -> torch.Tensor:
        return self.last_layer(self.temporal(batch)[0])

    def trainable_parts(self) -> dict:
        return {"backbone": [p for p in self.base_model.parameters() if p.requires_grad],
                "head": [p for n, p in self.named_parameters()
                         if not n.startswith("base_model.") and p.requires_grad]}

    def resnet_prefixes(self) -> dict[str, str]:
        return {"backbone": "base_model."}
