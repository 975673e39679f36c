"""``python -m webims`` is the ``webims`` command."""

import sys

from webims.cli import main

if __name__ == "__main__":
    sys.exit(main())
