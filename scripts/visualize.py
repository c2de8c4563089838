"""Pictures of saved weights' predictions: a grid, denoising trajectories, one figure per sample.

    python scripts/visualize.py --weights RUN_DIR_OR_CHECKPOINT [--ids 3 17 42 | --num 8]
        [--steps 10] [--out DIR] [section.key=value ...]

Each figure shows the image, the head box (green), the ground-truth points (white), the
predicted heatmap (overlay), the predicted point (red cross, with the gaze line) and the
in-frame probability; the trajectory rows show the predicted heatmap x_0 after each DDIM step.
Samples are chosen by sample id (``--ids``, the ``id`` column of predictions.csv) or the first
``--num`` of the split (``eval.split``, default test). Pictures go to <run dir>/pictures/.
"""
import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gazefollow.following.data.build import build_datasets  # noqa: E402
from gazefollow.following.evaluate import protocol_of, run_split  # noqa: E402
from gazefollow.following.visualize import save_prediction_grid, save_trajectories  # noqa: E402
from gazefollow.tasks import load_for_eval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="run directory or checkpoint file")
    parser.add_argument("--ids", type=int, nargs="+", help="sample ids to draw")
    parser.add_argument("--num", type=int, default=8, help="first N samples (without --ids)")
    parser.add_argument("--steps", type=int, default=10, help="sampler steps of the trajectory")
    parser.add_argument("--out", help="folder for the PNGs (default <run dir>/pictures)")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. eval.split=val")
    args = parser.parse_args()
    loaded = load_for_eval(args.weights, args.overrides)
    config = loaded["config"]
    dataset = build_datasets(config, splits=(config.eval.split,))[config.eval.split]
    chosen = copy.copy(dataset)
    if args.ids:
        by_id = {i.index: i for i in dataset.instances}
        missing = [i for i in args.ids if i not in by_id]
        if missing:
            sys.exit(f"sample ids {missing} are not in the {config.eval.split} split")
        chosen.instances = [by_id[i] for i in args.ids]
    else:
        chosen.instances = dataset.instances[:args.num]
    result = run_split(loaded["model"], chosen, [args.steps], config.sampling,
                       batch_size=config.eval.batch_size, seed=config.run.seed,
                       device=loaded["device"], prior_inout=0.5, num_keep=len(chosen),
                       protocol=protocol_of(config), desc="pictures")
    out = Path(args.out) if args.out else loaded["run_dir"] / f"pictures{loaded['suffix']}"
    out.mkdir(parents=True, exist_ok=True)
    root = Path(config.data.dataset_dir)
    save_prediction_grid(result.samples, root, out / "grid.png")
    save_trajectories(result.samples, root, out / "trajectories.png", args.steps)
    for sample in result.samples:
        save_trajectories([sample], root, out / f"sample_{sample['index']}.png", args.steps)
    print(f"{len(result.samples)} samples ({loaded['weights']} weights, "
          f"{loaded['model'].head.describe(config.sampling)} {args.steps} steps) -> {out}")


if __name__ == "__main__":
    main()
