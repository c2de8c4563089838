"""GEFF-style head + eye fusion (``estimation.estimator: geff``, and ``vanilla_fusion`` as its
baseline): the face encoder sees the whole face, an eye encoder sees each eye patch, cropped
from the face by its landmarks, and the features are fused before the gaze head.

- **Eye patches.** With MPIIFaceGaze's six landmarks (four eye corners, then the two mouth
  corners, in image order left to right), each eye's box is centred on its two corners, 1.6x
  as wide as they are apart and 0.6x as high as wide. A face without those landmarks gets
  fixed boxes at the eyes of a normalised face (centres at 30% and 70% of the width, 40% of
  the height, 30% of the width wide). Patches are sampled bilinearly (``grid_sample``) at
  ``EYE_SIZE``, so the crop is part of the batched graph.
- **Encoders.** The face encoder is the ResNet baseline's (``model.face_layers``, ``block``,
  ``face_inplanes``); it can start from a ResNet estimation run (``run.init_weights``,
  ``backbone.`` keys), as GEFF starts from its baseline. One eye encoder, shared by both
  eyes: a small CNN (``estimation.geff_eye: cnn``), or a ResNet of the face's shape (``resnet``,
  GEFF's ``--useres``).
- **Fusion** (``geff``): the face and the two eye features are projected to
  ``estimation.geff_dim``; a moderator (an MLP on the three, concatenated) gives each sample three
  weights (a softmax), and the fused feature is their weighted sum, as PIXIE's moderator
  weighs its body and part experts by a learned confidence. The face thereby decides how
  much each eye counts, and the eyes how much the face does. ``vanilla_fusion``
  concatenates the three projections instead. Either goes through a linear layer to pitch
  and yaw.

We found no public GEFF code to check against; this is our reading of the method as the
issue describes it, documented in docs/estimation.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gazefollow.backbones.resnet import ResNet

EYE_SIZE = (36, 60)  # (height, width), MPIIGaze's eye-patch shape
FIXED_BOXES = ((0.3, 0.4, 0.3, 0.18), (0.7, 0.4, 0.3, 0.18))  # (cx, cy, w, h), normalised


def eye_boxes(landmarks: torch.Tensor | None, batch: int, device) -> torch.Tensor:
    """landmarks [B, 6, 2] normalised to [0, 1] (NaN where a face has none) -> boxes
    [B, 2, 4] (cx, cy, w, h), the fixed ones where a face has no landmarks."""
    fixed = torch.tensor(FIXED_BOXES, device=device).expand(batch, 2, 4)
    if landmarks is None:
        return fixed
    corners = landmarks[:, :4].reshape(batch, 2, 2, 2)  # eye, corner, xy
    centre = corners.mean(dim=2)
    width = (1.6 * (corners[:, :, 0] - corners[:, :, 1]).norm(dim=-1)).clamp(min=0.1)
    boxes = torch.cat([centre, width[..., None], 0.6 * width[..., None]], dim=-1)
    known = torch.isfinite(landmarks[:, :4]).all(dim=(1, 2))[:, None, None]
    return torch.where(known, boxes, fixed)


def crop_eyes(face: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """face [B, 3, S, S], boxes [B, 2, 4] -> patches [B, 2, 3, *EYE_SIZE] (bilinear)."""
    batch = len(face)
    cx, cy, w, h = (2 * boxes[..., 0] - 1, 2 * boxes[..., 1] - 1, boxes[..., 2], boxes[..., 3])
    theta = torch.zeros(batch, 2, 2, 3, device=face.device, dtype=face.dtype)
    theta[..., 0, 0], theta[..., 0, 2] = w, cx
    theta[..., 1, 1], theta[..., 1, 2] = h, cy
    grid = F.affine_grid(theta.reshape(-1, 2, 3), [batch * 2, 3, *EYE_SIZE], align_corners=False)
    patches = F.grid_sample(face.repeat_interleave(2, dim=0), grid, align_corners=False)
    return patches.reshape(batch, 2, 3, *EYE_SIZE)


def small_eye_cnn(width: int = 32) -> nn.Sequential:
    def stage(inp: int, out: int) -> list[nn.Module]:
        return [nn.Conv2d(inp, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    layers = stage(3, width) + stage(width, 2 * width) + stage(2 * width, 4 * width)
    encoder = nn.Sequential(*layers)
    encoder.out_channels = 4 * width
    return encoder


class HeadEyeFusion(nn.Module):
    """face [B, 3, S, S] (+ landmarks [B, 6, 2] normalised) -> [B, 2] pitch, yaw."""

    uses_landmarks = True

    def __init__(self, model_cfg, estimation_cfg, fusion: str = "moderator"):
        super().__init__()
        self.backbone = ResNet(model_cfg.face_layers, inplanes=model_cfg.face_inplanes,
                               block=model_cfg.block, stem_pool=model_cfg.face_stem_pool)
        self.eye = (small_eye_cnn() if estimation_cfg.geff_eye == "cnn" else
                    ResNet(model_cfg.face_layers, inplanes=model_cfg.face_inplanes,
                           block=model_cfg.block, stem_pool=False))
        dim, self.fusion = estimation_cfg.geff_dim, fusion
        self.face_proj = nn.Linear(self.backbone.out_channels, dim)
        self.eye_proj = nn.Linear(self.eye.out_channels, dim)
        if fusion == "moderator":
            self.moderator = nn.Sequential(nn.Linear(3 * dim, dim), nn.ReLU(inplace=True),
                                           nn.Linear(dim, 3))
        self.head = nn.Linear(dim if fusion == "moderator" else 3 * dim, 2)

    def features(self, face: torch.Tensor, landmarks: torch.Tensor | None) -> torch.Tensor:
        """[B, 3, dim]: the projected face, first eye and second eye features."""
        patches = crop_eyes(face, eye_boxes(landmarks, len(face), face.device))
        f = self.face_proj(self.backbone(face).mean(dim=(2, 3)))
        e = self.eye_proj(self.eye(patches.flatten(0, 1)).mean(dim=(2, 3)))
        return torch.cat([f[:, None], e.reshape(len(face), 2, -1)], dim=1)

    def forward(self, face: torch.Tensor, landmarks: torch.Tensor | None = None) -> torch.Tensor:
        parts = torch.relu(self.features(face, landmarks))
        if self.fusion == "moderator":
            weights = torch.softmax(self.moderator(parts.flatten(1)), dim=1)  # [B, 3]
            return self.head((weights[..., None] * parts).sum(dim=1))
        return self.head(parts.flatten(1))

    def fusion_weights(self, face: torch.Tensor, landmarks=None) -> torch.Tensor:
        """[B, 3] the moderator's weights of face, first eye, second eye (for inspection)."""
        parts = torch.relu(self.features(face, landmarks))
        return torch.softmax(self.moderator(parts.flatten(1)), dim=1)
