"""The gaze model's training objective: the head's heatmap term, the in/out BCE and the
direction loss, in float32 whatever the autocast precision."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gazefollow.models.conditioning import box_centre


def _in_frame_mean(per_sample: torch.Tensor, in_frame: torch.Tensor) -> torch.Tensor:
    return (per_sample * in_frame).sum() / in_frame.sum().clamp(min=1.0)


def training_losses(model, batch: dict, loss_cfg, generator=None) -> dict:
    """One training step's losses; per-sample terms are kept for per-quartile logging.

    The heatmap term counts only in-frame samples: an out-of-frame person has no gaze
    target, and teaching a blank map for them would fight the in/out head.

    Returns {"loss": scalar, "mse": [B], "inout_bce": scalar, "in_frame": [B]}, plus the
    head's terms ("t" [B] and "vb" [B] for diffusion) and "direction_loss" when the encoder
    predicts a gaze direction.
    """
    in_frame = batch["inout"].float()
    per_sample, out, cond = model(batch, generator=generator)
    loss = loss_cfg.heatmap_weight * _in_frame_mean(per_sample, in_frame)
    inout_bce = F.binary_cross_entropy_with_logits(cond["inout_logit"].float(), in_frame)
    # Added even at weight 0 (loss.inout_bce off): DDP expects every parameter to get a gradient.
    loss = loss + (loss_cfg.inout_weight if loss_cfg.inout_bce else 0.0) * inout_bce
    out.update(inout_bce=inout_bce.detach(), in_frame=in_frame)
    if "direction" in cond and loss_cfg.direction_weight > 0:
        out["direction_loss"] = direction_loss(cond["direction"], batch, in_frame)
        loss = loss + loss_cfg.direction_weight * out["direction_loss"]
    out["loss"] = loss
    return out


def direction_loss(direction: torch.Tensor, batch: dict, in_frame: torch.Tensor) -> torch.Tensor:
    """1 - cos between the predicted direction and head centre -> gaze point, in frame only."""
    true = F.normalize(batch["gaze_points"][:, 0] - box_centre(batch["head_box"]), dim=1)
    per_sample = 1 - (direction.float() * true).sum(dim=1)
    return _in_frame_mean(per_sample, in_frame)
