"""Registration benchmark (issue 5): N WSS clients register through the gateway into the lab IMS core.

Same as ``webims bench register``; see :mod:`webims.gateway.bench` for what is measured.
The last line is JSON.

    .venv/bin/python benchmarks/register.py --clients 2000 --rate 1000 --mode both
"""

from __future__ import annotations

import argparse
import sys

from webims.gateway.bench import add_arguments, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
