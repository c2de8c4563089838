"""Reverse process, chosen at evaluation time: DDIM (Song et al. 2021), ancestral DDPM (Ho et
al. 2020, respaced as in ADM) and DPM-Solver++ (Lu et al. 2022, diffusers' scheduler).

Every sampler takes the conditioning ``cond`` computed once per sample by the caller and
reuses it at every step; ``model`` is anything with ``denoise(x_t, t, cond)``. Steps use
trailing spacing: with any step count the first step is at t = T - 1 (or at the start
timestep when starting from a noised picture), never at t = 0.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from gazefollow.diffusion.gaussian import GaussianDiffusion, get_betas

SAMPLERS = ("ddim", "ddpm", "dpm_solver")
_PREDICTION_TYPES = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}


def trailing_timesteps(num_steps: int, start: int) -> list[int]:
    """``num_steps`` timesteps from ``start`` down, evenly spaced, ending above 0 (diffusers'
    "trailing"): e.g. T=1000, 4 steps -> [999, 749, 499, 249]."""
    span = start + 1
    if not 1 <= num_steps <= span:
        raise ValueError(f"sample steps must be in [1, {span}], got {num_steps}")
    return (np.round(np.arange(span, 0, -span / num_steps)).astype(int) - 1).tolist()


def initial_noise(ids: list[int], shape: tuple, seed: int, draw: int = 0,
                  device=None) -> torch.Tensor:
    """x_T for each sample from a generator seeded by (seed, sample id, draw), so results do not
    depend on batch size, worker count or process count; ``draw`` numbers the extra samples
    of ``eval.num_samples``. Drawn on the host, one generator per sample
    (``sampling.noise=generator``). -> [B, *shape] on ``device``"""
    out = []
    for sample_id in ids:
        generator = torch.Generator().manual_seed(
            seed * 1_000_003 + int(sample_id) + draw * 1_000_000_007)
        out.append(torch.randn(shape, generator=generator))
    return torch.stack(out).to(device)


_LOW32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply, two rounds) on int64 tensors holding values
    below 2^32; the multipliers are below 2^31, so no product leaves int64."""
    x = x & _LOW32
    x = ((x ^ (x >> 16)) * 0x21F0AAAD) & _LOW32
    x = ((x ^ (x >> 15)) * 0x735A2D97) & _LOW32
    return x ^ (x >> 15)


def keyed_noise(ids, shape: tuple, seed: int, draw: int = 0, device=None) -> torch.Tensor:
    """The same contract as ``initial_noise`` (noise set by seed, sample id and draw alone), but
    counter-based: element c of sample i is a hash of (seed, id_i, draw, c), turned into a
    normal by Box-Muller, all in a few tensor operations for the whole batch on ``device``
    (``sampling.noise=keyed``): no loop over samples, no copy from the host but the ids.
    -> [B, *shape] float32"""
    ids = torch.as_tensor(ids, dtype=torch.int64).to(device)
    key = _mix32(_mix32(_mix32(torch.full_like(ids, seed & _LOW32)) + (ids & _LOW32))
                 + (draw & _LOW32))
    count = math.prod(shape)
    counters = torch.arange(2 * count, dtype=torch.int64, device=ids.device)
    bits = _mix32(_mix32(key[:, None] + counters[None] * 0x9E3779B9) ^ key[:, None])
    uniform = ((bits >> 8).float() + 0.5) * 2.0 ** -24  # in (0, 1), never 0
    radius = torch.sqrt(-2.0 * torch.log(uniform[:, :count]))
    return (radius * torch.cos(2 * math.pi * uniform[:, count:])).view(len(ids), *shape)


NOISES = {"generator": initial_noise, "keyed": keyed_noise}


class CompiledDenoiser:
    """``model.denoise`` through ``torch.compile`` with ``mode`` (see ``sampling.compile``).

    The whole call is one graph (``fullgraph``: a host read or anything else that breaks the
    graph is an error, not a silent fall-back) with static shapes, so "reduce-overhead" can
    replay each step as a CUDA graph; a new batch size compiles once more."""

    def __init__(self, model, mode: str):
        options = {"backend": "eager"} if mode == "eager" else {
            "mode": None if mode == "default" else mode}
        self.denoise = torch.compile(model.denoise, fullgraph=True, dynamic=False, **options)


def start_point(diffusion: GaussianDiffusion, noise: torch.Tensor,
                start_picture: torch.Tensor | None = None,
                start_timestep: int = 0) -> tuple[torch.Tensor, int]:
    """(x at the first step, its timestep): pure noise at T - 1, or ``start_picture`` (a
    heatmap in [0, 1], [O, O]) noised to ``start_timestep`` with the same noise (q_sample)."""
    if start_picture is None:
        return noise, diffusion.num_timesteps - 1
    x_picture = diffusion.heatmap_to_x(start_picture.to(noise.device)).expand_as(noise)
    t = torch.full((noise.shape[0],), start_timestep, device=noise.device, dtype=torch.long)
    return diffusion.q_sample(x_picture, t, noise), start_timestep


def _denoise(model, diffusion, x_t, t: int, cond) -> tuple[torch.Tensor, torch.Tensor]:
    """(full model output, t as a batch tensor) at one timestep."""
    t_batch = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
    return model.denoise(x_t, diffusion.model_timesteps(t_batch), cond).float(), t_batch


def _abar(diffusion, t: int, device) -> torch.Tensor:
    """abar_t from the table kept on the device: a view, no copy from the host."""
    return diffusion.device_table("alphas_cumprod", device)[t]


def respaced_betas(diffusion: GaussianDiffusion, timesteps: list[int]) -> torch.Tensor:
    """Betas of the chain that visits only ``timesteps`` (descending), one per step:
    beta_i = 1 - abar(t_i) / abar(t_{i+1}), the last against abar = 1 (ADM's respacing), so
    the respaced chain keeps alphas_cumprod at every retained step."""
    abar = diffusion.alphas_cumprod[timesteps]
    abar_next = torch.cat([abar[1:], torch.ones(1, dtype=abar.dtype)])
    return 1 - abar / abar_next


@torch.no_grad()
def sample(model, diffusion: GaussianDiffusion, cond: dict, noise: torch.Tensor, num_steps: int,
           sampler: str = "ddim", trajectory: list | None = None, step_noise=None, *,
           clip_denoised: bool = True, start_picture: torch.Tensor | None = None,
           start_timestep: int = 0) -> torch.Tensor:
    """Heatmaps [B, C, O, O] in [0, 1] scale, NOT clamped: clamping turns overshoot into
    plateaus whose argmax is their first pixel and flattens the ranking the AUC reads.

    ``noise`` is x_T (see ``initial_noise``). With a ``trajectory`` list, each step's predicted
    x_0 heatmap is appended (CPU). ``step_noise(i)`` gives the ancestral DDPM noise of step i
    (default: torch.randn); the evaluation seeds it by sample id like x_T.
    ``clip_denoised`` clamps the predicted x_0 to the heatmap range between steps; with a
    ``start_picture`` the reverse process starts from it noised to ``start_timestep``.
    """
    x_t, start = start_point(diffusion, noise, start_picture, start_timestep)
    timesteps = trailing_timesteps(num_steps, start)
    if sampler == "dpm_solver":
        return _dpm_solver(model, diffusion, cond, x_t, timesteps, trajectory)
    low, high = diffusion.clip_range()
    betas = respaced_betas(diffusion, timesteps).float().to(x_t.device) \
        if sampler == "ddpm" else None
    for i, t in enumerate(timesteps):
        x_t = diffusion.standardize(x_t)
        model_output, t_batch = _denoise(model, diffusion, x_t, t, cond)
        mean_out, var_values = diffusion.split_output(model_output)
        pred_x0 = diffusion.pred_xstart(mean_out, x_t, t_batch)  # 1. predicted x_0
        if trajectory is not None:
            trajectory.append(diffusion.x_to_heatmap(pred_x0, clamp=False).cpu())
        if i == len(timesteps) - 1:
            return diffusion.x_to_heatmap(pred_x0, clamp=False)
        clipped = pred_x0.clamp(low, high) if clip_denoised else pred_x0
        prev = timesteps[i + 1]
        if sampler == "ddim":
            # 2. x_prev = sqrt(abar_prev) x_0 + sqrt(1 - abar_prev) eps_hat (Song eq. 12, eta=0)
            eps = diffusion.pred_eps(mean_out, x_t, t_batch)
            abar_prev = _abar(diffusion, prev, x_t.device)
            x_t = abar_prev.sqrt() * clipped + (1 - abar_prev).sqrt() * eps
        else:
            noise = step_noise(i) if step_noise is not None else torch.randn_like(x_t)
            x_t = _ddpm_step(diffusion, x_t, clipped, var_values, t, betas[i],
                             noise.to(x_t.device))
    raise AssertionError("unreachable: the loop returns at its last step")


def _ddpm_step(diffusion, x_t, x0, var_values, t: int, beta: torch.Tensor,
               noise: torch.Tensor) -> torch.Tensor:
    """Ancestral step from t to the next retained step on the respaced chain (its ``beta``):
    posterior q(x_prev | x_t, x_0) (Ho et al. eq. 6-7), variance fixed (posterior) or ADM's
    learned range between the posterior variance and beta."""
    abar_t = _abar(diffusion, t, x_t.device)
    abar_prev = abar_t / (1 - beta)
    mean = (beta * abar_prev.sqrt() / (1 - abar_t)) * x0 \
        + ((1 - abar_prev) * (1 - beta).sqrt() / (1 - abar_t)) * x_t
    posterior_var = beta * (1 - abar_prev) / (1 - abar_t)
    log_var = torch.log(posterior_var.clamp(min=1e-20)).expand_as(x_t)
    if var_values is not None:
        frac = (var_values.clamp(-1, 1) + 1) / 2
        log_var = frac * torch.log(beta) + (1 - frac) * log_var
    return mean + torch.exp(0.5 * log_var) * noise


def make_dpm_solver(diffusion: GaussianDiffusion, timesteps: list[int]):
    """diffusers' DPM-Solver++ (2nd order, multistep) on the training betas and our timesteps
    (imported here: diffusers' schedulers pull in scipy.stats, a second per process)."""
    from diffusers import DPMSolverMultistepScheduler

    cfg = diffusion.cfg
    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=diffusion.num_timesteps,
        # zero terminal SNR: diffusers rescales the original betas itself and keeps the last
        # alpha_bar slightly above 0, so its log-SNR stays finite.
        trained_betas=get_betas(cfg.beta_schedule, diffusion.num_timesteps)
        if cfg.zero_terminal_snr else diffusion.betas,
        rescale_betas_zero_snr=cfg.zero_terminal_snr,
        prediction_type=_PREDICTION_TYPES[cfg.prediction],
        algorithm_type="dpmsolver++", solver_order=2, final_sigmas_type="zero",
    )  # learned variances are dropped by us: diffusers' own split assumes 3 (RGB) channels
    scheduler.set_timesteps(timesteps=timesteps)
    return scheduler


def _dpm_solver(model, diffusion, cond, x_t, timesteps, trajectory) -> torch.Tensor:
    scheduler = make_dpm_solver(diffusion, timesteps)
    for t in scheduler.timesteps.tolist():
        x_t = diffusion.standardize(x_t)
        model_output, t_batch = _denoise(model, diffusion, x_t, int(t), cond)
        mean_out, _ = diffusion.split_output(model_output)
        if trajectory is not None:
            pred_x0 = diffusion.pred_xstart(mean_out, x_t, t_batch)
            trajectory.append(diffusion.x_to_heatmap(pred_x0, clamp=False).cpu())
        x_t = scheduler.step(mean_out, int(t), x_t).prev_sample
    return diffusion.x_to_heatmap(x_t, clamp=False)

