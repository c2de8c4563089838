"""Training losses: the denoising MSE (in fp32) and the in/out BCE (``x_loss``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gazefollow.diffusion.gaussian import GaussianDiffusion


def training_losses(model, diffusion: GaussianDiffusion, batch: dict, loss_cfg,
                    generator=None) -> dict:
    """One training step's losses; per-sample terms are kept for per-quartile logging.

    The heatmap term counts only in-frame samples: an out-of-frame person has no gaze target,
    and teaching the denoiser a blank map for them would fight the in/out head.

    Returns {"loss": scalar, "mse": [B], "t": [B], "inout_bce": scalar, "in_frame": [B]}.
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
    if loss_cfg.x_loss:
        loss = loss + loss_cfg.x_loss_weight * inout_bce
    return {"loss": loss, "mse": mse.detach(), "t": t, "inout_bce": inout_bce.detach(),
            "in_frame": in_frame}
