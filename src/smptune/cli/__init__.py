"""The command line: ``producer`` and ``workers``, one module per command and subcommand.

:mod:`.producer` (the ``producer`` command: its parser, its error handling, and the table of
its subcommands), one module per subcommand (:mod:`.submit`, :mod:`.status`, :mod:`.flower`,
:mod:`.results`, :mod:`.cancel`, :mod:`.resume`, :mod:`.extend`, :mod:`.delete`, :mod:`.gc`,
:mod:`.dashboard`, :mod:`.predict`, :mod:`.list`), each with ``add_parser(subparsers)`` and
``run(args)``; :mod:`.broker` and :mod:`.output` (what the subcommands share: the broker and
its store; the console and an ended sweep's outcome); :mod:`.workers` (the ``workers``
command; its supervisor is :mod:`smptune.worker.supervisor`); :mod:`.common` (what both
commands share: ``--version``, ``-v``, completion). The top of the tree: nothing in smptune
imports this package. Importing it imports none of its modules.
"""
