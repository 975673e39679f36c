"""Delayed offer across the B2BUA: an INVITE without SDP (RFC 3261 §13.2.1, RFC 3264 §4-5).

When an INVITE carries no offer, the offer comes in the 2xx (or in the first
reliable 1xx, RFC 3262 §5) and the answer in the ACK (or the PRACK). The gateway
keeps the INVITE offerless on the other leg too, so that the offer is made by the
peer that has the media (a WIC's WebRTC stack, the IMS UE):

- the IMS calls a WIC without SDP (:mod:`.call_term`): the WIC gets an INVITE
  without SDP and offers in its 200; that offer goes through the media plan
  (``offer_from_wic``; external IWF: ``offer_from_webrtc``, initial resources) into
  our 200 toward the IMS; the IMS's ACK brings the answer, which goes through the
  plan (``answer_from_ims``), then ``confirm`` (final resources), and only then is
  the WIC's 200 ACKed, with the translated answer in the ACK;
- a WIC calls without SDP (:mod:`.call_orig`): the mirror image — the IMS offers in
  its 2xx, ``offer_from_ims`` gives the WIC's offer in our 200, the WIC's ACK brings
  the answer (``answer_from_wic``), ``confirm``, and the IMS's 2xx is ACKed with it;
- a re-INVITE without SDP (an AS refreshing the session, RFC 4028 §7.4, or asking
  for a new offer): answered on its own leg with the leg's current SDP as the offer
  (RFC 3264 §8: a new offer that may be the same as the last one); the answer in
  the ACK is recorded (:meth:`.b2bua.Call.on_ack`), and a media change in it is passed
  to the other leg (:meth:`.b2bua.Call.pass_on_answer`);
- forking: a 2xx after the first, with an offer of its own, is ACKed with an answer
  rejecting its streams, then BYE (:mod:`.forks`).

A 2xx whose ACK never comes within 64*T1 ends the call (RFC 3261 §13.3.1.4); an ACK
without a usable answer too (RFC 3261 §13.2.2.4: the ACK is still sent, then BYE).
While the setup waits for an offer, the gateway offers no preconditions (it has no
SDP to put them in), and 100rel only when the WIC itself supports it: the IMS may then
offer in a reliable 1xx (RFC 3262 §5), relayed to the WIC reliably, the answer coming
back in the WIC's PRACK and going on in ours (:class:`EarlyOffer`). The IMS calling
without SDP and requiring 100rel: :func:`offer_in_reliable_1xx` (the choice RFC 3262
§3/§5 leave for each media placement is written there).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from webims.endpoint import IncomingRequest
from webims.media.api import MediaError
from webims.sdp import SdpError, SessionDescription
from webims.sip import Dialog, DialogError, Request, Response

from .b2bua import ALLOW, Side, reason_header
from .prack import ReliableSender
from .sdp_media import SDP, ExternalIwf, parse_sdp
from .session_timer import SessionTimer, uac_result

if TYPE_CHECKING:
    from .b2bua import Leg
    from .call_orig import Originating
    from .call_term import Terminating
    from .forks import Fork

log = logging.getLogger("webims.gateway.sessions")

__all__ = ["AckWait", "EarlyOffer", "ack_timeout", "answer_of_ack", "offer_in_reliable_1xx"]


def ack_timeout(t1: float) -> float:
    """How long a 2xx waits for its ACK: 64*T1 (RFC 3261 §13.3.1.4, Timer H's value)."""
    return 64 * t1


class AckWait:
    """The ACK expected on ``leg`` for the 2xx we are about to send (set up before sending it,
    so that an ACK arriving at once is not missed); :meth:`.b2bua.Call.on_ack` completes it,
    the end of the call completes it with None."""

    def __init__(self, leg: Leg) -> None:
        self.leg = leg
        self.future: asyncio.Future[Request | None] = asyncio.get_running_loop().create_future()
        leg.ack_wait = self.future

    async def wait(self, timeout: float) -> Request | None:
        try:
            return await asyncio.wait_for(asyncio.shield(self.future), timeout)
        except TimeoutError:
            return None
        finally:
            if self.leg.ack_wait is self.future:
                self.leg.ack_wait = None


def answer_of_ack(ack: Request | None) -> SessionDescription | None:
    """The SDP answer an ACK (or a PRACK) carries (RFC 3264 §5), None when it has none or a bad one."""
    if ack is None:
        return None
    try:
        return parse_sdp(ack.body, ack.content_type)
    except SdpError:
        return None


async def offer_in_reliable_1xx(setup: Terminating) -> SessionDescription | None:
    """The IMS calls a WIC without SDP and ``Require: 100rel`` (:mod:`.call_term`), media through
    the external IWF: the gateway makes the offer itself.

    RFC 3262 §3: with ``Require: 100rel`` in the INVITE every non-100 provisional response
    MUST be sent reliably (a UAS unwilling to do so rejects the INVITE with 420 — the gateway
    supports 100rel, so it does not); RFC 3262 §5 with RFC 3261 §13.2.1: when the INVITE had
    no offer, the first reliable provisional response MUST carry the offer, answered in the
    PRACK. A WIC (JsSIP) has no SDP before its 200, but the IWF has media of its own: the
    IWF's IMS-side offer (:meth:`~.sdp_media.ExternalIwf.offer_to_ims`, the IMS-side codecs of
    its media config) goes in a reliable 183, the PRACK brings the IMS's answer, and the call
    then goes on as one whose INVITE carried that SDP: the IWF's WebRTC offer (``offer_from_ims``
    of the IMS's answer, which the IWF takes as the answer to its own offer:
    ``answer_from_ims_to_own_offer``) in the INVITE to the WIC, the WIC's answer translated
    (``answer_from_wic``) for the IWF only — the IMS leg's offer/answer exchange is complete,
    so our 200 carries no SDP (RFC 3264 §4) — and ringing sent reliably after the 183. Both
    exchanges complete at the WIC's answer, early media flows both ways before the 200.
    An IWF that cannot offer without a source SDP (rtpengine's ng protocol) raises
    ``MediaError(488)``: the gateway then goes on as with media in the IMS (below).

    With media interworking in the IMS (no IWF, ``media = "ims"``) the gateway has no SDP to
    offer before the WIC's 200; it then sends no provisional response but 100 Trying — ringing
    is withheld, since RFC 3262 §3 forbids an unreliable 18x and §5 a reliable one without the
    offer, and provisional responses are optional (RFC 3261 §13.3.1.1) — and the offer goes in
    its 200 (RFC 3261 §13.2.1), answered in the ACK (:class:`AckWait`).

    Returns the IMS's answer from the PRACK; None when the IWF cannot offer (no 18x, the offer
    in the 200) or when the call cannot go on (the IMS has its final response then:
    ``setup.ims_gone``)."""
    call, mgr = setup.call, setup.mgr
    assert isinstance(call.media, ExternalIwf)
    try:
        offer = await call.media.offer_to_ims()
    except MediaError as exc:
        if exc.status == 488:  # the IWF cannot offer without a source SDP (rtpengine)
            log.info("%s: %s; the offer goes in the 200 (no 18x)", call, exc.reason)
            return None
        setup._fail_ims(exc.status, exc.reason, [("Warning", mgr.warning(exc.reason))])
        return None
    if not await setup._send_reliable(183, "Session Progress", call.ims.sdp.stamp(offer)):
        return None  # no PRACK (504 sent), or the IMS cancelled
    answer = answer_of_ack(setup.prack_request)
    if answer is None:
        setup._fail_ims(488, "Not Acceptable Here (no SDP answer in the PRACK, RFC 3262 §5)", [])
        return None
    call.ims.sdp.received(answer)
    setup.answer_sent_reliably = setup.ims_negotiated = True
    return answer


class EarlyOffer:
    """A WIC's INVITE without SDP whose WIC supports 100rel: the IMS may offer in a reliable 1xx
    (RFC 3262 §5), whose PRACK must carry the answer. The offer goes through the media plan
    (``offer_from_ims``) into a reliable 1xx of ours to the WIC (``RSeq``, retransmitted until
    its PRACK, RFC 3262 §3); the WIC's PRACK brings the answer (``answer_from_wic``), which goes
    in our PRACK to the IMS; the IMS's answer to that PRACK answers the WIC's. The 2xx then
    carries no SDP (the offer/answer exchange is complete, RFC 3264 §4)."""

    def __init__(self, setup: Originating) -> None:
        self.setup = setup
        self.sender: ReliableSender | None = None
        self.prack: asyncio.Future[IncomingRequest] | None = None
        self.done = False  # the exchange completed: the 2xx has no offer

    def wants(self, response: Response) -> bool:
        """Whether ``response`` (a new reliable 1xx) carries the IMS's offer for us to relay."""
        return not self.done and self.sender is None and bool(response.body)

    async def relay(self, fork: Fork, response: Response) -> None:
        setup = self.setup
        call, mgr = setup.call, setup.mgr
        try:
            offer = parse_sdp(response.body, response.content_type)
        except SdpError:
            offer = None
        status, text = 488, "Not Acceptable Here (no usable SDP offer from the IMS)"
        body, incoming = b"", None
        if offer is not None:
            call.ims.sdp.received(offer)
            try:
                wic_offer = await call.media.offer_from_ims(offer)
            except MediaError as exc:
                wic_offer, status, text = None, exc.status, exc.reason
            if wic_offer is not None:
                incoming = await self._send(response, call.wic.sdp.stamp(wic_offer))
                answer = answer_of_ack(incoming.request) if incoming is not None else None
                status, text = 504, "Server Time-out (no PRACK with an answer from the WIC)"
                if answer is not None:
                    call.wic.sdp.received(answer)
                    try:
                        body = call.ims.sdp.stamp(await call.media.answer_from_wic(answer))
                    except MediaError as exc:
                        status, text = exc.status, exc.reason
        headers = [("RAck", str(fork.rseq.rack(response)))]
        if body:
            headers.append(("Content-Type", SDP))
        prack = fork.dialog.create_request("PRACK", headers=headers, body=body)
        answered = await mgr.send_on(call.ims, prack)
        if incoming is not None:
            incoming.respond(answered.status, answered.reason)
        if body and 200 <= answered.status < 300:
            self.done = True
            call.qos.reserved()
            return
        if body:
            status, text = answered.status, answered.reason or "PRACK failed"
        setup.fail(status, text)

    async def answered(self, response: Response, dialog: Dialog, t0: float) -> None:
        """The 2xx after the exchange in the reliable 1xx and PRACK: no SDP in it, nor in ours."""
        setup = self.setup
        call, mgr = setup.call, setup.mgr
        assert setup.invite is not None
        mgr.send_ack(call.ims, dialog.create_ack(setup.invite))
        failure = (487, "Request Terminated")
        if not setup.wic_gone:
            try:
                await call.media.confirm()  # step 20: final resources, two-way media
            except MediaError as exc:
                failure = (exc.status, exc.reason)
            else:
                result = uac_result(response)
                loop = asyncio.get_running_loop()
                call.ims.start_timer(SessionTimer.after_request_sent(result, loop.time()) if result else None)
                setup._send_wic_ok(response, b"", t0)
                return
        setup._fail_wic(failure[0], failure[1], [])
        await call.end(reason_header(*failure), skip=call.wic)

    async def _send(self, response: Response, body: bytes) -> IncomingRequest | None:
        """Our reliable 1xx with the offer to the WIC, until its PRACK (RFC 3262 §3); None: none came."""
        setup = self.setup
        call, mgr = setup.call, setup.mgr
        headers = [("Contact", mgr.contact_for(call, Side.WIC)), ("Allow", ALLOW), ("Content-Type", SDP)]
        out = setup.request.response(response.status, response.reason, to_tag=call.wic.tag,
                                     headers=headers, body=body)  # fmt: skip
        self.sender = ReliableSender(setup.request, t1=mgr.gw.wic.endpoint.layer.timers.t1)
        self.sender.prepare(out)
        if call.wic.dialog is None:
            try:
                call.wic.dialog = Dialog.from_uas(setup.request, out)
            except DialogError:
                return None
            mgr.register(call, call.wic, call.wic.dialog)
        setup.sdp_tags.add(call.wic.tag)
        self.prack = asyncio.get_running_loop().create_future()
        setup.incoming.send(out)
        for wait in self.sender.retransmit_intervals():
            try:
                return await asyncio.wait_for(asyncio.shield(self.prack), wait)
            except TimeoutError:
                if setup.wic_gone:
                    return None
                setup.incoming.send(out)
        return None

    def on_prack(self, dialog: Dialog, incoming: IncomingRequest) -> bool:
        """The WIC's PRACK in its early dialog (RFC 3262 §4); True when handled."""
        setup = self.setup
        if incoming.request.method != "PRACK" or dialog is not setup.call.wic.dialog:
            return False
        error = dialog.receive_request(incoming.request)
        if error is not None:
            incoming.send(error)
            return True
        sender, prack = self.sender, self.prack
        if sender is None or prack is None or prack.done() or not sender.match(incoming.request):
            incoming.respond(481, "Call/Transaction Does Not Exist (no such reliable response)")
            return True
        prack.set_result(incoming)  # answered once the IMS has answered our PRACK
        return True
