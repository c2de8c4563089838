"""The original research code's flags with its meaning: per-sample std division, integer sigma
draws, in-frame-only training, its LR schedule and EMA, its point and KL losses; and the
acceptance runs: each flag trains 2 steps and evaluates."""
import math

import pytest
import torch
import torch.nn.functional as F

from gazefollow.diffusion.gaussian import GaussianDiffusion
from gazefollow.diffusion.sampling import sample
from gazefollow.engine.optimizer import ema_parameters, make_ema, make_lr_scheduler, make_optimizer
from gazefollow.following.models.gaze_model import build_model
from gazefollow.following.objective import heatmap_kl, point_loss, soft_argmax
from gazefollow.tasks import build_config
from main import main
from tests.conftest import TINY, tiny_config


def test_per_sample_std_divides_x_t_by_its_own_std_in_training_and_at_every_step():
    config = build_config(overrides=["diffusion.per_sample_std=true"])
    diffusion = GaussianDiffusion(config.diffusion)
    x = torch.randn(3, 1, 8, 8) * torch.tensor([0.1, 1.0, 7.0]).view(3, 1, 1, 1)
    assert diffusion.standardize(x).std(dim=(1, 2, 3)).tolist() == pytest.approx([1, 1, 1])

    class Recorder:
        seen = []

        def denoise(self, x_t, t, cond):
            self.seen.append(x_t.std(dim=(1, 2, 3)))
            return torch.zeros_like(x_t)  # x0 prediction: the blank map

    sample(Recorder(), diffusion, {}, 3 * torch.randn(2, 1, 8, 8), 4)
    assert len(Recorder.seen) == 4
    assert torch.cat(Recorder.seen).tolist() == pytest.approx([1.0] * 8, abs=1e-5)


def test_random_flag_draws_integer_sigmas_in_7_to_10_in_train_and_test(tiny_world, monkeypatch):
    from gazefollow.following.data import dataset as dataset_module
    from gazefollow.following.data.build import build_datasets
    root, _ = tiny_world
    config = tiny_config(root.parent, "data.sigma_randint=[7,10]")
    seen = []
    real = dataset_module.gaussian_heatmap
    monkeypatch.setattr(dataset_module, "gaussian_heatmap",
                        lambda points, size, sigma: seen.append(sigma) or real(points, size, sigma))
    datasets = build_datasets(config, log=lambda *_: None)
    for split in ("train", "test"):
        seen.clear()
        first = [datasets[split][i]["heatmap"] for i in range(6)]
        assert set(seen) <= {7.0, 8.0, 9.0, 10.0} and len(seen) == 6
        again = [datasets[split][i]["heatmap"] for i in range(6)]  # seeded by sample id
        assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_without_x_loss_the_original_trains_on_in_frame_people_only(tiny_world):
    from gazefollow.following.data.build import build_datasets
    root, _ = tiny_world
    logged = []
    config = tiny_config(root.parent, "data.train_in_frame_only=true", "loss.inout_bce=false")
    datasets = build_datasets(config, splits=("train",), log=logged.append)
    assert all(i.inout for i in datasets["train"].instances)
    assert any("train_in_frame_only kept" in line for line in logged)


def _groups_model(*overrides):
    config = tiny_config(__import__("pathlib").Path("/tmp/unused"), *overrides)
    net = build_model(config)
    return config, net, make_optimizer(net, config.optim)


def test_lr_schedular_warms_up_over_10_percent_of_epochs_then_cosine_on_the_unet_only():
    config, net, optimizer = _groups_model("optim.epochs=20", "optim.lr=0.01",
                                           "optim.lr_schedule=epoch_warmup_cosine",
                                           "optim.schedule_parts=[head]")
    scheduler = make_lr_scheduler(optimizer, config.optim, total_steps=60, steps_per_epoch=3)
    by_epoch = {}
    for step in range(60):
        if step % 3 == 0:
            by_epoch[step // 3] = {g["name"]: g["lr"] for g in optimizer.param_groups}
        optimizer.step()
        scheduler.step()
    # the original's closed form: W = int(0.1 * 20) = 2 warm-up epochs, e / (W - 1), then
    # 0.5 (1 + cos(pi (e - W) / (20 - W)))
    head = [by_epoch[e]["head"] / 0.01 for e in range(20)]
    expected = [0.0, 1.0] + [0.5 * (1 + math.cos(math.pi * (e - 2) / 18)) for e in range(2, 20)]
    assert head == pytest.approx(expected)
    assert {by_epoch[e]["scene"] for e in range(20)} == {0.01}  # the gaze part keeps its lr


def test_ema_on_covers_the_unet_and_in_out_head_at_a_fixed_rate():
    config, net, _ = _groups_model("optim.ema_parts=[head,inout_head]", "optim.ema_fixed=true",
                                   "optim.ema_rate=0.9")
    ema = make_ema(net, config.optim)
    covered = ema_parameters(net, config.optim)
    parts = net.trainable_parts()
    assert len(ema.shadow_params) == len(parts["head"]) + len(parts["inout_head"]) == len(covered)
    weight = covered[0]
    with torch.no_grad():
        weight.fill_(1.0)
        ema.step(covered)  # the first step copies the weights
        weight.fill_(0.0)
        ema.step(covered)  # then decay 0.9, from the second step on
    assert ema.shadow_params[0].flatten()[0].item() == pytest.approx(0.9)
    assert isinstance(make_optimizer(net, build_config(overrides=["optim.optimizer=adam"]).optim),
                      torch.optim.Adam)


def test_soft_argmax_point_and_kl_losses():
    heatmap = torch.zeros(2, 1, 16, 16)
    heatmap[0, 0, 3, 5] = 1.0  # row 3, column 5
    heatmap[1, 0, 10, 2] = 1.0
    points = soft_argmax(heatmap, beta=1000.0)
    assert points.flatten().tolist() == pytest.approx([5 / 16, 3 / 16, 2 / 16, 10 / 16], abs=1e-4)
    batch = {"gaze_points": torch.tensor([[[5 / 16, 3 / 16]], [[0.9, 0.9]]])}
    in_frame = torch.tensor([1.0, 0.0])  # the second (out of frame) does not count
    assert point_loss(heatmap, batch, in_frame, beta=1000.0).item() == pytest.approx(0, abs=1e-6)
    target, predicted = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    reference = torch.nn.KLDivLoss(reduction="batchmean")(
        F.log_softmax(target.flatten(1), dim=1), F.softmax(predicted.flatten(1), dim=1))
    ones = torch.ones(2)
    assert heatmap_kl(predicted, target, ones).item() == pytest.approx(reference.item(), rel=1e-5)


def _argv(tmp_path, *extra):
    return ["--experiment", str(TINY), f"data.dataset_dir={tmp_path / 'world'}",
            f"run.output_dir={tmp_path / 'out'}", "--max_steps", "2", "eval.extra_steps=[]",
            *extra]


@pytest.mark.parametrize("flags", [
    ["--noise_changer", "--mse_loss_weight_type", "max_snr_5", "--attention_layout", "x",
     "--lr_anneal_steps", "10", "--watch_wandb", "logging.wandb=offline", "logging.watch_every=1"],
    ["model.unet_multipliers=[1,2,2]", "--other_loss", "--kl_div_loss",
     "--mse_loss_weight_type", "constant", "--list_unet_attention_levels", "2", "4"],
    ["--other_loss", "--norm_std_flag", "--random_flag", "--ema_on", "--lr_schedular",
     "--cond_drop_prob", "0.5", "--cond_scale", "2.0", "--rescaled_phi", "0.7"],
], ids=["noise-snr-noops-watch", "kl-attention-rates", "point-std-sigma-ema-schedule-cfg"])
def test_each_original_flag_trains_two_steps_and_evaluates(tmp_path, flags):
    results = main(_argv(tmp_path, *flags))
    assert 0 <= results["model"]["auc"] <= 1


def test_classifier_free_guidance_drops_and_guides(tmp_path):
    """(It trains and evaluates with the flags above.)"""
    from gazefollow.following.models.heads import GuidedDenoiser
    config = tiny_config(tmp_path, "diffusion.cond_drop_prob=0.5", "sampling.cond_scale=3")
    head = build_model(config).head
    cond = {"context": torch.randn(2, 5, config.model.context_dim),
            "spatial": torch.randn(2, 4, 4, 4), "field": torch.rand(2, 2, 16, 16)}
    x_t, t = torch.randn(2, 1, 16, 16), torch.tensor([10, 500])
    null = head.null_conditioning(cond, torch.tensor([True, False]))
    assert torch.equal(null["context"][0], cond["context"][0])
    assert torch.equal(null["context"][1], head.null_context[0].expand(5, -1))
    assert null["spatial"][1].abs().sum() == 0
    with torch.no_grad():
        conditional = head.denoise(x_t, t, cond)
        unconditional = head.denoise(x_t, t, head.null_conditioning(cond, torch.zeros(2) > 0))
        guided = GuidedDenoiser(head, config.sampling).denoise(x_t, t, cond)
    assert torch.allclose(guided, unconditional + 3 * (conditional - unconditional), atol=1e-5)
    with pytest.raises(Exception, match="cond_drop_prob > 0"):
        tiny_config(tmp_path, "sampling.cond_scale=2")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback is for machines without CUDA")
def test_the_originals_cuda_and_apex_levels_fall_back_to_the_cpu_in_full_precision(tmp_path,
                                                                                   capsys):
    from gazefollow.config import ConfigError
    from gazefollow.engine.runtime import make_accelerator
    from main import parse
    layers, overrides, _ = parse(["--device", "cuda", "--amp", "O1"])
    config = build_config(layers, overrides)
    assert (config.run.device, config.optim.amp, config.optim.amp_fallback) == ("auto", "fp16",
                                                                                 True)
    assert make_accelerator(config, tmp_path).mixed_precision == "no"
    assert "trains in full precision" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="needs a GPU"):  # our own key stays strict
        make_accelerator(build_config(overrides=["optim.amp=fp16"]), tmp_path)
