"""The compiled hot path (webims.native, scripts/compile.py): used when fresh, never when
a source changed since it was compiled, never with WEBIMS_PURE."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from webims.native import COMPILED, MANIFEST, manifest_for, stale

SRC = Path(__file__).resolve().parent.parent / "src"
PROBE = (
    "import webims.native as n, webims.sip.parser as p, webims.endpoint as e\n"
    "m = p.parse(b'OPTIONS sip:a@b.test SIP/2.0\\r\\nVia: SIP/2.0/UDP h.test;branch=z9hG4bK1\\r\\n"
    "From: <sip:c@d.test>;tag=1\\r\\nTo: <sip:a@b.test>\\r\\nCall-ID: x\\r\\nCSeq: 1 OPTIONS\\r\\n"
    "Max-Forwards: 70\\r\\n\\r\\n')\n"
    "print(n.compiled(), p.__file__.endswith('.py'), e.__file__.endswith('.py'), m.method)\n"
)


def _probe(src: Path, **env: str) -> tuple[str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "WEBIMS_PURE"}
    environ.update(env, PYTHONPATH=str(src))
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=environ,
                          timeout=60, check=True)  # fmt: skip
    return done.stdout.strip(), done.stderr


def test_the_suite_runs_the_compiled_modules() -> None:
    """scripts/setup.sh compiled them (what the benchmarks measure is what the tests test)."""
    out, err = _probe(SRC)
    assert out == "True False False OPTIONS", f"not compiled ({out}): run scripts/compile.py\n{err}"


def test_webims_pure_runs_the_sources() -> None:
    out, _ = _probe(SRC, WEBIMS_PURE="1")
    assert out == "False True True OPTIONS"


def test_a_changed_source_runs_every_compiled_module_from_source(tmp_path: Path) -> None:
    copy = tmp_path / "src"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert _probe(copy)[0] == "True False False OPTIONS"  # the copy is fresh
    parser = copy / "webims" / "sip" / "parser.py"
    parser.write_text(parser.read_text() + "\n# edited\n")
    out, err = _probe(copy)
    assert out == "False True True OPTIONS"  # the endpoint too: no mix of stale and fresh
    assert "webims.sip.parser" in err and "scripts/compile.py" in err


def test_stale_names_what_changed(tmp_path: Path) -> None:
    root = tmp_path / "src"
    for module in COMPILED:
        path = root.joinpath(*module.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {module}\n")
    manifest = manifest_for(root)
    assert stale(manifest, root) == []
    target = root / "webims" / "sip" / "message.py"
    target.write_text("# webims.sip.message\n")  # same text, new mtime: the hash decides
    os.utime(target, ns=(1, 1))
    assert stale(manifest, root) == []
    target.write_text("# changed\n")
    assert stale(manifest, root) == ["webims.sip.message"]
    assert stale({**manifest, "python": "2.7.18"}, root) == list(COMPILED)
    assert stale(None, root) == list(COMPILED)
    assert stale({"python": manifest["python"], "modules": {}}, root) == list(COMPILED)


@pytest.mark.parametrize("module", COMPILED)
def test_every_compiled_module_is_recorded(module: str) -> None:
    recorded = json.loads((SRC / "webims" / MANIFEST).read_text())["modules"]
    assert module in recorded and stale({"python": sys.version.split()[0], "modules": recorded}, SRC) == []
