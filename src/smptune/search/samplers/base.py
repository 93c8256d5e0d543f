"""The sampler interface: what every sampler of a sweep does, and the settings it checks.

A sampler chooses configurations at one of two moments, or both:

- planned at submit (:meth:`Sampler.plan`): the configurations fixed when the sweep is
  submitted and recorded with it. Random and grid search plan every one; an adaptive sampler
  plans only the enqueued ones (and an open-ended sweep, with no ``n_trials``, too);
- asked at start (:meth:`Sampler.ask`): trial N's configuration chosen when a worker starts
  it, recorded once (a second copy of the trial gets the same). The Optuna-backed samplers
  ask a worker's view of the study (:mod:`smptune.search.study_view`); random search draws
  the seeded sample of trial N of an open-ended sweep.

Each sampler is a small frozen value: its name, its options checked against the class it
configures, with the defaults that differ from that class's
(:meth:`Sampler.from_options`), round-tripping through :meth:`Sampler.to_config`.
:mod:`smptune.search.samplers.registry` names every one. No Optuna import at module level:
the producer validates configs without it.
"""

from __future__ import annotations

import copy
from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from smptune.errors import ConfigError
from smptune.params import Params, ParamsView
from smptune.search.conditions import Cases, is_active
from smptune.search.distributions import Distribution
from smptune.search.options import Check, OptionValue, check_options
from smptune.search.sampling import sample_configurations

__all__ = ["Asking", "PlanSettings", "Sampler", "StudyAsk", "probe"]


class PlanSettings(Protocol):
    """What a sampler reads of a sweep's config (a :class:`~smptune.config.SweepConfig` is
    one)."""

    @property
    def hyperparameters(self) -> Mapping[str, Distribution]: ...
    @property
    def seed(self) -> int: ...
    @property
    def n_trials(self) -> int | str | None: ...
    @property
    def enqueue(self) -> list[Params]: ...


class StudyAsk(Protocol):
    """A worker's view of a sweep's study (:class:`~smptune.search.study_view.StudyView`)."""

    def ask(self, trial: int, defaults: ParamsView) -> tuple[Params, Any]: ...
    def settle(self, trial: int, asked: Any, chosen: ParamsView, recorded: Any) -> None: ...


class Asking(Protocol):
    """One trial's ask on a worker: its number, its trainable's defaults, the configuration
    recorded for it, and the study view to ask (:mod:`smptune.worker.asking` has the one)."""

    @property
    def trial(self) -> int: ...
    @property
    def defaults(self) -> ParamsView: ...
    def recorded(self) -> Params | None:
        """The configuration recorded for the trial, if any."""

    def record(self, params: Params) -> Params:
        """Record ``params`` unless one is recorded already; the one recorded."""

    def view(self) -> StudyAsk:
        """This worker's view of the sweep's study, up to date with the store."""


@dataclass(frozen=True)
class Sampler(ABC):
    """A sweep's sampler with its options (see the module)."""

    #: The name a config gives it (``sampler: <name>``).
    name: ClassVar[str]
    #: Configurations are asked when each trial starts, not listed at submit.
    adaptive: ClassVar[bool] = False
    #: Option name -> its check; the options the sampler's class takes.
    option_checks: ClassVar[Mapping[str, Check]] = {}
    #: The options' defaults that differ from its class's.
    option_defaults: ClassVar[Mapping[str, OptionValue]] = {}
    #: The word ``n_trials`` takes for this sampler, which then lists its own trials
    #: (``n_trials: grid``); None: ``n_trials`` is a number, or absent.
    n_trials_word: ClassVar[str | None] = None
    #: Why ``enqueue`` is refused for this sampler; None: accepted.
    enqueue_refused: ClassVar[str | None] = None
    #: Past :data:`~smptune.search.study_view.GP_LIMIT` finished trials, asks a subset
    #: (a Gaussian process is cubic in its trials).
    asks_a_subset: ClassVar[bool] = False
    #: Its Optuna sampler honours constraints: an out-of-memory (``infeasible``) trial enters
    #: its study as a violated constraint, else as failed.
    honours_constraints: ClassVar[bool] = False

    options: dict[str, OptionValue] = field(default_factory=dict)

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> Sampler:
        """The sampler with ``options`` checked (``sampler.<option>`` named in errors)."""
        checks, defaults = cls.option_checks, cls.option_defaults
        return cls(check_options("sampler", cls.name, options, checks, defaults))

    @property
    def kind(self) -> str:
        return self.name

    def to_config(self) -> str | dict[str, OptionValue]:
        return {"type": self.name, **self.options} if self.options else self.name

    def check_n_trials(self, n_trials: int | str | None) -> None:
        """Raise :class:`ConfigError` if ``n_trials`` does not go with this sampler."""
        if isinstance(n_trials, str) and n_trials != self.n_trials_word:
            raise ConfigError(f"sampler: {self.name!r} conflicts with n_trials: {n_trials!r}")

    def asks_at_start(self, open_ended: bool) -> bool:
        """Whether trials without a planned configuration are asked one when they start
        (``open_ended``: the sweep has no ``n_trials``)."""
        return self.adaptive or open_ended

    def plan(self, search: PlanSettings) -> list[Params]:
        """The configurations fixed when the sweep is submitted (the enqueued ones first),
        before the trainable's defaults complete them."""
        return copy.deepcopy(search.enqueue)

    def probe(self, search: PlanSettings) -> list[Params]:
        """Configurations it may ask at start, to validate before anything is sent."""
        return probe(search)

    def planned_after(self, search: PlanSettings, drawn: int, n: int) -> list[Params]:
        """``n`` candidates for the configurations a sweep extended past its ``drawn``
        planned ones trains (``producer extend``), in order, before the trainable's
        defaults complete them; the caller skips those the sweep has already trained."""
        raise ConfigError(f"sampler {self.name!r} has no more configurations to plan")

    def ask(self, search: PlanSettings, asking: Asking) -> Params:
        """Trial ``asking.trial``'s configuration, chosen now and recorded once."""
        raise ValueError(f"sampler {self.name!r} plans every configuration at submit")

    def build(self, seed: int) -> Any:
        """The Optuna sampler (adaptive kinds only)."""
        raise ValueError(f"sampler {self.name!r} is not adaptive")


def probe(search: PlanSettings, n: int = 16) -> list[Params]:
    """Configurations a sampler that asks at start may choose, to validate before anything
    is sent: ``n`` random ones, plus one per listed value not among them."""
    samples = sample_configurations(search.hyperparameters, n, search.seed)
    for name, dist in search.hyperparameters.items():
        for value, base in _listed_values(name, dist, samples):
            if not any(s.get(name) == value for s in samples):
                samples.append({**base, name: value})
    return samples


def _listed_values(
    name: str, dist: Distribution, samples: list[Params]
) -> list[tuple[Any, Params]]:
    """Each value listed by entry ``name`` (in every case of a case table), with a sample in
    which the entry takes that list; a list no sample reaches is left out."""
    lists: list[tuple[Distribution, list[Params]]]
    if isinstance(dist, Cases):
        lists = [
            (
                case,
                [
                    s
                    for s in samples
                    if is_active(dist, s) and dist.case_for(s[dist.parent]) is case
                ],
            )
            for _, case in dist.cases
        ]
    else:
        lists = [(dist, [s for s in samples if name in s])]
    return [(value, bases[0]) for d, bases in lists if bases for value in getattr(d, "choices", ())]
