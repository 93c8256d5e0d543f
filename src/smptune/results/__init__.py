"""What a person reads of a sweep: the results folder, report.html, plots, the Optuna study,
and live progress.

:mod:`.summary` (``summarize``: the typed :class:`~.summary.SweepResults`), :mod:`.folder`
(the results folder), :mod:`.html` with :mod:`.html_parts` and :mod:`.html_final`
(report.html), :mod:`.plots` with :mod:`.plot_base` and :mod:`.plots_space` (its figures,
matplotlib), :mod:`.optuna_export` (the sweep as an Optuna study), :mod:`.progress`
(``producer status`` and the live bar). Importing the package imports none of them
(matplotlib only when a report is written); none imports the tasks.
"""

__all__ = [
    "folder",
    "html",
    "html_final",
    "html_parts",
    "optuna_export",
    "plot_base",
    "plots",
    "plots_space",
    "progress",
    "summary",
]
