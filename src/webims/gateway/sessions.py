"""The gateway's session B2BUA (issue 7): what ``Gateway.sessions`` is.

:class:`SessionManager` plugs into the gateway's dispatch (:class:`~.proxy.Router`
hands it INVITE and the methods of its dialogs, from WICs and from the IMS) and into
both SIP endpoints (ACKs for 2xx and CANCELs, which the transaction layer reports
on its own). It keeps the calls (:class:`~.b2bua.Call`), finds the call and leg of
each in-dialog request by its dialog id (RFC 3261 §12.2.2), sends on each leg (WIC
side: over the binding's current WebSocket flow, so a WIC that reconnected with
RFC 5626 flow recovery is still reached; IMS side: the first Route or the remote
target, resolved with RFC 3263, with fail-over for the initial INVITE) and owns the
external media IWF when ``[sessions] media = "external"``.

    sessions = SessionManager(gateway, SessionConfig(media="external"))
    await sessions.start()          # the IWF (also done on the first call)
    ...
    await sessions.close()

``latency``: when given a :class:`LatencyLog`, the time from the delivery of each
message to the B2BUA until the message it causes is handed to the transport, per
kind (the call benchmark reads it).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, cast

from webims.endpoint import IncomingRequest, SipEndpoint
from webims.media.api import MediaError, MediaEvent, MediaEventKind, MediaIWF
from webims.sip import Dialog, DialogId, ParseError, Request, Response, ServerKey, SipURI
from webims.transport import Connection
from webims.transport.base import TransportError as TransportFailure

from .b2bua import Call, Leg, Side, reason_header
from .call_orig import originate
from .call_term import terminate
from .resolver import ResolveError
from .sdp_media import ExternalIwf, PassThrough
from .session_settings import SessionConfig
from .ueflow import FlowFailure, UeFlow

if TYPE_CHECKING:
    from .core import Gateway
    from .state import Binding
    from .wic import Flow

__all__ = ["LatencyLog", "SessionManager", "attach_sessions"]

log = logging.getLogger("webims.gateway.sessions")

_IN_DIALOG_ONLY = frozenset({"BYE", "PRACK", "UPDATE", "INFO"})
#: How often calls are checked for a WIC gone for good (seconds).
SWEEP_INTERVAL = 5.0


class _Setup(Protocol):
    def cancel(self) -> None: ...

    def fail(self, status: int, reason: str) -> None: ...

    def on_request(self, dialog: Dialog, incoming: IncomingRequest) -> bool: ...


class LatencyLog:
    """Gateway-added latency samples (seconds), by message kind."""

    def __init__(self, limit: int = 1_000_000) -> None:
        self.limit = limit
        self.samples: dict[str, list[float]] = {}

    def add(self, kind: str, seconds: float) -> None:
        bucket = self.samples.setdefault(kind, [])
        if len(bucket) < self.limit:
            bucket.append(seconds)

    def all(self) -> list[float]:
        return [s for bucket in self.samples.values() for s in bucket]

    def clear(self) -> None:
        self.samples.clear()


class SessionManager:
    """Calls through the gateway (module docstring)."""

    def __init__(
        self,
        gateway: Gateway,
        config: SessionConfig | None = None,
        *,
        iwf: MediaIWF | None = None,
        latency: LatencyLog | None = None,
    ) -> None:
        self.gw = gateway
        self.config = config or SessionConfig()
        self.iwf = iwf
        self._own_iwf = False
        self.latency = latency
        self.calls: dict[str, Call] = {}
        self.dialogs: dict[DialogId, tuple[Call, Leg, Dialog]] = {}
        self.invites: dict[ServerKey, Call] = {}
        self.completed = 0  # calls that were answered and have ended
        self._tasks: set[asyncio.Future[Any]] = set()
        self._start_lock = asyncio.Lock()
        self._sweeper: asyncio.TimerHandle | None = None
        self._gone: dict[str, float] = {}  # call id -> when its WIC's flow was first seen gone
        self.started = False
        gateway.sessions = self
        gateway.wic.endpoint.on_ack = self._wic_ack
        gateway.wic.endpoint.on_cancel = self._cancelled
        gateway.ims.endpoint.on_ack = self._ims_ack
        gateway.ims.endpoint.on_cancel = self._cancelled

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        async with self._start_lock:
            if self.started:
                return
            if self.config.media == "external" and self.iwf is None:
                self.iwf = self._make_iwf()
                self._own_iwf = True
                await self.iwf.start()
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep)
            self.started = True

    def _make_iwf(self) -> MediaIWF:
        config = self.config
        if config.media_backend == "rtpengine":
            from webims.media.rtpengine import RtpengineIWF

            host, _, port = config.rtpengine.rpartition(":")
            return RtpengineIWF((host.strip("[]"), int(port)), max_sessions=config.max_calls)
        from webims.media.embedded import EmbeddedConfig, EmbeddedMediaIWF

        return EmbeddedMediaIWF(
            EmbeddedConfig(
                webrtc_addresses=config.candidate_addresses,
                ims_address=config.media_address,
                port_min=config.media_port_min,
                port_max=config.media_port_max,
                max_sessions=config.max_calls,
            )
        )

    async def close(self) -> None:
        """End every call (BYE both legs), then stop the IWF if it is ours."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        calls = list(self.calls.values())
        await asyncio.gather(*(c.end(reason_header(503, "Service shutting down")) for c in calls))
        if self._tasks:  # the BYEs: a moment for their answers, no more
            await asyncio.wait(list(self._tasks), timeout=2.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_iwf and self.iwf is not None:
            await self.iwf.close()
        self.started = False

    def _sweep(self) -> None:
        """End answered calls whose WIC has been gone (no WebSocket flow) for the grace period:
        nobody will hang up or refresh them (media interworking in the IMS has no media timeout here)."""
        now = time.monotonic()
        grace = self.gw.config.grace_period
        for call in list(self.calls.values()):
            conn = call.binding.connection
            if conn is not None and not conn.closed:
                self._gone.pop(call.id, None)
                continue
            since = self._gone.setdefault(call.id, now)
            if call.answered and not call.ended and now - since >= grace:
                log.info("%s: the WIC is gone; ending the call", call)
                self.spawn(call.end(reason_header(480, "The WIC is gone"), skip=call.wic))
        for call_id in [c for c in self._gone if c not in self.calls]:
            del self._gone[call_id]
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ calls and dialogs
    @property
    def sdp_address(self) -> str:
        return self.config.media_address

    async def new_call(self, binding: Binding, direction: str, incoming: IncomingRequest) -> Call | None:
        """A call for an initial INVITE, with its media plan; None when refused (answered)."""
        if not self.started:
            await self.start()
        if len(self.calls) >= self.config.max_calls:
            incoming.respond(503, "Service Unavailable (too many calls)",
                             headers=[("Retry-After", str(self.gw.config.retry_after))])  # fmt: skip
            return None
        call = Call(self, binding, direction, PassThrough())
        if self.config.media == "external" and self.iwf is not None:
            try:
                session = await self.iwf.create_session(call.id, on_event=self._media_event(call))
            except MediaError as exc:
                incoming.respond(exc.status, exc.reason, headers=[("Warning", self.warning(exc.reason))])
                return None
            call.media = ExternalIwf(session)
        self.calls[call.id] = call
        self.invites[incoming.key] = call
        call.invite_keys.append(incoming.key)
        return call

    def owns_dialog(self, dialog_id: DialogId) -> bool:
        """Whether ``dialog_id`` is one of the B2BUA's dialogs (in-dialog requests come here)."""
        return dialog_id in self.dialogs

    def register(self, call: Call, leg: Leg, dialog: Dialog) -> None:
        self.dialogs[dialog.id] = (call, leg, dialog)
        call.dialog_ids.add(dialog.id)

    def unregister(self, dialog: Dialog) -> None:
        found = self.dialogs.pop(dialog.id, None)
        if found is not None:
            found[0].dialog_ids.discard(dialog.id)

    def invite_done(self, incoming: IncomingRequest) -> None:
        self.invites.pop(incoming.key, None)

    def forget(self, call: Call) -> None:
        if self.calls.pop(call.id, None) is not None and call.answered:
            self.completed += 1
        for dialog_id in call.dialog_ids:
            self.dialogs.pop(dialog_id, None)
        for key in call.invite_keys:
            if self.invites.get(key) is call:
                del self.invites[key]
        # The call <-> leg reference cycle, broken: an ended call is freed by reference counting
        # as soon as the last task working on it lets go (not by the cyclic collector, whose
        # pauses are the latency tail). Until then its legs still reach it.
        for leg in (call.wic, call.ims):
            if type(leg.call) is Call:
                leg.call = cast(Call, weakref.proxy(call))

    def contact_for(self, call: Call, side: Side) -> str:
        """Our Contact on a leg: toward the WIC a URI naming the call; toward the IMS our Mw
        URI with the binding's flow token, so that requests in the dialog come back to us."""
        if side is Side.WIC:
            host = self.gw.config.uri_host
            host = f"[{host}]" if ":" in host else host
            return f"<sip:{call.id}@{host};transport=ws>"
        return f"<{self.gw.ims.uri(self.gw.token_of(call.binding), flow=self.gw.ims_flow_of(call.binding))}>"

    def _media_event(self, call: Call) -> Callable[[MediaEvent], None]:
        call_id = call.id  # not the call itself: the IWF session it owns would hold it (a cycle)

        def on_event(event: MediaEvent) -> None:
            call = self.calls.get(call_id)
            if call is None:  # ended
                return
            if event.kind is MediaEventKind.DTMF:
                log.debug("%s: DTMF %s from the %s side", call, event.detail, event.side.value)
                return
            log.info("%s: media %s (%s): ending the call", call, event.kind.value, event.detail)
            text = f"Media failure: {event.kind.value}"
            if call.setup is not None:
                call.setup.fail(503, f"Service Unavailable ({text})")
            self.spawn(call.end(reason_header(503, text)))

        return on_event

    # ------------------------------------------------------------------ dispatch (Gateway.sessions)
    async def from_wic(self, incoming: IncomingRequest, flow: Flow) -> None:
        t0 = time.perf_counter()
        found = await self._dialog_of(incoming, Side.WIC, lambda: originate(self, incoming, flow, t0))
        if found is None:
            return
        if found[0].binding not in self.gw.bindings.on_connection(flow.id):
            incoming.respond(403, "Forbidden (not this WIC's call)")
            return
        await self._in_dialog(found, incoming, t0)

    async def from_ims(self, incoming: IncomingRequest, binding: Binding) -> None:
        t0 = time.perf_counter()
        found = await self._dialog_of(incoming, Side.IMS, lambda: terminate(self, incoming, binding, t0))
        if found is not None:
            await self._in_dialog(found, incoming, t0)

    async def _dialog_of(
        self, incoming: IncomingRequest, side: Side, new_call: Callable[[], Awaitable[None]]
    ) -> tuple[Call, Leg, Dialog] | None:
        """The B2BUA dialog of a request from ``side``; None when it was dealt with here: an
        initial INVITE starts ``new_call``, other out-of-dialog requests get 481/405, and a
        request for no dialog of that side 481 (RFC 3261 §12.2.2; never an answer to ACK)."""
        request = incoming.request
        if not self._enabled(incoming):
            return None
        if request.to.tag is None:
            if request.method == "INVITE":
                await new_call()
            elif request.method != "ACK":
                incoming.respond(481 if request.method in _IN_DIALOG_ONLY else 405)
            return None
        found = self._find(request)
        if found is None or found[1].side is not side:
            if request.method != "ACK":
                incoming.respond(481)
            return None
        return found

    def _enabled(self, incoming: IncomingRequest) -> bool:
        if self.config.enabled:
            return True
        if incoming.request.method != "ACK":
            incoming.respond(501, "Not Implemented (sessions are disabled)")
        return False

    def _find(self, request: Request) -> tuple[Call, Leg, Dialog] | None:
        try:
            dialog_id = DialogId.of_request(request)
        except ParseError:
            return None
        return self.dialogs.get(dialog_id) if dialog_id is not None else None

    async def _in_dialog(self, found: tuple[Call, Leg, Dialog], incoming: IncomingRequest, t0: float) -> None:
        call, leg, dialog = found
        setup: _Setup | None = call.setup
        if setup is not None and setup.on_request(dialog, incoming):
            return
        await call.on_request(leg, dialog, incoming, t0)

    def _wic_ack(self, request: Request, conn: Connection) -> None:
        self._ack(request, Side.WIC)

    def _ims_ack(self, request: Request, conn: Connection) -> None:
        self._ack(request, Side.IMS)

    def _ack(self, request: Request, side: Side) -> None:
        found = self._find(request)
        if found is not None and found[1].side is side:
            found[0].on_ack(found[1], request)

    def _cancelled(self, incoming: IncomingRequest) -> None:
        """A CANCEL matched a pending INVITE (the transaction layer sent 200 and 487, §9.2)."""
        call = self.invites.pop(incoming.key, None)
        if call is not None and call.setup is not None:
            t0 = time.perf_counter()
            call.setup.cancel()
            self.note_relay("CANCEL", t0)

    # ------------------------------------------------------------------ sending
    def send_on(self, leg: Leg, request: Request, **kw: Any) -> Coroutine[Any, Any, Response]:
        """Send on a leg (a coroutine to await or spawn; the leg's binding is taken now, so
        that the BYEs of an ended call need nothing of the call when they run)."""
        if leg.side is Side.IMS:
            return self.send_ims(request, binding=leg.call.binding, **kw)
        return self.send_wic(request, leg.call.binding, **kw)

    async def send_wic(
        self,
        request: Request,
        binding: Binding,
        *,
        on_provisional: Callable[[Response], None] | None = None,
        on_extra_final: Callable[[Response], None] | None = None,
        relay: tuple[str, float] | None = None,
    ) -> Response:
        """Over the binding's current WebSocket flow; a WIC gone offline: 408."""
        conn = binding.connection
        if conn is None or conn.closed:
            return request.response(408, "Request Timeout (the WIC is offline)")
        SipEndpoint.add_via(request, conn)
        if relay is not None:
            self.note_relay(*relay)
        return await self.gw.wic.endpoint.request(
            request, conn, on_provisional=on_provisional, on_extra_final=on_extra_final
        )

    async def send_ims(
        self,
        request: Request,
        *,
        on_provisional: Callable[[Response], None] | None = None,
        on_extra_final: Callable[[Response], None] | None = None,
        attempts: list[Request] | None = None,
        relay: tuple[str, float] | None = None,
        binding: Binding | None = None,
    ) -> Response:
        """To the first Route, else the remote target (in a dialog) or the configured next hop;
        each resolved target in turn while the failure is local (RFC 3263 §4.3). Behind a
        P-CSCF from the ``binding``'s own flow (:mod:`.ueflow`: the P-CSCF knows the UE by it)."""
        flow = None if binding is None else self.gw.ims_flow_of(binding)
        if flow is not None:
            send = functools.partial(
                self._send_ims, request, on_provisional, on_extra_final, attempts, relay, flow
            )
            return await flow.carry(request, send)
        return await self._send_ims(request, on_provisional, on_extra_final, attempts, relay, None)

    async def _send_ims(
        self,
        request: Request,
        on_provisional: Callable[[Response], None] | None,
        on_extra_final: Callable[[Response], None] | None,
        attempts: list[Request] | None,
        relay: tuple[str, float] | None,
        flow: UeFlow | None,
    ) -> Response:
        ims = self.gw.ims
        hop = self._hop(request)
        if hop is None:
            return request.response(503, "Service Unavailable (no route to the IMS)")
        try:  # asyncio.timeout: no task of its own (wait_for's) for what is mostly a cache hit
            async with asyncio.timeout(self.gw.config.ims_timeout):
                targets = await ims.resolver.resolve(hop)
        except (ResolveError, TimeoutError) as exc:
            log.warning("cannot resolve %s: %s", hop, exc or "timeout")
            return request.response(503, "Service Unavailable (next hop not found)")
        response = request.response(503, "Service Unavailable (next hop unreachable)")
        for i, target in enumerate(targets):
            try:
                conn = await ims.connect(target, flow)
            except (TransportFailure, FlowFailure, OSError, ValueError) as exc:
                log.info("cannot reach %s: %s", target, exc)
                continue
            attempt = request if i == 0 else Request(request.method, request.uri, request.headers.copy(),
                                                     request.body)  # fmt: skip
            attempt.headers.remove("Via")
            SipEndpoint.add_via(attempt, conn)
            if attempts is not None:
                attempts.append(attempt)
            seen: list[Response] = []

            def provisional(r: Response, seen: list[Response] = seen) -> None:
                seen.append(r)
                if on_provisional is not None:
                    on_provisional(r)

            if relay is not None and i == 0:
                self.note_relay(*relay)
            response = await ims.endpoint.request(
                attempt, conn, on_provisional=provisional, on_extra_final=on_extra_final
            )
            if (
                response.status in (408, 503)
                and response.to.tag is None
                and not seen
                and i + 1 < len(targets)
            ):
                ims.resolver.forget(hop)
                continue
            return response
        return response

    def _hop(self, request: Request) -> SipURI | None:
        routes = request.route
        if routes:
            uri = routes[0].uri
        elif request.to.tag is not None or request.method == "ACK":
            uri = request.uri
        else:
            uri = self.gw.ims.next_hop
        return uri if isinstance(uri, SipURI) else None

    def send_ack(self, leg: Leg, ack: Request) -> None:
        """The ACK for a 2xx (RFC 3261 §13.2.2.4): outside any transaction, on the leg's path."""
        if leg.side is Side.IMS:
            self.send_ack_ims(ack, leg.call.binding)
        else:
            self.send_ack_wic(leg.call.binding, ack)

    def send_ack_wic(self, binding: Binding, ack: Request) -> None:
        """The ACK for a 2xx toward a WIC, over the binding's current flow (as :meth:`send_ack`)."""
        ack.headers.remove("Via")
        conn = binding.connection
        if conn is not None and not conn.closed:
            SipEndpoint.add_via(ack, conn)
            self.gw.wic.endpoint.send_stateless(ack, conn)

    def send_ack_ims(self, ack: Request, binding: Binding | None = None) -> None:
        """The ACK for a 2xx toward the IMS (as :meth:`send_ack` on the IMS leg); behind a
        P-CSCF from the ``binding``'s own flow."""
        ack.headers.remove("Via")
        self.spawn(self._ack_ims(ack, None if binding is None else self.gw.ims_flow_of(binding)))

    async def _ack_ims(self, ack: Request, flow: UeFlow | None) -> None:
        hop = self._hop(ack)
        if hop is None:
            return
        ims = self.gw.ims
        try:
            targets = await ims.resolver.resolve(hop)
            conn = await ims.connect(targets[0], flow)
        except (ResolveError, TransportFailure, FlowFailure, OSError, ValueError, IndexError) as exc:
            log.info("cannot send ACK to %s: %s", hop, exc)
            return
        SipEndpoint.add_via(ack, conn)
        ims.endpoint.send_stateless(ack, conn)

    # ------------------------------------------------------------------ small helpers
    def warning(self, text: str) -> str:
        return self.gw.warning(text)

    @staticmethod
    def failure_headers(response: Response) -> list[tuple[str, str]]:
        """What a failure response passes on to the other leg (reasons first: RFC 3326, §20.43)."""
        keep = ("Reason", "Warning", "Retry-After", "Unsupported", "Min-SE", "WWW-Authenticate",
                "Proxy-Authenticate", "Error-Info")  # fmt: skip
        out = [(n, v) for n in keep for v in response.headers.get_all(n)]
        if 300 <= response.status < 400:
            out += [("Contact", v) for v in response.headers.get_all("Contact")]
        return out

    def note_relay(self, kind: str, t0: float) -> None:
        if self.latency is not None:
            self.latency.add(kind, time.perf_counter() - t0)


def attach_sessions(
    gateway: Gateway, config: SessionConfig, *, iwf: MediaIWF | None = None
) -> SessionManager:
    """Give ``gateway`` its session B2BUA (``webims serve gateway``, ``webims demo``)."""
    return SessionManager(gateway, config, iwf=iwf)
