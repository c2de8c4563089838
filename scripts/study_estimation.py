"""Gaze-estimation models side by side on the synthetic face world, and SimCLR at a small
label budget.

    python scripts/study_estimation.py [--out outputs/study_estimation] [--max_steps 300]

Every run is the default estimation experiment (configs/estimation/synthetic_cpu.yaml:
fold 0, test p00, AdamW 2e-3 with a cosine schedule, batch 32) with the same number of
steps; only the model differs (GazeNet needs its 112 px faces, the others see 64 px):

- GazeNet (the MobileNetV2 recipe's network), the ResNet, a tiny ViT, GEFF's fusion and the
  vanilla (concatenating) fusion;
- the ResNet trained on 10% of the training faces (``estimation.label_fraction=0.1``), from
  scratch and from a SimCLR encoder pretrained on all of them without labels
  (configs/estimation/simclr.yaml).

A finished run is reused. Prints one markdown table (test angular error beside the mean-gaze
baseline, seconds per step) and the machine.
"""
import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gazefollow.tasks import build_config  # noqa: E402
from gazefollow.tasks import train_and_evaluate  # noqa: E402
from main import CONFIGS  # noqa: E402

ESTIMATION_BASE = CONFIGS / "estimation" / "base.yaml"
ESTIMATION_EXPERIMENT = CONFIGS / "estimation" / "synthetic_cpu.yaml"
SIMCLR_EXPERIMENT = CONFIGS / "estimation" / "simclr.yaml"

MODELS = {  # name: overrides
    "GazeNet (112 px)": ["estimation.estimator=gazenet", "data.face_size=112"],
    "ResNet": [],
    "tiny ViT": ["estimation.estimator=vit", "model.vit_size=tiny"],
    "GEFF fusion": ["estimation.estimator=geff"],
    "vanilla fusion": ["estimation.estimator=vanilla_fusion"],
}


def run(layers: list[Path], tag: str, out: Path, extra: list[str]) -> tuple[dict, Path]:
    config = build_config(layers, [f"run.output_dir={out}", f"run.tag={tag}",
                                   "logging.wandb=disabled", *extra])
    from gazefollow.tasks import run_dir_for
    run_dir = run_dir_for(config)
    metrics = run_dir / "metrics.json"
    results = json.loads(metrics.read_text()) if metrics.is_file() else train_and_evaluate(config)
    stats = json.loads((run_dir / "train_stats.json").read_text())
    return {**results, "seconds_per_step": stats.get("seconds_per_step")}, run_dir


def simclr_row(results: dict) -> str:
    m = results["model"]
    return (f"SimCLR encoder (no labels): test NT-Xent {m['nt_xent']:.3f}, top-1 retrieval "
            f"{m['top1']:.3f} (chance {results['chance']['top1']:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/study_estimation", type=Path)
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--simclr_epochs", type=int, default=30,
                        help="SimCLR pretraining epochs (20 steps each at batch 128)")
    args = parser.parse_args()
    layers = [ESTIMATION_BASE, ESTIMATION_EXPERIMENT]
    steps = [f"run.max_steps={args.max_steps}"]
    rows = []
    for name, overrides in MODELS.items():
        tag = name.split(" (")[0].lower().replace(" ", "_")
        results, _ = run(layers, tag, args.out, [*steps, *overrides])
        rows.append((name, "100%", results))
    simclr_tag = f"simclr_{args.simclr_epochs}ep"
    simclr, simclr_dir = run([ESTIMATION_BASE, SIMCLR_EXPERIMENT], simclr_tag, args.out,
                             ["run.task=simclr", f"optim.epochs={args.simclr_epochs}"])
    budget = ["estimation.label_fraction=0.1", *steps]
    scratch, _ = run(layers, "resnet_10pct", args.out, budget)
    pretrained, _ = run(layers, f"resnet_10pct_{simclr_tag}", args.out,
                        [*budget, f"run.init_weights={simclr_dir}"])
    rows += [("ResNet, from scratch", "10%", scratch),
             (f"ResNet, from SimCLR ({args.simclr_epochs} epochs)", "10%", pretrained)]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads; synthetic face world, fold 0 (test p00), "
          f"{args.max_steps} steps at most per run, one seed\n")
    print("| model | training labels | test angular error (deg) | mean gaze (deg) | s / step |")
    print("|---|---|---|---|---|")
    for name, labels, r in rows:
        speed = r["seconds_per_step"]
        print(f"| {name} | {labels} | {r['model']['angular_error']:.2f} | "
              f"{r['mean_gaze']['angular_error']:.2f} | "
              f"{'' if speed is None else f'{speed:.3f}'} |")
    print(f"\n{simclr_row(simclr)}")


if __name__ == "__main__":
    main()
