"""The ``webims`` command line (DESIGN.md §4).

Subcommands are registered, not listed here: every module in the
:mod:`webims.commands` package is imported when the parser is built, and each one
registers its subcommand(s) with :func:`command`::

    # src/webims/commands/subscriber.py
    from webims.cli import CommandError, add_config_option, command, config_from_args

    def _arguments(parser: argparse.ArgumentParser) -> None:
        add_config_option(parser)
        parser.add_argument("impi")

    @command("subscriber", help="provision IMS subscribers", arguments=_arguments)
    def run(args: argparse.Namespace) -> int:
        config = config_from_args(args)
        ...
        return 0

Keep command modules light (import heavy implementations inside ``run``) so that
``webims --help`` stays fast. Exit statuses: 0 success, 1 failure, 2 usage or
configuration error, 130 interrupted. An unexpected exception prints one line
(``--debug`` prints the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import webims
from webims.config import Config, ConfigError, LogConfig, load_config

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CONFIG_ENV = "WEBIMS_CONFIG"

Runner = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A failure the user can act on: printed as one line, exit ``status``."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Runner
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    description: str | None = None


_COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    *,
    help: str,
    arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    description: str | None = None,
) -> Callable[[Runner], Runner]:
    """Decorator registering ``run(args) -> exit status`` as subcommand ``name``."""

    def register(run: Runner) -> Runner:
        old = _COMMANDS.get(name)
        where = (run.__module__, run.__qualname__)
        if old is not None and (old.run.__module__, old.run.__qualname__) != where:
            raise ValueError(f"subcommand {name!r} is already registered by {old.run.__module__}")
        _COMMANDS[name] = Command(name, help, run, arguments, description)
        return run

    return register


def commands() -> dict[str, Command]:
    """All registered subcommands, after importing :mod:`webims.commands`."""
    package = importlib.import_module("webims.commands")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"webims.commands.{info.name}")
    return dict(sorted(_COMMANDS.items()))


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``-c/--config FILE`` (default: $WEBIMS_CONFIG, else built-in defaults)."""
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=os.environ.get(CONFIG_ENV) or None,
        help=f"TOML config file (default: ${CONFIG_ENV}; without one, built-in defaults). "
        "Every key can be overridden by WEBIMS_<SECTION>__<KEY>.",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    """Load the config named by ``--config`` and set up logging from it."""
    from webims.log import setup_logging

    config = load_config(getattr(args, "config", None))
    setup_logging(
        config.get(LogConfig),
        secrets=config.secret_values(),
        level="debug" if getattr(args, "debug", False) else None,
    )
    return config


def entry_point(module: str, attribute: str, what: str) -> Callable[..., Any]:
    """Import ``module`` and return its callable ``attribute``, or raise CommandError."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            raise CommandError(f"{what} is not available: module {module} does not exist") from None
        raise CommandError(f"{what} cannot be loaded: {module} needs missing module {exc.name!r}") from None
    target = getattr(mod, attribute, None)
    if not callable(target) or isinstance(target, type(sys)):
        raise CommandError(f"{what} is not available: {module} has no function {attribute}()")
    return target  # type: ignore[no-any-return]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webims",
        description="WebRTC access to IMS: WebRTC signalling gateway (eP-CSCF), authentication "
        "(WAF), web server (WWSF), media interworking, and a lab IMS core.",
    )
    parser.add_argument("--version", action="version", version=f"webims {webims.__version__}")
    parser.add_argument("--debug", action="store_true", help="debug logging; tracebacks on errors")
    common = argparse.ArgumentParser(add_help=False)  # --debug after the subcommand too
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for cmd in commands().values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description or cmd.help, parents=[common])
        p.set_defaults(_run=cmd.run)
        if cmd.arguments is not None:
            cmd.arguments(p)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Runner | None = getattr(args, "_run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    prefix = f"webims {args.command}"
    try:
        return int(run(args))
    except ConfigError as exc:
        print(f"{prefix}: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"{prefix}: error: {_one_line(exc)} (--debug for a traceback)", file=sys.stderr)
        return EXIT_FAILURE
