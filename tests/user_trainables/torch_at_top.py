"""Trainables that import torch as a user's own module would (at the top), importable as
``user_trainables.torch_at_top:ShareReporter`` and ``user_trainables.torch_at_top:OutOfMemory``
(tests/ is on PYTHONPATH): what a worker's process got of its machine, and a CUDA out-of-memory."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from smptune.fakes import QuadraticTrainable
from smptune.trainable import FoldContext, FoldResult

SHARE_ENV = "SMPTUNE_TEST_SHARE_DIR"
OOM_ENV = "SMPTUNE_TEST_OOM_TRIALS"


class ShareReporter(QuadraticTrainable):
    """The quadratic trainable, writing what its process got of the machine to
    ``$SMPTUNE_TEST_SHARE_DIR/<sweep>-<trial>-<fold>.json``: its worker's name, its CPU
    affinity, torch's intra- and inter-op threads, the math libraries' thread settings,
    ``CUDA_VISIBLE_DEVICES`` and the device memory share."""

    def train_fold(self, params: Mapping[str, Any], context: FoldContext) -> FoldResult:
        out = Path(os.environ[SHARE_ENV], f"{context.sweep_id}-{context.trial}-{context.fold}")
        report = {
            "worker": os.environ.get("SMPTUNE_WORKER_NAME"),
            "affinity": sorted(os.sched_getaffinity(0)),
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "omp": os.environ.get("OMP_NUM_THREADS"),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "memory_fraction": os.environ.get("SMPTUNE_CUDA_MEMORY_FRACTION"),
        }
        out.with_suffix(".json").write_text(json.dumps(report))
        return super().train_fold(params, context)


class OutOfMemory(QuadraticTrainable):
    """The quadratic trainable, running out of CUDA memory in the trials listed in
    ``$SMPTUNE_TEST_OOM_TRIALS`` (as torch raises it on a device shared by several slots)."""

    def train_fold(self, params: Mapping[str, Any], context: FoldContext) -> FoldResult:
        if str(context.trial) in os.environ.get(OOM_ENV, "").split(","):
            raise torch.cuda.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 39.39 GiB total "
                "capacity; 9.80 GiB allowed by the slot's memory fraction)"
            )
        return super().train_fold(params, context)
