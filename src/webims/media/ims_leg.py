"""The IMS leg: plain RTP/AVP (or SDES-SRTP) on an even/odd UDP port pair (asyncio adapter).

* Port pair from the :class:`~.ports.PortAllocator` (RTP even, RTCP + 1, RFC 3550 §11).
* Symmetric RTP latching: packets go to the address in the peer's SDP until
  packets arrive, then to the source they come from (RFC 4961 symmetric RTP;
  the "latching" of RFC 7362 §4); a new source is only taken once the latched
  one has been silent for ``relatch_after`` seconds.
* Optional SDES-SRTP (RFC 4568, ``AES_CM_128_HMAC_SHA1_80`` / ``_32``) with
  pylibsrtp.

:class:`SrtpSession` (used by both legs) is a pylibsrtp session whose
per-packet calls go straight to libsrtp through one preallocated buffer:
pylibsrtp's own ``protect`` allocates a C ``int`` and checks types on every
packet, which cost as much as the cipher itself.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from time import monotonic
from typing import Any, cast

import pylibsrtp
from pylibsrtp import _binding  # pylibsrtp's cffi module (1.0)

from ..sdp import Crypto, RtpEndpoint
from .api import LegSide, MediaError
from .leg import MediaLeg
from .ports import PortAllocator

__all__ = ["SDES_SUITES", "ImsLeg", "SrtpSession", "srtp_session"]

#: SDES crypto suites (RFC 4568 §6.2) -> libsrtp profile.
SDES_SUITES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
_KEY_SALT_LEN = 30  # 128-bit key + 112-bit salt (RFC 4568 §6.2.1)

Addr = tuple[str, int]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[bytes, Addr], None]) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # IPv4 addresses come as (host, port) already; IPv6 ones carry flow info and scope too.
        if len(addr) == 2:
            self.handler(data, cast(Addr, addr))
        else:
            self.handler(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable while the peer is not there yet: keep going


# pylibsrtp's limits: a 1500-byte buffer, room for the SRTP / SRTCP trailer (tag + MKI).
_SRTP_BUFFER = 1500
_SRTP_TRAILER = 16 + 128
_SRTCP_TRAILER = 4 + 16 + 128
_SRTP_ERRORS: list[str] = list(getattr(pylibsrtp, "ERRORS", []))

SrtpTransform = Callable[[bytes], bytes]


def _transform(owner: pylibsrtp.Session, func: Any, trailer: int) -> SrtpTransform:
    """One libsrtp call (protect, unprotect...) on one session, into a buffer of its own.

    The closure holds ``owner`` (the pylibsrtp session that frees the ``srtp_t`` when
    collected), so a kept bound transform can never use a freed session."""
    srtp = owner._srtp[0]
    ffi = _binding.ffi
    cdata = ffi.new("char[]", _SRTP_BUFFER)
    buf = ffi.buffer(cdata)
    length = ffi.new("int *")
    limit = _SRTP_BUFFER - trailer
    errors = _SRTP_ERRORS

    def transform(data: bytes, _owner: pylibsrtp.Session = owner) -> bytes:
        n = len(data)
        if n > limit:
            raise ValueError("packet is too long")
        buf[0:n] = data
        length[0] = n
        rc = func(srtp, cdata, length)
        if rc:
            raise pylibsrtp.Error(errors[rc] if rc < len(errors) else f"libsrtp error {rc}")
        return cast(bytes, buf[0 : length[0]])

    return transform


class SrtpSession:
    """An SRTP session (RFC 3711) with pylibsrtp's API: ``protect``, ``unprotect``, ``*_rtcp``.

    Each raises :class:`pylibsrtp.Error` as pylibsrtp does (replay, authentication failure).
    """

    __slots__ = ("protect", "protect_rtcp", "session", "unprotect", "unprotect_rtcp")

    def __init__(self, policy: pylibsrtp.Policy) -> None:
        session = self.session = pylibsrtp.Session(policy)  # owns the srtp_t (freed with it)
        lib = _binding.lib
        self.protect = _transform(session, lib.srtp_protect, _SRTP_TRAILER)
        self.unprotect = _transform(session, lib.srtp_unprotect, 0)
        self.protect_rtcp = _transform(session, lib.srtp_protect_rtcp, _SRTCP_TRAILER)
        self.unprotect_rtcp = _transform(session, lib.srtp_unprotect_rtcp, 0)


def srtp_session(profile: int, key: bytes, outbound: bool) -> SrtpSession:
    policy = pylibsrtp.Policy(
        key=key,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=profile,
    )
    policy.allow_repeat_tx = True
    policy.window_size = 1024
    return SrtpSession(policy)


class ImsLeg(MediaLeg):
    """Plain RTP toward the IMS side."""

    def __init__(self, address: str, ports: PortAllocator, cname: str, relatch_after: float = 2.0) -> None:
        super().__init__(LegSide.IMS, cname)
        self.address = address
        self.ports = ports
        self.port = 0
        self.relatch_after = relatch_after
        self.remote: Addr | None = None
        self.remote_rtcp: Addr | None = None
        self.latched: Addr | None = None
        self._latched_rtcp: Addr | None = None
        self._rtp: _Udp | None = None
        self._rtcp: _Udp | None = None
        self._tx: SrtpSession | None = None
        self._rx: SrtpSession | None = None
        self.local_crypto: Crypto | None = None
        self.dropped = 0

    async def open(self) -> None:
        port, rtp_sock, rtcp_sock = self.ports.bind_pair(self.address)
        loop = asyncio.get_running_loop()
        try:
            _, self._rtp = await loop.create_datagram_endpoint(lambda: _Udp(self._rtp_in), sock=rtp_sock)
            _, self._rtcp = await loop.create_datagram_endpoint(lambda: _Udp(self._rtcp_in), sock=rtcp_sock)
        except BaseException:
            rtp_sock.close()
            rtcp_sock.close()
            if self._rtp is not None and self._rtp.transport is not None:
                self._rtp.transport.close()
            self.ports.release(port, port + 1)
            raise
        self.port = port

    @property
    def endpoint(self) -> RtpEndpoint:
        return RtpEndpoint(self.address, self.port)

    def close(self) -> None:
        for proto in (self._rtp, self._rtcp):
            if proto is not None and proto.transport is not None:
                proto.transport.close()
        self._rtp = self._rtcp = None
        if self.port:
            self.ports.release(self.port, self.port + 1)
            self.port = 0

    # -- negotiation -------------------------------------------------------------------------

    def set_remote(self, address: str, port: int, rtcp_port: int | None = None) -> None:
        """The peer's SDP address (``c=``, ``m=`` port, ``a=rtcp``); port 0 or 0.0.0.0: send nothing."""
        if port == 0 or address in ("0.0.0.0", "::"):
            self.remote = self.remote_rtcp = None
            return
        new = (address, port)
        if new != self.remote:
            self.latched = self._latched_rtcp = None
        self.remote = new
        self.remote_rtcp = (address, rtcp_port if rtcp_port is not None else port + 1)

    def make_local_crypto(self, suite: str = "AES_CM_128_HMAC_SHA1_80", tag: int = 1) -> Crypto:
        """Our SDES key for an offer or answer (RFC 4568 §9.1)."""
        if suite not in SDES_SUITES:
            raise MediaError(f"unsupported SRTP crypto suite {suite}", 488)
        key = os.urandom(_KEY_SALT_LEN)
        self.local_crypto = Crypto(tag, suite, (f"inline:{base64.b64encode(key).decode()}",))
        self._tx = srtp_session(SDES_SUITES[suite], key, outbound=True)
        return self.local_crypto

    def set_remote_crypto(self, crypto: Crypto) -> None:
        """The peer's SDES key: decrypts what it sends."""
        if crypto.suite not in SDES_SUITES or not crypto.inline_keys:
            raise MediaError(f"unsupported SRTP crypto {crypto.suite}", 488)
        try:
            key = base64.b64decode(crypto.inline_keys[0], validate=True)
        except ValueError as exc:
            raise MediaError("bad SDES key", 488) from exc
        if len(key) != _KEY_SALT_LEN:
            raise MediaError("bad SDES key length", 488)
        self._rx = srtp_session(SDES_SUITES[crypto.suite], key, outbound=False)

    # -- data path ---------------------------------------------------------------------------

    def _accept(self, addr: Addr, latched: Addr | None, now: float) -> bool:
        if latched is None or addr == latched:
            return True
        return self.last_rx is None or now - self.last_rx >= self.relatch_after

    def _rtp_in(self, data: bytes, addr: Addr) -> None:
        now = monotonic()
        if len(data) < 12 or not 127 < data[0] < 192:
            return
        if addr != self.latched:
            if not self._accept(addr, self.latched, now):
                self.dropped += 1
                return
            self.latched = addr
        if 191 < data[1] < 224:  # RTCP: the peer multiplexes it (RFC 5761 §4)
            self._rtcp_in(data, addr)
            return
        rx = self._rx
        if rx is not None:
            try:
                data = rx.unprotect(data)
            except pylibsrtp.Error:
                self.dropped += 1
                return
        self.rtp_received(data, now)

    def _rtcp_in(self, data: bytes, addr: Addr) -> None:
        now = monotonic()
        if len(data) < 8 or not 127 < data[0] < 192:
            return
        if self._latched_rtcp is None or addr != self._latched_rtcp:
            self._latched_rtcp = addr
        if self._rx is not None:
            try:
                data = self._rx.unprotect_rtcp(data)
            except pylibsrtp.Error:
                return
        self.rtcp_received(data, now)

    def send_rtp(self, data: bytes) -> None:
        """RTP toward the latched source, else the SDP address (the hot path: no RTCP branch)."""
        self.packets_sent += 1
        self.bytes_sent += len(data)
        proto, dest, tx = self._rtp, self.latched or self.remote, self._tx
        if proto is None or dest is None:
            return
        transport = proto.transport
        if transport is not None:
            transport.sendto(data if tx is None else tx.protect(data), dest)

    def send_packet(self, data: bytes, rtcp: bool) -> None:
        if rtcp:
            proto, dest = self._rtcp, self._latched_rtcp or self.remote_rtcp
        else:
            proto, dest = self._rtp, self.latched or self.remote
        if proto is None or proto.transport is None or dest is None:
            return
        if self._tx is not None:
            data = self._tx.protect_rtcp(data) if rtcp else self._tx.protect(data)
        proto.transport.sendto(data, dest)
