"""Call set-up benchmark (same as ``webims bench call``): see webims.gateway.bench_call."""

from __future__ import annotations

import argparse
import sys

from webims.gateway.bench_call import add_arguments, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="call_setup", description=__doc__)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
