"""What one training step asks of the machine, counted with the torch profiler on the CPU.

    python scripts/count_step_work.py [--steps 8] [--out outputs/count_step_work]

Trains the tiny test configuration (configs/experiments/tiny_test.yaml) through the engine
for ``--steps`` optimizer steps, printing every 4th, and profiles each step (forward,
backward, NaN guard, optimizer, EMA). For the steps that print nothing it reports the median
of: operator calls (every aten operator the profiler records, nested ones included), values
read back to the host (``aten::_local_scalar_dense``: on a GPU each one waits for the work
queued before it; less the step counter a CPU Adam reads per parameter, which a GPU's fused
Adam does not) and casts or copies of the diffusion schedule's tables (a [T] tensor; on a
GPU each is a copy from host memory, which waits the same way). Prints a markdown table.
"""
import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gazefollow.engine.loop as loop  # noqa: E402
from main import main as run_main  # noqa: E402


def counts(events, table_length: int, step_counters: int) -> dict:
    names = [(e.name, e.input_shapes) for e in events if e.name.startswith("aten::")]
    reads = sum(name == "aten::_local_scalar_dense" for name, _ in names)
    return {
        "operator calls": len(names),
        "values read back to the host, besides torch.optim's step counters": reads
        - step_counters,
        "schedule tables cast or copied": sum(
            name in ("aten::_to_copy", "aten::copy_") and bool(shapes)
            and list(shapes[0]) == [table_length] for name, shapes in names),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "outputs" / "count_step_work"))
    args = parser.parse_args()
    out, per_step = Path(args.out), []
    real_call = loop.OptimizerStep.__call__

    def profiled(self, batch):
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            result = real_call(self, batch)
        step = self.state.step
        if step % 4:  # a step that prints nothing
            # a CPU Adam reads each parameter's step counter (a GPU's fused Adam does not)
            counters = sum(len(g["params"]) for g in self.parts.optimizer.param_groups)
            per_step.append(counts(prof.events(), self.config.diffusion.train_time_steps,
                                   counters))
        return result
    loop.OptimizerStep.__call__ = profiled
    torch.manual_seed(0)
    run_main(["--experiment", str(ROOT / "configs" / "experiments" / "tiny_test.yaml"),
              f"data.dataset_dir={out / 'world'}", f"run.output_dir={out / 'runs'}",
              f"run.halt_at_step={args.steps}", "run.print_every=4",
              f"run.save_every={args.steps}", "eval.evaluate_every=0", "run.resume=false",
              "logging.wandb=disabled", "--tag", "count"])
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads; median of "
          f"{len(per_step)} steps that print nothing (configs/experiments/tiny_test.yaml)\n")
    print("| per training step | count |\n|---|---|")
    for key in per_step[0]:
        print(f"| {key} | {statistics.median(s[key] for s in per_step):g} |")


if __name__ == "__main__":
    main()
