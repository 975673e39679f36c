"""``webims serve COMPONENT``: run one component from a config file.

A component is a subpackage ``webims.<name>`` exposing ``serve(config: Config) -> int``
(e.g. ``labcore``, ``auth``, ``gateway``, ``web``, ``media``).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import webims
from webims.cli import EXIT_USAGE, CommandError, add_config_option, command, config_from_args, entry_point


def available() -> list[str]:
    """Subpackages whose ``__init__.py`` defines ``serve`` (read, not imported)."""
    found = []
    for base in webims.__path__:
        for init in sorted(Path(base).glob("*/__init__.py")):
            text = init.read_text(encoding="utf-8", errors="replace")
            if re.search(r"^(?:async )?def serve\(|^from \S+ import .*\bserve\b", text, re.M):
                found.append(init.parent.name)
    return found


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("component", metavar="COMPONENT", help="labcore, auth, gateway, web, media ...")
    add_config_option(parser)


@command("serve", help="run a component (webims.<COMPONENT>.serve) from a config file", arguments=_arguments)
def run(args: argparse.Namespace) -> int:
    name: str = args.component
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise CommandError(f"invalid component name {name!r}", EXIT_USAGE)
    config = config_from_args(args)
    try:
        serve = entry_point(f"webims.{name}", "serve", f"component {name!r}")
    except CommandError as exc:
        choices = ", ".join(available()) or "none yet"
        raise CommandError(f"{exc} (components: {choices})", EXIT_USAGE) from None
    return int(serve(config))
