"""The task contract: what a task gives the engine, and the registry that finds a run's task.

The engine (training loop, resume, checkpoints, evaluation) calls only what a ``Task``
declares; it never names a task. ``gazefollow/tasks.py`` lists the tasks and builds the one
``Registry`` the command line uses; a test or a script may build its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from gazefollow.config import (ENGINE_SECTIONS, Config, ConfigError, assemble_schema, build_config,
                               load_yaml)


@dataclass(frozen=True)
class Task:
    name: str  # run.task
    summary: str  # one line for --help
    # YAML layers under configs/, before any user file: the task's full-size defaults, and
    # the default experiment (applied unless --experiment or --config is given)
    config_files: tuple[str, ...]
    default_experiment: Optional[str]
    dataset_names: tuple[str, ...]  # the data.source_dataset values the task reads
    validate: Callable  # config -> None; raises ConfigError (after the engine's own checks)
    # config -> the run folder's model id, e.g. "diffusion-x0" (output_dir/<dataset>-<id>/<tag>)
    run_label: Callable
    # (config, splits, log) -> {split: dataset}; items are (position, epoch) or positions,
    # samples dicts (BAD_KEY for a sample skipped in skip mode), batched by collate_samples
    build_datasets: Callable
    # config -> a module with trainable_parts() ({part: [parameters]}) and resnet_prefixes()
    build_model: Callable
    # (model, batch, the config section loss_section) -> {"loss": scalar, other scalars (all
    # logged), and optionally "t_quartile" / "mse" / "in_frame" per sample for the
    # per-quartile denoising loss}
    training_losses: Callable
    # (net, dataset, config, accelerator) -> ({metric: value}, what was sampled, samples to
    # draw (may be [])): every process scores its share of the validation split
    validation_metrics: Callable
    # (config, model, device, weights, shard, log) -> Evaluation (engine.evaluation): its
    # results hold "model" ({metric: value}, logged to wandb) and its info "split"
    evaluate: Callable
    eval_label: Callable  # (config, model) -> the evaluation folder's middle name part
    # (model, run_cfg, log, report_file) -> report: run.init_weights into a fresh model
    # () -> ((section, dataclass), ...): the config keys of the task and of its components,
    # added to the engine's sections (gazefollow/config/sections.py)
    config_sections: Callable = tuple
    loss_section: str = "loss"  # the config section training_losses is given
    # config key prefixes an evaluation may change (beside data. and eval.): a change names
    # the evaluation's folder; those of them that training never reads (e.g. the sampler)
    # may also change when a run is resumed
    evaluation_keys: tuple[str, ...] = ()
    resumable_keys: tuple[str, ...] = ()
    init_weights: Optional[Callable] = None
    # (layers, overrides, train_and_evaluate, build_config) -> summary: --all_folds
    all_folds: Optional[Callable] = None
    # (samples, config, path) -> None: draws what validation_metrics returned to draw
    draw_validation: Optional[Callable] = None


@dataclass(frozen=True)
class Registry:
    """The tasks a command line knows, and how its YAML layers are read (``read_layer``: a
    path -> an OmegaConf node; the default reads this project's files only)."""

    tasks: dict[str, Task]
    read_layer: Callable = load_yaml
    flag_names: dict = field(default_factory=dict)  # {key: the flag that sets it}, for errors
    # checkpoint suffix -> (path, config) -> load_for_eval's answer, for files not ours
    foreign_checkpoints: dict = field(default_factory=dict)
    # (path, layers, overrides, registry) -> load_for_eval's answer for a released file of a
    # published model (recognised by its keys), or None for any other file
    published: Optional[Callable] = None

    @property
    def schema(self) -> type:
        """The config class of the engine's sections and every task's (assembled once per
        set of parts)."""
        spec = ENGINE_SECTIONS + tuple(pair for task in self.tasks.values()
                                       for pair in task.config_sections())
        return assemble_schema(spec)

    def task_named(self, name: str) -> Task:
        if name not in self.tasks:
            raise ConfigError(f"run.task='{name}' is not one of {list(self.tasks)}.")
        return self.tasks[name]

    def task_of(self, config: Config) -> Task:
        return self.task_named(config.run.task)

    def check(self, config: Config) -> None:
        """The run's task exists, reads the configured dataset, and accepts its config."""
        task = self.task_of(config)
        source = config.data.source_dataset
        if source not in task.dataset_names:
            raise ConfigError(
                f"data.source_dataset={source} is not a dataset of run.task={task.name}, which "
                f"reads {list(task.dataset_names)} (python main.py --task NAME starts from that "
                "task's own files under configs/)")
        task.validate(config)

    def build_config(self, yaml_files=(), overrides=(), base: Optional[dict] = None) -> Config:
        """``config.build_config`` with this registry's layer reader and task checks."""
        return build_config(yaml_files, overrides, base, schema=self.schema,
                            read_layer=self.read_layer, checks=(self.check,),
                            flag_names=self.flag_names)
