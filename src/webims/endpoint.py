"""An asyncio SIP element: transports + the sans-IO transaction layer + timers.

:class:`SipEndpoint` is the glue every SIP element of webims runs on (the lab
CSCFs, the gateway's WIC and IMS sides, test UAs).  It owns a
:class:`~webims.transport.TransportLayer` and a
:class:`~webims.sip.TransactionLayer`, feeds the one with what the other
receives, arms one loop timer for the transaction layer's earliest deadline, and
turns the transaction events into calls:

- an incoming request becomes an :class:`IncomingRequest` handed to the
  element's ``on_request`` coroutine, which answers with :meth:`IncomingRequest.respond`;
- :meth:`SipEndpoint.request` sends a request in a client transaction and
  returns its final response; a timeout or transport error comes back as the
  408 / 503 response RFC 3261 §8.1.3.1 says to treat them as;
- ACKs for 2xx, stray responses and CANCELs are passed to optional hooks.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .sip import (
    DEFAULT_TIMERS,
    AckReceived,
    AckTimeout,
    ClientKey,
    Request,
    RequestCancelled,
    RequestReceived,
    Response,
    ResponseReceived,
    SendMessage,
    ServerKey,
    SipURI,
    StrayResponse,
    TimerSettings,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
    Via,
    new_branch,
)
from .transport import Connection, Handler, TransportLayer
from .transport.base import TransportError as TransportFailure

__all__ = ["IncomingRequest", "SipEndpoint", "Target", "target_of"]

log = logging.getLogger("webims.endpoint")

#: Longest a due timer waits while datagrams are still waiting in a UDP socket (see
#: :meth:`SipEndpoint._on_timer`): T1 (RFC 3261 §17.1.1.1), so a Timer E/A retransmission
#: leaves at most one initial interval late, and only while the loop is behind its input.
MAX_TIMER_DEFERRAL = 0.5

#: The loop timer that drives the transaction timers fires on multiples of this (seconds):
#: a deadline waits at most this long, and the deadlines falling in one tick (Timer K of
#: every request answered in the same 10 ms, under load) are handled in one wake-up
#: instead of one each. RFC 3261's timers are T1 (500 ms) and longer.
TIMER_TICK = 0.01


@dataclass(frozen=True)
class Target:
    """Where to send a request: transport, host and port (RFC 3263 §4 result)."""

    transport: str
    host: str
    port: int

    # compiled (the ones dataclasses makes are not): a Target is the key of every flow table
    def __hash__(self) -> int:
        return hash((self.transport, self.host, self.port))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Target):
            return NotImplemented
        return self.transport == other.transport and self.host == other.host and self.port == other.port

    def __str__(self) -> str:
        return f"{self.transport} {self.host}:{self.port}"


def target_of(uri: Any, default_transport: str = "UDP") -> Target:
    """The next hop for a SIP URI without DNS (RFC 3263 §4.1/§4.2 for numeric hosts and
    explicit ports): ``transport`` parameter, else TLS for sips:, else ``default_transport``."""
    if not isinstance(uri, SipURI):
        raise ValueError(f"cannot route to {uri}")
    transport = (uri.param("transport") or "").upper()
    if not transport:
        transport = "TLS" if uri.scheme == "sips" else default_transport
    port = uri.port or (5061 if transport in ("TLS",) else 5060)
    host = uri.param("maddr") or uri.host
    return Target(transport, host.strip("[]"), port)


@dataclass(slots=True, init=False)
class IncomingRequest:
    """A request received in a server transaction, with what is needed to answer it."""

    endpoint: SipEndpoint
    key: ServerKey
    request: Request
    connection: Connection
    final_sent: bool
    _cancelled: asyncio.Event | None = field(repr=False)

    def __init__(
        self, endpoint: SipEndpoint, key: ServerKey, request: Request, connection: Connection,
        final_sent: bool = False, _cancelled: asyncio.Event | None = None
    ) -> None:
        self.endpoint = endpoint
        self.key = key
        self.request = request
        self.connection = connection
        self.final_sent = final_sent
        self._cancelled = _cancelled

    @property
    def cancelled(self) -> asyncio.Event:
        """Set when a CANCEL ended the request (§9.2); made on first use."""
        if self._cancelled is None:
            self._cancelled = asyncio.Event()
        return self._cancelled

    def respond(self, status: int, reason: str | None = None, *, to_tag: str | None = None,
                headers: Any = (), body: bytes = b"") -> Response:
        response = self.request.response(status, reason, to_tag=to_tag, headers=headers, body=body)
        self.send(response)
        return response

    def send(self, response: Response) -> None:
        if self.final_sent:
            return
        endpoint = self.endpoint
        if response.status >= 200:
            self.final_sent = True
            if self.request.method != "INVITE":  # nothing to CANCEL: the transaction alone goes on
                endpoint._incoming.pop(self.key, None)
        endpoint.layer.send_response(self.key, response, endpoint.now())
        endpoint._pump()


RequestHandler = Callable[[IncomingRequest], Awaitable[None]]


class SipEndpoint(Handler):
    """Transports + transactions for one SIP element.

    ``on_request(incoming)`` handles new requests (default: 501 to all but ACK).
    Hooks: ``on_ack(request, connection)`` for ACKs of 2xx (§13.3.1.4),
    ``on_stray_response(response, connection)`` (§18.1.2, e.g. 2xx retransmissions
    a stateless proxy forwards), ``on_cancel(incoming)`` when a pending INVITE
    was cancelled (the layer has already answered 200/487),
    ``on_connection_lost(connection)`` when a TCP/TLS/WS flow closes (RFC 5626 §4.4),
    ``on_request_now(incoming) -> bool``: a first look at each new request, in the call that
    received it; True when it answered the request (no task is made for it: for requests
    answered without waiting, such as a reg-event NOTIFY), False to leave it to ``on_request``.
    ``transport_options`` go to :class:`~webims.transport.TransportLayer`.
    """

    def __init__(
        self,
        on_request: RequestHandler | None = None,
        *,
        timers: TimerSettings = DEFAULT_TIMERS,
        uas_core: bool = True,
        send_trying: bool = True,
        **transport_options: Any,
    ) -> None:
        self.on_request: RequestHandler = on_request or self._not_implemented
        self.on_ack: Callable[[Request, Connection], None] | None = None
        self.on_stray_response: Callable[[Response, Connection], None] | None = None
        self.on_cancel: Callable[[IncomingRequest], None] | None = None
        self.on_connection_lost: Callable[[Connection], None] | None = None
        self.on_request_now: Callable[[IncomingRequest], bool] | None = None
        self.transport = TransportLayer(self, **transport_options)
        self.layer = TransactionLayer(timers, uas_core=uas_core, send_trying=send_trying)
        self._pending: dict[ClientKey, _Pending] = {}
        self._incoming: dict[ServerKey, IncomingRequest] = {}
        self._timer: asyncio.Handle | None = None
        self._timer_at: float | None = None
        self._deferred_since: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection_classes: set[type] = set()  # classes known to be Connections

    # -------------------------------------------------------------- helpers
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        loop = self._loop  # (the property once: every message asks for the time)
        if loop is None:
            loop = self.loop
        return loop.time()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.cancel()
        await self.transport.close()

    @staticmethod
    async def _not_implemented(incoming: IncomingRequest) -> None:
        incoming.respond(501)

    # -------------------------------------------------------------- input (Handler)
    def message_received(self, message: Request | Response, conn: Connection) -> None:
        self.layer.receive(message, self.now(), source=conn, reliable=conn.source.reliable)
        self._pump()

    def connection_lost(self, conn: Connection, exc: BaseException | None) -> None:
        if self.on_connection_lost is not None:
            self.on_connection_lost(conn)

    # -------------------------------------------------------------- client side
    async def connect(self, target: Target) -> Connection:
        return await self.transport.connect(target.transport, target.host, target.port)

    async def request(
        self,
        request: Request,
        target: Target | Connection | None = None,
        *,
        on_provisional: Callable[[Response], None] | None = None,
        on_extra_final: Callable[[Response], None] | None = None,
    ) -> Response:
        """Send ``request`` in a client transaction and return the final response.

        Without ``target`` the next hop is the first Route, else the Request-URI.
        The top Via is added (with a fresh branch) when the request has none for
        this hop: callers that build requests leave Via out.  Timeouts and
        transport errors come back as 408 and 503 responses (§8.1.3.1).
        ``on_extra_final`` receives further 2xx (forking, RFC 6026 Accepted).
        """
        try:
            conn = target if isinstance(target, Connection) else await self.connect(
                target or self.next_hop(request)
            )
        except (TransportFailure, OSError, ValueError) as exc:
            log.info("cannot reach next hop for %s: %s", request.method, exc)
            return request.response(503, "Service Unavailable (next hop unreachable)")
        key, future = self._start(request, conn, on_provisional, on_extra_final)
        try:
            return await future
        finally:
            if not future.done() and request.method != "INVITE":
                self._pending.pop(key, None)  # cancelled: nobody waits for the answer any more

    def start_request(
        self,
        request: Request,
        conn: Connection,
        *,
        on_provisional: Callable[[Response], None] | None = None,
        on_extra_final: Callable[[Response], None] | None = None,
    ) -> asyncio.Future[Response]:
        """:meth:`request` on an open connection without a coroutine: the client transaction
        starts at once; the future gets the final response (408 / 503 as in :meth:`request`)."""
        return self._start(request, conn, on_provisional, on_extra_final)[1]

    def _start(
        self,
        request: Request,
        conn: Connection,
        on_provisional: Callable[[Response], None] | None,
        on_extra_final: Callable[[Response], None] | None,
    ) -> tuple[ClientKey, asyncio.Future[Response]]:
        if "via" not in request.headers:
            self.add_via(request, conn)
        future: asyncio.Future[Response] = self.loop.create_future()
        key = self.layer.send_request(request, self.now(), destination=conn, reliable=conn.source.reliable)
        self._pending[key] = _Pending(future, on_provisional, on_extra_final, request)
        self._pump()
        return key, future

    def cancel(self, request: Request) -> None:
        """CANCEL a pending INVITE sent with :meth:`request` (§9.1)."""
        for key, pending in self._pending.items():
            if pending.request is request:
                self.layer.cancel(key, self.now())
                self._pump()
                return

    def send_stateless(self, message: Request | Response, conn: Connection) -> None:
        """Send without a transaction: ACK for 2xx, stateless forwarding."""
        self.layer.send_stateless(message, destination=conn)
        self._pump()

    def next_hop(self, request: Request) -> Target:
        routes = request.route
        uri = routes[0].uri if routes else request.uri
        return target_of(uri)

    @staticmethod
    def add_via(request: Request, conn: Connection, branch: str | None = None) -> None:
        """Prepend our Via for ``conn`` (RFC 3261 §18.1.1; rport per RFC 3581)."""
        host, port = conn.local
        host = f"[{host}]" if ":" in host else host
        branch = branch or new_branch()
        transport = conn.transport
        via = Via(transport, host, port, {"branch": branch, "rport": None}, "SIP/2.0",
                  f"SIP/2.0/{transport} {host}:{port};branch={branch};rport")  # str(via): its text
        request.push_via(via)

    # -------------------------------------------------------------- event pump
    def _pump(self) -> None:
        events = self.layer._events  # (next_event() without a call per event)
        popleft = events.popleft
        while events:
            event = popleft()
            try:
                self._dispatch(event)
            except Exception:  # a bug in one handler must not stop the element
                log.exception("error handling %s", type(event).__name__)
        self._arm_timer()

    def _dispatch(self, event: object) -> None:
        # the frequent events first: every transaction sends and ends
        cls = event.__class__
        if cls is SendMessage:
            self._send(event.message, event.destination)  # type: ignore[attr-defined]
        elif cls is TransactionTerminated:
            key = event.key  # type: ignore[attr-defined]
            if key.__class__ is ClientKey:
                self._pending.pop(key, None)
            else:
                self._incoming.pop(key, None)
        elif isinstance(event, RequestReceived):
            incoming = IncomingRequest(self, event.key, event.request, event.source)
            self._incoming[event.key] = incoming
            now = self.on_request_now
            if now is None or not self._handle_now(now, incoming):
                self._spawn(self._handle(incoming))
        elif isinstance(event, ResponseReceived):
            pending = self._pending.get(event.key)
            if pending is None:
                return
            status = event.response.status
            if status < 200:
                if pending.on_provisional is not None:
                    pending.on_provisional(event.response)
            elif not pending.future.done():
                pending.future.set_result(event.response)
                if pending.request.method != "INVITE":  # one final response only (§17.1.2.2)
                    del self._pending[event.key]
            elif pending.on_extra_final is not None:
                pending.on_extra_final(event.response)
        elif isinstance(event, (TransactionTimeout, TransportError)):
            key = event.key
            if isinstance(key, ClientKey):
                pending = self._pending.get(key)
                if pending is not None and not pending.future.done():
                    status = 408 if isinstance(event, TransactionTimeout) else 503
                    pending.future.set_result(pending.request.response(status))
                    if pending.request.method != "INVITE":
                        del self._pending[key]
        elif isinstance(event, AckReceived):
            if self.on_ack is not None:
                self.on_ack(event.request, event.source)
        elif isinstance(event, StrayResponse):
            if self.on_stray_response is not None:
                self.on_stray_response(event.response, event.source)
        elif isinstance(event, RequestCancelled):
            cancelled = self._incoming.get(event.key)
            if cancelled is not None:
                cancelled.cancelled.set()
                cancelled.final_sent = True
                if self.on_cancel is not None:
                    self.on_cancel(cancelled)
        elif isinstance(event, AckTimeout):
            log.info("no ACK for 2xx of %s", event.key)

    def _send(self, message: Request | Response, destination: Any) -> None:
        if destination.__class__ not in self._connection_classes:
            if not isinstance(destination, Connection):
                log.warning("no connection to send %r", message)
                return
            self._connection_classes.add(destination.__class__)  # (ABC check once per class)
        if destination.closed:
            if isinstance(message, Response):
                self._spawn(self.transport.send_response(message, destination))
            return
        try:
            if isinstance(message, Response):
                destination.send_response(message)
            else:
                destination.send(message)
        except TransportFailure as exc:
            log.info("send on %s failed: %s", destination, exc)

    async def _handle(self, incoming: IncomingRequest) -> None:
        try:
            await self.on_request(incoming)
        except Exception:
            self._handler_failed(incoming)

    def _handle_now(self, handler: Callable[[IncomingRequest], bool], incoming: IncomingRequest) -> bool:
        try:
            return handler(incoming)
        except Exception:
            self._handler_failed(incoming)
            return True

    @staticmethod
    def _handler_failed(incoming: IncomingRequest) -> None:
        """A bug in one request handler must not stop the element: logged, and 500."""
        log.exception("request handler failed for %s", incoming.request.method)
        if not incoming.final_sent:
            incoming.respond(500, "Server Internal Error")

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = self.loop.create_task(coro) if asyncio.iscoroutine(coro) else asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -------------------------------------------------------------- timers
    def _arm_timer(self) -> None:
        """Keep one loop timer at or before the layer's earliest deadline. A timer that is
        armed earlier than needed stays (it fires, finds nothing due, re-arms): under load
        the earliest deadline moves with every message, and re-creating the loop timer
        each time would cost more than the occasional early wake-up."""
        deadline = self.layer.get_timer()
        if deadline is None:
            return
        tick = math.ceil(deadline / TIMER_TICK) * TIMER_TICK
        if self._timer_at is not None and self._timer_at <= tick:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = tick
        self._timer = self.loop.call_at(tick, self._on_timer)

    def _on_timer(self) -> None:
        """Fire the due timers, once the datagrams already waiting have been read.

        A busy loop finds its timers due together with the input that arrived meanwhile,
        and runs the timers first (uvloop runs timers before polling; asyncio reads one
        datagram per socket and loop iteration): Timer E/A would retransmit requests whose
        responses are already in the socket buffer, which the peer answers again. So while
        a UDP socket has input waiting (and for at most :data:`MAX_TIMER_DEFERRAL`), the
        timers wait for the next loop iteration."""
        self._timer = None
        self._timer_at = None
        now = self.now()
        if self.transport.input_pending():
            since = self._deferred_since
            if since is None:
                since = self._deferred_since = now
            if now - since < MAX_TIMER_DEFERRAL:
                self._timer_at = now
                self._timer = self.loop.call_soon(self._on_timer)
                return
        self._deferred_since = None
        self.layer.handle_timer(now)
        self._pump()


@dataclass(slots=True, init=False)
class _Pending:
    future: asyncio.Future[Response]
    on_provisional: Callable[[Response], None] | None
    on_extra_final: Callable[[Response], None] | None
    request: Request

    def __init__(
        self, future: asyncio.Future[Response], on_provisional: Callable[[Response], None] | None,
        on_extra_final: Callable[[Response], None] | None, request: Request
    ) -> None:
        self.future = future
        self.on_provisional = on_provisional
        self.on_extra_final = on_extra_final
        self.request = request
