"""What an evaluation leaves behind, whatever the task: metrics.json (strict JSON), the
per-sample predictions file, and the wandb log."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path


def strict_json(value):
    """``value`` with every NaN / infinity replaced by None, so it dumps as strict JSON."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metrics(results: dict, path: str | Path) -> None:
    """metrics.json, strict JSON: a metric that is undefined (AP with one class) is null, and
    ``info.unavailable`` says why."""
    Path(path).write_text(json.dumps(strict_json(results), indent=2, allow_nan=False))


def write_predictions(records: list[dict], path: str | Path) -> None:
    """predictions.csv: one row per evaluated instance (sample id, image, predicted point,
    in/out score and label, and the protocol's per-sample metrics; empty when undefined)."""
    if not records:
        return
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        for record in records:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v
                             for k, v in record.items()})


def log_to_wandb(config, run_dir: Path, results: dict, pictures: list[Path],
                 run_id: str | None) -> None:
    """The metrics and pictures, into the run's wandb run (offline unless configured online).
    Does nothing when logging is disabled."""
    if config.logging.wandb == "disabled":
        return
    import wandb

    run = wandb.init(project="gazefollow", dir=str(run_dir), mode=config.logging.wandb,
                     id=run_id, resume="allow" if run_id else None, name=config.run.tag)
    split = results["info"]["split"]
    run.log({**{f"{split}/{k}": v for k, v in results["model"].items()},
             **{f"{split}/{p.stem}": wandb.Image(str(p)) for p in pictures if p.is_file()}})
    run.finish()
