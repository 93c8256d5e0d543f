"""``python -m smptune`` is ``producer``."""

import sys

from smptune.producer import main

sys.exit(main())
