"""Single-frame vs temporal gaze following on the synthetic video world, through the
VideoAttentionTarget protocol: AUC, L2 and in/out AP in one table.

    python scripts/study_temporal.py [--out outputs/study_temporal] [--max_steps 600]

The world (make_synthetic.py --layout video: 200 train and 40 test clips of 24 frames) is
written once under --out. Every run is the default CPU experiment (configs/experiments/
synthetic_cpu.yaml) on it with the same number of steps (--max_steps decides, not epochs);
only model.temporal differs (clips of --clip_length frames, the target last). A finished run
is reused. Prints one markdown table and the machine.
"""
import argparse
import csv
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gazefollow.following.data.synthetic_video import clip_track, write_video_world  # noqa: E402
from gazefollow.tasks import build_config, train_and_evaluate  # noqa: E402
from main import DEFAULT_DIFFUSION, DEFAULT_EXPERIMENT, DEFAULT_GAZE  # noqa: E402

WORLD = ["synthetic.num_train=4800", "synthetic.num_test=960"]  # frames: 200 and 40 clips
FRAMES_PER_CLIP = 24


def run(temporal: str, out: Path, world: Path, steps: int, clip: int) -> dict:
    config = build_config([DEFAULT_DIFFUSION, DEFAULT_GAZE, DEFAULT_EXPERIMENT], [
        f"run.output_dir={out}", f"run.tag={temporal}", "logging.wandb=disabled",
        "data.source_dataset=videoattentiontarget", f"data.dataset_dir={world}",
        f"run.max_steps={steps}", "optim.epochs=1000", f"model.temporal={temporal}",
        f"data.clip_length={clip}", "data.val_fraction=0.2"])
    from gazefollow.tasks import run_dir_for
    run_dir = run_dir_for(config)
    metrics = run_dir / "metrics.json"
    results = json.loads(metrics.read_text()) if metrics.is_file() else train_and_evaluate(config)
    stats = json.loads((run_dir / "train_stats.json").read_text())
    return {**results, "seconds_per_step": stats.get("seconds_per_step"), "run_dir": run_dir}


def hidden_and_visible(run_dir: Path, world) -> dict:
    """Mean per-frame AUC and L2 of in-frame test frames whose face the world hid, and of the
    rest. The world is a function of its seed, so which frames were hidden is recomputed."""
    tracks, groups = {}, {"hidden": [], "visible": []}
    with open(run_dir / "predictions.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if not row["auc"]:  # out of frame: no AUC or L2
                continue
            clip_dir, frame = Path(row["path"]).parts[-2:]
            clip = int(clip_dir.removeprefix("clip"))
            if clip not in tracks:
                tracks[clip] = clip_track(world, "test", clip, FRAMES_PER_CLIP)["hidden"]
            hidden = tracks[clip][int(Path(frame).stem)]
            groups["hidden" if hidden else "visible"].append((float(row["auc"]),
                                                              float(row["l2"])))
    return {name: (len(rows), sum(r[0] for r in rows) / max(len(rows), 1),
                   sum(r[1] for r in rows) / max(len(rows), 1))
            for name, rows in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/study_temporal", type=Path)
    parser.add_argument("--max_steps", type=int, default=600)
    parser.add_argument("--clip_length", type=int, default=3)
    args = parser.parse_args()
    world, world_config = args.out / "video_world", build_config(overrides=WORLD).synthetic
    if not world.is_dir():
        write_video_world(world_config, world, frames_per_clip=FRAMES_PER_CLIP)
    rows = [(name, run(name, args.out, world, args.max_steps, args.clip_length))
            for name in ("none", "convlstm", "attention")]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads; synthetic video world, VAT protocol, "
          f"{args.max_steps} steps per run, clips of {args.clip_length} frames, one seed\n")
    print("| model.temporal | AUC | L2 | in/out AP | s / step |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        m = r["model"]
        print(f"| {name} | {m['auc']:.4f} | {m['l2']:.4f} | {m['inout_ap']:.4f} | "
              f"{r['seconds_per_step']:.3f} |")
    prior = rows[0][1].get("center_prior", {})
    if prior:
        print(f"| center prior | {prior['auc']:.4f} | {prior['l2']:.4f} | | |")
    split = {name: hidden_and_visible(r["run_dir"], world_config) for name, r in rows}
    counts = split["none"]
    print(f"\nin-frame test frames with the face hidden ({counts['hidden'][0]}) and visible "
          f"({counts['visible'][0]}), per-frame means:\n")
    print("| model.temporal | AUC, hidden | L2, hidden | AUC, visible | L2, visible |")
    print("|---|---|---|---|---|")
    for name, groups in split.items():
        (_, auc_h, l2_h), (_, auc_v, l2_v) = groups["hidden"], groups["visible"]
        print(f"| {name} | {auc_h:.4f} | {l2_h:.4f} | {auc_v:.4f} | {l2_v:.4f} |")


if __name__ == "__main__":
    main()
