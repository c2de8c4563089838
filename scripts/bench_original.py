"""The original research code's model as a configuration beside ours: parameters and training
speed on this machine.

    python scripts/bench_original.py [--batch 8] [--steps 5] [--out outputs/bench_original]

Three configurations: the original model (configs/experiments/original.yaml), gazefollow's
full-size research settings (configs/diffusion.yaml + configs/gaze.yaml: the resnet_pair
encoder at 224 px) and the default CPU experiment (synthetic_cpu.yaml, 64 px). Each trains
``--steps`` optimizer steps (after one untimed warm-up step) on the same preloaded batch of
the synthetic world, with its own optimiser, loss and precision settings, in one process.
Prints a markdown table: parameters per part, seconds per step, samples per second.
"""
import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gazefollow.engine.optimizer import make_optimizer
from gazefollow.engine.samples import collate_samples
from gazefollow.following.data.build import build_datasets  # noqa: E402
from gazefollow.following.models.gaze_model import build_model  # noqa: E402
from gazefollow.following.objective import training_losses  # noqa: E402
from gazefollow.tasks import build_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "original (configs/experiments/original.yaml)": ["original.yaml"],
    "gazefollow full size (diffusion.yaml + gaze.yaml)": [],
    "gazefollow default experiment (synthetic_cpu.yaml)": ["synthetic_cpu.yaml"],
}


def config_for(experiments: list[str], world: Path, batch: int):
    layers = [ROOT / "configs" / "diffusion.yaml", ROOT / "configs" / "gaze.yaml",
              *[ROOT / "configs" / "experiments" / name for name in experiments]]
    return build_config(layers, [f"data.dataset_dir={world}", f"data.batch_size={batch}",
                                 "data.num_workers=0", "run.device=cpu", "optim.amp=no",
                                 "synthetic.num_train=32", "synthetic.num_test=4"])


def seconds_per_step(config, steps: int) -> float:
    torch.manual_seed(0)
    dataset = build_datasets(config, splits=("train",), log=lambda *_: None)["train"]
    batch = collate_samples([dataset[i] for i in range(config.data.batch_size)])
    batch.pop("bad_input")
    model = build_model(config).train()
    optimizer = make_optimizer(model, config.optim)
    timings = []
    for step in range(steps + 1):  # the first step warms up allocations
        start = time.perf_counter()
        loss = training_losses(model, batch, config.loss)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:
            timings.append(time.perf_counter() - start)
    return sum(timings) / len(timings), model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench_original"))
    args = parser.parse_args()
    rows = []
    for name, experiments in CONFIGS.items():
        config = config_for(experiments, Path(args.out) / "world", args.batch)
        seconds, model = seconds_per_step(config, args.steps)
        parts = {part: sum(p.numel() for p in params)
                 for part, params in model.trainable_parts().items()}
        rows.append((name, config, sum(p.numel() for p in model.parameters()), parts, seconds))
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, CPU; batch "
          f"{args.batch}, mean of {args.steps} steps after one warm-up step\n")
    print("| configuration | input px | parameters | encoder | UNet (head) | in/out head | "
          "s / step | samples / s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, config, total, parts, seconds in rows:
        encoder = total - parts["head"] - parts["inout_head"]
        print(f"| {name} | {config.data.input_size} | {total / 1e6:.2f} M | {encoder / 1e6:.2f} M"
              f" | {parts['head'] / 1e6:.2f} M | {parts['inout_head'] / 1e6:.2f} M | "
              f"{seconds:.3f} | {args.batch / seconds:.1f} |")


if __name__ == "__main__":
    main()
