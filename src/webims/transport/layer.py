"""The transport layer (RFC 3261 §18): listeners, the connection table, dispatch.

One :class:`TransportLayer` owns every listener and connection of a SIP
element.  It delivers each parsed message to one :class:`~.base.Handler`
together with the :class:`~.base.Connection` it arrived on, after the §18.2.1
Via processing (``received``/``rport``), and finds or opens connections for
outgoing messages, reusing open ones keyed by (transport, remote address)
(RFC 3261 §18.1.1; RFC 5923 aliases when enabled).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import select
import socket
import ssl
from collections.abc import Awaitable
from types import TracebackType
from typing import Any

from webims.sip import DEFAULT_LIMITS, Limits, ParseError, Request, Response

from .base import CallbackHandler as _CallbackHandler
from .base import (
    Connection,
    ConnectionLimits,
    Handler,
    Message,
    MessageCallback,
    TransportClosed,
    TransportError,
    host_key,
)
from .stream import Gate, StreamListener, open_stream, serve_stream
from .udp import UdpListener, serve_udp
from .via import fill_received, response_destination, via_transport

__all__ = ["TransportLayer"]

log = logging.getLogger("webims.transport")

Key = tuple[str, str, int]


class TransportLayer:
    """Listeners, connections and dispatch for one SIP element.

    ``handler`` receives every message (a :class:`Handler` or a plain
    ``callback(message, conn)``).  ``limits`` bounds every message
    (:class:`webims.sip.Limits`); ``connection_limits`` bounds connections.
    ``tls_client_context`` is used for outgoing TLS (default: system CAs, host
    name checked).  ``reuse_alias`` honours the Via ``alias`` parameter of RFC
    5923 §5 on incoming TCP/TLS requests: later requests to the sent-by address
    reuse that connection.  It is off by default because RFC 5923 asks for TLS
    with a verified peer certificate, which this layer does not check.

    Use as ``async with TransportLayer(handler) as layer:`` or call :meth:`close`.
    """

    def __init__(
        self,
        handler: Handler | MessageCallback,
        *,
        limits: Limits = DEFAULT_LIMITS,
        connection_limits: ConnectionLimits | None = None,
        tls_client_context: ssl.SSLContext | None = None,
        reuse_alias: bool = False,
    ) -> None:
        self.handler: Handler = handler if isinstance(handler, Handler) else _CallbackHandler(handler)
        self.limits = limits
        self.connection_limits = connection_limits if connection_limits is not None else ConnectionLimits()
        self.tls_client_context = tls_client_context
        self.reuse_alias = reuse_alias
        self._ids = itertools.count(1)
        self._by_id: dict[int, Connection] = {}
        self._by_key: dict[Key, Connection] = {}
        self._keys_of: dict[int, Key | set[Key]] = {}  # one key (the usual case) or several
        self._incoming = 0
        self._per_source: dict[str, int] = {}
        self._connecting: dict[Key, asyncio.Future[Connection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._udp: list[UdpListener] = []
        # select.poll() over the fds of ``_udp`` (input_pending). Any: at run time select.poll is
        # a function, not the class typeshed says (a compiled isinstance check would fail)
        self._poll: Any = None
        self._private_udp: set[UdpListener] = set()  # open_udp: outside the poll and _udp_flow
        self._servers: set[StreamListener] = set()
        self._closing = False

    # ------------------------------------------------------------ listening
    async def listen_udp(self, host: str = "127.0.0.1", port: int = 5060) -> UdpListener:
        """Receive SIP over UDP on ``host:port`` (port 0 picks a free port)."""
        listener = await serve_udp(self, host, port)
        self._udp.append(listener)
        self._poll = None
        return listener

    async def open_udp(self, host: str, port: int = 0) -> UdpListener:
        """A private UDP socket on ``host:port`` (0: an ephemeral port), e.g. one UE's own flow
        toward a P-CSCF (TS 33.203 §7.1: without IPsec the P-CSCF knows a UE by its IP address
        and port). What it receives is delivered like the datagrams of the listeners, to the
        same handler; but :meth:`connect` never picks it for UDP (send on
        ``listener.flow(remote)``), and :meth:`input_pending` does not poll it (thousands of
        them would make every timer tick O(n); each carries one UE's few datagrams, read in
        the loop's next iteration). Close it with :meth:`close_udp` (or :meth:`close`)."""
        listener = await serve_udp(self, host, port)
        self._private_udp.add(listener)
        return listener

    def close_udp(self, listener: UdpListener) -> None:
        """Close a socket of :meth:`open_udp`."""
        self._private_udp.discard(listener)
        listener.close()

    @property
    def private_udp(self) -> int:
        """How many sockets of :meth:`open_udp` are open."""
        return len(self._private_udp)

    async def listen_tcp(self, host: str = "127.0.0.1", port: int = 5060, *, gate: Gate | None = None,
                         shared_port: bool = False) -> StreamListener:
        """Accept SIP over TCP on ``host:port``. ``gate`` admits the connections instead of the
        layer's limits, and they are not reused by :meth:`connect` (a UE flow's listener);
        ``shared_port``: the port is shared with :meth:`open_connection` (its ``shared_port``).
        Raises ``OSError`` (the port is taken)."""
        server = await serve_stream(self, "TCP", host, port, None, gate=gate, shared_port=shared_port)
        self._servers.add(server)
        return server

    def close_listener(self, server: StreamListener) -> None:
        """Stop listening on ``server`` (its accepted connections stay open)."""
        self._servers.discard(server)
        server.close()

    async def listen_tls(self, host: str, port: int, ssl_context: ssl.SSLContext) -> StreamListener:
        """Accept SIP over TLS on ``host:port`` with a server ``ssl_context``
        (see :func:`webims.transport.tls.server_context`)."""
        server = await serve_stream(self, "TLS", host, port, ssl_context)
        self._servers.add(server)
        return server

    # ------------------------------------------------------------ connections
    def connection(self, connection_id: int) -> Connection | None:
        """The open connection (TCP, TLS, WS, WSS) with this id, if any."""
        conn = self._by_id.get(connection_id)
        return conn if conn is not None and not conn.closed else None

    def find(self, transport: str, host: str, port: int) -> Connection | None:
        """An open connection to ``host:port`` over ``transport``, if any (no UDP)."""
        conn = self._by_key.get((via_transport(transport), host_key(host), port))
        return conn if conn is not None and not conn.closed else None

    def input_pending(self) -> bool:
        """Whether datagrams wait in a UDP socket of this layer (polled, not read): the
        endpoint reads them before firing retransmission timers (see
        :meth:`webims.endpoint.SipEndpoint._on_timer`)."""
        poll = self._poll
        if poll is None:  # made once per set of listeners: poll(), not select(), whose
            poll = self._poll = select.poll()  # FD_SETSIZE (1024) a busy process's fds pass
            for udp in self._udp:
                if udp.fileno >= 0 and not udp.closed:
                    poll.register(udp.fileno, select.POLLIN)
        try:
            return bool(poll.poll(0))
        except (OSError, ValueError):  # a socket closed meanwhile
            return False

    @property
    def connections(self) -> list[Connection]:
        """Every open connection-oriented connection (incoming and outgoing)."""
        return [c for c in self._by_id.values() if not c.closed]

    async def connect(self, transport: str, host: str, port: int, *,
                      server_hostname: str | None = None) -> Connection:
        """A connection to ``host:port``: an open one when there is one (§18.1.1),
        else a new one.  UDP returns the flow from a UDP listener of the right
        address family (requests then leave from the listening port, so answers
        come back to it).  Outgoing WebSocket connections are not supported.
        Raises :class:`TransportError` (or ``OSError``) on failure.
        """
        transport = via_transport(transport)
        if transport == "UDP":
            return await self._udp_flow(host, port)
        if transport in ("WS", "WSS"):
            raise TransportError("outgoing WebSocket connections are not supported")
        key = (transport, host_key(host), port)
        conn = self._by_key.get(key)
        if conn is not None and not conn.closed:
            return conn
        pending = self._connecting.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Connection] = loop.create_future()
        self._connecting[key] = future
        try:
            context = self._client_context(transport)
            try:
                conn = await asyncio.wait_for(
                    open_stream(self, transport, host, port, context, server_hostname),
                    self.connection_limits.connect_timeout,
                )
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                error = TransportError(f"cannot connect to {transport} {host}:{port}: {exc}")
                future.set_exception(error)
                future.exception()  # retrieved: waiters get it through shield
                raise error from exc
            self._add_key(key, conn)
            future.set_result(conn)
            return conn
        finally:
            self._connecting.pop(key, None)
            if not future.done():
                future.cancel()

    def _client_context(self, transport: str) -> ssl.SSLContext | None:
        """The TLS context of outgoing connections (None for TCP): the given one, else the
        system CAs with host names checked, made on first use."""
        if transport != "TLS":
            return None
        if self.tls_client_context is None:
            self.tls_client_context = ssl.create_default_context()
        return self.tls_client_context

    async def open_connection(self, transport: str, host: str, port: int, *,
                              local: tuple[str, int] | None = None, shared_port: bool = False) -> Connection:
        """A new TCP/TLS connection to ``host:port`` from ``local`` (an address and port, 0 for
        an ephemeral one), never shared: :meth:`connect` and :meth:`find` do not return it
        (one UE's own flow, TS 24.229 §5.2.6.3.1 / TS 33.203 §7.1); ``shared_port``: from a
        port a listener of ours shares (:meth:`listen_tcp`). Raises :class:`TransportError`
        on failure."""
        transport = via_transport(transport)
        if transport not in ("TCP", "TLS"):
            raise TransportError(f"open_connection: {transport} is not a stream transport")
        context = self._client_context(transport)
        try:
            return await asyncio.wait_for(
                open_stream(self, transport, host, port, context, None, keyed=False, local=local,
                            shared_port=shared_port),
                self.connection_limits.connect_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise TransportError(f"cannot connect to {transport} {host}:{port}: {exc}") from exc

    async def _udp_flow(self, host: str, port: int) -> Connection:
        address = host_key(host)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                address, port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP)
        except OSError as exc:
            raise TransportError(f"cannot resolve {host}: {exc}") from exc
        for family, *_, sockaddr in infos:
            for listener in self._udp:
                if listener.family == family and not listener.closed:
                    return listener.flow((str(sockaddr[0]), int(sockaddr[1])))
        raise TransportError(f"no UDP listener for {host}")

    async def send_response(self, response: Response, conn: Connection) -> None:
        """Send a response to a request received on ``conn`` (RFC 3261 §18.2.2).

        On the same connection when it is open (RFC 7118 §5 for WebSockets); for
        UDP to the top Via's ``received``/``rport``/``maddr``; when a TCP/TLS
        connection is gone, on a new connection to the ``received`` address and
        the sent-by port.  Raises :class:`TransportClosed` for a closed WebSocket
        (a WebSocket client cannot be reached any other way).
        """
        try:
            conn.send_response(response)
            return
        except TransportClosed:
            if conn.transport not in ("TCP", "TLS"):
                raise
        host, port = response_destination(response.top_via, conn.transport)
        new = await self.connect(conn.transport, host, port)
        new.send(response)

    # ------------------------------------------------------------ for transports
    def next_id(self) -> int:
        return next(self._ids)

    def admit(self, remote_host: str) -> bool:
        """Count an incoming connection from ``remote_host``, or refuse it (limits)."""
        limits = self.connection_limits
        key = host_key(remote_host)
        if self._closing or self._incoming >= limits.max_connections:
            log.warning("connection from %s refused: %d connections open", remote_host, self._incoming)
            return False
        if self._per_source.get(key, 0) >= limits.max_connections_per_source:
            log.warning("connection from %s refused: per-source limit %d",
                        remote_host, limits.max_connections_per_source)
            return False
        self._incoming += 1
        self._per_source[key] = self._per_source.get(key, 0) + 1
        return True

    def release(self, remote_host: str) -> None:
        """Undo :meth:`admit` when an incoming connection ends."""
        key = host_key(remote_host)
        self._incoming -= 1
        left = self._per_source.get(key, 1) - 1
        if left > 0:
            self._per_source[key] = left
        else:
            self._per_source.pop(key, None)

    def register(self, conn: Connection, *, keyed: bool = True) -> None:
        """A connection-oriented transport has a new open connection (``keyed``: reused by
        :meth:`connect`; not for those of :meth:`open_connection`)."""
        self._by_id[conn.id] = conn
        if keyed:
            self._add_key((conn.transport, host_key(conn.remote[0]), conn.remote[1]), conn)
        log.debug("connection open: %s", conn.source)
        try:
            self.handler.connection_made(conn)
        except Exception:
            log.exception("handler.connection_made failed for %s", conn.source)

    def unregister(self, conn: Connection, exc: BaseException | None) -> None:
        if self._by_id.pop(conn.id, None) is None:
            return
        keys = self._keys_of.pop(conn.id, None)
        for key in () if keys is None else (keys,) if isinstance(keys, tuple) else keys:
            if self._by_key.get(key) is conn:
                del self._by_key[key]
        log.debug("connection closed: %s (%s)", conn.source, exc or "normal")
        try:
            self.handler.connection_lost(conn, exc)
        except Exception:
            log.exception("handler.connection_lost failed for %s", conn.source)

    def _add_key(self, key: Key, conn: Connection) -> None:
        self._by_key[key] = conn
        known = self._keys_of.get(conn.id)
        if known is None or known == key:
            self._keys_of[conn.id] = key
        elif isinstance(known, tuple):
            self._keys_of[conn.id] = {known, key}
        else:
            known.add(key)

    def deliver(self, message: Message, conn: Connection) -> None:
        """Hand one parsed message to the handler (after §18.2.1 Via processing)."""
        if isinstance(message, Request):
            try:
                via = fill_received(message, conn.source)
            except ParseError:  # the parser validated Via; keep the loop alive regardless
                log.debug("unusable Via from %s", conn.source)
                return
            if self.reuse_alias and conn.transport in ("TCP", "TLS") and "alias" in via.params:
                self._add_key((conn.transport, host_key(via.host), via.port or 5060), conn)
        if log.isEnabledFor(logging.DEBUG):
            # DEBUG only: full messages may carry credentials (Authorization).
            log.debug("received from %s:\n%s", conn.source, message.serialize().decode("utf-8", "replace"))
        try:
            result = self.handler.message_received(message, conn)
        except Exception:
            log.exception("handler failed on %s from %s", _summary(message), conn.source)
            return
        if result is not None:
            task = asyncio.ensure_future(_run(result, message, conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ shutdown
    async def close(self) -> None:
        """Stop listening, close every connection, cancel running handler tasks."""
        self._closing = True
        udps = [*self._udp, *self._private_udp]
        for udp in udps:
            udp.close()
        for server in self._servers:
            server.close()
        conns = list(self._by_id.values())
        for conn in conns:
            conn.close()
        for server in self._servers:
            await server.wait_closed()
        await asyncio.gather(*(c.wait_closed() for c in conns), return_exceptions=True)
        await asyncio.gather(*(u.wait_closed() for u in udps), return_exceptions=True)  # ports free
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._udp.clear()
        self._private_udp.clear()
        self._poll = None
        self._servers.clear()

    async def __aenter__(self) -> TransportLayer:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


def _summary(message: Message) -> str:
    if isinstance(message, Request):
        return f"{message.method} request"
    return f"{message.status} response"


async def _run(result: Awaitable[None], message: Message, conn: Connection) -> None:
    try:
        await result
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("handler failed on %s from %s", _summary(message), conn.source)
