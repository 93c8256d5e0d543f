"""What a person reads of a sweep: the results folder, report.html, plots, the Optuna study,
and live progress.

:mod:`.folder` (``summarize`` and the results folder), :mod:`.html` (report.html),
:mod:`.plots` (its figures, matplotlib), :mod:`.optuna_export` (the sweep as an Optuna
study), :mod:`.progress` (``producer status`` and the live bar). Importing the package imports
none of them (matplotlib only when a report is written); none imports the tasks.
"""

__all__ = ["folder", "html", "optuna_export", "plots", "progress"]
