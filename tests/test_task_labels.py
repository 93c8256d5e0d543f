"""A trial's task label (the ``argsrepr`` Flower shows): its sweep, its number and its
parameters, readable, on every message queued for it."""

from __future__ import annotations

import json

from smptune.queue.store import SweepStore
from smptune.task_labels import PARAMS_MAX_CHARS, trial_argsrepr

from conftest import run_cli, write_config


def _queued_argsreprs(store: SweepStore) -> dict[str, str]:
    """The ``argsrepr`` header of every message waiting in the trial queues, by task id."""
    out = {}
    for key in store.r.keys("smptune*"):
        if store.r.type(key) == "list":
            for raw in store.r.lrange(key, 0, -1):
                headers = json.loads(raw)["headers"]
                out[headers["id"]] = headers["argsrepr"]
    return out


def test_trial_messages_carry_a_readable_label(tmp_path, redis_server, store: SweepStore):
    # Given no workers, a random sweep with a long choice and an adaptive (TPE) sweep
    long_choice = "encoder_" + "x" * 150
    random_config = write_config(
        tmp_path / "random.yaml",
        n_trials=2,
        hyperparameters={"x": 0.000123456, "y": [-1.5], "fail": [long_choice]},
    )
    adaptive = write_config(tmp_path / "tpe.yaml", name="adaptive", n_trials=2, sampler="tpe")

    # When both are submitted
    for config in (random_config, adaptive):
        result = run_cli("producer", "submit", config, "--broker", redis_server.url)
        assert result.returncode == 0, result.stderr

    # Then each queued trial's label names its sweep and trial; the random sweep's also
    # its parameters, floats to 4 significant digits, cut near PARAMS_MAX_CHARS
    labels = _queued_argsreprs(store)
    ids = {s.name: s.id for s in store.list_sweeps()}
    random_id, adaptive_id = ids["quad"], ids["adaptive"]
    assert labels[f"{adaptive_id}-trial-1"] == f"trial 1 (sweep={adaptive_id})"
    first = labels[f"{random_id}-trial-0"]
    assert first == f"trial 0: x=0.0001235, y=-1.5, … (sweep={random_id})", first
    assert len(trial_argsrepr("s", 0, {"fail": long_choice}, ["fail"])) <= PARAMS_MAX_CHARS + 20
