"""``python -m smptune`` is ``producer``."""

import sys

from smptune.cli.producer import main

sys.exit(main())
