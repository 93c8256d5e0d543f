"""A configuration's hyperparameter values: the one open-ended mapping the package passes.

A configuration is whatever names the sweep's space and its trainable's defaults hold, each
to a JSON value (a number, a string, a bool, a list); nothing above the search space can
know its keys, so it stays a mapping by name. Everything else with known fields is a typed
record (:mod:`smptune.records`, :mod:`smptune.messages`, :mod:`smptune.results.summary`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

__all__ = ["Params", "ParamsView"]

#: a configuration being built or recorded: hyperparameter name -> value
Params: TypeAlias = dict[str, Any]
#: a configuration read only
ParamsView: TypeAlias = Mapping[str, Any]
