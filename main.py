"""gazefollow command line: train then evaluate, or evaluate saved weights (--eval_weights).

    python main.py                                   # the default synthetic CPU experiment
    python main.py --yaml_diffusion configs/diffusion.yaml --yaml_gaze configs/gaze.yaml \\
        --tag trial_gaze [legacy flags] [section.key=value ...]
    python main.py --eval_weights RUN_DIR_OR_CHECKPOINT [section.key=value ...]
    python main.py --eval_weights ckpt_last.pth [--yaml_diffusion F --yaml_gaze G]  # original's
    python main.py --task estimation                 # gaze estimation on the synthetic faces
    python main.py --task estimation --config configs/estimation/data/mpiifacegaze.yaml \
        data.dataset_dir=PATH --all_folds            # the 15 leave-one-subject-out folds
    python main.py --task NAME                       # any task of the registry (--help)
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from gazefollow.config import LAYER_STACK, ConfigError
from gazefollow.original.legacy import LEGACY_FLAGS, legacy_overrides
from gazefollow.tasks import DEFAULT_TASK, TASKS, build_config

ROOT = Path(__file__).resolve().parent
CONFIGS = ROOT / "configs"
# The default task's files (the original's --yaml_diffusion / --yaml_gaze replace them)
DEFAULT_DIFFUSION, DEFAULT_GAZE = (CONFIGS / f for f in TASKS[DEFAULT_TASK].config_files)
DEFAULT_EXPERIMENT = CONFIGS / TASKS[DEFAULT_TASK].default_experiment
# The original model configuration: the default for the original's own checkpoints (.pth)
ORIGINAL_EXPERIMENT = CONFIGS / "experiments" / "original.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__ + "\nConfig layers, later wins:\n  " + "\n  < ".join(LAYER_STACK),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=list(TASKS), default=DEFAULT_TASK,
                        help="; ".join(f"{t.name}: {t.summary} (configs/"
                                       f"{' + '.join(t.config_files)}, then "
                                       f"{t.default_experiment} unless --experiment or "
                                       "--config is given)" for t in TASKS.values()))
    parser.add_argument("--all_folds", action="store_true",
                        help="train and test every fold of the task's protocol (eval.fold = 0, "
                             "1, ...) and print the per-fold table and mean")
    parser.add_argument("--yaml_diffusion",
                        help=f"diffusion settings (default {DEFAULT_DIFFUSION})")
    parser.add_argument("--yaml_gaze",
                        help=f"gaze model and data settings (default {DEFAULT_GAZE})")
    parser.add_argument("--experiment", help="experiment YAML applied after the two files; "
                        "'none' to skip (default: synthetic_cpu.yaml if no YAML is given)")
    parser.add_argument("--config", action="append", default=[],
                        help="more YAML layers, e.g. configs/data/gazefollow.yaml")
    legacy = parser.add_argument_group(
        "legacy flags of the original research code, each a config key (docs/legacy.md)")
    for flag, (key, kind) in LEGACY_FLAGS.items():
        if kind in ("true", "false") or (isinstance(kind, dict) and None in kind):
            legacy.add_argument(f"--{flag}", action="store_const", const=True, help=f"-> {key}")
        elif kind == "optional value":
            legacy.add_argument(f"--{flag}", nargs="?", const=True,
                                help=f"-> {key or 'nothing (never read)'}")
        elif kind in ("list", "rates"):
            legacy.add_argument(f"--{flag}", nargs="+", help=f"-> {key} (ints)")
        else:
            legacy.add_argument(f"--{flag}", help=f"-> {key or 'nothing (never read)'}")
    parser.add_argument("--quick_val", type=int, metavar="N",
                        help="evaluate a seeded subsample of N test HEADS (quick validation; "
                             "the output says it is subsampled)")
    parser.add_argument("--trust_pickle", action="store_true",
                        help="load weights files that hold Python objects beyond tensors "
                             "(run.trust_pickle=true): such a file can run code, so only for "
                             "files whose source you trust")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error, not only its message")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    return parser


def parse(argv: list[str]) -> tuple[list[Path], list, str | None]:
    """-> (YAML layers, overrides, checkpoint to evaluate or None), in LAYER_STACK's order.

    With --eval_weights the checkpoint's stored config is the base, so only --config layers
    and overrides apply; --yaml_diffusion / --yaml_gaze / --experiment are refused there. A
    checkpoint of the original research code (``.pth``) stores no config: the whole stack
    applies, with the original model configuration as the default experiment.
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    for item in unknown:
        if item.startswith("-"):
            name = item.lstrip("-").split("=")[0]
            close = difflib.get_close_matches(name, list(LEGACY_FLAGS) + ["yaml_diffusion",
                                              "yaml_gaze", "experiment", "config", "task",
                                              "all_folds", "quick_val", "trust_pickle", "debug"],
                                              n=1)
            hint = f" Did you mean '--{close[0]}'?" if close else ""
            raise ConfigError(f"unknown flag '{item}'.{hint}")
        args.overrides.append(item)
    for flag, (_, kind) in LEGACY_FLAGS.items():  # a flag without its value took an override
        taken = getattr(args, flag)
        if kind == "optional value" and isinstance(taken, str) and "=" in taken:
            args.overrides.insert(0, taken)
            setattr(args, flag, True)
    given = {flag: None if getattr(args, flag) is True else getattr(args, flag)
             for flag in LEGACY_FLAGS if getattr(args, flag) is not None}
    eval_weights = given.pop("eval_weights", None)
    for item in list(args.overrides):  # eval.eval_weights=PATH means the same as the flag
        if item.startswith("eval.eval_weights="):
            eval_weights = item.split("=", 1)[1]
            args.overrides.remove(item)
    overrides = legacy_overrides(given) + args.overrides
    if args.quick_val is not None:
        overrides = [("data.subsample_test", True), ("data.subsample_size", args.quick_val),
                     *overrides]
    if args.trust_pickle:
        overrides = [*overrides, ("run.trust_pickle", True)]
    extra = [Path(p) for p in args.config]
    if args.task != DEFAULT_TASK:
        overrides = [("run.task", args.task), *overrides]
    if eval_weights and not eval_weights.endswith(".pth"):
        if args.yaml_diffusion or args.yaml_gaze or args.experiment:
            raise ConfigError("--eval_weights evaluates with the checkpoint's own config; "
                              "--yaml_diffusion/--yaml_gaze/--experiment do not apply (use "
                              "--config FILE or section.key=value to change evaluation settings)")
        return extra, overrides, eval_weights
    if args.task != DEFAULT_TASK:
        task = TASKS[args.task]
        base = [CONFIGS / f for f in task.config_files]
        if args.yaml_diffusion or args.yaml_gaze:
            raise ConfigError(f"--task {args.task} starts from configs/"
                              f"{' + '.join(task.config_files)}; --yaml_diffusion/--yaml_gaze "
                              f"are {DEFAULT_TASK}'s files (use --config FILE for more layers)")
        default = task.default_experiment and str(CONFIGS / task.default_experiment)
        experiment = args.experiment or (None if extra else default)
        experiment = [] if experiment in (None, "none") else [Path(experiment)]
        return [*base, *experiment, *extra], overrides, eval_weights
    layers = [Path(args.yaml_diffusion or DEFAULT_DIFFUSION), Path(args.yaml_gaze or DEFAULT_GAZE)]
    default = ORIGINAL_EXPERIMENT if eval_weights else DEFAULT_EXPERIMENT
    default = None if (args.yaml_diffusion or args.yaml_gaze) else str(default)
    experiment = args.experiment or default
    if experiment and experiment != "none":
        layers.append(Path(experiment))
    return layers + extra, overrides, eval_weights


def main(argv: list[str] | None = None) -> dict:
    """Train then evaluate (returns metrics.json's content), or evaluate saved weights."""
    import torch.distributed

    from gazefollow.tasks import evaluate_checkpoint, task_of, train_and_evaluate

    argv = sys.argv[1:] if argv is None else argv
    layers, overrides, eval_weights = parse(argv)
    try:
        if "--all_folds" in argv:
            if eval_weights:
                raise ConfigError("--all_folds trains every fold; it does not take --eval_weights")
            task = task_of(build_config(layers, overrides))
            if task.all_folds is None:
                raise ConfigError(f"--all_folds runs the folds of a cross-validated protocol; "
                                  f"run.task={task.name} has none")
            return task.all_folds(layers, overrides, train_and_evaluate, build_config)
        if eval_weights:
            return evaluate_checkpoint(eval_weights, overrides, layers=layers)
        config = build_config(layers, overrides)
        if config.eval.eval_weights:  # an original YAML file naming weights: evaluate them
            original = config.eval.eval_weights.endswith(".pth")  # its config is these files'
            return evaluate_checkpoint(config.eval.eval_weights, overrides,
                                       layers=layers if original else [])
        return train_and_evaluate(config)
    finally:
        # several processes: training keeps the process group for the sharded evaluation;
        # it ends here (a no-op with one process)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def run_command_line() -> None:
    """main() for a shell: a project error is one line (``--debug``: the traceback too)."""
    from gazefollow.cli import run_command

    run_command(main)


if __name__ == "__main__":
    run_command_line()
