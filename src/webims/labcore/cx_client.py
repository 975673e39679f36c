"""The CSCFs' Cx connection to the HSS (TS 29.228/29.229), kept up by reconnecting.

The I-CSCF sends UAR/LIR and the S-CSCF MAR/SAR; the HSS sends RTR and PPR back
to the S-CSCF over the connection the S-CSCF opened (TS 29.229 §6.1.9, §6.1.11).
One TCP connection is one :class:`webims.labcore.hss.connection.DiameterConnection`
(the HSS's asyncio driver of :class:`webims.diameter.DiameterPeer`, used here in
the initiator role); :class:`DiameterClient` adds what a CSCF needs around it:

- :meth:`DiameterClient.request` returns the answer (matched by Hop-by-Hop
  identifier, RFC 6733 §6.2), or raises :class:`CxTimeout` when none comes in
  time and :class:`CxUnavailable` when no connection is open (the CSCFs turn both
  into 480 / 504 answers, TS 24.229 §5.3.1.2, §5.3.2.1);
- :meth:`DiameterClient.uar`, :meth:`~DiameterClient.sar`, :meth:`~DiameterClient.mar`:
  one Cx procedure each, request built and answer read (:mod:`webims.diameter.cx_parse`);
  with the HSS in this process (``local_cx``) the same answers come from its procedures
  without any Diameter message (:mod:`webims.labcore.hss.local_cx`);
- requests from the HSS go to ``on_request(message) -> answer | None``; without a
  handler they get DIAMETER_UNABLE_TO_COMPLY;
- a lost connection (or a refused one) is re-established with a growing delay
  (RFC 6733 §2.1 "continue to attempt", RFC 3539 §3.4.1 back-off).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypedDict, TypeVar

from webims.diameter import (
    CX_APPLICATION,
    Application,
    Capabilities,
    DiameterError,
    Message,
    MultimediaAuthAnswer,
    ResultCode,
    Role,
    ServerAssignmentAnswer,
    SessionIdGenerator,
    SipAuthDataItem,
    UserAuthorizationAnswer,
    UserDataAlreadyAvailable,
    build_mar,
    build_sar,
    build_uar,
    error_answer,
)
from webims.labcore.hss.connection import ConnectionClosed, DiameterConnection
from webims.labcore.hss.local_cx import LocalCx
from webims.labcore.hss.user_data import ImsSubscription

__all__ = ["CxError", "CxTimeout", "CxUnavailable", "DiameterClient", "RequestHandler"]

log = logging.getLogger("webims.labcore.cx")
_A = TypeVar("_A")


class _Routing(TypedDict):
    """The identifiers every Cx request of this client starts with (RFC 6733 §6)."""

    session_id: str
    origin_host: str
    origin_realm: str
    destination_realm: str
    destination_host: str | None

RequestHandler = Callable[[Message], Message | None]


class CxError(Exception):
    """The HSS could not be asked (no connection) or did not answer in time."""


class CxUnavailable(CxError):
    """No open Diameter connection to the peer (RFC 6733 §5.6: not in state Open)."""


class CxTimeout(CxError):
    """No answer within the request timeout."""


class DiameterClient:
    """A Diameter connection we initiate to one peer (the HSS), reconnecting when lost.

    ``request_timeout`` bounds :meth:`request`; ``connect_timeout`` the TCP connect
    plus the CER/CEA exchange and how long a request waits for a connection.
    """

    def __init__(
        self,
        *,
        origin_host: str,
        origin_realm: str,
        peer_host: str,
        peer_port: int,
        destination_realm: str | None = None,
        destination_host: str | None = None,
        applications: tuple[Application, ...] = (CX_APPLICATION,),
        product_name: str = "webims",
        request_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        watchdog_interval: float = 30.0,
        reconnect_delay: tuple[float, float] = (0.1, 5.0),
        on_request: RequestHandler | None = None,
    ) -> None:
        self.origin_host = origin_host
        self.origin_realm = origin_realm
        self.peer_host = peer_host
        self.peer_port = peer_port
        self.destination_realm = destination_realm or origin_realm
        self.destination_host = destination_host
        self.applications = applications
        self.product_name = product_name
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.watchdog_interval = watchdog_interval
        self.reconnect_delay = reconnect_delay
        self.on_request = on_request
        self.origin_state_id = int(time.time()) & 0xFFFFFFFF
        self.sessions = SessionIdGenerator(origin_host, time.time())
        self.connection: DiameterConnection | None = None
        #: The peer's request handler when it runs in this process (the embedded HSS's
        #: :meth:`~webims.labcore.hss.HssServer.answer_local`): requests go to it directly
        #: while the connection is open (which still carries RTR/PPR from the HSS).
        self.local: Callable[[Message], asyncio.Future[Message]] | None = None
        #: The same HSS's typed procedures (:attr:`~webims.labcore.hss.HssServer.local_cx`):
        #: :meth:`uar`, :meth:`sar` and :meth:`mar` then make no Diameter message at all.
        self.local_cx: LocalCx | None = None
        self.connections = 0  # successful capabilities exchanges so far
        self._open = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self, wait: float | None = None) -> bool:
        """Start connecting (and reconnecting); with ``wait``, wait until Open at most that long.
        Returns whether the connection is open."""
        if self._runner is None:
            self._stopping = False
            self._runner = asyncio.ensure_future(self._run())
        if wait is not None:
            return await self.wait_open(wait)
        return self.is_open

    async def wait_open(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._open.wait(), timeout)
        return self.is_open

    @property
    def is_open(self) -> bool:
        return self.connection is not None and self.connection.is_open

    @property
    def peer_origin_host(self) -> str | None:
        return self.connection.peer_origin_host if self.connection is not None else None

    async def close(self) -> None:
        """DPR to the peer (RFC 6733 §5.4), wait briefly for the DPA, stop reconnecting."""
        self._stopping = True
        conn = self.connection
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect(timeout=2.0)
            conn.abort()
        self.connection = None
        self._open.clear()

    def _capabilities(self, local: str) -> Capabilities:
        try:
            address = ipaddress.ip_address(local)
        except ValueError:
            address = ipaddress.ip_address("127.0.0.1")
        return Capabilities(
            self.origin_host,
            self.origin_realm,
            (address,),
            product_name=self.product_name,
            applications=self.applications,
            origin_state_id=self.origin_state_id,
        )

    def _handle(self, conn: DiameterConnection, request: Message) -> Message | None:
        if self.on_request is not None:
            try:
                return self.on_request(request)
            except Exception:
                log.exception("Cx request handler failed on command %d", request.command_code)
        err = DiameterError(ResultCode.DIAMETER_UNABLE_TO_COMPLY, "request not handled", request=request)
        return error_answer(err, origin_host=self.origin_host, origin_realm=self.origin_realm)

    async def _connect(self) -> DiameterConnection:
        loop = asyncio.get_running_loop()
        holder: list[DiameterConnection] = []

        def factory() -> DiameterConnection:
            # the local address is known only once connected: Host-IP-Address is filled then
            conn = _LocalAddressConnection(
                self, Role.INITIATOR, on_request=self._handle, watchdog_interval=self.watchdog_interval
            )
            holder.append(conn)
            return conn

        _, conn = await asyncio.wait_for(
            loop.create_connection(factory, self.peer_host, self.peer_port), self.connect_timeout
        )
        try:
            await asyncio.wait_for(asyncio.shield(conn.opened), self.connect_timeout)
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _run(self) -> None:
        low, high = self.reconnect_delay
        delay = low
        while not self._stopping:
            try:
                conn = await self._connect()
            except (OSError, TimeoutError, ConnectionClosed) as exc:
                log.debug("Diameter peer %s:%d: %s", self.peer_host, self.peer_port, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, high)
                continue
            log.info("Cx connection to %s open", conn.peer_origin_host)
            self.connection = conn
            self.connections += 1
            self._open.set()
            delay = low
            await asyncio.shield(conn.closed)
            self._open.clear()
            if self.connection is conn:
                self.connection = None
            log.info("Cx connection to %s:%d lost", self.peer_host, self.peer_port)
            await asyncio.sleep(delay)

    # -- requests -----------------------------------------------------------------------------------
    def session_id(self) -> str:
        """A fresh Session-Id (RFC 6733 §8.8) for a new Cx request."""
        return self.sessions.next()

    async def _opened(self, timeout: float) -> DiameterConnection:
        """The open connection, waited for (at most ``timeout`` and the connect timeout)."""
        if self._stopping or not await self.wait_open(min(timeout, self.connect_timeout)):
            raise CxUnavailable(f"no open Diameter connection to {self.peer_host}:{self.peer_port}")
        conn = self.connection
        assert conn is not None
        return conn

    async def request(self, message: Message, timeout: float | None = None) -> Message:
        """Send ``message`` (identifiers are stamped by the peer layer) and return the answer."""
        timeout = self.request_timeout if timeout is None else timeout
        conn = self.connection
        if conn is None or not conn.is_open:
            conn = await self._opened(timeout)
        if self.local is not None:
            try:
                return await self.local(message)
            except ConnectionClosed as exc:
                raise CxUnavailable(str(exc)) from None
        future = conn.send_request(message)
        # A timer handle instead of asyncio.wait_for (which wraps the future in a task):
        # this runs for every Cx request of every registration.
        timer = conn.loop.call_later(timeout, _expire, future, message.command_code, timeout)
        try:
            return await future
        except ConnectionClosed as exc:
            raise CxUnavailable(str(exc)) from None
        finally:
            timer.cancel()

    async def _in_process(self, procedure: Callable[[str], Awaitable[_A]]) -> _A:
        """Run a Cx procedure on the HSS in this process (``local_cx``) with a new Session-Id,
        once the connection that stands for it is open (as a Diameter request would wait)."""
        conn = self.connection
        if conn is None or not conn.is_open:
            await self._opened(self.request_timeout)
        try:
            return await procedure(self.sessions.next())
        except ConnectionClosed as exc:
            raise CxUnavailable(str(exc)) from None

    def _routing(self) -> _Routing:
        """Session-Id, Origin-Host/Realm and Destination-Realm/Host of a new request."""
        return _Routing(session_id=self.sessions.next(), origin_host=self.origin_host,
                        origin_realm=self.origin_realm, destination_realm=self.destination_realm,
                        destination_host=self.destination_host)  # fmt: skip

    # -- Cx procedures (TS 29.229 §6.1) ------------------------------------------------------------------
    async def uar(
        self,
        user_name: str,
        public_identity: str,
        visited_network_identifier: str,
        user_authorization_type: int,
    ) -> UserAuthorizationAnswer:
        """UAR -> UAA (TS 29.228 §6.1.1), from the I-CSCF."""
        local = self.local_cx
        if local is not None:
            return await self._in_process(lambda session: local.uar(
                session, user_name, public_identity, visited_network_identifier, user_authorization_type))
        uar = build_uar(
            **self._routing(),
            user_name=user_name,
            public_identity=public_identity,
            visited_network_identifier=visited_network_identifier,
            user_authorization_type=user_authorization_type,
        )
        return UserAuthorizationAnswer.from_message(await self.request(uar))

    async def sar(
        self,
        server_name: str,
        server_assignment_type: int,
        user_name: str | None,
        public_identities: Sequence[str],
        user_data_already_available: int = UserDataAlreadyAvailable.USER_DATA_NOT_AVAILABLE,
    ) -> tuple[ServerAssignmentAnswer, ImsSubscription | None]:
        """SAR -> SAA (TS 29.228 §6.1.2), from the S-CSCF named ``server_name``; with it, what
        the answer's User-Data reads as when an HSS in this process had that object (else None:
        read ``user_data``)."""
        local = self.local_cx
        if local is not None:
            origin = (self.origin_host, self.origin_realm)
            return await self._in_process(lambda session: local.sar(
                session, origin, server_name, server_assignment_type, user_name, public_identities,
                user_data_already_available))
        sar = build_sar(
            **self._routing(),
            server_name=server_name,
            server_assignment_type=server_assignment_type,
            user_data_already_available=user_data_already_available,
            user_name=user_name,
            public_identities=public_identities,
        )
        return ServerAssignmentAnswer.from_message(await self.request(sar)), None

    async def mar(
        self, server_name: str, user_name: str, public_identity: str, item: SipAuthDataItem, count: int = 1
    ) -> MultimediaAuthAnswer:
        """MAR -> MAA (TS 29.228 §6.3), from the S-CSCF named ``server_name``: ``item`` names the
        scheme (and carries RAND||AUTS for a resynchronisation), ``count`` vectors wanted."""
        local = self.local_cx
        if local is not None:
            origin = (self.origin_host, self.origin_realm)
            return await self._in_process(lambda session: local.mar(
                session, origin, server_name, user_name, public_identity, item, count))
        mar = build_mar(
            **self._routing(),
            user_name=user_name,
            public_identity=public_identity,
            server_name=server_name,
            sip_auth_data_item=item,
            sip_number_auth_items=count,
        )
        return MultimediaAuthAnswer.from_message(await self.request(mar))


def _expire(future: asyncio.Future[Message], command: int, timeout: float) -> None:
    if not future.done():
        future.set_exception(CxTimeout(f"no answer to command {command} within {timeout:g} s"))


class _LocalAddressConnection(DiameterConnection):
    """A :class:`DiameterConnection` whose CER carries the socket's own address."""

    def __init__(self, client: DiameterClient, role: Role, **options: object) -> None:
        super().__init__(client._capabilities("127.0.0.1"), role, **options)  # type: ignore[arg-type]
        self._client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("sockname")
        if isinstance(sock, tuple) and sock:
            self.capabilities = self._client._capabilities(str(sock[0]))
        super().connection_made(transport)
