"""Training losses: the denoising MSE (in fp32), ADM's hybrid / KL losses for learned
variances, the in/out BCE (``x_loss``), the direction loss, and the regression decoder's MSE."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gazefollow.diffusion.gaussian import GaussianDiffusion, gaussian_nll, normal_kl
from gazefollow.models.gaze_encoder import box_centre


def _per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=tuple(range(1, x.ndim)))


def vb_term(diffusion: GaussianDiffusion, mean_out: torch.Tensor, var_values, x_start, x_t,
            t) -> torch.Tensor:
    """One term of the variational bound per sample [B], in bits per dimension (ADM).

    t > 0: KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)). t = 0: the decoder NLL
    -log p(x_0 | x_1), a CONTINUOUS Gaussian likelihood: ADM's discretised decoder assumes
    8-bit pixel levels, which heatmaps do not have. The model's variance is the learned-range
    one when ``var_values`` is given, else the fixed posterior variance.
    """
    pred_x0 = diffusion.pred_xstart(mean_out, x_t, t)
    model_mean, fixed_log_var = diffusion.q_posterior(pred_x0, x_t, t)
    model_log_var = (diffusion.learned_log_variance(var_values, t) if var_values is not None
                     else fixed_log_var)
    true_mean, true_log_var = diffusion.q_posterior(x_start, x_t, t)
    kl = _per_sample_mean(normal_kl(true_mean, true_log_var, model_mean, model_log_var))
    nll = _per_sample_mean(gaussian_nll(x_start, model_mean, model_log_var))
    return torch.where(t == 0, nll, kl) / math.log(2.0)


def denoising_losses(diffusion: GaussianDiffusion, model_output: torch.Tensor, x_start, x_t,
                     noise, t) -> tuple[torch.Tensor, dict]:
    """(per-sample loss [B], logged terms) for ADM's loss types.

    MSE (default): the (SNR-weighted) MSE on the mean output, plus with learned sigmas the VLB
    term computed on a DETACHED mean, so the VLB trains only the variance channels (the hybrid
    loss; its weight is T/1000 with ``rescale_learned_sigmas``). ``use_kl``: the VLB term alone
    (times T with ``rescale_learned_sigmas``), through the mean as well.
    """
    cfg = diffusion.cfg
    mean_out, var_values = diffusion.split_output(model_output.float())
    target = diffusion.training_target(x_start, noise, t).float()
    mse = _per_sample_mean((mean_out - target) ** 2)
    terms = {"mse": mse.detach()}
    if cfg.use_kl:
        vb = vb_term(diffusion, mean_out, var_values, x_start, x_t, t)
        terms["vb"] = vb.detach()
        return vb * (diffusion.num_timesteps if cfg.rescale_learned_sigmas else 1.0), terms
    weight = diffusion.mse_weight(t)
    loss = mse if weight is None else mse * weight
    if var_values is not None:
        vb = vb_term(diffusion, mean_out.detach(), var_values, x_start, x_t, t)
        terms["vb"] = vb.detach()
        loss = loss + vb * (diffusion.num_timesteps / 1000.0 if cfg.rescale_learned_sigmas else 1.0)
    return loss, terms


def training_losses(model, diffusion: GaussianDiffusion | None, batch: dict, loss_cfg,
                    generator=None) -> dict:
    """One training step's losses; per-sample terms are kept for per-quartile logging.

    ``diffusion`` None means the regression decoder: MSE between the predicted and the target
    heatmap. The heatmap term counts only in-frame samples: an out-of-frame person has no gaze
    target, and teaching a blank map for them would fight the in/out head.

    Returns {"loss": scalar, "mse": [B], "inout_bce": scalar, "in_frame": [B]}, plus "t" [B]
    (diffusion), "vb" [B] (learned sigmas or KL loss) and "direction_loss" when the model
    predicts a gaze direction.
    """
    heatmap = batch["heatmap"]  # [B, 1, O, O] in [0, 1]
    in_frame = batch["inout"].float()
    if diffusion is None:
        prediction, cond = model(batch, None, None)
        per_sample = _per_sample_mean((prediction.float() - heatmap.float()) ** 2)
        out = {"mse": per_sample.detach()}
    else:
        x_start = diffusion.heatmap_to_x(heatmap)
        noise = torch.randn(x_start.shape, generator=generator, device=x_start.device)
        if diffusion.cfg.offset_noise_strength:  # offset noise: one shared shift per channel
            shape = (*x_start.shape[:2], 1, 1)
            noise = noise + diffusion.cfg.offset_noise_strength * torch.randn(
                shape, generator=generator, device=x_start.device)
        t = diffusion.sample_timesteps(x_start.shape[0], x_start.device, generator)
        x_t = diffusion.q_sample(x_start, t, noise)
        model_output, cond = model(batch, x_t, diffusion.model_timesteps(t))
        per_sample, out = denoising_losses(diffusion, model_output, x_start, x_t, noise, t)
        out["t"] = t
    loss = (per_sample * in_frame).sum() / in_frame.sum().clamp(min=1.0)
    inout_bce = F.binary_cross_entropy_with_logits(cond["inout_logit"].float(), in_frame)
    # Added even at weight 0 (x_loss off): DDP expects every parameter to get a gradient.
    loss = loss + (loss_cfg.x_loss_weight if loss_cfg.x_loss else 0.0) * inout_bce
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
    return (per_sample * in_frame).sum() / in_frame.sum().clamp(min=1.0)
