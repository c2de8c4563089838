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

from gazefollow.engine.evaluation import Evaluation, predict_split
from gazefollow.engine.samples import BadInput
from gazefollow.social.metrics import (all_positive_baseline, lam_accuracy, lam_map,
                                       voc_average_precision)

# Published results (docs/lam.md): (name, mAP, accuracy or None)
REFERENCE_RESULTS = [("Ego4D baseline (test)", 66.07, 75.38),
                     ("GazePose, 5 runs (test)", 77.02, None),
                     ("GazePose ensemble (test)", 78.80, 92.47), ("InternLSTM (test)", 81.0, 93.0)]
CHALLENGE = {"version": "1.0", "challenge": "ego4d_looking_at_me"}


def predict_windows(model, dataset, *, batch_size: int, device, num_workers: int = 0,
                    shard: tuple[int, int] = (0, 1), desc: str = "eval") -> tuple[list, list]:
    """(rows {position, uid, track_id, frame, box, label, score} in dataset order, messages
    of windows that failed to load), merged over processes."""
    predicted = predict_split(model, dataset, _looking_score, _window_rows,
                              batch_size=batch_size, device=device, shard=shard,
                              num_workers=num_workers, desc=desc)
    return predicted.rows, predicted.bad_input


def _looking_score(model, batch) -> dict:
    """The softmax probability of "looking" per window."""
    return {"score": torch.softmax(model(batch).float(), dim=1)[:, 1].cpu().numpy()}


def _window_rows(batch, outputs) -> list[dict]:
    return [{"position": position, "uid": batch["uid"][i], "track_id": batch["track_id"][i],
             "frame": int(batch["frame"][i]), "box": batch["box"][i].tolist(),
             "label": int(batch["label"][i]), "score": float(outputs["score"][i])}
            for i, position in enumerate(batch["position"].tolist())]


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


def predict_challenge(dataset, config, model, device, shard, log) -> tuple[list, list, str]:
    """(rows of every challenge window with its unique id, messages of windows that failed
    to load, the error that stopped the prediction or ""). A failure here is reported, and
    the evaluated split's files are written all the same."""
    try:
        rows, bad = predict_windows(model, dataset, batch_size=config.eval.batch_size,
                                    device=device, shard=shard, desc="challenge")
    except (BadInput, OSError) as err:
        log(f"challenge prediction FAILED, so no submission.json: {err}")
        return [], [], str(err)
    for row in rows:
        t, k = dataset.samples[row["position"]]
        row["unique_id"] = dataset.tracks[t].rows[k]
    return rows, bad, ""


def evaluate_lam(config, model, device, weights: str, shard: tuple[int, int],
                 log) -> Evaluation:
    """mAP and accuracy on ``eval.split`` beside the all-positive baseline; Ego4D's gt.csv /
    pred.csv, and the challenge's submission.json where its crops are present."""
    from gazefollow.social.data.build import build_lam_datasets
    split = config.eval.split
    datasets = build_lam_datasets(config, splits=("train", split), log=log)
    rows, bad = predict_windows(model, datasets[split], batch_size=config.eval.batch_size,
                                device=device, num_workers=config.data.num_workers,
                                shard=shard, desc=f"{split} ({weights})")
    challenge, challenge_bad, challenge_error = ([], [], "") if "challenge" not in datasets \
        else predict_challenge(datasets["challenge"], config, model, device, shard, log)
    results = score_rows(rows)
    info = {
        "split": split, "ego4d_list": "val", "windows": len(rows),
        "positives": int(sum(r["label"] for r in rows)), "clip_length": config.data.clip_length,
        "stride": config.lam.val_stride, "model": config.lam.model,
        "loaded": {name: datasets[name].load_report.as_dict()
                   for name in ("train", split, "challenge") if name in datasets},
        "challenge_windows": len(challenge), "challenge_skipped": len(challenge_bad),
        "all_positive": "every face scored 1 (looking); ties ranked as one group"}
    if challenge_error:
        info["challenge_error"] = challenge_error
    unavailable = {key: f"the {split} split holds one class only ({info['positives']} looking "
                        f"of {len(rows)})"
                   for key in ("map", "ap_looking", "ap_not_looking")
                   if np.isnan(results["model"][key])}
    if np.isnan(results["all_positive"]["map"]):
        unavailable["all_positive.map"] = f"the {split} split holds one class only"
    if unavailable:
        info["unavailable"] = unavailable
    table = (f"\n{split} split (Ego4D val list), {len(rows)} windows, {weights} weights:\n"
             + format_table(results))

    def write_files(run_dir: Path) -> list[Path]:
        write_ego4d_csvs(rows, run_dir)
        if challenge:
            write_submission(challenge, run_dir / "submission.json")
        return []

    return Evaluation(results, info, bad + challenge_bad, table, write_files)


def format_table(results: dict) -> str:
    m, base = results["model"], results["all_positive"]
    lines = [f"{'':<30}{'mAP':>10}{'accuracy':>10}",
             f"{'model':<30}{100 * m['map']:>10.2f}{100 * m['accuracy']:>10.2f}",
             f"{'all positive':<30}{100 * base['map']:>10.2f}{100 * base['accuracy']:>10.2f}",
             "published on Ego4D:"]
    lines += [f"  {name:<28}{value:>10.2f}{'' if acc is None else f'{acc:>10.2f}'}"
              for name, value, acc in REFERENCE_RESULTS]
    return "\n".join(lines)
