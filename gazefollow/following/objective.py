"""The gaze model's training objective: the head's heatmap term, the in/out BCE, the
direction loss and the original's point / KL losses, in float32 whatever the autocast
precision."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gazefollow.following.models.conditioning import PREDICTED_HEATMAP, box_centre


def _in_frame_mean(per_sample: torch.Tensor, in_frame: torch.Tensor) -> torch.Tensor:
    return (per_sample * in_frame).sum() / in_frame.sum().clamp(min=1.0)


def training_losses(model, batch: dict, loss_cfg, generator=None) -> dict:
    """One training step's losses; per-sample terms are kept for per-quartile logging.

    The heatmap term counts only in-frame samples: an out-of-frame person has no gaze
    target, and teaching a blank map for them would fight the in/out head.

    Returns {"loss": scalar, "mse": [B], "inout_bce": scalar, "in_frame": [B]}, plus the
    head's terms ("t" [B] and "vb" [B] for diffusion), "direction_loss" when the encoder
    predicts a gaze direction, and "point_loss" / "kl_loss" with ``loss.other_loss``.
    """
    in_frame = batch["inout"].float()
    per_sample, out, cond = model(batch, generator=generator)
    predicted = out.pop(PREDICTED_HEATMAP)
    loss = loss_cfg.heatmap_weight * _in_frame_mean(per_sample, in_frame)
    if loss_cfg.other_loss and loss_cfg.kl_div_loss:
        out["kl_loss"] = heatmap_kl(predicted, batch["heatmap"], in_frame)
        loss = loss + loss_cfg.kl_weight * out["kl_loss"]
    elif loss_cfg.other_loss:
        out["point_loss"] = point_loss(predicted, batch, in_frame, loss_cfg.soft_argmax_beta)
        loss = loss + loss_cfg.point_weight * out["point_loss"]
    inout_bce = F.binary_cross_entropy_with_logits(cond["inout_logit"].float(), in_frame)
    # Added even at weight 0 (loss.inout_bce off): DDP expects every parameter to get a gradient.
    loss = loss + (loss_cfg.inout_weight if loss_cfg.inout_bce else 0.0) * inout_bce
    out.update(inout_bce=inout_bce.detach(), in_frame=in_frame)
    if "direction" in cond and loss_cfg.direction_weight > 0:
        out["direction_loss"] = direction_loss(cond["direction"], batch, in_frame)
        loss = loss + loss_cfg.direction_weight * out["direction_loss"]
    out["loss"] = loss
    return out


def soft_argmax(heatmap: torch.Tensor, beta: float) -> torch.Tensor:
    """[B, 1, O, O] -> expected (x, y) [B, 2] under softmax(beta * heatmap), normalised like
    the annotations (pixel i <-> i / O)."""
    size = heatmap.shape[-1]
    weights = (beta * heatmap.float().flatten(1)).softmax(dim=1).view(-1, size, size)
    axis = torch.arange(size, device=heatmap.device, dtype=weights.dtype) / size
    return torch.stack([(weights.sum(dim=1) * axis).sum(dim=1),
                        (weights.sum(dim=2) * axis).sum(dim=1)], dim=1)


def point_loss(predicted: torch.Tensor, batch: dict, in_frame: torch.Tensor,
               beta: float) -> torch.Tensor:
    """The original's --other_loss: squared distance between the soft-argmax of the predicted
    heatmap and the gaze point, both normalised (the original compared a pixel-unit
    soft-argmax with a normalised point), mean over in-frame samples."""
    squared = ((soft_argmax(predicted, beta) - batch["gaze_points"][:, 0]) ** 2).mean(dim=1)
    return _in_frame_mean(squared, in_frame)


def heatmap_kl(predicted: torch.Tensor, target: torch.Tensor,
               in_frame: torch.Tensor) -> torch.Tensor:
    """The original's --kl_div_loss: KL(softmax(predicted) || softmax(target)) over each map's
    pixels (torch's KLDivLoss with the target map's log-softmax as input, as the original),
    mean over in-frame samples."""
    log_target = F.log_softmax(target.float().flatten(1), dim=1)
    log_predicted = F.log_softmax(predicted.float().flatten(1), dim=1)
    per_sample = (log_predicted.exp() * (log_predicted - log_target)).sum(dim=1)
    return _in_frame_mean(per_sample, in_frame)


def direction_loss(direction: torch.Tensor, batch: dict, in_frame: torch.Tensor) -> torch.Tensor:
    """1 - cos between the predicted direction and head centre -> gaze point, in frame only."""
    true = F.normalize(batch["gaze_points"][:, 0] - box_centre(batch["head_box"]), dim=1)
    per_sample = 1 - (direction.float() * true).sum(dim=1)
    return _in_frame_mean(per_sample, in_frame)
