"""The WIC is called: the terminating session setup (seed 004 §6.X.2.3.2 and §6.X.2.3.4, NI-T).

Terminating routing (issue 7 item 2): the INVITE reached us through our Path entry
(or our Contact) with the binding's flow token, so :class:`~.proxy.Router` has found
the binding; its WebSocket flow carries the INVITE to the WIC. A WIC gone offline
(the flow closed, the registration in its grace period) gets 430 Flow Failed when
it registered with RFC 5626 outbound (our Path then has ``ob``, §5.3), else 480.

Steps (seed numbers): 5. external: the IWF reserves initial resources
(``offer_from_ims``); 6. the INVITE to the WIC (a new dialog, the caller's From and
P-Asserted-Identity unless privacy is asked, RFC 3325 §7); 7-8. the WIC's answer
(in its 18x or 200) goes through the IWF (``answer_from_webrtc``), after which our
segment is reserved; 13. NI-T (TS 23.228 §5.7.4) for a WIC that knows neither
100rel nor preconditions: when the IMS offer asks for them the gateway sends the
answer in a reliable 183 (RFC 3262 §3, retransmitted until PRACK), asks the caller
to confirm its segment (``a=conf``, RFC 3312 §6), answers its UPDATE, and only once
every mandatory precondition is met does it pass ringing and the 200 (RFC 3312 §6:
no alerting before); 14-18. 180 Ringing (reliably when 100rel is in use — it then
follows the answer); 19-24. the WIC's 200 is ACKed at once, ``confirm`` gives final
resources, and the 200 goes to the IMS (without SDP when a reliable 183 already
carried the answer). A CANCEL from the IMS (its 487 is sent by the transaction
layer) cancels the WIC's INVITE; a WIC's 200 that crosses it is ACKed and BYEd.
An INVITE without SDP (delayed offer, RFC 3261 §13.2.1) reaches the WIC without SDP;
the WIC's offer in its 200 goes to the IMS in ours, the IMS's answer in its ACK comes
back in our ACK to the WIC (:mod:`.delayed_offer`; no preconditions then, and 100rel
only when the IMS requires it: media through the external IWF, whose own offer goes in a
reliable 183; media in the IMS, no 18x before the 200 — RFC 3262 §3/§5, the reasons in
:func:`.delayed_offer.offer_in_reliable_1xx`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING

from webims.endpoint import IncomingRequest
from webims.media.api import MediaError
from webims.sdp import SdpError, SessionDescription
from webims.sip import Dialog, DialogError, NameAddr, Request, Response

from .b2bua import ALLOW, Call, Side, allow_of, final_response, reason_header
from .delayed_offer import AckWait, ack_timeout, answer_of_ack, offer_in_reliable_1xx
from .prack import ReliableSender
from .precondition import apply_preconditions, preconditions_of, strip_preconditions
from .sdp_media import SDP, parse_sdp
from .session_timer import Negotiation, SessionTimer, uac_headers, uac_result, uas_negotiate

if TYPE_CHECKING:
    from .sessions import SessionManager
    from .state import Binding

__all__ = ["Terminating", "WicLateAnswers", "terminate"]

log = logging.getLogger("webims.gateway.sessions")

PASSED_ON = ("Subject", "Priority", "Alert-Info", "Call-Info", "Organization", "Accept-Language")


def _ours(mgr: SessionManager) -> frozenset[str]:
    tags = {"timer"}
    if mgr.config.hundred_rel != "off":
        tags.add("100rel")
    if mgr.config.preconditions != "off":
        tags.add("precondition")
    return frozenset(tags)


async def terminate(mgr: SessionManager, incoming: IncomingRequest, binding: Binding, t0: float) -> None:
    """An initial INVITE from the IMS for ``binding`` (module docstring)."""
    request = incoming.request
    conn = binding.connection
    if conn is None or conn.closed:
        if binding.instance is not None and binding.reg_id is not None:
            incoming.respond(430, "Flow Failed")  # RFC 5626 §5.3 (our Path had ob)
        else:
            incoming.respond(480, "Temporarily Unavailable (the WIC is offline)")
        return
    max_forwards = request.max_forwards
    if max_forwards is not None and max_forwards <= 0:
        incoming.respond(483)
        return
    unsupported = request.option_tags("require") - _ours(mgr)
    if unsupported:
        incoming.respond(420, headers=[("Unsupported", ", ".join(sorted(unsupported)))])
        return
    try:
        offer = parse_sdp(request.body, request.content_type)
    except SdpError as exc:
        incoming.respond(exc.status, headers=[("Warning", mgr.warning(exc.reason))])
        return
    negotiation = uas_negotiate(request, min_se=mgr.config.min_se, default=mgr.config.session_expires)
    if negotiation.status == 422:
        incoming.respond(422, headers=negotiation.response_headers(uac_supports=True))
        return
    call = await mgr.new_call(binding, "term", incoming)
    if call is None:
        return
    setup = Terminating(mgr, call, incoming, negotiation)
    setup.started = t0
    call.setup = setup
    await setup.run(offer)


class WicLateAnswers:
    """``on_extra_final`` of the INVITE to the WIC: a retransmitted 2xx is ACKed again (§13.2.2.4).

    The SIP layer keeps this callback while the client transaction is Accepted (Timer M,
    RFC 6026 §8.4), long after the call may have ended; so it holds the WIC's dialog and
    binding, not the call and its media.
    """

    def __init__(self, mgr: SessionManager, binding: Binding) -> None:
        self.mgr = mgr
        self.binding = binding
        self.dialog: Dialog | None = None  # the WIC leg's dialog, once a response made it

    def __call__(self, response: Response) -> None:
        dialog = self.dialog
        if dialog is not None and 200 <= response.status < 300:
            ack = dialog.ack_for(response)
            if ack is not None:
                self.mgr.send_ack_wic(self.binding, ack)


class Terminating:
    """The setup of one call to a WIC (module docstring)."""

    def __init__(
        self, mgr: SessionManager, call: Call, incoming: IncomingRequest, negotiation: Negotiation
    ) -> None:
        self.mgr = mgr
        self.call = call
        self.incoming = incoming
        self.request = incoming.request
        self.negotiation = negotiation
        self.binding = call.binding
        # NI-T: a WIC such as JsSIP has no SDP before its 200, so the answer (and with it any
        # reliable 1xx) waits for it. Preconditions are used when the IMS requires them (or
        # merely supports them and ``preconditions = "required"``); 100rel when required or
        # when preconditions need it. Otherwise ringing reaches the caller at once.
        supported, required = self.request.option_tags("supported"), self.request.option_tags("require")
        config = mgr.config
        self.use_preconditions = config.preconditions != "off" and (
            "precondition" in required or ("precondition" in supported and config.preconditions == "required")
        )
        self.require_100rel = "100rel" in required
        self.use_100rel = config.hundred_rel != "off" and (
            self.require_100rel or ("100rel" in supported and self.use_preconditions)
        )
        self.delayed = False  # no offer in the INVITE (see run)
        self.reliable = ReliableSender(self.request, t1=mgr.gw.ims.endpoint.layer.timers.t1)
        self.prack = asyncio.Event()
        self.qos_met = asyncio.Event()
        self.wic_invite: Request | None = None
        self.late = WicLateAnswers(mgr, self.binding)
        self.ims_gone = False  # the IMS cancelled (its 487 is out) or got a final answer
        self.answer_body: bytes | None = None  # our SDP answer toward the IMS
        self.answer_sent_reliably = False
        self.ims_negotiated = False  # the IMS leg's offer/answer done in our reliable 183 and its PRACK
        self.prack_request: Request | None = None  # the PRACK of our last reliable 1xx
        self.ringing = False
        self.ring_sent = False
        self.wic_answered = False
        self.started = time.perf_counter()

    # ------------------------------------------------------------------ the flow
    async def run(self, offer: SessionDescription | None) -> None:
        mgr, call, request = self.mgr, self.call, self.request
        call.ims.call_id = request.call_id
        call.ims.peer_allows_update = "UPDATE" in allow_of(request)
        call.ims.peer_supports_timer = "timer" in request.option_tags("supported")
        if offer is None:
            # delayed offer (RFC 3261 §13.2.1): no SDP before the WIC's 200, so no reliable 1xx
            # (the first one would have to carry the offer, RFC 3262 §5) and no preconditions —
            # unless the IMS requires 100rel and the external IWF can offer (offer_in_reliable_1xx)
            self.delayed = True
            self.use_preconditions = self.use_100rel = False
            if self.require_100rel and call.media.external and mgr.config.hundred_rel != "off":
                offer = await offer_in_reliable_1xx(self)  # the IWF's offer first (RFC 3262 §5)
                if offer is None and self.ims_gone:  # failed: the IMS has its final response
                    await call.end("", skip=call.ims)
                    return
                if offer is not None:
                    self.delayed, self.use_100rel = False, True
                # else the IWF cannot offer without a source SDP (rtpengine): no 18x, the offer
                # goes in our 200 and the answer comes in the ACK, as with media=ims
        if offer is None or (self.use_preconditions and not call.qos.take_offer(preconditions_of(offer))):
            self.use_preconditions = False
        if call.qos.met():
            self.qos_met.set()
        wic_body = b""
        if offer is not None:
            call.ims.sdp.received(offer)
            try:
                wic_offer = await call.media.offer_from_ims(strip_preconditions(offer.copy()))  # step 5
            except MediaError as exc:
                self._fail_ims(exc.status, exc.reason, [("Warning", mgr.warning(exc.reason))])
                await call.end("", skip=call.ims)
                return
            wic_body = call.wic.sdp.stamp(wic_offer)
        invite = self._build_wic_invite(wic_body)
        self.wic_invite = invite
        queue: asyncio.Queue[tuple[float, Response]] = asyncio.Queue()

        def deliver(response: Response) -> None:  # when the SIP layer has it: the latency starts
            queue.put_nowait((time.perf_counter(), response))

        task = asyncio.ensure_future(
            mgr.send_wic(invite, self.binding, on_provisional=deliver, on_extra_final=self.late,
                         relay=("INVITE", self.started))
        )  # fmt: skip
        task.add_done_callback(lambda t: deliver(t.result()) if not t.cancelled() else None)
        while True:
            received, response = await queue.get()
            if response.status >= 200:
                break
            try:
                await self._wic_provisional(response)
            except Exception:
                log.exception("%s: provisional response handling failed", call)
        await self._wic_final(response, received)

    def _build_wic_invite(self, body: bytes) -> Request:
        mgr, call, request, binding = self.mgr, self.call, self.request, self.binding
        call.wic.call_id = f"{secrets.token_hex(10)}@{mgr.gw.config.uri_host}"
        call.wic.owns_call_id = True
        caller = request.from_
        from_ = NameAddr(caller.uri, caller.display, {"tag": call.wic.tag})
        callee = request.to
        to_uri = callee.uri
        if binding.mode == "pool":
            from webims.sip import parse_uri

            to_uri = parse_uri(binding.aor)  # the WIC knows itself by its own address
        to = NameAddr(to_uri, callee.display, {})
        headers: list[tuple[str, str]] = [
            ("Max-Forwards", "70"),
            ("From", str(from_)),
            ("To", str(to)),
            ("Call-ID", call.wic.call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", mgr.contact_for(call, Side.WIC)),
            ("Allow", ALLOW),
        ]
        if mgr.config.wic_session_expires:
            headers.append(("Supported", "timer"))
            headers += uac_headers(mgr.config.wic_session_expires, mgr.config.min_se)
        privacy = {p.strip().lower() for v in request.headers.get_all("Privacy") for p in v.split(";")}
        if not privacy & {"id", "header", "user"}:
            headers += [("P-Asserted-Identity", v) for v in request.headers.get_all("P-Asserted-Identity")]
        headers += [(n, v) for n in PASSED_ON for v in request.headers.get_all(n)]
        if body:
            headers.append(("Content-Type", SDP))
        return Request("INVITE", binding.contact_uri, headers, body)

    # ------------------------------------------------------------------ the WIC's answers
    async def _wic_provisional(self, response: Response) -> None:
        if response.status == 100 or response.to.tag is None or self.ims_gone:
            return
        self._wic_dialog(response)
        try:
            sdp = parse_sdp(response.body, response.content_type)
        except SdpError:
            sdp = None
        if self.delayed:
            sdp = None  # an offer only in a reliable 1xx or the 2xx (RFC 3261 §13.2.1)
        if sdp is not None and self.answer_body is None and not await self._have_answer(sdp, final=False):
            return
        if response.status == 180:
            self.ringing = True
        await self._maybe_ring()

    def _wic_dialog(self, response: Response) -> Dialog | None:
        call = self.call
        assert self.wic_invite is not None
        if call.wic.dialog is None:
            try:
                call.wic.dialog = self.late.dialog = Dialog.from_uac(self.wic_invite, response)
            except DialogError:
                return None
            self.mgr.register(call, call.wic, call.wic.dialog)
        elif response.to.tag == call.wic.dialog.id.remote_tag:
            call.wic.dialog.receive_response(response)
        return call.wic.dialog

    async def _have_answer(self, sdp: SessionDescription, *, final: bool) -> bool:
        """Steps 7-8, 14: the WIC's answer through the IWF; NI-T: the reliable 183."""
        call, mgr = self.call, self.mgr
        call.wic.sdp.received(sdp)
        try:
            answer = await call.media.answer_from_wic(sdp)
        except MediaError as exc:
            self._fail_ims(exc.status, exc.reason, [("Warning", mgr.warning(exc.reason))])
            self._drop_wic()
            return False
        call.qos.reserved()
        if self.ims_negotiated:  # the IWF has the WIC's answer; the IMS leg's exchange is complete
            self.answer_body = b""
            return True
        if call.qos.active:
            answer = apply_preconditions(answer, call.qos.answer_lines(confirm=not call.qos.met()))
            if call.qos.met():
                self.qos_met.set()
        self.answer_body = call.ims.sdp.stamp(answer)
        if self.use_100rel and (call.qos.active or not final):
            ok = await self._send_reliable(183, "Session Progress", self.answer_body)
            if not ok:
                return False
            self.answer_sent_reliably = True
        return True

    async def _maybe_ring(self) -> None:
        """Steps 14-18: ringing toward the IMS, once allowed (RFC 3312 §6; RFC 3262 §5)."""
        if (
            not self.ringing
            or self.ring_sent
            or self.ims_gone
            or not self.qos_met.is_set()
            or self.wic_answered
        ):
            return
        if self.use_100rel and self.answer_sent_reliably:
            self.ring_sent = True
            await self._send_reliable(180, "Ringing", b"")
        elif not self.require_100rel:
            self.ring_sent = True
            ringing = self._ims_response(180, "Ringing")
            self._ims_dialog(ringing)
            self.incoming.send(ringing)

    async def _wic_final(self, response: Response, t0: float) -> None:
        try:
            await self._wic_final_inner(response, t0)
        finally:
            self.call.setup = None
            self.call.prack_sender = self.reliable  # a PRACK for a 180 crossing our 200 (RFC 3262 §3)

    async def _wic_final_inner(self, response: Response, t0: float) -> None:
        call, mgr = self.call, self.mgr
        if not 200 <= response.status < 300:
            if not self.ims_gone:
                self._fail_ims(response.status, response.reason, mgr.failure_headers(response))
                mgr.note_relay(str(response.status), t0)
            mgr.invite_done(self.incoming)
            await call.end("", skip=call.ims)
            return
        dialog = self._wic_dialog(response)
        if dialog is None or self.wic_invite is None:
            mgr.invite_done(self.incoming)
            await call.end("", skip=call.ims)
            return
        if self.delayed:
            self.wic_answered = True
            await self._delayed_final(response, dialog, t0)
            return
        mgr.send_ack(call.wic, dialog.create_ack(self.wic_invite))
        self.wic_answered = True
        call.wic.peer_allows_update = "UPDATE" in allow_of(response)
        result = uac_result(response)
        loop = asyncio.get_running_loop()
        call.wic.start_timer(SessionTimer.after_request_sent(result, loop.time()) if result else None)
        if not self.ims_gone and self.answer_body is None:
            try:
                sdp = parse_sdp(response.body, response.content_type)
            except SdpError:
                sdp = None
            if sdp is None:
                self._fail_ims(502, "Bad Gateway (no SDP answer from the WIC)", [])
            else:
                await self._have_answer(sdp, final=True)
        if not self.ims_gone and not self.qos_met.is_set():
            try:
                await asyncio.wait_for(self.qos_met.wait(), mgr.config.precondition_timeout)
            except TimeoutError:
                self._fail_ims(580, "Precondition Failure", [])
        if not self.ims_gone:
            await self._answer_ims(t0)
        mgr.invite_done(self.incoming)
        if not call.answered:
            await call.end(reason_header(487, "Request Terminated") if self.ims_gone else "", skip=call.ims)

    async def _delayed_final(self, response: Response, dialog: Dialog, t0: float) -> None:
        """Delayed offer (:mod:`.delayed_offer`): the WIC's offer in its 200 goes through the media
        plan into our 200 to the IMS; the IMS's answer in its ACK comes back in our ACK to the WIC."""
        call, mgr = self.call, self.mgr
        assert self.wic_invite is not None
        call.wic.peer_allows_update = "UPDATE" in allow_of(response)
        result = uac_result(response)
        loop = asyncio.get_running_loop()
        call.wic.start_timer(SessionTimer.after_request_sent(result, loop.time()) if result else None)
        failure: tuple[int, str] | None = None
        try:
            offer = parse_sdp(response.body, response.content_type)
        except SdpError:
            offer = None
        if offer is None:
            failure = (502, "Bad Gateway (no SDP offer from the WIC)")
        elif not self.ims_gone:
            call.wic.sdp.received(offer)
            try:
                ims_offer = await call.media.offer_from_wic(offer)  # initial resources (steps 2-3)
            except MediaError as exc:
                failure = (exc.status, exc.reason)
            else:
                self.answer_body = call.ims.sdp.stamp(ims_offer)
        waiting: AckWait | None = None
        if failure is not None:
            self._fail_ims(failure[0], failure[1], [])
        elif not self.ims_gone:
            waiting = AckWait(call.ims)  # before the 200: its ACK may come at once
            await self._answer_ims(t0, confirm=False)  # the offer in our 200
        mgr.invite_done(self.incoming)
        wic_answer: SessionDescription | None = None
        status, text = failure or (487, "Request Terminated")
        if call.answered and waiting is not None:
            ack = await waiting.wait(ack_timeout(mgr.gw.ims.endpoint.layer.timers.t1))
            answer = answer_of_ack(ack)
            status, text = (408, "No ACK") if ack is None else (488, "No SDP answer in the ACK")
            if answer is not None:
                call.ims.sdp.received(answer)
                try:
                    wic_answer = await call.media.answer_from_ims(answer)
                    await call.media.confirm()  # step 20: final resources, two-way media
                except MediaError as exc:
                    wic_answer, status, text = None, exc.status, exc.reason
        body = call.wic.sdp.stamp(wic_answer) if wic_answer is not None else b""
        extra = [("Content-Type", SDP)] if body else []
        mgr.send_ack(call.wic, dialog.create_ack(self.wic_invite, headers=extra, body=body))
        if wic_answer is None:  # RFC 3261 §13.2.2.4: ACK even so, then BYE
            await call.end(reason_header(status, text), skip=call.ims if not call.answered else None)

    async def _answer_ims(self, t0: float, *, confirm: bool = True) -> None:
        call, mgr = self.call, self.mgr
        try:
            if confirm:
                await call.media.confirm()  # step 20
        except MediaError as exc:
            self._fail_ims(exc.status, exc.reason, [])
            return
        body = b"" if self.answer_sent_reliably else (self.answer_body or b"")
        headers = self.negotiation.response_headers(uac_supports=call.ims.peer_supports_timer)
        ok = self._ims_response(200, "OK", body=body, extra=[("Supported", "timer"), *headers])
        self._ims_dialog(ok)
        if call.ims.dialog is not None:
            call.ims.dialog.response_sent(ok)
        self.ims_gone = True
        call.answered = True
        self.incoming.send(ok)
        mgr.note_relay("200", t0)
        loop = asyncio.get_running_loop()
        call.ims.start_timer(SessionTimer.after_request_received(self.negotiation, loop.time()))

    # ------------------------------------------------------------------ toward the IMS
    def _ims_response(self, status: int, reason: str, *, body: bytes = b"",
                      extra: list[tuple[str, str]] | None = None) -> Response:  # fmt: skip
        call = self.call
        headers = [("Contact", self.mgr.contact_for(call, Side.IMS)), ("Allow", ALLOW)]
        if status < 300:
            headers.append(("P-Asserted-Identity", f"<{self.binding.impu}>"))
        headers += extra or []
        if body:
            headers.append(("Content-Type", SDP))
        return self.request.response(status, reason, to_tag=call.ims.tag, headers=headers, body=body)

    def _ims_dialog(self, response: Response) -> Dialog | None:
        call = self.call
        if call.ims.dialog is None:
            try:
                call.ims.dialog = Dialog.from_uas(self.request, response)
            except DialogError:
                return None
            self.mgr.register(call, call.ims, call.ims.dialog)
        return call.ims.dialog

    async def _send_reliable(self, status: int, reason: str, body: bytes) -> bool:
        """A reliable 1xx (RFC 3262 §3): retransmitted until its PRACK; none: 504."""
        response = self._ims_response(status, reason, body=body)
        self.reliable.prepare(response)
        self._ims_dialog(response)
        self.prack.clear()
        self.incoming.send(response)
        for wait in self.reliable.retransmit_intervals():
            try:
                await asyncio.wait_for(asyncio.shield(self.prack.wait()), wait)
                return True
            except TimeoutError:
                if self.ims_gone:
                    return False
                self.incoming.send(response)
        self._fail_ims(504, "Server Time-out (no PRACK)", [])
        self._drop_wic()
        return False

    def on_request(self, dialog: Dialog, incoming: IncomingRequest) -> bool:
        """PRACK and UPDATE of the IMS peer in the early dialog (NI-T); True when handled."""
        request = incoming.request
        call = self.call
        if dialog is not call.ims.dialog:
            return False
        if request.method == "PRACK":
            error = dialog.receive_request(request)
            if error is not None:
                incoming.send(error)
            elif self.reliable.match(request):
                self.prack_request = request
                incoming.respond(200)
                self.prack.set()
            else:
                incoming.respond(481, "Call/Transaction Does Not Exist (no such reliable response)")
            return True
        if request.method == "UPDATE":
            error = dialog.receive_request(request)
            if error is not None:
                incoming.send(error)
                return True
            self._early_update(incoming)
            return True
        if request.method == "BYE" and dialog.early:
            dialog.receive_request(request)
            incoming.respond(200)
            self._fail_ims(487, "Request Terminated", [])
            self._drop_wic()
            return True
        return False

    def _early_update(self, incoming: IncomingRequest) -> None:
        """NI-T: the caller reports its segment (RFC 3312 §6); we answer for the WIC."""
        request, call = incoming.request, self.call
        try:
            offer = parse_sdp(request.body, request.content_type)
        except SdpError as exc:
            incoming.respond(exc.status, headers=[("Warning", self.mgr.warning(exc.reason))])
            return
        headers = [("Contact", self.mgr.contact_for(call, Side.IMS)), ("Allow", ALLOW)]
        if offer is None:
            incoming.respond(200, headers=headers)
            return
        if not call.ims.sdp.is_refresh(offer) and call.ims.sdp.last_received is not None:
            incoming.respond(488, "Not Acceptable Here (media change before the answer)")
            return
        call.ims.sdp.received(offer)
        call.qos.take_offer(preconditions_of(offer))
        base = call.ims.sdp.last_sent
        if base is None:  # no answer of ours yet: an offer crossing it (RFC 3311 §5.2)
            incoming.respond(500, headers=[("Retry-After", "1")])
            return
        answer = apply_preconditions(base.copy(), call.qos.answer_lines())
        headers.append(("Content-Type", SDP))
        incoming.respond(200, headers=headers, body=call.ims.sdp.stamp(answer))
        if call.qos.met():
            self.qos_met.set()
            self.mgr.spawn(self._maybe_ring())
        elif call.qos.failed():
            self._fail_ims(580, "Precondition Failure", [])
            self._drop_wic()

    # ------------------------------------------------------------------ cancel, failure
    def cancel(self) -> None:
        """The IMS cancelled (its 487 is out): CANCEL the WIC's INVITE."""
        self.ims_gone = True
        self._drop_wic()

    def fail(self, status: int, reason: str) -> None:
        """Give up (a media failure): the IMS gets ``status``, the WIC's INVITE is cancelled."""
        self._fail_ims(status, reason, [])
        self._drop_wic()

    def _drop_wic(self) -> None:
        self.ims_gone = True
        if self.wic_invite is not None:
            self.mgr.gw.wic.endpoint.cancel(self.wic_invite)

    def _fail_ims(self, status: int, reason: str | None, headers: list[tuple[str, str]]) -> None:
        if self.ims_gone:
            return
        self.ims_gone = True
        final_response(self.incoming, status, reason, self.call.ims.tag, headers)
