"""Typed configuration: dataclass schemas merged with OmegaConf.

The schema defaults below ARE the full-size research defaults: ``configs/diffusion.yaml`` and
``configs/gaze.yaml`` restate them for the original command line (a test checks that they
agree), and the experiment files only change what they name. ``LAYER_STACK`` is the one
statement of the order in which layers apply. This module is the ONLY place that knows the
original research code's flag names (``LEGACY_FLAGS``) and this project's earlier key names
(``RENAMED_KEYS``); everything else reads typed keys.
"""
from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional, Union

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError


class ConfigError(ValueError):
    """A configuration that cannot run: unknown key, wrong type or unsupported value."""


# Later wins. main.py builds the stack in this order; --help and the docs print this tuple.
LAYER_STACK = (
    "schema defaults (gazefollow/config.py)",
    "--yaml_diffusion FILE",
    "--yaml_gaze FILE",
    "--experiment FILE (default configs/experiments/synthetic_cpu.yaml, only when neither "
    "YAML file is given)",
    "--config FILE (repeatable)",
    "legacy flags",
    "section.key=value overrides",
)


@dataclass
class RunConfig:
    tag: str = "default"  # run name; outputs go under output_dir/<model id>/<tag>
    output_dir: str = "outputs"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    max_steps: Optional[int] = None  # cap on optimizer steps (smoke tests); None = epochs decide
    resume: bool = True  # resume from the newest complete checkpoint in <run dir>/checkpoints
    keep_last: int = 3  # complete checkpoints kept (0 = all; --no_save = 1)
    save_every: int = 500  # optimizer steps between checkpoints (always one at the end)
    save_every_epochs: int = 0  # also (the original's --save_every) every N epochs; 0 = off
    # End this session at this step with a checkpoint, as a job time limit would; the LR
    # schedule still spans the whole run, so running again without it resumes exactly.
    halt_at_step: Optional[int] = None
    print_every: int = 50
    # Weights loaded into the model before training (gazefollow/init_weights.py): a file, or a
    # checkpoint / run folder. Every missing, unexpected or mis-shaped key is reported.
    init_weights: Optional[str] = None
    init_format: str = "auto"  # auto | gazefollow | torchvision (ImageNet) | classic | original
    init_partial: bool = False  # load what fits when keys are missing/unexpected (else refuse)
    # The encoder's ResNet parts an ImageNet (torchvision) file initialises; [] = all of them
    init_resnet_parts: list[str] = field(default_factory=list)
    # Prefix renames of the FILE's keys, applied before the format's own mapping
    # (old -> new, first match wins; null drops the keys).
    init_key_map: dict[str, Optional[str]] = field(default_factory=dict)


@dataclass
class SyntheticConfig:
    """The procedurally generated gaze world, written in GazeFollow format."""

    seed: int = 0
    num_train: int = 4000  # images in the train file (the validation split is carved from it)
    num_test: int = 300  # head instances in the test file
    width: int = 256
    height: int = 192
    annotators: int = 5  # annotator rows per test head
    out_of_frame_share: float = 0.2  # train people looking outside the image
    num_distractors: int = 4
    annotator_jitter: float = 0.015  # std of annotator points around the target, normalised
    depth_maps: bool = False  # also write <image>_depth.png (16-bit) for the depth branch


@dataclass
class DataConfig:
    source_dataset: str = "synthetic"  # synthetic | gazefollow | videoattentiontarget | goo
    dataset_dir: str = "datasets/synthetic_gazeworld"
    input_size: int = 224  # scene input (px)
    output_size: int = 64  # heatmap (px)
    face_size: int = 224  # head crop (px)
    heatmap_sigma: float = 3.0  # Gaussian sigma at a 64 px heatmap; scaled to output_size
    head_enlarge: float = 0.1  # heads are enlarged by this share before cropping
    padding_threshold: float = 0.0  # test annotator points below this are padding
    # The original's annotator-outlier filter: keep the test annotator points whose distance
    # from their head's mean point is within this quantile of all such distances; 0 = off
    annotator_quantile: float = 0.0
    on_bad_input: str = "strict"  # strict: fail at the first bad row/image | skip: skip and count
    verify_images: bool = False  # decode every image when loading (else: headers only)
    # Annotation files relative to dataset_dir; null = the dataset's release names
    # (GazeFollow: *_annotations_release.txt; GOO: goosynth_{train,test}.pickle).
    train_annotations: Optional[str] = None
    test_annotations: Optional[str] = None
    image_dir: str = ""  # image folder under dataset_dir (GOO file names; VAT: "" = images)
    frame_stride: int = 1  # VAT: keep every k-th frame of each train track (test: all frames)
    # A depth map per image for model.depth_branch: the image's path with its extension
    # replaced by this suffix (e.g. "_depth.png": 8/16-bit PNG; ".npy": float array); "" = none
    depth_suffix: str = ""
    train_in_frame_only: bool = False  # train on in-frame people only (the original w/o --x_loss)
    # [lo, hi]: each target's sigma drawn as an integer in [lo, hi] at train AND test (at 64 px),
    # the original's --random_flag ([7, 10]); [] = data.heatmap_sigma
    sigma_randint: list[int] = field(default_factory=list)
    # Training augmentations (Chong et al. 2020 recipe); probabilities, 0 switches one off.
    augment: bool = False
    augment_box_jitter: float = 0.5
    augment_box_jitter_max: float = 0.2  # head-box expansion, share of its size per side
    augment_crop: float = 0.5  # random crop keeping the head and the gaze target
    augment_flip: float = 0.5
    augment_color: float = 0.5  # brightness / contrast / saturation
    augment_color_range: float = 0.5  # factors in [1 - r, 1 + r]
    batch_size: int = 32
    num_workers: int = 2  # loader worker processes; raise on machines with more cores
    val_fraction: float = 0.1  # share of train IMAGES held out for validation (seeded)
    subsample_test: bool = False  # quick validation on a seeded subsample of test HEADS
    subsample_size: int = 500
    subsample_seed: int = 0


@dataclass
class ModelConfig:
    encoder: str = "resnet_pair"  # a registered gaze encoder (gazefollow/models/encoders.py)
    head: str = "diffusion"  # heatmap head: diffusion | regression (gazefollow/models/heads.py)
    # --- the resnet_pair encoder
    scene_layers: list[int] = field(default_factory=lambda: [3, 4, 6, 3])
    face_layers: list[int] = field(default_factory=lambda: [3, 4, 6, 3])
    scene_inplanes: int = 64
    face_inplanes: int = 64
    block: str = "basic"  # basic | bottleneck (torchvision's BasicBlock / Bottleneck)
    scene_stem_pool: bool = True  # the stem max-pool; off keeps 2x more resolution on small inputs
    face_stem_pool: bool = True
    scene_coord_channels: bool = True  # add x/y coordinate channels to the scene input
    scene_token_grid: int = 4  # scene features pooled to grid x grid context tokens
    context_dim: int = 256  # width of the conditioning tokens (unet_context_vector)
    spatial_channels: int = 8  # scene+face feature channels concatenated to the UNet input; 0 = off
    direction_field: bool = True  # gaze-direction field channels concatenated to the UNet input
    direction_gammas: list[float] = field(default_factory=lambda: [1.0, 8.0])  # cone sharpness
    # --- the heatmap heads (the UNet; the regression decoder uses its width and norm groups)
    unet_inout_channels: int = 1  # heatmap channels denoised by the UNet
    unet_inplanes: int = 32
    unet_multipliers: list[int] = field(default_factory=lambda: [1, 2, 4])
    unet_attention_levels: list[int] = field(default_factory=lambda: [2])  # levels with cross-attn
    unet_layers_per_block: int = 1  # unet_residual
    # the UNet runs at output_size / unet_patch_size: pixel-unshuffle in, pixel-shuffle out
    # (4x fewer positions at 2, where most of its cost was; docs/predict.md, Speed)
    unet_patch_size: int = 2
    unet_heads: int = 4
    unet_transformer_layers: int = 1
    unet_dropout: float = 0.0
    unet_norm_groups: int = 16
    unet_scale_shift_norm: bool = False  # time embedding as scale and shift (ADM's option)
    inout_hidden: int = 128
    freeze_scene: bool = False
    freeze_face: bool = False
    channels_last: bool = False
    compile: bool = False  # torch.compile the training model (inductor needs a C++ compiler)
    compile_backend: str = "inductor"  # torch.compile backend; aot_eager checks graphs fast
    # --- the original encoder (model.encoder=original): options of the original research code
    adm_attention_module: bool = False  # head-position attention over the scene map
    depth_branch: bool = False  # a third ResNet over a depth map (data.depth_suffix)
    depth_layers: list[int] = field(default_factory=lambda: [3, 4, 6, 3, 2])
    depth_inplanes: int = 64


@dataclass
class DiffusionConfig:
    """What training fixes: the schedule, the prediction type and the loss."""

    train_time_steps: int = 1000
    beta_schedule: str = "linear"  # linear | cosine
    prediction: str = "x0"  # eps | x0 | v
    diff_normalization: float = 1.0  # heatmap [0,1] -> [-s, s] inside diffusion
    timestep_sampling: str = "sqrt"  # uniform | sqrt (t = T * sqrt(u): biased to high noise)
    norm_std: bool = False  # standardise x_start by one ground-truth heatmap's mean and std
    # the original's --norm_std_flag: x_t divided by its own per-sample std after noising and
    # after every sampling step
    per_sample_std: bool = False
    random_sigma: bool = False  # training targets with sigma x U(0.5, 1.5) (data.heatmap_sigma)
    learn_sigma: bool = False  # ADM learned_range variances (UNet outputs 2 channels per map)
    use_kl: bool = False  # train on the variational bound alone (ADM's KL loss)
    rescale_learned_sigmas: bool = False  # hybrid VLB weight T/1000 (KL loss: times T)
    rescale_timesteps: bool = False  # the denoiser sees t * 1000 / T
    zero_terminal_snr: bool = False  # Lin et al. 2024; needs x0 or v prediction
    offset_noise_strength: float = 0.0  # std of a per-map constant added to the noise
    # The original's offset noise: on with noise_changer, at noise_changer_strength (its
    # --offset_noise_strength, default 0.1); an alternative to offset_noise_strength.
    noise_changer: bool = False
    noise_changer_strength: float = 0.1
    # none (the original's "constant") | min_snr_<gamma> (e.g. min_snr_5) | max_snr_<gamma>
    # | trunc_snr | snr | inv_snr
    mse_loss_weight_type: str = "none"
    # Classifier-free guidance (Ho & Salimans 2022; the original's later versions): the share of
    # training samples whose conditioning is replaced by a learned null one; 0 = off
    cond_drop_prob: float = 0.0


@dataclass
class SamplingConfig:
    """Chosen at evaluation time, never baked into a checkpoint."""

    sampler: str = "ddim"  # ddim | ddpm (ancestral) | dpm_solver (DPM-Solver++)
    steps: int = 1  # sampler steps
    clip_denoised: bool = True  # clamp predicted x_0 to the heatmap range between steps
    start_from_picture: bool = False  # start from the centre prior noised to start_timestep
    start_timestep: int = 0  # the timestep of that start
    # Classifier-free guidance (needs diffusion.cond_drop_prob > 0 in training): the output is
    # null + cond_scale x (conditional - null); 1 = off. rescaled_phi mixes in the guided
    # output rescaled to the conditional output's std (Lin et al. 2024); 0 = off
    cond_scale: float = 1.0
    rescaled_phi: float = 0.0


@dataclass
class LossConfig:
    inout_bce: bool = True  # the in/out BCE term
    inout_weight: float = 0.5
    heatmap_weight: float = 1.0  # the heatmap term's weight (the original's diffuion_weight)
    direction_weight: float = 1.0  # 1 - cos(predicted, true gaze direction), in-frame samples
    # The original's --other_loss: MSE between the soft-argmax of the predicted x_0 heatmap and
    # the gaze point (both normalised here), weighted by point_weight; with kl_div_loss (its
    # --kl_div_loss) a KL term between the two maps' softmaxes instead, weighted by kl_weight.
    other_loss: bool = False
    point_weight: float = 10000.0
    soft_argmax_beta: float = 100.0
    kl_div_loss: bool = False
    kl_weight: float = 10.0


@dataclass
class OptimConfig:
    lr: float = 1e-4  # every part's default (the original's diffusion-part rate)
    gaze_lr: Optional[float] = None  # legacy: default for every part but the heatmap head
    weight_decay: float = 0.0  # every part's default
    # Per-part AdamW settings keyed by part name (the encoder's parts, "head", "inout_head"),
    # e.g. {scene: 1.0e-5}; a part's lr is part_lr, else gaze_lr (not for the head), else lr.
    part_lr: dict[str, float] = field(default_factory=dict)
    part_weight_decay: dict[str, float] = field(default_factory=dict)
    optimizer: str = "adamw"  # adamw | adam (the original's; weight decay added to gradients)
    # constant | cosine (per step, after warmup_steps) | epoch_warmup_cosine (the original's
    # --lr_schedular: linear warm-up over int(0.1 x epochs) epochs, then cosine, per epoch)
    lr_schedule: str = "constant"
    schedule_parts: list[str] = field(default_factory=list)  # parts it scales; [] = every part
    warmup_steps: int = 500
    epochs: int = 30
    grad_clip: float = 1.0
    grad_accumulation: int = 1  # batches per optimizer step (global batch = batch x this x procs)
    max_nonfinite_steps: int = 5  # NaN/Inf loss or gradient: update skipped; more in a row stop
    amp: str = "no"  # no | fp16 | bf16
    # fp16 on a machine without CUDA: full precision with a notice instead of a refusal (the
    # original's --amp O1 / O2 / O3 set it: without apex and a GPU it ran without amp)
    amp_fallback: bool = False
    ema_on: bool = True  # evaluate with EMA weights
    ema_rate: float = 0.999  # the EMA decay ceiling
    ema_warmup: bool = True  # off: diffusers' ramp (1 + step) / (10 + step), capped at ema_rate
    ema_power: float = 0.75  # EMA warm-up: decay = 1 - (1 + step)^-power, capped at ema_rate
    ema_fixed: bool = False  # decay = ema_rate from the first step (the original's EMA)
    ema_parts: list[str] = field(default_factory=list)  # parts the EMA covers; [] = every part


@dataclass
class EvalConfig:
    eval_weights: Optional[str] = None  # run dir or checkpoint: evaluate only
    split: str = "test"  # test | val
    extra_steps: list[int] = field(default_factory=list)  # more sampler step counts to report
    num_samples: int = 1  # > 1: also report the mean heatmap of this many diffusion samples
    evaluate_every: int = 0  # optimizer steps between validation passes; 0 = only at the end
    evaluate_every_epochs: int = 0  # also (the original's --evaluate_every) every N epochs
    batch_size: int = 32
    num_visualize: int = 16  # test images in the PNG grid
    debugging_maps: bool = False  # prediction grids at every validation (evaluate_every)


@dataclass
class LoggingConfig:
    wandb: str = "offline"  # offline | online | disabled
    watch_wandb: bool = False  # wandb.watch: gradient histograms every watch_every steps
    watch_every: int = 2000


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


# Keys of earlier gazefollow versions -> today's. Stored configs (checkpoints), YAML files and
# overrides written with them keep working; nothing else in the project reads the old names.
RENAMED_KEYS = {
    "model.decoder": "model.head",
    "data.gaze_point_threshold": "data.padding_threshold",
    "loss.x_loss": "loss.inout_bce",
    "loss.x_loss_weight": "loss.inout_weight",
    "diffusion.random_flag": "diffusion.random_sigma",
    "diffusion.fix_snr": "diffusion.zero_terminal_snr",
    "diffusion.sampler": "sampling.sampler",
    "diffusion.sample_time_steps": "sampling.steps",
    "diffusion.clip_denoised": "sampling.clip_denoised",
    "diffusion.eval_from_picture": "sampling.start_from_picture",
    "diffusion.time_noise": "sampling.start_timestep",
}
RENAMED_PARTS = {"denoiser": "head"}  # optimiser part names in optim.part_lr / part_weight_decay
# Keys of earlier versions that set nothing (the original never read their flags): dropped.
RETIRED_KEYS = ("model.attention_layout", "optim.lr_anneal_steps")


# --- legacy flags of the original research code ---------------------------------------------
# flag -> (config key, kind). kinds: "value" (typed by the schema), "list" (ints, space or comma
# separated), "true" (sets True), "false" (sets False), or a dict mapping the flag's value.
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
    "attention_layout": (None, "value"),  # declared by the original, never read (NO_EFFECT)
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

# Keys whose non-default values need later work. Refused loudly rather than ignored.
NOT_YET_SUPPORTED = {
    "model.unet_inout_channels": 1,  # heatmaps are one channel until multi-channel targets exist
}

CHOICES = {
    "run.device": ("auto", "cpu", "cuda", "mps"),
    "run.init_format": ("auto", "gazefollow", "torchvision", "classic", "original"),
    "data.source_dataset": ("synthetic", "gazefollow", "videoattentiontarget", "goo"),
    "model.block": ("basic", "bottleneck"),
    "model.head": ("diffusion", "regression"),
    "sampling.sampler": ("ddim", "ddpm", "dpm_solver"),
    "diffusion.beta_schedule": ("linear", "cosine"),
    "diffusion.prediction": ("eps", "x0", "v"),
    "diffusion.timestep_sampling": ("uniform", "sqrt"),
    "optim.lr_schedule": ("constant", "cosine", "epoch_warmup_cosine"),
    "optim.optimizer": ("adamw", "adam"),
    "optim.amp": ("no", "fp16", "bf16"),
    "eval.split": ("test", "val"),
    "data.on_bad_input": ("strict", "skip"),
    "logging.wandb": ("offline", "online", "disabled"),
}


def _all_keys(schema: Any = Config, prefix: str = "") -> list[str]:
    keys = []
    for f in fields(schema):
        sub = f.default_factory() if callable(f.default_factory) else None
        if is_dataclass(sub):
            keys += _all_keys(type(sub), f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def _merge(base: DictConfig, other: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except ConfigKeyError as err:
        bad = f"{err.full_key}" if getattr(err, "full_key", None) else str(err)
        raise ConfigError(f"{source}: unknown key '{bad}'.{_suggest(bad, _all_keys())}") from None
    except ValidationError as err:
        raise ConfigError(f"{source}: {err.msg} (key '{err.full_key}')") from None


def _renamed(tree: dict) -> dict:
    """A nested config dict with the keys of earlier versions (RENAMED_KEYS, RENAMED_PARTS)
    under today's names."""
    tree = {section: dict(values) if isinstance(values, dict) else values
            for section, values in tree.items()}
    for old, new in RENAMED_KEYS.items():
        old_section, old_key = old.split(".")
        if isinstance(tree.get(old_section), dict) and old_key in tree[old_section]:
            new_section, new_key = new.split(".")
            tree.setdefault(new_section, {})[new_key] = tree[old_section].pop(old_key)
    for retired in RETIRED_KEYS:
        section, key = retired.split(".")
        if isinstance(tree.get(section), dict):
            tree[section].pop(key, None)
    optim = tree.get("optim")
    for table in ("part_lr", "part_weight_decay"):
        if isinstance(optim, dict) and isinstance(optim.get(table), dict):
            optim[table] = {RENAMED_PARTS.get(k, k): v for k, v in optim[table].items()}
    return tree


def load_yaml(path: str | Path, log=None) -> DictConfig:
    """Read one YAML layer (a missing file is a ConfigError naming it). A file in the original
    research code's layout (recognised by its sections) is translated to typed keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    content = OmegaConf.to_container(OmegaConf.load(path))
    if not isinstance(content, dict):
        return OmegaConf.create(content)
    original = [s for s in content if s in ORIGINAL_SECTIONS]
    if original and len(original) < len(content):
        ours = sorted(set(content) - set(original))
        raise ConfigError(f"{path} mixes the original's sections {original} with {ours}: a "
                          "file is either in the original's layout or in gazefollow's")
    if original:
        return OmegaConf.create(_nest(translate_original_yaml(content, path, log)))
    return OmegaConf.create(_renamed(content))


def _nest(pairs: list[tuple[str, Any]]) -> dict:
    tree: dict = {}
    for dotted, value in pairs:
        section, key = dotted.split(".", 1)
        tree.setdefault(section, {})[key] = value
    return tree


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


Override = Union[str, tuple[str, Any]]  # "section.key=value" or (dotted key, typed value)


def _override_node(item: Override) -> tuple[DictConfig, str]:
    if isinstance(item, tuple):
        key, value = item
        node: Any = value
        for part in reversed(key.split(".")):
            node = {part: node}
        # The schema types the value: "007" stays a string for a str key, becomes 7 for an int.
        return OmegaConf.create(_renamed(node)), f"{key}={value}"
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form section.key=value")
    key, raw = item.split("=", 1)
    if _schema_type(key) == "str":  # YAML would read "no", "off" ... as booleans
        return _override_node((key, raw.strip("'\"")))
    node = OmegaConf.to_container(OmegaConf.from_dotlist([item]))
    return OmegaConf.create(_renamed(node)), item


def _schema_type(dotted: str) -> str | None:
    """The annotation of a schema key ("str", "int" ...), None for an unknown key."""
    section, _, name = dotted.partition(".")
    schemas = {f.name: f.default_factory for f in fields(Config)}
    if section not in schemas or not callable(schemas[section]):
        return None
    types = {f.name: f.type for f in fields(schemas[section]())}
    return types.get(name)


def migrate_stored(stored: dict) -> dict:
    """A config stored by an earlier version, in today's keys (so old runs still evaluate)."""
    stored = _renamed(stored)
    run = stored.get("run", {})
    if "keep_snapshots" in run:  # one-file checkpoints + snapshots/ became checkpoints/
        run["keep_last"] = 0 if run.pop("keep_snapshots") else 1
    model = stored.get("model")
    if model is not None and "unet_patch_size" not in model:  # UNets before the key existed
        model["unet_patch_size"] = 1  # ran at the heatmap resolution
    return stored


def build_config(
    yaml_files: list[str | Path] = (),
    overrides: list[Override] = (),
    base: Optional[dict] = None,
) -> Config:
    """Merge YAML files (in order) and overrides onto the schema (or onto ``base``, a stored
    config dict such as a checkpoint's), then validate."""
    cfg = OmegaConf.structured(Config)
    if base is not None:
        cfg = _merge(cfg, OmegaConf.create(migrate_stored(base)), "stored config")
    for path in yaml_files:
        cfg = _merge(cfg, load_yaml(path), str(path))
    for item in overrides:
        node, source = _override_node(item)
        cfg = _merge(cfg, node, f"override '{source}'")
    config = OmegaConf.to_object(cfg)
    validate(config)
    return config


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
    parts = list(model_parts(encoder))
    problem = encoder.config_problem(config.model, config.data)
    _check(problem is None, f"model.encoder={config.model.encoder}: {problem}")
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
    for part in frozen_parts(config.model):
        _check(part in encoder.PARTS, f"model.freeze_{part}: the encoder "
               f"'{config.model.encoder}' has no part '{part}' (its parts: {list(encoder.PARTS)})")
    named = config.run.init_resnet_parts
    _check(len(set(named)) == len(named), f"run.init_resnet_parts names a part twice: {named}")
    for part in named:
        _check(part in encoder.RESNET_PARTS, f"run.init_resnet_parts has '{part}'; the ResNet "
               f"parts of the encoder '{config.model.encoder}' are {list(encoder.RESNET_PARTS)}")


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
    _validate_diffusion(config)
    _validate_parts(config)


def config_changes(stored: dict, config: Config) -> dict[str, list]:
    """{dotted key: [stored value, ``config``'s value]} for every key where a config stored by
    a checkpoint (of any version: migrated, with defaults for the keys it predates) differs
    from ``config``; sorted by key."""
    changes: dict[str, list] = {}

    def walk(a: dict, b: dict, prefix: str) -> None:
        for key in sorted(set(a) | set(b)):
            old, new = a.get(key), b.get(key)
            if isinstance(old, dict) and isinstance(new, dict):
                walk(old, new, f"{prefix}{key}.")
            elif old != new:
                changes[prefix + key] = [old, new]

    walk(to_dict(build_config(base=stored)), to_dict(config), "")
    return changes


def to_yaml(config: Config) -> str:
    """The resolved config as YAML (written to every run directory)."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def to_dict(config: Config) -> dict:
    """The resolved config as plain containers (stored in every checkpoint)."""
    return OmegaConf.to_container(OmegaConf.structured(config))
