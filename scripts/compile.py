"""Compile webims' per-message hot path with mypyc (run by scripts/setup.sh).

The modules in :data:`webims.native.COMPILED` are type-checked with ``mypy --strict``
already; mypyc turns them into C extensions next to their sources (``src/webims/...``),
which roughly halves the interpreter time of parsing, transactions and the transports.
``src/webims/_compiled.json`` records the hash of every compiled source: when a source
changes and is not compiled again, ``import webims`` runs all of them as pure Python
(:mod:`webims.native`), so an edit is never shadowed by a stale extension.

    .venv/bin/python scripts/compile.py          # compile when a source changed
    .venv/bin/python scripts/compile.py --clean  # remove the extensions (pure Python)

``WEBIMS_PURE=1`` in the environment skips the compilation here and ignores existing
extensions at run time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def _native() -> ModuleType:
    """webims/native.py on its own (importing the package would decide about the extensions)."""
    spec = importlib.util.spec_from_file_location("_webims_native", SRC / "webims" / "native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_n = _native()
COMPILED: tuple[str, ...] = _n.COMPILED
MANIFEST: str = _n.MANIFEST
manifest_for = _n.manifest_for
stale = _n.stale


def extensions() -> list[Path]:
    """Every compiled artefact in the source tree: the shared library and the per-module
    shims (webims has no other extension modules, so every ``.so`` under ``src``)."""
    return [*SRC.glob("*.so"), *(SRC / "webims").rglob("*.so")]


def clean() -> None:
    for path in extensions():
        path.unlink()
    (SRC / "webims" / MANIFEST).unlink(missing_ok=True)


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped]

    sources = [str(Path(*m.split(".")).with_suffix(".py")) for m in COMPILED]
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="webims-mypyc-") as tmp:
        os.chdir(SRC)
        try:
            ext_modules = mypycify(
                ["--strict", "--config-file", str(ROOT / "pyproject.toml"), *sources],
                opt_level="3", debug_level="0", target_dir=str(Path(tmp) / "c"),
            )
            setup(
                name="webims-native", ext_modules=ext_modules,
                script_args=["-q", "build_ext", "--inplace", "--build-temp", str(Path(tmp) / "o"),
                             "--build-lib", str(Path(tmp) / "lib"), "--parallel", str(os.cpu_count() or 1)],
            )  # fmt: skip
        finally:
            os.chdir(cwd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", action="store_true", help="remove the extensions")
    parser.add_argument("--force", action="store_true", help="compile even when nothing changed")
    args = parser.parse_args()
    if args.clean or os.environ.get("WEBIMS_PURE"):
        clean()
        return 0
    manifest_path = SRC / "webims" / MANIFEST
    current = manifest_for(SRC)
    if not args.force and manifest_path.exists() and not stale(json.loads(manifest_path.read_text()), SRC):
        return 0
    clean()
    started = time.monotonic()
    print(f"compile: mypyc over {len(COMPILED)} modules (once per change)", file=sys.stderr)
    output = io.StringIO()  # mypyc's notes ("Treating generator comprehension as list"): shown on failure
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            build()
    except (Exception, SystemExit) as exc:  # no compiler: pure Python still works
        clean()
        shutil.rmtree(SRC / "build", ignore_errors=True)
        print(output.getvalue(), file=sys.stderr)
        print(f"compile: failed ({exc}); webims runs as pure Python", file=sys.stderr)
        return 1
    manifest_path.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    print(f"compile: done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
