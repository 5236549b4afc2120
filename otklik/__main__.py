"""``python -m otklik`` is the ``otklik`` command."""

import sys

from otklik.cli import main

sys.exit(main())
