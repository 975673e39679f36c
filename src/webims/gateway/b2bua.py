"""One call through the gateway: two dialogs (WIC side, IMS side) and what happens inside them.

The gateway is a B2BUA toward the IMS (seed 004 §6.X.2.3): a :class:`Call` has a
:class:`Leg` toward the WIC (SIP over its WebSocket flow) and one toward the IMS
(Mw), each a dialog of its own (RFC 3261 §12) with its own Call-ID, tags, CSeq
numbers, SDP versions (:class:`~.sdp_media.LegSdp`) and session timer (RFC 4028,
:mod:`.session_timer`). Setting up a call is in :mod:`.call_orig` (WIC calls) and
:mod:`.call_term` (the WIC is called); this module handles the established call:

- BYE on either leg ends both (the Reason header is passed on, RFC 3326);
- re-INVITE and UPDATE with a new offer (hold, resume, codec change) are passed
  across with the SDP translated by the media plan (external IWF: ``offer_from_webrtc``
  / ``answer_from_ims`` or ``offer_from_ims`` / ``answer_from_webrtc``); a refresh
  (the same SDP, or none in an UPDATE) is answered on its own leg (RFC 4028 §7.4, §9),
  and so is a re-INVITE without SDP: the leg's current SDP is our offer in the 2xx
  (RFC 3264 §8), the answer comes in the ACK (:meth:`Call.on_ack`) and, when it changes
  the media (hold, a new address or codec), goes on to the other leg translated, in an
  UPDATE or re-INVITE of ours (:meth:`Call.pass_on_answer`);
  an UPDATE from the IMS that only moves preconditions is answered by the gateway
  (RFC 3312 §5.1, NI-O/NI-T for a WIC that knows none of it);
- glare: an offer arriving while our own is pending on that leg gets 491 (RFC 3261
  §14.2, RFC 3311 §5.2); a 491 to ours is retried after the §14.1 wait (2.1-4 s when
  we own the dialog's Call-ID, else 0-2 s), a re-INVITE arriving while another is
  being handled gets 500 with Retry-After (§14.2);
- INFO (DTMF as ``application/dtmf-relay``), REFER (with the NOTIFYs of its implicit
  subscription), SUBSCRIBE and MESSAGE within the dialog are relayed to the other leg
  with their bodies and answers (:mod:`.relay`);
- session timers: we refresh where we are the refresher; a leg whose peer does not
  refresh in time is ended (RFC 4028 §10).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import secrets
from typing import TYPE_CHECKING, Any

from webims.endpoint import IncomingRequest
from webims.sdp import SdpError, SessionDescription
from webims.sip import Dialog, DialogError, DialogId, Request, Response, ServerKey, new_tag

from .prack import ReliableSender
from .precondition import QosState, apply_preconditions, preconditions_of
from .relay import RELAYED_METHODS, relay_request
from .sdp_media import SDP, LegSdp, MediaPlan, parse_sdp, transport_of
from .session_timer import (
    Negotiation,
    SessionTimer,
    min_se_of,
    uac_headers,
    uac_result,
    uas_negotiate,
)

if TYPE_CHECKING:
    from .sessions import SessionManager
    from .state import Binding

__all__ = ["ALLOW", "Call", "Leg", "Side", "reason_header"]

log = logging.getLogger("webims.gateway.sessions")

#: The methods the gateway takes within a session (Allow, RFC 3261 §20.5).
ALLOW = "INVITE, ACK, CANCEL, BYE, PRACK, UPDATE, INFO, MESSAGE, OPTIONS, REFER, NOTIFY, SUBSCRIBE"


class Side(enum.Enum):
    WIC = "wic"
    IMS = "ims"


def reason_header(status: int, text: str | None) -> str:
    """``Reason: SIP ;cause=486 ;text="Busy Here"`` (RFC 3326 §2)."""
    safe = "".join(c for c in (text or "") if 32 <= ord(c) < 127 and c not in '"\\')[:120]
    return f'SIP ;cause={status} ;text="{safe}"'


def final_response(incoming: IncomingRequest, status: int, reason: str | None, to_tag: str | None,
                   headers: list[tuple[str, str]]) -> None:  # fmt: skip
    """Answer an INVITE finally with ``status``, a Reason header (RFC 3326) added unless given."""
    if not any(n.lower() == "reason" for n, _ in headers):
        headers = [*headers, ("Reason", reason_header(status, reason))]
    incoming.send(incoming.request.response(status, reason, to_tag=to_tag, headers=headers))


def allow_of(message: Request | Response) -> set[str]:
    """The methods a peer's Allow header fields name (RFC 3261 §20.5), upper case."""
    return {m.strip().upper() for v in message.headers.get_all("Allow") for m in v.split(",")}


class Leg:
    """One dialog of a call, toward the WIC or toward the IMS."""

    def __init__(self, call: Call, side: Side, *, address: str) -> None:
        self.call = call
        self.side = side
        self.dialog: Dialog | None = None
        self.tag = new_tag()  # our tag in this dialog (To as UAS, From as UAC)
        self.call_id = ""  # set when the dialog-creating INVITE is known
        self.sdp = LegSdp(address)
        self.owns_call_id = False  # we sent the dialog-creating INVITE (§14.1 glare timers)
        self.peer_allows_update = False
        self.peer_supports_timer = False
        self.timer: SessionTimer | None = None
        self._timer_handle: asyncio.TimerHandle | None = None
        self.out_invite = False  # our INVITE transaction is pending on this leg
        self.out_offer = False  # our offer (INVITE or UPDATE) awaits its answer
        self.in_invite = False  # the peer's re-INVITE is being handled
        self.in_offer = False  # the peer's offer is being handled (relayed across)
        self.ack_wait: asyncio.Future[Request | None] | None = None  # delayed offer: the ACK awaited

    def __repr__(self) -> str:
        return f"<Leg {self.side.value} {self.call_id} {self.tag}>"

    @property
    def other(self) -> Leg:
        return self.call.ims if self.side is Side.WIC else self.call.wic

    @property
    def confirmed(self) -> bool:
        return self.dialog is not None and self.dialog.confirmed

    def contact(self) -> str:
        return self.call.mgr.contact_for(self.call, self.side)

    # ------------------------------------------------------------------ sending
    def new_request(self, method: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                    content_type: str | None = None) -> Request:  # fmt: skip
        dialog = self.dialog
        if dialog is None:
            raise DialogError("no dialog")
        extra = list(headers or [])
        if content_type and body:
            extra.append(("Content-Type", content_type))
        if method in ("INVITE", "UPDATE"):
            extra.append(("Allow", ALLOW))
        return dialog.create_request(method, headers=extra, body=body)

    async def send(self, request: Request, **kw: Any) -> Response:
        response = await self.call.mgr.send_on(self, request, **kw)
        dialog = self.dialog
        if dialog is not None and response.to.tag == dialog.id.remote_tag:
            with contextlib.suppress(DialogError):
                dialog.receive_response(response)
        return response

    async def send_offer(
        self, method: str, body: bytes, headers: list[tuple[str, str]] | None = None
    ) -> Response:
        """An offer (re-INVITE or UPDATE) on this leg; the ACK of a 2xx to a re-INVITE is sent."""
        request = self.new_request(method, headers, body, SDP if body else None)
        self.out_offer = bool(body)
        self.out_invite = method == "INVITE"
        try:
            response = await self.send(
                request, on_extra_final=self._ack_again(request) if method == "INVITE" else None
            )
        finally:
            self.out_offer = self.out_invite = False
        if method == "INVITE" and 200 <= response.status < 300 and self.dialog is not None:
            self.call.mgr.send_ack(self, self.dialog.create_ack(request))
        return response

    def _ack_again(self, invite: Request) -> Any:
        # kept by the transaction for Timer M, after the call may have ended and gone (its legs
        # reach it weakly then, SessionManager.forget): what the ACK needs, not the call
        mgr, binding = self.call.mgr, self.call.binding

        def again(response: Response) -> None:
            dialog = self.dialog
            if dialog is not None and 200 <= response.status < 300:
                ack = dialog.ack_for(response)
                if ack is not None and self.side is Side.IMS:
                    mgr.send_ack_ims(ack, binding)
                elif ack is not None:
                    mgr.send_ack_wic(binding, ack)

        return again

    # ------------------------------------------------------------------ session timer (RFC 4028)
    def start_timer(self, timer: SessionTimer | None) -> None:
        self.stop_timer()
        self.timer = timer
        if timer is None or self.call.ended:
            return
        loop = asyncio.get_running_loop()
        self._timer_handle = loop.call_at(timer.get_timer(), self._timer_fired)

    def stop_timer(self) -> None:
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None

    def _timer_fired(self) -> None:
        self._timer_handle = None
        timer = self.timer
        if timer is None or self.call.ended:
            return
        due = timer.due(asyncio.get_running_loop().time())
        if due == "refresh":
            self.call.mgr.spawn(self.refresh())
        elif due == "expired":
            log.info("%s: no session refresh from the %s side in time", self.call, self.side.value)
            self.call.mgr.spawn(self.call.end(reason_header(408, "Session timer expired"), failed=self))

    async def refresh(self) -> None:
        """Refresh the session (RFC 4028 §7.4): UPDATE without SDP when the peer allows it, else
        a re-INVITE with our last SDP; 422 raises the interval, 491 waits and retries."""
        timer, call = self.timer, self.call  # call: held while this runs (forget() weakens the legs' link)
        if timer is None:
            return
        interval, min_se = timer.interval, call.mgr.config.min_se
        for _ in range(1 + self.call.mgr.config.glare_retries):
            if self.call.ended or self.dialog is None or not self.dialog.confirmed:
                return
            headers = [("Supported", "timer"), *uac_headers(interval, min_se)]
            if self.peer_allows_update:
                response = await self.send(self.new_request("UPDATE", headers))
            else:
                body = self.sdp.again() or b""
                response = await self.send_offer("INVITE", body, headers)
            if 200 <= response.status < 300:
                result = uac_result(response)
                loop = asyncio.get_running_loop()
                self.start_timer(SessionTimer.after_request_sent(result, loop.time()) if result else None)
                return
            if response.status == 422:
                interval = max(interval, min_se_of(response) or interval)
                min_se = max(min_se, interval)
                continue
            if response.status == 491:
                await asyncio.sleep(self.glare_wait())
                continue
            break
        log.info("%s: session refresh on the %s side failed: %d", self.call, self.side.value, response.status)
        await self.call.end(reason_header(response.status, response.reason), failed=self)

    def glare_wait(self) -> float:
        """RFC 3261 §14.1: 2.1-4 s when we own the Call-ID, else 0-2 s (10 ms steps)."""
        if self.owns_call_id:
            return random.randint(210, 400) / 100
        return random.randint(0, 200) / 100


class Call:
    """One call: the two legs, the media plan, the preconditions toward the IMS (module docstring)."""

    def __init__(self, mgr: SessionManager, binding: Binding, direction: str, media: MediaPlan) -> None:
        self.mgr = mgr
        self.id = secrets.token_urlsafe(12)
        self.binding = binding
        self.direction = direction  # "orig": the WIC calls; "term": the WIC is called
        self.media = media
        self.wic = Leg(self, Side.WIC, address=mgr.sdp_address)
        self.ims = Leg(self, Side.IMS, address=mgr.sdp_address)
        self.qos = QosState()
        self.setup: Any = None  # the Originating / Terminating setup while it runs
        self.prack_sender: ReliableSender | None = None  # NI-T: our reliable 1xx, for late PRACKs
        self.dialog_ids: set[DialogId] = set()  # the manager's index entries of this call
        self.invite_keys: list[ServerKey] = []
        self.identity = binding.impu  # what requests toward the IMS assert (the INVITE's choice)
        self.refer_ids: dict[tuple[Side, int], int] = {}  # relayed REFER's CSeq -> original (RFC 3515 §2.4.6)
        self.ended = False
        self.answered = False
        self.end_reason = ""

    def __repr__(self) -> str:
        return f"<Call {self.id} {self.direction} {self.binding.impu}>"

    def leg(self, side: Side) -> Leg:
        return self.wic if side is Side.WIC else self.ims

    # ------------------------------------------------------------------ the end
    async def end(
        self, reason: str, *, failed: Leg | None = None, skip: Leg | None = None, t0: float | None = None
    ) -> None:
        """End the call: BYE on every confirmed leg but ``skip`` (whose peer ended it) — also on
        ``failed``, whose peer may still be there — release the media, forget the call."""
        if self.ended:
            return
        self.ended = True
        self.end_reason = reason
        byes: list[Request] = []
        for leg in (self.wic, self.ims):
            leg.stop_timer()
            if leg.ack_wait is not None and not leg.ack_wait.done():
                leg.ack_wait.set_result(None)  # a delayed-offer setup waiting for an ACK gives up
            dialog = leg.dialog
            if leg is skip or dialog is None or not dialog.confirmed:
                continue
            try:
                bye = leg.new_request("BYE", [("Reason", reason)] if reason else [])
            except DialogError:
                continue
            dialog.terminate()
            relay = ("BYE", t0) if t0 is not None and not byes else None
            self.mgr.spawn(self.mgr.send_on(leg, bye, relay=relay))  # its answer changes nothing
            byes.append(bye)
        self.mgr.forget(self)
        await self.media.release(reason or "ended")

    # ------------------------------------------------------------------ requests within the call
    async def on_request(self, leg: Leg, dialog: Dialog, incoming: IncomingRequest, t0: float) -> None:
        request = incoming.request
        out_of_order = dialog.receive_request(request)
        if out_of_order is not None:
            incoming.send(out_of_order)
            return
        method = request.method
        if method == "BYE":
            incoming.respond(200)
            reason = request.headers.get("Reason") or ""
            if self.setup is not None:  # BYE in an early dialog: the setup gives up
                self.setup.cancel()
            await self.end(reason, skip=leg, t0=t0)
        elif method != "PRACK" and (dialog is not leg.dialog or not dialog.confirmed):
            incoming.respond(481)
        elif method == "INVITE":
            await self._reinvite(leg, incoming)
        elif method == "UPDATE":
            await self._update(leg, incoming)
        elif method in RELAYED_METHODS:
            await relay_request(self, leg, incoming)
        elif method == "PRACK":
            sender = self.prack_sender
            if sender is not None and sender.match(request):
                incoming.respond(200)
            else:
                incoming.respond(481, "Call/Transaction Does Not Exist (no reliable response pending)")
        else:
            incoming.respond(405, headers=[("Allow", ALLOW)])

    def on_ack(self, leg: Leg, request: Request) -> None:
        """An ACK for our 2xx on ``leg``. A delayed-offer setup waits for it (its answer, RFC 3264
        §5); else it answers the offer of our 2xx to a re-INVITE without SDP, and is recorded."""
        wait = leg.ack_wait
        if wait is not None and not wait.done():
            wait.set_result(request)
            return
        try:
            answer = parse_sdp(request.body, request.content_type)
        except SdpError:
            answer = None
        if answer is not None and leg.sdp.received(answer, roles=False) and not self.ended:
            log.info("%s: the %s side's answer in ACK changes its media", self, leg.side.value)
            self.mgr.spawn(self.pass_on_answer(leg, answer))

    async def pass_on_answer(self, leg: Leg, answer: SessionDescription) -> None:
        """The answer in an ACK to our offer in a 2xx (a re-INVITE without SDP, RFC 3264 §8) changed
        ``leg``'s media (its peer put the call on hold, moved, took another codec, §6.1): the other
        leg hears of it in an offer of its own — UPDATE when its peer allows it (RFC 3311 §5.1),
        else a re-INVITE — translated by the media plan like any offer from ``leg``
        (:meth:`_relay_offer`: external IWF ``offer_from_ims`` / ``offer_from_webrtc``, then the
        other side's answer through ``answer_from_webrtc`` / ``answer_from_ims``; media in the IMS:
        as it is). Both legs' :class:`~.sdp_media.LegSdp` follow: the other leg's version goes up
        with the new offer and its answer is recorded. ``leg``'s own exchange is complete; the
        translated answer for it only says again what its peer's answer fixed, unless the IWF's
        transport toward it moved (address, port, profile), which ``leg`` then hears in a new offer."""
        leg.in_offer = True  # offers crossing this one get 491 on either leg (RFC 3261 §14.2)
        try:
            status, reason, mine, _ = await self._relay_offer(leg, "UPDATE", answer)
        finally:
            leg.in_offer = False
        if status >= 300 or mine is None:
            log.info("%s: the %s side's new media not taken by the other side: %d %s",
                     self, leg.side.value, status, reason or "")  # fmt: skip
            return
        sent = leg.sdp.last_sent
        if sent is None or transport_of(mine) == transport_of(sent) or self.ended or not leg.confirmed:
            return
        if leg.side is Side.IMS and self.qos.active:
            mine = apply_preconditions(mine, self.qos.offer_lines())
        use = "UPDATE" if leg.peer_allows_update else "INVITE"
        response = await leg.send_offer(use, leg.sdp.stamp(mine))
        try:
            again = parse_sdp(response.body, response.content_type) if response.status < 300 else None
        except SdpError:
            again = None
        if again is not None:
            leg.sdp.received(again)

    async def _reinvite(self, leg: Leg, incoming: IncomingRequest) -> None:
        if leg.in_invite:
            incoming.respond(500, headers=[("Retry-After", str(random.randint(0, 10)))])  # §14.2
            return
        if leg.out_invite or leg.out_offer or leg.other.in_offer or leg.other.out_offer:
            incoming.respond(491)  # §14.2 glare
            return
        leg.in_invite = True
        try:
            await self._offer_received(leg, incoming)
        finally:
            leg.in_invite = False

    async def _update(self, leg: Leg, incoming: IncomingRequest) -> None:
        request = incoming.request
        if not request.body:
            self._answer_refresh(leg, incoming, body=False)  # RFC 4028 §7.4 refresh by UPDATE
            return
        if leg.out_offer or leg.other.in_offer or leg.other.out_offer:
            incoming.respond(491)  # RFC 3311 §5.2
            return
        await self._offer_received(leg, incoming)

    async def _offer_received(self, leg: Leg, incoming: IncomingRequest) -> None:
        request = incoming.request
        try:
            offer = parse_sdp(request.body, request.content_type)
        except SdpError as exc:
            incoming.respond(exc.status, headers=[("Warning", self.mgr.warning(exc.reason))])
            return
        negotiation = self._negotiate(leg, request)
        if negotiation.status == 422:
            incoming.respond(422, headers=negotiation.response_headers(uac_supports=True))
            return
        if offer is None or leg.sdp.is_refresh(offer):
            if offer is not None:
                self._take_qos(leg, offer)
            self._answer_refresh(leg, incoming, body=True, negotiation=negotiation)
            return
        leg.sdp.received(offer)
        leg.in_offer = True
        try:
            status, reason, answer, extra = await self._relay_offer(leg, request.method, offer)
        finally:
            leg.in_offer = False
        if status >= 300 or answer is None:
            incoming.respond(status, reason, headers=extra)
            return
        self._take_qos(leg, offer)
        if leg.side is Side.IMS and self.qos.active:
            answer = apply_preconditions(answer, self.qos.answer_lines())
        headers = [("Contact", leg.contact()), ("Allow", ALLOW), ("Content-Type", SDP)]
        headers += negotiation.response_headers(uac_supports="timer" in request.option_tags("supported"))
        incoming.respond(200, headers=headers, body=leg.sdp.stamp(answer))
        self._timer_after_received(leg, negotiation)

    def _take_qos(self, leg: Leg, offer: SessionDescription) -> None:
        if leg.side is Side.IMS and self.qos.active:
            self.qos.take_offer(preconditions_of(offer))

    def _answer_refresh(
        self, leg: Leg, incoming: IncomingRequest, *, body: bool, negotiation: Negotiation | None = None
    ) -> None:
        """A session refresh (or a precondition-only UPDATE): answered on this leg alone."""
        request = incoming.request
        negotiation = negotiation or self._negotiate(leg, request)
        if negotiation.status == 422:
            incoming.respond(422, headers=negotiation.response_headers(uac_supports=True))
            return
        headers = [("Contact", leg.contact()), ("Allow", ALLOW)]
        headers += negotiation.response_headers(uac_supports="timer" in request.option_tags("supported"))
        payload = b""
        if body and leg.sdp.last_sent is not None:
            sdp = leg.sdp.last_sent.copy()
            if leg.side is Side.IMS and self.qos.active:
                apply_preconditions(sdp, self.qos.answer_lines())
            payload = leg.sdp.stamp(sdp)
            headers.append(("Content-Type", SDP))
        incoming.respond(200, headers=headers, body=payload)
        self._timer_after_received(leg, negotiation)

    def _negotiate(self, leg: Leg, request: Request) -> Negotiation:
        config = self.mgr.config
        if leg.timer is None and "Session-Expires" not in request.headers:
            return Negotiation(200)
        return uas_negotiate(request, min_se=config.min_se, default=0)

    def _timer_after_received(self, leg: Leg, negotiation: Negotiation) -> None:
        if negotiation.status == 200 and negotiation.interval:
            now = asyncio.get_running_loop().time()
            leg.start_timer(SessionTimer.after_request_received(negotiation, now))

    async def _relay_offer(
        self, leg: Leg, method: str, offer: SessionDescription
    ) -> tuple[int, str | None, SessionDescription | None, list[tuple[str, str]]]:
        """Pass ``offer`` from ``leg`` to the other leg; (status, reason, answer for ``leg``, headers)."""
        from webims.media.api import MediaError

        other = leg.other
        try:
            if leg.side is Side.WIC:
                out = await self.media.offer_from_wic(offer)
            else:
                out = await self.media.offer_from_ims(offer)
        except MediaError as exc:
            return exc.status, exc.reason, None, [("Warning", self.mgr.warning(exc.reason))]
        if other.side is Side.IMS and self.qos.active:
            out = apply_preconditions(out, self.qos.offer_lines())
        body = other.sdp.stamp(out)
        use = "UPDATE" if method == "UPDATE" and other.peer_allows_update else "INVITE"
        response: Response | None = None
        for attempt in range(1 + self.mgr.config.glare_retries):
            if self.ended or other.dialog is None or other.dialog.terminated:
                return 481, None, None, []
            response = await other.send_offer(use, body)
            if response.status == 491 and attempt < self.mgr.config.glare_retries:
                await asyncio.sleep(other.glare_wait())  # RFC 3261 §14.1
                continue
            break
        assert response is not None
        if not 200 <= response.status < 300:
            if response.status in (408, 481):
                self.mgr.spawn(self.end(reason_header(response.status, response.reason), failed=other))
            return response.status, response.reason, None, self.mgr.failure_headers(response)
        try:
            answer = parse_sdp(response.body, response.content_type)
        except SdpError as exc:
            answer = None
            log.info("%s: bad SDP answer on the %s side: %s", self, other.side.value, exc)
        if answer is None:
            return 502, "Bad Gateway (no SDP answer)", None, []
        other.sdp.received(answer)
        if other.side is Side.IMS and self.qos.active:
            self.qos.take_answer(preconditions_of(answer))
        try:
            if leg.side is Side.WIC:
                mine = await self.media.answer_from_ims(answer)
            else:
                mine = await self.media.answer_from_wic(answer)
        except MediaError as exc:
            return exc.status, exc.reason, None, [("Warning", self.mgr.warning(exc.reason))]
        result = uac_result(response)
        if result is not None:
            other.start_timer(SessionTimer.after_request_sent(result, asyncio.get_running_loop().time()))
        return 200, None, mine, []
