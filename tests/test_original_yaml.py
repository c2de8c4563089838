"""The original research code's YAML files run unchanged: their sections and flag-named keys
are translated through the one legacy map in gazefollow/original/legacy.py."""
import pytest

from gazefollow.config import ConfigError
from gazefollow.tasks import build_config
from main import main, parse

# The original's last committed diffusion.yaml and gaze.yaml (their values; its comments left
# out), as a user of the original has them.
ORIGINAL_DIFFUSION = """
Dataset:
  source_dataset: "gazefollow"
  source_dataset_dir: "gaze/datasets/gazefollow_extended"
  num_workers: 8
  gaze_point_threshold : 0
  init_weights : "pretrained/init_weights.pt"
  eval_weights :
  lr: 2.5e-4
  epochs: 60
  evaluate_every: 5
  save_every: 5
  print_every: 10
  no_resume: false
  output_dir: "output"
  amp: 'O1'
  no_wandb: false
  no_save: false
  batch_size: 16
  input_size: 224
  output_size: 64
  weight_decay: 0
  ema_rate: 0.9999
  device: "cuda"
  channels_last: false
Diffusion:
  unet_inout_channels: 1
  unet_inplanes: 8
  unet_residual: 1
  list_unet_inplanes_multipliers: [1, 2, 3, 4]
  list_unet_attention_levels: [2, 4, 8]
  unet_spatial_tf_heads: 4
  unet_spatial_tf_layers: 1
  unet_context_vector: 1024
  watch_wandb: true
  train_time_steps: 1000
  sample_time_steps: 50
  unet_dropout: 0.0
  inout_weight: 100
  diffuion_weight: 100000
  adm: false
  adm_predict_xstart: true
  adm_predict_v: false
  adm_use_kl: false
  adm_rescale_timesteps: false
  adm_rescale_learned_sigmas: false
  adm_learn_sigma: false
  adm_attention_module: false
  conv_resample: true
  resblock_updown: false
  use_scale_shift_norm: true
experiment_parameter:
  diff_normalization: 0.1
  norm_std_flag: true
  random_flag: true
  random_sigma: 3
  is_subsample_test_set: false
  Debugging_maps: false
  eval_from_picture: false
  clip_denoised: false
  lr_schedular: false
  fix_snr : false
  offset_noise_strength: 0.1
  noise_changer: false
  ema_on: false
  lr_anneal_steps: 0
losses_parameters:
  kl_div_loss: false
  x_loss: True
  other_loss: false
  mse_loss_weight_type: "constant"
"""
ORIGINAL_GAZE = """
Gaze:
    list_resnet_scene_layers: [3, 4, 6, 3, 2]
    list_resnet_face_layers: [3, 4, 6, 3, 2]
    list_resnet_depth_layers: [3, 4, 6, 3, 2]
    resnet_scene_inplanes: 64
    resnet_face_inplanes: 64
    resnet_depth_inplanes: 64
    adm_attention_module: false
    freeze_scene: false
    freeze_face: false
    depth_flag: false
"""


def _files(tmp_path, diffusion=ORIGINAL_DIFFUSION, gaze=ORIGINAL_GAZE):
    (tmp_path / "diffusion.yaml").write_text(diffusion)
    (tmp_path / "gaze.yaml").write_text(gaze)
    return ["--yaml_diffusion", str(tmp_path / "diffusion.yaml"), "--yaml_gaze",
            str(tmp_path / "gaze.yaml")]


def _config(argv):
    layers, overrides, _ = parse(argv)
    return build_config(layers, overrides)


def test_the_original_files_translate_to_typed_keys(tmp_path, capsys):
    config = _config([*_files(tmp_path), "--tag", "trial_gaze"])
    expected = {
        "run.tag": "trial_gaze", "run.device": "auto", "optim.amp_fallback": True,
        "run.init_weights": "pretrained/init_weights.pt", "run.resume": True,
        "run.output_dir": "output",
        "data.dataset_dir": "gaze/datasets/gazefollow_extended", "data.num_workers": 8,
        "data.batch_size": 16, "data.heatmap_sigma": 3.0, "data.subsample_test": False,
        "optim.lr": 2.5e-4, "optim.epochs": 60, "optim.amp": "fp16", "optim.ema_rate": 0.9999,
        "optim.ema_on": False, "model.unet_multipliers": [1, 2, 3, 4],
        "model.unet_attention_levels": [1, 2, 3],  # downsample rates 2, 4, 8
        "model.context_dim": 1024, "model.unet_scale_shift_norm": True,
        "model.scene_layers": [3, 4, 6, 3, 2], "model.face_layers": [3, 4, 6, 3, 2],
        "logging.watch_wandb": True, "sampling.steps": 50, "sampling.clip_denoised": False,
        "diffusion.prediction": "x0", "diffusion.diff_normalization": 0.1,
        "diffusion.per_sample_std": True, "data.sigma_randint": [7, 10],
        "diffusion.norm_std": False, "diffusion.random_sigma": False,
        # the original model and the parts of its recipe its code fixes
        "model.encoder": "original", "model.unet_norm_groups": 8, "model.inout_hidden": 512,
        "optim.optimizer": "adam", "diffusion.timestep_sampling": "uniform",
        "model.depth_branch": False, "model.depth_layers": [3, 4, 6, 3, 2],
        "diffusion.noise_changer": False, "diffusion.noise_changer_strength": 0.1,
        "diffusion.mse_loss_weight_type": "constant", "loss.inout_bce": True,
        "loss.inout_weight": 100.0, "loss.heatmap_weight": 100000.0,
        "eval.eval_weights": None,
    }
    for dotted, value in expected.items():
        section, key = dotted.split(".")
        assert getattr(getattr(config, section), key) == value, dotted


def test_a_command_line_flag_still_wins_over_the_files(tmp_path):
    config = _config([*_files(tmp_path), "--batch_size", "4", "--amp", "O0"])
    assert config.data.batch_size == 4 and config.optim.amp == "no"


def test_unknown_and_unsupported_keys_are_refused_with_the_file_and_section(tmp_path):
    typo = ORIGINAL_DIFFUSION.replace("unet_inplanes: 8", "unet_inplane: 8")
    with pytest.raises(ConfigError, match=r"section Diffusion, key 'unet_inplane'.*"
                                          r"Did you mean 'unet_inplanes'"):
        _config(_files(tmp_path, diffusion=typo))
    updown = ORIGINAL_DIFFUSION.replace("resblock_updown: false", "resblock_updown: true")
    with pytest.raises(ConfigError, match="resblock_updown'.*not yet supported"):
        _config(_files(tmp_path, diffusion=updown))
    depth = ORIGINAL_GAZE.replace("depth_flag: false", "depth_flag: true")
    with pytest.raises(ConfigError, match="set data.depth_suffix"):
        _config(_files(tmp_path, gaze=depth))
    mixed = ORIGINAL_GAZE + "model:\n  head: regression\n"
    with pytest.raises(ConfigError, match="mixes the original's sections"):
        _config(_files(tmp_path, gaze=mixed))


TINY_ORIGINAL = """
Dataset:
  source_dataset: "gazefollow"
  source_dataset_dir: "{world}"
  num_workers: 0
  output_dir: "{out}"
  batch_size: 8
  input_size: 32
  output_size: 16
  epochs: 1
  amp: 'O1'  # the original's values: full precision on the CPU when no GPU is present
  device: "cuda"
  no_wandb: true
  eval_weights :
Diffusion:
  unet_inplanes: 8
  list_unet_inplanes_multipliers: [1, 2]
  list_unet_attention_levels: [2]
  unet_spatial_tf_heads: 2
  unet_context_vector: 128
  sample_time_steps: 1
  inout_weight: 100
  diffuion_weight: 1000
  adm_predict_xstart: true
  use_scale_shift_norm: true
experiment_parameter:
  norm_std_flag: false
  offset_noise_strength: 0.1
  noise_changer: true
losses_parameters:
  x_loss: true
  mse_loss_weight_type: "constant"
"""
TINY_GAZE = """
Gaze:
    list_resnet_scene_layers: [1, 1, 1, 1, 1]
    list_resnet_face_layers: [1, 1, 1, 1, 1]
    resnet_scene_inplanes: 8
    resnet_face_inplanes: 8
    depth_flag: false
"""


def test_original_layout_files_train_and_evaluate_through_main(tiny_world, tmp_path):
    root, _ = tiny_world
    diffusion = TINY_ORIGINAL.format(world=root, out=tmp_path / "output")
    argv = [*_files(tmp_path, diffusion, TINY_GAZE), "--tag", "trial_gaze", "--max_steps", "2",
            "data.face_size=16", "eval.extra_steps=[]"]
    results = main(argv)
    assert 0 <= results["model"]["auc"] <= 1
    run_dir = tmp_path / "output" / "gazefollow-diffusion-x0" / "trial_gaze"
    assert (run_dir / "metrics.json").is_file()


@pytest.mark.parametrize("argv, key, expected", [
    (["--list_unet_attention_levels", "2", "4"], "model.unet_attention_levels", [1, 2]),
    (["--list_unet_attention_levels", "1"], "model.unet_attention_levels", [0]),
    (["--mse_loss_weight_type", "constant"], "diffusion.mse_loss_weight_type", "constant"),
    (["--offset_noise_strength", "0.3"], "diffusion.noise_changer_strength", 0.3),
])
def test_legacy_flags_with_the_original_meaning(argv, key, expected):
    section, name = key.split(".")
    assert getattr(getattr(_config(argv), section), name) == expected


def test_offset_noise_acts_only_with_noise_changer_as_in_the_original():
    from gazefollow.diffusion.gaussian import GaussianDiffusion
    alone = _config(["--offset_noise_strength", "0.3"]).diffusion
    assert GaussianDiffusion(alone).offset_strength() == 0.0
    gated = _config(["--offset_noise_strength", "0.3", "--noise_changer"]).diffusion
    assert GaussianDiffusion(gated).offset_strength() == 0.3
    ours = _config(["diffusion.offset_noise_strength=0.2"]).diffusion  # our key acts alone
    assert GaussianDiffusion(ours).offset_strength() == 0.2
    with pytest.raises(ConfigError, match="rates"):
        _config(["--list_unet_attention_levels", "3"])


def test_flags_the_original_never_read_are_accepted_with_a_notice(tiny_world, tmp_path, capsys):
    root, _ = tiny_world
    from tests.conftest import TINY
    main(["--experiment", str(TINY), f"data.dataset_dir={root}", f"run.output_dir={tmp_path}",
          "--max_steps", "1", "--attention_layout", "other", "--lr_anneal_steps", "10"])
    err = capsys.readouterr().err
    assert "--attention_layout: the original research code declares it but never reads" in err
    assert "--lr_anneal_steps" in err


def test_gaze_point_threshold_is_the_originals_annotator_outlier_filter():
    import numpy as np

    from gazefollow.following.data.build import drop_annotator_outliers
    from gazefollow.following.data.instances import HeadInstance
    rng = np.random.default_rng(0)
    heads = [HeadInstance(i, f"test/{i}.jpg", np.array([1, 1, 5, 5.0]),
                          rng.uniform(0, 1, size=(int(rng.integers(1, 6)), 2)), 1)
             for i in range(12)]
    # the original: every point's distance from its head's mean, sorted; the limit is the
    # value at index int(n * q); farther points dropped, emptied heads dropped
    distances = [np.linalg.norm(h.gaze_points - h.gaze_points.mean(0), axis=1) for h in heads]
    every = sorted(np.concatenate(distances).tolist())
    limit = every[int(len(every) * 0.6)]
    expected = [h.gaze_points[d <= limit] for h, d in zip(heads, distances)]
    kept = drop_annotator_outliers(heads, 0.6, log=lambda *_: None)
    assert [len(h.gaze_points) for h in kept] == [len(e) for e in expected if len(e)]
    for head, points in zip(kept, [e for e in expected if len(e)]):
        assert np.array_equal(head.gaze_points, points)


def test_save_and_evaluate_every_count_epochs(tiny_world, tmp_path, capsys):
    from gazefollow.engine.checkpoint import complete_checkpoints
    from tests.conftest import TINY
    root, _ = tiny_world
    main(["--experiment", str(TINY), f"data.dataset_dir={root}", f"run.output_dir={tmp_path}",
          "--max_steps", "8", "optim.epochs=2", "run.save_every=1000", "run.keep_last=0",
          "--save_every", "1", "--evaluate_every", "1"])  # 4 steps per epoch
    run_dir = tmp_path / "synthetic-diffusion-x0" / "tiny"
    assert [d.name for d in complete_checkpoints(run_dir)] == ["step_0000004", "step_0000008"]
    out = capsys.readouterr().out
    assert "step 4 validation" in out and "step 8 validation" in out
    assert "step 2 validation" not in out


@pytest.mark.parametrize("kind", ["min_snr_5", "max_snr_5", "trunc_snr", "snr", "inv_snr"])
def test_every_original_mse_weight_with_x0_prediction_is_the_originals(kind):
    """The original's x_0 weights: min(SNR, k), max(SNR, k), max(SNR, 1), SNR and 1 / SNR."""
    import torch

    from gazefollow.diffusion.config import DiffusionConfig
    from gazefollow.diffusion.gaussian import GaussianDiffusion
    diffusion = GaussianDiffusion(DiffusionConfig(prediction="x0", mse_loss_weight_type=kind))
    t = torch.tensor([0, 10, 250, 500, 999])
    snr = diffusion.snr(t)
    expected = {"min_snr_5": torch.clamp(snr, max=5.0), "max_snr_5": torch.clamp(snr, min=5.0),
                "trunc_snr": torch.clamp(snr, min=1.0), "snr": snr, "inv_snr": 1 / snr}[kind]
    assert torch.allclose(diffusion.mse_weight(t), expected, rtol=1e-5)
    _config(["--mse_loss_weight_type", kind])  # accepted from the command line
