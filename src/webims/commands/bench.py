"""``webims bench NAME ...``: the benchmarks, one subcommand each.

A benchmark registers itself with :func:`benchmark` (here, or in another module of
:mod:`webims.commands`: every one is imported before the parser is built)::

    def _arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--clients", type=int, default=1000)

    @benchmark("register", help="WSS clients registering through the gateway", arguments=_arguments)
    def _register(args: argparse.Namespace) -> int:
        from webims.gateway.bench import main   # heavy imports inside
        return main(args)

Each benchmark prints human-readable lines and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from webims.cli import EXIT_USAGE, CommandError, command

__all__ = ["Benchmark", "benchmark", "benchmarks"]

Runner = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Benchmark:
    name: str
    help: str
    run: Runner
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


_BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(
    name: str, *, help: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None
) -> Callable[[Runner], Runner]:
    """Decorator registering ``run(args) -> exit status`` as ``webims bench <name>``."""

    def register(run: Runner) -> Runner:
        old = _BENCHMARKS.get(name)
        if old is not None and (old.run.__module__, old.run.__qualname__) != (
            run.__module__,
            run.__qualname__,
        ):
            raise ValueError(f"benchmark {name!r} is already registered by {old.run.__module__}")
        _BENCHMARKS[name] = Benchmark(name, help, run, arguments)
        return run

    return register


def benchmarks() -> dict[str, Benchmark]:
    return dict(sorted(_BENCHMARKS.items()))


# --------------------------------------------------------------------------- the benchmarks


def _register_arguments(parser: argparse.ArgumentParser) -> None:
    from webims.gateway.bench import add_arguments

    add_arguments(parser)


@benchmark(
    "register",
    help="N WSS clients registering through the gateway into the lab IMS core (web-token, ims-digest)",
    arguments=_register_arguments,
)
def _register(args: argparse.Namespace) -> int:
    from webims.gateway.bench import main

    return main(args)


# --------------------------------------------------------------------------- the command


def _arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="NAME")
    for bench in benchmarks().values():
        p = sub.add_parser(bench.name, help=bench.help, description=bench.help)
        if bench.arguments is not None:
            bench.arguments(p)


@command("bench", help="run a benchmark (webims bench --help lists them)", arguments=_arguments)
def run(args: argparse.Namespace) -> int:
    name = getattr(args, "benchmark", None)
    if not name:
        raise CommandError(f"name a benchmark: {', '.join(benchmarks()) or 'none'}", EXIT_USAGE)
    return benchmarks()[name].run(args)
