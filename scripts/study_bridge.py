"""Does a face encoder pretrained for gaze ESTIMATION help gaze FOLLOWING? The bridge study.

    python scripts/study_bridge.py [--out outputs/bridge] [--every 100] [--max_steps N]

1. Trains the default estimation experiment (configs/estimation/synthetic_cpu.yaml) on the
   synthetic face world at 32 px, the face size of the default gaze-following experiment, and
   evaluates it (test subject p00, beside the mean-gaze baseline).
2. Trains the default synthetic gaze-following experiment twice, the same seed and data:
   from scratch, and with ``run.init_weights`` = that estimation run (its ResNet backbone
   starts the face branch: the two ResNets have the same shape, face_layers [1, 1, 1], 16
   wide; the rest starts as usual).
3. Prints the validation AUC and Avg L2 (EMA weights, the run's ``val_log.jsonl``) against
   steps for both, and the test metrics at the end, as one markdown table each.

A finished run is reused (rerunning prints again). One process; the machine is printed.
"""
import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gazefollow.engine.run_records import read_step_log  # noqa: E402
from gazefollow.tasks import build_config  # noqa: E402
from gazefollow.tasks import train_and_evaluate  # noqa: E402
from main import CONFIGS, DEFAULT_DIFFUSION, DEFAULT_EXPERIMENT, DEFAULT_GAZE  # noqa: E402

FOLLOWING = [DEFAULT_DIFFUSION, DEFAULT_GAZE, DEFAULT_EXPERIMENT]
ESTIMATION = [CONFIGS / "estimation" / "base.yaml", CONFIGS / "estimation" / "synthetic_cpu.yaml"]


def pretrain_face_encoder(out: Path, common: list[str]) -> tuple[Path, dict]:
    config = build_config(ESTIMATION, [f"run.output_dir={out}", "run.tag=face32",
                                       "data.face_size=32", "logging.wandb=disabled", *common])
    results = train_and_evaluate(config)
    run_dir = out / "synthetic_faces-resnet-fold00" / "face32"
    return run_dir, results


def train_following(out: Path, tag: str, every: int, extra: list[str]) -> tuple[list, dict]:
    config = build_config(FOLLOWING, [f"run.output_dir={out}", f"run.tag={tag}",
                                      f"eval.evaluate_every={every}", "eval.extra_steps=[]",
                                      "logging.wandb=disabled", *extra])
    results = train_and_evaluate(config)
    curve = read_step_log(out / "synthetic-diffusion-x0" / tag, "val_log.jsonl")
    return curve, results


def print_tables(curves: dict, results: dict, estimation: dict) -> None:
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads; synthetic gaze world (default experiment)")
    print(f"face encoder: estimation on the synthetic face world at 32 px, test p00 "
          f"{estimation['model']['angular_error']:.2f} deg (mean gaze "
          f"{estimation['mean_gaze']['angular_error']:.2f} deg)\n")
    names = list(curves)
    print("| step | " + " | ".join(f"{n}: val AUC | {n}: val Avg L2" for n in names) + " |")
    print("|---|" + "---|---|" * len(names))
    by_step = {name: {line["step"]: line for line in curve} for name, curve in curves.items()}
    for step in sorted(set().union(*by_step.values())):
        cells = []
        for name in names:
            line = by_step[name].get(step)
            cells += [f"{line['auc']:.4f}", f"{line['avg_l2']:.4f}"] if line else ["", ""]
        print(f"| {step} | " + " | ".join(cells) + " |")
    print("\n| run | test AUC | test Avg L2 | test Min L2 | in/out AP |\n|---|---|---|---|---|")
    for name, result in results.items():
        m = result["model"]
        print(f"| {name} | {m['auc']:.4f} | {m['avg_l2']:.4f} | {m['min_l2']:.4f} | "
              f"{m['inout_ap']:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/bridge", type=Path)
    parser.add_argument("--every", type=int, default=100, help="validation period in steps")
    parser.add_argument("--max_steps", type=int, help="shorten every training run")
    args = parser.parse_args()
    common = [f"run.max_steps={args.max_steps}"] if args.max_steps else []
    face_run, estimation = pretrain_face_encoder(args.out, common)
    curves, results = {}, {}
    for name, tag, extra in (("scratch", "scratch", []),
                             ("face pretrained", "face_pretrained",
                              [f"run.init_weights={face_run}"])):
        curves[name], results[name] = train_following(args.out, tag, args.every,
                                                      [*common, *extra])
    print_tables(curves, results, estimation)


if __name__ == "__main__":
    main()
