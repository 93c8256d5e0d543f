"""The pipes between a DDP run's rank 0 and the pool child that started it: one JSON object
a line each way.

Rank 0 sends ``{"op": "report", "epoch", "metrics"}`` after each validated epoch,
``{"op": "due", "epoch"}`` and ``{"op": "should_stop"}`` (each answered with one line,
``{"value": true|false}``), ``{"op": "saved", "epoch"}`` once its checkpoint is written, and
``{"op": "result", "result"}`` (a :meth:`~smptune.trainable.FoldResult.to_dict`) at the end.
:class:`RankChannel` is that side, as the rank's :class:`~smptune.trainable.FoldContext`
callbacks; :class:`LineReader` and :func:`reply_line` are the pool child's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from smptune.errors import TrialError
from smptune.trainable import FoldResult

__all__ = ["LineReader", "RankChannel", "reply_line"]


def _write(fd: int, value: Mapping[str, Any]) -> None:
    data = (json.dumps(dict(value)) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def reply_line(fd: int, value: bool) -> None:
    """The pool child's answer to a ``due`` or ``should_stop`` call."""
    _write(fd, {"value": bool(value)})


class LineReader:
    """The JSON lines read from ``fd`` so far (each call takes what is there; never blocks
    once :attr:`eof` is set)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.eof = False
        self._buffer = b""

    def read(self) -> list[dict[str, Any]]:
        """What one ``os.read`` brings (call it when ``fd`` is readable), as whole lines."""
        if self.eof:
            return []
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            self.eof = True
        self._buffer += chunk
        lines = self._buffer.split(b"\n")
        self._buffer = lines.pop()
        return [json.loads(line) for line in lines if line.strip()]

    def read_rest(self) -> list[dict[str, Any]]:
        """Every line left, up to the end (the writer has exited)."""
        messages: list[dict[str, Any]] = []
        while not self.eof:
            messages += self.read()
        return messages


class RankChannel:
    """Rank 0's end: the run's ``report``, ``should_stop`` and checkpoint callbacks, each a
    call on the pool child's context."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.reader = LineReader(read_fd)
        self.write_fd = write_fd

    def _ask(self, message: Mapping[str, Any]) -> bool:
        _write(self.write_fd, message)
        while True:
            answers = self.reader.read()
            if answers:
                return bool(answers[0]["value"])
            if self.reader.eof:
                raise TrialError("the worker that started this DDP rank is gone")

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        _write(self.write_fd, {"op": "report", "epoch": epoch, "metrics": dict(metrics)})

    def due(self, epoch: int) -> bool:
        return self._ask({"op": "due", "epoch": epoch})

    def saved(self, epoch: int) -> None:
        _write(self.write_fd, {"op": "saved", "epoch": epoch})

    def should_stop(self) -> bool:
        return self._ask({"op": "should_stop"})

    def result(self, result: FoldResult) -> None:
        _write(self.write_fd, {"op": "result", "result": result.to_dict()})
