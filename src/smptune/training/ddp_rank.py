"""One rank of a fold's DDP run: ``python -m smptune.training.ddp_rank FOLDER READ_FD WRITE_FD``.

Started by :mod:`.ddp_launch` with the torch.distributed environment set. It reads the run
(``FOLDER/job.pickle``), trains its share of the fold (:func:`.engine.train_fold_rank`), and on
rank 0 sends each epoch and the result to the pool child over the pipes ``READ_FD`` and
``WRITE_FD`` (:mod:`.ddp_channel`). A rank that fails writes its error to
``FOLDER/rank_<k>.error`` and exits :data:`~.ddp_launch.FAILED_RC`; one whose pool child is
gone ends at once.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
from pathlib import Path

from smptune.errors import SmptuneError
from smptune.trainable import RunCheckpoint
from smptune.training.ddp_channel import RankChannel
from smptune.training.ddp_launch import FAILED_RC, RankJob

#: The exit status of a rank whose pool child is gone.
ORPHANED_RC = 71


def _watch_parent(parent_pid: int) -> None:
    """End this process once the pool child that started it is gone (its ranks must not
    train on, nor wait on a collective for the gloo timeout)."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(ORPHANED_RC)
            time.sleep(1.0)

    threading.Thread(target=watch, name="smptune-ddp-parent", daemon=True).start()


def main(argv: list[str]) -> int:
    folder, read_fd, write_fd = Path(argv[0]), int(argv[1]), int(argv[2])
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    job: RankJob = pickle.loads((folder / "job.pickle").read_bytes())
    _watch_parent(job.parent_pid)
    try:
        from smptune.training.engine import train_fold_rank

        context = job.context()
        channel = RankChannel(read_fd, write_fd) if rank == 0 else None
        if channel is not None:
            context.report, context.should_stop = channel.report, channel.should_stop
            if context.checkpoint is not None:
                context.checkpoint = RunCheckpoint(
                    context.checkpoint.path,
                    context.checkpoint.resume_epoch,
                    due=channel.due,
                    saved=channel.saved,
                )
        result = train_fold_rank(job.params, context, rank, world)
        if channel is not None:
            channel.result(result)
        _leave_group()
    except BaseException as exc:  # every failure is written down for the pool child
        message = str(exc) if isinstance(exc, SmptuneError) else f"{type(exc).__name__}: {exc}"
        (folder / f"rank_{rank}.error").write_text(f"DDP rank {rank}: {message}\n")
        return FAILED_RC
    return 0


def _leave_group() -> None:
    """Wait for every rank to be done, then leave the process group: no rank exits while
    another still talks to it."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # not waiting on the process group's or the loaders' threads
