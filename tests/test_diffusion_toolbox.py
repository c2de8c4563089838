"""Closed-form checks of the DDPM/ADM toolbox, and every option in a short real run."""
import math

import numpy as np
import pytest
import torch

from gazefollow.diffusion.config import DiffusionConfig
from gazefollow.diffusion.gaussian import GaussianDiffusion, zero_terminal_snr
from gazefollow.diffusion.losses import denoising_losses
from gazefollow.diffusion.sampling import (SAMPLERS, initial_noise, respaced_betas, sample,
                                           trailing_timesteps)
from main import main
from tests.conftest import TINY

T = torch.tensor([0, 1, 10, 250, 500, 999])


def _diffusion(**kw):
    return GaussianDiffusion(DiffusionConfig(**kw))


def _forward(diffusion, channels=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_start = torch.rand(len(T), channels, 6, 6, generator=g) * 2 - 1
    noise = torch.randn(x_start.shape, generator=g)
    return x_start, noise, diffusion.q_sample(x_start, T, noise)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_eps_x0_v_conversions_invert_each_other(prediction):
    diffusion = _diffusion(prediction=prediction)
    x_start, noise, x_t = _forward(diffusion)
    target = diffusion.training_target(x_start, noise, T)
    assert torch.allclose(diffusion.pred_xstart(target, x_t, T), x_start, atol=1e-4)
    assert torch.allclose(diffusion.pred_eps(target, x_t, T)[1:], noise[1:], atol=1e-3)


def test_posterior_matches_the_closed_form():
    diffusion = _diffusion()
    x_start, _, x_t = _forward(diffusion)
    mean, log_var = diffusion.q_posterior(x_start, x_t, T)
    betas = torch.from_numpy(diffusion.betas)
    abar = torch.cumprod(1 - betas, 0)
    for k, t in enumerate(T.tolist()):
        abar_prev = abar[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
        coef_x0 = abar_prev.sqrt() * betas[t] / (1 - abar[t])
        coef_xt = (1 - betas[t]).sqrt() * (1 - abar_prev) / (1 - abar[t])
        expected = coef_x0 * x_start[k].double() + coef_xt * x_t[k].double()
        assert torch.allclose(mean[k].double(), expected, atol=1e-5)
        variance = betas[t] * (1 - abar_prev) / (1 - abar[t])
        if t > 0:  # t = 0 has variance 0; its log is clipped to t = 1's, as in ADM
            assert log_var[k].item() == pytest.approx(math.log(variance), rel=1e-5)


def test_learned_range_stays_between_the_bounds():
    diffusion = _diffusion(learn_sigma=True)
    values = torch.linspace(-1.5, 1.5, 31).view(1, 1, 1, 31).expand(len(T), 1, 1, 31)
    variance = diffusion.learned_log_variance(values, T).exp()
    low = diffusion.posterior_log_variance[T].exp().view(-1, 1, 1, 1)
    high = torch.from_numpy(diffusion.betas)[T].view(-1, 1, 1, 1)
    assert (variance >= low.float() * (1 - 1e-5)).all()
    assert (variance <= high.float() * (1 + 1e-5)).all()
    assert torch.allclose(variance[..., -1], high.float().squeeze(-1), rtol=1e-5)  # v = 1: beta


def test_hybrid_loss_vlb_does_not_reach_the_mean_channels():
    diffusion = _diffusion(learn_sigma=True, prediction="eps", rescale_learned_sigmas=True)
    x_start, noise, x_t = _forward(diffusion)
    output = torch.randn(len(T), 2, 6, 6, requires_grad=True)
    loss, terms = denoising_losses(diffusion, output, x_start, x_t, noise, T)
    loss.sum().backward()
    mse_only = 2 * (output[:, :1].detach() - noise) / noise[0].numel()
    assert torch.allclose(output.grad[:, :1], mse_only, atol=1e-6)  # the VLB adds nothing there
    assert output.grad[:, 1:].abs().sum() > 0  # ... and trains the variance channel
    assert (terms["vb"] >= 0).all() or (T == 0).any()


def test_kl_loss_trains_the_mean_too():
    diffusion = _diffusion(learn_sigma=True, use_kl=True)
    x_start, noise, x_t = _forward(diffusion)
    output = torch.randn(len(T), 2, 6, 6, requires_grad=True)
    loss, _ = denoising_losses(diffusion, output, x_start, x_t, noise, T)
    loss.sum().backward()
    assert output.grad[:, :1].abs().sum() > 0 and output.grad[:, 1:].abs().sum() > 0


def test_respacing_keeps_alphas_cumprod_at_the_retained_steps():
    diffusion = _diffusion()
    for steps in (1, 4, 10, 50):
        timesteps = trailing_timesteps(steps, 999)
        betas = respaced_betas(diffusion, timesteps)  # one per step, descending t
        chain = torch.cumprod(1 - betas.flip(0), 0).flip(0)  # from t = 0 up to each step
        assert torch.allclose(chain, diffusion.alphas_cumprod[timesteps], rtol=1e-10)


def test_zero_terminal_snr():
    betas = _diffusion().betas
    fixed = zero_terminal_snr(betas)
    assert np.cumprod(1 - fixed)[-1] == pytest.approx(0.0, abs=1e-12)
    assert np.cumprod(1 - fixed)[0] == pytest.approx(np.cumprod(1 - betas)[0])
    assert _diffusion(zero_terminal_snr=True, prediction="v").alphas_cumprod[-1].item() == \
        pytest.approx(0.0)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_min_snr_weight_is_the_same_eps_weight_for_every_prediction(prediction):
    diffusion = _diffusion(prediction=prediction, mse_loss_weight_type="min_snr_5")
    snr = diffusion.snr(T)
    eps_weight = torch.clamp(snr, max=5.0) / snr
    factor = {"eps": 1.0, "x0": snr, "v": snr / (snr + 1)}[prediction]  # loss per eps-loss unit
    assert torch.allclose(diffusion.mse_weight(T), eps_weight * factor, rtol=1e-6)


def test_norm_std_standardises_a_ground_truth_heatmap():
    from gazefollow.diffusion.gaussian import norm_std_stats
    from gazefollow.following.data.heatmap import gaussian_heatmap
    cfg = DiffusionConfig(norm_std=True)
    diffusion = GaussianDiffusion(cfg, norm_std_stats(cfg, gaussian_heatmap([[0.5, 0.5]], 64)))
    heatmap = gaussian_heatmap([[0.25, 0.75]], 64, 3.0)  # any whole-pixel centre, off-centre
    x = diffusion.heatmap_to_x(heatmap)
    assert x.std().item() == pytest.approx(1.0, abs=0.05) and abs(x.mean().item()) < 0.05
    assert torch.allclose(diffusion.x_to_heatmap(x), heatmap, atol=1e-5)


class _LinearDenoiser:
    """A fixed random per-pixel linear 'model' with any number of output channels."""

    def __init__(self, channels):
        self.weight = torch.randn(channels, 1, 1, 1, generator=torch.Generator().manual_seed(1))

    def denoise(self, x_t, t, cond):
        return torch.tanh(x_t * self.weight.transpose(0, 1) + t.float().view(-1, 1, 1, 1) / 999)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("learn_sigma", [False, True])
def test_every_sampler_shape_and_determinism(sampler, learn_sigma):
    diffusion = _diffusion(prediction="v", learn_sigma=learn_sigma)
    model = _LinearDenoiser(2 if learn_sigma else 1)
    x_T = initial_noise([3, 4], (1, 8, 8), seed=0)
    for steps in (1, 2, 5):
        def step_noise(i):
            return initial_noise([3, 4], (1, 8, 8), seed=1, draw=i + 1)
        first = sample(model, diffusion, {}, x_T, steps, sampler, step_noise=step_noise)
        again = sample(model, diffusion, {}, x_T, steps, sampler, step_noise=step_noise)
        assert first.shape == (2, 1, 8, 8) and torch.isfinite(first).all()
        assert torch.equal(first, again)


def test_eval_from_picture_starts_at_time_noise():
    from gazefollow.following.data.heatmap import center_prior_heatmap
    diffusion = _diffusion(prediction="x0")
    seen = []

    class Recorder(_LinearDenoiser):
        def denoise(self, x_t, t, cond):
            seen.append(int(t[0]))
            return super().denoise(x_t, t, cond)

    sample(Recorder(1), diffusion, {}, initial_noise([0], (1, 8, 8), 0), 3, "ddim",
           start_picture=center_prior_heatmap(8), start_timestep=300)
    assert seen == trailing_timesteps(3, 300) == [300, 200, 99]


OPTIONS = {
    "eps": ["--predict_sthg", "pred_noise"],
    "v": ["--adm_predict_v"],
    "learned sigma, hybrid loss": ["--adm_learn_sigma", "--adm_rescale_learned_sigmas",
                                   "diffusion.sampler=ddpm", "--sample_time_steps", "3"],
    "learned sigma, KL loss": ["--adm_learn_sigma", "--adm_use_kl", "--adm"],
    "zero terminal SNR, DPM-Solver++": ["--fix_snr", "--adm_predict_v",
                                        "diffusion.sampler=dpm_solver", "--sample_time_steps", "2"],
    "cosine, rescaled timesteps, offset noise": [
        "diffusion.beta_schedule=cosine", "--adm_rescale_timesteps", "--offset_noise_strength",
        "0.1", "--noise_changer", "--train_time_steps", "200"],
    "min-SNR weight, norm_std, random radius": [
        "--mse_loss_weight_type", "min_snr_5", "--norm_std_flag", "--random_flag"],
    "clip, from a noised picture": ["--clip_denoised", "--eval_from_picture", "--time_noise",
                                    "400", "--sample_time_steps", "2"],
    "no in/out loss weight": ["loss.x_loss=false"],
    "regression decoder": ["model.decoder=regression"],
}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_option_trains_and_evaluates_from_the_command_line(name, tiny_world, tmp_path):
    root, _ = tiny_world
    results = main(["--experiment", str(TINY), f"data.dataset_dir={root}",
                    f"run.output_dir={tmp_path}", "--max_steps", "2", *OPTIONS[name]])
    assert 0 <= results["model"]["auc"] <= 1 and math.isfinite(results["model"]["avg_l2"])
