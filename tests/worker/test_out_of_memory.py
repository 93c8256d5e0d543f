"""Out of memory on a worker, in pieces: told from other errors by class name (no torch), the
host's resident memory against ``training.max_host_memory_gb``, and the one retry with half
the batch size under ``on_oom: halve_batch``."""

from __future__ import annotations

import json

import pytest

from smptune.config import config_from_dict
from smptune.errors import TrialError
from smptune.fakes import OutOfMemoryError
from smptune.records import OutOfMemory, TrialStatus
from smptune.worker.out_of_memory import MemoryGuard, is_out_of_memory, resident_gb
from smptune.worker.stops import TrialOutcome, TrialStopped


def _config(**over: object):
    return config_from_dict(
        {
            "trainable": "smptune.fakes:MemoryBoundTrainable",
            "n_trials": 2,
            "hyperparameters": {"x": [0.0, 1.0], "batch_size": 32},
            **over,
        }
    )


def test_out_of_memory_is_told_by_class_name_and_through_the_chain():
    # torch's CUDA error is matched by its name, so a class named so anywhere counts
    assert is_out_of_memory(OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(MemoryError())

    class Wrapped(RuntimeError):
        pass

    try:
        try:
            raise OutOfMemoryError("CUDA out of memory")
        except OutOfMemoryError as inner:
            raise Wrapped("the training loop failed") from inner
    except Wrapped as outer:
        assert is_out_of_memory(outer)  # a framework's wrapper around it still counts
    # as the segmentation trainable's engine raises it (a TrialError from CUDA's)
    wrapped = TrialError("CUDA out of memory: Tried to allocate 2 GiB")
    wrapped.__cause__ = OutOfMemoryError("Tried to allocate 2 GiB")
    assert is_out_of_memory(wrapped)
    assert not is_out_of_memory(TrialError("configured to fail"))
    assert not is_out_of_memory(ValueError("a bad value"))


def test_resident_memory_is_read_and_grows_with_what_is_held():
    before = resident_gb()
    assert before is not None and before > 0
    held = b"\x01" * (200 * 2**20)
    after = resident_gb()
    assert after is not None and after - before > 0.15
    del held


def test_an_out_of_memory_error_stops_the_trial_infeasible_with_what_it_tried():
    # Given a trial whose run fold 1 seed 0 with batch size 32 runs out of memory
    guard = MemoryGuard(_config())
    guard.starts(1, 0, {"batch_size": 32})
    stop = guard.stop(OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    # Then it stops the trial infeasible, saying where and with what
    assert stop is not None and stop.status is TrialStatus.INFEASIBLE
    assert stop.reason.startswith("out of memory at fold 1 seed 0 with batch_size 32: ")
    assert "OutOfMemoryError: CUDA out of memory" in stop.reason
    assert guard.hit == OutOfMemory(
        1, 0, 32, "OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB"
    )
    # and without on_oom: halve_batch it is not tried again
    assert not guard.retries(stop, "trial 0")
    record: TrialOutcome = {"status": "infeasible"}
    guard.add_to(record)
    assert json.loads(record["out_of_memory"])["batch_size"] == 32 and "batch_size" not in record
    # and another error is not its business; a stop stays the stop it is
    assert guard.stop(ValueError("x")) is None
    pruned = TrialStopped(TrialStatus.PRUNED, "pruned")
    assert guard.stop(pruned) is pruned


def test_halve_batch_tries_once_with_half_the_batch_and_marks_the_runs():
    # Given on_oom: halve_batch and a run with batch size 32 out of memory
    guard = MemoryGuard(_config(on_oom="halve_batch"))
    params = guard.params({"x": 0.0, "batch_size": 32}, {})
    guard.starts(0, 0, params)
    stop = guard.stop(MemoryError())
    assert stop is not None
    # When the guard is asked, it halves the batch once
    assert guard.retries(stop, "trial 0")
    assert guard.params({"x": 0.0, "batch_size": 32}, {}) == {"x": 0.0, "batch_size": 16}
    result: dict[str, object] = {"metrics": {}}
    guard.mark(result)
    assert result["batch_size"] == 16
    # and out of memory again with 16, it gives up, keeping both batch sizes
    guard.starts(0, 0, {"batch_size": 16})
    again = guard.stop(MemoryError("again"))
    assert again is not None and not guard.retries(again, "trial 0")
    assert guard.hit == OutOfMemory(0, 0, 32, "MemoryError: again", 16)
    record: TrialOutcome = {"status": "infeasible"}
    guard.add_to(record)
    assert record["batch_size"] == 16
    assert json.loads(record["out_of_memory"])["retried_batch_size"] == 16


def test_a_copy_continues_with_the_halved_batch_its_runs_were_recorded_with():
    guard = MemoryGuard(_config(on_oom="halve_batch"))
    done = {0: {"metrics": {}, "batch_size": 16}}
    assert guard.params({"batch_size": 32}, done) == {"batch_size": 16}
    guard.starts(1, 0, {"batch_size": 16})
    stop = guard.stop(MemoryError())
    assert stop is not None and not guard.retries(stop, "trial 0")  # halved once already


@pytest.mark.parametrize("size", [1, None, "big"])
def test_a_batch_that_cannot_be_halved_is_not_tried_again(size):
    guard = MemoryGuard(_config(on_oom="halve_batch"))
    guard.starts(0, 0, {} if size is None else {"batch_size": size})
    stop = guard.stop(MemoryError())
    assert stop is not None and not guard.retries(stop, "trial 0")
    assert guard.batch_size is None


def test_the_host_limit_stops_a_trial_over_it():
    assert MemoryGuard(_config()).host_stop() is None  # no limit set
    roomy = MemoryGuard(_config(training={"max_host_memory_gb": 10_000}))
    assert roomy.host_stop() is None
    tight = MemoryGuard(_config(training={"max_host_memory_gb": 0.001}))
    tight.starts(0, 1, {"batch_size": 8})
    stop = tight.host_stop()
    assert stop is not None and stop.status is TrialStatus.INFEASIBLE
    assert "is over training.max_host_memory_gb 0.001" in stop.reason
    assert tight.hit is not None and (tight.hit.fold, tight.hit.repeat) == (0, 1)


def test_torchs_own_cuda_error_is_out_of_memory():
    torch = pytest.importorskip("torch")
    # torch.cuda.OutOfMemoryError exists without a GPU; it is torch.OutOfMemoryError
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert not is_out_of_memory(RuntimeError("CUDA error: device-side assert triggered"))
