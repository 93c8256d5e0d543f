"""Trainables written as a user's own modules would be, outside the package (tests/ is on
PYTHONPATH): :mod:`.plain` imports no torch at the top, :mod:`.torch_at_top` does."""
