"""The sweep store's key schema in Redis: every key it writes, and the functions naming them.

Keys (``{id}`` is the sweep id, ``{n}`` a trial's number)::

    smptune:sweeps                    zset   sweep id -> creation time
    smptune:active                    set    sweeps not yet finalized (the reaper watches these)
    smptune:sweep:{id}                hash   config, status, counters, test metrics, the
                                             chord template while ``submitting``, the counts
                                             of finalize and retrain sends and takes: small,
                                             the same size for 10 trials or 10,000
    smptune:sweep:{id}:results        string the finalize's results (JSON: the ranking of
                                             every trial), read only with ``full=True``
    smptune:sweep:{id}:splits         string the samples of its splits (JSON), likewise
    smptune:sweep:{id}:predictions    string the final model's sample predictions (base64
                                             PNG), likewise
    smptune:sweep:{id}:run-times      hash   ``n:<worker>`` / ``s:<worker>`` -> runs timed and
                                             their seconds, by the worker that recorded them
                                             (the ETA's measure, kept as each run is recorded)
    smptune:sweep:{id}:rerun          set    trials that ran before and wait to run again:
                                             marked requeued, or reopened with runs recorded
                                             by a resume or extend; a member leaves when it
                                             starts (readers check its status: one that
                                             finished without a start may stay)
    smptune:sweep:{id}:params         hash   trial number -> parameters (JSON); for adaptive
                                             samplers written when the trial starts
    smptune:sweep:{id}:changes        zset   trial number -> the sweep's ``changes`` counter
                                             when its params or final record were last
                                             written (a worker's view of the study reads
                                             what changed since its last read)
    smptune:sweep:{id}:trial:{n}      hash   status, worker, device, fold, score, error, ...
    smptune:sweep:{id}:chords         hash   chord group id -> what the trials of that chord
                                             share of their request (its callback, queue and
                                             time limits: JSON), written as a trial of it
                                             starts; a trial's ``request`` then holds only
                                             its group and what differs (see trials.py)
    smptune:sweep:{id}:folds:{n}      hash   run index (fold × seeds + seed) -> run result (JSON)
    smptune:sweep:{id}:curve:{n}      hash   "<run>:<epoch>" -> that epoch's validation score
    smptune:sweep:{id}:finished       set    trial numbers whose final record is written
    smptune:sweep:{id}:running        set    trial numbers running now
    smptune:sweep:{id}:scores         zset   trial number -> score of complete trials
    smptune:sweep:{id}:to-send        set    trial numbers marked requeued, not yet sent again
    smptune:sweep:{id}:lost:{n}       string short-lived claim to queue a lost trial again
    smptune:sweep:{id}:lease:{n}      string the live copy of a running trial (see lease.py)
    smptune:sweep:{id}:lease:retrain  string the live copy of its retrain-and-test
    smptune:sweep:{id}:retraining     set    "retrain" while retrain-and-test runs
    smptune:sweep:{id}:retrained      set    the retrain lease's finished set (nothing
                                             writes it)
    smptune:sweep:{id}:lease:finalize string the live copy of a generation's finalize
    smptune:sweep:{id}:finalizing     set    generations whose finalize runs (lease taken)
    smptune:sweep:{id}:finalized      set    generations whose finalize outcome is written
    smptune:sweep:{id}:claim:{step}   string short-lived claim to send ``step``'s message
                                             again (``finalize``, ``retrain``, ``submit``)
    smptune:sweep:{id}:step:{s}       zset   complete trial -> its value at pruner step s (the
                                             median pruner's percentile, see medians.py)
    smptune:sweep:{id}:rung:{b}:{k}   zset   successive-halving rung k of bracket b: trial
                                             -> score, with ``:kept`` and ``:stopped`` sets
                                             (see rungs.py)
    smptune:preempt:{worker}          string set while that worker is being preempted
    smptune:capability-queues         hash   capability queue -> its sweep queue and needs
    smptune:fleet                     hash   worker -> its advertised capabilities (both
                                             written and read by routing.py)

A trial's hash holds its run in progress's last ``checkpoint`` (JSON: run, epoch, path),
and ``topped_up``: the generation in which its start added a trial to an open-ended sweep.

Celery's own keys of a sweep, deleted with it: its tasks' results
(``celery-task-meta-{id}-*``) and its chord's (``celery-taskset-meta-{group}*``); the
chord's counters ``<group>.s``, ``.t`` and ``.j`` are named by Celery's backend
(``get_key_for_group``) and given to the store by its callers.
"""

from __future__ import annotations

PREFIX = "smptune"

#: Every sweep by creation time.
SWEEPS = f"{PREFIX}:sweeps"
#: The sweeps not yet finalized.
ACTIVE = f"{PREFIX}:active"
#: A pattern that matches every key of every sweep (its hash and the keys under it).
ALL_SWEEP_KEYS = f"{PREFIX}:sweep:*"

_SWEEP = f"{PREFIX}:sweep:"


# -- a sweep -----------------------------------------------------------------------------
def sweep_key(sweep_id: str) -> str:
    """The sweep's hash; the keys below are named after it."""
    return f"{_SWEEP}{sweep_id}"


def sweep_id_of(key: str) -> str:
    """The id of the sweep a key of :data:`ALL_SWEEP_KEYS` belongs to."""
    return key[len(_SWEEP) :].split(":", 1)[0]


def sweep_keys_pattern(sweep_id: str) -> str:
    """A pattern that matches every key under the sweep's hash (not the hash itself)."""
    return f"{sweep_key(sweep_id)}:*"


def params_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:params"


def changes_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:changes"


def step_key(sweep_id: str, step: int) -> str:
    """The complete trials' values at pruner step ``step``."""
    return f"{sweep_key(sweep_id)}:step:{step}"


def finished_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:finished"


def running_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:running"


def scores_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:scores"


def to_send_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:to-send"


def claim_key(sweep_id: str, step: str) -> str:
    return f"{sweep_key(sweep_id)}:claim:{step}"


def results_key(sweep_id: str) -> str:
    """The sweep's results (JSON), written by its finalize and retrain-and-test."""
    return f"{sweep_key(sweep_id)}:results"


def splits_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:splits"


def predictions_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:predictions"


def run_times_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:run-times"


def chords_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:chords"


def rerun_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:rerun"


# -- a trial -----------------------------------------------------------------------------
def trial_key(sweep_id: str, trial: int) -> str:
    return f"{sweep_key(sweep_id)}:trial:{trial}"


def folds_key(sweep_id: str, trial: int) -> str:
    return f"{sweep_key(sweep_id)}:folds:{trial}"


def curve_key(sweep_id: str, trial: int) -> str:
    return f"{sweep_key(sweep_id)}:curve:{trial}"


def lost_key(sweep_id: str, trial: int) -> str:
    return f"{sweep_key(sweep_id)}:lost:{trial}"


def trial_lease_key(sweep_id: str, trial: int) -> str:
    return f"{sweep_key(sweep_id)}:lease:{trial}"


# -- retrain-and-test and finalize -------------------------------------------------------
def retrain_lease_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:lease:retrain"


def retraining_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:retraining"


def retrained_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:retrained"


def finalize_lease_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:lease:finalize"


def finalizing_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:finalizing"


def finalized_key(sweep_id: str) -> str:
    return f"{sweep_key(sweep_id)}:finalized"


# -- successive-halving rungs ------------------------------------------------------------
def rung_keys(sweep: str, bracket: int, rung: int) -> tuple[str, str, str]:
    """Rung ``rung`` of ``bracket``'s scores, kept set and stopped set; ``sweep`` is the
    sweep's key (:func:`sweep_key`)."""
    key = f"{sweep}:rung:{bracket}:{rung}"
    return key, f"{key}:kept", f"{key}:stopped"


# -- workers and Celery ------------------------------------------------------------------
def preempt_key(worker: str) -> str:
    return f"{PREFIX}:preempt:{worker}"


def celery_task_pattern(sweep_id: str) -> str:
    """A pattern that matches Celery's results of the sweep's tasks (their ids start with
    the sweep's)."""
    return f"celery-task-meta-{sweep_id}-*"


def celery_group_pattern(group: str) -> str:
    """A pattern that matches Celery's keys of the sweep's chord (``group``: its id)."""
    return f"celery-taskset-meta-{group}*"
