"""gazefollow command line: train then evaluate, or evaluate saved weights (--eval_weights).

    python main.py                                   # the default synthetic CPU experiment
    python main.py --yaml_diffusion configs/diffusion.yaml --yaml_gaze configs/gaze.yaml \\
        --tag trial_gaze [legacy flags] [section.key=value ...]
    python main.py --eval_weights RUN_DIR_OR_CHECKPOINT [section.key=value ...]
    python main.py --eval_weights ckpt_last.pth [--yaml_diffusion F --yaml_gaze G]  # original's
    python main.py --task estimation                 # gaze estimation on the synthetic faces
    python main.py --task estimation --config configs/estimation/data/mpiifacegaze.yaml \
        data.dataset_dir=PATH --all_folds            # the 15 leave-one-subject-out folds
    python main.py --task lam                        # Looking-At-Me on the synthetic LAM world
"""
from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from pathlib import Path

from gazefollow.config import (LAYER_STACK, LEGACY_FLAGS, ConfigError, build_config,
                               legacy_overrides)

ROOT = Path(__file__).resolve().parent
DEFAULT_DIFFUSION = ROOT / "configs" / "diffusion.yaml"
DEFAULT_GAZE = ROOT / "configs" / "gaze.yaml"
DEFAULT_EXPERIMENT = ROOT / "configs" / "experiments" / "synthetic_cpu.yaml"
# The original model configuration: the default for the original's own checkpoints (.pth)
ORIGINAL_EXPERIMENT = ROOT / "configs" / "experiments" / "original.yaml"
# Gaze estimation (--task estimation): the full-size defaults (the GazeNet recipe) and the
# default experiment (the synthetic face world on a CPU)
ESTIMATION_BASE = ROOT / "configs" / "estimation" / "base.yaml"
ESTIMATION_EXPERIMENT = ROOT / "configs" / "estimation" / "synthetic_cpu.yaml"
SIMCLR_EXPERIMENT = ROOT / "configs" / "estimation" / "simclr.yaml"
# Looking-At-Me (--task lam): Ego4D's GazeLSTM recipe, and the synthetic LAM world on a CPU
LAM_BASE = ROOT / "configs" / "lam" / "base.yaml"
LAM_EXPERIMENT = ROOT / "configs" / "lam" / "synthetic_cpu.yaml"
GAZEPOSE_CONFIG = ROOT / "configs" / "lam" / "gazepose.yaml"
# --task -> (its base, its default experiment)
TASK_DEFAULTS = {"estimation": (ESTIMATION_BASE, ESTIMATION_EXPERIMENT),
                 "simclr": (ESTIMATION_BASE, SIMCLR_EXPERIMENT),
                 "lam": (LAM_BASE, LAM_EXPERIMENT)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__ + "\nConfig layers, later wins:\n  " + "\n  < ".join(LAYER_STACK),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("following", "estimation", "simclr", "lam"),
                        default="following",
                        help="following (default): where a person looks in the scene; "
                             f"estimation: a face's 3D gaze direction ({ESTIMATION_BASE.name} "
                             f"and, unless --experiment or --config is given, "
                             f"{ESTIMATION_EXPERIMENT.name} from configs/estimation/); simclr: "
                             "label-free pretraining of a face encoder "
                             f"({SIMCLR_EXPERIMENT.name}); lam: is each face in a video looking at "
                             "the camera wearer (Ego4D "
                             f"Looking-At-Me; configs/lam/{LAM_BASE.name} and "
                             f"{LAM_EXPERIMENT.name})")
    parser.add_argument("--all_folds", action="store_true",
                        help="estimation: train and test every fold of the protocol "
                             "(eval.fold = 0, 1, ...) and print the per-fold table and mean")
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
        elif kind in ("list", "rates"):
            legacy.add_argument(f"--{flag}", nargs="+", help=f"-> {key} (ints)")
        else:
            legacy.add_argument(f"--{flag}", help=f"-> {key or 'nothing (never read)'}")
    parser.add_argument("--quick_val", type=int, metavar="N",
                        help="evaluate a seeded subsample of N test HEADS (quick validation; "
                             "the output says it is subsampled)")
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
                                              "all_folds", "quick_val", "debug"], n=1)
            hint = f" Did you mean '--{close[0]}'?" if close else ""
            raise ConfigError(f"unknown flag '{item}'.{hint}")
        args.overrides.append(item)
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
    extra = [Path(p) for p in args.config]
    if args.task != "following":
        overrides = [("run.task", args.task), *overrides]
    if eval_weights and not eval_weights.endswith(".pth"):
        if args.yaml_diffusion or args.yaml_gaze or args.experiment:
            raise ConfigError("--eval_weights evaluates with the checkpoint's own config; "
                              "--yaml_diffusion/--yaml_gaze/--experiment do not apply (use "
                              "--config FILE or section.key=value to change evaluation settings)")
        return extra, overrides, eval_weights
    if args.task != "following":
        base, default = TASK_DEFAULTS[args.task]
        if args.yaml_diffusion or args.yaml_gaze:
            raise ConfigError(f"--task {args.task} starts from {base.relative_to(ROOT)}; "
                              "--yaml_diffusion/--yaml_gaze are gaze following's files (use "
                              "--config FILE for more layers)")
        experiment = args.experiment or (None if extra else str(default))
        experiment = [] if experiment in (None, "none") else [Path(experiment)]
        return [base, *experiment, *extra], overrides, eval_weights
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

    from gazefollow.evaluate import evaluate_checkpoint

    argv = sys.argv[1:] if argv is None else argv
    layers, overrides, eval_weights = parse(argv)
    try:
        if "--all_folds" in argv:
            if eval_weights:
                raise ConfigError("--all_folds trains every fold; it does not take --eval_weights")
            return run_all_folds(layers, overrides)
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


def train_and_evaluate(config) -> dict:
    from gazefollow.evaluate import evaluate_checkpoint
    from gazefollow.run_lock import run_lock
    from gazefollow.run_records import peak_memory_mib
    from gazefollow.runtime import eval_processes
    from gazefollow.stopping import TrainingInterrupted
    from gazefollow.train import run_dir_for, train

    start = time.perf_counter()
    main_process = eval_processes(config).is_main_process
    # one run per run directory: the lock is held from before anything is written there
    # until the evaluation's results are
    with run_lock(run_dir_for(config), enabled=main_process):
        outcome = train(config)
        if outcome.interrupted_by:
            raise TrainingInterrupted(outcome.interrupted_by, outcome.step, outcome.run_dir)
        if not outcome.finished:
            return {}  # halted early (run.halt_at_step): evaluation waits for the run's end
        run_dir = outcome.run_dir
        # every process evaluates its share of the split; the main one writes the results
        results = evaluate_checkpoint(run_dir, out_dir=run_dir)
    if not main_process:
        return results
    wall, peak = time.perf_counter() - start, peak_memory_mib(children=True)
    print(f"run finished in {wall / 60:.1f} min, peak memory {peak:.0f} MiB -> {run_dir}")
    (run_dir / "run_stats.json").write_text(json.dumps(
        {"wall_seconds": round(wall, 1), "peak_rss_mib": round(peak)}, indent=2))
    return results


def run_all_folds(layers: list[Path], overrides: list) -> dict:
    """Every fold of an estimation protocol, each its own run (<dataset>-<model>-fold<k>), then the
    per-fold table and the mean; the summary goes to <output_dir>/<dataset>-<model>-all_folds/
    <tag>/folds.json."""
    from gazefollow.estimation.data.build import fold_count

    config = build_config(layers, overrides)
    folds = fold_count(config) if config.run.task == "estimation" else 1
    if folds < 2:
        raise ConfigError("--all_folds runs the folds of a cross-validated gaze-estimation "
                          f"protocol; run.task={config.run.task} with data.source_dataset="
                          f"{config.data.source_dataset} has none (data.split_protocol="
                          f"{config.data.split_protocol})")
    rows = []
    for fold in range(folds):
        results = train_and_evaluate(build_config(layers, [*overrides, ("eval.fold", fold)]))
        if not results:  # halted early: its evaluation waits for the run's end
            print(f"fold {fold}: halted before its end; run the same command again to resume")
            continue
        rows.append({"fold": fold, "test": results["info"]["subjects"],
                     "model": results["model"]["angular_error"],
                     "mean_gaze": results["mean_gaze"]["angular_error"]})
    summary = {"folds": rows, "mean": {key: sum(r[key] for r in rows) / len(rows)
                                       for key in ("model", "mean_gaze")} if rows else {}}
    print_folds(summary)
    out = (Path(config.run.output_dir) /
           f"{config.data.source_dataset}-{config.model.estimator}-all_folds" / config.run.tag)
    out.mkdir(parents=True, exist_ok=True)
    (out / "folds.json").write_text(json.dumps(summary, indent=2))
    print(f"-> {out / 'folds.json'}")
    return summary


def print_folds(summary: dict) -> None:
    print(f"\n{'fold':<6}{'test subjects':<24}{'model (deg)':>12}{'mean gaze (deg)':>17}")
    for row in summary["folds"]:
        print(f"{row['fold']:<6}{', '.join(row['test']):<24}{row['model']:>12.2f}"
              f"{row['mean_gaze']:>17.2f}")
    if summary["mean"]:
        print(f"{'mean':<30}{summary['mean']['model']:>12.2f}"
              f"{summary['mean']['mean_gaze']:>17.2f}")


def run_command_line() -> None:
    """main() for a shell: a project error is one line (``--debug``: the traceback too)."""
    from gazefollow.checkpoint import CheckpointError
    from gazefollow.data.instances import BadInput
    from gazefollow.init_weights import InitWeightsError
    from gazefollow.run_lock import RunLockError
    from gazefollow.stopping import TrainingInterrupted

    debug = "--debug" in sys.argv[1:]
    try:
        main([a for a in sys.argv[1:] if a != "--debug"])
    except TrainingInterrupted as stopped:
        print(stopped, file=sys.stderr)
        sys.exit(stopped.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        sys.exit("aborted (Ctrl-C); complete checkpoints on disk are kept, and the same "
                 "command resumes from the newest")
    except (ConfigError, BadInput, FileNotFoundError, FileExistsError, CheckpointError,
            InitWeightsError, RunLockError, FloatingPointError) as err:
        if debug:
            raise
        kind = "configuration error" if isinstance(err, ConfigError) else "error"
        sys.exit(f"{kind}: {err}  (--debug shows where)")


if __name__ == "__main__":
    run_command_line()
