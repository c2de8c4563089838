"""Gaussian diffusion over heatmaps (DDPM, Ho et al. 2020; ADM names, Nichol & Dhariwal 2021).

Heatmaps live in [0, 1] outside diffusion; ``heatmap_to_x`` / ``x_to_heatmap`` are the one pair
of functions that maps them into and out of the diffusion space. This module holds the
schedule (linear / cosine betas, zero terminal SNR), the forward process, the conversions
between eps, x_0 and v, the posterior q(x_{t-1} | x_t, x_0), ADM's learned-range variance and
the SNR-based loss weights. Samplers live in ``sampling.py``, losses in ``losses.py``.
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


def zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Rescale betas so that alphas_cumprod[-1] == 0 (Lin et al. 2024, Algorithm 1): shift and
    scale sqrt(alphas_cumprod) so its last value is 0 and its first is unchanged."""
    root = np.sqrt(np.cumprod(1.0 - betas))
    first, last = root[0], root[-1]
    root = (root - last) * first / (first - last)
    alphas_cumprod = root ** 2
    alphas = np.concatenate([alphas_cumprod[:1], alphas_cumprod[1:] / alphas_cumprod[:-1]])
    return 1.0 - alphas


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, exp logvar1) || N(mean2, exp logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def gaussian_nll(x, mean, logvar) -> torch.Tensor:
    """-log N(x; mean, exp logvar), elementwise, in nats: a CONTINUOUS decoder likelihood.
    ADM's discretised 8-bit decoder assumes 256 pixel levels; heatmaps are continuous."""
    return 0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 * torch.exp(-logvar))


class GaussianDiffusion:
    """Schedule, forward process, posterior and prediction-type conversions.

    Args:
        diffusion_cfg: the ``diffusion`` config section (any object with its attributes).
        norm_stats: (shift, std) for ``norm_std``: the mean and std of one ground-truth
            heatmap in the diffusion space (``norm_std_stats``); required with ``norm_std``.
    """

    def __init__(self, diffusion_cfg, norm_stats: tuple[float, float] | None = None):
        self.cfg = diffusion_cfg
        self.num_timesteps = diffusion_cfg.train_time_steps
        self.mean_type = ModelMeanType(diffusion_cfg.prediction)
        self.learn_sigma = diffusion_cfg.learn_sigma
        self.scale = diffusion_cfg.diff_normalization
        betas = get_betas(diffusion_cfg.beta_schedule, self.num_timesteps)
        self.betas = zero_terminal_snr(betas) if diffusion_cfg.zero_terminal_snr else betas
        alphas_cumprod = np.cumprod(1.0 - self.betas)
        prev = np.append(1.0, alphas_cumprod[:-1])
        self.alphas_cumprod = torch.from_numpy(alphas_cumprod)
        self.sqrt_alphas_cumprod = torch.from_numpy(np.sqrt(alphas_cumprod))
        self.sqrt_one_minus_alphas_cumprod = torch.from_numpy(np.sqrt(1.0 - alphas_cumprod))
        # q(x_{t-1} | x_t, x_0) (Ho et al. eq. 6-7); the variance at t=0 is 0, so its log is
        # clipped to the next value, as ADM does.
        variance = self.betas * (1.0 - prev) / (1.0 - alphas_cumprod)
        self.posterior_log_variance = torch.from_numpy(np.log(np.append(variance[1], variance[1:])))
        self.posterior_mean_coef1 = torch.from_numpy(
            self.betas * np.sqrt(prev) / (1 - alphas_cumprod))
        self.posterior_mean_coef2 = torch.from_numpy(
            (1.0 - prev) * np.sqrt(1.0 - self.betas) / (1.0 - alphas_cumprod))
        self.log_betas = torch.from_numpy(np.log(np.maximum(self.betas, 1e-20)))
        self.shift, self.std = 0.0, 1.0
        self._device_tables: dict[tuple, torch.Tensor] = {}
        if diffusion_cfg.norm_std:
            if norm_stats is None:
                raise ValueError("diffusion.norm_std needs norm_stats: (shift, std) of a "
                                 "ground-truth heatmap, from norm_std_stats()")
            self.shift, self.std = norm_stats

    def device_table(self, name: str, device, dtype=torch.float32) -> torch.Tensor:
        """The schedule's table ``name`` (e.g. "alphas_cumprod") cast and moved to ``device``
        once and kept: a copy from host memory at every use would make a GPU wait for all the
        work queued before it, several times per training or sampling step."""
        key = (name, torch.device(device), dtype)
        table = self._device_tables.get(key)
        if table is None:  # cast first: MPS has no float64
            table = self._device_tables[key] = getattr(self, name).to(dtype).to(device)
        return table

    def _extract(self, name: str, t: torch.Tensor, ndim: int) -> torch.Tensor:
        """Table ``name`` at t, shaped [B, 1, 1, ...] to broadcast against an ndim tensor."""
        return self.device_table(name, t.device)[t].view(-1, *([1] * (ndim - 1)))

    # --- the one mapping between heatmaps and the diffusion space ---------------------------
    def _to_x_unnormalised(self, heatmap: torch.Tensor) -> torch.Tensor:
        return _scaled(heatmap, self.scale)

    def heatmap_to_x(self, heatmap: torch.Tensor) -> torch.Tensor:
        """[0, 1] -> [-s, s] with s = diff_normalization; with ``norm_std`` then shifted and
        scaled by the mean and std of one ground-truth heatmap, so x_start has about unit
        variance like the noise (a heatmap is mostly background)."""
        return (self._to_x_unnormalised(heatmap) - self.shift) / self.std

    def x_to_heatmap(self, x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """The inverse of heatmap_to_x, clamped to [0, 1] unless ``clamp`` is False."""
        heatmap = ((x * self.std + self.shift) / self.scale + 1.0) / 2.0
        return heatmap.clamp(0.0, 1.0) if clamp else heatmap

    def clip_range(self) -> tuple[float, float]:
        """The diffusion-space image of heatmap values [0, 1] (for ``clip_denoised``)."""
        low, high = self.heatmap_to_x(torch.tensor([0.0, 1.0])).tolist()
        return low, high

    # --- forward process --------------------------------------------------------------------
    def offset_strength(self) -> float:
        """Std of the per-map constant added to the training noise: ``offset_noise_strength``,
        or the original's ``noise_changer`` at ``noise_changer_strength``."""
        cfg = self.cfg
        return cfg.offset_noise_strength or (cfg.noise_changer_strength if cfg.noise_changer
                                             else 0.0)

    def sample_timesteps(self, batch: int, device, generator=None) -> torch.Tensor:
        """Uniform t, or t = T * sqrt(u) ("sqrt"), which favours the noisy end (for x0
        prediction on heatmaps, the steps that decide where the peak goes)."""
        u = torch.rand(batch, generator=generator, device=device)
        if self.cfg.timestep_sampling == "sqrt":
            u = u.sqrt()
        return (u * self.num_timesteps).long().clamp(max=self.num_timesteps - 1)

    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """What the denoiser sees as t: ADM's ``rescale_timesteps`` maps [0, T) to [0, 1000)."""
        if self.cfg.rescale_timesteps:
            return t.float() * (1000.0 / self.num_timesteps)
        return t

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_start + sqrt(1 - abar_t) eps  (Ho et al. eq. 4)."""
        return (self._extract("sqrt_alphas_cumprod", t, x_start.ndim) * x_start
                + self._extract("sqrt_one_minus_alphas_cumprod", t, x_start.ndim) * noise)

    def standardize(self, x_t: torch.Tensor) -> torch.Tensor:
        """``per_sample_std`` (the original's norm_std_flag): x_t divided by its own std over
        each sample's map, after noising and before every sampling step; else unchanged."""
        if not self.cfg.per_sample_std:
            return x_t
        return x_t / x_t.std(dim=tuple(range(1, x_t.ndim)), keepdim=True)

    def q_posterior(self, x_start: torch.Tensor, x_t: torch.Tensor,
                    t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log variance) of q(x_{t-1} | x_t, x_0)  (Ho et al. eq. 6-7)."""
        mean = (self._extract("posterior_mean_coef1", t, x_t.ndim) * x_start
                + self._extract("posterior_mean_coef2", t, x_t.ndim) * x_t)
        return mean, self._extract("posterior_log_variance", t, x_t.ndim)

    # --- model outputs ----------------------------------------------------------------------
    def split_output(self, model_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean part, variance part or None): learned sigma doubles the output channels."""
        if not self.learn_sigma:
            return model_output, None
        return model_output.chunk(2, dim=1)

    def learned_log_variance(self, var_values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ADM's learned_range: the output v in [-1, 1] interpolates the log variance between
        the posterior variance (v = -1) and beta_t (v = 1)."""
        frac = (var_values.float().clamp(-1, 1) + 1) / 2
        low = self._extract("posterior_log_variance", t, var_values.ndim)
        high = self._extract("log_betas", t, var_values.ndim)
        return frac * high + (1 - frac) * low

    def training_target(self, x_start: torch.Tensor, noise: torch.Tensor,
                        t: torch.Tensor) -> torch.Tensor:
        """What the denoiser is trained to output: eps, x_start or v."""
        if self.mean_type is ModelMeanType.EPSILON:
            return noise
        if self.mean_type is ModelMeanType.START_X:
            return x_start
        # v = sqrt(abar) eps - sqrt(1 - abar) x_start  (Salimans & Ho 2022)
        return (self._extract("sqrt_alphas_cumprod", t, x_start.ndim) * noise
                - self._extract("sqrt_one_minus_alphas_cumprod", t, x_start.ndim) * x_start)

    def pred_xstart(self, model_output: torch.Tensor, x_t: torch.Tensor,
                    t: torch.Tensor) -> torch.Tensor:
        """Predicted x_0 from the model output (mean part), whatever the prediction type."""
        a = self._extract("sqrt_alphas_cumprod", t, x_t.ndim)
        b = self._extract("sqrt_one_minus_alphas_cumprod", t, x_t.ndim)
        if self.mean_type is ModelMeanType.EPSILON:
            return (x_t - b * model_output) / a
        if self.mean_type is ModelMeanType.START_X:
            return model_output
        return a * x_t - b * model_output

    def pred_eps(self, model_output: torch.Tensor, x_t: torch.Tensor,
                 t: torch.Tensor) -> torch.Tensor:
        """Predicted noise from the model output (mean part), whatever the prediction type."""
        a = self._extract("sqrt_alphas_cumprod", t, x_t.ndim)
        b = self._extract("sqrt_one_minus_alphas_cumprod", t, x_t.ndim)
        if self.mean_type is ModelMeanType.EPSILON:
            return model_output
        if self.mean_type is ModelMeanType.START_X:
            return (x_t - a * model_output) / b
        return a * model_output + b * x_t

    # --- loss weights ------------------------------------------------------------------------
    def snr(self, t: torch.Tensor) -> torch.Tensor:
        abar = self.device_table("alphas_cumprod", t.device, torch.float64)[t]
        return (abar / (1 - abar)).float().clamp(min=1e-8)  # zero terminal SNR stays finite

    def mse_weight(self, t: torch.Tensor) -> torch.Tensor | None:
        """Per-sample weight [B] of the MSE for ``mse_loss_weight_type``, None for "none" (the
        original research code calls it "constant").

        Each kind is a weight of the eps-equivalent loss: ``min_snr_<gamma>`` (Hang et al.
        2023) min(SNR, gamma) / SNR, ``max_snr_<gamma>`` max(SNR, gamma) / SNR, ``trunc_snr``
        (Salimans & Ho 2022) max(SNR, 1) / SNR, ``snr`` 1 and ``inv_snr`` 1 / SNR^2 (the
        original research code's x_0 weights SNR and 1 / SNR). It is converted to the
        prediction type: an x_0 error is an eps error / SNR, a v error an eps error
        * (SNR + 1) / SNR. With x_0 prediction every kind equals the original's weight.
        """
        kind = self.cfg.mse_loss_weight_type
        if kind in ("none", "constant"):
            return None
        snr = self.snr(t)
        if kind.startswith(("min_snr_", "max_snr_")):
            gamma = float(kind[len("min_snr_"):])
            bound = torch.clamp(snr, max=gamma) if kind.startswith("min") else \
                torch.clamp(snr, min=gamma)
            eps_weight = bound / snr
        elif kind == "snr":
            eps_weight = torch.ones_like(snr)
        elif kind == "inv_snr":
            eps_weight = 1.0 / snr ** 2
        else:  # trunc_snr
            eps_weight = torch.clamp(snr, min=1.0) / snr
        if self.mean_type is ModelMeanType.START_X:
            return eps_weight * snr
        if self.mean_type is ModelMeanType.VELOCITY:
            return eps_weight * snr / (snr + 1)
        return eps_weight


def _scaled(heatmap: torch.Tensor, scale: float) -> torch.Tensor:
    return (heatmap * 2.0 - 1.0) * scale


def norm_std_stats(diffusion_cfg, reference_heatmap: torch.Tensor) -> tuple[float, float]:
    """(mean, std) of a reference ground-truth heatmap (values in [0, 1]) mapped to
    [-s, s]: what ``norm_std`` subtracts and divides by."""
    x = _scaled(reference_heatmap, diffusion_cfg.diff_normalization)
    return float(x.mean()), float(x.std())
