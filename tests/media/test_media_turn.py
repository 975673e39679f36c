"""TURN REST credentials checked against OpenSSL's HMAC and against a real coturn (use-auth-secret)."""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint

from webims.media.turn import turn_credentials, turn_password
from webims.testing.ports import free_port

SECRET = "north-wind-shared-secret"


def test_password_matches_openssl_hmac_sha1() -> None:
    """base64(HMAC-SHA1(secret, username)), computed independently by the openssl CLI."""
    username = "1700000000:alice@ims.test"
    openssl = subprocess.run(
        ["openssl", "dgst", "-sha1", "-hmac", SECRET, "-binary"],
        input=username.encode(),
        capture_output=True,
        check=True,
    )
    assert turn_password(SECRET, username) == base64.b64encode(openssl.stdout).decode()


def test_credentials_shape() -> None:
    creds = turn_credentials(SECRET, "alice", now=1_700_000_000.7, ttl=3600, urls=["turn:127.0.0.1:3478"])
    assert creds.username == "1700003600:alice" and creds.expires == 1_700_003_600
    assert creds.password == turn_password(SECRET, "1700003600:alice")
    assert creds.ice_server() == {
        "urls": ["turn:127.0.0.1:3478"],
        "username": "1700003600:alice",
        "credential": creds.password,
    }
    assert turn_credentials(SECRET, "", now=10, ttl=5).username == "15"
    with pytest.raises(ValueError):
        turn_credentials(SECRET, "alice", now=0, ttl=0)


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[tuple[str, int]]:
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.fail("turnserver missing: apt-get install coturn (scripts/packages.txt)", pytrace=False)
    port = free_port()  # coturn listens on UDP and TCP
    log = tmp_path / "turnserver.log"
    proc = subprocess.Popen(
        [
            binary,
            "-n",
            "--listening-ip=127.0.0.1",
            f"--listening-port={port}",
            "--relay-ip=127.0.0.1",
            "--min-port=49152",
            "--max-port=49200",
            "--use-auth-secret",
            f"--static-auth-secret={SECRET}",
            "--realm=ims.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            "--simple-log",
            f"--log-file={log}",
            "--pidfile",
            str(tmp_path / "turn.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _answers_stun(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"turnserver did not start: {_read(log)[-2000:]}", pytrace=False)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers_stun(port: int) -> bool:
    """A STUN Binding request (RFC 8489 §5) gets an answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(bytes.fromhex("000100002112a442") + bytes(12), ("127.0.0.1", port))
        try:
            return len(s.recv(1500)) >= 20
        except OSError:
            return False


def _read(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    # coturn may add a date suffix to the log file name
    for extra in path.parent.glob(path.stem + "*"):
        if extra != path:
            text += extra.read_text(errors="replace")
    return text


async def _allocate(server: tuple[str, int], username: str, password: str) -> tuple[str, int]:
    transport, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol, server, username, password, lifetime=60
    )
    try:
        relayed = transport.get_extra_info("sockname")
        return relayed[0], relayed[1]
    finally:
        transport.close()


async def test_coturn_accepts_our_credentials(coturn: tuple[str, int]) -> None:
    creds = turn_credentials(SECRET, "alice@ims.test", now=time.time(), ttl=600)
    host, port = await _allocate(coturn, creds.username, creds.password)
    assert host == "127.0.0.1" and 49152 <= port <= 49200


async def test_coturn_rejects_wrong_secret_and_expired(coturn: tuple[str, int]) -> None:
    wrong = turn_credentials("another-secret", "alice", now=time.time(), ttl=600)
    with pytest.raises(stun.TransactionFailed):
        await _allocate(coturn, wrong.username, wrong.password)
    expired = turn_credentials(SECRET, "alice", now=time.time() - 7200, ttl=60)
    with pytest.raises(stun.TransactionFailed):
        await _allocate(coturn, expired.username, expired.password)
