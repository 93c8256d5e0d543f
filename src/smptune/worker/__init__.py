"""The worker runtime: what runs inside a ``workers`` process.

:mod:`.app` (the Celery app and its settings, shared with the producer, which sends with it),
:mod:`.tasks` (the three Celery tasks), :mod:`.trial_run` (one trial's folds on a worker),
:mod:`.host_share` (how the workers of one machine share its cores and device memory; a
trainable reads its share from here), :mod:`.supervisor` (the ``workers`` command's supervisor:
one Celery worker process per device, kept alive, stopped, given back on preemption),
:mod:`.local_fleet` (local mode: an embedded Redis and this machine's workers). Importing
the package imports none of its modules.
"""
