"""Local mode: an embedded Redis and this machine's workers, for one sweep, then gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.trainable import BUILTIN_TRAINABLES


class LocalCluster:
    """Starts the embedded Redis and a ``workers`` supervisor; stops both on exit."""

    def __init__(self, log_dir: Path, cpu_workers: int | None, trainable: str) -> None:
        self.log_dir = log_dir
        self.cpu_workers = cpu_workers
        self.trainable = trainable
        self.redis = EmbeddedRedis()
        self.workers: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.redis.url

    def workers_command(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "smptune.cli.workers",
            "start",
            "--broker",
            self.url,
            "--logfile-dir",
            str(self.log_dir),
            "--shutdown-timeout",
            "10",
        ]
        if self.cpu_workers:
            argv += ["--cpu", str(self.cpu_workers)]
        if self.trainable not in BUILTIN_TRAINABLES:
            # the user runs their own code on their own machine
            argv += ["--allow-trainable", self.trainable]
        return argv

    def start(self) -> LocalCluster:
        self.redis.start()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / "workers.log").open("ab") as log:
            self.workers = subprocess.Popen(
                self.workers_command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=dict(os.environ),
            )
        return self

    def stop(self) -> None:
        if self.workers is not None and self.workers.poll() is None:
            self.workers.send_signal(signal.SIGTERM)
            try:
                self.workers.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.workers.pid, signal.SIGKILL)
                self.workers.wait()
        self.workers = None
        self.redis.stop()

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
