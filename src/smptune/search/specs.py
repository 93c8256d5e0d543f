"""How a sweep searches: the sampler and the pruner, as small validated specs.

``sampler: random | grid | tpe | gp | cmaes`` (or a mapping ``{type: tpe, <option>: ...}``)
and ``pruner: none | median | wilcoxon | asha | hyperband`` (or ``{type: median, <option>:
...}``). Options are checked against the class they configure (Optuna's, or
:class:`~smptune.search.halving.Halving` for the successive-halving pruners); both round-trip
through :meth:`to_config`. No Optuna import here: the producer validates configs without it.
"""

from __future__ import annotations

import contextlib
import numbers
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from smptune.errors import ConfigError

#: Samplers that choose a configuration when its trial starts, from the finished trials.
ADAPTIVE_SAMPLERS = ("tpe", "gp", "cmaes")
SAMPLERS = ("random", "grid", *ADAPTIVE_SAMPLERS)
#: Pruners that decide at epoch rungs inside each run (successive halving, in Redis).
HALVING_PRUNERS = ("asha", "hyperband")
PRUNERS = ("none", "median", "wilcoxon", *HALVING_PRUNERS)
#: Where a pruner decides: after each fold, or after each epoch inside a run.
PRUNE_AT = ("fold", "epoch")

# Option name -> (type check, description) of each Optuna class we expose.
# (The casts: typeshed's numbers.Integral/Real declare no ``>=``/``>`` and no comparison
# with an int on the left; every concrete integral and real type has them.)
_INT = (
    lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and cast(int, v) >= 0,
    "an integer >= 0",
)
_PROB = (
    lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 < cast(float, v) < 1,
    "a number in (0, 1)",
)
_BOOL = (lambda v: isinstance(v, bool), "true or false")
_POSITIVE = (
    lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and cast(int, v) >= 1,
    "an integer >= 1",
)
_FACTOR = (
    lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and cast(int, v) >= 2,
    "an integer >= 2",
)
_AT = (lambda v: v in PRUNE_AT, " or ".join(repr(a) for a in PRUNE_AT))
_MAX_RESOURCE = (
    lambda v: v == "auto" or _POSITIVE[0](v),
    "an integer >= 1 or 'auto' (every epoch of every run of a trial)",
)
_HALVING_OPTIONS = {
    "min_resource": (
        lambda v: v == "auto" or _POSITIVE[0](v),
        "an integer >= 1 or 'auto' (training.max_epochs / reduction_factor)",
    ),
    "reduction_factor": _FACTOR,
    "max_resource": _MAX_RESOURCE,
    "bootstrap_count": (
        lambda v: v == "auto" or _INT[0](v),
        "an integer >= 0 or 'auto' (reduction_factor)",
    ),
}
_OPTIONS: dict[str, dict[str, tuple[Any, str]]] = {
    "random": {},
    "grid": {},
    "tpe": {
        "n_startup_trials": _INT,
        "n_ei_candidates": _INT,
        "multivariate": _BOOL,
        "constant_liar": _BOOL,
    },
    "gp": {"n_startup_trials": _INT},
    "cmaes": {"n_startup_trials": _INT},
    "none": {},
    "median": {
        "n_startup_trials": _INT,
        "n_warmup_steps": _INT,
        "n_min_trials": _INT,
        "at": _AT,
    },
    "wilcoxon": {"p_threshold": _PROB, "n_startup_steps": _INT},
    "asha": _HALVING_OPTIONS,
    "hyperband": _HALVING_OPTIONS,
}
#: ASHA's and Hyperband's defaults, chosen on learning curves recorded from real data
#: (docs/performance.md, "Successive halving on real curves").
_HALVING_DEFAULTS = {
    "min_resource": "auto",
    "reduction_factor": 3,
    "max_resource": "auto",
    "bootstrap_count": "auto",
}
#: Defaults that differ from Optuna's: a sweep has few trials, so start learning early.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "tpe": {"n_startup_trials": 5, "constant_liar": True, "multivariate": True},
    "gp": {"n_startup_trials": 5},
    "cmaes": {"n_startup_trials": 5},
    "median": {"n_startup_trials": 5, "n_warmup_steps": 0, "at": "fold"},
    "wilcoxon": {"p_threshold": 0.1, "n_startup_steps": 2},
    "asha": _HALVING_DEFAULTS,
    "hyperband": _HALVING_DEFAULTS,
}


def _parse(key: str, raw: Any, known: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    if isinstance(raw, Mapping):
        options = dict(raw)
        kind = options.pop("type", None)
        if "type" not in raw:
            raise ConfigError(f"{key}: a mapping needs 'type' (one of {', '.join(known)})")
    else:
        kind, options = raw, {}
    if kind is None or (kind is False and key == "pruner"):
        kind = known[0]
    if not isinstance(kind, str) or kind.strip().lower() not in known:
        raise ConfigError(f"{key}: must be one of {', '.join(known)}, got {kind!r}")
    kind = kind.strip().lower()
    allowed = _OPTIONS[kind]
    for name, value in options.items():
        if name not in allowed:
            listed = ", ".join(allowed) or "none"
            raise ConfigError(f"{key}.{name}: unknown option for {kind} (known: {listed})")
        check, described = allowed[name]
        if not check(value):
            raise ConfigError(f"{key}.{name}: must be {described}, got {value!r}")
    return kind, {**_DEFAULTS.get(kind, {}), **options}


@dataclass(frozen=True)
class SamplerSpec:
    """Which sampler picks the configurations, with its Optuna options."""

    kind: str = "random"
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any) -> SamplerSpec:
        return cls(*_parse("sampler", raw, SAMPLERS))

    @property
    def adaptive(self) -> bool:
        """Configurations are asked when each trial starts, not listed at submit."""
        return self.kind in ADAPTIVE_SAMPLERS

    def to_config(self) -> str | dict[str, Any]:
        return {"type": self.kind, **self.options} if self.options else self.kind

    def build(self, seed: int) -> Any:
        """The Optuna sampler (adaptive kinds only)."""
        import optuna

        classes = {
            "tpe": optuna.samplers.TPESampler,
            "gp": optuna.samplers.GPSampler,
            "cmaes": optuna.samplers.CmaEsSampler,
        }
        if self.kind not in classes:
            raise ValueError(f"sampler {self.kind!r} is not adaptive")
        with _quiet_optuna():
            return classes[self.kind](seed=seed, **self.options)


@dataclass(frozen=True)
class PrunerSpec:
    """Which pruner stops a trial, with its options: ``median`` and ``wilcoxon`` (Optuna's)
    after each fold (``median`` with ``at: epoch`` after each epoch), ``asha`` and
    ``hyperband`` at epoch rungs inside each run."""

    kind: str = "none"
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any) -> PrunerSpec:
        return cls(*_parse("pruner", raw, PRUNERS))

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

    def to_config(self) -> str | dict[str, Any]:
        return {"type": self.kind, **self.options} if self.options else self.kind

    def build(self) -> Any:
        """The Optuna pruner of ``median`` and ``wilcoxon`` (a no-op one otherwise)."""
        import optuna

        with _quiet_optuna():
            if self.kind == "median":
                options = {k: v for k, v in self.options.items() if k != "at"}
                return optuna.pruners.MedianPruner(**options)
            if self.kind == "wilcoxon":
                return optuna.pruners.WilcoxonPruner(**self.options)
            return optuna.pruners.NopPruner()


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna marks some samplers and pruners experimental: we pin its version instead."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield
