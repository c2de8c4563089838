"""Reverse process: DDIM (Song et al. 2021) with diffusers' scheduler, steps chosen at eval time."""
from __future__ import annotations

import torch
from diffusers import DDIMScheduler

from gazefollow.diffusion.gaussian import GaussianDiffusion

_PREDICTION_TYPES = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}


def make_ddim(diffusion: GaussianDiffusion, num_steps: int) -> DDIMScheduler:
    """A DDIM scheduler on the training betas with ``trailing`` spacing.

    diffusers' default ``leading`` spacing puts a single step at t=0, i.e. it would "denoise"
    pure noise as if it were almost clean; ``trailing`` starts at t=T-1 for any step count.
    """
    if not 1 <= num_steps <= diffusion.num_timesteps:
        raise ValueError(f"sample steps must be in [1, {diffusion.num_timesteps}], got {num_steps}")
    scheduler = DDIMScheduler(
        num_train_timesteps=diffusion.num_timesteps,
        trained_betas=diffusion.betas,
        prediction_type=_PREDICTION_TYPES[diffusion.mean_type.value],
        clip_sample=diffusion.cfg.clip_denoised,
        clip_sample_range=diffusion.scale,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )
    scheduler.set_timesteps(num_steps)
    return scheduler


def initial_noise(ids: list[int], shape: tuple, seed: int, draw: int = 0) -> torch.Tensor:
    """x_T for each sample from a generator seeded by (seed, sample id, draw), so results do not
    depend on batch size, worker count or process count; ``draw`` numbers the extra samples
    of ``eval.num_samples``. -> [B, *shape]"""
    out = []
    for sample_id in ids:
        generator = torch.Generator().manual_seed(
            seed * 1_000_003 + int(sample_id) + draw * 1_000_000_007)
        out.append(torch.randn(shape, generator=generator))
    return torch.stack(out)


@torch.no_grad()
def ddim_sample(model, diffusion: GaussianDiffusion, cond: dict, x_T: torch.Tensor,
                num_steps: int, trajectory: list | None = None) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from x_T; ``cond`` is computed once and reused every step.

    Returns the last step's predicted x_0 as a heatmap [B, C, O, O], NOT clamped to [0, 1]:
    clamping (like clip_denoised) turns overshoot into a plateau of equal values whose argmax
    is its first pixel, and flattens the ranking the AUC reads. Taking pred_x0 of the last step
    also covers step counts whose trailing schedule ends at t=0 rather than below it.
    With a ``trajectory`` list, each step's predicted x_0 heatmap is appended to it (CPU).
    """
    scheduler = make_ddim(diffusion, num_steps)
    x_t = x_T
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        t_batch = torch.full((x_t.shape[0],), int(t), device=x_t.device, dtype=torch.long)
        model_output = model.denoise(x_t, t_batch, cond).float()
        # 1. predicted x_0 (Song et al. eq. 12, first term), unclipped
        pred_heatmap = diffusion.x_to_heatmap(diffusion.pred_xstart(model_output, x_t, t_batch),
                                              clamp=False)
        if trajectory is not None:
            trajectory.append(pred_heatmap.cpu())
        if i == len(timesteps) - 1:
            return pred_heatmap
        # 2. x_{t-1} = sqrt(abar_prev) pred_x0 + sqrt(1 - abar_prev) eps_hat  (eq. 12, eta=0)
        x_t = scheduler.step(model_output, int(t), x_t, eta=0.0).prev_sample
