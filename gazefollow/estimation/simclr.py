"""SimCLR pretraining of the face encoder without labels (``run.task: simclr``,
``python main.py --task simclr``), as GEFF pretrains its face encoder.

Each face gives two strongly augmented views (``SIMCLR_VIEWS``: flip, a crop of up to a
quarter of each edge, strong colour jitter; each view from its own seeded generator). The
encoder is the ResNet of the estimator (``model.face_layers``, ``block``, ``face_inplanes``),
pooled, then a projection head (Linear, ReLU, Linear to ``model.simclr_dim``). The loss is
NT-Xent at temperature ``loss.simclr_tau`` (0.5): for each view, cross-entropy of its cosine
similarities to every other view of the batch, the other view of its face the target.
With several processes the embeddings are gathered (with their gradients) from every
process, so the negatives, and the effective batch, grow with the number of processes.

Validation and evaluation report the loss and the top-1 retrieval accuracy (is a view's
most similar other view its partner?) beside chance. The run's ``backbone.*`` weights start a
ResNet estimator or the gaze-following face branch (``run.init_weights``; the projection
head is dropped).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from gazefollow.data.dataset import BAD_KEY, collate_samples
from gazefollow.estimation.augment import FaceAugmentSettings
from gazefollow.estimation.data.build import build_face_datasets
from gazefollow.estimation.data.dataset import FaceDataset
from gazefollow.models.resnet import ResNet
from gazefollow.reporting import log_to_wandb, write_metrics
from gazefollow.tasks import Task

SIMCLR_VIEWS = FaceAugmentSettings(flip=0.5, crop=1.0, crop_share=0.25, color=1.0,
                                   color_range=0.5)
SECOND_VIEW_SEED = 1_000_003  # the second view's generator: seed + this


def _gather_with_grad(z: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(every process's rows in rank order, this process's first row in them)."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z, 0
    from torch.distributed.nn.functional import all_gather
    return torch.cat(all_gather(z)), dist.get_rank() * len(z)


def nt_xent(z: torch.Tensor, tau: float = 0.5, gather: bool = True) -> torch.Tensor:
    """z [2n, d]: the first n rows view a of n faces, the next n view b, in the same order.
    -> the mean over these 2n rows of -log softmax(similarity to the partner / tau), against
    every other row of the (gathered) batch."""
    z = F.normalize(z.float(), dim=1)
    everyone, offset = _gather_with_grad(z) if gather else (z, 0)
    n = len(z) // 2
    logits = z @ everyone.T / tau
    own = torch.arange(len(z), device=z.device) + offset
    logits[torch.arange(len(z)), own] = float("-inf")  # a view is not its own negative
    partner = torch.cat([own[n:], own[:n]])
    return F.cross_entropy(logits, partner)


def top1_retrieval(z: torch.Tensor) -> float:
    """Share of views whose most similar other view (cosine) is their partner."""
    z = F.normalize(z.float(), dim=1)
    similarity = z @ z.T
    similarity.fill_diagonal_(float("-inf"))
    n = len(z) // 2
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return float((similarity.argmax(dim=1) == partner).float().mean())


class SimCLRModel(nn.Module):
    """Face [B, 3, S, S] -> the projected embedding [B, simclr_dim]."""

    def __init__(self, model_cfg):
        super().__init__()
        self.backbone = ResNet(model_cfg.face_layers, inplanes=model_cfg.face_inplanes,
                               block=model_cfg.block, stem_pool=model_cfg.face_stem_pool)
        width = self.backbone.out_channels
        self.projection = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True),
                                        nn.Linear(width, model_cfg.simclr_dim))

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        return self.projection(self.backbone(face).mean(dim=(2, 3)))

    def trainable_parts(self) -> dict:
        return {"backbone": [p for p in self.backbone.parameters() if p.requires_grad],
                "head": [p for p in self.projection.parameters() if p.requires_grad]}

    def resnet_prefixes(self) -> dict[str, str]:
        return {"backbone": "backbone."}


class TwoViews(Dataset):
    """Two augmented views of each face of a reader (``face`` and ``face_b``)."""

    def __init__(self, reader, face_size: int, on_bad_input: str, seed: int):
        self.a = FaceDataset(reader, face_size, SIMCLR_VIEWS, on_bad_input, seed)
        self.b = FaceDataset(reader, face_size, SIMCLR_VIEWS, on_bad_input,
                             seed + SECOND_VIEW_SEED)
        self.load_report, self.reader = reader.report, reader

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, item) -> dict:
        first = self.a[item]
        if BAD_KEY in first:
            return first
        return {**first, "face_b": self.b[item]["face"]}


def build_view_datasets(config, splits=("train", "val", "test"), log=print) -> dict:
    """The estimation datasets of the configured source (its protocol), as view pairs."""
    plain = build_face_datasets(config, splits, log)
    return {split: TwoViews(dataset.reader, config.data.face_size, config.data.on_bad_input,
                            config.run.seed) for split, dataset in plain.items()}


def simclr_losses(model, batch: dict, loss_cfg, generator=None) -> dict:
    """One forward of both views together (one pass through DDP), then NT-Xent."""
    z = model(torch.cat([batch["face"], batch["face_b"]]))
    return {"loss": nt_xent(z, loss_cfg.simclr_tau)}


@torch.no_grad()
def embed_views(model, dataset, batch_size: int, device) -> tuple[torch.Tensor, int]:
    """Embeddings of every view pair of a split ([2n, d]: views a, then views b), and the
    number of faces that failed to load (skip mode)."""
    model.eval()
    loader = DataLoader(Subset(dataset, list(range(len(dataset)))), batch_size=batch_size,
                        collate_fn=collate_samples, generator=torch.Generator())
    first, second, bad = [], [], 0
    for batch in loader:
        bad += len(batch.pop(BAD_KEY))
        first.append(model(batch["face"].to(device)).float().cpu())
        second.append(model(batch["face_b"].to(device)).float().cpu())
    return torch.cat(first + second), bad


def split_metrics(model, dataset, config, device) -> dict:
    z, _ = embed_views(model, dataset, config.eval.batch_size, device)
    return {"nt_xent": float(nt_xent(z, config.loss.simclr_tau, gather=False)),
            "top1": top1_retrieval(z)}


def validation_metrics(net, dataset, config, accelerator) -> tuple[dict, str, list]:
    """On the main process's view of the whole split (the pairs of a split are few)."""
    return split_metrics(net, dataset, config, accelerator.device), "two views", []


def evaluate_simclr(config, model, run_dir: str | Path, device, weights: str, log=print,
                    run_id: str | None = None, shard: tuple[int, int] = (0, 1),
                    differs: dict | None = None) -> dict:
    """metrics.json: {"model": {"nt_xent", "top1"}, "chance": {"top1"}, "info"}."""
    split = config.eval.split
    dataset = build_view_datasets(config, splits=(split,), log=log if shard[0] == 0 else
                                  (lambda *_: None))[split]
    metrics = split_metrics(model, dataset, config, device)
    results = {"model": metrics, "chance": {"top1": 1 / max(1, 2 * len(dataset) - 1)},
               "info": {"task": "simclr", "split": split, "faces": len(dataset),
                        "dataset": config.data.source_dataset, "weights": weights,
                        "tau": config.loss.simclr_tau, "loaded": dataset.load_report.as_dict(),
                        "differs_from_training": differs or {}, "output_dir": str(run_dir)}}
    if shard[0] == 0:
        write_metrics(results, Path(run_dir) / "metrics.json")
        log_to_wandb(config, Path(run_dir), results, [], run_id)
        log(f"\n{split} split, {len(dataset)} faces, two views each, {weights} weights: "
            f"NT-Xent {metrics['nt_xent']:.4f} (tau {config.loss.simclr_tau}), top-1 "
            f"retrieval {metrics['top1']:.3f} (chance {results['chance']['top1']:.3f}; "
            f"log(2n - 1) = {math.log(max(1, 2 * len(dataset) - 1)):.3f})")
    return results


SIMCLR = Task(
    name="simclr",
    run_label=lambda config: f"simclr-{config.model.estimator}",
    build_datasets=build_view_datasets,
    build_model=lambda config: SimCLRModel(config.model),
    training_losses=simclr_losses,
    validation_metrics=validation_metrics,
    evaluate_run=evaluate_simclr,
    eval_label=lambda config, model: "simclr",
)
