"""How the workers of one machine share it: each worker's cores, math-library threads and
share of its device's memory.

``workers start`` divides the cores this process may use (``os.sched_getaffinity``) among
its workers (``--cpus-per-worker N`` to choose the count), preferring on a GPU host the cores
local to each GPU's NUMA node (sysfs ``local_cpulist``). Each worker process is pinned to its
cores and told its share through the environment (:data:`CPUS_ENV`, the OpenMP / MKL /
OpenBLAS thread counts); its pool child sets torch's threads from it
(:func:`apply_in_child`), and a training run sizes its DataLoader workers from it
(:func:`dataloader_workers`). Several workers on one GPU (``--slots-per-device``) also split
its memory (:data:`MEMORY_FRACTION_ENV`).

Hand-written rather than taken from a library: torch, Celery and psutil offer the pieces
(affinity, thread counts) but nothing that partitions a machine among processes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CPUS_ENV",
    "MEMORY_FRACTION_ENV",
    "THREAD_ENVS",
    "CpuShare",
    "apply_in_child",
    "apply_memory_fraction",
    "available_cpus",
    "dataloader_workers",
    "describe_share",
    "format_cpulist",
    "gpu_local_cpus",
    "parse_cpulist",
    "share_cpus",
    "share_env",
]

#: The cores a worker may use, as a cpulist (``0-3,8``); unset: the whole machine.
CPUS_ENV = "SMPTUNE_CPUS"
#: The share of its device's memory a worker's trials may allocate (``0.5``); unset: all.
MEMORY_FRACTION_ENV = "SMPTUNE_CUDA_MEMORY_FRACTION"
#: The math libraries' thread counts, set to the worker's share of cores.
THREAD_ENVS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def parse_cpulist(text: str) -> list[int]:
    """``"0-3,8,10-11"`` (the kernel's cpulist format) as sorted core numbers."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        first = int(low)
        cpus.update(range(first, int(high) + 1) if high else (first,))
    return sorted(cpus)


def format_cpulist(cpus: Iterable[int]) -> str:
    """Core numbers in the kernel's cpulist format: ``[0, 1, 2, 5]`` is ``0-2,5``."""
    ordered = sorted(set(cpus))
    runs: list[str] = []
    start = prev = None
    for cpu in [*ordered, None]:
        if cpu is not None and prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            runs.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return ",".join(runs)


def available_cpus() -> list[int]:
    """The cores this process may run on (its affinity, which a container or ``taskset``
    may have narrowed), sorted."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))  # pragma: no cover - not Linux


def gpu_local_cpus(gpu: str, sysfs: Path = Path("/sys")) -> list[int] | None:
    """The cores on GPU ``gpu``'s NUMA node, from sysfs ``local_cpulist`` of its PCI device
    (its bus id from ``nvidia-smi``); None where the machine does not tell."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=pci.bus_id", "--format=csv,noheader", "-i", gpu],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return pci_local_cpus(out, sysfs) if out else None


def pci_local_cpus(bus_id: str, sysfs: Path = Path("/sys")) -> list[int] | None:
    """The cores local to PCI device ``bus_id`` (``00000000:17:00.0`` as nvidia-smi writes
    it, or ``0000:17:00.0`` as sysfs names it); None when sysfs has no such list."""
    domain, _, rest = bus_id.strip().lower().partition(":")
    name = f"{domain[-4:]}:{rest}" if rest else domain
    try:
        cpus = parse_cpulist((sysfs / "bus/pci/devices" / name / "local_cpulist").read_text())
    except (OSError, ValueError):
        return None
    return cpus or None


@dataclass(frozen=True)
class CpuShare:
    """One worker's cores; ``threads`` is what its math libraries and torch use."""

    cpus: tuple[int, ...]

    @property
    def threads(self) -> int:
        return len(self.cpus)

    @property
    def text(self) -> str:
        """``cpus 0-1 (2 threads)``, as the start log and ``producer status`` show it."""
        plural = "s" if self.threads != 1 else ""
        return f"cpus {format_cpulist(self.cpus)} ({self.threads} thread{plural})"


def share_cpus(
    cpus: Sequence[int],
    n_workers: int,
    per_worker: int | None = None,
    local: Sequence[Sequence[int] | None] | None = None,
) -> list[CpuShare]:
    """Divide ``cpus`` among ``n_workers``: ``per_worker`` each (default: an equal share,
    at least one), disjoint while there are enough; worker ``i`` takes its cores from
    ``local[i]`` (its GPU's NUMA node) first. With more workers than cores, workers share
    cores round-robin, one each."""
    if n_workers < 1:
        return []
    cpus = sorted(set(cpus))
    size = per_worker or max(1, len(cpus) // n_workers)
    if size * n_workers > len(cpus):
        if per_worker is None:  # fewer cores than workers: one each, round-robin
            return [CpuShare((cpus[i % len(cpus)],)) for i in range(n_workers)]
        size = min(size, len(cpus))
    free = list(cpus)
    shares: list[CpuShare] = []
    for i in range(n_workers):
        near = set((local or [None] * n_workers)[i] or ())
        ordered = [c for c in free if c in near] + [c for c in free if c not in near]
        if len(ordered) < size:  # an explicit size that does not fit: wrap around
            ordered += [c for c in cpus if c not in ordered]
        taken = tuple(sorted(ordered[:size]))
        free = [c for c in free if c not in taken]
        shares.append(CpuShare(taken))
    return shares


def share_env(share: CpuShare | None, memory_fraction: float | None) -> dict[str, str]:
    """What a worker's environment says of its share (empty for the whole machine)."""
    env: dict[str, str] = {}
    if share is not None:
        env[CPUS_ENV] = format_cpulist(share.cpus)
        env.update(dict.fromkeys(THREAD_ENVS, str(share.threads)))
    if memory_fraction is not None:
        env[MEMORY_FRACTION_ENV] = f"{memory_fraction:.6g}"
    return env


def _share_from(environ: Mapping[str, str]) -> CpuShare | None:
    text = environ.get(CPUS_ENV)
    if not text:
        return None
    try:
        cpus = parse_cpulist(text)
    except ValueError:
        return None
    return CpuShare(tuple(cpus)) if cpus else None


def describe_share(environ: Mapping[str, str] = os.environ) -> str:
    """This worker's share as its environment states it: ``cpus 0-1 (2 threads), 50% of the
    device's memory``; empty for a worker on the whole machine."""
    share = _share_from(environ)
    parts = [share.text] if share is not None else []
    fraction = environ.get(MEMORY_FRACTION_ENV)
    if fraction:
        parts.append(f"{float(fraction):.0%} of the device's memory")
    return ", ".join(parts)


def apply_in_child(environ: Mapping[str, str] = os.environ) -> None:
    """In a worker's pool child: pin it to the worker's cores and, where torch is imported
    (a ``--preload`` worker), set its intra- and inter-op threads to the share. A training
    run calls it again once it has imported torch."""
    share = _share_from(environ)
    if share is None:
        return
    if hasattr(os, "sched_setaffinity"):
        # a core taken away since the supervisor started: keep what we have
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, share.cpus)
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if torch.get_num_threads() != share.threads:
        torch.set_num_threads(share.threads)
    # settable once per process, before inter-op work starts: already set or started
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(share.threads)


def apply_memory_fraction(environ: Mapping[str, str] = os.environ) -> float | None:
    """Cap this process's CUDA allocations at its worker's share of the device; returns
    the fraction applied, None when there is none or no CUDA."""
    text = environ.get(MEMORY_FRACTION_ENV)
    torch = sys.modules.get("torch")
    if not text or torch is None or not torch.cuda.is_available():
        return None
    fraction = float(text)
    torch.cuda.set_per_process_memory_fraction(fraction)
    return fraction


def dataloader_workers(requested: int | str, on_gpu: bool) -> int:
    """DataLoader worker processes for a run: ``requested``, or for ``auto`` the worker's
    share of cores less the training thread on a GPU worker (its cores build the batches
    while the GPU trains), and none on a CPU worker (its cores train)."""
    if requested != "auto":
        return int(requested)
    if not on_gpu:
        return 0
    share = _share_from(os.environ)
    cores = share.threads if share is not None else len(available_cpus())
    return max(0, min(cores - 1, 8))
