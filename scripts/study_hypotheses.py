"""Do diffusion samples give better gaze hypotheses than a regression head's peaks?

    python scripts/study_hypotheses.py [--out outputs/study_hypotheses] [--ks 1 4 8 16]

Four runs of the default CPU model and recipe (configs/experiments/synthetic_cpu.yaml, 672
steps): the diffusion head and the regression head, on the ambiguous world
(configs/experiments/ambiguous.yaml: half the people with two candidate targets, 10
annotators split 6 / 4) and on the plain world. A finished run is reused. Each diffusion run
is sampled with K = 1, 4, 8, 16 draws per head (DDIM at 1 and 4 steps, ancestral DDPM at 10);
the regression head's K hypotheses are its K highest peaks at least the radius apart. For each
setting: oracle L2, coverage and energy of the K hypotheses (``hypotheses.py``), over every
test head and over the ambiguous ones; the AUC / Avg L2 / Min L2 of the single point (the
argmax of the mean heatmap); and on the ambiguous heads, whether the samples split as the
annotators do: the mean absolute difference between the share of the K points near each
candidate and the share of annotators on it. Prints markdown tables.
"""
import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gazefollow.following.data.build import build_datasets  # noqa: E402
from gazefollow.following.evaluate import run_split  # noqa: E402
from gazefollow.following.hypotheses import cluster_points, hypothesis_scores  # noqa: E402
from gazefollow.tasks import build_config, load_for_eval, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASE = [ROOT / "configs" / "diffusion.yaml", ROOT / "configs" / "gaze.yaml"]
WORLDS = {"ambiguous": ROOT / "configs" / "experiments" / "ambiguous.yaml",
          "plain": ROOT / "configs" / "experiments" / "synthetic_cpu.yaml"}
HEADS = {"diffusion": [], "regression": ["model.head=regression"]}
SAMPLERS = [("ddim", 1), ("ddim", 4), ("ddpm", 10)]
QUIET = dict(log=lambda *_: None)


def split_error(sets: list[dict], radius: float, k: int) -> float:
    """On heads whose annotators form two groups: the mean over the two candidates of
    |share of the K points within ``radius`` of the candidate - share of annotators on it|."""
    errors = []
    for item in sets:
        groups = cluster_points(item["annotators"], radius / 2)
        if len(groups) != 2:
            continue
        points = item["hypotheses"][:k]
        points = points[(points >= 0).all(axis=1)]
        for centre, share in groups:
            near = np.linalg.norm(points - np.asarray(centre), axis=1) <= radius
            errors.append(abs(near.mean() - share))
    return float(np.mean(errors)) if errors else float("nan")


def trained_run(world: str, head: str, out: Path) -> Path:
    config = build_config([*BASE, WORLDS[world]], [
        f"run.output_dir={out}", f"run.tag={world}_{head}", "logging.wandb=disabled",
        "eval.extra_steps=[]", "eval.num_samples=1", *HEADS[head]])
    return train(config, **QUIET).run_dir


def settings(head: str, ks: list[int]):
    """(sampler, steps, K) of one head's rows."""
    if head == "regression":
        return [("one pass", 1, k) for k in ks]
    return [(sampler, steps, k) for sampler, steps in SAMPLERS for k in ks]


def set_scores(sets: list[dict], k: int, radius: float) -> dict:
    """Mean scores of each head's first k hypotheses (the first k draws are what K = k
    samples give: draws are seeded by their number)."""
    if not sets:
        return {}
    scores = hypothesis_scores(np.stack([s["hypotheses"][:k] for s in sets]),
                               _padded([s["annotators"] for s in sets]), radius)
    return {key: float(np.nanmean(value)) for key, value in scores.items()}


def _padded(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.full((len(arrays), max(len(a) for a in arrays), 2), -1.0)
    for i, array in enumerate(arrays):
        out[i, :len(array)] = array
    return out


def study_run(world: str, head: str, run_dir: Path, ks: list[int]) -> list[tuple]:
    loaded = load_for_eval(run_dir)
    config, model = loaded["config"], loaded["model"]
    test = build_datasets(config, splits=("test",), **QUIET)["test"]
    radius, rows = config.eval.hypothesis_radius, []
    for sampler, steps, k in settings(head, ks):
        sampling = replace(config.sampling, **({} if sampler == "one pass" else
                                               {"sampler": sampler, "steps": steps}))
        result = run_split(model, test, [steps], sampling, batch_size=config.eval.batch_size,
                           seed=config.run.seed, device=loaded["device"], prior_inout=0.5,
                           num_samples=max(k, 2), radius=radius)
        sets = result.hypothesis_sets
        ambiguous = [s for s in sets if s["ambiguous"]]
        single = result.mean_of_samples if k > 1 and result.mean_of_samples else \
            result.model[steps]
        rows.append((world, head, sampler, steps, k, set_scores(sets, k, radius),
                     set_scores(ambiguous, k, radius), single,
                     split_error(ambiguous, radius, k) if k > 1 else float("nan")))
        print(f"{world:<9} {head:<10} {sampler:<8} {steps:>2} steps K={k:<2} coverage "
              f"{rows[-1][5]['coverage']:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/study_hypotheses")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 8, 16])
    args = parser.parse_args()
    rows = []
    for world in WORLDS:
        for head in HEADS:
            rows += study_run(world, head, trained_run(world, head, Path(args.out)), args.ks)
    print(f"\nmachine: {torch.get_num_threads()} torch threads, {sys.platform}; test split "
          "(300 heads), EMA weights; hypotheses within 0.1\n")
    print("| world | head | sampler | steps | K | oracle L2 | coverage | energy | "
          "ambiguous: oracle L2 | coverage | energy | share error | AUC | Avg L2 | Min L2 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for world, head, sampler, steps, k, every, amb, single, error in rows:
        cells = [f"{every[key]:.4f}" for key in ("oracle_l2", "coverage", "energy")]
        cells += [f"{amb[key]:.4f}" if amb else "-" for key in ("oracle_l2", "coverage",
                                                                "energy")]
        cells += ["-" if np.isnan(error) else f"{error:.3f}"]
        cells += [f"{single[key]:.4f}" for key in ("auc", "avg_l2", "min_l2")]
        print(f"| {world} | {head} | {sampler} | {steps} | {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
