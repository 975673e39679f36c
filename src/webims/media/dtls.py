"""DTLS-SRTP (RFC 5764) key agreement, sans-IO, on pyOpenSSL memory BIOs.

:class:`DtlsCertificate` is the IWF's self-signed certificate (ECDSA P-256,
as browsers use) and its ``a=fingerprint`` (RFC 8122).  A
:class:`DtlsSrtpEndpoint` runs one handshake: datagrams in
(:meth:`~DtlsSrtpEndpoint.receive`), datagrams out (return values), a timer
(:meth:`~DtlsSrtpEndpoint.get_timer` / :meth:`~DtlsSrtpEndpoint.handle_timer`,
``now`` in seconds).  When it is ``CONNECTED`` the peer's certificate has
matched the fingerprint from its SDP (RFC 8122 §5, RFC 8842 §5) and
:attr:`~DtlsSrtpEndpoint.keys` holds the SRTP master keys exported with the
``EXTRACTOR-dtls_srtp`` label (RFC 5764 §4.2).  The SRTP profiles and
certificate generation are aiortc's.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from aiortc.rtcdtlstransport import SRTP_PROFILES, SRTPProtectionProfile, generate_certificate
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from ..sdp import Fingerprint

__all__ = ["DtlsCertificate", "DtlsRole", "DtlsSrtpEndpoint", "DtlsState", "SrtpKeys"]

DtlsRole = Literal["client", "server"]
_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
)
_MAX_DATAGRAM = 16384


class DtlsState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True)
class SrtpKeys:
    """SRTP master key || salt for each direction and the libsrtp profile (RFC 5764 §4.2)."""

    profile: int
    tx: bytes
    rx: bytes
    name: str


class DtlsCertificate:
    """A self-signed certificate and key, with one SSL context shared by every handshake."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert
        self.der = cert.public_bytes(serialization.Encoding.DER)
        self._context: SSL.Context | None = None

    @classmethod
    def generate(cls) -> DtlsCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(key, generate_certificate(key))

    def fingerprint(self, algorithm: str = "sha-256") -> Fingerprint:
        return Fingerprint.of_certificate(self.der, algorithm)

    def context(self) -> SSL.Context:
        if self._context is None:
            ctx = SSL.Context(SSL.DTLS_METHOD)
            ctx.set_options(SSL.OP_NO_TICKET)
            # Any certificate is accepted here; it is checked against the SDP fingerprint after.
            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True)
            ctx.use_certificate(self.cert)
            ctx.use_privatekey(self.key)
            ctx.set_cipher_list(_CIPHERS)
            ctx.set_tlsext_use_srtp(b":".join(p.openssl_profile for p in SRTP_PROFILES))
            self._context = ctx
        return self._context


class DtlsSrtpEndpoint:
    """One DTLS-SRTP handshake (client or server, RFC 5764 §4.1; role from ``a=setup``, RFC 8842)."""

    def __init__(
        self, certificate: DtlsCertificate, role: DtlsRole, remote_fingerprints: Sequence[Fingerprint]
    ) -> None:
        self.role: DtlsRole = role
        self.state = DtlsState.NEW
        self.failure = ""
        self.keys: SrtpKeys | None = None
        self._remote_fingerprints = tuple(remote_fingerprints)
        self._ssl = SSL.Connection(certificate.context(), None)
        if role == "server":
            self._ssl.set_accept_state()
        else:
            self._ssl.set_connect_state()
        self._deadline: float | None = None

    # -- driving -----------------------------------------------------------------------------

    def start(self, now: float) -> list[bytes]:
        """Begin the handshake (a client sends its ClientHello)."""
        if self.state is DtlsState.NEW:
            self.state = DtlsState.CONNECTING
            self._handshake(now)
        return self._pending(now)

    def receive(self, data: bytes, now: float) -> list[bytes]:
        """A DTLS record from the peer (RFC 7983: first byte 20..63)."""
        if self.state in (DtlsState.FAILED, DtlsState.CLOSED):
            return []
        if self.state is DtlsState.NEW:
            self.state = DtlsState.CONNECTING
        self._ssl.bio_write(data)
        if self.state is DtlsState.CONNECTING:
            self._handshake(now)
        else:
            try:
                self._ssl.recv(1500)  # no application data on a DTLS-SRTP association
            except SSL.ZeroReturnError:
                self.state = DtlsState.CLOSED
                self.failure = "DTLS close_notify from peer"
            except SSL.Error:
                pass
        return self._pending(now)

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must be called (retransmission), or None."""
        return self._deadline

    def handle_timer(self, now: float) -> list[bytes]:
        if self._deadline is None or now < self._deadline:
            return []
        try:
            self._ssl.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._fail(f"DTLS timeout handling failed: {exc}")
        return self._pending(now)

    def close(self) -> list[bytes]:
        """Send close_notify (RFC 5246 §7.2.1) if connected."""
        out: list[bytes] = []
        if self.state is DtlsState.CONNECTED:
            with contextlib.suppress(SSL.Error):
                self._ssl.shutdown()
            out = self._drain()
        self.state = DtlsState.CLOSED
        self._deadline = None
        return out

    # -- internals ---------------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self.state = DtlsState.FAILED
        self.failure = reason
        self._deadline = None

    def _handshake(self, now: float) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as exc:
            self._fail(f"DTLS handshake failed: {exc}")
            return
        if not self._peer_matches():
            self._fail("DTLS peer certificate does not match the SDP fingerprint (RFC 8122)")
            return
        keys = self._export_keys()
        if keys is None:
            self._fail("no DTLS-SRTP protection profile negotiated (RFC 5764 §4.1.2)")
            return
        self.keys = keys
        self.state = DtlsState.CONNECTED

    def _peer_matches(self) -> bool:
        cert = self._ssl.get_peer_certificate(as_cryptography=True)
        if cert is None:
            return False
        der = cert.public_bytes(serialization.Encoding.DER)
        checked = 0
        for fp in self._remote_fingerprints:
            try:
                mine = Fingerprint.of_certificate(der, fp.algorithm)
            except ValueError:
                continue  # a hash function we do not know
            if not mine.matches(fp):
                return False
            checked += 1
        return checked > 0

    def _export_keys(self) -> SrtpKeys | None:
        selected = self._ssl.get_selected_srtp_profile()
        profile: SRTPProtectionProfile | None = next(
            (p for p in SRTP_PROFILES if p.openssl_profile == selected), None
        )
        if profile is None:
            return None
        material = self._ssl.export_keying_material(
            b"EXTRACTOR-dtls_srtp", 2 * (profile.key_length + profile.salt_length)
        )
        client = profile.get_key_and_salt(material, 0)
        server = profile.get_key_and_salt(material, 1)
        tx, rx = (client, server) if self.role == "client" else (server, client)
        return SrtpKeys(profile.libsrtp_profile, tx, rx, profile.openssl_profile.decode())

    def _drain(self) -> list[bytes]:
        out: list[bytes] = []
        while True:
            try:
                data = self._ssl.bio_read(_MAX_DATAGRAM)
            except SSL.Error:
                break
            if not data:
                break
            out.append(data)
        return out

    def _pending(self, now: float) -> list[bytes]:
        out = self._drain()
        if self.state in (DtlsState.CONNECTING, DtlsState.CONNECTED):
            # With DTLS 1.3 the last flight may still need retransmitting after completion.
            timeout = self._ssl.DTLSv1_get_timeout()
            self._deadline = None if timeout is None else now + timeout
        return out
