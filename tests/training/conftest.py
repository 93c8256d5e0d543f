"""Fixtures of the training tests."""

from __future__ import annotations

import pytest

from smptune.training.cache import CACHE_ENV
from smptune.training.data import clear_cache


@pytest.fixture
def isolated_cache(tmp_path_factory, monkeypatch):
    """A dataset cache of the test's own, and no datasets held by this process around it."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
    clear_cache()
    yield
    clear_cache()
