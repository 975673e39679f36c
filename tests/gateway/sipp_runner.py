"""Run one SIPp (Debian ``sip-tester``) scenario of tests/gateway/sipp/ from asyncio, bounded in time."""

from __future__ import annotations

import asyncio
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).with_name("sipp")


def require_sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        pytest.fail("sipp is not installed: apt-get install sip-tester (scripts/packages.txt)", pytrace=False)
    return path


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class SippResult:
    returncode: int
    output: str
    messages: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def report(self) -> str:
        return f"sipp exit {self.returncode}\n{self.output}\n--- messages ---\n{self.messages[-6000:]}"


class Sipp:
    """``sipp`` running ``scenario`` once (``-m 1``) as UAS (no remote) or UAC (``remote``)."""

    def __init__(
        self,
        workdir: Path,
        scenario: str,
        *,
        port: int,
        service: str,
        remote: tuple[str, int] | None = None,
        keys: dict[str, str] | None = None,
        timeout: int = 30,
    ) -> None:
        self.workdir = workdir
        self.name = Path(scenario).stem
        self.command = [require_sipp()]
        if remote is not None:
            self.command.append(f"{remote[0]}:{remote[1]}")
        self.command += [
            "-sf", str(SCENARIOS / scenario), "-s", service, "-i", "127.0.0.1", "-p", str(port),
            "-mp", str(free_udp_port()), "-m", "1", "-nostdin", "-trace_msg", "-trace_err",
            "-message_file", str(workdir / f"{self.name}_messages.log"),
            "-error_file", str(workdir / f"{self.name}_errors.log"),
            "-timeout", f"{timeout}s", "-timeout_error", "-max_recv_loops", "100",
        ]  # fmt: skip
        for key, value in (keys or {}).items():
            self.command += ["-key", key, value]
        self.timeout = timeout + 10
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Sipp:
        self.proc = await asyncio.create_subprocess_exec(
            *self.command, cwd=self.workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        return self

    async def finish(self) -> SippResult:
        assert self.proc is not None
        try:
            out, _ = await asyncio.wait_for(self.proc.communicate(), self.timeout)
        except TimeoutError:
            self.proc.kill()
            out, _ = await self.proc.communicate()
        logs = {
            kind: "\n".join(
                p.read_text(errors="replace") for p in self.workdir.glob(f"{self.name}_{kind}.log")
            )
            for kind in ("messages", "errors")
        }
        code = self.proc.returncode if self.proc.returncode is not None else -1
        return SippResult(code, out.decode(errors="replace")[-4000:] + logs["errors"], logs["messages"])

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
