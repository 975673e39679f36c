"""SIP over UDP (RFC 3261 §18): one datagram, one message (§18.3, RFC 7118 §5 alike).

A :class:`UdpListener` is an asyncio DatagramProtocol on one socket.  A
:class:`UdpConnection` is a flow (the listener's socket and one remote address,
RFC 5626 §3): requests are sent from the listening port, responses follow the
top Via (§18.2.2, RFC 3581 §4).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import OrderedDict
from typing import TYPE_CHECKING, cast

from webims.sip import ParseError, Response
from webims.sip.framing import Ping, Pong, parse_frame

from .base import (
    Connection,
    Message,
    Source,
    TransportClosed,
    bound_socket,
    error_reply,
    host_key,
    receive_buffer_of,
)
from .via import is_ip_address, response_destination

if TYPE_CHECKING:
    from .layer import TransportLayer

__all__ = ["UdpConnection", "UdpListener", "serve_udp"]

log = logging.getLogger("webims.transport")

#: Remembered flows per listener (a flow is only a remote address; old ones are
#: forgotten first, and a forgotten flow is recreated, with a new id, on use).
MAX_FLOWS = 4096


class UdpConnection(Connection):
    """A UDP flow: the listener's socket and one remote address."""

    __slots__ = ("listener", "outgoing", "source")

    def __init__(self, listener: UdpListener, source: Source) -> None:
        self.listener = listener
        self.source = source
        self.outgoing = False

    @property
    def closed(self) -> bool:
        return self.listener.closed

    def send(self, data: Message | bytes) -> None:
        self.listener.send_to(data if isinstance(data, bytes) else data.serialize(), self.source.remote)

    def send_response(self, response: Response) -> None:
        """To the top Via's received/rport/maddr (RFC 3261 §18.2.2, RFC 3581 §4);
        a sent-by that is a name (only possible when the Via was not stamped by
        us) falls back to the source address."""
        host, port = response_destination(response.top_via, "UDP")
        if not is_ip_address(host):
            host, port = self.remote
        self.listener.send_to(response.serialize(), (host, port))

    def close(self) -> None:
        """A flow has nothing to close (the listener's socket stays open)."""

    async def wait_closed(self) -> None:
        return None


class UdpListener(asyncio.DatagramProtocol):
    """One UDP socket receiving and sending SIP datagrams."""

    def __init__(self, layer: TransportLayer) -> None:
        self.layer = layer
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)
        self.family = socket.AF_INET
        self.fileno = -1  # the socket's descriptor once made (for input_pending)
        self._flows: OrderedDict[tuple[str, int], UdpConnection] = OrderedDict()
        self._closed = asyncio.get_running_loop().create_future()

    # -- asyncio.DatagramProtocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        self.family = sock.family
        self.fileno = sock.fileno()
        name = transport.get_extra_info("sockname")
        self.local = (host_key(str(name[0])), int(name[1]))

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        remote = (host_key(str(addr[0])), int(addr[1]))  # type: ignore[arg-type]
        try:
            event = parse_frame(data, self.layer.limits)
        except ParseError as exc:
            log.debug("bad datagram from %s:%d: %s", remote[0], remote[1], exc)
            reply = error_reply(data, exc.status, exc.reason)
            if reply is not None:
                self.send_to(reply, remote)  # to the source: the Via may be what was wrong
            return
        if isinstance(event, Ping | Pong):
            return  # CRLF keep-alives are for stream transports (RFC 5626 §4.4.1); STUN is §4.4.2
        try:
            self.layer.deliver(event, self._flow(remote))
        except Exception:  # never let one datagram stop the socket
            log.exception("error handling datagram from %s:%d", remote[0], remote[1])

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP %s:%d: %s", self.local[0], self.local[1], exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

    # -- API
    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def flow(self, remote: tuple[str, int]) -> UdpConnection:
        """The flow to ``remote`` (an IP address and port) from this socket."""
        return self._flow((host_key(remote[0]), remote[1]))

    def _flow(self, key: tuple[str, int]) -> UdpConnection:
        """:meth:`flow` for an address already in :func:`host_key` form."""
        conn = self._flows.get(key)
        if conn is not None:
            self._flows.move_to_end(key)
            return conn
        conn = UdpConnection(self, Source("UDP", key[0], key[1], self.local[0], self.local[1],
                                          self.layer.next_id()))
        self._flows[key] = conn
        if len(self._flows) > MAX_FLOWS:
            self._flows.popitem(last=False)
        return conn

    def send_to(self, data: bytes, remote: tuple[str, int]) -> None:
        if self.transport is None or self.transport.is_closing():
            raise TransportClosed("UDP socket closed")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("UDP send to %s:%d:\n%s", remote[0], remote[1], data.decode("utf-8", "replace"))
        self.transport.sendto(data, remote)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)


#: Receive buffer asked for each UDP socket (the kernel caps it at net.core.rmem_max). While the
#: loop is busy, answers to our requests wait there; once it overflows they are dropped and come
#: back only with the retransmissions (Timer E: 0.5 s, 1 s, 2 s...), so a burst the process could
#: have worked through turns into seconds of latency. Large buffers are what SIP servers use.
UDP_RECEIVE_BUFFER = 4 << 20


async def serve_udp(layer: TransportLayer, host: str, port: int) -> UdpListener:
    loop = asyncio.get_running_loop()
    if is_ip_address(host):
        # behind a P-CSCF the gateway opens one per UE registration (:mod:`webims.gateway.ueflow`):
        # made here, 20 µs of CPU, not 77 through uvloop's ``local_addr`` (getaddrinfo in a thread)
        sock = bound_socket(host, port, socket.SOCK_DGRAM, receive_buffer=UDP_RECEIVE_BUFFER)
        _, protocol = await loop.create_datagram_endpoint(lambda: UdpListener(layer), sock=sock)
        return protocol  # (the transport owns the socket from there, and closes it)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: UdpListener(layer), local_addr=(host, port))
    sock = transport.get_extra_info("socket")
    if sock is not None:
        receive_buffer_of(sock, UDP_RECEIVE_BUFFER, host, port)
    return protocol
