"""GPU speed in one run: training, prediction and evaluation of the full-size model beside
the physical reference, two ResNet-50s built from the project's own ResNet class.

    python scripts/bench_gpu.py [--steps 60] [--workers 12] [--test_images 4782]
        [--out outputs/bench_gpu]

On a machine with a CUDA GPU it measures, in this order:

1. training samples/s of the full-size model (configs/diffusion.yaml + gaze.yaml, 224 px,
   batch 32) through the engine (``main.py``, the synthetic world at 640x480, ``--workers``
   loader workers), in bf16 and in fp32, with each run's data-wait share and peak memory
   (from its ``train_stats.json``); beside two ResNet-50 forward + backward passes at 224 px
   with AdamW (batch 32), in bf16 autocast and in fp32;
2. the predictor's ms per person at 1, 4 and 10 DDIM steps (batch 32, fp32), eager and with
   ``sampling.compile=reduce-overhead`` (CUDA graphs; a failed capture is reported in its
   row), and its input preparation alone, beside two ResNet-50 forward passes; and the
   initial noise of a batch with each ``sampling.noise``;
3. the evaluation's wall time (``main.py --eval_weights``, ``--workers`` loader workers) on
   a test split of ``--test_images`` images (GazeFollow's test set has 4,782) at 1 and 10 steps.

It prints a markdown table and writes it to ``<out>/bench_gpu.md``. On a machine without a GPU
it stops at once with one line.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
BATCH = 32
WORLD = ["synthetic.width=640", "synthetic.height=480"]


def run_main(args: list[str], out: Path) -> tuple[float, str]:
    """``main.py`` with the full-size model on the synthetic world -> (seconds, stdout)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--config",
                           str(ROOT / "configs" / "data" / "synthetic.yaml"),
                           f"run.output_dir={out}", "logging.wandb=disabled", *WORLD, *args],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode != 0:
        sys.exit(f"main.py {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stdout


def training_rows(steps: int, workers: int, out: Path) -> list[tuple[str, str]]:
    rows = []
    for amp in ("bf16", "no"):
        tag = f"train_{amp}"
        run_main(["--tag", tag, f"data.dataset_dir={out / 'world'}", f"optim.amp={amp}",
                  f"data.batch_size={BATCH}", f"data.num_workers={workers}",
                  "synthetic.num_train=2000", f"run.halt_at_step={steps}",
                  f"run.save_every={steps}", "run.resume=false"], out)
        stats = json.loads(next(out.glob(f"*/{tag}/train_stats.json")).read_text())
        rows.append((f"training, full size, {'bf16' if amp == 'bf16' else 'fp32'}: samples/s "
                     "(data wait, peak MiB)",
                     f"{stats['samples_per_second']:.1f} ({100 * stats['data_wait_share']:.1f}%,"
                     f" {max(stats['peak_memory_mib_per_process'])})"))
    return rows


def reference_training(bf16: bool, steps: int = 20) -> float:
    """Samples/s of two ResNet-50s (scene with a 4th channel, face) forward + backward."""
    from gazefollow.backbones.resnet import ResNet
    torch.manual_seed(0)
    scene = ResNet([3, 4, 6, 3], block="bottleneck", in_channels=4).cuda()
    face = ResNet([3, 4, 6, 3], block="bottleneck").cuda()
    optimizer = torch.optim.AdamW([*scene.parameters(), *face.parameters()], fused=True)
    x4, x3 = torch.randn(BATCH, 4, 224, 224).cuda(), torch.randn(BATCH, 3, 224, 224).cuda()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = scene(x4).float().mean() + face(x3).float().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return BATCH * steps / (time.perf_counter() - start)


def prediction_rows() -> list[tuple[str, str]]:
    import numpy as np
    from bench_predict import best_ms, people, reference_row

    from gazefollow.diffusion.sampling import NOISES
    from gazefollow.following.models.gaze_model import build_model
    from gazefollow.following.predict import GazePredictor
    from gazefollow.tasks import build_config
    image, boxes = people(BATCH, np.random.default_rng(0))
    name, reference = reference_row(BATCH, 5, "cuda")
    rows = [(f"{name}, ms per person", f"{reference:.2f}")]
    for mode in ("none", "reduce-overhead"):
        config = build_config([ROOT / "configs" / "diffusion.yaml",
                               ROOT / "configs" / "gaze.yaml"],
                              [f"eval.batch_size={BATCH}", "run.device=cuda",
                               f"sampling.compile={mode}"])
        torch.manual_seed(0)
        predictor = GazePredictor(build_model(config).cuda(), config, "cuda", "raw")
        label = "" if mode == "none" else f", sampling.compile={mode}"
        for steps in (1, 4, 10):
            try:  # the compiled rows report a failure of capture instead of ending the run
                ms = best_ms(lambda: predictor.predict([image], [boxes], steps=steps),
                             5) / BATCH
            except Exception as err:  # noqa: BLE001
                if mode == "none":
                    raise
                rows.append((f"predictor{label}", f"failed: {type(err).__name__}: {err}"[:200]))
                break
            rows.append((f"predictor, full size{label}, {steps} step(s), ms per person "
                         "(x reference)", f"{ms:.2f} ({ms / reference:.1f}x)"))
        ms = best_ms(lambda: predictor._inputs([image], [boxes]), 5) / BATCH
        rows.append((f"predictor{label}: preparing the inputs only, ms per person",
                     f"{ms:.2f}"))
    size = config.data.output_size
    for name, noise in NOISES.items():
        ms = best_ms(lambda: noise(list(range(BATCH)), (1, size, size), 0, 0, "cuda"), 20)
        rows.append((f"x_T of {BATCH} people, sampling.noise={name}, ms", f"{ms:.3f}"))
    return rows


def evaluation_rows(test_images: int, workers: int, out: Path) -> list[tuple[str, str]]:
    rows, world = [], f"data.dataset_dir={out / 'test_world'}"
    run_main(["--tag", "eval_source", world, f"synthetic.num_test={test_images}",
              "synthetic.num_train=64", "run.halt_at_step=1", "run.resume=false"], out)
    run_dir = next(out.glob("*/eval_source"))
    for steps in (1, 10):
        seconds, _ = run_main(["--eval_weights", str(run_dir), world,
                               f"synthetic.num_test={test_images}", f"sampling.steps={steps}",
                               f"eval.batch_size={BATCH}", f"data.num_workers={workers}"], out)
        rows.append((f"evaluation of {test_images} test images, {steps} step(s): wall s "
                     "(start-up included)", f"{seconds:.1f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--test_images", type=int, default=4782)
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench_gpu"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_gpu.py measures a CUDA GPU and this machine has none "
                 "(scripts/bench_predict.py, bench_training.py and bench_loading.py measure "
                 "the CPU)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = training_rows(args.steps, args.workers, out)
    for bf16 in (True, False):
        rows.append((f"reference: two ResNet-50 forward + backward, AdamW, "
                     f"{'bf16' if bf16 else 'fp32'}: samples/s", f"{reference_training(bf16):.1f}"))
    rows += prediction_rows() + evaluation_rows(args.test_images, args.workers, out)
    table = "\n".join([
        f"machine: {torch.cuda.get_device_name()}, {os.cpu_count()} CPU cores, "
        f"{platform.machine()}, torch {torch.__version__}; batch {BATCH}", "",
        "| what | measured |", "|---|---|", *[f"| {name} | {value} |" for name, value in rows]])
    print(table)
    (out / "bench_gpu.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
