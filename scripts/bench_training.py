"""Training speed of the default configuration with 1 and 2 processes on this machine.

    python scripts/bench_training.py [--steps 60] [--out outputs/bench_training]

Each setting trains the default experiment (`python main.py`'s configuration) for ``--steps``
optimizer steps from scratch and halts there (run.halt_at_step: the same steps as the real
run's first ones, no evaluation). One process runs as `python main.py`; two run under
`accelerate launch --multi_gpu --num_processes 2` on the CPU (DDP over gloo). The numbers come
from each run's train_stats.json: samples/second over the whole loop, the share of loop time
spent waiting for the next batch, and each process's peak memory (resident set on a CPU,
CUDA allocations on a GPU). Prints a markdown table.
"""
import argparse
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(processes: int, steps: int, out: Path) -> dict:
    """Train ``steps`` steps with ``processes`` processes; -> that run's train_stats.json."""
    tag = f"bench_{processes}proc"
    argv = [str(ROOT / "main.py"), "--tag", tag, f"run.output_dir={out}",
            f"run.halt_at_step={steps}", f"run.save_every={steps}", "run.resume=false",
            "logging.wandb=disabled"]
    launcher = [] if processes == 1 else [
        "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port())]
    done = subprocess.run([sys.executable, *launcher, *argv], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode != 0:
        sys.exit(f"{processes}-process run failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    setup = next(line for line in done.stdout.splitlines() if "process(es) on" in line)
    stats = json.loads((out / "synthetic-diffusion-x0" / tag / "train_stats.json").read_text())
    return {**stats, "setup": setup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench_training"))
    args = parser.parse_args()
    out = Path(args.out)
    rows = [launch(processes, args.steps, out) for processes in (1, 2)]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}; "
          f"default experiment, {args.steps} steps from scratch\n")
    print("| processes | threads / process | global batch | s / step | samples / s | "
          "speed-up | data wait | peak memory / process (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    base = rows[0]["samples_per_second"]
    for row in rows:
        print(f"| {row['processes']} | {row['threads_per_process']} | {row['global_batch']} | "
              f"{row['seconds_per_step']:.3f} | {row['samples_per_second']:.1f} | "
              f"{row['samples_per_second'] / base:.2f}x | {100 * row['data_wait_share']:.1f}% | "
              f"{', '.join(str(p) for p in row['peak_memory_mib_per_process'])} |")
    for row in rows:
        print(f"\n{row['setup']}")


if __name__ == "__main__":
    main()
