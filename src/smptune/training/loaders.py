"""A run's batches for Lightning: datasets over the (memory-mapped) arrays, epoch-seeded
samplers and the DataLoaders of training and evaluation."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    Sampler,
    SequentialSampler,
)

from smptune.training.patches import PatchSampler
from smptune.training.samples import SegmentationData

#: what the loaders' datasets give: (images, masks)
Batch = tuple[torch.Tensor, torch.Tensor]


class _Batches(Dataset[Batch]):
    """Whole batches by array indexing: ``dataset[[i, j, ...]]`` -> (images, masks) as stored
    (uint8 or float32 images), read from the (memory-mapped) arrays."""

    def __init__(self, data: SegmentationData, indices: Sequence[int]) -> None:
        self.images, self.masks = data.stacked()
        self.indices = np.asarray(list(indices), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = self.indices[np.asarray(positions, dtype=np.int64)]
        return (
            torch.from_numpy(np.ascontiguousarray(self.images[chosen])),
            torch.from_numpy(np.ascontiguousarray(self.masks[chosen])),
        )


class _Patches(Dataset[Batch]):
    """Fixed-size training batches of patches: ``dataset[(epoch, [i, j, ...])]`` -> (images,
    masks) as stored, one patch of each sample (see :mod:`.patches`)."""

    def __init__(self, patches: PatchSampler, indices: Sequence[int]) -> None:
        self.patches = patches
        self.indices = np.asarray(list(indices), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, positions = key
        cut = [self.patches.patch(int(self.indices[p]), epoch) for p in positions]
        return (
            torch.from_numpy(np.stack([image for image, _ in cut])),
            torch.from_numpy(np.stack([mask for _, mask in cut])),
        )


class _Wholes(Dataset[Batch]):
    """One sample at a time at its true size: ``dataset[k]`` -> (images (1, C, H, W), masks
    (1, H, W)) as stored, for evaluation in sliding windows."""

    def __init__(self, data: SegmentationData, indices: Sequence[int]) -> None:
        self.data = data
        self.indices = [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = self.indices[position]
        height, width = self.data.size(i)
        image = np.array(self.data.images[i][None, :, :height, :width])  # a copy
        return torch.from_numpy(image), torch.from_numpy(self.data.true_mask(i)[None].copy())


class _EpochShuffle(Sampler[list[int]]):
    """Batches of a new permutation of ``n`` positions each epoch, drawn from the run's seed
    and the epoch (Lightning calls :meth:`set_epoch` before every epoch).

    In a DDP run of ``world`` processes, process ``rank`` takes every ``world``-th position of
    the permutation, wrapped around to an equal share each (every process steps as often).

    Hand-written because torch's ``RandomSampler`` draws every epoch's order from one
    generator it never saves: a run resumed from a checkpoint would replay the first epochs'
    orders and drift from the run it continues.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, drop_last: bool, rank: int = 0, world: int = 1
    ) -> None:
        self.n = n
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world = world
        self.epoch = 0

    @property
    def share(self) -> int:
        """Positions this process draws each epoch: all of them, or its equal share."""
        return math.ceil(self.n / self.world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        share = self.share
        return share // self.batch_size if self.drop_last else math.ceil(share / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % 2**63)
        order = torch.randperm(self.n, generator=generator).tolist()
        if self.world > 1:
            wrapped = [order[i % self.n] for i in range(self.share * self.world)]
            order = wrapped[self.rank :: self.world]
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start : start + self.batch_size]


class _WithEpoch(Sampler[tuple[int, list[int]]]):
    """``(epoch, batch)`` of an :class:`_EpochShuffle`: patch positions depend on the epoch,
    and the loader's workers only see what the sampler yields."""

    def __init__(self, shuffle: _EpochShuffle) -> None:
        self.shuffle = shuffle

    def set_epoch(self, epoch: int) -> None:
        self.shuffle.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.shuffle)

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        epoch = self.shuffle.epoch
        return ((epoch, batch) for batch in self.shuffle)


def data_loader(
    data: SegmentationData,
    indices: Sequence[int],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_workers: int,
    patches: PatchSampler | None = None,
    rank: int = 0,
    world: int = 1,
) -> DataLoader[Batch]:
    """Training batches (``shuffle``: whole images, or with ``patches`` one patch of each),
    else evaluation batches (whole stored images; with ``patches``, one true-size image at
    a time for sliding windows).

    In a DDP run of ``world`` processes, process ``rank`` trains on its equal share of each
    epoch's permutation and evaluates every ``world``-th sample (each once over the ranks)."""
    dataset: Dataset[Batch]
    batches: Sampler[Any]
    if shuffle:
        # A last batch of one sample breaks BatchNorm in some architectures: drop it.
        n = len(indices)
        share = math.ceil(n / world)
        drop_last = share > batch_size and share % batch_size == 1
        epochs = _EpochShuffle(n, batch_size, seed, drop_last, rank, world)
        if patches is None:
            dataset, batches = _Batches(data, indices), epochs
        else:
            dataset, batches = _Patches(patches, indices), _WithEpoch(epochs)
    elif patches is None:
        dataset = _Batches(data, list(indices)[rank::world])
        batches = BatchSampler(SequentialSampler(dataset), batch_size, drop_last=False)
    else:
        dataset = _Wholes(data, list(indices)[rank::world])
        batches = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        sampler=batches,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
    )
