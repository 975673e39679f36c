"""webims.testing.ports and webims.testing.process: the helpers under the Kamailio and
rtpengine harnesses, checked with real sockets and real (small Python) daemons."""

from __future__ import annotations

import random
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from webims.testing.ports import EPHEMERAL_LOW, free_port, free_port_block
from webims.testing.process import ManagedProcess


def _binds(port: int, kind: socket.SocketKind, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def test_free_port_is_free_for_udp_and_tcp() -> None:
    port = free_port()
    assert _binds(port, socket.SOCK_STREAM) and _binds(port, socket.SOCK_DGRAM)


def test_free_port_skips_ports_taken_on_the_other_protocol() -> None:
    # Hold the UDP side of many TCP-free ports: none of them may come back.
    held: list[socket.socket] = []
    try:
        for _ in range(20):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        taken = {s.getsockname()[1] for s in held}
        for _ in range(20):
            assert free_port() not in taken
    finally:
        for sock in held:
            sock.close()


def test_free_port_hands_out_a_port_once() -> None:
    # Nothing binds them here, so the kernel may pick a port again for a later probe (500 random
    # picks from its ~28,000 ephemeral ports repeat one almost surely): free_port must not give
    # it out twice, or two peers of one test get the same port.
    ports = [free_port(tcp=False) for _ in range(500)]
    assert len(set(ports)) == len(ports)


def test_free_port_one_protocol() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        assert _binds(free_port(tcp=False), socket.SOCK_DGRAM)
        assert _binds(free_port(udp=False), socket.SOCK_STREAM)
    with pytest.raises(ValueError):
        free_port(udp=False, tcp=False)


def test_free_port_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.fail("no IPv6 support in this Python build")
    port = free_port("::1")
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.bind(("::1", port))


def test_free_port_block_is_even_below_ephemeral_and_free() -> None:
    first, last = free_port_block(10, rng=random.Random(7))
    assert last - first + 1 == 10 and first % 2 == 0
    assert first >= 10_000 and last < EPHEMERAL_LOW
    assert all(_binds(p, socket.SOCK_DGRAM) for p in range(first, last + 1))
    with pytest.raises(ValueError):
        free_port_block(1)


class _Daemon(ManagedProcess):
    """A Python one-liner as the daemon; ready once it has written ``ready`` in its workdir."""

    probe = "the ready file"
    poll_interval = 0.02

    def __init__(self, workdir: Path, script: str) -> None:
        super().__init__("pyd", workdir, workdir / "pyd.log")
        self.script = script

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-u", "-c", self.script]

    def ready(self) -> bool:
        return (self.workdir / "ready").exists()


_READY = "import pathlib, time; print('hello from pyd'); pathlib.Path('ready').touch(); "


def test_start_waits_until_ready_and_stop_keeps_the_log(tmp_path: Path) -> None:
    with _Daemon(tmp_path, _READY + "time.sleep(60)") as daemon:
        assert daemon.running and daemon.pid is not None
    assert not daemon.running and daemon.process is None
    assert daemon.returncode == -signal.SIGTERM
    assert "hello from pyd" in daemon.log_text()
    assert daemon.log_tail(4) == f"--- pyd log ({tmp_path / 'pyd.log'}) ---\npyd\n"


def test_early_exit_is_an_error_with_the_log(tmp_path: Path) -> None:
    daemon = _Daemon(tmp_path, "import sys; print('bad config line 3'); sys.exit(3)")
    with pytest.raises(RuntimeError, match=r"(?s)pyd: python.* exited with status 3.*bad config line 3"):
        daemon.start(timeout=30)
    assert daemon.stop() == 3


def test_no_answer_within_the_timeout_stops_it(tmp_path: Path) -> None:
    daemon = _Daemon(tmp_path, "import time; time.sleep(60)")
    with pytest.raises(RuntimeError, match=r"pyd: no answer to the ready file within 0\.3 s"):
        daemon.start(timeout=0.3)
    assert not daemon.running and daemon.returncode == -signal.SIGTERM


def test_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    script = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + _READY + "time.sleep(60)"
    daemon = _Daemon(tmp_path, script)
    daemon.start()
    assert daemon.stop(timeout=0.5) == -signal.SIGKILL


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie is gone, its parent not yet told


def _dies(pid: int, within: float = 10.0) -> bool:
    """Whether ``pid`` is gone within ``within`` seconds (SIGKILL takes effect asynchronously)."""
    deadline = time.monotonic() + within
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_children_left_by_the_main_process_are_killed(tmp_path: Path) -> None:
    script = (
        "import pathlib, subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "pathlib.Path('child').write_text(str(child.pid)); pathlib.Path('ready').touch(); time.sleep(60)"
    )
    daemon = _Daemon(tmp_path, script)
    daemon.start()
    child = int((tmp_path / "child").read_text())
    assert _alive(child)
    daemon.stop()  # SIGTERM reaches the main process only; the sweep finds the child
    assert _dies(child)


def test_sipp_safe_rands_give_res_without_zero_bytes() -> None:
    """SIPp computes AKAv1-MD5 with RES as a C string: the RANDs drawn for it never give a
    RES with a 0x00 byte, and they are fresh each time (about 3 % of random RANDs would fail)."""
    from webims.aka.milenage import Milenage
    from webims.testing.sipp import sipp_safe_rands

    k, op = b"webims-test-k001", b"webims-operator!"
    draw = sipp_safe_rands(k, op)
    rands = [draw() for _ in range(300)]
    milenage = Milenage.from_op(k, op)
    assert all(len(r) == 16 and b"\0" not in milenage.f2(r) for r in rands)
    assert len(set(rands)) == len(rands)
