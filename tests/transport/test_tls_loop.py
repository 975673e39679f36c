"""Self-signed certificates for loopback/demo TLS, and the event loop choice."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import stat
from pathlib import Path

import uvloop
from cryptography import x509

from webims.transport import (
    client_context,
    ensure_self_signed,
    install_uvloop,
    loop_factory,
    run,
    server_context,
)


def test_self_signed_certificate_is_made_once(tmp_path: Path) -> None:
    cert, key = ensure_self_signed(tmp_path / "tls")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    first = cert.read_bytes()
    assert ensure_self_signed(tmp_path / "tls") == (cert, key)
    assert cert.read_bytes() == first  # reused, not regenerated
    ensure_self_signed(tmp_path / "tls", hosts=["localhost", "127.0.0.1", "wic.test"])
    assert cert.read_bytes() != first  # a host it lacks: made again


async def test_self_signed_certificate_verifies_on_loopback(certs: tuple[Path, Path]) -> None:
    """A client that trusts only this certificate completes a verified handshake
    to 127.0.0.1 (host name checked against the IP SAN)."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_context(*certs))
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(certs[0]), server_hostname="127.0.0.1")
        assert writer.get_extra_info("peercert") is not None
        writer.close()
        try:
            await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(), server_hostname="127.0.0.1")
        except ssl.SSLCertVerificationError:
            pass  # the system CAs do not know it
        else:
            raise AssertionError("an unknown self-signed certificate was accepted")
    finally:
        server.close()
        await server.wait_closed()


def test_run_uses_uvloop() -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert loop_factory() is uvloop.new_event_loop
    assert run(loop_module()).startswith("uvloop")


def test_install_uvloop_sets_policy() -> None:
    before = asyncio.get_event_loop_policy()
    try:
        assert install_uvloop() is True
        assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
    finally:
        asyncio.set_event_loop_policy(before)
