"""Search-space distributions: exact sampling, grids, the canonical form and Optuna
conversions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats

from smptune.errors import ConfigError
from smptune.search.conditions import Cases
from smptune.search.dialects import distribution_from_dict, parse_distribution
from smptune.search.distributions import (
    Choice,
    FloatRange,
    IntRange,
    IntUniform,
    LogUniform,
    QLogUniform,
    QUniform,
    ReversedLogUniform,
    Uniform,
    Value,
)

# --- round-trips of every kind -----------------------------------------------------------


def test_to_dict_is_the_explicit_darts_form():
    assert LogUniform(1e-4, 1e-2).to_dict() == {
        "distribution": "loguniform",
        "low": 1e-4,
        "high": 1e-2,
    }
    assert ReversedLogUniform(0.9, 0.99).to_dict() == {
        "distribution": "reversed-loguniform",
        "low": 0.9,
        "high": 0.99,
        "n": 1.0,
    }


EVERY_KIND = [
    Uniform(-1.0, 2.5),
    Uniform(0.0, 1.0, count=5),
    LogUniform(1e-5, 1e-1),
    LogUniform(1e-4, 1e-2, base=10, count=3),
    LogUniform(0.125, 2.0, base=2),
    ReversedLogUniform(0.5, 0.99, 1.0),
    ReversedLogUniform(0.0, 9.0, 10.0),
    IntUniform(-3, 7),
    IntUniform(2, 11, step=3),
    IntUniform(1, 100, log=True),
    IntUniform(1, 10, count=4),
    QUniform(0.1, 1.0, 0.1),
    QUniform(0, 12, 4),
    QLogUniform(0.0007, 0.07, 0.0001),
    QLogUniform(32, 128, 2, base=2),
    Choice(("Unet", None, 3, 0.5, True)),
    Choice(([1, 2], {"k": "v"})),
    Value({"nested": [1, "two"]}),
    Choice((None, "scse"), when={"model_arch": ["Unet", "UnetPlusPlus"], "augment": True}),
    Cases("model_arch", {"Unet": Choice(("resnet18", "resnet34")), "FPN": Uniform(0.0, 1.0)}),
    Cases("batch_size", ((8, Value(1)), (16, IntUniform(1, 3))), when={"augment": [True]}),
]


@pytest.mark.parametrize("dist", EVERY_KIND, ids=lambda d: d.kind)
def test_every_kind_round_trips_through_json(dist):
    # Given a distribution / When written as JSON and read back / Then it is equal
    data = json.loads(json.dumps(dist.to_dict()))
    assert data["distribution"] == dist.kind
    assert distribution_from_dict("x", data) == dist
    assert parse_distribution("x", data) == dist
    assert ("when" in data) == bool(dist.when)


def test_when_and_cases_are_written_canonically():
    dist = parse_distribution(
        "model_encoder",
        {"depends_on": "model-arch", "cases": {"Unet": ["a"], 8: 1}, "when": {"augment": True}},
    )
    assert dist.to_dict() == {
        "distribution": "cases",
        "depends_on": "model_arch",
        "cases": [
            ["Unet", {"distribution": "choice", "choices": ["a"]}],
            [8, {"distribution": "value", "value": 1}],
        ],
        "when": {"augment": [True]},
    }


# --- sampling ----------------------------------------------------------------------------


def _draw(dist, n=20_000, seed=1):
    rng = np.random.default_rng(seed)
    return [dist.sample(rng) for _ in range(n)]


@pytest.mark.parametrize(
    "dist",
    [Uniform(-1.0, 2.0), LogUniform(1e-4, 1e-2), ReversedLogUniform(0.9, 0.999), IntUniform(2, 5)],
    ids=lambda d: type(d).__name__,
)
def test_samples_stay_within_bounds_and_are_plain_python(dist):
    values = _draw(dist, n=5_000)
    assert min(values) >= dist.low
    assert max(values) <= dist.high
    expected_type = int if isinstance(dist, IntUniform) else float
    assert {type(v) for v in values} == {expected_type}


def test_uniform_never_returns_high():
    values = _draw(Uniform(0.0, 1e-300), n=2_000)
    assert max(values) < 1e-300


def test_intuniform_hits_both_ends():
    values = _draw(IntUniform(2, 5), n=2_000)
    assert set(values) == {2, 3, 4, 5}


def test_loguniform_is_log_distributed():
    # Given loguniform(1e-4, 1e-2), whose geometric mean is 1e-3
    values = _draw(LogUniform(1e-4, 1e-2))
    # Then about half the samples lie below 1e-3 (a plain uniform would put ~9 % there)
    below = sum(v < 1e-3 for v in values) / len(values)
    assert abs(below - 0.5) < 0.02


def test_reversed_loguniform_has_equal_mass_per_decade_of_n_minus_x():
    # Given reversed-loguniform(0.9, 0.999): 1 - x spans [0.001, 0.1], two decades
    values = _draw(ReversedLogUniform(0.9, 0.999))
    # Then half the samples have 1 - x in [0.01, 0.1] (x <= 0.99)
    upper_decade = sum(1 - v >= 0.01 for v in values) / len(values)
    assert abs(upper_decade - 0.5) < 0.02


def test_reversed_loguniform_honours_n():
    values = _draw(ReversedLogUniform(0.0, 9.0, n=10.0))
    # n - x spans [1, 10]: half the mass below sqrt(10)
    below = sum(10.0 - v < math.sqrt(10.0) for v in values) / len(values)
    assert abs(below - 0.5) < 0.02


def test_choice_samples_every_choice():
    values = _draw(Choice(("a", "b", None)), n=600)
    assert set(values) == {"a", "b", None}


def test_quantized_integers_stay_integers():
    # Given OpenVINO's default batch size range [32, 128, step 2]
    dist = parse_distribution("batch_size", {"param_type": "qloguniform", "range": [32, 128, 2]})
    values = _draw(dist, n=500)
    # Then every value is an even int
    assert {type(v) for v in values} == {int}
    assert all(v % 2 == 0 and 32 <= v <= 128 for v in values)


# --- exact distributions: KS and frequency tests -----------------------------------------

N_KS = 4000


def _ks_rejects(values, cdf) -> bool:
    """One-sample Kolmogorov-Smirnov at alpha = 0.05 against the analytic ``cdf``."""
    statistic = scipy.stats.kstest(values, lambda x: np.vectorize(cdf)(x)).statistic
    return statistic > 1.36 / math.sqrt(len(values))


def _log_cdf(low, high):
    return lambda x: min(max(math.log(x / low) / math.log(high / low), 0.0), 1.0)


def _uniform_sampler(low, high):
    return Uniform(low, high)


@pytest.mark.parametrize(
    ("dist", "cdf", "wrong"),
    [
        (Uniform(-1.0, 3.0), lambda x: (x + 1) / 4, LogUniform(0.5, 3.0)),
        (LogUniform(1e-5, 1e-1), _log_cdf(1e-5, 1e-1), Uniform(1e-5, 1e-1)),
        (
            parse_distribution("x", {"type": "log", "minval": -6, "maxval": -2, "base": 10}),
            _log_cdf(1e-6, 1e-2),
            Uniform(1e-6, 1e-2),
        ),
        (
            parse_distribution("x", {"param_type": "loguniform", "range": [0.25, 64, 2]}),
            _log_cdf(0.25, 64),
            Uniform(0.25, 64),
        ),
        (
            ReversedLogUniform(0.9, 0.999),
            lambda x: 1 - math.log((1 - x) / 0.001) / math.log(0.1 / 0.001),
            LogUniform(0.9, 0.999),
        ),
        (
            ReversedLogUniform(0.0, 9.0, n=10.0),
            lambda x: 1 - math.log(10 - x) / math.log(10),
            Uniform(0.0, 9.0),
        ),
    ],
    ids=["uniform", "loguniform", "log-base-10", "log-base-2", "reversed", "reversed-n"],
)
def test_continuous_samples_follow_the_analytic_cdf(dist, cdf, wrong):
    # Given n = 4000 samples at a fixed seed / Then the KS test accepts the analytic CDF
    assert not _ks_rejects(_draw(dist, n=N_KS), cdf)
    # and rejects the samples of a plausible wrong sampler (the test can fail)
    assert _ks_rejects(_draw(wrong, n=N_KS), cdf)


def _frequencies_fit(values, probabilities: dict) -> bool:
    """Chi-square goodness of fit at alpha = 0.01; every value must be a listed outcome."""
    assert set(values) <= set(probabilities), set(values) - set(probabilities)
    outcomes = list(probabilities)
    observed = [sum(v == o for v in values) for o in outcomes]
    expected = [probabilities[o] * len(values) for o in outcomes]
    return scipy.stats.chisquare(observed, expected).pvalue > 0.01


def _draw_counted(dist, n=20_000):
    values = _draw(dist, n=n)
    return values, {v: values.count(v) for v in set(values)}


def test_intuniform_is_uniform_on_both_ends_inclusive():
    values = _draw(IntUniform(2, 7), n=20_000)
    assert min(values) == 2 and max(values) == 7
    assert _frequencies_fit(values, {k: 1 / 6 for k in range(2, 8)})
    # an exclusive-high sampler never hits 7: the check fails on it
    rng = np.random.default_rng(1)
    exclusive = [int(rng.integers(2, 7)) for _ in range(20_000)]
    assert not _frequencies_fit(exclusive, {k: 1 / 6 for k in range(2, 8)})


def test_intuniform_with_step_is_uniform_on_its_lattice():
    values = _draw(IntUniform(2, 11, step=3), n=20_000)
    assert _frequencies_fit(values, {2: 0.25, 5: 0.25, 8: 0.25, 11: 0.25})


def _int_log_probabilities(low, high):
    total = math.log((high + 0.5) / (low - 0.5))
    return {k: math.log((k + 0.5) / (k - 0.5)) / total for k in range(low, high + 1)}


def test_int_log_matches_its_analytic_probabilities():
    # Given Optuna's int with log: true over [1, 32]
    dist = parse_distribution("x", {"type": "int", "low": 1, "high": 32, "log": True})
    probabilities = _int_log_probabilities(1, 32)
    values = _draw(dist)
    # Then both ends are hit and the frequencies fit log((k + .5) / (k - .5)) / log(32.5 / .5)
    assert min(values) == 1 and max(values) == 32
    assert _frequencies_fit(values, probabilities)
    # and a plain integer uniform does not fit
    assert not _frequencies_fit(_draw(IntUniform(1, 32)), probabilities)


def test_quniform_is_uniform_on_its_lattice_without_float_noise():
    # Given quniform over [0.1, 1.0] step 0.1 (ten lattice points)
    dist = QUniform(0.1, 1.0, 0.1)
    lattice = [round(0.1 * k, 1) for k in range(1, 11)]
    values = _draw(dist)
    # Then every sample is exactly a lattice point, as written in decimal (0.3, not 0.30..04)
    assert set(values) == set(lattice)
    assert dist.grid_values() == lattice
    assert _frequencies_fit(values, dict.fromkeys(lattice, 0.1))
    # hyperopt's round(uniform(low, high) / q) * q gives the ends half the weight: rejected
    rng = np.random.default_rng(1)
    hyperopt = [round(round(rng.uniform(0.1, 1.0) / 0.1) * 0.1, 1) for _ in range(20_000)]
    assert not _frequencies_fit(hyperopt, dict.fromkeys(lattice, 0.1))


def test_quniform_lattice_starts_at_low_and_stops_at_or_below_high():
    assert QUniform(1, 10, 4).grid_values() == [1, 5, 9]
    assert QUniform(0.05, 0.3, 0.1).grid_values() == [0.05, 0.15, 0.25]
    assert set(_draw(QUniform(1, 10, 4), n=300)) == {1, 5, 9}


def _qlog_probabilities(low, high, q, lattice):
    cdf = _log_cdf(low, high)
    out = {}
    for i, x in enumerate(lattice):
        lower = low if i == 0 else x - q / 2
        upper = high if i == len(lattice) - 1 else x + q / 2
        out[x] = cdf(upper) - cdf(lower)
    return out


def test_qloguniform_matches_the_log_mass_of_each_lattice_point():
    # Given qloguniform over [0.1, 3.2] step 0.1 (OpenVINO's range form)
    dist = parse_distribution("x", {"param_type": "qloguniform", "range": [0.1, 3.2, 0.1]})
    lattice = dist.grid_values()
    assert lattice == [round(0.1 * k, 1) for k in range(1, 33)]
    probabilities = _qlog_probabilities(0.1, 3.2, 0.1, lattice)
    assert math.isclose(sum(probabilities.values()), 1.0)
    values = _draw(dist)
    # Then every sample is on the lattice and the frequencies fit the analytic masses
    assert all(dist.contains(v) for v in values)
    assert _frequencies_fit(values, probabilities)
    # and quniform samples on the same lattice do not
    assert not _frequencies_fit(_draw(QUniform(0.1, 3.2, 0.1)), probabilities)


def test_quantized_openvino_learning_rate_has_no_float_noise():
    dist = parse_distribution("lr", {"param_type": "qloguniform", "range": [0.0007, 0.07, 0.0001]})
    values = _draw(dist, n=2_000)
    assert all(round(v, 4) == v and len(repr(v)) <= 6 for v in values)
    assert dist.grid_values()[:4] == [0.0007, 0.0008, 0.0009, 0.001]


# --- grids of discrete, quantized and counted entries ------------------------------------


def test_discreteness():
    assert Choice((1, 2)).is_discrete and Value(1).is_discrete
    assert not Uniform(0, 1).is_discrete and not IntUniform(0, 1).is_discrete


@pytest.mark.parametrize(
    ("dist", "values"),
    [
        (QUniform(0, 8, 2), [0, 2, 4, 6, 8]),
        (QLogUniform(1, 4, 1), [1, 2, 3, 4]),
        (IntUniform(1, 9, step=4), [1, 5, 9]),
        (Uniform(0.2, 0.5, count=4), [0.2, 0.3, 0.4, 0.5]),
        (LogUniform(1e-4, 1e-1, count=4), [1e-4, 1e-3, 1e-2, 1e-1]),
        (IntUniform(1, 4, count=3), [1, 3, 4]),
        (IntUniform(1, 3, count=10), [1, 2, 3]),
    ],
    ids=["quniform", "qloguniform", "int-step", "double-count", "log-count", "int-count", "dedup"],
)
def test_discrete_ranges_enumerate_for_a_grid(dist, values):
    assert dist.is_discrete
    assert dist.grid_values() == values


def test_a_grid_refuses_an_entry_too_large_to_enumerate():
    with pytest.raises(ConfigError, match="grid values is more than"):
        QUniform(0, 10**6, 1, name="x").grid_values()


# --- Optuna conversions ------------------------------------------------------------------

OPTUNA_KINDS = [d for d in EVERY_KIND if not isinstance(d, Cases)] + [
    Choice((True, 1, 1.0)),
    IntUniform(0, 9, step=4),
    QUniform(0.05, 0.3, 0.1),
]


@pytest.mark.parametrize("dist", OPTUNA_KINDS, ids=lambda d: d.kind)
def test_optuna_round_trip(dist):
    optuna_dist = dist.to_optuna()
    rng = np.random.default_rng(5)
    for _ in range(300):
        value = dist.sample(rng)
        internal = dist.to_optuna_value(value)
        # Given a sampled value / Then Optuna holds its internal form and maps back exactly
        back = dist.from_optuna(internal)
        assert back == value and type(back) is type(value)
        assert optuna_dist._contains(optuna_dist.to_internal_repr(internal))


@pytest.mark.parametrize("dist", OPTUNA_KINDS, ids=lambda d: d.kind)
def test_values_optuna_suggests_are_values_the_entry_can_take(dist):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(100):
        trial = study.ask({"x": dist.to_optuna()})
        value = dist.from_optuna(trial.params["x"])
        assert dist.contains(value), value
        assert json.loads(json.dumps(value)) == value


def test_unhashable_or_ambiguous_choices_are_indexed_for_optuna():
    assert Choice(([1, 2], {"k": 1})).to_optuna().choices == (0, 1)
    assert Choice((True, 1)).to_optuna().choices == (0, 1)
    assert Choice(("a", None, 2.5)).to_optuna().choices == ("a", None, 2.5)
    assert Choice(([1, 2], {"k": 1})).from_optuna(1) == {"k": 1}
    assert Choice((True, 1)).to_optuna_value(1) == 1
    assert Choice((True, 1)).to_optuna_value(True) == 0


def test_reversed_and_quantized_log_map_to_log_floats():
    reversed_dist = ReversedLogUniform(0.9, 0.999).to_optuna()
    assert reversed_dist.log and math.isclose(reversed_dist.low, 0.001)
    assert math.isclose(reversed_dist.high, 0.1)
    assert ReversedLogUniform(0.9, 0.999).from_optuna(0.01) == 0.99
    qlog = QLogUniform(0.0007, 0.07, 0.0001)
    assert qlog.to_optuna().log and qlog.to_optuna().step is None
    assert qlog.from_optuna(0.0123456) == 0.0123


# --- the shared range implementation ------------------------------------


@pytest.mark.parametrize(
    ("dist", "shape"),
    [
        (Uniform(0.0, 1.0), (FloatRange, False, None)),
        (LogUniform(1e-4, 1e-2, base=10), (FloatRange, True, None)),
        (ReversedLogUniform(0.9, 0.999), (FloatRange, True, None)),
        (QUniform(0, 8, 2), (FloatRange, False, 2)),
        (QLogUniform(0.0007, 0.07, 0.0001), (FloatRange, True, 0.0001)),
        (IntUniform(1, 9, step=4), (IntRange, False, 4)),
        (IntUniform(1, 64, log=True), (IntRange, True, None)),
    ],
    ids=lambda v: v.kind if hasattr(v, "kind") else None,
)
def test_every_range_kind_has_optuna_s_shape(dist, shape):
    # Given a range of any kind / Then it is a float or int range with low, high, log, step
    kind, log, step = shape
    assert isinstance(dist, kind)
    assert (dist.log, dist.step) == (log, step)
    assert dist.low < dist.high
