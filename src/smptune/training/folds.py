"""Deterministic test splits and folds over sample indices (pure Python, no torch).

Every function draws from its own :class:`random.Random` stream seeded with the sweep seed, so
the same inputs give the same split on every machine.

- :func:`train_test_split`: a permutation of ``range(n)``; its first ``round(f * n)`` indices
  (at least one) are the test split.
- :func:`kfold` (``cv.fold_method: kfold``): the train split shuffled again and cut into
  ``n_folds`` contiguous folds of near-equal size, the first ``len % n_folds`` one larger (as
  scikit-learn's ``KFold(shuffle=True)``). Fold ``k`` is run ``k``'s validation set; the other
  folds are its training set.
- :func:`shuffle_folds`, :func:`stratified_folds`, :func:`group_folds`: the other methods.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
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
    _check_folds(n_folds, len(indices))
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


def _check_folds(n_folds: int, n_train: int, what: str = "training samples") -> None:
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise ConfigError(f"cv.n_folds: must be an integer >= 2, got {n_folds!r}")
    if n_folds > n_train:
        raise ConfigError(
            f"cv.n_folds: {n_folds} folds need at least {n_folds} {what}, "
            f"but the train split holds {n_train}"
        )


def shuffle_folds(
    indices: Sequence[int], n_folds: int, seed: int, validation_fraction: float
) -> list[tuple[int, ...]]:
    """``n_folds`` independent random validation sets of ``round(f * len)`` (>= 1) samples;
    two of them may share samples (scikit-learn's ``ShuffleSplit``)."""
    _check_folds(n_folds, len(indices))
    n_val = max(1, round(validation_fraction * len(indices)))
    if n_val >= len(indices):
        raise ConfigError(
            f"cv.validation_fraction: {validation_fraction!r} of {len(indices)} training "
            "samples leaves none to train on"
        )
    folds = []
    for k in range(n_folds):
        order = sorted(indices)
        random.Random(f"smptune-shuffle-{seed}-{k}").shuffle(order)
        folds.append(tuple(sorted(order[:n_val])))
    return folds


def stratified_folds(
    indices: Sequence[int], strata: Sequence[int], n_folds: int, seed: int
) -> list[tuple[int, ...]]:
    """K folds with each stratum spread evenly: every stratum's samples are shuffled, the
    strata are laid end to end (in stratum order), and sample ``p`` of that sequence goes to
    fold ``p mod K`` (fold sizes differ by at most one, as do a stratum's shares)."""
    _check_folds(n_folds, len(indices))
    rng = random.Random(f"smptune-stratified-{seed}")
    order: list[int] = []
    for stratum in sorted({strata[i] for i in indices}):
        members = sorted(i for i in indices if strata[i] == stratum)
        rng.shuffle(members)
        order.extend(members)
    return [tuple(sorted(order[k::n_folds])) for k in range(n_folds)]


def group_folds(
    indices: Sequence[int], groups: Sequence[str], n_folds: int, seed: int, column: str
) -> list[tuple[int, ...]]:
    """K folds of whole groups: groups are shuffled, ordered by size (largest first; ties
    keep the shuffled order) and each goes to the fold with the fewest samples so far."""
    members: dict[str, list[int]] = {}
    for i in indices:
        members.setdefault(groups[i], []).append(i)
    _check_folds(n_folds, len(members), f"groups of {column!r}")
    names = sorted(members)
    random.Random(f"smptune-group-{seed}").shuffle(names)
    names.sort(key=lambda g: -len(members[g]))
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    for name in names:
        smallest = min(range(n_folds), key=lambda k: (len(folds[k]), k))
        folds[smallest].extend(members[name])
    return [tuple(sorted(f)) for f in folds]


def group_test_split(
    n: int, groups: Sequence[str], seed: int, test_fraction: float, column: str
) -> tuple[int, ...]:
    """Whole groups, shuffled, taken until they hold at least ``round(f * n)`` (>= 1) samples;
    at least one group is left for training."""
    members: dict[str, list[int]] = {}
    for i in range(n):
        members.setdefault(groups[i], []).append(i)
    if len(members) < 2:
        raise ConfigError(
            f"data.test_fraction: the split by {column!r} needs at least 2 groups, "
            f"found {len(members)}"
        )
    names = sorted(members)
    random.Random(f"smptune-test-groups-{seed}").shuffle(names)
    target = n_test_samples(n, test_fraction)
    test: list[int] = []
    for name in names[:-1]:
        if len(test) >= target:
            break
        test.extend(members[name])
    return tuple(sorted(test))
