import math

import pytest
import torch

from gazefollow.diffusion.config import DiffusionConfig
from gazefollow.diffusion.gaussian import GaussianDiffusion, get_betas
from gazefollow.diffusion.sampling import initial_noise, keyed_noise, sample, trailing_timesteps


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_pred_xstart_inverts_the_training_target(prediction):
    diffusion = GaussianDiffusion(DiffusionConfig(prediction=prediction))
    x_start = torch.rand(4, 1, 8, 8) * 2 - 1
    noise = torch.randn_like(x_start)
    t = torch.tensor([0, 10, 500, 999])
    x_t = diffusion.q_sample(x_start, t, noise)
    target = diffusion.training_target(x_start, noise, t)
    assert torch.allclose(diffusion.pred_xstart(target, x_t, t), x_start, atol=1e-3)


def test_q_sample_statistics():
    diffusion = GaussianDiffusion(DiffusionConfig())
    x_start = torch.full((20000, 1, 1, 1), 0.7)
    t = torch.full((20000,), 300)
    x_t = diffusion.q_sample(x_start, t, torch.randn_like(x_start))
    abar = diffusion.alphas_cumprod[300].item()
    assert x_t.mean().item() == pytest.approx(abar**0.5 * 0.7, abs=0.02)
    assert x_t.var().item() == pytest.approx(1 - abar, abs=0.02)


def test_heatmap_mapping_round_trips():
    diffusion = GaussianDiffusion(DiffusionConfig(diff_normalization=0.1))
    heatmap = torch.rand(2, 1, 4, 4)
    x = diffusion.heatmap_to_x(heatmap)
    assert x.min() >= -0.1 and x.max() <= 0.1
    assert torch.allclose(diffusion.x_to_heatmap(x), heatmap, atol=1e-6)


def test_betas_schedules():
    linear = get_betas("linear", 1000)
    assert linear[0] == pytest.approx(1e-4) and linear[-1] == pytest.approx(0.02)
    cosine = get_betas("cosine", 1000)
    assert (cosine > 0).all() and cosine.max() <= 0.999


def test_sqrt_timestep_sampling_favours_noise():
    cfg = DiffusionConfig(timestep_sampling="sqrt")
    t = GaussianDiffusion(cfg).sample_timesteps(20000, "cpu", torch.Generator().manual_seed(0))
    assert t.max() <= 999 and t.float().mean().item() == pytest.approx(666, abs=15)


@pytest.mark.parametrize("steps", [1, 2, 4, 10])
def test_trailing_steps_start_at_the_last_timestep(steps):
    timesteps = trailing_timesteps(steps, 999)
    assert timesteps[0] == 999 and len(timesteps) == steps  # 1 step: t=999, never t=0
    assert timesteps == sorted(set(timesteps), reverse=True) and timesteps[-1] >= 0


class _ConstantX0:
    """A 'model' whose x0 prediction is a fixed map: DDIM must return exactly that map."""

    def __init__(self, x0):
        self.x0 = x0

    def denoise(self, x_t, t, cond):
        return self.x0.expand_as(x_t)


def test_one_step_ddim_with_x0_model_returns_its_prediction():
    diffusion = GaussianDiffusion(DiffusionConfig(prediction="x0"))
    heatmap = torch.zeros(1, 1, 8, 8)
    heatmap[..., 3, 5] = 1.0
    model = _ConstantX0(diffusion.heatmap_to_x(heatmap))
    x_T = initial_noise([0, 1], (1, 8, 8), seed=0)
    for steps in (1, 3, 6, 7):  # 6 and 7 trailing steps end at t=0, not below it
        out = sample(model, diffusion, {}, x_T, steps, "ddim")
        assert torch.allclose(out, heatmap.expand(2, -1, -1, -1), atol=1e-5)


def test_initial_noise_depends_on_id_not_batch():
    together = initial_noise([5, 9, 11], (1, 4, 4), seed=2)
    alone = initial_noise([9], (1, 4, 4), seed=2)
    assert torch.equal(together[1], alone[0])
    assert not torch.equal(together[0], together[1])


def _keyed_reference(seed: int, sample_id: int, draw: int, count: int) -> list[float]:
    """keyed_noise written out in Python integers and math, one element at a time."""
    low = 0xFFFFFFFF

    def mix(x):
        x &= low
        x = ((x ^ (x >> 16)) * 0x21F0AAAD) & low
        x = ((x ^ (x >> 15)) * 0x735A2D97) & low
        return x ^ (x >> 15)
    key = mix(mix(mix(seed & low) + (sample_id & low)) + (draw & low))
    uniform = [((mix(mix(key + c * 0x9E3779B9) ^ key) >> 8) + 0.5) / 2 ** 24
               for c in range(2 * count)]
    return [math.sqrt(-2 * math.log(uniform[c])) * math.cos(2 * math.pi * uniform[count + c])
            for c in range(count)]


def test_keyed_noise_is_the_written_out_hash_and_depends_on_id_not_batch():
    together = keyed_noise([5, 9, 11], (1, 4, 4), seed=2, draw=3)
    assert torch.equal(together[1], keyed_noise([9], (1, 4, 4), seed=2, draw=3)[0])
    reference = torch.tensor(_keyed_reference(2, 9, 3, 16)).view(1, 4, 4)
    assert torch.allclose(together[1], reference.float(), atol=1e-5)
    assert not torch.equal(together[0], together[1])
    assert not torch.equal(keyed_noise([9], (1, 4, 4), 2, draw=4), together[1:2])
    assert not torch.equal(keyed_noise([9], (1, 4, 4), 3, draw=3), together[1:2])


def test_keyed_noise_is_standard_normal_and_uncorrelated():
    from scipy.stats import kstest

    noise = keyed_noise(list(range(64)), (1, 32, 32), seed=0).view(64, -1)
    assert kstest(noise.flatten().double().numpy(), "norm").pvalue > 1e-3
    correlation = torch.corrcoef(noise)
    off_diagonal = correlation[~torch.eye(64, dtype=torch.bool)]
    assert off_diagonal.abs().max() < 0.15  # 1,024 values each: chance alone stays below
    neighbours = torch.corrcoef(torch.stack([noise[:, :-1].flatten(), noise[:, 1:].flatten()]))
    assert abs(float(neighbours[0, 1])) < 0.02
