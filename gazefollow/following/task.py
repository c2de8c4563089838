"""The gaze-following task (``run.task: following``): scene + head -> gaze heatmap and in/out."""
from __future__ import annotations

from pathlib import Path

from gazefollow.backbones import backbone_config_sections
from gazefollow.diffusion.config import DiffusionConfig, SamplingConfig
from gazefollow.engine.task import Task
from gazefollow.following.config import (FollowingData, FollowingEval, FollowingLoss,
                                         FollowingModel, SyntheticConfig)
from gazefollow.following.data.build import build_datasets
from gazefollow.following.encoders import encoder_config_sections
from gazefollow.following.evaluate import evaluate_following, protocol_of, run_split
from gazefollow.following.models.denoiser import UNetConfig
from gazefollow.following.models.gaze_model import build_model
from gazefollow.following.models.heads import HEADS
from gazefollow.following.models.temporal import TemporalConfig
from gazefollow.following.objective import training_losses
from gazefollow.following.published import init_from_file
from gazefollow.following.validate import validate_following

# the datasets gaze following reads (all in GazeFollow's, VideoAttentionTarget's or GOO's layout)
FOLLOWING_SOURCES = ("synthetic", "gazefollow", "videoattentiontarget", "goo")


def config_sections() -> tuple:
    """The task's keys, its encoders', heads' and backbones', and the diffusion sections."""
    return (("data", FollowingData), ("model", FollowingModel), *encoder_config_sections(),
            *backbone_config_sections(), ("model", UNetConfig), ("model", TemporalConfig),
            ("loss", FollowingLoss), ("eval", FollowingEval), ("diffusion", DiffusionConfig),
            ("sampling", SamplingConfig), ("synthetic", SyntheticConfig))


def validation_metrics(net, dataset, config, accelerator) -> tuple[dict, str, list]:
    """Protocol metrics at ``sampling.steps`` and the in/out AP of the validation split, and
    with ``eval.debugging_maps`` its first ``eval.num_visualize`` samples to draw."""
    steps = config.sampling.steps
    keep = config.eval.num_visualize if config.eval.debugging_maps else 0
    result = run_split(net, dataset, [steps], config.sampling, batch_size=config.eval.batch_size,
                       seed=config.run.seed, device=accelerator.device, num_keep=keep,
                       prior_inout=0.5, protocol=protocol_of(config), desc="val",
                       shard=(accelerator.process_index, accelerator.num_processes))
    return ({**result.model[steps], "inout_ap": result.inout_ap},
            f"{net.head.describe(config.sampling)} {steps} steps", result.samples)


def run_label(config) -> str:
    """e.g. "diffusion-x0", and "diffusion-x0-convlstm" for a temporal model."""
    label = HEADS[config.model.head].run_label(config)
    return label if config.model.temporal == "none" else f"{label}-{config.model.temporal}"


def draw_validation(samples: list[dict], config, path: Path) -> None:
    """``eval.debugging_maps``: the first validation samples, drawn."""
    from gazefollow.following.visualize import save_prediction_grid  # matplotlib: on use

    save_prediction_grid(samples, Path(config.data.dataset_dir), path)


FOLLOWING = Task(
    name="following",
    summary="where a person looks in the scene (the default)",
    config_files=("diffusion.yaml", "gaze.yaml"),
    default_experiment="experiments/synthetic_cpu.yaml",
    dataset_names=FOLLOWING_SOURCES,
    validate=validate_following,
    run_label=run_label,
    build_datasets=build_datasets,
    build_model=build_model,
    training_losses=training_losses,
    validation_metrics=validation_metrics,
    evaluate=evaluate_following,
    eval_label=lambda config, model: model.head.eval_label(config.sampling),
    init_weights=init_from_file,
    draw_validation=draw_validation,
    config_sections=config_sections,
    evaluation_keys=("sampling.",),  # chosen at evaluation time, never baked into a model
    resumable_keys=("sampling.",),
)
