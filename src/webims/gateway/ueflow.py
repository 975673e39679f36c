"""One Mw flow per UE registration in the ``behind-p-cscf`` topology (seed 004).

In front of an operator P-CSCF the gateway behaves toward it as each of its WICs' UEs would
(seed 004 §6.X.2.2: "registers ... via the P-CSCF"; §6.X.2.3: the Web Signalling Translator
"sends this to the IMS P-CSCF"). A P-CSCF without IPsec knows the UE that sent a request by
its source IP address and port: it binds the registration to them (TS 24.229 §5.2.6.3.1 /
§5.2.2 with "SIP digest without TLS"; TS 33.203 §7.1, annex N) and asserts, on a request
arriving from that address and port, the identity registered from it (TS 24.229
§5.2.6.3.1: P-Asserted-Identity). One shared source port would make every WIC look like
one UE. So each WIC binding, and each pool registration (:mod:`.pool`), gets a
:class:`UeFlow` of its own:

- ``udp``: its own socket on ``mw_host`` (an ephemeral port), opened in the Mw
  :class:`~webims.transport.TransportLayer` (:meth:`~webims.transport.TransportLayer.open_udp`),
  so what arrives on it goes to the one transaction layer like the main listener's input;
- ``tcp``: its own connection to the P-CSCF
  (:meth:`~webims.transport.TransportLayer.open_connection`, never the shared one), and a
  listener on the same port (``SO_REUSEPORT``): a UE that registered a TCP Contact accepts
  connections there (RFC 3261 §18.2.1, §19.1.2: "the port number ... to send requests
  to"), so a P-CSCF that opens a connection to the Contact for a terminating request,
  instead of reusing the UE's own (RFC 5626, RFC 5923 are not required of it), still
  reaches it. Only the P-CSCF's addresses may connect, at most :data:`MAX_ACCEPTED` at a
  time (:meth:`UeFlow.admit`). The listener holds the port while the connection is being
  recovered, so that nothing else takes it.

The binding's IMS Contact carries the flow's port (:meth:`.ims.ImsSide.uri` with ``flow``),
every request sent for the binding leaves from it (:meth:`.ims.ImsSide.send` with ``flow``),
and responses to requests received on it go back on it (RFC 3261 §18.2.2). A flow counts
the client transactions in progress on it (:meth:`UeFlow.hold` / :meth:`UeFlow.release`);
:meth:`UeFlow.end` closes it once they are done. After a restart a binding asks for its
old port again (the P-CSCF holds that address); when it cannot be bound the flow gets a
new port and the binding must register again (:meth:`.core.Gateway.restore_flows`).

A TCP flow whose connection the P-CSCF (or a NAT, a firewall, a restart of the P-CSCF) closes
is recovered as the UE would recover it (RFC 5626 §4.4.1, §4.5): :meth:`UeFlow.recover`
reconnects, from the same port when it can, at once and then after growing waits; the
gateway then registers again (:meth:`.core.Gateway.recover_flow`), pacing flows lost
together (``flow_recovery_rate``).

The ``p-cscf`` topology has none of this: one shared Mw listener, no lookups.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from webims.endpoint import Target
from webims.transport import Connection, StreamConnection, StreamListener, UdpListener, host_key
from webims.transport.base import TransportError

if TYPE_CHECKING:
    from webims.sip import Request, Response

    from .ims import ImsSide

__all__ = ["MAX_ACCEPTED", "FlowFailure", "UeFlow"]

log = logging.getLogger("webims.gateway.ims")

#: Connections a TCP flow's listener accepts at a time: a P-CSCF needs one (a few across its
#: restarts, until the old ones are seen closed).
MAX_ACCEPTED = 4


class FlowFailure(Exception):
    """A UE flow could not be opened (no socket, no connection): the WIC gets a 503."""


class UeFlow:
    """One UE's own flow toward the P-CSCF (module docstring)."""

    def __init__(self, ims: ImsSide, owner: str, transport: str) -> None:
        self.ims = ims
        self.owner = owner  # "b:<binding id>" or "p:<pool ident>"
        self.transport = transport  # "UDP" or "TCP"
        self.listener: UdpListener | None = None
        self.stream: Connection | None = None
        self.target: Target | None = None  # TCP: where ``stream`` goes
        self.server: StreamListener | None = None  # TCP: accepting on ``port`` (module docstring)
        self.accepted: set[StreamConnection] = set()  # ... from the P-CSCF, open now
        self.port = 0  # our local port: the one in the IMS Contact
        self.holds = 0
        self.ending = False
        self.closed = False
        self._reopening: asyncio.Lock | None = None  # TCP: one reconnection at a time

    def __repr__(self) -> str:
        return f"<UeFlow {self.owner} {self.transport} :{self.port}{' closed' if self.closed else ''}>"

    # ------------------------------------------------------------------ opening
    async def open(self, port: int = 0, target: Target | None = None) -> None:
        """Bind ``mw_host:port`` (UDP) or connect to ``target`` from it (TCP). Raises
        :class:`FlowFailure`."""
        layer = self.ims.endpoint.transport
        host = self.ims.config.mw_host
        try:
            if self.transport == "UDP":
                self.listener = await layer.open_udp(host, port)
                self.port = self.listener.local[1]
            else:
                await self._open_tcp(host, port, target)
        except (OSError, TransportError) as exc:
            raise FlowFailure(f"{exc}") from exc

    async def _open_tcp(self, host: str, port: int, target: Target | None) -> None:
        """Listen on ``host:port`` (kept when it is this flow's port already: a reconnection),
        then connect from it to ``target``."""
        if target is None:
            raise FlowFailure("no P-CSCF address to connect to")
        layer = self.ims.endpoint.transport
        server = self.server
        fresh = server is None or not port or server.local[1] != port
        if fresh:
            server = await layer.listen_tcp(host, port, gate=self, shared_port=True)
        assert server is not None
        try:
            self.stream = await layer.open_connection(
                target.transport, target.host, target.port, local=(host, server.local[1]), shared_port=True
            )
        except BaseException:
            if fresh:
                layer.close_listener(server)
            raise
        if fresh and self.server is not None:  # moved to a new port: the old one is free again
            layer.close_listener(self.server)
        self.server = server
        self.target = target
        self.port = self.stream.local[1]

    # ------------------------------------------------------------------ accepting (TCP)
    def admit(self, conn: StreamConnection) -> bool:
        """A connection to this flow's port (:class:`~webims.transport.stream.Gate`): only from
        the P-CSCF (the address the flow connects to, or another of the P-CSCF's), only while
        the flow is wanted, at most :data:`MAX_ACCEPTED` at a time."""
        host = conn.remote[0]
        target = self.target
        if self.closed or self.ending or target is None or len(self.accepted) >= MAX_ACCEPTED:
            log.info("%r: connection from %s refused", self, host)
            return False
        if host != host_key(target.host) and host not in self.ims.pcscf_hosts():
            log.info("%r: connection from %s refused: not the P-CSCF", self, host)
            return False
        self.accepted.add(conn)
        return True

    def dismiss(self, conn: StreamConnection) -> None:
        """An admitted connection closed."""
        self.accepted.discard(conn)

    def connection(self, target: Target) -> Connection | None:
        """The open connection from this flow to ``target``, or None (TCP: :meth:`connect`)."""
        if self.closed:
            return None
        listener = self.listener
        if listener is not None:
            if listener.closed or target.transport != "UDP":
                return None
            return listener.flow((host_key(target.host), target.port))
        stream = self.stream
        if stream is not None and not stream.closed and self.target == target:
            return stream
        return None

    async def connect(self, target: Target) -> Connection:
        """:meth:`connection`, reconnecting a TCP flow (from the same local port when it can:
        the P-CSCF knows the UE by it). Raises :class:`FlowFailure`."""
        conn = self.connection(target)
        if conn is not None:
            return conn
        if self.closed or self.listener is not None:
            raise FlowFailure(f"{self!r} cannot reach {target}")
        if self._reopening is None:
            self._reopening = asyncio.Lock()
        async with self._reopening:  # a request and the recovery may both want it
            conn = self.connection(target)
            if conn is not None:
                return conn
            if self.closed:
                raise FlowFailure(f"{self!r} cannot reach {target}")
            old, old_port = self.stream, self.port
            try:
                await self.open(old_port, target)
            except FlowFailure:
                await self.open(0, target)
                log.warning("%r: could not reconnect from its old port: the P-CSCF sees a new UE", self)
            self.ims.moved(self, old, old_port)
            assert self.stream is not None
            return self.stream

    # ------------------------------------------------------------------ recovery (TCP)
    def lost(self, conn: Connection) -> bool:
        """``conn`` closed: True when it was this flow's connection and the flow is still
        wanted (not closed or ending by us): it must be recovered (:meth:`recover`)."""
        return conn is self.stream and not self.closed and not self.ending

    async def recover(self, base_time: float, max_time: float = 1800.0) -> bool | None:
        """Reconnect a TCP flow whose connection closed under it, as the UE does after a flow
        failure (RFC 5626 §4.4.1): at once, then after ``min(max_time, base_time *
        2**failures)`` seconds, a random 50-100 % of it (§4.5), until it is back or the flow
        ends. True: back on the same port (the P-CSCF still knows the UE by it); False: on a
        new port (it must register the new Contact); None: the flow ended meanwhile."""
        port = self.port
        target = self.target
        failures = 0
        while target is not None and not self.closed and not self.ending:
            try:
                await self.connect(target)
            except FlowFailure as exc:
                failures += 1
                wait = min(max_time, base_time * 2**failures) * random.uniform(0.5, 1.0)
                log.warning("%r: cannot reconnect to the P-CSCF (%s): again in %.1f s", self, exc, wait)
                await asyncio.sleep(wait)
                continue
            if self.closed or self.ending:
                break
            log.info("%r: reconnected to the P-CSCF%s", self, "" if self.port == port else " from a new port")
            return self.port == port
        return None

    # ------------------------------------------------------------------ lifecycle
    def hold(self) -> None:
        """A client transaction starts on this flow."""
        self.holds += 1

    def release(self) -> None:
        """A client transaction on this flow is done."""
        self.holds -= 1
        if self.holds <= 0 and self.ending:
            self._close()

    async def carry(self, request: Request, send: Callable[[], Awaitable[Response]]) -> Response:
        """``send()`` ``request`` from this flow, which stays open until its transaction is done
        (:meth:`end` waits for it); when the flow is closed already, our 503 instead."""
        if self.closed:
            return self.ims.unreachable(request, "the UE's flow is closed")
        self.hold()
        try:
            return await send()
        finally:
            self.release()

    def end(self) -> None:
        """Its registration is over: close the flow once its transactions are done."""
        self.ending = True
        if self.holds <= 0:
            self._close()

    def stop(self) -> None:
        """The gateway stops, its registration kept for the next start (the state store), which
        connects from this port to the P-CSCF again: close now, a TCP connection with a reset,
        so that our side holds no TIME-WAIT of it (:meth:`StreamConnection.reset`)."""
        if isinstance(self.stream, StreamConnection):
            self.stream.reset()
        self.holds = 0
        self.end()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.listener is not None:
            self.ims.endpoint.transport.close_udp(self.listener)
        if self.stream is not None:
            self.stream.close()
        if self.server is not None:
            self.ims.endpoint.transport.close_listener(self.server)
        for conn in list(self.accepted):
            conn.close()
        self.ims.forget(self)
