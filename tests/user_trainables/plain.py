"""A user's own trainables, importable as ``user_trainables.plain:MarkingTrainable`` and
``user_trainables.plain:ImportReporter`` (tests/ is on PYTHONPATH).

It reports nothing of interest beyond a score, so it proves that a trainable outside the
built-ins runs only where it was allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from smptune.fakes import QuadraticTrainable
from smptune.trainable import FoldContext, FoldResult

MARKER_ENV = "SMPTUNE_TEST_MARKER_DIR"


class MarkingTrainable(QuadraticTrainable):
    """The quadratic trainable, leaving a file behind for every fold it trains."""

    def train_fold(self, params: Mapping[str, Any], context: FoldContext) -> FoldResult:
        import os

        marker_dir = os.environ.get(MARKER_ENV)
        if marker_dir:
            Path(marker_dir, f"{context.sweep_id}-{context.trial}-{context.fold}").touch()
        return super().train_fold(params, context)


class ImportReporter(QuadraticTrainable):
    """The quadratic trainable, reporting whether its process had the training stack
    imported when the fold started (``preloaded``) and which process ran it (``pid``)."""

    def train_fold(self, params: Mapping[str, Any], context: FoldContext) -> FoldResult:
        import os
        import sys

        preloaded = float("torch" in sys.modules and "smptune.training.engine" in sys.modules)
        result = super().train_fold(params, context)
        result.metrics.update(preloaded=preloaded, pid=float(os.getpid()))
        return result
