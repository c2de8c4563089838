"""Training losses: the denoising MSE (in fp32) and the in/out BCE (``x_loss``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gazefollow.diffusion.gaussian import GaussianDiffusion
from gazefollow.models.gaze_encoder import box_centre


def training_losses(model, diffusion: GaussianDiffusion, batch: dict, loss_cfg,
                    generator=None) -> dict:
    """One training step's losses; per-sample terms are kept for per-quartile logging.

    The heatmap term counts only in-frame samples: an out-of-frame person has no gaze target,
    and teaching the denoiser a blank map for them would fight the in/out head.

    Returns {"loss": scalar, "mse": [B], "t": [B], "inout_bce": scalar, "in_frame": [B]}, plus
    "direction_loss" when the model predicts a gaze direction.
    """
    heatmap = batch["heatmap"]  # [B, 1, O, O] in [0, 1]
    x_start = diffusion.heatmap_to_x(heatmap)
    noise = torch.randn(x_start.shape, generator=generator, device=x_start.device)
    t = diffusion.sample_timesteps(x_start.shape[0], x_start.device, generator)
    x_t = diffusion.q_sample(x_start, t, noise)
    model_output, cond = model(batch, x_t, t)
    target = diffusion.training_target(x_start, noise, t)
    mse = F.mse_loss(model_output.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    in_frame = batch["inout"].float()
    loss = (mse * in_frame).sum() / in_frame.sum().clamp(min=1.0)
    inout_bce = F.binary_cross_entropy_with_logits(cond["inout_logit"].float(), in_frame)
    # Added even at weight 0 (x_loss off): DDP expects every parameter to get a gradient.
    loss = loss + (loss_cfg.x_loss_weight if loss_cfg.x_loss else 0.0) * inout_bce
    out = {"mse": mse.detach(), "t": t, "inout_bce": inout_bce.detach(), "in_frame": in_frame}
    if "direction" in cond and loss_cfg.direction_weight > 0:
        out["direction_loss"] = direction_loss(cond["direction"], batch, in_frame)
        loss = loss + loss_cfg.direction_weight * out["direction_loss"]
    out["loss"] = loss
    return out


def direction_loss(direction: torch.Tensor, batch: dict, in_frame: torch.Tensor) -> torch.Tensor:
    """1 - cos between the predicted direction and head centre -> gaze point, in frame only."""
    true = F.normalize(batch["gaze_points"][:, 0] - box_centre(batch["head_box"]), dim=1)
    per_sample = 1 - (direction.float() * true).sum(dim=1)
    return (per_sample * in_frame).sum() / in_frame.sum().clamp(min=1.0)
