"""Export trained weights in the Hugging Face convention, for every task.

    python scripts/export.py RUN_DIR OUT_DIR [--raw] [--overwrite]

RUN_DIR is a run directory, a checkpoint directory or a state.pt of gaze following, gaze
estimation or Looking-At-Me (or a published gaze-following model's file). OUT_DIR receives
model.safetensors (the EMA weights; --raw for the raw ones), config.json (the resolved
config, its run.task naming the task) and README.md (what it was trained on, and the run's
test metrics when it has metrics.json). Load it with the task's predictor:
GazePredictor, GazeEstimator or LookingPredictor .from_pretrained(OUT_DIR).
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gazefollow.cli import run_command  # noqa: E402
from gazefollow.engine.checkpoint import resolve_checkpoint, run_dir_of  # noqa: E402
from gazefollow.predictors import predictor_class  # noqa: E402


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights")
    parser.add_argument("out")
    parser.add_argument("--raw", action="store_true", help="the raw weights, not the EMA ones")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export")
    args = parser.parse_args(argv)
    predictor = predictor_class(args.weights).from_pretrained(args.weights, device="cpu",
                                                              ema=not args.raw)
    metrics_file = run_dir_of(resolve_checkpoint(args.weights)) / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    out = predictor.save_pretrained(args.out, overwrite=args.overwrite, metrics=metrics)
    print(f"exported {args.weights} ({predictor.weights} weights) -> {out}")


if __name__ == "__main__":
    run_command(main)  # a bad run, checkpoint or folder: one line (--debug: the traceback)
