"""The ONLY place that knows the original research code's flag names (``LEGACY_FLAGS``), the
keys of its YAML files and its recipe: everything else reads typed keys. ``read_layer`` reads
a YAML layer in either layout (the original's is recognised by its sections)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from gazefollow.config import load_yaml, read_yaml
from gazefollow.config.migrate import _nest
from gazefollow.config.schema import ConfigError, _suggest

# --- legacy flags of the original research code ---------------------------------------------
# flag -> (config key, kind). kinds: "value" (typed by the schema), "list" (ints, space or comma
# separated), "true" (sets True), "false" (sets False), "optional value" (a flag that may take
# a value), or a dict mapping the flag's value.
LEGACY_FLAGS: dict[str, tuple[str, Any]] = {
    "tag": ("run.tag", "value"),
    # the original's "cuda" is the GPU when there is one: "auto" (the CPU otherwise, said)
    "device": ("run.device", {"cuda": "auto", "cpu": "cpu", "auto": "auto", "mps": "mps"}),
    "input_size": ("data.input_size", "value"),
    "output_size": ("data.output_size", "value"),
    "batch_size": ("data.batch_size", "value"),
    "num_workers": ("data.num_workers", "value"),
    "source_dataset": ("data.source_dataset", "value"),
    "source_dataset_dir": ("data.dataset_dir", "value"),
    # the original's annotator-outlier filter (a quantile), not a coordinate cut-off
    "gaze_point_threshold": ("data.annotator_quantile", "value"),
    "init_weights": ("run.init_weights", "value"),
    "eval_weights": ("eval.eval_weights", "value"),
    "list_resnet_scene_layers": ("model.scene_layers", "list"),
    "list_resnet_face_layers": ("model.face_layers", "list"),
    "resnet_scene_inplanes": ("model.scene_inplanes", "value"),
    "resnet_face_inplanes": ("model.face_inplanes", "value"),
    "unet_inout_channels": ("model.unet_inout_channels", "value"),
    "unet_inplanes": ("model.unet_inplanes", "value"),
    "unet_residual": ("model.unet_layers_per_block", "value"),
    "list_unet_inplanes_multipliers": ("model.unet_multipliers", "list"),
    # ADM's attention_resolutions: downsample rates (1, 2, 4 ...), turned into UNet levels
    "list_unet_attention_levels": ("model.unet_attention_levels", "rates"),
    "unet_spatial_tf_heads": ("model.unet_heads", "value"),
    "unet_spatial_tf_layers": ("model.unet_transformer_layers", "value"),
    "unet_context_vector": ("model.context_dim", "value"),
    "unet_dropout": ("model.unet_dropout", "value"),
    # declared by the original (a store_true flag), never read (NO_EFFECT): with or without a
    # value, as scripts written for it and for earlier gazefollow versions pass it
    "attention_layout": (None, "optional value"),
    "adm_attention_module": ("model.adm_attention_module", "true"),
    # the original's store_false: WITH the flag, the full test set (without it, the original
    # used a random 10% of the rows; gazefollow's default is the full set either way)
    "is_subsample_test_set": ("data.subsample_test", "false"),
    "Debugging_maps": ("eval.debugging_maps", "true"),
    "watch_wandb": ("logging.watch_wandb", "true"),
    "no_wandb": ("logging.wandb", {None: "disabled"}),
    "diff_normalization": ("diffusion.diff_normalization", "value"),
    "norm_std_flag": ("diffusion.per_sample_std", "true"),
    "predict_sthg": ("diffusion.prediction", {"pred_noise": "eps", "pred_x0": "x0"}),
    "adm_predict_xstart": ("diffusion.prediction", {None: "x0"}),
    "adm_predict_v": ("diffusion.prediction", {None: "v"}),
    "random_flag": ("data.sigma_randint", {None: [7, 10]}),
    "train_time_steps": ("diffusion.train_time_steps", "value"),
    "sample_time_steps": ("sampling.steps", "value"),
    # the original applies offset noise only with --noise_changer
    "offset_noise_strength": ("diffusion.noise_changer_strength", "value"),
    "noise_changer": ("diffusion.noise_changer", "true"),
    "mse_loss_weight_type": ("diffusion.mse_loss_weight_type", "value"),
    "adm": ("diffusion.prediction", {None: "eps"}),  # ADM formulation: eps unless overridden
    "adm_use_kl": ("diffusion.use_kl", "true"),
    "adm_learn_sigma": ("diffusion.learn_sigma", "true"),
    "adm_rescale_learned_sigmas": ("diffusion.rescale_learned_sigmas", "true"),
    "adm_rescale_timesteps": ("diffusion.rescale_timesteps", "true"),
    "fix_snr": ("diffusion.zero_terminal_snr", "true"),
    "clip_denoised": ("sampling.clip_denoised", "true"),
    "eval_from_picture": ("sampling.start_from_picture", "true"),
    "time_noise": ("sampling.start_timestep", "value"),
    "kl_div_loss": ("loss.kl_div_loss", "true"),
    "x_loss": ("loss.inout_bce", "true"),
    "other_loss": ("loss.other_loss", "true"),
    "lr": ("optim.lr", "value"),
    "weight_decay": ("optim.weight_decay", "value"),
    "lr_schedular": ("optim.lr_schedule", {None: "epoch_warmup_cosine"}),
    "lr_anneal_steps": (None, "value"),  # declared by the original, never read (NO_EFFECT)
    "epochs": ("optim.epochs", "value"),
    "evaluate_every": ("eval.evaluate_every_epochs", "value"),  # the original counts epochs
    "save_every": ("run.save_every_epochs", "value"),
    "print_every": ("run.print_every", "value"),
    "no_resume": ("run.resume", "false"),
    "no_save": ("run.keep_last", {None: 1}),
    "output_dir": ("run.output_dir", "value"),
    # apex levels, all float16 in the original (Accelerate's fp16 keeps fp32 master weights)
    "amp": ("optim.amp", {"O0": "no", "O1": "fp16", "O2": "fp16", "O3": "fp16", "no": "no",
                          "fp16": "fp16",
                          "bf16": "bf16"}),
    "channels_last": ("model.channels_last", "true"),
    "freeze_scene": ("model.freeze_scene", "true"),
    "freeze_face": ("model.freeze_face", "true"),
    "ema_on": ("optim.ema_on", "true"),
    "ema_rate": ("optim.ema_rate", "value"),
    "max_steps": ("run.max_steps", "value"),
    # classifier-free guidance, from the original's first versions
    "cond_drop_prob": ("diffusion.cond_drop_prob", "value"),
    "cond_scale": ("sampling.cond_scale", "value"),
    "rescaled_phi": ("sampling.rescaled_phi", "value"),
}

# Keys a legacy flag also sets when given (the original's behaviour spans several typed keys).
LEGACY_FLAG_ALSO: dict[str, list[tuple[str, Any]]] = {
    "lr_schedular": [("optim.schedule_parts", ["head"])],  # the UNet group only
    "ema_on": [("optim.ema_parts", ["head", "inout_head"]), ("optim.ema_fixed", True)],
    "amp": [("optim.amp_fallback", True)],
}
# ... and what a bare flag written ``false`` in the original's YAML files implies.
LEGACY_FLAG_ABSENT: dict[str, list[tuple[str, Any]]] = {
    "x_loss": [("data.train_in_frame_only", True)],  # no BCE: in-frame people only
}
# What a file in the original's YAML layout implies beyond its keys: the original model and
# the parts of its recipe its code fixes (configs/experiments/original.yaml states the same).
ORIGINAL_RECIPE: list[tuple[str, Any]] = [
    ("model.encoder", "original"), ("model.unet_norm_groups", 8), ("model.inout_hidden", 512),
    ("model.unet_patch_size", 1),
    ("loss.direction_weight", 0.0), ("diffusion.timestep_sampling", "uniform"),
    ("optim.optimizer", "adam"), ("optim.warmup_steps", 0), ("optim.ema_fixed", True),
    ("data.augment", True), ("data.head_enlarge", 0.0),
]

# The original's YAML files: sections, and the keys they hold beside the flag names. Each
# key -> (config key or None, kind): "value" sets the key; ("require", v, why) accepts only
# the value v (the behaviour gazefollow has) and refuses another with ``why``; ("no-op", why)
# is accepted with a notice.
ORIGINAL_SECTIONS = ("Dataset", "Diffusion", "experiment_parameter", "losses_parameters", "Gaze")
ORIGINAL_YAML_KEYS: dict[str, tuple[Optional[str], Any]] = {
    # its YAML version reads the value itself: true subsamples the test set (the original: 10%
    # of the rows; here a seeded subsample of heads, said in the output), false is the full set
    "is_subsample_test_set": ("data.subsample_test", "value"),
    "inout_weight": ("loss.inout_weight", "value"),
    "diffuion_weight": ("loss.heatmap_weight", "value"),  # (sic): the original's spelling
    "random_sigma": ("data.heatmap_sigma", "value"),  # the target's fixed sigma
    "use_scale_shift_norm": ("model.unet_scale_shift_norm", "value"),
    "conv_resample": (None, ("require", True, "resampling by pooling is not yet supported; "
                                              "the UNet resamples with convolutions")),
    "resblock_updown": (None, ("require", False, "residual up/down-sampling blocks are not "
                                                 "yet supported")),
    "depth_flag": ("model.depth_branch", "value"),
    "list_resnet_depth_layers": ("model.depth_layers", "value"),
    "resnet_depth_inplanes": ("model.depth_inplanes", "value"),
    "head_flag": (None, ("no-op", "declared in some of the original's files, never read by "
                                  "its code")),
    "schedule_type": (None, ("no-op", "declared in some of the original's files, never read "
                                      "by its code")),
}


def translate_original_yaml(content: dict, path: Path, log=None) -> list[tuple[str, Any]]:
    """The original's YAML (sections of flag-named keys) -> overrides, through the same legacy
    map as its command line: a bare flag set to true acts as given, false or empty as not
    given. An unknown key fails with a suggestion."""
    log = log or (lambda message: print(message, file=sys.stderr))
    known = list(LEGACY_FLAGS) + list(ORIGINAL_YAML_KEYS)
    given, extra = {}, []
    for section, values in content.items():
        for name, value in (values or {}).items():
            where = f"{path}, section {section}, key '{name}'"
            if name not in known:
                raise ConfigError(f"{where}: not a key of the original's YAML files."
                                  f"{_suggest(name, known)}")
            if name in ORIGINAL_YAML_KEYS:
                extra += _original_yaml_key(name, value, where, log)
            elif _is_bare(name):
                extra += _bare_from_yaml(name, value)
            elif LEGACY_FLAGS[name][0] is None and not value:
                continue  # a key the original never reads, at its default: nothing to say
            elif value is not None and value != "":
                given[name] = value
    return ORIGINAL_RECIPE + legacy_overrides(given) + extra


def _is_bare(flag: str) -> bool:
    kind = LEGACY_FLAGS[flag][1]
    return kind in ("true", "false") or (isinstance(kind, dict) and None in kind)


def _bare_from_yaml(flag: str, value) -> list[tuple[str, Any]]:
    """A flag without argument written in a YAML file: ``true`` acts as the flag; ``false``
    sets a true/false key to the original's value (the flag absent), and leaves a key the flag
    would set to a value (``--adm``, ``--no_save`` ...) at its default."""
    key, kind = LEGACY_FLAGS[flag]
    if value:
        return [legacy_to_override(flag, None), *LEGACY_FLAG_ALSO.get(flag, [])]
    if kind in ("true", "false"):
        return [(key, kind == "false"), *LEGACY_FLAG_ABSENT.get(flag, [])]
    return LEGACY_FLAG_ABSENT.get(flag, [])


def _original_yaml_key(name: str, value, where: str, log) -> list[tuple[str, Any]]:
    key, kind = ORIGINAL_YAML_KEYS[name]
    if kind == "value":
        return [(key, value)]
    if kind[0] == "require" and value != kind[1]:
        raise ConfigError(f"{where}: {value!r} is not yet supported ({kind[2]}); set it to "
                          f"{kind[1]!r}")
    if kind[0] == "no-op":
        log(f"note: {where} has no effect: {kind[1]}")
    return []


def legacy_to_override(flag: str, value: Any) -> tuple[str, Any]:
    """One legacy flag (``value`` None for bare flags) -> (dotted key, typed value)."""
    key, kind = LEGACY_FLAGS[flag]
    if kind in ("true", "false"):
        return key, kind == "true"
    if kind in ("list", "rates"):
        items = value if isinstance(value, list) else [value]
        try:
            numbers = [int(p) for item in items for p in str(item).replace(",", " ").split()]
        except ValueError:
            raise ConfigError(f"--{flag} takes integers (e.g. --{flag} 3,4,6,3), got {items}; "
                              "put section.key=value overrides before list flags") from None
        return key, numbers if kind == "list" else _levels_of_rates(flag, numbers)
    if isinstance(kind, dict):
        if value not in kind:
            raise ConfigError(f"--{flag}: '{value}' is not one of {sorted(k for k in kind if k)}")
        return key, kind[value]
    return key, value


def _levels_of_rates(flag: str, rates: list[int]) -> list[int]:
    """ADM's attention_resolutions: downsample rate 2**k is UNet level k (1 -> 0, 2 -> 1 ...)."""
    bad = [r for r in rates if r < 1 or r & (r - 1)]
    if bad:
        raise ConfigError(f"--{flag} takes downsample rates, powers of two (1, 2, 4, 8 ...), "
                          f"as the original's attention_resolutions; got {bad}")
    return [r.bit_length() - 1 for r in rates]


# Flags the original declares but never reads in any commit: accepted, with a notice.
NO_EFFECT = "the original research code declares it but never reads it, so it does nothing here"


def legacy_overrides(given: dict[str, Any]) -> list[tuple[str, Any]]:
    """Legacy flags given on the command line -> overrides; two flags that set the same key to
    different values are refused (``--adm`` only sets the default it is combined with)."""
    for flag in [f for f in given if LEGACY_FLAGS[f][0] is None]:
        print(f"note: --{flag}: {NO_EFFECT}", file=sys.stderr)
        given = {f: v for f, v in given.items() if f != flag}
    pairs = [(flag, legacy_to_override(flag, value)) for flag, value in given.items()]
    pairs += [(flag, also) for flag in given for also in LEGACY_FLAG_ALSO.get(flag, [])]
    chosen: dict[str, tuple[str, Any]] = {}
    for flag, (key, value) in pairs:
        if flag == "adm" and len([k for _, (k, _) in pairs if k == key]) > 1:
            continue
        if key in chosen and chosen[key][1] != value:
            raise ConfigError(f"conflicting flags: --{chosen[key][0]} and --{flag} both set {key}")
        chosen[key] = (flag, value)
    return [(key, value) for key, (_, value) in chosen.items()]


def read_layer(path: str | Path, log=None) -> DictConfig:
    """One YAML layer: a file in the original research code's layout (recognised by its
    sections) translated to typed keys, else this project's own file."""
    content = read_yaml(path)
    original = [s for s in content if s in ORIGINAL_SECTIONS] if isinstance(content, dict) else []
    if original and len(original) < len(content):
        ours = sorted(set(content) - set(original))
        raise ConfigError(f"{path} mixes the original's sections {original} with {ours}: a "
                          "file is either in the original's layout or in gazefollow's")
    if original:
        return OmegaConf.create(_nest(translate_original_yaml(content, Path(path), log)))
    return load_yaml(path)


def flag_names() -> dict[str, str]:
    """{config key: the original's flag that sets it}, for naming a flag in errors."""
    return {key: flag for flag, (key, _) in LEGACY_FLAGS.items()}
