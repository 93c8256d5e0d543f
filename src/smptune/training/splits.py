"""A sweep's test split and folds, from its data and settings (no torch).

The test split (held out before folding, one rule):

- ``data.test_names: [a, b]`` or ``data.test_list: file.txt`` (one name a line, ``#``
  comments; relative to ``data.root``): exactly those samples (file stems);
- ``data.test_groups: [g1, g2]``: every sample whose ``cv.group_column`` is one of them;
- else ``data.test_fraction`` (0.2): ``round(f * n)`` random samples; with
  ``cv.fold_method: group`` whole groups instead, until they hold that many.

The folds of the rest (``cv.fold_method``; run ``k`` validates on fold ``k``'s samples and
trains on the rest of the train split):

- ``kfold``: the train split shuffled and cut into ``n_folds`` disjoint folds;
- ``shuffle``: ``n_folds`` independent random validation sets of ``cv.validation_fraction``
  of the train split (they may overlap);
- ``stratified``: disjoint folds with each stratum spread evenly; a sample's stratum is
  whether its mask has foreground (binary) or its dominant class, the most frequent non-zero
  class among its valid pixels, 0 when it has none (multi-class);
- ``group``: disjoint folds of whole groups of ``cv.group_column`` (``metadata.csv``, or
  ``data.synthetic.groups``): no group is in both a run's training and validation samples.

All of it is deterministic from the sweep seed. :func:`describe_splits` names the samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smptune.errors import ConfigError
from smptune.trainable import SweepSettings
from smptune.training.data import load_data
from smptune.training.dataspec import IGNORE, DataSpec
from smptune.training.decode import SUFFIXES
from smptune.training.folds import (
    Split,
    group_folds,
    group_test_split,
    kfold,
    shuffle_folds,
    stratified_folds,
    train_test_split,
)
from smptune.training.samples import SegmentationData
from smptune.training.settings import CvSpec, RunSettings, run_settings


@dataclass(frozen=True)
class SplitPlan:
    """Sorted sample indices: the test split, the train split and each fold's validation."""

    test: tuple[int, ...]
    train: tuple[int, ...]
    folds: tuple[tuple[int, ...], ...]

    def fold(self, k: int) -> Split:
        """Run ``k``: trains on the train split less fold ``k``, validates on fold ``k``."""
        if not 0 <= k < len(self.folds):
            raise ConfigError(f"cv.n_folds: fold {k} does not exist with {len(self.folds)} folds")
        held = set(self.folds[k])
        return Split(train=tuple(i for i in self.train if i not in held), evaluate=self.folds[k])

    def retrain(self) -> Split:
        """The whole train split for training, the test split for evaluation."""
        return Split(train=self.train, evaluate=self.test)


def strata(data: SegmentationData) -> list[int]:
    """Each sample's stratum: 1 if its mask has foreground, else 0 (binary); its dominant
    non-zero class, else 0 (multi-class)."""
    out = []
    for mask in data.masks:
        counts = np.bincount(np.asarray(mask).ravel(), minlength=IGNORE + 1)[: max(2, data.classes)]
        counts[0] = 0
        out.append(int(counts.argmax()) if counts.any() else 0)
    return out


def _test_names(spec: DataSpec) -> tuple[tuple[str, ...], str] | None:
    if spec.test_names is not None:
        return spec.test_names, "data.test_names"
    if spec.test_list is None:
        return None
    try:
        lines = Path(spec.test_list).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"data.test_list: cannot read {spec.test_list}: {exc}") from exc
    names = []
    for line in lines:
        name = line.split("#", 1)[0].strip()
        if name:
            stem = Path(name).stem if Path(name).suffix.lower() in SUFFIXES else name
            names.append(stem)
    if not names:
        raise ConfigError(f"data.test_list: {spec.test_list} names no samples")
    return tuple(names), "data.test_list"


def _test_split(data: SegmentationData, spec: DataSpec, cv: CvSpec, seed: int) -> tuple[int, ...]:
    named = _test_names(spec)
    if named is not None:
        names, key = named
        index = {name: i for i, name in enumerate(data.names)}
        unknown = next((name for name in names if name not in index), None)
        if unknown is not None:
            raise ConfigError(f"{key}: no sample named {unknown!r} in {data.source}")
        test = tuple(sorted({index[name] for name in names}))
    elif spec.test_groups is not None:
        groups = data.column(cv.group_column, "data.test_groups")
        unknown = next((g for g in spec.test_groups if g not in set(groups)), None)
        if unknown is not None:
            known = sorted(set(groups))
            raise ConfigError(
                f"data.test_groups: no sample has {cv.group_column} = {unknown!r}; groups: "
                f"{', '.join(known[:10])}{' ...' if len(known) > 10 else ''}"
            )
        wanted = set(spec.test_groups)
        test = tuple(i for i, g in enumerate(groups) if g in wanted)
    elif cv.method == "group":
        groups = data.column(cv.group_column, "cv.group_column")
        test = group_test_split(data.n, groups, seed, spec.test_fraction, cv.group_column)
    else:
        return train_test_split(data.n, seed, spec.test_fraction).evaluate
    if len(test) >= data.n:
        key = named[1] if named else "data.test_groups"
        raise ConfigError(f"{key}: the test split holds every sample; none is left to train on")
    return test


def plan_splits(data: SegmentationData, rs: RunSettings) -> SplitPlan:
    """The test split and the folds of ``data`` under ``rs`` (see the module docstring)."""
    cv = rs.cv
    test = _test_split(data, rs.data, cv, rs.seed)
    held = set(test)
    train = tuple(i for i in range(data.n) if i not in held)
    if cv.method == "kfold":
        folds = kfold(train, cv.n_folds, rs.seed)
    elif cv.method == "shuffle":
        folds = shuffle_folds(train, cv.n_folds, rs.seed, cv.validation_fraction)
    elif cv.method == "stratified":
        folds = stratified_folds(train, strata(data), cv.n_folds, rs.seed)
    else:
        groups = data.column(cv.group_column, "cv.group_column")
        folds = group_folds(train, groups, cv.n_folds, rs.seed, cv.group_column)
    return SplitPlan(test=test, train=train, folds=tuple(folds))


_PLANS: dict[str, tuple[SegmentationData, SplitPlan]] = {}


def splits_for(settings: SweepSettings) -> tuple[RunSettings, SegmentationData, SplitPlan]:
    """Checked settings, the data and its split plan (the plan memoised per process)."""
    rs = run_settings(settings)
    data = load_data(rs.data)
    key = repr((rs.data.cache_key(), rs.cv, rs.seed))
    known = _PLANS.get(key)
    if known is None or known[0] is not data:  # the data was read again
        known = _PLANS[key] = (data, plan_splits(data, rs))
    return rs, data, known[1]


def describe_splits(settings: SweepSettings) -> dict[str, object]:
    """The samples (names) of the test split and of each fold's validation set, as JSON data:
    ``{"fold_method", "seed", "group_column" (for group splits), "test": [...],
    "train": [...], "folds": [{"fold": k, "validation": [...]}, ...]}``."""
    rs, data, plan = splits_for(settings)
    out: dict[str, object] = {"fold_method": rs.cv.method, "seed": rs.seed}
    if rs.cv.method == "group" or rs.data.test_groups is not None:
        out["group_column"] = rs.cv.group_column
    out["test"] = [data.names[i] for i in plan.test]
    out["train"] = [data.names[i] for i in plan.train]
    out["folds"] = [
        {"fold": k, "validation": [data.names[i] for i in fold]}
        for k, fold in enumerate(plan.folds)
    ]
    return out
