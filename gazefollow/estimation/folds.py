"""``--all_folds``: every fold of a cross-validated gaze-estimation protocol, each its own
run (<dataset>-<model>-fold<k>), then the per-fold table and the mean."""
from __future__ import annotations

import json
from pathlib import Path

from gazefollow.config import ConfigError
from gazefollow.estimation.data.build import fold_count


def run_all_folds(layers: list[Path], overrides: list, train_and_evaluate,
                  build_config) -> dict:
    """Train and test every fold; the summary goes to <output_dir>/<dataset>-<model>-all_folds/
    <tag>/folds.json. ``train_and_evaluate(config)`` runs one fold."""
    config = build_config(layers, overrides)
    folds = fold_count(config)
    if folds < 2:
        raise ConfigError("--all_folds runs the folds of a cross-validated gaze-estimation "
                          f"protocol; data.source_dataset={config.data.source_dataset} has "
                          f"none (estimation.split_protocol={config.estimation.split_protocol})")
    rows = []
    for fold in range(folds):
        results = train_and_evaluate(build_config(layers, [*overrides, ("eval.fold", fold)]))
        if not results:  # halted early: its evaluation waits for the run's end
            print(f"fold {fold}: halted before its end; run the same command again to resume")
            continue
        rows.append({"fold": fold, "test": results["info"]["subjects"],
                     "model": results["model"]["angular_error"],
                     "mean_gaze": results["mean_gaze"]["angular_error"]})
    summary = {"folds": rows, "mean": {key: sum(r[key] for r in rows) / len(rows)
                                       for key in ("model", "mean_gaze")} if rows else {}}
    print_folds(summary)
    out = (Path(config.run.output_dir) /
           f"{config.data.source_dataset}-{config.estimation.estimator}-all_folds" / config.run.tag)
    out.mkdir(parents=True, exist_ok=True)
    (out / "folds.json").write_text(json.dumps(summary, indent=2))
    print(f"-> {out / 'folds.json'}")
    return summary


def print_folds(summary: dict) -> None:
    print(f"\n{'fold':<6}{'test subjects':<24}{'model (deg)':>12}{'mean gaze (deg)':>17}")
    for row in summary["folds"]:
        print(f"{row['fold']:<6}{', '.join(row['test']):<24}{row['model']:>12.2f}"
              f"{row['mean_gaze']:>17.2f}")
    if summary["mean"]:
        print(f"{'mean':<30}{summary['mean']['model']:>12.2f}"
              f"{summary['mean']['mean_gaze']:>17.2f}")
