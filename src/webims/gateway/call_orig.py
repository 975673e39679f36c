"""A WIC calls: the originating session setup (seed 004 §6.X.2.3.1 and §6.X.2.3.3, NI-O).

Steps, with the seed's numbers (external IWF / IWF in the IMS):

1. the WIC's INVITE over its WebSocket: only a registered flow may call; the
   Bearer token's ``call`` scope and destination rules are checked (TS 24.371 §7.2.1;
   403 with a Warning otherwise); the identity is asserted (P-Asserted-Identity, or
   P-Preferred-Identity behind an operator P-CSCF; a WIC's own P-Asserted-Identity
   never passes; P-Preferred-Identity is honoured when it names one of its IMPUs;
   pool WICs appear as their allocated IMPU);
2-3. external: the IWF reserves initial resources (``offer_from_webrtc``); a
   :class:`~webims.media.api.MediaError` becomes the WIC's answer;
4. an IMS-standard INVITE (new dialog, Service-Route, Contact with the binding's
   flow token, ``Supported: 100rel, precondition, timer``, qos preconditions with
   our segment not yet reserved (TS 24.229 §6.1.2), Session-Expires);
8-11. each 18x: an early dialog per fork (RFC 3261 §12.1.2); reliable ones PRACKed
   (RFC 3262 §4); the answer taken by the IWF (``answer_from_ims``), after which our
   segment is reserved and, when the peer must hear it, an UPDATE says so (RFC 3312
   §5.1.1) — NI-O (TS 23.228 §5.6.4) on behalf of a WIC that knows none of this;
12-15. 180 Ringing passed to the WIC (unreliably) unless it does not want it; early
   media: the SDP answer goes with it. Forking with media in the IMS: each fork's early
   answer reaches the WIC in an early dialog of its own (:class:`Fork`); with the
   external IWF one WIC dialog, the IWF following the fork that answers;
16-21. the 200: ACK toward the IMS, ``confirm`` (final resources), the WIC's 200
   with the WebRTC answer. A second 2xx from another fork is ACKed and ended with BYE
   (§13.2.2.4; with delayed offer its ACK answers its offer, :mod:`.forks`). Failures
   reach the WIC with their status, reason phrase and a Reason header (RFC 3326); 422
   from the IMS is retried with its Min-SE (RFC 4028 §7.4);
   no answer at all within ``ims_invite_timeout``: 503 with Retry-After.
CANCEL from the WIC (its 487 is sent by the transaction layer) cancels the IMS
INVITE; a 2xx that crosses it is ACKed and BYEd. An INVITE without SDP (delayed offer,
RFC 3261 §13.2.1) goes on without SDP; the IMS's offer in its 2xx (or its reliable 1xx)
reaches the WIC and the answer comes back in the ACK (or PRACK): :mod:`.delayed_offer`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING

from webims.auth.identity import check_destination
from webims.endpoint import IncomingRequest
from webims.media.api import MediaError
from webims.sdp import SdpError, SessionDescription
from webims.sip import Dialog, DialogError, DialogSet, NameAddr, ParseError, Request, Response, new_tag

from .b2bua import ALLOW, Call, Side, allow_of, final_response, reason_header
from .delayed_offer import AckWait, EarlyOffer, ack_timeout, answer_of_ack
from .forks import Fork, LateAnswers
from .identity import aor_of, assert_identity, asserted_identity, charging_vector, same_identity
from .prack import is_reliable
from .precondition import apply_preconditions, preconditions_of
from .sdp_media import SDP, LegSdp, parse_sdp
from .session_settings import ringing_hidden
from .session_timer import Negotiation, SessionTimer, min_se_of, uac_headers, uac_result, uas_negotiate
from .wic import Flow

if TYPE_CHECKING:
    from .sessions import SessionManager
    from .state import Binding

__all__ = ["Fork", "LateAnswers", "Originating", "originate"]

log = logging.getLogger("webims.gateway.sessions")

#: Headers of the WIC's INVITE that go on to the IMS (the rest is the B2BUA's own).
PASSED_ON = (
    "Subject", "Priority", "User-Agent", "Accept-Contact", "Reject-Contact", "Request-Disposition",
    "P-Preferred-Service", "Privacy", "Call-Info", "Alert-Info", "Accept", "Accept-Language",
    "Organization", "Reason",
)  # fmt: skip
#: Option tags a WIC may require of us: session timers (100rel and preconditions are the IMS leg's).
WIC_LEG = frozenset({"timer"})


async def originate(mgr: SessionManager, incoming: IncomingRequest, flow: Flow, t0: float) -> None:
    """The WIC's initial INVITE (module docstring)."""
    gw = mgr.gw
    request = incoming.request
    bindings = [b for b in gw.bindings.on_connection(flow.id) if b.confirmed]
    if not bindings:
        incoming.respond(403, "Forbidden (register first)")
        return
    binding = gw.router._pick(bindings, request)
    allowed, identity = await gw.router._authorize(incoming, binding)
    if not allowed:
        return
    if identity is not None:
        decision = check_destination(identity, str(request.uri), scope="call")
        if not decision:
            incoming.respond(
                403,
                "Forbidden (destination not allowed)",
                headers=[("Warning", mgr.warning(decision.reason))],
            )
            return
    max_forwards = request.max_forwards
    if max_forwards is not None and max_forwards <= 0:
        incoming.respond(483)
        return
    unsupported = request.option_tags("require") - WIC_LEG  # 100rel etc. are for the IMS leg only
    if unsupported:
        incoming.respond(420, headers=[("Unsupported", ", ".join(sorted(unsupported)))])
        return
    try:
        offer = parse_sdp(request.body, request.content_type)
    except SdpError as exc:
        incoming.respond(exc.status, headers=[("Warning", mgr.warning(exc.reason))])
        return
    negotiation = uas_negotiate(request, min_se=mgr.config.min_se, default=0)
    if negotiation.status == 422:
        incoming.respond(422, headers=negotiation.response_headers(uac_supports=True))
        return
    call = await mgr.new_call(binding, "orig", incoming)
    if call is None:
        return
    setup = Originating(mgr, call, incoming, offer, max_forwards)
    setup.started = t0
    call.setup = setup
    await setup.run(negotiation)


class Originating:
    """The setup of one WIC-originated call (module docstring)."""

    def __init__(
        self,
        mgr: SessionManager,
        call: Call,
        incoming: IncomingRequest,
        offer: SessionDescription | None,
        max_forwards: int | None,
    ) -> None:
        self.mgr = mgr
        self.call = call
        self.incoming = incoming
        self.request = incoming.request
        self.offer = offer
        self.delayed = offer is None  # delayed offer: the IMS offers in its 2xx (:mod:`.delayed_offer`)
        wic_100rel = "100rel" in self.request.option_tags("supported") | self.request.option_tags("require")
        use = self.delayed and wic_100rel and mgr.config.hundred_rel != "off"
        self.early_offer = EarlyOffer(self) if use else None  # or in a reliable 1xx (RFC 3262 §5)
        self.max_forwards = max_forwards
        self.binding: Binding = call.binding
        self.invite: Request | None = None
        self.late = LateAnswers(mgr, call.binding)
        self.attempts: list[Request] = []  # the INVITEs sent (failover, 422 retry): CANCEL the last
        self.dialogs: DialogSet | None = None
        self.forks: dict[str, Fork] = {}
        self.wic_gone = False  # the WIC cancelled, or got our 503
        self.sdp_tags: set[str] = set()  # WIC To tags whose early dialog has had its early answer
        self.hide_ringing = ringing_hidden(
            mgr.config, user_agent=self.request.headers.get("User-Agent"),
            origin=self.binding.origin, impu=self.binding.impu,
        )  # fmt: skip
        self.wic_negotiation: Negotiation | None = None
        self.session_expires = mgr.config.session_expires
        self.min_se = mgr.config.min_se
        self.started = time.perf_counter()
        self.final_at = self.started

    # ------------------------------------------------------------------ the flow
    async def run(self, negotiation: Negotiation) -> None:
        mgr, call = self.mgr, self.call
        self.wic_negotiation = negotiation
        call.wic.call_id = self.request.call_id
        call.wic.peer_allows_update = "UPDATE" in allow_of(self.request)
        body = b""
        if self.offer is not None:
            call.wic.sdp.received(self.offer)  # (a later re-INVITE with it again is a refresh)
            try:
                ims_offer = await call.media.offer_from_wic(self.offer)  # steps 2-3
            except MediaError as exc:
                self._fail_wic(exc.status, exc.reason, [("Warning", mgr.warning(exc.reason))])
                await call.end("", skip=call.wic)
                return
            if mgr.config.preconditions != "off":
                ims_offer = apply_preconditions(ims_offer, call.qos.offer_lines())
            body = call.ims.sdp.stamp(ims_offer)
        for _ in range(3):  # 422 retries (RFC 4028 §7.4)
            final = await self._send_invite(body)
            if final.status == 422 and not self.wic_gone:
                asked = min_se_of(final) or self.session_expires
                self.session_expires = max(self.session_expires, asked)
                self.min_se = max(self.min_se, asked)
                continue
            break
        await self._final(final)

    def _build_invite(self, body: bytes) -> Request:
        mgr, call, request, binding = self.mgr, self.call, self.request, self.binding
        gw = mgr.gw
        config = mgr.config
        if self.invite is None:
            call.ims.call_id = f"{secrets.token_hex(10)}@{gw.config.uri_host}"
            call.ims.owns_call_id = True
            cseq = 1
        else:
            cseq = self.invite.cseq.seq + 1
        sender = request.from_
        uri: object = sender.uri
        if binding.mode == "pool" and same_identity(aor_of(sender.uri), binding.aor):
            from webims.sip import parse_uri

            uri = parse_uri(binding.impu)
        from_ = NameAddr(uri, sender.display, {"tag": call.ims.tag})  # type: ignore[arg-type]
        to = NameAddr(request.to.uri, request.to.display, {})
        forwards = (self.max_forwards if self.max_forwards is not None else 70) - 1
        supported = ["timer"]
        require: list[str] = []
        if config.hundred_rel != "off" and (not self.delayed or self.early_offer is not None):
            (require if config.hundred_rel == "required" else supported).append("100rel")
        if config.preconditions != "off" and not self.delayed:
            (require if config.preconditions == "required" else supported).append("precondition")
        headers: list[tuple[str, str]] = [
            ("Max-Forwards", str(forwards)),
            ("From", str(from_)),
            ("To", str(to)),
            ("Call-ID", call.ims.call_id),
            ("CSeq", f"{cseq} INVITE"),
        ]
        routes = list(binding.service_route)
        if not gw.ims.as_pcscf:
            routes.insert(0, f"<{gw.config.pcscf};lr>")
        headers += [("Route", r) for r in routes]
        headers += [
            ("Contact", mgr.contact_for(call, Side.IMS)),
            ("Allow", ALLOW),
            ("Supported", ", ".join(supported)),
        ]
        if require:
            headers.append(("Require", ", ".join(require)))
        headers += uac_headers(self.session_expires, self.min_se)
        headers += [(n, v) for n in PASSED_ON for v in request.headers.get_all(n)]
        if gw.ims.as_pcscf:
            headers.append(("P-Charging-Vector", charging_vector(gw.config.uri_host)))
        if body:
            headers.append(("Content-Type", SDP))
        invite = Request("INVITE", request.uri, headers, body)
        preferred = request.headers.get("P-Preferred-Identity")
        chosen = asserted_identity(binding.identities, preferred) or binding.impu
        assert_identity(invite, chosen, as_pcscf=gw.ims.as_pcscf)
        call.identity = chosen
        return invite

    async def _send_invite(self, body: bytes) -> Response:
        invite = self._build_invite(body)
        self.invite = self.late.invite = invite
        self.dialogs = DialogSet(invite)
        queue: asyncio.Queue[tuple[float, Response]] = asyncio.Queue()
        mgr = self.mgr

        def deliver(response: Response) -> None:  # when the SIP layer has it: the latency starts
            queue.put_nowait((time.perf_counter(), response))

        relay = ("INVITE", self.started) if len(self.attempts) == 0 else None
        task = asyncio.ensure_future(
            mgr.send_ims(invite, on_provisional=deliver, on_extra_final=self.late,
                         attempts=self.attempts, relay=relay, binding=self.binding)
        )  # fmt: skip
        task.add_done_callback(lambda t: deliver(t.result()) if not t.cancelled() else None)
        first = True
        while True:
            try:
                received, response = await asyncio.wait_for(
                    queue.get(), mgr.config.ims_invite_timeout if first else None
                )
            except TimeoutError:
                log.warning(
                    "%s: no answer from the IMS within %.1f s", self.call, mgr.config.ims_invite_timeout
                )
                self._fail_wic(503, "Service Unavailable (no answer from the IMS)",
                               [("Retry-After", str(mgr.gw.config.retry_after))])  # fmt: skip
                self.cancel()
                first = False
                continue
            first = False
            if response.status >= 200:
                self.final_at = received
                return response
            try:
                await self._provisional(response, received)
            except Exception:
                log.exception("%s: provisional response handling failed", self.call)

    # ------------------------------------------------------------------ 1xx (steps 8-15)
    async def _provisional(self, response: Response, t0: float) -> None:
        call, mgr = self.call, self.mgr
        tag = response.to.tag
        if response.status == 100 or tag is None or self.wic_gone or self.dialogs is None:
            return
        fork = self.forks.get(tag)
        if fork is None:
            try:
                dialog = self.dialogs.receive_response(response)
            except (DialogError, ParseError):
                return
            if dialog is None:
                return
            fork = self.forks[tag] = Fork(dialog)
            mgr.register(call, call.ims, dialog)
        else:
            self.dialogs.receive_response(response)
        reliable = is_reliable(response)
        if reliable and not fork.rseq.accept(response):
            return  # a retransmission (RFC 3262 §4)
        if reliable and self.early_offer is not None and self.early_offer.wants(response):
            await self.early_offer.relay(fork, response)  # the IMS's offer, our answer in PRACK
            return
        # delayed offer: an offer only in a reliable 1xx or the 2xx (RFC 3261 §13.2.1)
        wic_sdp = None if self.delayed else await self._take_answer(fork, response)
        if self.wic_gone:
            return
        self._relay_provisional(fork, response, wic_sdp, t0)
        if reliable:
            prack = fork.dialog.create_request("PRACK", headers=[("RAck", str(fork.rseq.rack(response)))])
            answer = await mgr.send_on(call.ims, prack)
            if not 200 <= answer.status < 300:
                log.info("%s: PRACK answered %d", call, answer.status)
        await self._tell_peer(fork)

    async def _take_answer(self, fork: Fork, response: Response) -> SessionDescription | None:
        """The fork's SDP answer, if this response has one: the IWF takes it (step 11)."""
        try:
            sdp = parse_sdp(response.body, response.content_type)
        except SdpError as exc:
            log.info("%s: bad SDP in %d: %s", self.call, response.status, exc)
            return None
        if sdp is None:
            return None
        call = self.call
        fork.answer = sdp
        call.ims.sdp.received(sdp)
        if call.qos.active and not call.qos.take_answer(preconditions_of(sdp)):
            call.qos.active = False  # the answerer did not take up the preconditions (RFC 3312 §11)
        try:
            out = await call.media.answer_from_ims(sdp)
        except MediaError as exc:
            self._fail_wic(exc.status, exc.reason, [("Warning", self.mgr.warning(exc.reason))])
            self.cancel()
            return None
        call.qos.reserved()  # our segment: the IWF (or the WIC) has what it needs
        return out

    async def _tell_peer(self, fork: Fork) -> None:
        """NI-O: an UPDATE with our segment's new status when the peer must hear it (RFC 3312 §5.1.1)."""
        call = self.call
        if not call.qos.must_tell_peer() or fork.dialog.terminated or call.ims.sdp.last_sent is None:
            return
        sdp = apply_preconditions(call.ims.sdp.last_sent.copy(), call.qos.offer_lines())
        update = fork.dialog.create_request(
            "UPDATE", headers=[("Allow", ALLOW), ("Content-Type", SDP)], body=call.ims.sdp.stamp(sdp)
        )
        call.ims.out_offer = True
        try:
            response = await self.mgr.send_on(call.ims, update)
        finally:
            call.ims.out_offer = False
        if 200 <= response.status < 300:
            try:
                answer = parse_sdp(response.body, response.content_type)
            except SdpError:
                answer = None
            if answer is not None:
                call.ims.sdp.received(answer)
                call.qos.take_answer(preconditions_of(answer))
        else:
            log.info("%s: precondition UPDATE answered %d", call, response.status)

    def _wic_tag(self, fork: Fork, early_answer: bool) -> str:
        """The To tag of the WIC early dialog that ``fork``'s 1xx goes in (see :class:`Fork`):
        the WIC leg's own until a fork's early answer needs one of its own (media in the IMS)."""
        call = self.call
        if fork.wic_tag is not None:
            return fork.wic_tag
        if not early_answer or call.media.external:
            return call.wic.tag  # external IWF: one WIC dialog; the IWF follows the fork that answers
        if call.wic.tag not in self.sdp_tags:
            fork.wic_tag = call.wic.tag
        else:
            fork.wic_tag, fork.wic_sdp = new_tag(), LegSdp(self.mgr.sdp_address)
        return fork.wic_tag

    def _relay_provisional(
        self, fork: Fork, response: Response, wic_sdp: SessionDescription | None, t0: float
    ) -> None:
        tag = self._wic_tag(fork, wic_sdp is not None)
        answered = tag in self.sdp_tags  # that WIC dialog has had its early answer
        status = response.status
        if status == 180 and self.hide_ringing and (wic_sdp is None or answered):
            return  # step 11-14: the WIC does not want ringing
        if status == 180 and self.hide_ringing:
            status = 183
        call = self.call
        headers = [("Contact", self.mgr.contact_for(call, Side.WIC)), ("Allow", ALLOW)]
        headers += [
            (n, v) for n in ("P-Asserted-Identity", "Alert-Info") for v in response.headers.get_all(n)
        ]
        body = b""
        if wic_sdp is not None and not answered:
            self.sdp_tags.add(tag)  # one early answer per WIC dialog (JsSIP takes one)
            headers.append(("Content-Type", SDP))
            body = (fork.wic_sdp or call.wic.sdp).stamp(wic_sdp)
        reason = response.reason if status == response.status else "Session Progress"
        out = self.request.response(status, reason, to_tag=tag, headers=headers, body=body)
        if tag != call.wic.tag:
            if fork.wic_dialog is None:
                try:
                    fork.wic_dialog = Dialog.from_uas(self.request, out)
                except DialogError:
                    return
                self.mgr.register(call, call.wic, fork.wic_dialog)
        elif call.wic.dialog is None:
            try:
                call.wic.dialog = Dialog.from_uas(self.request, out)
            except DialogError:
                return
            self.mgr.register(call, call.wic, call.wic.dialog)
        self.incoming.send(out)
        self.mgr.note_relay(str(status), t0)

    # ------------------------------------------------------------------ the final answer (16-21)
    async def _final(self, response: Response) -> None:
        t0 = self.final_at
        call, mgr = self.call, self.mgr
        mgr.invite_done(self.incoming)
        if 200 <= response.status < 300:
            try:
                await self._answered(response, t0)
            finally:
                call.setup = None
            return
        call.setup = None
        if not self.wic_gone:
            self._fail_wic(response.status, response.reason, mgr.failure_headers(response))
            mgr.note_relay(str(response.status), t0)
        await call.end("", skip=call.wic)

    async def _answered(self, response: Response, t0: float) -> None:
        call, mgr = self.call, self.mgr
        assert self.dialogs is not None and self.invite is not None
        tag = response.to.tag or ""
        dialog = self.dialogs.receive_response(response)
        if dialog is None:  # a 2xx without To tag (RFC 3261 §8.2.6.2 says it has one)
            self._fail_wic(502, "Bad Gateway (bad answer from the IMS)", [])
            await call.end("", skip=call.wic)
            return
        call.ims.dialog = self.late.dialog = dialog
        mgr.register(call, call.ims, dialog)
        if self.delayed:
            await self._delayed_answered(response, dialog, t0)
            return
        mgr.send_ack(call.ims, dialog.create_ack(self.invite))
        for other in self.dialogs.terminate_early():
            mgr.unregister(other)
        if self.wic_gone:
            await call.end(reason_header(487, "Request Terminated"), skip=call.wic)
            return
        call.ims.peer_allows_update = "UPDATE" in allow_of(response)
        fork = self.forks.get(tag) or Fork(dialog)
        self._choose_wic_dialog(fork)
        try:
            sdp = parse_sdp(response.body, response.content_type) or fork.answer
        except SdpError:
            sdp = fork.answer
        if sdp is None:
            self._fail_wic(502, "Bad Gateway (no SDP answer from the IMS)", [])
            await call.end(reason_header(502, "No SDP answer"), skip=call.wic)
            return
        if sdp is not fork.answer:
            call.ims.sdp.received(sdp)
            if call.qos.active and not call.qos.take_answer(preconditions_of(sdp)):
                call.qos.active = False  # the answerer did not take up the preconditions (RFC 3312 §11)
        try:
            wic_sdp = await call.media.answer_from_ims(sdp)
            await call.media.confirm()  # step 20: final resources, two-way media
        except MediaError as exc:
            self._fail_wic(exc.status, exc.reason, [("Warning", mgr.warning(exc.reason))])
            await call.end(reason_header(exc.status, exc.reason), skip=call.wic)
            return
        loop = asyncio.get_running_loop()
        result = uac_result(response)
        call.ims.start_timer(SessionTimer.after_request_sent(result, loop.time()) if result else None)
        self._send_wic_ok(response, call.wic.sdp.stamp(wic_sdp), t0)

    async def _delayed_answered(self, response: Response, dialog: Dialog, t0: float) -> None:
        """Delayed offer (:mod:`.delayed_offer`): the IMS's offer in its 2xx goes through the media
        plan into our 200 to the WIC; the WIC's answer in its ACK goes in our ACK to the IMS."""
        call, mgr = self.call, self.mgr
        assert self.invite is not None and self.dialogs is not None
        for other in self.dialogs.terminate_early():
            mgr.unregister(other)
        call.ims.peer_allows_update = "UPDATE" in allow_of(response)
        if self.early_offer is not None and self.early_offer.done:
            await self.early_offer.answered(response, dialog, t0)
            return
        failure: tuple[int, str] = (487, "Request Terminated")
        wic_offer: SessionDescription | None = None
        if not self.wic_gone:
            try:
                offer = parse_sdp(response.body, response.content_type)
            except SdpError:
                offer = None
            failure = (502, "Bad Gateway (no SDP offer from the IMS)")
            if offer is not None:
                call.ims.sdp.received(offer)
                try:
                    wic_offer = await call.media.offer_from_ims(offer)
                except MediaError as exc:
                    failure = (exc.status, exc.reason)
        ims_answer: SessionDescription | None = None
        if wic_offer is not None and not self.wic_gone:
            result = uac_result(response)
            loop = asyncio.get_running_loop()
            call.ims.start_timer(SessionTimer.after_request_sent(result, loop.time()) if result else None)
            waiting = AckWait(call.wic)  # before the 200: its ACK may come at once
            self._send_wic_ok(response, call.wic.sdp.stamp(wic_offer), t0)
            ack = await waiting.wait(ack_timeout(mgr.gw.wic.endpoint.layer.timers.t1))
            answer = answer_of_ack(ack)
            failure = (408, "No ACK") if ack is None else (488, "No SDP answer in the ACK")
            if answer is not None:
                call.wic.sdp.received(answer)
                try:
                    ims_answer = await call.media.answer_from_wic(answer)
                    await call.media.confirm()  # step 20: final resources, two-way media
                except MediaError as exc:
                    ims_answer, failure = None, (exc.status, exc.reason)
        body = call.ims.sdp.stamp(ims_answer) if ims_answer is not None else b""
        extra = [("Content-Type", SDP)] if body else []
        mgr.send_ack(call.ims, dialog.create_ack(self.invite, headers=extra, body=body))
        if ims_answer is None:  # RFC 3261 §13.2.2.4: ACK even so, then BYE
            if not call.answered:
                self._fail_wic(failure[0], failure[1], [])
            await call.end(reason_header(*failure), skip=None if call.answered else call.wic)

    def _choose_wic_dialog(self, fork: Fork) -> None:
        """The 2xx's fork picks its WIC early dialog; the WIC's other early dialogs end with our 200
        (RFC 3261 §13.2.2.4: the WIC confirms the one, its others end)."""
        call, mgr = self.call, self.mgr
        for other in self.forks.values():
            if other is not fork and other.wic_dialog is not None:
                other.wic_dialog.terminate()
                mgr.unregister(other.wic_dialog)
        if fork.wic_dialog is None or fork.wic_tag is None:
            return
        if call.wic.dialog is not None:
            call.wic.dialog.terminate()
            mgr.unregister(call.wic.dialog)
        call.wic.tag, call.wic.dialog = fork.wic_tag, fork.wic_dialog
        if fork.wic_sdp is not None:
            call.wic.sdp = fork.wic_sdp

    def _send_wic_ok(self, response: Response, body: bytes, t0: float) -> None:
        """Our 200 to the WIC's INVITE (steps 19-21), with ``body`` (the answer, or the offer)."""
        call, mgr = self.call, self.mgr
        loop = asyncio.get_running_loop()
        negotiation = self.wic_negotiation
        headers = [("Contact", mgr.contact_for(call, Side.WIC)), ("Allow", ALLOW), ("Supported", "timer")]
        if negotiation is not None:
            uac_timer = "timer" in self.request.option_tags("supported")
            headers += negotiation.response_headers(uac_supports=uac_timer)
        headers += [(n, v) for n in ("P-Asserted-Identity",) for v in response.headers.get_all(n)]
        if body:
            headers.append(("Content-Type", SDP))
        ok = self.request.response(200, to_tag=call.wic.tag, headers=headers, body=body)
        if call.wic.dialog is None:
            call.wic.dialog = Dialog.from_uas(self.request, ok)
            mgr.register(call, call.wic, call.wic.dialog)
        call.wic.dialog.response_sent(ok)
        call.answered = True
        self.incoming.send(ok)
        mgr.note_relay("200", t0)
        if negotiation is not None:
            call.wic.start_timer(SessionTimer.after_request_received(negotiation, loop.time()))

    def on_request(self, dialog: Dialog, incoming: IncomingRequest) -> bool:
        """An UPDATE of the IMS callee in an early dialog (preconditions, RFC 3312 §6); True when handled."""
        request, call = incoming.request, self.call
        if self.early_offer is not None and self.early_offer.on_prack(dialog, incoming):
            return True
        if request.method != "UPDATE" or dialog.confirmed or self.call.leg(Side.IMS) is None:
            return False
        error = dialog.receive_request(request)
        if error is not None:
            incoming.send(error)
            return True
        try:
            offer = parse_sdp(request.body, request.content_type)
        except SdpError as exc:
            incoming.respond(exc.status, headers=[("Warning", self.mgr.warning(exc.reason))])
            return True
        headers = [("Contact", self.mgr.contact_for(call, Side.IMS)), ("Allow", ALLOW)]
        base = call.ims.sdp.last_sent
        if offer is None or base is None:
            incoming.respond(200, headers=headers)
            return True
        if call.ims.out_offer:
            incoming.respond(491)  # RFC 3311 §5.2
            return True
        if call.ims.sdp.last_received is not None and not call.ims.sdp.is_refresh(offer):
            incoming.respond(488, "Not Acceptable Here (media change in an early dialog)")
            return True
        call.ims.sdp.received(offer)
        call.qos.take_offer(preconditions_of(offer))
        answer = apply_preconditions(base.copy(), call.qos.answer_lines())
        headers.append(("Content-Type", SDP))
        incoming.respond(200, headers=headers, body=call.ims.sdp.stamp(answer))
        return True

    # ------------------------------------------------------------------ cancel, failure
    def cancel(self) -> None:
        """The WIC cancelled (its 487 is out) or gave up: CANCEL the IMS INVITE (RFC 3261 §9.1)."""
        self.wic_gone = True
        if self.attempts:
            self.mgr.gw.ims.endpoint.cancel(self.attempts[-1])

    def fail(self, status: int, reason: str) -> None:
        """Give up (a media failure): the WIC gets ``status``, the IMS INVITE is cancelled."""
        self._fail_wic(status, reason, [])
        self.cancel()

    def _fail_wic(self, status: int, reason: str | None, headers: list[tuple[str, str]]) -> None:
        if self.wic_gone:
            return
        self.wic_gone = True
        final_response(self.incoming, status, reason, self.call.wic.tag, headers)
