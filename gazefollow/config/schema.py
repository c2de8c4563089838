"""The engine's sections of the configuration (``ENGINE_SECTIONS``: what every task shares),
whose defaults ARE the full-size research defaults, the choices of their string keys, and
``LAYER_STACK``, the one statement of the order in which layers apply. Each task and component
adds its own parts next to its code; ``sections.py`` assembles them into one schema
(``configs/diffusion.yaml`` and ``configs/gaze.yaml`` restate the defaults; a test checks that
they agree)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from gazefollow.config.sections import assemble_schema


class ConfigError(ValueError):
    """A configuration that cannot run: unknown key, wrong type or unsupported value."""


# Later wins. main.py builds the stack in this order; --help and the docs print this tuple.
LAYER_STACK = (
    "the defaults of every config part (docs/configuration.md)",
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
    # following: scene + head -> gaze heatmap | estimation: face crop -> 3D gaze direction
    task: str = "following"  # a task of the registry (gazefollow/tasks.py; main.py --help)
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
    # Weights loaded into the model before training (gazefollow/backbones/init_weights.py): a
    # file, or a checkpoint / run folder. Every missing, unexpected or mis-shaped key is reported.
    init_weights: Optional[str] = None
    init_format: str = "auto"  # auto|gazefollow|torchvision|classic|original|estimation|mae
    init_partial: bool = False  # load what fits when keys are missing/unexpected (else refuse)
    # The encoder's ResNet parts an ImageNet (torchvision) file initialises; [] = all of them
    init_resnet_parts: list[str] = field(default_factory=list)
    # Prefix renames of the FILE's keys, applied before the format's own mapping
    # (old -> new, first match wins; null drops the keys).
    init_key_map: dict[str, Optional[str]] = field(default_factory=dict)
    # Load weights files that hold Python objects beyond tensors and plain data (an older
    # checkpoint with an argparse Namespace, say). Such a file can run code: only for files
    # whose source you trust.
    trust_pickle: bool = False

    CHOICES = {"device": ("auto", "cpu", "cuda", "mps"),
               "init_format": ("auto", "gazefollow", "torchvision", "classic", "original",
                               "estimation", "mae", "gaze360")}


@dataclass
class DataConfig:
    """The keys every task's data reads; a task adds its own (gazefollow/<task>/config.py)."""

    source_dataset: str = "synthetic"  # a dataset of the run's task (python main.py --help)
    dataset_dir: str = "datasets/synthetic_gazeworld"
    face_size: int = 224  # face / head crop (px)
    on_bad_input: str = "strict"  # strict: fail at the first bad row/image | skip: skip and count
    verify_images: bool = False  # decode every image when loading (else: headers only)
    clip_length: int = 7  # frames per sample of a video model (the task's docs say which)
    # Training augmentations; probabilities, 0 switches one off.
    augment: bool = False
    augment_crop: float = 0.5  # a random crop (gaze following: keeping the head and target)
    augment_flip: float = 0.5
    augment_color: float = 0.5  # brightness / contrast / saturation
    augment_color_range: float = 0.5  # factors in [1 - r, 1 + r]
    batch_size: int = 32
    num_workers: int = 2  # loader worker processes; raise on machines with more cores
    # quick validation on a seeded subsample of the test split (gaze following: of its heads)
    subsample_test: bool = False
    subsample_size: int = 500
    subsample_seed: int = 0

    CHOICES = {"on_bad_input": ("strict", "skip")}


@dataclass
class ModelConfig:
    """The keys the engine reads; the task, its heads, encoders and backbones add theirs."""

    channels_last: bool = False
    compile: bool = False  # torch.compile the training model (inductor needs a C++ compiler)
    compile_backend: str = "inductor"  # torch.compile backend; aot_eager checks graphs fast


@dataclass
class OptimConfig:
    lr: float = 1e-4  # every part's default (the original's diffusion-part rate)
    gaze_lr: Optional[float] = None  # legacy: default for every part but the heatmap head
    weight_decay: float = 0.0  # every part's default
    # Per-part AdamW settings keyed by part name (the encoder's parts, "head", "inout_head"),
    # e.g. {scene: 1.0e-5}; a part's lr is part_lr, else gaze_lr (not for the head), else lr.
    part_lr: dict[str, float] = field(default_factory=dict)
    part_weight_decay: dict[str, float] = field(default_factory=dict)
    # adamw | adam (the original's; weight decay added to gradients) | sgd (with momentum)
    optimizer: str = "adamw"
    momentum: float = 0.9  # sgd only
    # constant | cosine (per step, after warmup_steps) | epoch_warmup_cosine (the original's
    # --lr_schedular: linear warm-up over int(0.1 x epochs) epochs, then cosine, per epoch)
    # | multistep: the rate times lr_gamma at each epoch of lr_milestones (the GazeNet recipe)
    # | onecycle: torch's OneCycleLR per step (UniGaze's): from lr / onecycle_div up to lr over
    # onecycle_pct_start of the run, then down to lr / (onecycle_div x onecycle_final_div)
    # | epoch_cosine: torch's CosineAnnealingLR stepped once per epoch (T_max = epochs) down
    # to lr_min (Gaze-LLE's)
    lr_schedule: str = "constant"
    lr_min: float = 0.0  # epoch_cosine's floor (torch's eta_min), the same for every part
    lr_milestones: list[int] = field(default_factory=lambda: [4, 8])
    lr_gamma: float = 0.1
    onecycle_pct_start: float = 0.3
    onecycle_div: float = 25.0
    onecycle_final_div: float = 1.0e4
    # layer-wise rate decay (MAE's): a ViT layer k of L + 1 learns at lr x layer_decay^(L+1-k)
    layer_decay: float = 1.0
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
    # parts the EMA covers; [] = every trainable one
    ema_parts: list[str] = field(default_factory=list)

    CHOICES = {"lr_schedule": ("constant", "cosine", "epoch_warmup_cosine", "multistep",
                               "onecycle", "epoch_cosine"),
               "optimizer": ("adamw", "adam", "sgd"),
               "amp": ("no", "fp16", "bf16")}
    RENAMED = {"optim.lr_anneal_steps": None}  # set nothing: the original never read its flag


@dataclass
class EvalConfig:
    eval_weights: Optional[str] = None  # run dir or checkpoint: evaluate only
    fold: int = 0  # estimation: the cross-validation fold (test subject k of leave-one-out)
    split: str = "test"  # test | val
    extra_steps: list[int] = field(default_factory=list)  # more sampler step counts to report
    num_samples: int = 1  # > 1: also report the mean heatmap of this many diffusion samples
    evaluate_every: int = 0  # optimizer steps between validation passes; 0 = none (test at the end)
    evaluate_every_epochs: int = 0  # also (the original's --evaluate_every) every N epochs
    batch_size: int = 32
    num_visualize: int = 16  # test images in the PNG grid
    debugging_maps: bool = False  # prediction grids at every validation (evaluate_every)

    CHOICES = {"split": ("test", "val")}


@dataclass
class LoggingConfig:
    wandb: str = "offline"  # offline | online | disabled
    watch_wandb: bool = False  # wandb.watch: gradient histograms every watch_every steps
    watch_every: int = 2000

    CHOICES = {"wandb": ("offline", "online", "disabled")}


# The engine's sections; the registry adds each task's (gazefollow/tasks.py).
ENGINE_SECTIONS = (("run", RunConfig), ("data", DataConfig), ("model", ModelConfig),
                   ("optim", OptimConfig), ("eval", EvalConfig), ("logging", LoggingConfig))

Config = assemble_schema(ENGINE_SECTIONS)  # the engine's own schema (no task's keys)


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


Override = Union[str, tuple[str, Any]]  # "section.key=value" or (dotted key, typed value)
