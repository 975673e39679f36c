"""``webims bench call``: call set-ups per second through the gateway (issue 7)."""

from __future__ import annotations

import argparse

from webims.commands.bench import benchmark


def _arguments(parser: argparse.ArgumentParser) -> None:
    from webims.gateway.bench_call import add_arguments

    add_arguments(parser)


@benchmark(
    "call",
    help="call set-ups per second through the gateway's B2BUA (with media IWF allocation), its added latency",
    arguments=_arguments,
)
def _call(args: argparse.Namespace) -> int:
    from webims.gateway.bench_call import main

    return main(args)
