"""A fold on several devices: the worker's pool child starts one process per DDP rank and
follows them (``training.devices_per_trial`` N > 1).

Lightning's own launcher starts ranks by running ``sys.argv`` again, which in a Celery pool
child would start another worker, and a pool child may not fork multiprocessing children.
So the pool child starts ``python -m smptune.training.ddp_rank`` N times with the
torch.distributed environment set (``MASTER_ADDR``, a free ``MASTER_PORT``, ``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``NODE_RANK``): Lightning sees processes started outside it and
joins them (gloo on CPU, NCCL on GPUs). Rank 0 talks to the pool child over a pair of pipes
(:mod:`.ddp_channel`): each epoch's metrics go to the run's ``report``, the checkpoint and
stop decisions come back (broadcast to the other ranks), and at the end its
:class:`~smptune.trainable.FoldResult` is the run's, recorded once by the task layer as a
one-device run's is.

The pool child polls the ranks: a rank that fails with an error (it writes it down first)
fails the run as on one device (:class:`~smptune.errors.TrialError`); a rank that dies any
other way (killed, crashed) makes every other rank be killed at once (no wait on a gloo
timeout) and raises :class:`~smptune.trainable.RunLost`: the run records nothing and the
trial is recovered as a lost worker's. Each rank also ends itself when the pool child is gone.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import smptune
from smptune.errors import TrialError
from smptune.params import Params
from smptune.trainable import FoldContext, FoldResult, RunLost, SweepSettings
from smptune.training.ddp_channel import LineReader, reply_line
from smptune.worker.devices import owned_devices, rank_share_env

__all__ = ["FAILED_RC", "RankJob", "train_fold_ddp"]

#: The exit status of a rank that failed with an error it wrote to its error file.
FAILED_RC = 70
#: Seconds the other ranks get to end by themselves once one has ended badly.
SETTLE_S = 3.0
#: Seconds the other ranks get to end once rank 0 has sent the run's result.
FINISH_S = 60.0
#: How often the pool child looks at the ranks, in seconds.
POLL_S = 0.2


@dataclass(frozen=True)
class RankJob:
    """What every rank of one run gets (pickled to a file beside the run's error files)."""

    params: Params
    settings: SweepSettings
    sweep_id: str
    trial: int
    fold: int
    n_folds: int
    repeat: int
    n_repeats: int
    output_dir: str | None
    checkpoint_path: str | None
    resume_epoch: int
    parent_pid: int

    def context(self) -> FoldContext:
        """The run's context as a rank sees it (its callbacks are rank 0's channel's)."""
        from smptune.trainable import RunCheckpoint

        checkpoint = None
        if self.checkpoint_path is not None:
            checkpoint = RunCheckpoint(Path(self.checkpoint_path), self.resume_epoch)
        return FoldContext(
            self.sweep_id,
            self.trial,
            self.fold,
            self.n_folds,
            self.settings,
            output_dir=Path(self.output_dir) if self.output_dir is not None else None,
            repeat=self.repeat,
            n_repeats=self.n_repeats,
            checkpoint=checkpoint,
        )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (rank 0's store binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    """The environment of rank ``rank``: the worker's, the torch.distributed variables, the
    rank's part of the worker's cores, and this smptune first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("GROUP_RANK", "LOCAL_WORLD_SIZE")}
    root = str(Path(smptune.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        NODE_RANK="0",
    )
    env.update(rank_share_env(rank, world))
    return env


def check_devices(world: int) -> None:
    """Raise :class:`TrialError` unless this worker owns ``world`` devices."""
    import torch

    owned = owned_devices(gpus=torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if owned < world:
        plural = "s" if owned != 1 else ""
        raise TrialError(
            f"training.devices_per_trial: {world} needs a worker that owns {world} devices; "
            f"this one owns {owned} device{plural} (start it with workers start "
            f"--devices-per-worker {world})"
        )


def train_fold_ddp(params: Params, context: FoldContext, world: int) -> FoldResult:
    """Run fold ``context.fold`` as ``world`` DDP processes; rank 0's result."""
    check_devices(world)
    folder = Path(tempfile.mkdtemp(prefix="smptune-ddp-"))
    checkpoint = context.checkpoint
    job = RankJob(
        params=dict(params),
        settings=context.settings,
        sweep_id=context.sweep_id,
        trial=context.trial,
        fold=context.fold,
        n_folds=context.n_folds,
        repeat=context.repeat,
        n_repeats=context.n_repeats,
        output_dir=str(context.output_dir) if context.output_dir is not None else None,
        checkpoint_path=str(checkpoint.path) if checkpoint is not None else None,
        resume_epoch=checkpoint.resume_epoch if checkpoint is not None else 0,
        parent_pid=os.getpid(),
    )
    (folder / "job.pickle").write_bytes(pickle.dumps(job))
    try:
        return _Ranks(folder, world, context).run()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Ranks:
    """The processes of one DDP run, started, served (rank 0's channel) and followed."""

    def __init__(self, folder: Path, world: int, context: FoldContext) -> None:
        self.folder = folder
        self.world = world
        self.context = context
        self.processes: list[subprocess.Popen[bytes]] = []
        self.result: FoldResult | None = None

    def run(self) -> FoldResult:
        from_parent, to_rank = os.pipe()  # (read end, write end)
        from_rank, to_parent = os.pipe()
        port = free_port()
        try:
            for rank in range(self.world):
                fds = (from_parent, to_parent) if rank == 0 else ()
                argv = [sys.executable, "-m", "smptune.training.ddp_rank", str(self.folder)]
                argv += [str(from_parent), str(to_parent)] if rank == 0 else ["-1", "-1"]
                self.processes.append(
                    subprocess.Popen(
                        argv, env=rank_env(rank, self.world, port), pass_fds=fds, close_fds=True
                    )
                )
            os.close(from_parent)
            os.close(to_parent)
            from_parent = to_parent = -1
            return self._follow(LineReader(from_rank), to_rank)
        finally:
            self._kill()
            for fd in (to_rank, from_rank, from_parent, to_parent):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _follow(self, reader: LineReader, reply_fd: int) -> FoldResult:
        """Serve rank 0's calls until every rank has ended; the run's result."""
        finished_at: float | None = None
        while True:
            if reader.eof:
                time.sleep(POLL_S)
            elif select.select([reader.fd], [], [], POLL_S)[0]:
                for message in reader.read():
                    self._serve(message, reply_fd)
            codes = [p.poll() for p in self.processes]
            if any(code not in (None, 0) for code in codes):
                if self.result is not None:
                    return self.result  # rank 0 sent it: a rank lost in teardown loses nothing
                self._fail()
            if all(code == 0 for code in codes):
                for message in reader.read_rest():
                    self._serve(message, reply_fd)
                if self.result is None:
                    raise TrialError("DDP rank 0 ended without sending the run's result")
                return self.result
            if self.result is not None:
                finished_at = finished_at or time.monotonic()
                if time.monotonic() - finished_at > FINISH_S:
                    return self.result  # rank 0 is done; a rank stuck in teardown is killed

    def _serve(self, message: dict[str, object], reply_fd: int) -> None:
        """One call of rank 0 on the run's context (see :mod:`.ddp_channel`)."""
        context, op = self.context, message.get("op")
        checkpoint = context.checkpoint
        epoch = int(message.get("epoch", 0))  # type: ignore[call-overload]  # JSON: an int
        if op == "report":
            metrics = message.get("metrics", {})
            assert isinstance(metrics, dict)
            context.report(epoch, {str(k): float(v) for k, v in metrics.items()})
        elif op == "due":
            reply_line(reply_fd, checkpoint is not None and checkpoint.due(epoch))
        elif op == "saved":
            if checkpoint is not None:
                checkpoint.saved(epoch)
        elif op == "should_stop":
            reply_line(reply_fd, context.should_stop())
        elif op == "result":
            result = message.get("result")
            assert isinstance(result, dict)
            self.result = FoldResult.from_dict(result)

    def _fail(self) -> None:
        """A rank ended badly: give the others :data:`SETTLE_S` to end too, kill the rest,
        and raise what the ranks that ended by themselves say."""
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline and any(p.poll() is None for p in self.processes):
            time.sleep(0.05)
        own = {rank: p.poll() for rank, p in enumerate(self.processes) if p.poll() is not None}
        self._kill()
        lost = {rank: code for rank, code in own.items() if code not in (0, FAILED_RC)}
        if lost:
            rank, code = min(lost.items())
            assert code is not None
            how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            raise RunLost(
                f"rank {rank} of the fold's {self.world}-process DDP run was lost ({how})"
            )
        raise TrialError(self._first_error())

    def _first_error(self) -> str:
        """The error of the rank that failed first, as it wrote it."""
        errors = sorted(self.folder.glob("rank_*.error"), key=lambda p: p.stat().st_mtime)
        for path in errors:
            text = path.read_text().strip()
            if text:
                return text
        return "a DDP rank failed without saying why"

    def _kill(self) -> None:
        """Kill every rank still running and reap them all."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
