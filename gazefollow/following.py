"""The gaze-following task (``run.task: following``): scene + head -> gaze heatmap and in/out."""
from __future__ import annotations

from gazefollow.data.build import build_datasets
from gazefollow.evaluate import evaluate_run, protocol_of, run_split
from gazefollow.models.gaze_model import build_model
from gazefollow.models.heads import HEADS
from gazefollow.objective import training_losses
from gazefollow.tasks import Task


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


FOLLOWING = Task(
    name="following",
    run_label=run_label,
    build_datasets=build_datasets,
    build_model=build_model,
    training_losses=training_losses,
    validation_metrics=validation_metrics,
    evaluate_run=evaluate_run,
    eval_label=lambda config, model: model.head.eval_label(config.sampling),
)
