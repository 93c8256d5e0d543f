"""The retry policy's numbers and rules, as the trial loop, the tasks and the reaper read them."""

from __future__ import annotations

from smptune import retries
from smptune.config import config_from_dict


def test_a_start_within_its_attempts_goes_on_and_the_next_is_refused() -> None:
    assert retries.gave_up(1, 3, "its worker") is None
    assert retries.gave_up(3, 3, "its worker") is None
    assert retries.gave_up(4, 3, "its worker") == (
        "gave up after 3 attempts: its worker was lost each time"
    )


def test_the_configs_default_is_the_policys() -> None:
    config = config_from_dict({"name": "r", "hyperparameters": {"x": {"low": 0, "high": 1}}})
    assert config.max_attempts == retries.DEFAULT_MAX_ATTEMPTS


def test_the_celery_app_acknowledges_late_and_gives_back_a_lost_workers_message() -> None:
    from smptune.worker.app import app

    for name, value in retries.DELIVERY_SETTINGS.items():
        assert app.conf[name] == value, name
    assert app.conf.broker_transport_options["visibility_timeout"] == retries.VISIBILITY_TIMEOUT_S


def test_a_trials_hard_limit_ends_before_redelivery() -> None:
    longest = retries.max_trial_timeout_s()
    assert longest + retries.HARD_LIMIT_GRACE_S < retries.VISIBILITY_TIMEOUT_S


def test_the_reapers_graces_follow_the_lease_ttl() -> None:
    assert retries.reaper_graces(30.0) == (10.0, 90.0)
    assert retries.reaper_graces(3.0) == (1.0, 9.0)


def test_a_restarting_worker_waits_twice_as_long_each_time_up_to_half_a_minute() -> None:
    waits = [1.0]
    for _ in range(8):
        waits.append(retries.restart_backoff_s(waits[-1]))
    assert waits[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert waits[-1] == retries.MAX_RESTART_BACKOFF_S
