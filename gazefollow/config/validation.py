"""Checks of a merged configuration: a value that cannot run fails here, naming the key."""
from __future__ import annotations

from typing import Any


from gazefollow.config.legacy import LEGACY_FLAGS
from gazefollow.config.schema import (CHOICES, NOT_YET_SUPPORTED, Config, ConfigError, ModelConfig,
                                      _suggest)



def get_key(config: Config, dotted: str) -> Any:
    """config.section.key from "section.key"."""
    obj = config
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj



def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _validate_parts(config: Config) -> None:
    """Per-part optimiser settings, frozen parts and the ResNet parts an ImageNet file
    initialises, against the parts the chosen encoder declares (its registry entry)."""
    from gazefollow.models.encoders import encoder_class, model_parts

    try:
        encoder = encoder_class(config.model.encoder)
    except KeyError as err:
        raise ConfigError(f"model.encoder: {err.args[0]}") from None
    problem = encoder.config_problem(config.model, config.data)
    _check(problem is None, f"model.encoder={config.model.encoder}: {problem}")
    _validate_part_tables(config, list(model_parts(encoder)))
    for part in frozen_parts(config.model):
        _check(part in encoder.PARTS, f"model.freeze_{part}: the encoder "
               f"'{config.model.encoder}' has no part '{part}' (its parts: {list(encoder.PARTS)})")
    for part in config.run.init_resnet_parts:
        _check(part in encoder.RESNET_PARTS, f"run.init_resnet_parts has '{part}'; the ResNet "
               f"parts of the encoder '{config.model.encoder}' are {list(encoder.RESNET_PARTS)}")


def _validate_part_tables(config: Config, parts: list[str]) -> None:
    """The optim tables keyed by part name name parts of the model, with usable values."""
    optim = config.optim
    for key, table in (("optim.part_lr", optim.part_lr),
                       ("optim.part_weight_decay", optim.part_weight_decay),
                       ("optim.ema_parts", optim.ema_parts),
                       ("optim.schedule_parts", optim.schedule_parts)):
        for part in table:
            _check(part in parts, f"{key} has the key '{part}', which is not a model part; "
                   f"the parts are {parts}.{_suggest(part, parts)}")
    for part, lr in optim.part_lr.items():
        _check(lr > 0, f"optim.part_lr.{part}={lr} must be > 0 (freeze an encoder instead)")
    for part, decay in optim.part_weight_decay.items():
        _check(decay >= 0, f"optim.part_weight_decay.{part}={decay} must be >= 0")
    named = config.run.init_resnet_parts
    _check(len(set(named)) == len(named), f"run.init_resnet_parts names a part twice: {named}")


def frozen_parts(model_cfg: ModelConfig) -> list[str]:
    """The encoder parts ``--freeze_scene`` / ``--freeze_face`` freeze."""
    return [part for part, frozen in (("scene", model_cfg.freeze_scene),
                                      ("face", model_cfg.freeze_face)) if frozen]


def _validate_data(config: Config) -> None:
    data = config.data
    for key in ("box_jitter", "crop", "flip", "color"):
        share = getattr(data, f"augment_{key}")
        _check(0 <= share <= 1, f"data.augment_{key}={share} is a probability: use [0, 1]")
    _check(0 <= data.augment_color_range < 1, "data.augment_color_range must be in [0, 1)")
    _check(data.augment_box_jitter_max >= 0, "data.augment_box_jitter_max must be >= 0")
    _check(data.frame_stride >= 1, "data.frame_stride must be >= 1")
    _check(0 < data.val_fraction < 1, "data.val_fraction must be in (0, 1)")
    _check(not data.sigma_randint or (len(data.sigma_randint) == 2 and
                                      0 < data.sigma_randint[0] <= data.sigma_randint[1]),
           f"data.sigma_randint={data.sigma_randint} must be [] or [lo, hi] with 0 < lo <= hi")
    _check(not (data.sigma_randint and config.diffusion.random_sigma), "data.sigma_randint and "
           "diffusion.random_sigma are two random target widths: use one")
    _check(not config.model.depth_branch or data.depth_suffix, "model.depth_branch reads a "
           "depth map per image: set data.depth_suffix (e.g. _depth.png or .npy)")
    _check(not config.loss.kl_div_loss or config.loss.other_loss, "loss.kl_div_loss "
           "(--kl_div_loss) only acts with loss.other_loss (--other_loss), as in the original")
    _check(0 <= data.annotator_quantile < 1, "data.annotator_quantile (--gaze_point_threshold) "
           "is a quantile: use [0, 1), 0 = off")
    _check(config.run.save_every_epochs >= 0 and config.eval.evaluate_every_epochs >= 0,
           "run.save_every_epochs and eval.evaluate_every_epochs must be >= 0")
    levels = len(config.model.unet_multipliers)
    for level in config.model.unet_attention_levels:
        _check(0 <= level < levels, f"model.unet_attention_levels has level {level}, but the "
               f"UNet has {levels} levels (model.unet_multipliers="
               f"{config.model.unet_multipliers}).")
    patch = config.model.unet_patch_size
    _check(patch >= 1, f"model.unet_patch_size must be >= 1, got {patch}")
    _check(data.output_size % (patch * 2 ** (levels - 1)) == 0,
           f"data.output_size={data.output_size} must be divisible by "
           f"{patch * 2 ** (levels - 1)} for a {levels}-level UNet with "
           f"model.unet_patch_size={patch}.")


def _validate_diffusion(config: Config) -> None:
    diff, sampling = config.diffusion, config.sampling
    _check(diff.train_time_steps >= 50, "diffusion.train_time_steps must be >= 50 (the linear "
           "schedule's betas, scaled by 1000/T, must stay well below 1)")
    step_counts = [sampling.steps, *config.eval.extra_steps]
    for steps in step_counts:
        _check(1 <= steps <= diff.train_time_steps, f"sampler step count {steps} must be in "
               f"[1, diffusion.train_time_steps={diff.train_time_steps}]")
    _check(diff.diff_normalization > 0, "diffusion.diff_normalization must be > 0")
    _check(not (diff.zero_terminal_snr and diff.prediction == "eps"),
           "diffusion.zero_terminal_snr cannot be used with eps prediction: x_0 is not "
           "recoverable from eps at the last step (Lin et al. 2024); use "
           "diffusion.prediction=v or x0")
    weight = diff.mse_loss_weight_type
    _check(weight in ("none", "constant", "trunc_snr", "snr", "inv_snr") or (
           weight.startswith(("min_snr_", "max_snr_")) and
           weight[len("min_snr_"):].replace(".", "", 1).isdigit()),
           f"diffusion.mse_loss_weight_type='{weight}' must be none (or constant), trunc_snr, "
           "snr, inv_snr, min_snr_<gamma> or max_snr_<gamma> (e.g. min_snr_5)")
    _check(diff.offset_noise_strength >= 0 and diff.noise_changer_strength >= 0,
           "diffusion.offset_noise_strength and noise_changer_strength must be >= 0")
    _check(not (diff.noise_changer and diff.offset_noise_strength > 0), "diffusion.noise_changer "
           "(the original's offset noise, at noise_changer_strength) and "
           "diffusion.offset_noise_strength are two ways to ask for the same noise: use one")
    _check(0 <= diff.cond_drop_prob < 1, "diffusion.cond_drop_prob must be in [0, 1)")
    _check(diff.cond_drop_prob == 0 or config.model.head == "diffusion",
           "diffusion.cond_drop_prob (classifier-free guidance) needs model.head=diffusion")
    _check(0 <= sampling.rescaled_phi <= 1, "sampling.rescaled_phi must be in [0, 1]")
    _check(sampling.cond_scale == 1 or diff.cond_drop_prob > 0, "sampling.cond_scale "
           f"{sampling.cond_scale} guides with the null conditioning, which only a model trained "
           "with diffusion.cond_drop_prob > 0 has")
    if sampling.start_from_picture:
        _check(0 < sampling.start_timestep < diff.train_time_steps, "sampling.start_timestep "
               f"must be in (0, {diff.train_time_steps}) with sampling.start_from_picture")
        for steps in step_counts:
            _check(steps <= sampling.start_timestep + 1, f"{steps} sampling steps do not fit "
                   f"below sampling.start_timestep={sampling.start_timestep}")


ESTIMATION_SOURCES = ("synthetic_faces", "mpiifacegaze", "mpiifacegaze_pickle", "ethxgaze",
                      "gaze360", "columbia", "gazecapture", "eyediap", "joint")


LAM_SOURCES = ("ego4d_lam", "synthetic_lam")


def _validate_joint(config: Config) -> None:
    """The joint mix's entries: known datasets, positive weights, known splits."""
    data = config.data
    _check(data.source_dataset != "joint" or data.joint, "data.source_dataset=joint needs "
           "data.joint: [{name, root, weight, split}, ...]")
    _check(data.epoch_samples >= 0, "data.epoch_samples must be >= 0")
    names = [entry.get("name") for entry in data.joint]
    _check(not data.joint_leave_out or (data.joint_leave_out in names and len(names) > 1),
           f"data.joint_leave_out={data.joint_leave_out} must name one of the mix {names}, "
           "which must hold another dataset to train on")
    for key in ("joint", "joint_test"):
        for number, entry in enumerate(getattr(data, key)):
            where = f"data.{key}[{number}]"
            unknown = sorted(set(entry) - {"name", "root", "weight", "split"})
            _check(not unknown, f"{where}: unknown keys {unknown} (name, root, weight, split)")
            _check(entry.get("name") in ESTIMATION_SOURCES[:-1], f"{where}: name must be one "
                   f"of {list(ESTIMATION_SOURCES[:-1])}, not {entry.get('name')}")
            _check(float(entry.get("weight", 1.0)) > 0, f"{where}: weight must be > 0")
            _check(entry.get("split", "train") in ("train", "val", "test"),
                   f"{where}: split must be train, val or test")


def _validate_vit(config: Config) -> None:
    """The ViT estimator's keys; layer-wise decay needs a model that numbers its layers."""
    model, face_size = config.model, config.data.face_size
    if model.estimator != "vit":
        return
    from gazefollow.estimation.models.vit import VIT_SIZES
    patch, _, layers, _, _ = VIT_SIZES[model.vit_size]
    _check(face_size % patch == 0, f"model.vit_size={model.vit_size} cuts faces into {patch} "
           f"px patches: data.face_size={face_size} is not a multiple of {patch}")
    _check(0 <= model.vit_freeze_blocks <= layers, f"model.vit_freeze_blocks must be in "
           f"0..{layers} (the blocks of model.vit_size={model.vit_size})")


def task_sources(task: str) -> list[str]:
    """The datasets a task reads (simclr pretrains an estimation face encoder on them)."""
    if task in ("estimation", "simclr"):
        return list(ESTIMATION_SOURCES)
    if task == "lam":
        return list(LAM_SOURCES)
    return [s for s in CHOICES["data.source_dataset"]
            if s not in ESTIMATION_SOURCES + LAM_SOURCES]


def _validate_lam(config: Config) -> None:
    data, model = config.data, config.model
    _check(data.clip_length >= 1 and data.clip_length % 2 == 1, "data.clip_length must be odd "
           "(a window centred on its key frame)")
    for key in ("train_stride", "val_stride", "test_stride"):
        _check(getattr(data, key) >= 1, f"data.{key} must be >= 1")
    _check(len(config.loss.class_weights) == 2 and min(config.loss.class_weights) > 0,
           "loss.class_weights must be two weights > 0 (not looking, looking)")
    _check(model.lam_feature_dim >= 1 and model.lam_lstm_layers >= 1,
           "model.lam_feature_dim and model.lam_lstm_layers must be >= 1")
    if model.lam_model == "gazepose":
        _check(model.gazepose_dmodel % 4 == 0 and
               model.gazepose_dmodel % model.gazepose_heads == 0, "model.gazepose_dmodel must "
               "be a multiple of 4 and of model.gazepose_heads")
        _check(0 < model.gazepose_split <= 90 and 0 < model.gazepose_dsplit <= 4 and
               0 < model.gazepose_csplit <= 1, "model.gazepose_split must be in (0, 90], "
               "gazepose_dsplit in (0, 4], gazepose_csplit in (0, 1]")


def _validate_task(config: Config) -> None:
    """Each task reads its own datasets; estimation's model, protocol and schedule keys."""
    source, estimation = config.data.source_dataset, config.run.task in ("estimation", "simclr")
    if source not in task_sources(config.run.task):
        raise ConfigError(f"data.source_dataset={source} is not a dataset of run.task="
                          f"{config.run.task}, which reads {task_sources(config.run.task)} "
                          "(python main.py --task estimation / lam starts from configs/"
                          "estimation/ / configs/lam/)")
    if config.run.task == "lam":
        _validate_lam(config)
    optim, data = config.optim, config.data
    _check(optim.lr_milestones == sorted(optim.lr_milestones) and
           all(m >= 1 for m in optim.lr_milestones),
           f"optim.lr_milestones={optim.lr_milestones} must be increasing epochs >= 1")
    _check(0 < optim.lr_gamma <= 1, "optim.lr_gamma must be in (0, 1]")
    _check(0 <= optim.momentum < 1, "optim.momentum must be in [0, 1)")
    _check(data.val_subjects >= 0 and config.eval.fold >= 0,
           "data.val_subjects and eval.fold must be >= 0")
    _check(0 <= data.augment_crop_share < 0.5, "data.augment_crop_share must be in [0, 0.5)")
    _check(0 < optim.layer_decay <= 1, "optim.layer_decay must be in (0, 1]")
    _check(0 < data.label_fraction <= 1, "data.label_fraction must be in (0, 1]")
    _check(optim.layer_decay == 1 or (estimation and config.model.estimator == "vit"),
           "optim.layer_decay scales a ViT's layers (model.estimator=vit, run.task=estimation)")
    _check(0 < optim.onecycle_pct_start < 1 and optim.onecycle_div > 0 and
           optim.onecycle_final_div > 0, "optim.onecycle_pct_start must be in (0, 1) and "
           "optim.onecycle_div, optim.onecycle_final_div > 0")
    if not estimation:
        return
    _check(config.model.estimator != "gazenet" or data.face_size == 112, "model.estimator="
           "gazenet is built for 112 px faces (its FC layer takes 256 x 4 x 4): set "
           f"data.face_size=112, not {data.face_size}")
    _validate_vit(config)
    _validate_joint(config)
    if config.run.task == "simclr":
        _check(config.model.estimator == "resnet", "run.task=simclr pretrains a ResNet face "
               "encoder: set model.estimator=resnet (and its face_layers, block, face_inplanes)")
        _check(config.loss.simclr_tau > 0 and config.model.simclr_dim >= 1,
               "loss.simclr_tau must be > 0 and model.simclr_dim >= 1")
    if source == "ethxgaze":
        _check(config.eval.split == "val" and data.val_subjects >= 1, "ETH-XGaze's test labels "
               "are hidden: evaluate on held-out train subjects (eval.split=val, "
               "data.val_subjects >= 1; configs/estimation/ethxgaze.yaml)")
    _check(config.eval.split != "val" or data.val_subjects >= 1 or source == "gaze360",
           "eval.split=val needs data.val_subjects >= 1 (there is no validation split)")
    _check(source != "columbia" or data.split_protocol == "loso",
           "data.split_protocol=unigaze is MPIIFaceGaze's split; ColumbiaGaze uses eval.fold")
    from gazefollow.estimation.models import ESTIMATION_PARTS
    _validate_part_tables(config, list(ESTIMATION_PARTS))
    for part in frozen_parts(config.model):
        raise ConfigError(f"model.freeze_{part} freezes a gaze-following encoder part; the "
                          f"estimation parts are {list(ESTIMATION_PARTS)}")
    for part in config.run.init_resnet_parts:
        _check(part == "backbone" and config.model.estimator == "resnet", "run.init_resnet_"
               f"parts has '{part}'; a resnet estimator's ResNet part is 'backbone'")


def validate(config: Config) -> None:
    """Refuse values outside their choices or ranges, and options that need later work."""
    for key, choices in CHOICES.items():
        value = get_key(config, key)
        _check(value in choices, f"{key}='{value}' is not one of {list(choices)}.")
    flag_of = {k: f for f, (k, kind) in LEGACY_FLAGS.items()}
    for key, default in NOT_YET_SUPPORTED.items():
        value = get_key(config, key)
        flag = f" (--{flag_of[key]})" if key in flag_of else ""
        _check(value == default, f"{key}={value}{flag} is not yet supported in this version of "
               f"gazefollow (docs/legacy.md). Leave it at {default!r}.")
    for key in ("run.save_every", "run.print_every", "data.batch_size", "eval.batch_size",
                "logging.watch_every",
                "eval.num_samples", "optim.grad_accumulation",
                "data.input_size", "data.output_size", "data.face_size"):
        _check(get_key(config, key) >= 1, f"{key} must be >= 1")
    _check(config.run.keep_last >= 0, "run.keep_last must be >= 0 (0 keeps every checkpoint)")
    _check(config.run.halt_at_step is None or config.run.halt_at_step >= 1,
           "run.halt_at_step must be >= 1")
    _validate_data(config)
    _validate_task(config)
    if config.run.task == "following":
        _validate_diffusion(config)
        _validate_parts(config)
