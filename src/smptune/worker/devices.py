"""The devices a worker owns, and the share of its cores each process of a DDP trial takes.

A worker owns one device unless ``workers start --devices-per-worker N`` gives it N: N GPU
ids in its ``CUDA_VISIBLE_DEVICES``, or on a CPU worker N processes' worth of its cores. The
supervisor states the count in :data:`DEVICES_ENV`; a worker started by hand owns the GPUs it
sees. A trial with ``training.devices_per_trial: N`` runs each fold as N processes (DDP
ranks), each pinned to its part of the worker's cores (:func:`rank_share_env`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from smptune.worker.host_share import (
    CPUS_ENV,
    CpuShare,
    available_cpus,
    parse_cpulist,
    share_env,
)

__all__ = ["DEVICES_ENV", "owned_devices", "rank_cpus", "rank_share_env"]

#: How many devices the worker owns (``--devices-per-worker``); unset: see :func:`owned_devices`.
DEVICES_ENV = "SMPTUNE_DEVICES_PER_WORKER"


def owned_devices(environ: Mapping[str, str] = os.environ, gpus: int = 0) -> int:
    """The devices this worker owns: :data:`DEVICES_ENV` when set (a count >= 1), else the
    ``gpus`` it sees (``torch.cuda.device_count()``), else one (its CPU)."""
    text = environ.get(DEVICES_ENV, "").strip()
    if text.isdigit() and int(text) >= 1:
        return int(text)
    return max(1, gpus)


def rank_cpus(cpus: list[int], rank: int, world: int) -> tuple[int, ...]:
    """Process ``rank``'s part of ``cpus`` among ``world``: every ``world``-th core, or one
    core round-robin when there are fewer cores than processes."""
    if not cpus:
        return ()
    if len(cpus) < world:
        return (cpus[rank % len(cpus)],)
    return tuple(cpus[rank::world])


def rank_share_env(
    rank: int, world: int, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """What process ``rank`` of a ``world``-process trial is told of its share: its part of
    the worker's cores (of this process's, for a worker on the whole machine) and the math
    libraries' thread counts to match."""
    text = environ.get(CPUS_ENV, "")
    try:
        cpus = parse_cpulist(text) if text else available_cpus()
    except ValueError:
        cpus = available_cpus()
    return share_env(CpuShare(rank_cpus(cpus, rank, world)), None)
