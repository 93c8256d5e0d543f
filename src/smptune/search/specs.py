"""How a sweep prunes: the pruner, as a small validated spec.

``pruner: none | median | wilcoxon | asha | hyperband`` (or ``{type: median, <option>:
...}``). Options are checked against the class they configure (Optuna's, or
:class:`~smptune.search.halving.Halving` for the successive-halving pruners) and round-trip
through :meth:`PrunerSpec.to_config`. The sampler is :mod:`smptune.search.samplers`'s. No
Optuna import here: the producer validates configs without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from smptune.search.options import (
    FACTOR,
    INT,
    POSITIVE,
    PROB,
    Check,
    OptionValue,
    check_options,
    quiet_optuna,
    read_kind,
)

#: Pruners that decide at epoch rungs inside each run (successive halving, in Redis).
HALVING_PRUNERS = ("asha", "hyperband")
PRUNERS = ("none", "median", "wilcoxon", *HALVING_PRUNERS)
#: Where a pruner decides: after each fold, or after each epoch inside a run.
PRUNE_AT = ("fold", "epoch")

_AT: Check = (lambda v: v in PRUNE_AT, " or ".join(repr(a) for a in PRUNE_AT))
_MAX_RESOURCE: Check = (
    lambda v: v == "auto" or POSITIVE[0](v),
    "an integer >= 1 or 'auto' (every epoch of every run of a trial)",
)
_HALVING_OPTIONS: dict[str, Check] = {
    "min_resource": (
        lambda v: v == "auto" or POSITIVE[0](v),
        "an integer >= 1 or 'auto' (training.max_epochs / reduction_factor)",
    ),
    "reduction_factor": FACTOR,
    "max_resource": _MAX_RESOURCE,
    "bootstrap_count": (
        lambda v: v == "auto" or INT[0](v),
        "an integer >= 0 or 'auto' (reduction_factor)",
    ),
}
# Option name -> (type check, description) of each pruner we expose.
_OPTIONS: dict[str, dict[str, Check]] = {
    "none": {},
    "median": {
        "n_startup_trials": INT,
        "n_warmup_steps": INT,
        "n_min_trials": INT,
        "at": _AT,
    },
    "wilcoxon": {"p_threshold": PROB, "n_startup_steps": INT},
    "asha": _HALVING_OPTIONS,
    "hyperband": _HALVING_OPTIONS,
}
#: ASHA's and Hyperband's defaults, chosen on learning curves recorded from real data
#: (docs/performance.md, "Successive halving on real curves").
_HALVING_DEFAULTS: dict[str, OptionValue] = {
    "min_resource": "auto",
    "reduction_factor": 3,
    "max_resource": "auto",
    "bootstrap_count": "auto",
}
#: Defaults that differ from Optuna's: a sweep has few trials, so start learning early.
_DEFAULTS: dict[str, dict[str, OptionValue]] = {
    "median": {"n_startup_trials": 5, "n_warmup_steps": 0, "at": "fold"},
    "wilcoxon": {"p_threshold": 0.1, "n_startup_steps": 2},
    "asha": _HALVING_DEFAULTS,
    "hyperband": _HALVING_DEFAULTS,
}


@dataclass(frozen=True)
class PrunerSpec:
    """Which pruner stops a trial, with its options: ``median`` and ``wilcoxon`` (Optuna's)
    after each fold (``median`` with ``at: epoch`` after each epoch), ``asha`` and
    ``hyperband`` at epoch rungs inside each run."""

    kind: str = "none"
    options: dict[str, OptionValue] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: object) -> PrunerSpec:
        kind, given = read_kind("pruner", raw, PRUNERS)
        return cls(
            kind, check_options("pruner", kind, given, _OPTIONS[kind], _DEFAULTS.get(kind, {}))
        )

    @property
    def enabled(self) -> bool:
        return self.kind != "none"

    @property
    def halving(self) -> bool:
        """ASHA or Hyperband: decided at epoch rungs (:mod:`smptune.search.halving`)."""
        return self.kind in HALVING_PRUNERS

    @property
    def at(self) -> str:
        """``epoch`` when the pruner decides inside runs, else ``fold``."""
        return "epoch" if self.halving else str(self.options.get("at", "fold"))

    def to_config(self) -> str | dict[str, OptionValue]:
        return {"type": self.kind, **self.options} if self.options else self.kind

    def build(self) -> Any:
        """The Optuna pruner of ``median`` and ``wilcoxon`` (a no-op one otherwise)."""
        import optuna

        with quiet_optuna():
            if self.kind == "median":
                counts = {k: int(v) for k, v in self.options.items() if k != "at"}
                return optuna.pruners.MedianPruner(**counts)
            if self.kind == "wilcoxon":
                return optuna.pruners.WilcoxonPruner(
                    p_threshold=float(self.options["p_threshold"]),
                    n_startup_steps=int(self.options["n_startup_steps"]),
                )
            return optuna.pruners.NopPruner()
