"""Run a test body in a fresh network namespace that has only loopback.

Browser media tests need it: outside one, Chromium gathers ICE candidates on
every interface of the machine and may use the non-loopback one.  Inside
``unshare --net`` there is only ``lo`` (brought up here), so the browser, the
servers under test and the peers all meet on 127.0.0.1 — and nothing can
leave the machine.

The body runs as a subprocess (``python worker.py ...``) that starts
everything it needs, and prints its results as one JSON object on its last
line of standard output::

    result = run_python_in_netns(Path(__file__).with_name("worker.py"), ["--case", "pcmu"], timeout=120)
    assert result["packets_received"] >= 100

Needs root (or user namespaces) and util-linux's ``unshare`` plus iproute2's
``ip``; :func:`netns_unavailable` says why not, so a test can fail (never skip
silently) with a clear message.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["NetnsError", "netns_command", "netns_unavailable", "run_in_netns", "run_python_in_netns"]


class NetnsError(RuntimeError):
    """The body failed, timed out, or printed no JSON result; carries its output."""

    def __init__(self, message: str, stdout: str = "", stderr: str = "") -> None:
        tail = "\n".join(x for x in (stdout[-4000:], stderr[-8000:]) if x)
        super().__init__(f"{message}\n{tail}" if tail else message)
        self.stdout = stdout
        self.stderr = stderr


def netns_unavailable() -> str | None:
    """None when a loopback-only namespace can be made here, else the reason."""
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} not found (util-linux / iproute2)"
    try:
        probe = subprocess.run(
            netns_command(["true"]), capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run unshare: {exc}"
    if probe.returncode != 0:
        return f"unshare --net failed (root needed?): {probe.stderr.strip()}"
    return None


def netns_command(argv: Sequence[str]) -> list[str]:
    """The command line that runs ``argv`` in a new network namespace with ``lo`` up."""
    return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "netns", *argv]


def run_in_netns(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a loopback-only namespace; the process group is killed on timeout."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        netns_command(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        stdout, stderr = proc.communicate()
        raise NetnsError(f"{argv[0]} timed out after {timeout:g} s", stdout, stderr) from None
    return subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)


def run_python_in_netns(
    script: str | Path,
    args: Sequence[str] = (),
    *,
    timeout: float = 180.0,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run a Python script (this interpreter) in the namespace; its last stdout line as JSON."""
    done = run_in_netns([sys.executable, str(script), *args], timeout=timeout, env=env)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise NetnsError(f"{script} exited with {done.returncode}", done.stdout, done.stderr)
    try:
        result = json.loads(lines[-1])
    except ValueError:
        raise NetnsError(f"{script} printed no JSON result", done.stdout, done.stderr) from None
    if not isinstance(result, dict):
        raise NetnsError(f"{script} printed JSON that is not an object", done.stdout, done.stderr)
    result.setdefault("_stderr", done.stderr[-4000:])
    return result
