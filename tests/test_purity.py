"""The protocol cores are sans-IO (DESIGN.md §6.1): they never import asyncio,
socket, ssl, time, selectors, threading (nor other I/O or dynamic-import modules),
nor any webims module outside the cores (adapters such as webims.transport).

The check is static (``ast``), so a guarded import (``if TYPE_CHECKING:``, inside a
function) is refused too. ``python tests/test_purity.py`` runs it without pytest
(``make purity``); exit status 1 lists the offending imports.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
CORES = ("webims.sip", "webims.sdp", "webims.diameter", "webims.aka")
FORBIDDEN = (
    "asyncio",
    "socket",
    "ssl",
    "time",
    "selectors",
    "threading",
    "_thread",
    "multiprocessing",
    "concurrent",
    "subprocess",
    "socketserver",
    "http.client",
    "http.server",
    "urllib.request",
    "importlib",
    "uvloop",
    "aiohttp",
)


@dataclass(frozen=True)
class Violation:
    module: str
    lineno: int
    imported: str

    def __str__(self) -> str:
        return f"{self.module}:{self.lineno}: imports {self.imported}"


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def refused(name: str) -> bool:
    """Whether a protocol core may not import the absolute module ``name``."""
    if any(_under(name, bad) for bad in FORBIDDEN):
        return True
    if _under(name, "webims"):
        return name != "webims" and not any(_under(name, core) for core in CORES)
    return False


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute name of ``from <level dots><target> import ...`` inside ``module``."""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def find_violations(source: str, module: str, is_package: bool = False) -> list[Violation]:
    """Imports in ``source`` (the text of ``module``) that a protocol core must not make."""
    found: list[Violation] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.stmt | ast.expr):
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve(module, is_package, node.level, node.module)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        for name in names:
            if refused(name):
                found.append(Violation(module, node.lineno, name))
                break
    return found


def core_modules(src: Path = SRC) -> list[tuple[str, Path]]:
    """(module name, file) of every module of the cores that exist."""
    out = []
    for core in CORES:
        base = src.joinpath(*core.split("."))
        files = sorted(base.rglob("*.py")) if base.is_dir() else []
        if base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py"))
        for file in files:
            rel = file.relative_to(src).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out.append((".".join(parts), file))
    return out


def check_tree(src: Path = SRC) -> list[Violation]:
    found = []
    for module, file in core_modules(src):
        found += find_violations(file.read_text(encoding="utf-8"), module, file.name == "__init__.py")
    return found


# ------------------------------------------------------------------- the real check


def test_at_least_one_core_exists() -> None:
    assert any(module == "webims.sip" for module, _ in core_modules()), "webims.sip not found"


def test_protocol_cores_import_no_io() -> None:
    violations = check_tree()
    assert not violations, "protocol cores must stay sans-IO:\n" + "\n".join(map(str, violations))


# ------------------------------------------------- the check itself, on synthetic code

REFUSED_SOURCES = [
    ("import asyncio", "asyncio"),
    ("import socket as s", "socket"),
    ("import os, ssl", "ssl"),
    ("from time import monotonic", "time"),
    ("import time as _t", "time"),
    ("import selectors", "selectors"),
    ("from threading import Lock", "threading"),
    ("import concurrent.futures", "concurrent.futures"),
    ("from urllib import request", "urllib.request"),
    ("import importlib\nimportlib.import_module('socket')", "importlib"),
    ("mod = __import__('time')", "time"),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import asyncio\n", "asyncio"),
    ("def later():\n    import socket\n    return socket\n", "socket"),
    ("try:\n    import uvloop\nexcept ImportError:\n    uvloop = None\n", "uvloop"),
    ("from webims.transport import ws", "webims.transport"),
    ("import webims.transport.tcp", "webims.transport.tcp"),
    ("from webims import gateway", "webims.gateway"),
    ("from webims.config import load_config", "webims.config"),
    ("from ..transport import udp", "webims.transport"),
    ("from .. import store", "webims.store"),
]

ALLOWED_SOURCES = [
    "import os, hashlib, hmac, secrets, re",
    "from dataclasses import dataclass",
    "import datetime",
    "from urllib.parse import quote",
    "from collections.abc import Iterator",
    "from webims.sip.errors import ParseError",
    "from .errors import ParseError",
    "from . import errors",
    "from ..aka import milenage",
    "import webims.sdp",
    "from webims import sip",
    "import timeit_like_name",
    "x = 'import socket'",
]


@pytest.mark.parametrize(("source", "name"), REFUSED_SOURCES)
def test_check_refuses(source: str, name: str) -> None:
    found = find_violations(source, "webims.sip.fake")
    assert [v.imported for v in found] == [name]
    assert found[0].module == "webims.sip.fake"


@pytest.mark.parametrize("source", ALLOWED_SOURCES)
def test_check_allows(source: str) -> None:
    assert find_violations(source, "webims.sip.fake") == []


def test_relative_import_resolution_in_package_init() -> None:
    # in webims/sip/__init__.py, "." is webims.sip itself and ".." is webims
    assert find_violations("from .transaction import X", "webims.sip", is_package=True) == []
    found = find_violations("from ..gateway import X", "webims.sip", is_package=True)
    assert [v.imported for v in found] == ["webims.gateway"]


def test_check_tree_finds_a_planted_import(tmp_path: Path) -> None:
    pkg = tmp_path / "webims" / "sdp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""SDP."""\n')
    (pkg / "offer.py").write_text("import json\n\n\ndef f() -> None:\n    import time\n")
    (tmp_path / "webims" / "transport.py").write_text("import asyncio\n")  # not a core
    found = check_tree(tmp_path)
    assert [str(v) for v in found] == ["webims.sdp.offer:5: imports time"]


def main() -> int:
    violations = check_tree()
    cores = sorted({m.split(".")[1] for m, _ in core_modules()})
    for v in violations:
        print(v, file=sys.stderr)
    if violations:
        print(f"purity: {len(violations)} forbidden import(s) in the protocol cores", file=sys.stderr)
        return 1
    print(f"purity: OK ({', '.join(cores)}: no I/O imports)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
