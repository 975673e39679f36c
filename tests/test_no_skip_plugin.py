"""webims.testing.no_skip (loaded by ``make test``): any skip or xfail fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_pytest(tmp_path: Path, source: str, *, plugin: bool = True) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(source)
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    ]
    if plugin:
        args += ["-p", "webims.testing.no_skip"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [*args, "test_inner.py"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )


PASSING = "def test_ok():\n    assert 1 + 1 == 2\n"


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        (
            PASSING + "\nimport pytest\n\n@pytest.mark.skip(reason='no chromium')\ndef test_s():\n    pass\n",
            "test_inner.py::test_s: Skipped: no chromium",
        ),
        (
            PASSING + "\nimport sys, pytest\n\n@pytest.mark.skipif(sys.maxsize > 0, reason='always')\n"
            "def test_s():\n    pass\n",
            "test_inner.py::test_s: Skipped: always",
        ),
        (
            PASSING + "\nimport pytest\n\ndef test_s():\n    pytest.skip('kamailio missing')\n",
            "test_inner.py::test_s: Skipped: kamailio missing",
        ),
        (
            PASSING + "\nimport pytest\n\n@pytest.mark.xfail(reason='later')\ndef test_x():\n    assert 0\n",
            "test_inner.py::test_x: xfail: later",
        ),
        (
            PASSING + "\nimport pytest\n\n@pytest.mark.xfail(reason='flaky')\ndef test_x():\n    pass\n",
            "test_inner.py::test_x: xfail: flaky",
        ),
        (
            "import pytest\npytest.importorskip('no_such_module_webims')\n" + PASSING,
            "test_inner.py: Skipped: could not import 'no_such_module_webims'",
        ),
    ],
)
def test_skips_and_xfails_fail_the_run(tmp_path: Path, source: str, shown: str) -> None:
    without = run_pytest(tmp_path, source, plugin=False)
    # pytest alone: success (or 5, "no tests collected", when the only module is skipped)
    assert without.returncode in (0, 5), without.stdout
    proc = run_pytest(tmp_path, source)
    assert proc.returncode == 1, proc.stdout
    assert "no-skip rule" in proc.stdout
    assert shown in proc.stdout


def test_clean_run_passes_and_failures_still_fail(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, PASSING)
    assert proc.returncode == 0, proc.stdout
    assert "no-skip rule" not in proc.stdout
    proc = run_pytest(tmp_path, PASSING + "\ndef test_bad():\n    assert False\n")
    assert proc.returncode == 1
