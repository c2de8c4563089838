"""Checks of a merged configuration: a value that cannot run fails here, naming the key."""
from __future__ import annotations

from typing import Any

from gazefollow.config.schema import Config, ConfigError, _suggest
from gazefollow.config.sections import declared


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
          "(estimation.estimator=vit, run.task=estimation)")


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


def _validate_schedule(config: Config) -> None:
    """The optimiser and schedule keys every task shares."""
    optim = config.optim
    check(optim.lr_milestones == sorted(optim.lr_milestones) and
          all(m >= 1 for m in optim.lr_milestones),
          f"optim.lr_milestones={optim.lr_milestones} must be increasing epochs >= 1")
    check(0 < optim.lr_gamma <= 1, "optim.lr_gamma must be in (0, 1]")
    check(0 <= optim.momentum < 1, "optim.momentum must be in [0, 1)")
    check(0 < optim.layer_decay <= 1, "optim.layer_decay must be in (0, 1]")
    check(0 < optim.onecycle_pct_start < 1 and optim.onecycle_div > 0 and
          optim.onecycle_final_div > 0, "optim.onecycle_pct_start must be in (0, 1) and "
          "optim.onecycle_div, optim.onecycle_final_div > 0")
    check(config.run.save_every_epochs >= 0 and config.eval.evaluate_every_epochs >= 0,
          "run.save_every_epochs and eval.evaluate_every_epochs must be >= 0")
    check(config.eval.fold >= 0, "eval.fold must be >= 0")


def _validate_data(config: Config) -> None:
    data = config.data
    for key in ("crop", "flip", "color"):
        share = getattr(data, f"augment_{key}")
        check(0 <= share <= 1, f"data.augment_{key}={share} is a probability: use [0, 1]")
    check(0 <= data.augment_color_range < 1, "data.augment_color_range must be in [0, 1)")
    check(data.clip_length >= 1, "data.clip_length must be >= 1")


def validate(config: Config, flag_names: dict | None = None) -> None:
    """Refuse the engine's keys outside their ranges and any string key outside the choices
    its section part declares. ``flag_names``: {key: the original's command-line flag},
    named beside a refused key."""
    flag_of = flag_names or {}
    for key, choices in declared(type(config), "CHOICES").items():
        value = get_key(config, key)
        flag = f" (--{flag_of[key]})" if key in flag_of else ""
        check(value in choices, f"{key}='{value}'{flag} is not one of {list(choices)}.")
    for key in ("run.save_every", "run.print_every", "data.batch_size", "eval.batch_size",
                "logging.watch_every", "eval.num_samples", "optim.grad_accumulation",
                "data.face_size"):
        check(get_key(config, key) >= 1, f"{key} must be >= 1")
    check(config.run.keep_last >= 0, "run.keep_last must be >= 0 (0 keeps every checkpoint)")
    check(config.run.halt_at_step is None or config.run.halt_at_step >= 1,
          "run.halt_at_step must be >= 1")
    _validate_data(config)
    _validate_schedule(config)
