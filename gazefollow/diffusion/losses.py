"""Denoising losses: the MSE on the model's mean output (in fp32, optionally SNR-weighted), and
ADM's hybrid / KL losses for learned variances. The whole model's objective (in/out BCE,
direction loss) is ``gazefollow/following/objective.py``."""
from __future__ import annotations

import math

import torch

from gazefollow.diffusion.gaussian import GaussianDiffusion, gaussian_nll, normal_kl


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
