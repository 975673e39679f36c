"""One Diameter connection over asyncio TCP: the sans-IO :class:`DiameterPeer` plus a transport.

Used by the HSS server (responder) and by :class:`~webims.labcore.hss.client.CxClient`
(initiator). The peer state machine does the protocol (RFC 6733 §5.6: CER/CEA,
DWR/DWA, DPR/DPA, error answers); this class moves bytes, runs the timer with the
event loop's monotonic clock, hands application requests to ``on_request`` and
matches answers to the futures of the requests we sent (by Hop-by-Hop identifier,
RFC 6733 §6.2).

When the peer closes (DPR, watchdog, a stream that can no longer be framed), the
pending bytes (e.g. the DPA or the error answer) are flushed, then the transport is
closed; requests still unanswered fail with :class:`ConnectionClosed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import cast

from webims.diameter import (
    DEFAULT_MAX_MESSAGE_SIZE,
    AnswerReceived,
    Capabilities,
    DiameterPeer,
    DisconnectCause,
    Message,
    MessageDiscarded,
    PeerClosed,
    PeerEvent,
    PeerOpened,
    PeerState,
    RequestReceived,
    RequestRejected,
    Role,
)

log = logging.getLogger("webims.labcore.hss")

RequestHandler = Callable[["DiameterConnection", Message], "Message | None"]


class ConnectionClosed(ConnectionError):
    """The Diameter connection closed before the answer came (or before it opened)."""


class DiameterConnection(asyncio.Protocol):
    """An asyncio protocol driving one :class:`DiameterPeer`."""

    def __init__(
        self,
        capabilities: Capabilities,
        role: Role,
        *,
        on_request: RequestHandler | None = None,
        on_opened: Callable[[DiameterConnection], None] | None = None,
        on_closed: Callable[[DiameterConnection], None] | None = None,
        watchdog_interval: float = 30.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        batch: tuple[Callable[[], None], Callable[[], None]] | None = None,
    ) -> None:
        self.capabilities = capabilities
        #: (begin, end) called around the handling of what one read brought (the HSS's
        #: row cache, :meth:`webims.labcore.hss.store.runtime.RuntimeStore.begin_batch`).
        self.batch = batch
        self.role = role
        self.on_request = on_request
        self.on_opened = on_opened
        self.on_closed = on_closed
        self.watchdog_interval = watchdog_interval
        self.max_message_size = max_message_size
        self.loop = asyncio.get_running_loop()
        self.peer: DiameterPeer | None = None
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[PeerOpened] = self.loop.create_future()
        self.closed: asyncio.Future[str] = self.loop.create_future()
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._flush_soon = False
        self.remote: tuple[str, int] | None = None
        self.rejected = 0

    # --- info ---------------------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.peer is not None and self.peer.state is PeerState.OPEN

    @property
    def peer_origin_host(self) -> str | None:
        return self.peer.peer_origin_host if self.peer is not None else None

    @property
    def peer_origin_realm(self) -> str | None:
        return self.peer.peer_origin_realm if self.peer is not None else None

    # --- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peername = self.transport.get_extra_info("peername")
        if isinstance(peername, tuple) and len(peername) >= 2:
            self.remote = (str(peername[0]), int(peername[1]))
        self.peer = DiameterPeer(
            self.capabilities,
            self.role,
            now=self.loop.time(),
            watchdog_interval=self.watchdog_interval,
            max_message_size=self.max_message_size,
        )
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            return
        events = self.peer.receive_data(data, self.loop.time())
        if self.batch is None or not events:
            self._events(events)
            return
        begin, end = self.batch
        begin()
        try:
            self._events(events, flush=False)
        finally:
            end()  # the batch's changes are stored before its answers leave
        self._flush()

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and not self.peer.closed:
            self._events(self.peer.connection_lost(self.loop.time()))
        self._finish("connection lost")

    # --- sending ------------------------------------------------------------------------------------
    def send_request(self, message: Message) -> asyncio.Future[Message]:
        """Send an application request; the future gets its answer (or ConnectionClosed)."""
        return self.send_stamped(message)[1]

    def send_stamped(self, message: Message) -> tuple[Message, asyncio.Future[Message]]:
        """Like :meth:`send_request`, also returning the request as sent (with its identifiers)."""
        fut: asyncio.Future[Message] = self.loop.create_future()
        if self.peer is None or not self.is_open:
            fut.set_exception(ConnectionClosed("Diameter connection is not open"))
            return message, fut
        stamped = self.peer.send_request(message, self.loop.time())
        self._pending[stamped.hop_by_hop] = fut
        if not self._flush_soon:
            # One write for all the requests made in this loop iteration.
            self._flush_soon = True
            self.loop.call_soon(self._flush)
        return stamped, fut

    async def request(self, message: Message, timeout: float = 5.0) -> Message:
        fut = self.send_request(message)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise TimeoutError(f"no answer to command {message.command_code} within {timeout} s") from None

    async def disconnect(
        self, cause: DisconnectCause = DisconnectCause.REBOOTING, timeout: float = 2.0
    ) -> None:
        """Orderly close (RFC 6733 §5.4): DPR, wait for the DPA (or ``timeout``), close."""
        if self.peer is not None and not self.peer.closed:
            self._events(self.peer.close(self.loop.time(), cause))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- internals ------------------------------------------------------------------------------------
    def _events(self, events: list[PeerEvent], *, flush: bool = True) -> None:
        assert self.peer is not None
        for event in events:
            if isinstance(event, RequestReceived):
                answer = self.on_request(self, event.message) if self.on_request is not None else None
                if answer is not None and self.peer.state in (PeerState.OPEN, PeerState.CLOSING):
                    self.peer.send_answer(answer)
            elif isinstance(event, AnswerReceived):
                fut = self._pending.pop(event.request.hop_by_hop, None)
                if fut is not None and not fut.done():
                    fut.set_result(event.message)
            elif isinstance(event, PeerOpened):
                if not self.opened.done():
                    self.opened.set_result(event)
                if self.on_opened is not None:
                    self.on_opened(self)
            elif isinstance(event, RequestRejected):
                self.rejected += 1
                log.info("Diameter request rejected (%s): %s", self.remote, event.error)
            elif isinstance(event, MessageDiscarded):
                log.info("Diameter message discarded (%s): %s", self.remote, event.reason)
            elif isinstance(event, PeerClosed):
                log.info("Diameter peer %s closed: %s", self.peer_origin_host or self.remote, event.reason)
                self._flush()
                if self.transport is not None:
                    self.transport.close()
                self._finish(event.reason)
                return
        if flush:
            self._flush()

    def _flush(self) -> None:
        self._flush_soon = False
        if self.peer is None or self.transport is None:
            return
        data = self.peer.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)
        self._arm_timer()

    def _arm_timer(self) -> None:
        assert self.peer is not None
        deadline = self.peer.get_timer()
        if deadline is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        # The watchdog deadline moves forward with every message; a timer that fires
        # early finds nothing to do and is re-armed, so only move it earlier here.
        if self._timer is not None:
            if self._timer.when() <= deadline:
                return
            self._timer.cancel()
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.peer is None:
            return
        self._events(self.peer.handle_timer(self.loop.time()))

    def _finish(self, reason: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ConnectionClosed(f"Diameter connection closed: {reason}"))
        if not self.opened.done():
            self.opened.set_exception(ConnectionClosed(f"Diameter connection closed before CEA: {reason}"))
            self.opened.exception()  # retrieved: nobody may be waiting
        if not self.closed.done():
            self.closed.set_result(reason)
            if self.on_closed is not None:
                self.on_closed(self)
