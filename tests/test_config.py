import pytest

from gazefollow.config import ConfigError
from gazefollow.tasks import build_config
from main import DEFAULT_EXPERIMENT, parse


def test_typo_raises_with_suggestion():
    with pytest.raises(ConfigError, match="diffusion.prediction"):
        build_config(overrides=["diffusion.predicton=x0"])


def test_typo_in_yaml_raises_with_suggestion(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  scene_layrs: [1, 1]\n")
    with pytest.raises(ConfigError, match="model.scene_layers"):
        build_config([bad])


def test_wrong_type_and_bad_choice_refused():
    with pytest.raises(ConfigError):
        build_config(overrides=["data.batch_size=many"])
    with pytest.raises(ConfigError, match="prediction"):
        build_config(overrides=["diffusion.prediction=noise"])


def test_override_applies_over_yaml():
    layers, overrides, _ = parse(["optim.lr=0.5", "model.scene_layers=[2,2]"])
    config = build_config(layers, overrides)
    assert config.optim.lr == 0.5
    assert config.model.scene_layers == [2, 2]


def test_default_experiment_only_without_yaml_files():
    layers, _, _ = parse([])
    assert layers[-1] == DEFAULT_EXPERIMENT
    layers, _, _ = parse(["--yaml_diffusion", "configs/diffusion.yaml",
                          "--yaml_gaze", "configs/gaze.yaml"])
    assert DEFAULT_EXPERIMENT not in layers


@pytest.mark.parametrize("argv, key, expected", [
    (["--adm_predict_xstart"], "diffusion.prediction", "x0"),
    (["--predict_sthg", "pred_noise"], "diffusion.prediction", "eps"),
    (["--amp", "O1"], "optim.amp", "fp16"),
    (["--amp", "O2"], "optim.amp", "fp16"),  # apex levels are all float16
    (["--amp", "O3"], "optim.amp", "fp16"),
    (["--list_resnet_scene_layers", "2", "3"], "model.scene_layers", [2, 3]),
    (["--list_resnet_face_layers", "1,2,1"], "model.face_layers", [1, 2, 1]),
    (["--no_wandb"], "logging.wandb", "disabled"),
    (["--no_resume"], "run.resume", False),
    (["--no_save"], "run.keep_last", 1),
    (["--lr_schedular"], "optim.lr_schedule", "epoch_warmup_cosine"),
    (["--lr_schedular"], "optim.schedule_parts", ["head"]),  # the UNet group only
    (["--ema_on"], "optim.ema_parts", ["head", "inout_head"]),
    (["--ema_on"], "optim.ema_fixed", True),
    (["--random_flag"], "data.sigma_randint", [7, 10]),
    (["--norm_std_flag"], "diffusion.per_sample_std", True),
    (["--other_loss", "--kl_div_loss"], "loss.kl_div_loss", True),
    (["--source_dataset_dir", "/data/gf"], "data.dataset_dir", "/data/gf"),
    (["--unet_context_vector", "64"], "model.context_dim", 64),
    (["--is_subsample_test_set"], "data.subsample_test", False),  # the original's store_false
    (["--quick_val", "50"], "data.subsample_size", 50),
    (["--evaluate_every", "5"], "eval.evaluate_every_epochs", 5),  # the original counts epochs
    (["--save_every", "2"], "run.save_every_epochs", 2),
    (["--gaze_point_threshold", "0.9"], "data.annotator_quantile", 0.9),
    (["--tag", "trial_gaze", "--max_steps", "2"], "run.max_steps", 2),
])
def test_legacy_flag_maps_to_key(argv, key, expected):
    layers, overrides, _ = parse(argv)
    config = build_config(layers, overrides)
    section, name = key.split(".")
    assert getattr(getattr(config, section), name) == expected


def test_adm_combines_but_conflicting_prediction_flags_are_refused():
    layers, overrides, _ = parse(["--adm", "--adm_predict_xstart"])
    assert build_config(layers, overrides).diffusion.prediction == "x0"
    with pytest.raises(ConfigError, match="conflicting flags"):
        parse(["--adm_predict_xstart", "--adm_predict_v"])


def test_flag_values_are_typed_by_the_schema():
    layers, overrides, _ = parse(["--tag", "007", "--batch_size", "16"])
    config = build_config(layers, overrides)
    assert config.run.tag == "007" and config.data.batch_size == 16


def test_list_flag_swallowing_an_override_names_the_flag():
    with pytest.raises(ConfigError, match="--list_resnet_scene_layers takes integers"):
        parse(["--list_resnet_scene_layers", "2", "3", "optim.lr=0.5"])


def test_out_of_range_values_are_refused():
    for bad in ["diffusion.sample_time_steps=0", "run.save_every=0", "data.val_fraction=0",
                "eval.extra_steps=[2000]", "model.unet_inout_channels=2"]:
        with pytest.raises(ConfigError):
            build_config(overrides=[bad])


def test_eval_weights_refuses_training_yaml_layers():
    with pytest.raises(ConfigError, match="checkpoint's own config"):
        parse(["--eval_weights", "run", "--yaml_gaze", "configs/gaze.yaml"])
    layers, overrides, weights = parse(["eval.eval_weights=run", "eval.split=val"])
    assert weights == "run" and overrides == ["eval.split=val"] and layers == []


def test_an_option_of_another_encoder_is_refused_not_ignored():
    layers, overrides, _ = parse(["--adm_attention_module"])
    with pytest.raises(ConfigError, match="option of the original encoder"):
        build_config(layers, overrides)
    with pytest.raises(ConfigError, match="only acts with loss.other_loss"):
        build_config(*parse(["--kl_div_loss"])[:2])


def test_unknown_flag_suggests():
    with pytest.raises(ConfigError, match="--batch_size"):
        parse(["--batch_sise", "4"])


def test_eval_weights_flag_is_returned():
    _, _, weights = parse(["--eval_weights", "outputs/run"])
    assert weights == "outputs/run"


@pytest.mark.parametrize("override, message", [
    ("optim.part_lr.scen=1e-5", r"optim.part_lr has the key 'scen'.*'inout_head'.*'scene'\?"),
    ("optim.part_weight_decay.unet=0.1", r"optim.part_weight_decay has the key 'unet'"),
    ("optim.part_lr.face=0", r"optim.part_lr.face=0.0 must be > 0"),
    ("run.init_resnet_parts=[scene,body]", r"run.init_resnet_parts has 'body'"),
    ("run.init_format=timm", r"run.init_format='timm' is not one of"),
])
def test_per_part_and_init_weights_keys_are_checked(override, message):
    with pytest.raises(ConfigError, match=message):
        build_config(overrides=[override])
    good = build_config(overrides=["optim.part_lr.scene=1e-5", "optim.part_weight_decay.face=0"])
    assert good.optim.part_lr == {"scene": 1e-5} and good.optim.part_weight_decay == {"face": 0}


def test_a_string_key_keeps_words_yaml_reads_as_booleans():
    config = build_config(overrides=["optim.amp=no", "run.tag=off", "run.device=cpu"])
    assert (config.optim.amp, config.run.tag, config.run.device) == ("no", "off", "cpu")
