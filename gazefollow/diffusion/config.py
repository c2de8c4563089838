"""The config sections of the diffusion head: ``diffusion`` (what training fixes) and
``sampling`` (chosen at evaluation time). Gaze following's task adds them to the schema."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DiffusionConfig:
    """What training fixes: the schedule, the prediction type and the loss."""

    train_time_steps: int = 1000
    beta_schedule: str = "linear"  # linear | cosine
    prediction: str = "x0"  # eps | x0 | v
    diff_normalization: float = 1.0  # heatmap [0,1] -> [-s, s] inside diffusion
    timestep_sampling: str = "sqrt"  # uniform | sqrt (t = T * sqrt(u): biased to high noise)
    norm_std: bool = False  # standardise x_start by one ground-truth heatmap's mean and std
    # the original's --norm_std_flag: x_t divided by its own per-sample std after noising and
    # after every sampling step
    per_sample_std: bool = False
    random_sigma: bool = False  # training targets with sigma x U(0.5, 1.5) (data.heatmap_sigma)
    learn_sigma: bool = False  # ADM learned_range variances (UNet outputs 2 channels per map)
    use_kl: bool = False  # train on the variational bound alone (ADM's KL loss)
    rescale_learned_sigmas: bool = False  # hybrid VLB weight T/1000 (KL loss: times T)
    rescale_timesteps: bool = False  # the denoiser sees t * 1000 / T
    zero_terminal_snr: bool = False  # Lin et al. 2024; needs x0 or v prediction
    offset_noise_strength: float = 0.0  # std of a per-map constant added to the noise
    # The original's offset noise: on with noise_changer, at noise_changer_strength (its
    # --offset_noise_strength, default 0.1); an alternative to offset_noise_strength.
    noise_changer: bool = False
    noise_changer_strength: float = 0.1
    # none (the original's "constant") | min_snr_<gamma> (e.g. min_snr_5) | max_snr_<gamma>
    # | trunc_snr | snr | inv_snr
    mse_loss_weight_type: str = "none"
    # Classifier-free guidance (Ho & Salimans 2022; the original's later versions): the share of
    # training samples whose conditioning is replaced by a learned null one; 0 = off
    cond_drop_prob: float = 0.0

    CHOICES = {"beta_schedule": ("linear", "cosine"), "prediction": ("eps", "x0", "v"),
               "timestep_sampling": ("uniform", "sqrt")}
    RENAMED = {"diffusion.random_flag": "random_sigma", "diffusion.fix_snr": "zero_terminal_snr"}


@dataclass
class SamplingConfig:
    """Chosen at evaluation time, never baked into a checkpoint."""

    sampler: str = "ddim"  # ddim | ddpm (ancestral) | dpm_solver (DPM-Solver++)
    steps: int = 1  # sampler steps
    clip_denoised: bool = True  # clamp predicted x_0 to the heatmap range between steps
    start_from_picture: bool = False  # start from the centre prior noised to start_timestep
    start_timestep: int = 0  # the timestep of that start
    # Classifier-free guidance (needs diffusion.cond_drop_prob > 0 in training): the output is
    # null + cond_scale x (conditional - null); 1 = off. rescaled_phi mixes in the guided
    # output rescaled to the conditional output's std (Lin et al. 2024); 0 = off
    cond_scale: float = 1.0
    rescaled_phi: float = 0.0
    # The denoiser call of every step through torch.compile (whole graph, static shapes):
    # none | default | reduce-overhead (CUDA graphs on a GPU) | max-autotune | eager (captured,
    # run without code generation: checks that a step can be captured)
    compile: str = "none"
    # x_T (and DDPM's step noise), set by (seed, sample id, draw) alone either way: generator
    # (one torch generator per sample on the host: the stream the documented results used) |
    # keyed (counter-based, the whole batch in a few operations on the device)
    noise: str = "generator"

    CHOICES = {"sampler": ("ddim", "ddpm", "dpm_solver"),
               "compile": ("none", "default", "reduce-overhead", "max-autotune", "eager"),
               "noise": ("generator", "keyed")}
    # where earlier versions kept these keys
    RENAMED = {"diffusion.sampler": "sampler", "diffusion.sample_time_steps": "steps",
               "diffusion.clip_denoised": "clip_denoised",
               "diffusion.eval_from_picture": "start_from_picture",
               "diffusion.time_noise": "start_timestep"}
