"""Joint gaze-estimation datasets (``data.source_dataset: joint``), as UniGaze trains: several
datasets mixed by sampling weight, each read by its own reader with its own protocol, every
label already in the project's convention.

- ``estimation.joint``: the training mix, ``[{name, root, weight, split}]``: ``name`` a dataset
  (``data.source_dataset`` value), ``root`` its folder (else ``estimation.paths[name]``, else the
  ``estimation.paths_file``), ``weight`` its share of the draws (1), ``split`` the protocol split
  it trains on (``train``). Each dataset's validation split, where its protocol has one,
  joins the validation set.
- ``estimation.joint_test``: what is evaluated, ``[{name, root, split}]`` (``split`` default
  ``test``; ETH-XGaze's labelled held-out subjects are ``val``). Empty: each training
  dataset's own test split (within-dataset). A dataset not trained on is cross-dataset.
- ``estimation.epoch_samples``: draws per epoch (0: the training sets' total size). Each draw picks
  a dataset with probability weight / sum(weights), then one of its samples uniformly, from
  a generator seeded by (seed, epoch), so an epoch is the same on resume.
- ``estimation.paths_file``: UniGaze's ``data_path.yaml`` (``{data: {name: folder}}``) or a flat
  ``{name: folder}`` file.

Samples carry ``dataset`` (the entry's name) and a ``subject`` prefixed by it
(``gaze360/rec_001``), so that evaluation reports every dataset apart.
"""
from __future__ import annotations

import bisect
import dataclasses
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import Dataset, Sampler

from gazefollow.config import Config, ConfigError

SPLITS = ("train", "val", "test")


def dataset_roots(config: Config) -> dict[str, str]:
    """name -> folder: ``estimation.paths_file`` (UniGaze's ``data_path.yaml`` or flat), then
    ``estimation.paths`` over it."""
    estimation, roots = config.estimation, {}
    if estimation.paths_file:
        file = Path(estimation.paths_file)
        if not file.is_file():
            raise ConfigError(f"estimation.paths_file={file} does not exist")
        content = OmegaConf.to_container(OmegaConf.load(file))
        content = content.get("data", content) if isinstance(content, dict) else None
        if not isinstance(content, dict):
            raise ConfigError(f"{file}: expected {{data: {{name: folder}}}} or {{name: folder}}")
        roots.update({str(k): str(v) for k, v in content.items()})
    return {**roots, **estimation.paths}


def resolve_entries(entries: list[dict], roots: dict[str, str], where: str,
                    default_split: str) -> list[dict]:
    """Each entry with its root, weight and split filled in (ConfigError naming the entry)."""
    out = []
    for number, entry in enumerate(entries):
        name = entry.get("name")
        root = entry.get("root") or roots.get(name)
        if not root:
            raise ConfigError(f"{where}[{number}] ({name}): no root, and no estimation.paths or "
                              "estimation.paths_file entry for it")
        out.append({"name": name, "root": str(root), "weight": float(entry.get("weight", 1.0)),
                    "split": entry.get("split", default_split)})
    return out


def entry_config(config: Config, entry: dict) -> Config:
    """The run's config as if it read this one dataset (its protocol keys are shared)."""
    data = dataclasses.replace(config.data, source_dataset=entry["name"],
                               dataset_dir=entry["root"])
    estimation = dataclasses.replace(config.estimation, joint=[], joint_test=[])
    return dataclasses.replace(config, data=data, estimation=estimation)


class JointFaceDataset(Dataset):
    """FaceDatasets one after another, by name; ``weights`` and ``epoch_samples`` shape the
    training draws (``sampler``)."""

    def __init__(self, parts: list[tuple[str, Dataset]], weights: list[float] | None = None,
                 epoch_samples: int = 0):
        self.names = [name for name, _ in parts]
        self.parts = [part for _, part in parts]
        self.starts = list(np.cumsum([0] + [len(part) for part in self.parts]))
        self.weights = weights or [1.0] * len(parts)
        self.epoch_samples = epoch_samples or self.starts[-1]
        self.load_report = JointReport(self.names, [p.load_report for p in self.parts])
        self.reader = _JointReader(self)

    def __len__(self) -> int:
        return self.starts[-1]

    def locate(self, position: int) -> tuple[int, int]:
        part = bisect.bisect_right(self.starts, position) - 1
        return part, position - self.starts[part]

    def gaze_labels(self) -> np.ndarray:
        return np.concatenate([part.gaze_labels() for part in self.parts])

    def __getitem__(self, item) -> dict:
        position, epoch = item if isinstance(item, tuple) else (item, 0)
        part, local = self.locate(position)
        sample = self.parts[part][(local, epoch)]
        if "subject" in sample:  # not a skipped face
            sample = {**sample, "subject": f"{self.names[part]}/{sample['subject']}",
                      "dataset": self.names[part], "position": position}
        return sample

    def sampler(self, seed: int) -> Sampler:
        return WeightedDraws(self.starts, self.weights, self.epoch_samples, seed)


class _JointReader:
    """``reader[position]``: the underlying reader's sample (the faces drawn in pictures)."""

    def __init__(self, joint: JointFaceDataset):
        self.joint = joint

    def __getitem__(self, position: int) -> dict:
        part, local = self.joint.locate(position)
        return self.joint.parts[part].reader[local]


class JointReport:
    """The load reports of the parts, by name."""

    def __init__(self, names: list[str], reports: list):
        self.by_name = dict(zip(names, reports))

    def as_dict(self) -> dict:
        return {name: report.as_dict() for name, report in self.by_name.items()}

    def summary(self) -> str:
        return "; ".join(f"{name}: {report.summary()}" for name, report in self.by_name.items())


class WeightedDraws(Sampler):
    """``count`` draws per epoch: a dataset by weight, then a position in it uniformly, from
    (seed, epoch). Items are (position, epoch), as ``EpochShuffle`` gives."""

    def __init__(self, starts: list[int], weights: list[float], count: int, seed: int):
        self.starts, self.count, self.seed, self.epoch = starts, count, seed, 0
        total = float(sum(weights))
        self.shares = torch.tensor([w / total for w in weights], dtype=torch.float64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 10_007 + self.epoch)
        parts = torch.multinomial(self.shares, self.count, replacement=True,
                                  generator=generator).tolist()
        uniform = torch.rand(self.count, generator=generator, dtype=torch.float64).tolist()
        sizes = [b - a for a, b in zip(self.starts, self.starts[1:])]
        return iter([(int(self.starts[p] + min(int(u * sizes[p]), sizes[p] - 1)), self.epoch)
                     for p, u in zip(parts, uniform)])

    def __len__(self) -> int:
        return self.count
