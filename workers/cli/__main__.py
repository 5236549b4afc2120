"""``python -m workers.cli`` is the ``otklik`` command."""

import sys

from workers.cli import main

sys.exit(main())
