"""Looking-At-Me evaluation: predict every window, score mAP and accuracy beside the
all-positive baseline, and write Ego4D's files.

In the run's evaluation folder:

- ``gt.csv`` and ``pred.csv``, no header, as Ego4D's ``PostProcessor`` writes them: rows
  ``video_id, frame_id, x1, y1, x2, y2, track_id, label`` and ``video_id, frame_id, x1, y1,
  x2, y2, track_id, 1, score`` (score: the softmax probability of looking), which its
  ``run_evaluation`` reads;
- ``submission.json`` where the dataset has the challenge's crops (``videos_challenge/``):
  ``{"version": "1.0", "challenge": "ego4d_looking_at_me", "results": [{"video_id",
  "unique_id", "track_id", "label": 1, "score"}]}``;
- ``metrics.json``: ``{"model": {"map", "accuracy", "ap_looking", "ap_not_looking"},
  "all_positive": {"map", "accuracy"}, "info"}``.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from gazefollow.data.dataset import BAD_KEY, collate_samples
from gazefollow.evaluate import gather_shards, shard_positions
from gazefollow.reporting import log_to_wandb, write_metrics
from gazefollow.social.metrics import (all_positive_baseline, lam_accuracy, lam_map,
                                       voc_average_precision)

# Published results (docs/lam.md): (name, mAP, accuracy or None)
REFERENCE_RESULTS = [("Ego4D baseline (test)", 66.07, 75.38),
                     ("GazePose, 5 runs (test)", 77.02, None),
                     ("GazePose ensemble (test)", 78.80, 92.47), ("InternLSTM (test)", 81.0, 93.0)]
CHALLENGE = {"version": "1.0", "challenge": "ego4d_looking_at_me"}


@torch.no_grad()
def predict_windows(model, dataset, *, batch_size: int, device, num_workers: int = 0,
                    shard: tuple[int, int] = (0, 1), desc: str = "eval") -> tuple[list, list]:
    """(rows {position, uid, track_id, frame, box, label, score} in dataset order, messages
    of windows that failed to load), merged over processes."""
    model.eval()
    loader = DataLoader(Subset(dataset, shard_positions(len(dataset), shard)),
                        batch_size=batch_size, num_workers=num_workers,
                        collate_fn=collate_samples, generator=torch.Generator())
    rows, bad = [], []
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False,
                      disable=None if shard[0] == 0 else True):
        bad += batch.pop(BAD_KEY)
        inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        scores = torch.softmax(model(inputs).float(), dim=1)[:, 1].cpu().numpy()
        if not np.isfinite(scores).all():
            raise FloatingPointError("a predicted score is NaN or Inf: the model's weights "
                                     "have diverged")
        for i, position in enumerate(batch["position"].tolist()):
            rows.append({"position": position, "uid": batch["uid"][i],
                         "track_id": batch["track_id"][i], "frame": int(batch["frame"][i]),
                         "box": batch["box"][i].tolist(), "label": int(batch["label"][i]),
                         "score": float(scores[i])})
    return sorted(gather_shards(rows, shard), key=lambda r: r["position"]), \
        gather_shards(bad, shard)


def score_rows(rows: list[dict]) -> dict:
    scores = np.array([r["score"] for r in rows])
    labels = np.array([r["label"] for r in rows])
    return {"model": {"map": lam_map(scores, labels), "accuracy": lam_accuracy(scores, labels),
                      "ap_looking": voc_average_precision(scores, labels),
                      "ap_not_looking": voc_average_precision(1 - scores, 1 - labels)},
            "all_positive": all_positive_baseline(labels)}


def write_ego4d_csvs(rows: list[dict], folder: Path) -> None:
    """gt.csv and pred.csv in Ego4D's columns, no header; one row per (video, frame, track)."""
    with (folder / "gt.csv").open("w", newline="") as gt, \
            (folder / "pred.csv").open("w", newline="") as pred:
        gt_writer, pred_writer = csv.writer(gt), csv.writer(pred)
        for r in rows:
            prefix = [r["uid"], r["frame"], *(round(v, 2) for v in r["box"]), r["track_id"]]
            gt_writer.writerow([*prefix, r["label"]])
            pred_writer.writerow([*prefix, 1, f"{r['score']:.6f}"])


def write_submission(rows: list[dict], path: Path) -> None:
    results = [{"video_id": r["uid"], "unique_id": r["unique_id"], "track_id": r["track_id"],
                "label": 1, "score": round(r["score"], 6)} for r in rows]
    path.write_text(json.dumps({**CHALLENGE, "results": results}))


def predict_challenge(config, model, device, shard, log) -> list[dict]:
    """Every frame of the challenge's crops (data.test_stride), with its unique id; [] when
    the dataset has no challenge folder."""
    from gazefollow.social.data.dataset import LAMWindows
    from gazefollow.social.data.ego4d_lam import read_challenge
    from gazefollow.social.task import dataset_root, read_priors_for
    root = dataset_root(config)
    folder = root / config.data.lam_challenge_dir
    if not folder.is_dir():
        log(f"no challenge crops at {folder}: no submission.json")
        return []
    tracks = read_challenge(folder)
    dataset = LAMWindows(root, tracks, None, "challenge", config.data,
                         read_priors_for(config, root, "challenge"), challenge_dir=folder)
    rows, _ = predict_windows(model, dataset, batch_size=config.eval.batch_size, device=device,
                              shard=shard, desc="challenge")
    for row in rows:
        t, k = dataset.samples[row["position"]]
        row["unique_id"] = tracks[t].rows[k]
    return rows


def evaluate_lam(config, model, run_dir: str | Path, device, weights: str, log=print,
                 run_id: str | None = None, shard: tuple[int, int] = (0, 1),
                 differs: dict | None = None) -> dict:
    from gazefollow.social.task import build_lam_datasets
    if shard[0] != 0:
        log = lambda *_: None  # noqa: E731  one process speaks
    split, run_dir = config.eval.split, Path(run_dir)
    dataset = build_lam_datasets(config, splits=(split,), log=log)[split]
    rows, bad = predict_windows(model, dataset, batch_size=config.eval.batch_size,
                                device=device, num_workers=config.data.num_workers,
                                shard=shard, desc=f"{split} ({weights})")
    challenge = predict_challenge(config, model, device, shard, log)
    results = score_rows(rows)
    results["info"] = {
        "task": "lam", "split": split, "ego4d_list": "val", "windows": len(rows),
        "positives": int(sum(r["label"] for r in rows)), "clip_length": config.data.clip_length,
        "stride": config.data.val_stride, "model": config.model.lam_model, "weights": weights,
        "processes": shard[1], "skipped_unreadable": len(bad), "skipped_examples": bad[:5],
        "loaded": dataset.load_report.as_dict(), "challenge_windows": len(challenge),
        "all_positive": "every face scored 1 (looking); ties ranked as one group",
        "differs_from_training": differs or {}, "output_dir": str(run_dir)}
    if shard[0] == 0:
        write_metrics(results, run_dir / "metrics.json")
        write_ego4d_csvs(rows, run_dir)
        if challenge:
            write_submission(challenge, run_dir / "submission.json")
        log_to_wandb(config, run_dir, results, [], run_id)
        if bad:
            log(f"SKIPPED {len(bad)} windows that failed to load (data.on_bad_input=skip): "
                + " | ".join(bad[:5]))
        log(f"\n{split} split (Ego4D val list), {len(rows)} windows, {weights} weights:\n"
            + format_table(results))
    return results


def format_table(results: dict) -> str:
    m, base = results["model"], results["all_positive"]
    lines = [f"{'':<30}{'mAP':>10}{'accuracy':>10}",
             f"{'model':<30}{100 * m['map']:>10.2f}{100 * m['accuracy']:>10.2f}",
             f"{'all positive':<30}{100 * base['map']:>10.2f}{100 * base['accuracy']:>10.2f}",
             "published on Ego4D:"]
    lines += [f"  {name:<28}{value:>10.2f}{'' if acc is None else f'{acc:>10.2f}'}"
              for name, value, acc in REFERENCE_RESULTS]
    return "\n".join(lines)
