"""``python -m cli`` is the ``otklik`` command."""

import sys

from cli import main

sys.exit(main())
