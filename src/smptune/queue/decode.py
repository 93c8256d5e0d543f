"""How the sweep store reads back what Redis holds: its hashes decoded into records, once.

Each function takes what a read returned (strings: the store's client decodes responses)
and gives :mod:`smptune.records`' types, or the reason a run must stop; none reads Redis
itself.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from smptune.config import SweepConfig, config_from_dict
from smptune.messages import TrialRequest
from smptune.records import (
    OUTCOMES,
    FullSweepRecord,
    OutOfMemory,
    PartialRun,
    SavedCheckpoint,
    SweepRecord,
    SweepStatus,
    TrialRecord,
    TrialStatus,
)


def stop_reason(cancelled: str | None, deadline: str | None, now: float) -> str | None:
    """Why no further run may start, from a sweep's ``cancel_requested`` and ``deadline``:
    ``"cancelled"``, ``"out of time"`` or None. ``now``: the Redis server's time, the clock
    the deadline was set by."""
    if cancelled is not None:
        return "cancelled"
    if deadline is not None and now >= float(deadline):
        return "out of time"
    return None


def float_or_none(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def json_or_none(value: str | None) -> Any:
    return json.loads(value) if value else None


def request_or_none(value: str | None) -> TrialRequest | None:
    data = json_or_none(value)
    return TrialRequest.from_dict(data) if data else None


def sweep_config(text: str) -> SweepConfig:
    """The sweep's config as submit recorded it (:meth:`SweepConfig.to_dict`, validated
    then), read back: the one place a stored config becomes a :class:`SweepConfig` again."""
    return config_from_dict(json.loads(text))


def sweep_record(raw: Mapping[str, str]) -> SweepRecord:
    """The sweep hash, decoded (without the fields :func:`full_sweep_record` adds)."""
    n_folds = int(raw.get("n_folds", 0))
    return SweepRecord(
        id=raw["id"],
        name=raw.get("name", raw["id"]),
        config=sweep_config(raw["config"]),
        status=SweepStatus(raw.get("status", "queued")),
        created=float(raw.get("created", 0)),
        n_trials=int(raw.get("n_trials", 0)),
        n_folds=n_folds,
        n_runs=int(raw.get("n_runs") or n_folds),
        artifacts_dir=raw.get("artifacts_dir", ""),
        folds_done=int(raw.get("folds_done", 0)),
        counts={status: int(raw.get(status.counter, 0)) for status in OUTCOMES},
        finalize_runs=int(raw.get("finalize_runs", 0)),
        finalize_duplicates=int(raw.get("finalize_duplicates", 0)),
        finalize_fallback=float_or_none(raw.get("finalize_fallback")),
        started=float_or_none(raw.get("started")),
        finished=float_or_none(raw.get("finished")),
        last_finished=float_or_none(raw.get("last_finished")),
        finalize_started=float_or_none(raw.get("finalize_started")),
        finalized_at=float_or_none(raw.get("finalized_at")),
        deadline=float_or_none(raw.get("deadline")),
        budget_factor=float_or_none(raw.get("budget_factor")),
        generation=int(raw.get("generation", 0)),
        submitting=float_or_none(raw.get("submitting")),
        retrain_attempts=int(raw.get("retrain_attempts", 0)),
        chord_size=int(raw["chord_size"]) if raw.get("chord_size") else None,
        finalize_sends=int(raw.get("finalize_sends", 0)),
        finalize_takes=int(raw.get("finalize_takes", 0)),
        retrain_sends=int(raw.get("retrain_sends", 0)),
        retrain_takes=int(raw.get("retrain_takes", 0)),
        retrain_requeued_at=float_or_none(raw.get("retrain_requeued_at")),
        retrained_trial=int(raw["retrained_trial"]) if raw.get("retrained_trial") else None,
        open_ended=raw.get("open_ended") == "1",
        cancel_requested=float_or_none(raw.get("cancel_requested")),
        error=raw.get("error") or None,
        test_metrics=json_or_none(raw.get("test_metrics")),
        trial_request=request_or_none(raw.get("trial_request")),
        final_model_dir=raw.get("final_model_dir") or None,
    )


def full_sweep_record(
    raw: Mapping[str, str], results: str | None, splits: str | None, predictions: str | None
) -> FullSweepRecord:
    """The sweep hash with its results, splits and predictions (their own keys' values; a
    sweep recorded before they had their own keys holds them in its hash)."""
    record = sweep_record(raw)
    return FullSweepRecord(
        **{f.name: getattr(record, f.name) for f in dataclasses.fields(record)},
        results=json_or_none(results or raw.get("results")),
        splits=json_or_none(splits or raw.get("splits")),
        predictions_png=predictions or raw.get("predictions_png") or None,
    )


def curves(raw: Mapping[str, str]) -> dict[int, tuple[float, ...]]:
    """``"<run>:<epoch>" -> score`` as each run's scores in epoch order (NaN for a gap)."""
    by_run: dict[int, dict[int, float]] = {}
    for key, value in raw.items():
        run, _, epoch = key.partition(":")
        by_run.setdefault(int(run), {})[int(epoch)] = float(value)
    return {
        run: tuple(epochs.get(e, math.nan) for e in range(1, max(epochs) + 1))
        for run, epochs in sorted(by_run.items())
    }


def trial_record(
    n: int,
    params: str | None,
    state: Mapping[str, str],
    folds: Mapping[str, str],
    curve: Mapping[str, str] | None = None,
) -> TrialRecord:
    partial = json_or_none(state.get("partial"))
    checkpoint = json_or_none(state.get("checkpoint"))
    oom = json_or_none(state.get("out_of_memory"))
    return TrialRecord(
        trial=n,
        status=TrialStatus(state.get("status", "pending")),
        params=json.loads(params) if params else {},
        folds={int(k): json.loads(v) for k, v in sorted(folds.items(), key=lambda i: int(i[0]))},
        worker=state.get("worker") or None,
        device=state.get("device") if "device" in state else None,
        fold=int(state["fold"]) if state.get("fold") else None,
        pid=int(state["pid"]) if state.get("pid") else None,
        attempts=int(state.get("attempts", 0)),
        requeues=int(state.get("requeues", 0)),
        error=state.get("error") or None,
        started=float_or_none(state.get("started")),
        finished=float_or_none(state.get("finished")),
        requeued_at=float_or_none(state.get("requeued_at")),
        score=float_or_none(state.get("score")),
        score_std=float_or_none(state.get("score_std")),
        unstable=state.get("unstable") == "True",
        duration_s=float_or_none(state.get("duration_s")),
        partial=PartialRun.from_dict(partial) if partial else None,
        preemptions=int(state.get("preemptions", 0)),
        checkpoint=SavedCheckpoint.from_dict(checkpoint) if checkpoint else None,
        curves=curves(curve or {}),
        out_of_memory=OutOfMemory.from_dict(oom) if oom else None,
        batch_size=int(state["batch_size"]) if state.get("batch_size") else None,
    )
