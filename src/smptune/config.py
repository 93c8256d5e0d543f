"""The sweep config: load a YAML or TOML file, validate it, resolve every default.

Every problem is one :class:`~smptune.errors.ConfigError` whose message starts with the dotted
key at fault (``cv.n_folds: must be an integer >= 2, got 1``). Hyphens in keys become
underscores (``n-trials`` is ``n_trials``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from smptune.config_fields import (
    CvSettings,
    fraction_field,
    host_memory_gb,
    int_field,
    is_int,
    normalise_keys,
    on_oom,
    parse_duration,
    parse_time_budget,
    precision,
    requirements_field,
    section,
    str_field,
)
from smptune.config_files import config_to_yaml, read_best_config, read_toml, read_yaml
from smptune.config_objectives import check_objectives, objective_scoring
from smptune.errors import ConfigError
from smptune.messages import DEFAULT_QUEUE
from smptune.params import Params
from smptune.requirements import Requirements
from smptune.retries import DEFAULT_MAX_ATTEMPTS
from smptune.search.conditions import check_space
from smptune.search.dialects import parse_distribution
from smptune.search.distributions import Distribution, Space, json_value, space_to_dict
from smptune.search.halving import Halving
from smptune.search.objectives import Objectives
from smptune.search.samplers.base import Sampler
from smptune.search.samplers.registry import default_sampler, n_trials_words, parse_sampler
from smptune.search.sampling import MAX_PLANNED, complete_configuration
from smptune.search.scoring import RETRAIN_EPOCHS, Scoring
from smptune.search.specs import PrunerSpec
from smptune.trainable import SEGMENTATION_TRAINABLE, SweepSettings, data_root_base

__all__ = [
    "DEFAULT_TRIAL_TIMEOUT_S",
    "KNOWN_KEYS",
    "SweepConfig",
    "config_from_dict",
    "config_to_yaml",
    "load_config",
]

DEFAULT_TRIAL_TIMEOUT_S = 6 * 3600.0
#: Trials of a sweep that names neither ``n_trials`` nor a ``time_budget``.
DEFAULT_N_TRIALS = 10
KNOWN_KEYS = (
    "name",
    "trainable",
    "n_trials",
    "sampler",
    "seed",
    "metric",
    "mode",
    "combine",
    "metrics",
    "modes",
    "select",
    "pruner",
    "time_budget",
    "queue",
    "trial_timeout",
    "data",
    "class_names",
    "cv",
    "training",
    "retrain_and_test",
    "retrain_epochs",
    "ensemble",
    "max_attempts",
    "on_oom",
    "requires",
    "enqueue",
    "hyperparameters",
)
_TRAINABLE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# --- the config --------------------------------------------------------------------------


@dataclass
class SweepConfig:
    """A validated sweep config with every default resolved.

    Construction validates and normalises (idempotently); hyperparameter entries may be
    :class:`~smptune.search.distributions.Distribution` objects or raw darts entries.
    """

    hyperparameters: Space
    name: str = "sweep"
    trainable: str = SEGMENTATION_TRAINABLE
    #: None: open-ended (with a ``time_budget``: trials start until it is spent), else 10.
    n_trials: int | Literal["grid"] | None = None
    seed: int = 0
    metric: str | list[str] = "iou"
    mode: Literal["max", "min"] | None = None
    combine: str | None = None
    #: Two or more objectives, searched together (``modes``: one each; ``select``: the rule
    #: that picks the final trial), instead of ``metric``.
    metrics: list[str] | None = None
    modes: list[str] | None = None
    select: Any = None
    sampler: Any = None
    pruner: Any = None
    time_budget: float | str | None = None
    queue: str = DEFAULT_QUEUE
    trial_timeout: float = DEFAULT_TRIAL_TIMEOUT_S
    data: dict[str, Any] = field(default_factory=lambda: {"synthetic": {}})
    #: What people read for class indices (tables, plots, log lines); binary data names its
    #: background and foreground.
    class_names: list[str] | None = None
    cv: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    retrain_and_test: bool = True
    #: How many epochs retrain-and-test trains: the mean, median or max of the best trial's
    #: runs' best epochs.
    retrain_epochs: str = "max"
    #: Whether retrain-and-test also tests the best trial's fold models together.
    ensemble: bool = True
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    #: Out of memory: ``infeasible``, or ``halve_batch`` (tried once more with half the batch).
    on_oom: str = "infeasible"
    #: Configurations the first trials train (a list, or a ``best_config.yaml`` path).
    enqueue: Any = None
    #: What a trial needs of its worker (see :mod:`smptune.requirements`).
    requires: Any = None
    source: Path | None = field(default=None, compare=False, repr=False)
    scoring: Scoring = field(init=False, compare=False, repr=False)
    objectives: Objectives | None = field(init=False, compare=False, repr=False)
    sampler_spec: Sampler = field(init=False, compare=False, repr=False)
    pruner_spec: PrunerSpec = field(init=False, compare=False, repr=False)
    cv_settings: CvSettings = field(init=False, compare=False, repr=False)
    requirements: Requirements = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.name = str_field("name", self.name)
        self.trainable = str_field("trainable", self.trainable)
        if not _TRAINABLE_RE.match(self.trainable):
            raise ConfigError(
                f"trainable: {self.trainable!r} is not of the form 'package.module:object'"
            )
        if self.time_budget is not None:
            self.time_budget = parse_time_budget(self.time_budget)
        if self.n_trials is None and self.time_budget is None:
            self.n_trials = DEFAULT_N_TRIALS
        words = n_trials_words()
        if self.n_trials is not None and self.n_trials not in words:
            if not is_int(self.n_trials) or int(self.n_trials) < 1:
                raise ConfigError(
                    f"n_trials: must be an integer >= 1 or {' or '.join(map(repr, words))}, "
                    f"got {self.n_trials!r}"
                )
            self.n_trials = int(self.n_trials)
            if self.n_trials > MAX_PLANNED:
                raise ConfigError(
                    f"n_trials: {self.n_trials:,} is more than the {MAX_PLANNED:,} trials a "
                    "sweep plans; split the search into several sweeps"
                )
        self.seed = int_field("seed", self.seed, 0)
        self._resolve_search()
        if isinstance(self.metric, (list, tuple)):
            self.metric = [str_field(f"metric[{i}]", m) for i, m in enumerate(self.metric)]
            if len(self.metric) == 1:
                self.metric = self.metric[0]
        else:
            self.metric = str_field("metric", self.metric)
        single = (self.metric, self.mode, self.combine)
        self.objectives = check_objectives(
            self.metrics, self.modes, self.select, single, self.sampler_spec, self.pruner_spec
        )
        if self.objectives is not None:
            self.scoring = objective_scoring(self.objectives)
            self.metrics, self.modes = list(self.objectives.names), list(self.objectives.modes)
            self.select, self.metric = self.objectives.select.to_dict(), self.scoring.names[0]
        else:
            self.scoring = Scoring.from_config(self.metric, self.mode, self.combine)
            self.combine = self.scoring.combine
        self.mode = self.scoring.mode
        self.queue = str_field("queue", self.queue)
        self.trial_timeout = parse_duration("trial_timeout", self.trial_timeout)
        if not isinstance(self.retrain_and_test, bool):
            raise ConfigError(
                f"retrain_and_test: must be true or false, got {self.retrain_and_test!r}"
            )
        self.max_attempts = int_field("max_attempts", self.max_attempts, 1)
        self.on_oom = on_oom(self.on_oom, self.sampler_spec.adaptive, self.sampler_spec.name)
        if not isinstance(self.ensemble, bool):
            raise ConfigError(f"ensemble: must be true or false, got {self.ensemble!r}")
        if self.retrain_epochs not in RETRAIN_EPOCHS:
            raise ConfigError(
                f"retrain_epochs: must be one of {', '.join(RETRAIN_EPOCHS)}, "
                f"got {self.retrain_epochs!r}"
            )
        self.data = self._resolve_data(self.data)
        self.class_names = self._resolve_class_names(self.class_names)
        self.cv = self._resolve_cv(self.cv)
        self.cv_settings = CvSettings(self.cv["n_folds"], self.cv["n_randoms"])
        self.training = self._resolve_training(self.training)
        self.hyperparameters = self._resolve_space(self.hyperparameters)
        self.enqueue = self._resolve_enqueue(self.enqueue)
        self.requirements = requirements_field(self.requires, self.hyperparameters)
        self.requires = self.requirements.to_config() if self.requirements else None
        if self.pruner_spec.halving:  # its rungs must fit the runs' epochs
            Halving.from_spec(self.pruner_spec, self.training["max_epochs"], self.n_runs)

    def _resolve_search(self) -> None:
        """``sampler`` agrees with ``n_trials``; ``pruner`` and ``time_budget`` are valid."""
        if self.sampler is None:
            self.sampler = default_sampler(self.n_trials)
        spec = parse_sampler(self.sampler)
        spec.check_n_trials(self.n_trials)
        self.sampler_spec = spec
        self.sampler = spec.name
        self.pruner_spec = PrunerSpec.parse(self.pruner)
        self.pruner = self.pruner_spec.kind

    def _resolve_data(self, raw: Any) -> dict[str, Any]:
        data = section("data", {"synthetic": {}} if raw is None else raw)
        if "root" in data:
            root = Path(str_field("data.root", data["root"])).expanduser()
            # A relative root stays relative when this machine sets $SMPTUNE_DATA_ROOT: each
            # machine then reads it below its own data folder.
            if not root.is_absolute() and self.source is not None and data_root_base() is None:
                root = (Path(self.source).parent / root).resolve()
            data["root"] = str(root)
        explicit = [
            k for k in ("test_names", "test_list", "test_groups") if data.get(k) is not None
        ]
        if explicit and "test_fraction" in data:
            raise ConfigError(
                f"data.test_fraction: conflicts with data.{explicit[0]}; the test split is "
                "either a fraction or an explicit set, not both"
            )
        if not explicit:
            data["test_fraction"] = fraction_field(
                "data.test_fraction", data.get("test_fraction", 0.2)
            )
        return data

    def _resolve_class_names(self, raw: Any) -> list[str] | None:
        """``class_names``: one distinct, non-empty name per class (``data.classes``, or the
        synthetic data's; binary data has two: background and foreground). The count is
        checked for the built-in trainable, whose data these keys describe."""
        if raw is None:
            return None
        synthetic = self.data.get("synthetic")
        classes = self.data.get(
            "classes", synthetic.get("classes", 1) if isinstance(synthetic, Mapping) else 1
        )
        builtin = self.trainable == SEGMENTATION_TRAINABLE
        expected = max(2, classes) if builtin and isinstance(classes, int) else None
        if not isinstance(raw, list) or not all(isinstance(n, str) and n.strip() for n in raw):
            raise ConfigError(f"class_names: must be a list of non-empty names, got {raw!r}")
        names = [n.strip() for n in raw]
        if expected is not None and len(names) != expected:
            needs = (
                f"{classes} classes need {classes}"
                if expected == classes
                else "binary data needs 2 (background, foreground)"
            )
            raise ConfigError(f"class_names: {len(names)} names, but {needs}")
        repeated = next((n for n in names if names.count(n) > 1), None)
        if repeated is not None:
            raise ConfigError(f"class_names: {repeated!r} names two classes")
        return names

    def _resolve_enqueue(self, raw: Any) -> list[Params]:
        """``enqueue``: a list of configurations (name -> value), or the path of a
        ``best_config.yaml`` (its fixed hyperparameters), each completed from the space (the
        entries it leaves out drawn from the seed) and checked against it."""
        if raw is None:
            return []
        if isinstance(raw, str):
            raw = [read_best_config(raw, self.source)]
        if not isinstance(raw, list) or not all(isinstance(c, Mapping) for c in raw):
            raise ConfigError(
                "enqueue: must be a list of configurations (name: value) or the path of a "
                f"best_config.yaml, got {raw!r}"
            )
        if self.sampler_spec.enqueue_refused is not None:
            raise ConfigError(f"enqueue: {self.sampler_spec.enqueue_refused}")
        if isinstance(self.n_trials, int) and len(raw) > self.n_trials:
            raise ConfigError(
                f"enqueue: {len(raw)} configurations, but n_trials is {self.n_trials}"
            )
        out = []
        for i, given in enumerate(raw):
            values = json_value(f"enqueue[{i}]", normalise_keys(f"enqueue[{i}]", given))
            seed = self.seed * 1_000_003 + i
            out.append(complete_configuration(self.hyperparameters, values, seed, f"enqueue[{i}]"))
        return out

    @staticmethod
    def _resolve_cv(raw: Any) -> dict[str, Any]:
        cv = section("cv", raw)
        cv["n_folds"] = int_field("cv.n_folds", cv.get("n_folds", 5), 2)
        cv["n_randoms"] = int_field("cv.n_randoms", cv.get("n_randoms", 1), 1)
        return cv

    @staticmethod
    def _resolve_training(raw: Any) -> dict[str, Any]:
        training = section("training", raw)
        training["max_epochs"] = int_field("training.max_epochs", training.get("max_epochs", 10), 1)
        training["early_stopping_patience"] = int_field(
            "training.early_stopping_patience", training.get("early_stopping_patience", 3), 0
        )
        training["precision"] = precision(training.get("precision", "auto"))
        training["checkpoint_every"] = int_field(
            "training.checkpoint_every", training.get("checkpoint_every", 1), 0
        )
        keep = training.get("keep_checkpoints", False)
        if not isinstance(keep, bool):
            raise ConfigError(f"training.keep_checkpoints: must be true or false, got {keep!r}")
        training["keep_checkpoints"] = keep
        if training.get("max_host_memory_gb") is not None:
            training["max_host_memory_gb"] = host_memory_gb(training["max_host_memory_gb"])
        return training

    @staticmethod
    def _resolve_space(raw: Any) -> Space:
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"hyperparameters: must be a mapping of name to search-space entry, got {raw!r}"
            )
        if not raw:
            raise ConfigError("hyperparameters: needs at least one entry")
        space: Space = {}
        for name, entry in normalise_keys("hyperparameters", raw).items():
            if not name:
                raise ConfigError("hyperparameters: a name must not be empty")
            space[name] = (
                entry if isinstance(entry, Distribution) else parse_distribution(name, entry)
            )
        return check_space(space)

    @property
    def is_grid(self) -> bool:
        return self.n_trials == "grid"

    @property
    def is_adaptive(self) -> bool:
        """Configurations are chosen when each trial starts (``sampler: tpe | gp | cmaes``)."""
        return self.sampler_spec.adaptive

    @property
    def is_open_ended(self) -> bool:
        """No ``n_trials``: trials keep starting until the time budget is spent."""
        return self.n_trials is None

    @property
    def time_budget_s(self) -> float | None:
        """The time budget in seconds, when given as a duration; else None."""
        return self.time_budget if isinstance(self.time_budget, float) else None

    @property
    def time_budget_factor(self) -> float | None:
        """``4`` for ``time_budget: 4x`` (four times the sweep's first complete trial)."""
        if isinstance(self.time_budget, str):
            return float(self.time_budget[:-1])
        return None

    @property
    def max_epochs(self) -> int:
        """Epochs of a full run (``training.max_epochs``)."""
        return int(self.training["max_epochs"])

    @property
    def checkpoint_every(self) -> int:
        """Epochs between a run's training checkpoints (0: only when it stops to be continued)."""
        return int(self.training["checkpoint_every"])

    @property
    def keep_checkpoints(self) -> bool:
        """Whether a run's last checkpoint stays once the run is recorded."""
        return bool(self.training["keep_checkpoints"])

    @property
    def n_runs(self) -> int:
        """Runs per trial: folds × seeds per fold."""
        return self.cv_settings.n_runs

    def settings(self) -> SweepSettings:
        """What a trainable needs: seed, metric, mode and the data / cv / training sections."""
        return SweepSettings(
            seed=self.seed,
            metric=self.scoring.names[0],
            mode=self.scoring.mode,
            scoring=self.scoring,
            data=copy.deepcopy(self.data),
            cv=copy.deepcopy(self.cv),
            training=copy.deepcopy(self.training),
            fold_models=self.fold_models,
            objectives=self.objectives.names if self.objectives else (),
        )

    @property
    def fold_models(self) -> bool:
        """Whether runs keep their best epoch's model for the fold ensemble."""
        return self.retrain_and_test and self.ensemble

    def configurations(self) -> list[Params]:
        """The configurations the sampler plans at submit: the full grid, or the enqueued
        ones and then ``n_trials`` seeded samples; only the enqueued ones where the rest
        are chosen when each trial starts (adaptive, open-ended)."""
        return self.sampler_spec.plan(self)

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config as plain data; ``config_from_dict`` reads it back equal."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "n_trials": self.n_trials,
            "sampler": self.sampler_spec.to_config(),
            "pruner": self.pruner_spec.to_config(),
            "time_budget": self.time_budget,
            "seed": self.seed,
            **(
                self.objectives.to_dict()
                if self.objectives
                else {"metric": copy.deepcopy(self.metric), "mode": self.mode}
                | {"combine": self.combine}
            ),
            "queue": self.queue,
            "trial_timeout": self.trial_timeout,
            "data": copy.deepcopy(self.data),
            **({"class_names": list(self.class_names)} if self.class_names else {}),
            "cv": copy.deepcopy(self.cv),
            "training": copy.deepcopy(self.training),
            "retrain_and_test": self.retrain_and_test,
            "retrain_epochs": self.retrain_epochs,
            "ensemble": self.ensemble,
            "max_attempts": self.max_attempts,
            "on_oom": self.on_oom,
            **({"enqueue": copy.deepcopy(self.enqueue)} if self.enqueue else {}),
            **({"requires": copy.deepcopy(self.requires)} if self.requires else {}),
            "hyperparameters": space_to_dict(self.hyperparameters),
        }


def config_from_dict(data: Mapping[str, object], source: Path | None = None) -> SweepConfig:
    """Validate a parsed config; ``source`` (the file) names the default sweep and anchors a
    relative ``data.root``."""
    if not isinstance(data, Mapping):
        where = f"{source}" if source is not None else "config"
        raise ConfigError(f"{where}: the top level must be a mapping, got {type(data).__name__}")
    raw = normalise_keys("config", data)
    if "hp_space" in raw:  # OpenVINO Training Extensions' name for the search space
        if "hyperparameters" in raw:
            raise ConfigError("hp_space: give hyperparameters or hp_space (its alias), not both")
        raw["hyperparameters"] = raw.pop("hp_space")
    unknown = [key for key in raw if key not in KNOWN_KEYS]
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: unknown key (known: {', '.join(KNOWN_KEYS)})"
            if len(unknown) == 1
            else f"config: unknown keys {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(KNOWN_KEYS)})"
        )
    several = raw.get("metrics") is not None
    both = [key for key in ("metric", "mode", "combine") if key in raw and several]
    if both:
        raise ConfigError(f"metrics: give metrics (with modes) or {both[0]}, not both")
    if "hyperparameters" not in raw:
        raise ConfigError("hyperparameters: missing; the config needs a hyperparameters mapping")
    word = parse_sampler(raw.get("sampler")).n_trials_word
    if word is not None and raw.get("n_trials") is None:
        raw["n_trials"] = word
    if "name" not in raw:
        raw["name"] = Path(source).stem if source is not None else "sweep"
    return SweepConfig(**raw, source=Path(source) if source is not None else None)


# --- files -------------------------------------------------------------------------------


def load_config(path: str | Path) -> SweepConfig:
    """Read a ``.yaml`` / ``.yml`` or ``.toml`` sweep config and validate it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        reader = read_yaml
    elif suffix == ".toml":
        reader = read_toml
    else:
        raise ConfigError(f"{path}: unknown config format {path.suffix!r} (use .yaml, .yml, .toml)")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc})") from None
    data = reader(path, text)
    if data is None:
        raise ConfigError(f"{path}: the config file is empty")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return config_from_dict(data, source=path.resolve())
