"""Gaussian diffusion over heatmaps (DDPM, Ho et al. 2020; ADM names, Nichol & Dhariwal 2021).

Heatmaps live in [0, 1] outside diffusion; ``heatmap_to_x`` / ``x_to_heatmap`` are the one pair
of functions that maps them into and out of the diffusion space.
"""
from __future__ import annotations

import enum
import math

import numpy as np
import torch


class ModelMeanType(enum.Enum):
    """What the denoiser predicts."""

    EPSILON = "eps"
    START_X = "x0"
    VELOCITY = "v"


def get_betas(schedule: str, num_steps: int) -> np.ndarray:
    """Linear (DDPM, scaled to the step count as ADM does) or cosine (Nichol & Dhariwal) betas."""
    if schedule == "linear":
        scale = 1000 / num_steps
        return np.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=np.float64)
    if schedule == "cosine":
        def alpha_bar(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.array([min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), 0.999)
                         for i in range(num_steps)], dtype=np.float64)
    raise ValueError(f"unknown beta schedule '{schedule}'")


def _extract(values: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """values[t] shaped [B, 1, 1, ...] for broadcasting against an ndim tensor."""
    out = values.float().to(t.device)[t]  # float first: MPS has no float64
    return out.view(-1, *([1] * (ndim - 1)))


class GaussianDiffusion:
    """Schedule, forward process and prediction-type conversions.

    Args:
        diffusion_cfg: the ``diffusion`` config section (train_time_steps, beta_schedule,
            prediction, diff_normalization, timestep_sampling, clip_denoised).
    """

    def __init__(self, diffusion_cfg):
        self.cfg = diffusion_cfg
        self.num_timesteps = diffusion_cfg.train_time_steps
        self.mean_type = ModelMeanType(diffusion_cfg.prediction)
        self.scale = diffusion_cfg.diff_normalization
        self.betas = get_betas(diffusion_cfg.beta_schedule, self.num_timesteps)
        alphas_cumprod = np.cumprod(1.0 - self.betas)
        self.alphas_cumprod = torch.from_numpy(alphas_cumprod)
        self.sqrt_alphas_cumprod = torch.from_numpy(np.sqrt(alphas_cumprod))
        self.sqrt_one_minus_alphas_cumprod = torch.from_numpy(np.sqrt(1.0 - alphas_cumprod))

    # --- the one mapping between heatmaps and the diffusion space ---------------------------
    def heatmap_to_x(self, heatmap: torch.Tensor) -> torch.Tensor:
        """[0, 1] -> [-s, s] with s = diff_normalization."""
        return (heatmap * 2.0 - 1.0) * self.scale

    def x_to_heatmap(self, x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """[-s, s] -> [0, 1] (clamped unless ``clamp`` is False), the inverse of heatmap_to_x."""
        heatmap = (x / self.scale + 1.0) / 2.0
        return heatmap.clamp(0.0, 1.0) if clamp else heatmap

    # --- forward process --------------------------------------------------------------------
    def sample_timesteps(self, batch: int, device, generator=None) -> torch.Tensor:
        """Uniform t, or t = T * sqrt(u) ("sqrt"), which favours the noisy end (DESIGN §7)."""
        u = torch.rand(batch, generator=generator, device=device)
        if self.cfg.timestep_sampling == "sqrt":
            u = u.sqrt()
        return (u * self.num_timesteps).long().clamp(max=self.num_timesteps - 1)

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_start + sqrt(1 - abar_t) eps  (Ho et al. eq. 4)."""
        return (_extract(self.sqrt_alphas_cumprod, t, x_start.ndim) * x_start
                + _extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.ndim) * noise)

    def training_target(self, x_start: torch.Tensor, noise: torch.Tensor,
                        t: torch.Tensor) -> torch.Tensor:
        """What the denoiser is trained to output: eps, x_start or v."""
        if self.mean_type is ModelMeanType.EPSILON:
            return noise
        if self.mean_type is ModelMeanType.START_X:
            return x_start
        # v = sqrt(abar) eps - sqrt(1 - abar) x_start  (Salimans & Ho 2022)
        return (_extract(self.sqrt_alphas_cumprod, t, x_start.ndim) * noise
                - _extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.ndim) * x_start)

    def pred_xstart(self, model_output: torch.Tensor, x_t: torch.Tensor,
                    t: torch.Tensor) -> torch.Tensor:
        """Predicted x_0 from the model output, whatever the prediction type."""
        a = _extract(self.sqrt_alphas_cumprod, t, x_t.ndim)
        b = _extract(self.sqrt_one_minus_alphas_cumprod, t, x_t.ndim)
        if self.mean_type is ModelMeanType.EPSILON:
            return (x_t - b * model_output) / a
        if self.mean_type is ModelMeanType.START_X:
            return model_output
        return a * x_t - b * model_output
