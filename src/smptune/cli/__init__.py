"""The command line: ``producer`` and ``workers``, one module per command.

:mod:`.producer` (the ``producer`` command), :mod:`.workers` (the ``workers`` command and its
supervisor), :mod:`.common` (what both share: ``--version``, ``-v``, completion). The top of
the tree: nothing in smptune imports this package. Importing it imports none of its modules.
"""
