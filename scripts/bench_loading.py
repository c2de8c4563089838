"""Data-loading speed: samples/second per loader at 224 px, against the training step.

    python scripts/bench_loading.py [--images 320] [--steps 2] [--wait_steps 40]
        [--workers 0 1 2 ...] [--scene_resize pil torch] [--out outputs/bench_loading]

For each reader (GazeFollow, VideoAttentionTarget, GOO) it writes the synthetic world at
640x480 (about the size of real GazeFollow images) in that dataset's real layout, then measures,
for each ``--scene_resize`` (default: PIL's, and torch's on the bytes), training samples
(augmentations on, 224 px scene and face, 64 px heatmap) per second: in the main process
(num_workers=0, also as ms per sample; the best of 3 epochs) and through a DataLoader with 1,
2 and, where the machine has the cores, 4 to 16 workers (each limited to one thread, as
training's loaders are). It also times full-size training steps (configs/gaze.yaml, batch 32)
on preloaded batches, so the table shows how many samples per second the model consumes, and
trains the default experiment through the engine for ``--wait_steps`` steps for the share of
its loop spent waiting for data. Prints a markdown table.

For a quick comparison of two versions of the code (the script copied into each checkout):
``--workers 0 --steps 0 --wait_steps 0`` times the main process only.
"""
import argparse
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from bench_training import launch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from gazefollow.engine.order import EpochShuffle  # noqa: E402
from gazefollow.engine.samples import collate_samples  # noqa: E402
from gazefollow.engine.stopping import prepare_worker  # noqa: E402
from gazefollow.following.data.build import build_datasets  # noqa: E402
from gazefollow.following.data.synthetic import generate_world  # noqa: E402
from gazefollow.following.data.synthetic_layouts import write_goo_world  # noqa: E402
from gazefollow.following.data.synthetic_layouts import write_vat_world
from gazefollow.following.models.gaze_model import build_model  # noqa: E402
from gazefollow.following.objective import training_losses  # noqa: E402
from gazefollow.tasks import build_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# 1 and 2 workers, and more when the machine has the cores for them
WORKERS = [0, 1, 2] + [w for w in (4, 8, 12, 16) if w <= (os.cpu_count() or 1)]
WRITERS = {
    "gazefollow": lambda cfg, root: generate_world(cfg, root, log=lambda *_: None),
    "videoattentiontarget": lambda cfg, root: write_vat_world(cfg, root, frames_per_clip=8),
    "goo": write_goo_world,
}


def full_size_config(*overrides: str):
    return build_config([ROOT / "configs" / "diffusion.yaml", ROOT / "configs" / "gaze.yaml"],
                        ["data.augment=true", "logging.wandb=disabled", *overrides])


def loader_rate(dataset, workers: int, batch_size: int) -> float:
    """Samples per second over one epoch, timed from the iterator's creation, so worker
    start-up and the batches prefetched while the first one is made are all counted."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                        sampler=EpochShuffle(len(dataset), 0), collate_fn=collate_samples,
                        drop_last=True, worker_init_fn=prepare_worker if workers else None)
    start = time.perf_counter()
    count = sum(len(batch["index"]) for batch in loader)
    return count / (time.perf_counter() - start)


def train_step_seconds(config, steps: int) -> float:
    """Seconds per full-size optimizer step on a preloaded batch (no data loading)."""
    dataset = build_datasets(config, splits=("train",), log=lambda *_: None)["train"]
    batch = collate_samples([dataset[(i, 0)] for i in range(config.data.batch_size)])
    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for _ in range(steps + 1):  # the first step pays one-off allocation costs
        start = time.perf_counter()
        training_losses(model, batch, config.loss)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return sum(times[1:]) / steps


def default_experiment_row(out: Path, images: int, steps: int) -> tuple[float, float]:
    """(loader samples/s in the main process, model samples/s) for the default CPU experiment
    (configs/experiments/synthetic_cpu.yaml: 64 px inputs, num_workers 0), same world size."""
    config = build_config(
        [ROOT / "configs" / "diffusion.yaml", ROOT / "configs" / "gaze.yaml",
         ROOT / "configs" / "experiments" / "synthetic_cpu.yaml"],
        [f"data.dataset_dir={out / 'default_experiment'}", f"synthetic.num_train={images}",
         "synthetic.num_test=16", "logging.wandb=disabled"])
    dataset = build_datasets(config, splits=("train",), log=lambda *_: None)["train"]
    rate = loader_rate(dataset, 0, config.data.batch_size)
    return rate, config.data.batch_size / train_step_seconds(config, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=320, help="train images per dataset")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps")
    parser.add_argument("--wait_steps", type=int, default=40,
                        help="steps of the default experiment timed for the data-wait share")
    parser.add_argument("--scene_resize", nargs="+", default=["pil", "torch"],
                        help="data.scene_resize values timed for every reader")
    parser.add_argument("--workers", type=int, nargs="+", default=WORKERS,
                        help="loader workers timed (0: the main process, always timed)")
    parser.add_argument("--out", default="outputs/bench_loading")
    args = parser.parse_args()
    workers = sorted({0, *args.workers})
    out, batch_size, rows = Path(args.out), 32, []
    world = ["synthetic.width=640", "synthetic.height=480", f"synthetic.num_train={args.images}",
             "synthetic.num_test=16"]
    for (name, write), resize in itertools.product(WRITERS.items(), args.scene_resize):
        root = out / name
        config = full_size_config(f"data.source_dataset={name}", f"data.dataset_dir={root}",
                                  f"data.scene_resize={resize}", *world)
        if not root.exists():
            write(config.synthetic, root)
        dataset = build_datasets(config, splits=("train",), log=lambda *_: None)["train"]
        if len(dataset) < 8 * batch_size:
            sys.exit(f"--images {args.images} gives {len(dataset)} train samples: use at least "
                     f"{8 * batch_size} so prefetching does not dominate the timing")
        # the main process's rate, the one ms per sample comes from: the best of 3 epochs
        rates = {w: max(loader_rate(dataset, w, batch_size) for _ in range(3 if w == 0 else 1))
                 for w in workers}
        label = name if resize == "pil" else f"{name}, data.scene_resize={resize}"
        rows.append((label, rates))
        print(f"{label}: {rates}", flush=True)
    print(f"\nmachine: {torch.get_num_threads()} torch threads, {sys.platform}; images 640x480 "
          "JPEG; augmentations on; scene and face at 224 px, heatmap 64 px\n")
    print_loader_table(rows, workers)
    if args.steps:
        step = train_step_seconds(full_size_config(
            "data.source_dataset=gazefollow", f"data.dataset_dir={out / 'gazefollow'}", *world),
            args.steps)
        default_loader, default_needed = default_experiment_row(out, args.images, args.steps)
        print(f"\nfull-size training step (configs/gaze.yaml, batch {batch_size}, preloaded "
              f"batch): {step:.2f} s/step = {batch_size / step:.2f} samples/s consumed by the "
              f"model; loader with 2 workers / model: "
              + ", ".join(f"{name} {rates.get(2, 0) * step / batch_size:.0f}x"
                          for name, rates in rows))
        print(f"default CPU experiment (64 px, 256x192 images, num_workers 0): loader "
              f"{default_loader:.1f} samples/s in the main process, model "
              f"{default_needed:.1f} samples/s (loader / model "
              f"{default_loader / default_needed:.1f}x)")
    if args.wait_steps:
        engine = launch(1, args.wait_steps, out / "engine")
        print(f"default CPU experiment through the engine ({args.wait_steps} steps, 1 process, "
              f"its train_stats.json): {engine['samples_per_second']:.1f} samples/s, "
              f"{100 * engine['data_wait_share']:.1f}% of the loop waiting for data")


def print_loader_table(rows: list, workers: list[int]) -> None:
    more = [w for w in workers if w > 0]
    print("| loader | ms per sample, main process | samples/s, main process | "
          + "".join(f"samples/s, {w} worker{'s' if w > 1 else ''} | " for w in more)
          + "per worker (2 workers) |")
    print("|---|---|---|" + "---|" * len(more) + "---|")
    for name, rates in rows:
        per_worker = f"{rates[2] / 2:.1f}" if 2 in rates else "-"
        print(f"| {name} | {1000 / rates[0]:.2f} | {rates[0]:.1f} | "
              + "".join(f"{rates[w]:.1f} | " for w in more) + f"{per_worker} |")


if __name__ == "__main__":
    main()
