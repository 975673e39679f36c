"""SIP over TCP and TLS (RFC 3261 §18.3, RFC 5626 §4.4.1; TLS per §26.3.1).

Each connection is an asyncio Protocol feeding a
:class:`webims.sip.framing.StreamFramer`.  A bad message whose framing holds is
answered 400 (or the parser's status) and the connection goes on; a framing
error is answered when possible and the connection closes.  CRLFCRLF pings get
a CRLF pong.  Accepted connections count against the layer's limits and close
after ``idle_timeout`` seconds without input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from typing import TYPE_CHECKING, Protocol, cast

from webims.sip import ParseError
from webims.sip.framing import PONG_BYTES, FramingError, Ping, Pong, StreamFramer

from .base import Connection, IdleTimer, Message, Source, TransportClosed, bound_socket, error_reply, host_key

if TYPE_CHECKING:
    from .layer import TransportLayer

__all__ = ["Gate", "StreamConnection", "StreamListener", "open_stream", "serve_stream"]

log = logging.getLogger("webims.transport")

#: Bytes of the unparsed input kept to answer a message that fails to parse
#: (its Via, From, To, Call-ID and CSeq are copied into the 400).
_ANSWER_WINDOW = 8192


class Gate(Protocol):
    """Who may connect to a listener of its own (a UE flow's port, :func:`serve_stream` with
    ``gate``), instead of the layer's limits (:meth:`TransportLayer.admit`)."""

    def admit(self, conn: StreamConnection) -> bool: ...

    def dismiss(self, conn: StreamConnection) -> None: ...


class StreamConnection(asyncio.Protocol, Connection):
    """One TCP or TLS connection (incoming or outgoing)."""

    def __init__(self, layer: TransportLayer, transport_name: str, *, outgoing: bool,
                 keyed: bool = True, gate: Gate | None = None) -> None:
        self.layer = layer
        self.name = transport_name
        self.outgoing = outgoing
        self.keyed = keyed  # reused by TransportLayer.connect (not a private one: open_connection)
        self.gate = gate  # accepted on a listener with a gate of its own (else the layer's limits)
        self._transport: asyncio.Transport | None = None
        self.source = Source(transport_name, "", 0, "", 0, 0)
        self._framer = StreamFramer(layer.limits, role="client" if outgoing else "server")
        self._admitted = False
        self._idle: IdleTimer | None = None
        self._closed_future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        name = transport.get_extra_info("sockname")
        self.source = Source(self.name, host_key(str(peer[0])), int(peer[1]),
                             host_key(str(name[0])), int(name[1]), self.layer.next_id())
        if not self.outgoing:
            gate = self.gate
            if not (self.layer.admit(self.source.remote_host) if gate is None else gate.admit(self)):
                self._closing = True
                self._transport.abort()
                return
            self._admitted = True
            loop = asyncio.get_running_loop()
            self._idle = IdleTimer(loop, self.layer.connection_limits.idle_timeout, self._idle_expired)
        self.layer.register(self, keyed=self.keyed)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if self._idle is not None:
            self._idle.touch()
        framer = self._framer
        framer.feed(data)
        while not self._closing:
            # The framer drops a message's bytes before parsing it; keep its head
            # so that a parse error can still be answered (§8.2.6.2 header copy).
            window = self._peek()
            try:
                event = framer.next_event()
            except FramingError as exc:
                log.info("framing lost on %s: %d %s", self.source, exc.status, exc.reason)
                self._answer(window, exc)
                self.close()
                return
            except ParseError as error:  # (not ``exc``: compiled, one name has one type)
                log.info("bad message on %s: %d %s", self.source, error.status, error.reason)
                self._answer(window, error)
                continue
            except Exception:  # a parser bug: the framing state is unknown, so close
                log.exception("unexpected error reading from %s", self.source)
                self.close()
                return
            if event is None:
                return
            if isinstance(event, Ping):
                self._write(PONG_BYTES)  # RFC 5626 §4.4.1
            elif isinstance(event, Pong):
                pass
            else:
                self.layer.deliver(event, self)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._idle is not None:
            self._idle.cancel()
        if self._admitted:
            self._admitted = False
            gate = self.gate
            if gate is None:
                self.layer.release(self.source.remote_host)
            else:
                gate.dismiss(self)
        self.layer.unregister(self, exc)
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        if not self._closed_future.done():
            self._closed_future.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # -- Connection
    @property
    def closed(self) -> bool:
        return self._closing or self._transport is None or self._transport.is_closing()

    def send(self, data: Message | bytes) -> None:
        if self.closed:
            raise TransportClosed(f"{self.source} is closed")
        raw = data if isinstance(data, bytes) else data.serialize()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("send on %s:\n%s", self.source, raw.decode("utf-8", "replace"))
        self._write(raw)

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._closing = True
            self._transport.close()

    def reset(self) -> None:
        """Close with a reset (``SO_LINGER`` 0: RST, not FIN), leaving no TIME-WAIT on our side
        (RFC 9293 §3.6.1): a connection from the same port to the same peer can be made again
        at once (a UE flow restored after a restart, :mod:`webims.gateway.ueflow`)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._closing = True
        transport.abort()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed_future)

    async def drain(self) -> None:
        if self._paused and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter

    # -- internals
    def _peek(self) -> bytes:
        buf = getattr(self._framer, "_buf", b"")
        return bytes(buf[:_ANSWER_WINDOW])

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self.layer.connection_limits.max_write_buffer:
            log.warning("%s: peer does not read (write buffer full); aborting", self.source)
            self._closing = True
            transport.abort()

    def _answer(self, window: bytes, exc: ParseError) -> None:
        reply = error_reply(window, exc.status, exc.reason)
        if reply is not None:
            self._write(reply)

    def _idle_expired(self) -> None:
        log.info("closing idle connection %s", self.source)
        self.close()


class StreamListener:
    """A listening TCP or TLS socket (an ``asyncio.Server``)."""

    def __init__(self, server: asyncio.Server, transport_name: str) -> None:
        self.server = server
        self.transport = transport_name
        sockets = getattr(server, "sockets")  # noqa: B009  a tuple in typeshed, a list from uvloop (compiled: checked)
        name = sockets[0].getsockname()
        self.local: tuple[str, int] = (host_key(str(name[0])), int(name[1]))

    def close(self) -> None:
        self.server.close()

    async def wait_closed(self) -> None:
        await self.server.wait_closed()


async def serve_stream(layer: TransportLayer, transport_name: str, host: str, port: int,
                       ssl_context: ssl.SSLContext | None, *, gate: Gate | None = None,
                       shared_port: bool = False) -> StreamListener:
    """Listen on ``host:port``. With ``gate`` the accepted connections are its to admit, and
    are not reused by :meth:`TransportLayer.connect`; ``shared_port``: see
    :func:`~.base.bound_socket`."""
    loop = asyncio.get_running_loop()
    keyed = gate is None

    def factory() -> StreamConnection:
        return StreamConnection(layer, transport_name, outgoing=False, keyed=keyed, gate=gate)

    timeout = None if ssl_context is None else layer.connection_limits.tls_handshake_timeout
    if not shared_port:
        server = await loop.create_server(factory, host, port, ssl=ssl_context, ssl_handshake_timeout=timeout)
        return StreamListener(server, transport_name)
    sock = bound_socket(host, port, socket.SOCK_STREAM, shared_port=True)  # the server's from here
    server = await loop.create_server(factory, sock=sock, ssl=ssl_context, ssl_handshake_timeout=timeout)
    return StreamListener(server, transport_name)


async def open_stream(layer: TransportLayer, transport_name: str, host: str, port: int,
                      ssl_context: ssl.SSLContext | None, server_hostname: str | None, *,
                      keyed: bool = True, local: tuple[str, int] | None = None,
                      shared_port: bool = False) -> StreamConnection:
    """Connect to ``host:port`` (from ``local``; ``shared_port``: from a port a listener of
    ours may share, :func:`~.base.bound_socket`)."""
    loop = asyncio.get_running_loop()

    def factory() -> StreamConnection:
        return StreamConnection(layer, transport_name, outgoing=True, keyed=keyed)

    address = host_key(host)
    sock: socket.socket | None = None
    if shared_port and local is not None:
        sock = bound_socket(*local, socket.SOCK_STREAM, shared_port=True)
        try:
            await loop.sock_connect(sock, (address, port))
        except BaseException:
            sock.close()
            raise
        local = None
    hostname = None if ssl_context is None else server_hostname or address
    timeout = None if ssl_context is None else layer.connection_limits.tls_handshake_timeout
    if sock is not None:  # the transport owns it from here (and closes it, also on failure)
        _, protocol = await loop.create_connection(
            factory, sock=sock, ssl=ssl_context, server_hostname=hostname, ssl_handshake_timeout=timeout)
    else:
        _, protocol = await loop.create_connection(
            factory, address, port, ssl=ssl_context, server_hostname=hostname,
            ssl_handshake_timeout=timeout, local_addr=local)
    return protocol
