"""Checks of a merged configuration: a value that cannot run fails here, naming the key."""
from __future__ import annotations

from typing import Any

from gazefollow.config.schema import (CHOICES, NOT_YET_SUPPORTED, Config, ConfigError, ModelConfig,
                                      _suggest)


def get_key(config: Config, dotted: str) -> Any:
    """config.section.key from "section.key"."""
    obj = config
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def check(condition: bool, message: str) -> None:
    """A ConfigError with ``message`` unless ``condition``."""
    if not condition:
        raise ConfigError(message)


def check_layer_decay(config: Config, layered: bool) -> None:
    """``optim.layer_decay`` < 1 gives each layer of a ViT its own rate: only a task whose
    model has such layers (``layered``) takes it."""
    check(config.optim.layer_decay == 1 or layered, "optim.layer_decay scales a ViT's layers "
          "(model.estimator=vit, run.task=estimation)")


def validate_part_tables(config: Config, parts: list[str]) -> None:
    """The optim tables keyed by part name name parts of the model, with usable values."""
    optim = config.optim
    for key, table in (("optim.part_lr", optim.part_lr),
                       ("optim.part_weight_decay", optim.part_weight_decay),
                       ("optim.ema_parts", optim.ema_parts),
                       ("optim.schedule_parts", optim.schedule_parts)):
        for part in table:
            check(part in parts, f"{key} has the key '{part}', which is not a model part; "
                  f"the parts are {parts}.{_suggest(part, parts)}")
    for part, lr in optim.part_lr.items():
        check(lr > 0, f"optim.part_lr.{part}={lr} must be > 0 (freeze an encoder instead)")
    for part, decay in optim.part_weight_decay.items():
        check(decay >= 0, f"optim.part_weight_decay.{part}={decay} must be >= 0")
    named = config.run.init_resnet_parts
    check(len(set(named)) == len(named), f"run.init_resnet_parts names a part twice: {named}")


def frozen_parts(model_cfg: ModelConfig) -> list[str]:
    """The encoder parts ``--freeze_scene`` / ``--freeze_face`` freeze."""
    return [part for part, frozen in (("scene", model_cfg.freeze_scene),
                                      ("face", model_cfg.freeze_face)) if frozen]


def _validate_data(config: Config) -> None:
    data = config.data
    for key in ("box_jitter", "crop", "flip", "color"):
        share = getattr(data, f"augment_{key}")
        check(0 <= share <= 1, f"data.augment_{key}={share} is a probability: use [0, 1]")
    check(0 <= data.augment_color_range < 1, "data.augment_color_range must be in [0, 1)")
    check(data.augment_box_jitter_max >= 0, "data.augment_box_jitter_max must be >= 0")
    check(data.frame_stride >= 1, "data.frame_stride must be >= 1")
    check(0 < data.val_fraction < 1, "data.val_fraction must be in (0, 1)")
    check(not data.sigma_randint or (len(data.sigma_randint) == 2 and
                                     0 < data.sigma_randint[0] <= data.sigma_randint[1]),
          f"data.sigma_randint={data.sigma_randint} must be [] or [lo, hi] with 0 < lo <= hi")
    check(not (data.sigma_randint and config.diffusion.random_sigma), "data.sigma_randint and "
          "diffusion.random_sigma are two random target widths: use one")
    check(not config.model.depth_branch or data.depth_suffix, "model.depth_branch reads a "
          "depth map per image: set data.depth_suffix (e.g. _depth.png or .npy)")
    check(not config.loss.kl_div_loss or config.loss.other_loss, "loss.kl_div_loss "
          "(--kl_div_loss) only acts with loss.other_loss (--other_loss), as in the original")
    check(0 <= data.annotator_quantile < 1, "data.annotator_quantile (--gaze_point_threshold) "
          "is a quantile: use [0, 1), 0 = off")
    check(config.run.save_every_epochs >= 0 and config.eval.evaluate_every_epochs >= 0,
          "run.save_every_epochs and eval.evaluate_every_epochs must be >= 0")
    levels = len(config.model.unet_multipliers)
    for level in config.model.unet_attention_levels:
        check(0 <= level < levels, f"model.unet_attention_levels has level {level}, but the "
              f"UNet has {levels} levels (model.unet_multipliers="
              f"{config.model.unet_multipliers}).")
    patch = config.model.unet_patch_size
    check(patch >= 1, f"model.unet_patch_size must be >= 1, got {patch}")
    check(data.output_size % (patch * 2 ** (levels - 1)) == 0,
          f"data.output_size={data.output_size} must be divisible by "
          f"{patch * 2 ** (levels - 1)} for a {levels}-level UNet with "
          f"model.unet_patch_size={patch}.")


def _validate_schedule(config: Config) -> None:
    """The optimiser and schedule keys every task shares."""
    optim, data = config.optim, config.data
    check(optim.lr_milestones == sorted(optim.lr_milestones) and
          all(m >= 1 for m in optim.lr_milestones),
          f"optim.lr_milestones={optim.lr_milestones} must be increasing epochs >= 1")
    check(0 < optim.lr_gamma <= 1, "optim.lr_gamma must be in (0, 1]")
    check(0 <= optim.momentum < 1, "optim.momentum must be in [0, 1)")
    check(data.val_subjects >= 0 and config.eval.fold >= 0,
          "data.val_subjects and eval.fold must be >= 0")
    check(0 <= data.augment_crop_share < 0.5, "data.augment_crop_share must be in [0, 0.5)")
    check(0 < optim.layer_decay <= 1, "optim.layer_decay must be in (0, 1]")
    check(0 < data.label_fraction <= 1, "data.label_fraction must be in (0, 1]")
    check(0 < optim.onecycle_pct_start < 1 and optim.onecycle_div > 0 and
          optim.onecycle_final_div > 0, "optim.onecycle_pct_start must be in (0, 1) and "
          "optim.onecycle_div, optim.onecycle_final_div > 0")


def validate(config: Config, flag_names: dict | None = None) -> None:
    """Refuse values outside their choices or ranges, and options that need later work.
    ``flag_names``: {key: the original's command-line flag}, named beside a refused key."""
    for key, choices in CHOICES.items():
        value = get_key(config, key)
        check(value in choices, f"{key}='{value}' is not one of {list(choices)}.")
    flag_of = flag_names or {}
    for key, default in NOT_YET_SUPPORTED.items():
        value = get_key(config, key)
        flag = f" (--{flag_of[key]})" if key in flag_of else ""
        check(value == default, f"{key}={value}{flag} is not yet supported in this version of "
              f"gazefollow (docs/legacy.md). Leave it at {default!r}.")
    for key in ("run.save_every", "run.print_every", "data.batch_size", "eval.batch_size",
                "logging.watch_every", "eval.num_samples", "optim.grad_accumulation",
                "data.input_size", "data.output_size", "data.face_size"):
        check(get_key(config, key) >= 1, f"{key} must be >= 1")
    check(config.run.keep_last >= 0, "run.keep_last must be >= 0 (0 keeps every checkpoint)")
    check(config.run.halt_at_step is None or config.run.halt_at_step >= 1,
          "run.halt_at_step must be >= 1")
    _validate_data(config)
    _validate_schedule(config)
