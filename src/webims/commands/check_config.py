"""``webims check-config FILE``: validate a config file, print the effective values."""

from __future__ import annotations

import argparse

from webims.cli import command
from webims.config import load_config


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="TOML config file")


@command(
    "check-config",
    help="validate a config file and print the effective configuration",
    description="Validate FILE (with WEBIMS_<SECTION>__<KEY> environment overrides applied) "
    "and print every effective value with its source; secrets are masked. "
    "Exit status 0 when valid, 2 otherwise.",
    arguments=_arguments,
)
def run(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    print(f"OK: {args.file}")
    for line in config.summary():
        print(line)
    return 0
