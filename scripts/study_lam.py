"""Looking-At-Me on the synthetic LAM world: the GazeLSTM baseline, GazePose, and GazePose's
ablations (each one override), beside the all-positive baseline.

    python scripts/study_lam.py [--out outputs/study_lam] [--epochs 12]

Every run is the default experiment (configs/lam/synthetic_cpu.yaml) with the same schedule;
GazePose's transformer is shrunk for a CPU (lam.gazepose_dmodel 64, 2 + 2 layers, 4 heads,
feed-forward 128). A finished run is reused. Prints one markdown table and the machine.
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

LAM_BASE, LAM_EXPERIMENT = CONFIGS / "lam" / "base.yaml", CONFIGS / "lam" / "synthetic_cpu.yaml"
GAZEPOSE_CONFIG = CONFIGS / "lam" / "gazepose.yaml"

CPU_GAZEPOSE = ["lam.gazepose_dmodel=64", "lam.gazepose_encoder_layers=2",
                "lam.gazepose_decoder_layers=2", "lam.gazepose_heads=4",
                "lam.gazepose_feedforward=128",
                # the experiment's stride, schedule and class weights, not GazePose's
                "lam.train_stride=3", "optim.epochs={epochs}", "lam.class_weights=[0.35,0.65]"]
RUNS = {  # name: (GazePose's config on top?, overrides)
    "GazeLSTM (baseline)": (False, []),
    "GazePose": (True, []),
    "GazePose, no head-pose prior": (True, ["lam.gazepose_head_prior=false"]),
    "GazePose, no landmark prior": (True, ["lam.gazepose_landmark_prior=false"]),
    "GazePose, no temporal dropout": (True, ["lam.temporal_dropout=false"]),
}


def run(name: str, gazepose: bool, extra: list[str], out: Path, epochs: int) -> dict:
    layers = [LAM_BASE, *([GAZEPOSE_CONFIG] if gazepose else []), LAM_EXPERIMENT]
    tag = name.lower().replace(" (baseline)", "").replace(", ", "_").replace(" ", "_").replace(
        "-", "_")
    shrink = [o.format(epochs=epochs) for o in CPU_GAZEPOSE] if gazepose else []
    config = build_config(layers, [f"run.output_dir={out}", f"run.tag={tag}",
                                   "logging.wandb=disabled", f"optim.epochs={epochs}",
                                   *shrink, *extra])
    from gazefollow.tasks import run_dir_for
    run_dir = run_dir_for(config)
    metrics = run_dir / "metrics.json"
    results = json.loads(metrics.read_text()) if metrics.is_file() else train_and_evaluate(config)
    stats = json.loads((run_dir / "train_stats.json").read_text())
    return {**results, "seconds_per_step": stats.get("seconds_per_step")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/study_lam", type=Path)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    rows = [(name, run(name, gazepose, extra, args.out, args.epochs))
            for name, (gazepose, extra) in RUNS.items()]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads; synthetic LAM world, Ego4D val list, "
          f"{args.epochs} epochs per run, one seed\n")
    print("| model | mAP | accuracy | s / step |")
    print("|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {100 * r['model']['map']:.2f} | {100 * r['model']['accuracy']:.2f} "
              f"| {r['seconds_per_step']:.3f} |")
    base = rows[0][1]["all_positive"]
    print(f"| all positive | {100 * base['map']:.2f} | {100 * base['accuracy']:.2f} | |")


if __name__ == "__main__":
    main()
