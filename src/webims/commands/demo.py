"""``webims demo``: everything in one process with embedded defaults (DESIGN.md §4)."""

from __future__ import annotations

import argparse

from webims.cli import add_config_option, command, config_from_args, entry_point


@command(
    "demo",
    help="run everything in one process (embedded defaults, demo subscribers) and print the URLs",
    arguments=add_config_option,
)
def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    demo = entry_point("webims.demo", "run", "the demo")
    return int(demo(config))
