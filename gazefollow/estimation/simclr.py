"""SimCLR pretraining of the face encoder without labels (``run.task: simclr``,
``python main.py --task simclr``), as GEFF pretrains its face encoder.

Each face gives two strongly augmented views (``SIMCLR_VIEWS``: flip, a crop of up to a
quarter of each edge, strong colour jitter; each view from its own seeded generator). The
encoder is the ResNet of the estimator (``model.face_layers``, ``block``, ``face_inplanes``),
pooled, then a projection head (Linear, ReLU, Linear to ``simclr.dim``). The loss is
NT-Xent at temperature ``simclr.tau`` (0.5): for each view, cross-entropy of its cosine
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
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from gazefollow.backbones.init_weights import load_initial_weights
from gazefollow.backbones.resnet import ResNet
from gazefollow.engine.evaluation import Evaluation, predict_split
from gazefollow.engine.samples import BAD_KEY
from gazefollow.engine.task import Task
from gazefollow.estimation.augment import FaceAugmentSettings
from gazefollow.estimation.data.build import build_face_datasets
from gazefollow.estimation.data.dataset import FaceDataset
from gazefollow.estimation.task import EVALUATION_KEYS, config_sections
from gazefollow.estimation.validate import ESTIMATION_SOURCES, validate_pretraining

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


@dataclass
class SimCLRConfig:
    """The config section ``simclr`` (the face encoder is the estimation's resnet)."""

    dim: int = 128  # the projection head's output width
    tau: float = 0.5  # the NT-Xent temperature

    RENAMED = {"model.simclr_dim": "dim", "loss.simclr_tau": "tau"}  # before 2026-12-05


class SimCLRModel(nn.Module):
    """Face [B, 3, S, S] -> the projected embedding [B, simclr_dim]."""

    def __init__(self, model_cfg, dim: int):
        super().__init__()
        self.backbone = ResNet(model_cfg.face_layers, inplanes=model_cfg.face_inplanes,
                               block=model_cfg.block, stem_pool=model_cfg.face_stem_pool)
        width = self.backbone.out_channels
        self.projection = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True),
                                        nn.Linear(width, dim))

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
    return {"loss": nt_xent(z, loss_cfg.tau)}


def embed_views(model, dataset, batch_size: int, device,
                shard: tuple[int, int] = (0, 1)) -> tuple[torch.Tensor, list[str]]:
    """Embeddings of every view pair of a split ([2n, d]: views a, then views b; each process
    embeds its share, every process gets them all), and the messages of the faces that failed
    to load (skip mode)."""
    def embed(model, batch) -> dict:
        return {"embedding a": model(batch["face"]).float().cpu().numpy(),
                "embedding b": model(batch["face_b"]).float().cpu().numpy()}

    def rows(batch, outputs) -> list[dict]:
        return [{"position": position, "a": outputs["embedding a"][i],
                 "b": outputs["embedding b"][i]}
                for i, position in enumerate(batch["position"].tolist())]

    predicted = predict_split(model, dataset, embed, rows, batch_size=batch_size,
                              device=device, shard=shard, desc="embed")
    pairs = predicted.rows
    z = torch.from_numpy(np.stack([r["a"] for r in pairs] + [r["b"] for r in pairs]))
    return z, predicted.bad_input


def split_metrics(model, dataset, config, device, shard: tuple[int, int] = (0, 1)) -> dict:
    z, _ = embed_views(model, dataset, config.eval.batch_size, device, shard)
    return {"nt_xent": float(nt_xent(z, config.simclr.tau, gather=False)),
            "top1": top1_retrieval(z)}


def validation_metrics(net, dataset, config, accelerator) -> tuple[dict, str, list]:
    """Every process embeds its share; the loss and retrieval see the whole split."""
    shard = (accelerator.process_index, accelerator.num_processes)
    return split_metrics(net, dataset, config, accelerator.device, shard), "two views", []


def evaluate_simclr(config, model, device, weights: str, shard: tuple[int, int],
                    log) -> Evaluation:
    """metrics.json: {"model": {"nt_xent", "top1"}, "chance": {"top1"}, "info"}."""
    split = config.eval.split
    dataset = build_view_datasets(config, splits=(split,), log=log)[split]
    z, bad = embed_views(model, dataset, config.eval.batch_size, device, shard)
    metrics = {"nt_xent": float(nt_xent(z, config.simclr.tau, gather=False)),
               "top1": top1_retrieval(z)}
    chance = 1 / max(1, 2 * len(dataset) - 1)
    info = {"split": split, "faces": len(dataset), "dataset": config.data.source_dataset,
            "tau": config.simclr.tau, "loaded": dataset.load_report.as_dict()}
    table = (f"\n{split} split, {len(dataset)} faces, two views each, {weights} weights: "
             f"NT-Xent {metrics['nt_xent']:.4f} (tau {config.simclr.tau}), top-1 "
             f"retrieval {metrics['top1']:.3f} (chance {chance:.3f}; "
             f"log(2n - 1) = {math.log(max(1, 2 * len(dataset) - 1)):.3f})")
    return Evaluation({"model": metrics, "chance": {"top1": chance}}, info, bad, table)


SIMCLR = Task(
    name="simclr",
    summary="label-free (SimCLR) pretraining of a gaze-estimation face encoder",
    config_files=("estimation/base.yaml",),
    default_experiment="estimation/simclr.yaml",
    dataset_names=ESTIMATION_SOURCES,
    validate=validate_pretraining,
    run_label=lambda config: f"simclr-{config.estimation.estimator}",
    build_datasets=build_view_datasets,
    build_model=lambda config: SimCLRModel(config.model, config.simclr.dim),
    training_losses=simclr_losses,
    validation_metrics=validation_metrics,
    evaluate=evaluate_simclr,
    eval_label=lambda config, model: "simclr",
    init_weights=load_initial_weights,
    config_sections=lambda: (*config_sections(), ("simclr", SimCLRConfig)),
    loss_section="simclr",
    evaluation_keys=EVALUATION_KEYS,
)
