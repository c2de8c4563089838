"""Gaze-estimation losses.

Losses take predicted and true (pitch, yaw) [B, 2] in radians and return a per-sample loss
[B]: ``l1`` (the mean absolute angle error; the GazeNet and UniGaze recipes) and ``angular``
(the angle between the two directions, in radians; differentiable everywhere by clamping the
cosine just inside [-1, 1]).
"""
from __future__ import annotations

import torch

COSINE_LIMIT = 1 - 1e-6  # arccos has an infinite slope at +-1


def pitchyaw_to_vector_torch(pitchyaw: torch.Tensor) -> torch.Tensor:
    """[B, 2] -> [B, 3], as ``metrics.pitchyaw_to_vector``."""
    pitch, yaw = pitchyaw[:, 0], pitchyaw[:, 1]
    return torch.stack([-torch.cos(pitch) * torch.sin(yaw), -torch.sin(pitch),
                        -torch.cos(pitch) * torch.cos(yaw)], dim=1)


def l1_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    return (pred - true).abs().mean(dim=1)


def angular_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    cosine = (pitchyaw_to_vector_torch(pred) * pitchyaw_to_vector_torch(true)).sum(dim=1)
    return torch.arccos(cosine.clamp(-COSINE_LIMIT, COSINE_LIMIT))


LOSSES = {"l1": l1_loss, "angular": angular_loss}
