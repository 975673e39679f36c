"""A test peer run as a foreground daemon: start it, wait until it answers, stop it, keep its log.

The common part of :mod:`webims.testing.kamailio` and :mod:`webims.testing.rtpengine`
(synchronous and subprocess-based, so it suits pytest fixtures whether or not the
test is async). A subclass gives the command line (:attr:`ManagedProcess.command`)
and a readiness probe (:meth:`ManagedProcess.ready`); then:

* :meth:`~ManagedProcess.start` runs the command in its own session
  (``start_new_session``), stdout and stderr into :attr:`~ManagedProcess.log_path`,
  and polls :meth:`~ManagedProcess.ready` until it is true; an early exit or no
  answer within the timeout raises :attr:`~ManagedProcess.error` with the log's tail;
* :meth:`~ManagedProcess.stop` sends SIGTERM, then SIGKILL to the process group
  after a grace period, and SIGKILL to whatever the session left behind (children
  of a main process that died on its own); the log stays readable
  (:meth:`~ManagedProcess.log_text`) once stopped.
"""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["ManagedProcess", "StartStop", "cpu_seconds", "session_members"]


def session_members(sid: int, program: str) -> list[int]:
    """PIDs of the processes of session ``sid`` whose command line names ``program`` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # fields: state ppid pgrp session ...
        if int(fields[3]) == sid and program.encode() in cmdline:
            members.append(int(entry.name))
    return members


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` (all its threads) has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StartStop(abc.ABC):
    """``with harness:`` starts it, and stops it however the block ends."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> object: ...

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ManagedProcess(StartStop):
    """One daemon in the foreground, named ``name`` in messages, run in ``workdir``."""

    #: Raised when the daemon does not start or does not become ready.
    error: type[Exception] = RuntimeError
    #: What :meth:`ready` waits for (in the timeout message), e.g. "SIP OPTIONS".
    probe = "the readiness probe"
    #: Seconds between two probes that failed.
    poll_interval = 0.2
    #: Default size of :meth:`log_tail`, in characters.
    log_limit = 20_000

    def __init__(self, name: str, workdir: Path, log_path: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        #: Exit status of the last run (None while running or never started).
        self.returncode: int | None = None
        self._program = ""
        self._log_text: str | None = None

    @property
    @abc.abstractmethod
    def command(self) -> list[str]:
        """The command line (its first word names the program)."""

    @abc.abstractmethod
    def ready(self) -> bool:
        """One readiness probe: True once the daemon answers."""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self, timeout: float = 30.0) -> None:
        """Start in the foreground and wait until :meth:`ready`."""
        if self.process is not None:
            raise self.error(f"{self.name}: already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log_text = None
        command = self.command
        self._program = Path(command[0]).name
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self.error(
                    f"{self.name}: {self._program} exited with status {self.process.returncode}\n"
                    f"{self.log_tail()}"
                )
            if self.ready():
                return
            time.sleep(self.poll_interval)
        self.stop()
        raise self.error(f"{self.name}: no answer to {self.probe} within {timeout} s\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM; SIGKILL to its process group after ``timeout``. Returns the exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                # Still alive, so its process group (start_new_session) is still ours.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout)
        # A main process that died on its own may leave children behind.
        for pid in session_members(process.pid, self._program):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._log_text = self._read_log()
        self.process = None
        self.returncode = process.returncode
        return self.returncode

    def _read_log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        """Everything the daemon logged so far (kept in memory once stopped)."""
        return self._log_text if self._log_text is not None else self._read_log()

    def log_tail(self, limit: int | None = None) -> str:
        """The last ``limit`` characters of the log (default :attr:`log_limit`), under a title line."""
        tail = self.log_text()[-(self.log_limit if limit is None else limit) :]
        return f"--- {self.name} log ({self.log_path}) ---\n{tail}"
