"""The training data order: a pure function of (seed, epoch), so a resumed run sees exactly
the batches an uninterrupted one would."""
from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochShuffle(Sampler):
    """A fresh permutation per epoch from (seed, epoch). Items are (position, epoch): the
    protocol ``HeadDataset.__getitem__`` reads, so each sample's augmentation is drawn from
    (seed, epoch, sample id) as well."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 10_007 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        return iter([(position, self.epoch) for position in order])

    def __len__(self) -> int:
        return self.size
