"""The label a trial's task message carries: the ``argsrepr`` that Flower shows.

A trial's ``argsrepr`` is sent in the task message's headers and in the
``task-sent``/``task-received`` events; it is what Flower's *args* column shows. The queue
(submitting a sweep) and the worker (extending an open-ended one) label trials alike.
"""

from __future__ import annotations

from collections.abc import Iterable

from smptune.params import ParamsView
from smptune.search.distributions import param_text

#: The parameter part of a trial's label is cut to about this many characters.
PARAMS_MAX_CHARS = 120


def trial_argsrepr(
    sweep_id: str,
    trial: int,
    params: ParamsView | None = None,
    names: Iterable[str] = (),
) -> str:
    """``trial 7: learning_rate=0.0012, model_arch=Unet (sweep=<id>)``.

    The parameters come first: Flower's args column is narrow, and its uuid column already
    shows sweep and trial (``<sweep>-trial-<n>``). They are shown for the searched ``names``
    that ``params`` holds (floats to 4 significant digits, cut at a parameter boundary near
    :data:`PARAMS_MAX_CHARS`); ``params`` None (an adaptive sampler chooses them when the
    trial starts) gives ``trial 7 (sweep=<id>)``.
    """
    text = ""
    if params:
        for name in names:
            if name not in params:
                continue
            item = param_text(name, params[name])
            candidate = f"{text}, {item}" if text else item
            if len(candidate) > PARAMS_MAX_CHARS:
                text = (text + ", …") if text else item[: PARAMS_MAX_CHARS - 1] + "…"
                break
            text = candidate
    return f"trial {trial}{': ' + text if text else ''} (sweep={sweep_id})"
