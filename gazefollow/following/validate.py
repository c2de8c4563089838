"""The gaze-following task's own configuration checks (the engine's run first)."""
from __future__ import annotations

from gazefollow.config import Config, ConfigError
from gazefollow.config.validation import check as _check
from gazefollow.config.validation import check_layer_decay, validate_part_tables
from gazefollow.following.config import frozen_parts
from gazefollow.following.encoders import encoder_class, model_parts


def validate_following(config: Config) -> None:
    """The data, UNet, diffusion and sampler keys, and the encoder's parts."""
    check_layer_decay(config, layered=False)
    _validate_data(config)
    _validate_unet(config)
    _validate_diffusion(config)
    _validate_parts(config)


def _validate_data(config: Config) -> None:
    data = config.data
    for key in ("input_size", "output_size"):
        _check(getattr(data, key) >= 1, f"data.{key} must be >= 1")
    share = data.augment_box_jitter
    _check(0 <= share <= 1, f"data.augment_box_jitter={share} is a probability: use [0, 1]")
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
    model = config.model
    _check(model.temporal != "chong" or (model.encoder, model.head) == ("chong", "chong"),
           "model.temporal=chong is Chong et al.'s ModelSpatioTemporal: its ConvLSTM sits in "
           "their decoder (model.encoder=chong model.head=chong)")
    _check(0 <= data.annotator_quantile < 1, "data.annotator_quantile (--gaze_point_threshold) "
           "is a quantile: use [0, 1), 0 = off")


def _validate_unet(config: Config) -> None:
    model = config.model
    # heatmaps are one channel until multi-channel targets exist: refused, not ignored
    _check(model.unet_inout_channels == 1, f"model.unet_inout_channels="
           f"{model.unet_inout_channels} is not yet supported in this version of gazefollow "
           "(docs/legacy.md). Leave it at 1.")
    levels = len(model.unet_multipliers)
    for level in model.unet_attention_levels:
        _check(0 <= level < levels, f"model.unet_attention_levels has level {level}, but the "
               f"UNet has {levels} levels (model.unet_multipliers={model.unet_multipliers}).")
    patch = model.unet_patch_size
    _check(patch >= 1, f"model.unet_patch_size must be >= 1, got {patch}")
    _check(config.data.output_size % (patch * 2 ** (levels - 1)) == 0,
           f"data.output_size={config.data.output_size} must be divisible by "
           f"{patch * 2 ** (levels - 1)} for a {levels}-level UNet with "
           f"model.unet_patch_size={patch}.")


def _validate_parts(config: Config) -> None:
    """Per-part optimiser settings, frozen parts and the ResNet parts an ImageNet file
    initialises, against the parts the chosen encoder declares (its registry entry)."""
    try:
        encoder = encoder_class(config.model.encoder)
    except KeyError as err:
        raise ConfigError(f"model.encoder: {err.args[0]}") from None
    problem = encoder.config_problem(config.model, config.data)
    _check(problem is None, f"model.encoder={config.model.encoder}: {problem}")
    validate_part_tables(config, list(model_parts(encoder)))
    for part in frozen_parts(config.model):
        _check(part in encoder.PARTS, f"model.freeze_{part}: the encoder "
               f"'{config.model.encoder}' has no part '{part}' (its parts: {list(encoder.PARTS)})")
    for part in config.run.init_resnet_parts:
        _check(part in encoder.RESNET_PARTS, f"run.init_resnet_parts has '{part}'; the ResNet "
               f"parts of the encoder '{config.model.encoder}' are {list(encoder.RESNET_PARTS)}")


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
