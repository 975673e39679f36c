"""The HSS as an asyncio Diameter server over TCP (RFC 6733 §2.1), serving Cx to several peers.

::

    store = SubscriberStore(Store(path), default_realm="ims.test")
    hss = HssServer(HssConfig(), store)
    await hss.start()                      # listens on hss.host:hss.port
    ...
    result = await hss.deregister("alice@ims.test", reason_code=ReasonCode.PERMANENT_TERMINATION)
    await hss.stop()                       # DPR to every open peer, then close

Each accepted connection is a :class:`DiameterConnection` (responder): CER/CEA
advertising Cx as Vendor-Specific-Application-Id {10415, 16777216} (TS 29.229 §7.2),
DWR/DWA, DPR/DPA and the error answers come from :class:`webims.diameter.DiameterPeer`;
Cx requests go to :class:`CxHandlers`. RTR and PPR (TS 29.229 §6.1.9, §6.1.11) are sent
to the S-CSCF over the connection it opened to us, found by its Origin-Host.

Store calls are synchronous SQLite transactions of a few tens of microseconds, made on
the event loop thread (a thread hop would cost more than the query); the requests of
one read from a connection are one batch of the store's row cache (one freshness
check, registration changes written together: :mod:`.store.runtime`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from webims.diameter import (
    Capabilities,
    DeregistrationReason,
    Message,
    ReasonCode,
    Result,
    ResultCode,
    Role,
    SessionIdGenerator,
)

from .connection import ConnectionClosed, DiameterConnection
from .cx_handlers import CxHandlers
from .local_cx import LocalCx
from .settings import HssConfig
from .store import SubscriberStore

log = logging.getLogger("webims.labcore.hss")

PRODUCT_NAME = "webims-hss"


class AdminError(Exception):
    """An administrative command that cannot be carried out; ``status`` is an HTTP-like code."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class AdminResult:
    """Outcome of an RTR or PPR: the answer's result and who answered."""

    command: str
    result_code: int | None
    experimental_result_code: int | None
    destination_host: str
    impus: tuple[str, ...] = ()

    @property
    def success(self) -> bool:
        code = self.result_code if self.result_code is not None else self.experimental_result_code
        return code is not None and 2000 <= code < 3000

    def to_json(self) -> dict[str, object]:
        return {
            "command": self.command,
            "result_code": self.result_code,
            "experimental_result_code": self.experimental_result_code,
            "destination_host": self.destination_host,
            "impus": list(self.impus),
            "success": self.success,
        }


def _host_addresses(host: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """Host-IP-Address values for CER/CEA (RFC 6733 §5.3.5): the listen address if concrete."""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return (ipaddress.ip_address("127.0.0.1"),)
    return (addr,) if not addr.is_unspecified else (ipaddress.ip_address("127.0.0.1"),)


class HssServer:
    """The lab HSS: Diameter listener, Cx handlers, RTR/PPR toward S-CSCFs."""

    def __init__(
        self,
        config: HssConfig,
        subscribers: SubscriberStore,
        *,
        rand_source: Callable[[], bytes] | None = None,
    ) -> None:
        self.config = config
        self.subscribers = subscribers
        self.cx = CxHandlers(subscribers, config, rand_source=rand_source)
        self.capabilities = Capabilities(
            origin_host=config.origin_host,
            origin_realm=config.origin_realm,
            host_ip_addresses=_host_addresses(config.listen_host),
            product_name=PRODUCT_NAME,
            origin_state_id=int(time.time()) & 0xFFFFFFFF,
        )
        self.session_ids = SessionIdGenerator(config.origin_host, time.time())
        self.connections: set[DiameterConnection] = set()
        self._server: asyncio.Server | None = None
        self.host = config.listen_host
        self.port = config.listen_port
        self._answered = 0  # over Diameter connections
        #: Cx for CSCFs in this process (typed, without Diameter messages)
        self.local_cx = LocalCx(self.cx)

    @property
    def requests_answered(self) -> int:
        """Cx requests answered so far: over Diameter and from CSCFs in this process."""
        return self._answered + self.local_cx.requests

    # --- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._new_connection, self.config.listen_host, self.config.listen_port
        )
        sock = self._server.sockets[0].getsockname()
        self.host, self.port = str(sock[0]), int(sock[1])
        # the row cache is filled now rather than at the first request (small tables are
        # read whole: webims.labcore.hss.store.runtime)
        self.subscribers.begin_batch()
        self.subscribers.end_batch()
        log.info("HSS %s listening for Diameter on %s:%d", self.config.origin_host, self.host, self.port)

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop listening, send DPR to every open peer (RFC 6733 §5.4), close all connections."""
        if self._server is not None:
            self._server.close()
        conns = list(self.connections)
        if conns:
            await asyncio.gather(*(c.disconnect(timeout=timeout) for c in conns), return_exceptions=True)
        for c in conns:
            c.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> HssServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _new_connection(self) -> DiameterConnection:
        conn = DiameterConnection(
            self.capabilities,
            Role.RESPONDER,
            on_request=self._on_request,
            on_closed=self.connections.discard,
            watchdog_interval=self.config.watchdog_interval,
            batch=(self.subscribers.begin_batch, self.subscribers.end_batch),
        )
        if len(self.connections) >= self.config.max_connections:
            log.warning("HSS: connection limit %d reached, refusing a peer", self.config.max_connections)
            asyncio.get_running_loop().call_soon(conn.abort)
        else:
            self.connections.add(conn)
        return conn

    def _on_request(self, conn: DiameterConnection, request: Message) -> Message | None:
        self._answered += 1
        return self.cx.handle(request)

    def answer_local(self, request: Message) -> asyncio.Future[Message]:
        """Answer a Cx request of a CSCF in this process without the Diameter codec and TCP.

        The request is what its builder made (not stamped with identifiers, not validated
        against the dictionary: our own builders make valid requests). As over TCP, the
        requests of one loop iteration are one batch of the store's row cache and their
        registration changes are stored before their answers are delivered (next iteration,
        :meth:`LocalCx.run`). :attr:`local_cx` skips the Diameter messages too.
        """
        return self.local_cx.run(lambda: self.cx.handle(request))

    # --- peers ----------------------------------------------------------------------------------------
    def peers(self) -> list[DiameterConnection]:
        """Open connections (capabilities exchanged)."""
        return [c for c in self.connections if c.is_open]

    def peer(self, origin_host: str) -> DiameterConnection | None:
        wanted = origin_host.lower()
        for c in self.connections:
            if c.is_open and (c.peer_origin_host or "").lower() == wanted:
                return c
        return None

    async def send_request(self, destination_host: str, request: Message, timeout: float = 5.0) -> Message:
        """Send an HSS-initiated request to a connected peer and wait for its answer."""
        conn = self.peer(destination_host)
        if conn is None:
            raise AdminError(f"Diameter peer {destination_host} is not connected", status=504)
        try:
            return await conn.request(request, timeout)
        except (ConnectionClosed, TimeoutError) as exc:
            raise AdminError(f"{destination_host}: {exc}", status=504) from None

    # --- administrative requests ----------------------------------------------------------------------
    async def deregister(
        self,
        impi: str,
        *,
        reason_code: int = ReasonCode.PERMANENT_TERMINATION,
        reason_info: str | None = None,
        impus: Sequence[str] = (),
        timeout: float = 5.0,
    ) -> AdminResult:
        """Network-initiated de-registration (TS 29.228 §6.1.3): RTR to the assigned S-CSCF.

        On success the identities become not registered and lose their S-CSCF.
        """
        if self.subscribers.impi(impi) is None:
            raise AdminError(f"no subscriber {impi}", status=404)
        if reason_code not in set(ReasonCode):
            raise AdminError(f"unknown Reason-Code {reason_code}", status=400)
        d = self.cx.deregistration(
            impi,
            session_id=self.session_ids.next(),
            reason=DeregistrationReason(reason_code, reason_info),
            impus=impus,
        )
        if d is None:
            raise AdminError(f"{impi} has no S-CSCF assigned")
        answer = await self.send_request(d.destination_host, d.request, timeout)
        result = Result.from_message(answer)
        if result.result_code == ResultCode.DIAMETER_SUCCESS:
            self.cx.registration_terminated(d.impus)
        return AdminResult(
            "RTR", result.result_code, result.experimental_result_code, d.destination_host, d.impus
        )

    async def push_profile(self, impi: str, *, timeout: float = 5.0) -> AdminResult:
        """Push the current User-Data to the S-CSCF serving ``impi`` (TS 29.228 §6.2.2): PPR."""
        if self.subscribers.impi(impi) is None:
            raise AdminError(f"no subscriber {impi}", status=404)
        push = self.cx.profile_push(impi, session_id=self.session_ids.next())
        if push is None:
            raise AdminError(f"{impi} has no S-CSCF assigned")
        request, host = push
        answer = await self.send_request(host, request, timeout)
        result = Result.from_message(answer)
        return AdminResult("PPR", result.result_code, result.experimental_result_code, host)
