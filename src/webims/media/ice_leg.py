"""The WebRTC leg: ICE (aioice), DTLS-SRTP, rtcp-mux on one UDP port (asyncio adapter).

aioice does the ICE work (RFC 8445 connectivity checks, roles, nomination,
RFC 7675 consent freshness).  Two things are ours:

* host candidates on the configured addresses with a port from the media
  :class:`~.ports.PortAllocator` (aioice itself would bind an ephemeral port
  on every interface except loopback);
* the data path: datagrams whose first byte says DTLS (20..63) or RTP/RTCP
  (128..191, RFC 7983) skip aioice's STUN parser and queue and go straight to
  the DTLS endpoint or to SRTP decryption.

``ice_lite`` (RFC 8445 §2.5): we answer checks and take the pair the
controlling browser nominates, sending no checks of our own.

aioice 0.12/0.13 internals used: ``Connection._protocols``, ``_local_candidates*``,
``_nominated``, ``check_incoming``/``check_start_task``, ``StunProtocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from time import monotonic
from typing import Any

import aioice
import pylibsrtp
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import CandidatePair, StunProtocol

from ..sdp import Candidate, Fingerprint, IceEndpoint, Setup
from .api import LegSide, MediaEventKind
from .dtls import DtlsCertificate, DtlsRole, DtlsSrtpEndpoint, DtlsState
from .ims_leg import SrtpSession, srtp_session
from .leg import MediaLeg
from .ports import PortAllocator

__all__ = ["IceConnection", "WebRtcLeg"]

Addr = tuple[str, int]
FailureHandler = Callable[[MediaEventKind, str], None]


class _MediaStunProtocol(StunProtocol):
    """aioice's protocol with a fast path for DTLS and SRTP (RFC 7983 demultiplexing).

    SRTP/SRTCP (first byte 128..191) goes to ``on_srtp`` and DTLS (20..63) to
    ``on_dtls`` without aioice's STUN parser or queue; STUN goes to aioice.
    """

    def __init__(self, receiver: IceConnection) -> None:
        super().__init__(receiver)
        self.on_srtp = receiver.on_srtp
        self.on_dtls = receiver.on_dtls

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if isinstance(data, bytes) and data:
            first = data[0]
            if 127 < first < 192:
                self.on_srtp(data)
                return
            if 19 < first < 64:
                self.on_dtls(data, addr if len(addr) == 2 else addr[:2], self)
                return
        super().datagram_received(data, addr)


class IceConnection(aioice.Connection):
    """An aioice connection with host candidates on given addresses and ports from our range."""

    def __init__(
        self,
        *,
        controlling: bool,
        addresses: Sequence[str],
        ports: PortAllocator,
        on_srtp: Callable[[bytes], None],
        on_dtls: Callable[[bytes, Addr, StunProtocol], None],
        lite: bool = False,
    ) -> None:
        super().__init__(ice_controlling=controlling, components=1)
        self.addresses = list(addresses)
        self.ports = ports
        self.port = 0
        self.on_srtp = on_srtp
        self.on_dtls = on_dtls
        self.lite = lite

    async def gather_candidates(self) -> None:
        if self._local_candidates_start:
            return
        self._local_candidates_start = True
        port, socks = self.ports.bind_one(self.addresses)
        self.port = port
        loop = asyncio.get_running_loop()
        try:
            for address, sock in zip(self.addresses, socks, strict=True):
                _, protocol = await loop.create_datagram_endpoint(lambda: _MediaStunProtocol(self), sock=sock)
                protocol.local_candidate = aioice.Candidate(
                    foundation=candidate_foundation("host", "udp", address),
                    component=1,
                    transport="udp",
                    priority=candidate_priority(1, "host"),
                    host=address,
                    port=port,
                    type="host",
                )
                self._protocols.append(protocol)
                self._local_candidates.append(protocol.local_candidate)
        except BaseException:
            for sock in socks:
                sock.close()
            self.ports.release(port)
            self.port = 0
            raise
        self._local_candidates_end = True

    async def close(self) -> None:
        protocols = list(self._protocols)
        await super().close()
        if self.port:
            self.ports.release(self.port)
            self.port = 0
        # Leave no reference cycle behind (so that a finished call is freed by reference
        # counting, not by the cyclic collector): our data-path callbacks (bound methods of
        # the leg that owns us), aioice's pairs (pair -> protocol -> us; pair -> check task
        # -> its CancelledError -> traceback -> frame -> pair).
        self.on_srtp = _drop_srtp
        self.on_dtls = _drop_dtls
        for protocol in protocols:
            if isinstance(protocol, _MediaStunProtocol):
                protocol.on_srtp = _drop_srtp
                protocol.on_dtls = _drop_dtls
        for pair in self._check_list:
            pair.task = None
        self._check_list.clear()
        self._nominated.clear()

    @property
    def selected(self) -> CandidatePair | None:
        return self._nominated.get(1)

    # ICE-lite (RFC 8445 §2.5, §7.3): no checks of our own; the controlling side's nomination wins.
    def check_start_task(self, pair: CandidatePair) -> None:
        if not self.lite:
            super().check_start_task(pair)

    def check_incoming(self, message: Any, addr: tuple[str, int], protocol: StunProtocol) -> None:
        if not self.lite:
            super().check_incoming(message, addr, protocol)
            return
        remote = next((c for c in self._remote_candidates if c.host == addr[0] and c.port == addr[1]), None)
        if remote is None:
            remote = aioice.Candidate(
                foundation="prflx" + str(len(self._remote_candidates)),
                component=1,
                transport="udp",
                priority=message.attributes.get("PRIORITY", 0),
                host=addr[0],
                port=addr[1],
                type="prflx",
            )
            self._remote_candidates.append(remote)
        pair = self._find_pair(protocol, remote)
        if pair is None:
            pair = CandidatePair(protocol, remote)
            self._check_list.append(pair)
        if "USE-CANDIDATE" in message.attributes:
            pair.state = CandidatePair.State.SUCCEEDED
            pair.nominated = True
            self._nominated[1] = pair
            self._check_list_maybe_complete()


def _drop_srtp(data: bytes) -> None:
    """The data path of a closed connection: drop."""


def _drop_dtls(data: bytes, addr: Addr, protocol: StunProtocol) -> None:
    """The data path of a closed connection: drop."""


def to_aioice(candidate: Candidate) -> aioice.Candidate:
    return aioice.Candidate(
        foundation=candidate.foundation,
        component=candidate.component,
        transport=candidate.transport,
        priority=candidate.priority,
        host=candidate.address,
        port=candidate.port,
        type=candidate.type,
        related_address=candidate.related_address,
        related_port=candidate.related_port,
        tcptype=candidate.tcptype,
    )


def from_aioice(candidate: aioice.Candidate) -> Candidate:
    return Candidate(
        candidate.foundation,
        candidate.component,
        candidate.transport,
        candidate.priority,
        candidate.host,
        candidate.port,
        candidate.type,
        candidate.related_address,
        candidate.related_port,
        candidate.tcptype,
    )


class WebRtcLeg(MediaLeg):
    """ICE + DTLS-SRTP toward the WIC.

    Lifecycle: :meth:`gather` (local candidates, credentials), :meth:`local_endpoint`
    for the SDP, :meth:`set_remote` from the peer's SDP, :meth:`start` (ICE then
    DTLS, in a task), :meth:`close`.  Failures call ``on_failure`` once.
    """

    def __init__(
        self,
        *,
        certificate: DtlsCertificate,
        addresses: Sequence[str],
        ports: PortAllocator,
        controlling: bool,
        cname: str,
        on_failure: FailureHandler,
        ice_lite: bool = False,
        ice_timeout: float = 15.0,
        dtls_timeout: float = 10.0,
    ) -> None:
        super().__init__(LegSide.WEBRTC, cname)
        self.certificate = certificate
        self.ice = IceConnection(
            controlling=controlling and not ice_lite,
            addresses=addresses,
            ports=ports,
            on_srtp=self._srtp_in,
            on_dtls=self._dtls_in,
            lite=ice_lite,
        )
        self.ice_lite = ice_lite
        self.on_failure = on_failure
        self.ice_timeout = ice_timeout
        self.dtls_timeout = dtls_timeout
        self.dtls: DtlsSrtpEndpoint | None = None
        self.connected = asyncio.Event()
        self.failed = ""
        self.remote_ufrag: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._dtls_timer: asyncio.TimerHandle | None = None
        self._tx: SrtpSession | None = None
        self._rx: SrtpSession | None = None
        self._send_to: tuple[asyncio.DatagramTransport, Addr] | None = None
        self._closed = False
        self.dropped = 0

    async def gather(self) -> None:
        await self.ice.gather_candidates()

    def local_endpoint(self, setup: Setup) -> IceEndpoint:
        return IceEndpoint(
            ice_ufrag=self.ice.local_username,
            ice_pwd=self.ice.local_password,
            fingerprints=(self.certificate.fingerprint(),),
            candidates=tuple(from_aioice(c) for c in self.ice.local_candidates),
            setup=setup,
            ice_lite=self.ice_lite,
            ssrc=self.out.ssrc,
            cname=self.cname,
        )

    async def set_remote(
        self,
        ufrag: str,
        pwd: str,
        candidates: Sequence[Candidate],
        fingerprints: Sequence[Fingerprint],
        role: DtlsRole,
        remote_lite: bool = False,
    ) -> None:
        """The peer's ICE credentials and candidates, DTLS fingerprint, and our DTLS role."""
        if self.remote_ufrag is not None:
            return  # no ICE restart: the same transport goes on (RFC 8839 §4.4.1.1.1)
        self.remote_ufrag = ufrag
        self.ice.remote_username = ufrag
        self.ice.remote_password = pwd
        self.ice.remote_is_lite = remote_lite
        for cand in candidates:
            if cand.component == 1 and cand.transport.lower() == "udp" and cand.address.count(".") == 3:
                await self.ice.add_remote_candidate(to_aioice(cand))
        if not self.ice_lite:
            await self.ice.add_remote_candidate(None)  # all candidates were in the SDP
        self.dtls = DtlsSrtpEndpoint(self.certificate, role, fingerprints)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        # asyncio.timeout, not wait_for: wait_for runs its awaitable in a task of its own, and a
        # failure leaves a cycle (that task -> its exception -> traceback -> wait_for's frame ->
        # that task) holding this leg until the cyclic collector runs
        try:
            async with asyncio.timeout(self.ice_timeout):
                await self.ice.connect()
        except (TimeoutError, ConnectionError) as exc:
            self._fail(MediaEventKind.ICE_FAILED, f"ICE failed: {exc or 'timeout'}")
            return
        pair = self.ice.selected
        if pair is not None:
            self._send_to = (pair.protocol.transport, pair.remote_addr)
        dtls = self.dtls
        assert dtls is not None
        if dtls.role == "client" and dtls.state is DtlsState.NEW:
            self._send_dtls(dtls.start(monotonic()), None)
        try:
            async with asyncio.timeout(self.dtls_timeout):
                await self.connected.wait()
        except TimeoutError:
            self._fail(MediaEventKind.DTLS_FAILED, dtls.failure or "DTLS handshake timeout")
            return
        if self.failed:
            return
        # Watch ICE consent (RFC 7675): aioice closes the connection when it expires.
        event = await self.ice.get_event()
        if event is not None and not self._closed:
            self._fail(MediaEventKind.ICE_FAILED, "ICE consent expired (RFC 7675)")

    def _fail(self, kind: MediaEventKind, reason: str) -> None:
        if self.failed or self._closed:
            return
        self.failed = reason
        self.connected.set()
        self.on_failure(kind, reason)

    # -- data path ---------------------------------------------------------------------------

    def _srtp_in(self, data: bytes) -> None:
        """SRTP or SRTCP from the peer (the hot path; any source: ICE checked it)."""
        rx = self._rx
        if rx is None or len(data) < 2:
            return
        try:
            if 191 < data[1] < 224:  # RTCP (RFC 5761 §4)
                self.rtcp_received(rx.unprotect_rtcp(data), monotonic())
                return
            plain = rx.unprotect(data)
        except pylibsrtp.Error:
            self.dropped += 1
            return
        self.rtp_received(plain, monotonic())

    def _dtls_in(self, data: bytes, addr: Addr, protocol: StunProtocol) -> None:
        dtls = self.dtls
        if dtls is None:
            return
        was_connected = dtls.state is DtlsState.CONNECTED
        out = dtls.receive(data, monotonic())
        self._send_dtls(out, (protocol.transport, addr))
        if not was_connected:
            self._dtls_progress(dtls)
        elif dtls.state is DtlsState.CLOSED:
            self._fail(MediaEventKind.DTLS_FAILED, dtls.failure)

    def _dtls_progress(self, dtls: DtlsSrtpEndpoint) -> None:
        if dtls.state is DtlsState.CONNECTED and dtls.keys is not None and self._rx is None:
            self._tx = srtp_session(dtls.keys.profile, dtls.keys.tx, outbound=True)
            self._rx = srtp_session(dtls.keys.profile, dtls.keys.rx, outbound=False)
            self.connected.set()
        elif dtls.state is DtlsState.FAILED:
            self._fail(MediaEventKind.DTLS_FAILED, dtls.failure)

    def _send_dtls(self, datagrams: list[bytes], via: tuple[asyncio.DatagramTransport, Addr] | None) -> None:
        target = self._send_to or via
        if target is None:
            pair = self.ice.selected
            target = (pair.protocol.transport, pair.remote_addr) if pair is not None else None
        if target is not None:
            for datagram in datagrams:
                target[0].sendto(datagram, target[1])
        self._arm_dtls_timer()

    def _arm_dtls_timer(self) -> None:
        if self._dtls_timer is not None:
            self._dtls_timer.cancel()
            self._dtls_timer = None
        dtls = self.dtls
        deadline = dtls.get_timer() if dtls is not None else None
        if deadline is not None and not self._closed:
            loop = asyncio.get_running_loop()
            self._dtls_timer = loop.call_later(max(0.0, deadline - monotonic()), self._dtls_timeout)

    def _dtls_timeout(self) -> None:
        self._dtls_timer = None
        dtls = self.dtls
        if dtls is None:
            return
        self._send_dtls(dtls.handle_timer(monotonic()), None)
        self._dtls_progress(dtls)

    def send_rtp(self, data: bytes) -> None:
        self.packets_sent += 1
        self.bytes_sent += len(data)
        tx, target = self._tx, self._send_to
        if tx is not None and target is not None:
            target[0].sendto(tx.protect(data), target[1])
        else:
            self.send_packet(data, False)

    def send_packet(self, data: bytes, rtcp: bool) -> None:
        tx = self._tx
        target = self._send_to
        if tx is None or target is None:
            pair = self.ice.selected
            if tx is None or pair is None:
                return
            target = self._send_to = (pair.protocol.transport, pair.remote_addr)
        target[0].sendto(tx.protect_rtcp(data) if rtcp else tx.protect(data), target[1])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._dtls_timer is not None:
            self._dtls_timer.cancel()
        if self.dtls is not None and self._send_to is not None:
            for datagram in self.dtls.close():
                self._send_to[0].sendto(datagram, self._send_to[1])
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.ice.close()
