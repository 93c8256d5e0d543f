"""Deterministic train/test split and K folds over sample indices (pure Python, no torch).

The test split is held out first: a permutation of ``range(n)`` seeded with the sweep seed,
whose first ``round(test_fraction * n)`` indices (at least one) are the test split. The rest,
the train split, is shuffled again (with a stream derived from the same seed) and cut into
``n_folds`` folds of near-equal size, the first ``len % n_folds`` one larger (as in
scikit-learn's ``KFold``). Fold ``k`` is the validation set of fold run ``k``; the other folds
are its training set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from smptune.errors import ConfigError


@dataclass(frozen=True)
class Split:
    """Indices (sorted) of one run's training and evaluation samples."""

    train: tuple[int, ...]
    evaluate: tuple[int, ...]


def n_test_samples(n: int, test_fraction: float) -> int:
    """How many of ``n`` samples the test split holds: ``round(test_fraction * n)``, at least 1."""
    return max(1, round(test_fraction * n))


def train_test_split(n: int, seed: int, test_fraction: float) -> Split:
    """Hold out the test split: ``Split(train=..., evaluate=<test indices>)``."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(
            f"data.test_fraction: must be between 0 and 1 (exclusive), got {test_fraction!r}"
        )
    n_test = n_test_samples(n, test_fraction)
    if n_test >= n:
        raise ConfigError(
            f"data.test_fraction: {test_fraction!r} of {n} samples leaves no training samples"
        )
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return Split(train=tuple(sorted(order[n_test:])), evaluate=tuple(sorted(order[:n_test])))


def kfold(indices: tuple[int, ...] | list[int], n_folds: int, seed: int) -> list[tuple[int, ...]]:
    """Cut ``indices`` into ``n_folds`` shuffled, disjoint folds (each sorted)."""
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise ConfigError(f"cv.n_folds: must be an integer >= 2, got {n_folds!r}")
    if n_folds > len(indices):
        raise ConfigError(
            f"cv.n_folds: {n_folds} folds need at least {n_folds} training samples, "
            f"but the train split holds {len(indices)}"
        )
    order = list(indices)
    # A stream of its own, so that changing test_fraction does not reuse the split's draws.
    random.Random(f"smptune-kfold-{seed}").shuffle(order)
    base, extra = divmod(len(order), n_folds)
    folds: list[tuple[int, ...]] = []
    start = 0
    for k in range(n_folds):
        size = base + (1 if k < extra else 0)
        folds.append(tuple(sorted(order[start : start + size])))
        start += size
    return folds


def fold_split(n: int, seed: int, test_fraction: float, n_folds: int, fold: int) -> Split:
    """Training and validation indices of fold ``fold`` (0-based); test indices never appear."""
    if not 0 <= fold < n_folds:
        raise ConfigError(f"cv.n_folds: fold {fold} does not exist with {n_folds} folds")
    train = train_test_split(n, seed, test_fraction).train
    folds = kfold(train, n_folds, seed)
    validation = folds[fold]
    rest = sorted(i for k, f in enumerate(folds) if k != fold for i in f)
    return Split(train=tuple(rest), evaluate=validation)


def retrain_split(n: int, seed: int, test_fraction: float) -> Split:
    """The whole train split (all folds) for training, the test split for evaluation."""
    return train_test_split(n, seed, test_fraction)
