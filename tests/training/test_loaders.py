"""A run's batches: each epoch a new order drawn from the seed and the epoch alone (a
resumed run replays the run it continues), no last batch of one sample, evaluation in order
with every sample once."""

from __future__ import annotations

import numpy as np
import pytest

from smptune.training.data import load_data
from smptune.training.loaders import data_loader

pytestmark = pytest.mark.usefixtures("isolated_cache")


def _data(n: int):
    return load_data({"synthetic": {"n_images": n, "size": 32}})


def _orders(loader, epochs: range) -> list[list[list[int]]]:
    out = []
    for epoch in epochs:
        loader.sampler.set_epoch(epoch)
        out.append(list(loader.sampler))
    return out


def test_each_epoch_is_a_new_permutation_drawn_from_the_seed_and_the_epoch():
    data = _data(12)
    loader = data_loader(data, range(12), 4, shuffle=True, seed=7, num_workers=0)
    first = _orders(loader, range(3))
    # every epoch covers each sample once, in batches of 4, in an order of its own
    for batches in first:
        assert [len(b) for b in batches] == [4, 4, 4]
        assert sorted(i for b in batches for i in b) == list(range(12))
    assert len({tuple(i for b in batches for i in b) for batches in first}) == 3
    # a run resumed at epoch 2 (a new loader, straight to that epoch) gets the same batches
    resumed = data_loader(data, range(12), 4, shuffle=True, seed=7, num_workers=0)
    assert _orders(resumed, range(2, 3)) == first[2:]
    # and another seed another order
    other = data_loader(data, range(12), 4, shuffle=True, seed=8, num_workers=0)
    assert _orders(other, range(1)) != first[:1]


def test_training_drops_a_last_batch_of_one_sample_and_keeps_a_larger_one():
    data = _data(10)
    one_left = data_loader(data, range(9), 4, shuffle=True, seed=0, num_workers=0)
    assert [len(masks) for _, masks in one_left] == [4, 4]
    two_left = data_loader(data, range(10), 4, shuffle=True, seed=0, num_workers=0)
    assert [len(masks) for _, masks in two_left] == [4, 4, 2]


def test_evaluation_batches_hold_every_sample_once_in_order():
    data = _data(7)
    chosen = [6, 0, 3, 5, 1]
    loader = data_loader(data, chosen, 2, shuffle=False, seed=0, num_workers=0)
    batches = list(loader)
    assert [len(masks) for _, masks in batches] == [2, 2, 1]
    masks = np.concatenate([m.numpy() for _, m in batches])
    assert np.array_equal(masks, np.asarray(data.masks)[chosen])


def test_ddp_ranks_train_on_equal_shares_of_each_epochs_permutation():
    data = _data(11)
    loaders = [
        data_loader(data, range(11), 2, shuffle=True, seed=3, num_workers=0, rank=r, world=2)
        for r in range(2)
    ]
    alone = data_loader(data, range(11), 2, shuffle=True, seed=3, num_workers=0)
    for epoch in range(2):
        shares = [_orders(loader, range(epoch, epoch + 1))[0] for loader in loaders]
        # each rank steps as often (6 positions each: the permutation wrapped to 12)
        assert [len(batches) for batches in shares] == [3, 3]
        positions = [[i for b in batches for i in b] for batches in shares]
        assert set(positions[0]) | set(positions[1]) == set(range(11))
        assert len(set(positions[0]) & set(positions[1])) == 1  # the one wrapped around
        # the shares interleave the permutation one device draws for that epoch (which
        # drops its last sample: a batch of one)
        whole = [i for b in _orders(alone, range(epoch, epoch + 1))[0] for i in b]
        assert positions[0][:5] == whole[0::2] and positions[1][:5] == whole[1::2]
        assert positions[1][5] == whole[0]


def test_ddp_ranks_evaluate_every_sample_once_between_them():
    data = _data(7)
    chosen = [6, 0, 3, 5, 1]
    masks = [
        np.concatenate(
            [
                m.numpy()
                for _, m in data_loader(
                    data, chosen, 2, shuffle=False, seed=0, num_workers=0, rank=r, world=2
                )
            ]
        )
        for r in range(2)
    ]
    stored = np.asarray(data.masks)
    assert np.array_equal(masks[0], stored[[6, 3, 1]])
    assert np.array_equal(masks[1], stored[[0, 5]])
