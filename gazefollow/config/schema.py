"""The configuration's schema: one dataclass per section, whose defaults ARE the full-size
research defaults (``configs/diffusion.yaml`` and ``configs/gaze.yaml`` restate them; a test
checks that they agree), the choices of the string keys, and ``LAYER_STACK``, the one statement
of the order in which layers apply."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional, Union


class ConfigError(ValueError):
    """A configuration that cannot run: unknown key, wrong type or unsupported value."""


# Later wins. main.py builds the stack in this order; --help and the docs print this tuple.
LAYER_STACK = (
    "schema defaults (gazefollow/config/schema.py)",
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
    task: str = "following"  # a task of the registry (gazefollow/tasks.py; main.py --help lists them)
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
    # Weights loaded into the model before training (gazefollow/backbones/init_weights.py): a file, or a
    # checkpoint / run folder. Every missing, unexpected or mis-shaped key is reported.
    init_weights: Optional[str] = None
    init_format: str = "auto"  # auto|gazefollow|torchvision|classic|original|estimation|mae
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
class SyntheticFacesConfig:
    """The generated face world of gaze estimation, written as normalized MPIIFaceGaze."""

    subjects: int = 15  # p00 .. p14, as MPIIFaceGaze
    per_subject: int = 200
    size: int = 112  # face pixels: the GazeNet recipe's input (the release has 448)
    seed: int = 0
    head_pitch: float = 0.35  # radians, uniform in +-
    head_yaw: float = 0.6
    eye_pitch: float = 0.3
    eye_yaw: float = 0.45


@dataclass
class LAMWorldConfig:
    """The generated Looking-At-Me world, written in Ego4D's LAM layout."""

    seed: int = 0
    train_clips: int = 24
    val_clips: int = 6
    challenge_clips: int = 1  # unlabelled, under videos_challenge/ (the submission's input)
    frames: int = 90  # per clip (frameNumber 1 .. frames)
    people: int = 2  # per clip (Person ID "1" is the camera wearer, as in Ego4D: not drawn)
    width: int = 256
    height: int = 192
    face_size: int = 64  # face crops are written at this size (GazePose: 224)
    looking_share: float = 0.35  # the share of segments spent looking at the camera
    hidden_share: float = 0.06  # the share of frames a face is hidden
    pose_noise: float = 3.0  # degrees of noise on the head-pose prior


@dataclass
class DataConfig:
    # following: synthetic | gazefollow | videoattentiontarget | goo; estimation:
    # synthetic_faces | mpiifacegaze | mpiifacegaze_pickle | ethxgaze | gaze360 | columbia |
    # gazecapture | eyediap | joint
    source_dataset: str = "synthetic"
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
    # --- gaze estimation (docs/estimation.md): which subjects train, validate and test
    split_protocol: str = "loso"  # MPIIFaceGaze: loso (eval.fold) | unigaze (p00-p09 / p10-p14)
    val_subjects: int = 1  # training subjects held out for validation (0: none, no val split)
    augment_crop_share: float = 0.08  # estimation crop: at most this share cut from each edge
    augment_erase: float = 0.0  # estimation: probability of a mask (a grey rectangle; GEFF's)
    label_fraction: float = 1.0  # estimation: a seeded share of the training faces is used
    # source_dataset joint (gazefollow/estimation/data/joint.py): the training mix
    # [{name, root, weight, split}], what is evaluated [{name, root, split}] (default: each
    # mixed dataset's test split), draws per epoch (0: the mix's size), dataset folders by
    # name, and a file of them (UniGaze's data_path.yaml)
    joint: list[dict[str, Any]] = field(default_factory=list)
    joint_test: list[dict[str, Any]] = field(default_factory=list)
    joint_leave_out: str = ""  # a dataset of the mix: trained without, tested on (cross-dataset)
    epoch_samples: int = 0
    paths: dict[str, str] = field(default_factory=dict)
    paths_file: str = ""
    # --- Looking-At-Me (run.task=lam; docs/lam.md): key frames every train_stride-th /
    # val_stride-th frame of a track (the challenge's crops: test_stride), each a window of
    # clip_length frames centred on it; face crops from face_imgs/ (faces) or cut from
    # video_imgs/ at the tracklet box (frames); GazePose's Gaussian temporal dropout
    clip_length: int = 7
    train_stride: int = 13
    val_stride: int = 13
    test_stride: int = 1
    lam_crops: str = "faces"
    lam_challenge_dir: str = "videos_challenge"  # under dataset_dir: the submission's input
    temporal_dropout: bool = False


@dataclass
class ModelConfig:
    encoder: str = "resnet_pair"  # a registered gaze encoder (gazefollow/following/encoders/)
    head: str = "diffusion"  # heatmap head: diffusion | regression (gazefollow/following/models/heads.py)
    # video (docs/video.md): none | convlstm | attention fuses each clip's per-frame
    # conditioning (data.clip_length frames up to the target, data.frame_stride apart)
    temporal: str = "none"
    temporal_heads: int = 4  # attention's heads (1 where they do not divide a width)
    # --- the resnet_pair encoder
    scene_layers: list[int] = field(default_factory=lambda: [3, 4, 6, 3])
    face_layers: list[int] = field(default_factory=lambda: [3, 4, 6, 3])
    scene_inplanes: int = 64
    face_inplanes: int = 64
    block: str = "basic"  # basic | bottleneck (torchvision's BasicBlock / Bottleneck)
    scene_stem_pool: bool = True  # the stem max-pool; off keeps 2x more resolution on small inputs
    face_stem_pool: bool = True
    # the face branch: resnet (the ResNet above) | gazenet (GazeNet's MobileNetV2 features, 256
    # wide) | vit (model.vit_size); an estimation run of the same backbone starts it
    # through run.init_weights
    face_backbone: str = "resnet"
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
    # --- gaze estimation (run.task=estimation): gazenet (the MobileNetV2 recipe) | resnet (our
    # ResNet shaped by face_layers / block / face_inplanes / face_stem_pool: ResNet-18 or -50)
    estimator: str = "gazenet"
    simclr_dim: int = 128  # run.task simclr: the projection head's output width
    geff_eye: str = "cnn"  # estimator geff / vanilla_fusion: the eye encoder, cnn | resnet
    geff_dim: int = 128  # estimator geff / vanilla_fusion: the fused feature width
    vit_size: str = "b16"  # estimator vit: tiny | b16 | l16 | h14 (estimation/models/vit.py)
    vit_freeze_blocks: int = 0  # estimator vit: freeze the patch embedding and the first N blocks
    # --- Looking-At-Me (run.task=lam): gazelstm (Gaze360's, Ego4D's baseline) | gazepose; the
    # frame encoder is the ResNet of face_layers / face_inplanes / block (ResNet-18: [2, 2, 2, 2])
    lam_model: str = "gazelstm"
    lam_feature_dim: int = 256  # fc2's width, the LSTM's input and hidden size
    lam_lstm_layers: int = 2
    gazepose_head_prior: bool = True  # |yaw|, |pitch|, |roll| queries (else learned ones)
    gazepose_split: float = 1.0  # degrees per head-pose bin
    gazepose_landmark_prior: bool = True  # landmark-cell queries (else learned ones)
    gazepose_dsplit: float = 0.1  # landmark grid step over [-2, 2]
    gazepose_csplit: float = 0.1  # landmark visibility bin
    gazepose_dmodel: int = 512
    gazepose_heads: int = 8
    gazepose_encoder_layers: int = 6
    gazepose_decoder_layers: int = 6
    gazepose_feedforward: int = 2048


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
    gaze_loss: str = "l1"  # estimation: l1 (on pitch, yaw) | angular (radians between vectors)
    simclr_tau: float = 0.5  # run.task simclr: the NT-Xent temperature
    # run.task lam: cross-entropy weights (not looking, looking); Ego4D's, GazePose's [0.073, 0.927]
    class_weights: list[float] = field(default_factory=lambda: [0.136, 0.864])


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
    lr_schedule: str = "constant"
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
    ema_parts: list[str] = field(default_factory=list)  # parts the EMA covers; [] = every trainable one


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
    synthetic_faces: SyntheticFacesConfig = field(default_factory=SyntheticFacesConfig)
    synthetic_lam: LAMWorldConfig = field(default_factory=LAMWorldConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

# Keys whose non-default values need later work. Refused loudly rather than ignored.
NOT_YET_SUPPORTED = {
    "model.unet_inout_channels": 1,  # heatmaps are one channel until multi-channel targets exist
}

CHOICES = {
    "run.device": ("auto", "cpu", "cuda", "mps"),
    "run.init_format": ("auto", "gazefollow", "torchvision", "classic", "original", "estimation",
                        "mae", "gaze360"),
    "data.split_protocol": ("loso", "unigaze"),
    "model.estimator": ("gazenet", "resnet", "vit", "geff", "vanilla_fusion"),
    "model.geff_eye": ("cnn", "resnet"),
    "model.lam_model": ("gazelstm", "gazepose"),
    "model.temporal": ("none", "convlstm", "attention"),
    "data.lam_crops": ("faces", "frames"),
    "model.vit_size": ("tiny", "b16", "l16", "h14"),
    "loss.gaze_loss": ("l1", "angular"),
    "model.block": ("basic", "bottleneck"),
    "model.head": ("diffusion", "regression"),
    "sampling.sampler": ("ddim", "ddpm", "dpm_solver"),
    "diffusion.beta_schedule": ("linear", "cosine"),
    "diffusion.prediction": ("eps", "x0", "v"),
    "diffusion.timestep_sampling": ("uniform", "sqrt"),
    "optim.lr_schedule": ("constant", "cosine", "epoch_warmup_cosine", "multistep", "onecycle"),
    "optim.optimizer": ("adamw", "adam", "sgd"),
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


Override = Union[str, tuple[str, Any]]  # "section.key=value" or (dotted key, typed value)
