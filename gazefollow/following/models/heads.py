"""Heatmap heads: conditioning -> gaze heatmap, each with its own training loss and predictor.

``model.head`` chooses one. A head is an ``nn.Module`` with:

``decoders.py`` holds the one-pass decoders of published models (Gaze-LLE's, Chong et al.'s).

- ``loss(cond, heatmap, generator)`` -> (per-sample loss [B], logged terms), for a target
  heatmap [B, 1, O, O] in [0, 1];
- ``predict(cond, ids, seed, steps, sampling, ...)`` -> heatmaps [B, O, O] (numpy), seeded by
  sample id so results do not depend on batch size, workers or processes;
- ``step_counts(config)``, ``describe(sampling)``, ``eval_label(sampling)`` and
  ``run_label(config)``: what evaluation reports and how output folders are named.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gazefollow.diffusion.gaussian import GaussianDiffusion, norm_std_stats
from gazefollow.diffusion.losses import denoising_losses
from gazefollow.diffusion.sampling import NOISES, CompiledDenoiser, sample
from gazefollow.following.data.heatmap import center_prior_heatmap, gaussian_heatmap
from gazefollow.following.models.conditioning import (PREDICTED_HEATMAP, Conditioning,
                                                      ConditioningWidths, conditioning_maps)
from gazefollow.following.models.decoders import ChongHead, GazelleHead
from gazefollow.following.models.denoiser import HeatmapDenoiser


def build_diffusion(config) -> GaussianDiffusion:
    """The Gaussian diffusion of a Config; ``norm_std`` standardises by one ground-truth
    heatmap at the image centre (its statistics hardly depend on where the peak is)."""
    reference = gaussian_heatmap([[0.5, 0.5]], config.data.output_size, config.data.heatmap_sigma)
    return GaussianDiffusion(config.diffusion, norm_std_stats(config.diffusion, reference))


class DiffusionHead(nn.Module):
    """The UNet denoiser under DDPM/ADM training; sampled by DDIM, DDPM or DPM-Solver++."""

    stochastic = True  # several draws per input make sense (eval.num_samples)

    def __init__(self, config, widths: ConditioningWidths):
        super().__init__()
        channels = config.model.unet_inout_channels * (2 if config.diffusion.learn_sigma else 1)
        self.denoiser = HeatmapDenoiser(config.model, config.data.output_size, channels, widths)
        self.diffusion = build_diffusion(config)
        self.output_size = config.data.output_size
        self.cond_drop_prob = config.diffusion.cond_drop_prob
        self.compiled: dict[tuple, CompiledDenoiser] = {}  # sampling.compile's, by settings
        if self.cond_drop_prob > 0:  # the learned null context of classifier-free guidance
            self.null_context = nn.Parameter(torch.randn(1, 1, widths.context))

    @staticmethod
    def run_label(config) -> str:
        return f"diffusion-{config.diffusion.prediction}"

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """One denoiser call (the samplers' model interface)."""
        return self.denoiser(x_t, t, cond)

    def null_conditioning(self, cond: Conditioning, keep: torch.Tensor) -> Conditioning:
        """``cond`` with the samples where ``keep`` [B] is False unconditioned: the learned
        null context in place of the tokens, the per-pixel maps zeroed."""
        shaped = keep.view(-1, 1, 1)
        out = dict(cond)
        out["context"] = torch.where(shaped, cond["context"],
                                     self.null_context.to(cond["context"].dtype))
        for key in ("spatial", "field"):
            if key in cond:
                out[key] = cond[key] * keep.view(-1, 1, 1, 1).to(cond[key].dtype)
        return out

    def loss(self, cond: Conditioning, heatmap: torch.Tensor, generator=None) -> tuple:
        """Noise the target at a random t and score the denoiser's output (ADM's loss types);
        terms hold "mse" [B], "t" [B], the predicted heatmap (``PREDICTED_HEATMAP``) and, with
        learned sigmas or the KL loss, "vb" [B]."""
        diffusion = self.diffusion
        x_start = diffusion.heatmap_to_x(heatmap)
        noise = torch.randn(x_start.shape, generator=generator, device=x_start.device)
        offset = diffusion.offset_strength()
        if offset:  # offset noise: one shared shift per channel
            shape = (*x_start.shape[:2], 1, 1)
            noise = noise + offset * torch.randn(shape, generator=generator,
                                                 device=x_start.device)
        t = diffusion.sample_timesteps(x_start.shape[0], x_start.device, generator)
        if self.cond_drop_prob > 0:
            keep = torch.rand(x_start.shape[0], generator=generator, device=x_start.device)
            cond = self.null_conditioning(cond, keep >= self.cond_drop_prob)
        x_t = diffusion.standardize(diffusion.q_sample(x_start, t, noise))
        model_output = self.denoiser(x_t, diffusion.model_timesteps(t), cond)
        per_sample, terms = denoising_losses(diffusion, model_output, x_start, x_t, noise, t)
        terms["t"] = t
        terms["t_quartile"] = (t * 4 // diffusion.num_timesteps).clamp(max=3)
        mean_out, _ = diffusion.split_output(model_output.float())
        # the predicted x_0 as a heatmap, with its gradient, for the point and KL losses
        terms[PREDICTED_HEATMAP] = diffusion.x_to_heatmap(
            diffusion.pred_xstart(mean_out, x_t, t), clamp=False)
        return per_sample, terms

    @torch.no_grad()
    def predict(self, cond: Conditioning, ids: list[int], seed: int, steps: int, sampling,
                draws: int = 1, first_draw: int = 0, trajectory: list | None = None) -> np.ndarray:
        """The mean heatmap over ``draws`` initial noises (numbered from ``first_draw``); the
        conditioning is reused by every draw and step. ``trajectory`` collects the first
        draw's predicted x_0 after each step."""
        size, device = self.output_size, cond["context"].device
        picture = center_prior_heatmap(size) if sampling.start_from_picture else None
        model = self.sampling_model(sampling)
        total = None
        noise = NOISES[sampling.noise]
        for draw in range(first_draw, first_draw + draws):
            x_T = noise(ids, (1, size, size), seed, draw, device)
            # ancestral DDPM: the noise of step i is seeded by sample id too
            step_noise = (lambda i, d=draw: noise(ids, (1, size, size), seed,
                                                  d + 1000 * (i + 1), device))
            heatmap = sample(model, self.diffusion, cond, x_T, steps, sampling.sampler,
                             trajectory if draw == first_draw else None, step_noise,
                             clip_denoised=sampling.clip_denoised, start_picture=picture,
                             start_timestep=sampling.start_timestep)[:, 0].cpu().numpy()
            total = heatmap if total is None else total + heatmap
        return total / draws

    def __getstate__(self) -> dict:
        # compiled graphs belong to this object: a copy (the EMA's) compiles its own
        return {**self.__dict__, "compiled": {}}

    def sampling_model(self, sampling):
        """What the sampler calls: this head, or its guided form, compiled with
        ``sampling.compile`` (kept, so later batches reuse the compiled graphs)."""
        model = self if sampling.cond_scale == 1 else GuidedDenoiser(self, sampling)
        if sampling.compile == "none":
            return model
        key = (sampling.compile, sampling.cond_scale, sampling.rescaled_phi)
        if key not in self.compiled:
            self.compiled[key] = CompiledDenoiser(model, sampling.compile)
        return self.compiled[key]

    @staticmethod
    def step_counts(config) -> list[int]:
        return list(dict.fromkeys([config.sampling.steps, *config.eval.extra_steps]))

    @staticmethod
    def describe(sampling) -> str:
        return sampling.sampler

    @staticmethod
    def eval_label(sampling) -> str:
        return f"{sampling.sampler}{sampling.steps}"


class GuidedDenoiser:
    """The samplers' model interface with classifier-free guidance: null + s (cond - null),
    and with ``rescaled_phi`` = phi a share phi of that output rescaled to the conditional
    output's per-sample std (Lin et al. 2024, as the original's later versions)."""

    def __init__(self, head: DiffusionHead, sampling):
        self.head, self.scale, self.phi = head, sampling.cond_scale, sampling.rescaled_phi

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        drop = torch.zeros(x_t.shape[0], dtype=torch.bool, device=x_t.device)
        conditional = self.head.denoise(x_t, t, cond)
        null = self.head.denoise(x_t, t, self.head.null_conditioning(cond, drop))
        guided = null + self.scale * (conditional - null)
        if not self.phi:
            return guided
        dims = tuple(range(1, guided.ndim))
        rescaled = guided * (conditional.std(dim=dims, keepdim=True)
                             / guided.std(dim=dims, keepdim=True))
        return self.phi * rescaled + (1 - self.phi) * guided


class RegressionDecoder(nn.Module):
    """The classic gaze-following head: a small convolutional decoder that predicts the heatmap
    directly from the same per-pixel conditioning the UNet gets, plus the mean context token
    broadcast over the map."""

    def __init__(self, model_cfg, output_size: int, widths: ConditioningWidths):
        super().__init__()
        token_channels = 16
        channels = token_channels + widths.map_channels
        width = model_cfg.unet_inplanes
        self.token = nn.Linear(widths.context, token_channels)
        layers = []
        for k in range(3):
            layers += [nn.Conv2d(channels if k == 0 else width, width, 3, padding=1),
                       nn.GroupNorm(min(model_cfg.unet_norm_groups, width), width), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Conv2d(width, 1, 1))
        self.output_size = output_size

    def forward(self, cond: Conditioning) -> torch.Tensor:
        """cond -> heatmap [B, 1, O, O] (unbounded; trained towards [0, 1] targets)."""
        size = self.output_size
        token = self.token(cond["context"].mean(dim=1))
        token_map = token[:, :, None, None].expand(-1, -1, size, size)
        inputs = [token_map, *conditioning_maps(cond, token_map)]
        return self.net(torch.cat(inputs, dim=1))


class RegressionHead(nn.Module):
    """One pass, trained by MSE to the target heatmap: no noise, no sampler."""

    stochastic = False

    def __init__(self, config, widths: ConditioningWidths):
        super().__init__()
        self.decoder = RegressionDecoder(config.model, config.data.output_size, widths)

    @staticmethod
    def run_label(config) -> str:
        return "regression"

    def loss(self, cond: Conditioning, heatmap: torch.Tensor, generator=None) -> tuple:
        prediction = self.decoder(cond)
        per_sample = ((prediction.float() - heatmap.float()) ** 2).mean(dim=(1, 2, 3))
        return per_sample, {"mse": per_sample.detach(), PREDICTED_HEATMAP: prediction.float()}

    @torch.no_grad()
    def predict(self, cond: Conditioning, ids: list[int], seed: int, steps: int, sampling,
                draws: int = 1, first_draw: int = 0, trajectory: list | None = None) -> np.ndarray:
        return self.decoder(cond)[:, 0].float().cpu().numpy()

    @staticmethod
    def step_counts(config) -> list[int]:
        return [1]

    @staticmethod
    def describe(sampling) -> str:
        return "regression (one pass)"

    @staticmethod
    def eval_label(sampling) -> str:
        return "regression"


HEADS = {"diffusion": DiffusionHead, "regression": RegressionHead, "gazelle": GazelleHead,
         "chong": ChongHead}


def build_head(config, widths: ConditioningWidths) -> nn.Module:
    return HEADS[config.model.head](config, widths)
