"""The decoded dataset on disk, once per machine: memory-mapped ``.npy`` arrays.

A dataset is decoded (and normalised, padded, its masks mapped to labels) once, into
``<cache dir>/<key>/`` with ``images.npy``, ``masks.npy`` and ``meta.json``; every later
process on the machine maps those files instead of decoding again. The key hashes what the
arrays depend on: the data folder's file names, sizes and modification times (or the
synthetic options) and the options that shape the arrays. A folder is written under a
temporary name and renamed into place when complete, so two workers that build the same
entry at once never see (or leave) a partial one. Entries are never changed; delete the
cache folder at any time to reclaim the space.

The cache folder is ``$SMPTUNE_CACHE_DIR``, default ``~/.cache/smptune``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CACHE_ENV = "SMPTUNE_CACHE_DIR"
FORMAT = 1
log = logging.getLogger(__name__)

#: Allocates an array: ``(name, shape, dtype) -> writable array``.
Allocate = Callable[[str, tuple[int, ...], Any], np.ndarray]


def cache_dir() -> Path:
    """``$SMPTUNE_CACHE_DIR``, else ``~/.cache/smptune``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "smptune"


def folder_listing(*folders: Path) -> list[tuple[str, int, int]]:
    """``(path, size, mtime_ns)`` of every file in ``folders`` (not recursive), sorted."""
    listing = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.is_file():
                stat = entry.stat()
                listing.append((entry.path, stat.st_size, stat.st_mtime_ns))
    return sorted(listing)


def cache_key(content: Any) -> str:
    """A hex digest of ``content`` (JSON-able) and the cache format."""
    text = json.dumps({"format": FORMAT, "content": content}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _open(entry: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        arrays = {
            name: np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in meta["arrays"]
        }
    except (OSError, ValueError, KeyError) as exc:
        log.warning("data cache entry %s is unreadable (%s); decoding again", entry, exc)
        return None
    return arrays, meta["info"]


def cached(
    key: str,
    build: Callable[[Allocate], dict[str, Any]],
    *,
    enabled: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and info of entry ``key``, built with ``build(allocate)`` when missing.

    ``build`` allocates its arrays with ``allocate(name, shape, dtype)``, fills them and
    returns JSON-able info. Without a usable cache folder (or ``enabled=False``) the arrays
    are built in memory.
    """
    if enabled:
        root = cache_dir()
        found = _open(root / key)
        if found is not None:
            return found
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        except OSError as exc:
            log.warning("data cache %s is not writable (%s); decoding in memory", root, exc)
        else:
            return _build_on_disk(root / key, tmp, build)
    arrays: dict[str, np.ndarray] = {}

    def allocate(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        arrays[name] = np.empty(shape, dtype=dtype)
        return arrays[name]

    return arrays, build(allocate)


def _build_on_disk(
    entry: Path, tmp: Path, build: Callable[[Allocate], dict[str, Any]]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays: dict[str, np.memmap] = {}

    def allocate(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        path = tmp / f"{name}.npy"
        arrays[name] = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        return arrays[name]

    try:
        info = build(allocate)
        for array in arrays.values():
            array.flush()
        names = list(arrays)
        arrays.clear()
        (tmp / "meta.json").write_text(json.dumps({"arrays": names, "info": info}))
        try:
            tmp.rename(entry)
        except OSError:
            if not (entry / "meta.json").is_file():  # not another worker's finished copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    found = _open(entry)
    if found is None:
        raise OSError(f"data cache entry {entry} vanished after it was written")
    return found
