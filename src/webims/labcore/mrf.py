"""Media interworking inside the IMS: the S-CSCF inserting the media IWF as an MRF
(seed 004 §6.X.2.3.1-2; TS 23.228 Annex P's MRFC/MRFP split, the S-CSCF acting as MRFC).

The S-CSCF stays a proxy for the signalling and becomes a B2BUA for the SDP only:
on an INVITE branch whose two ends cannot share media it asks the IWF
(:class:`webims.media.api.MediaIWF`) for a session and rewrites each SDP that
crosses it, following the seed's steps:

======================  ===========================================  ==========================
direction               request (offer)                              18x/2xx (answer), 200, end
======================  ===========================================  ==========================
WebRTC caller -> IMS    ``offer_from_webrtc`` -> offer to the callee  ``answer_from_ims`` -> to the
callee (§6.X.2.3.1)     (steps 7-9: IWF initialised, codec nego.)   caller; 200: ``confirm`` (16)
IMS caller -> WebRTC    ``offer_from_ims`` -> offer to the WIC        ``answer_from_webrtc``; 200:
callee (§6.X.2.3.2)                                                 ``confirm`` (steps 9-12, 18-23)
======================  ===========================================  ==========================

``release`` follows a failed or cancelled branch, a branch that lost to another
2xx, and the BYE. A re-INVITE/UPDATE with SDP in such a dialog goes through the
same session (offer from the WebRTC side: ``offer_from_webrtc``/``answer_from_ims``;
from the IMS side: ``offer_from_ims``/``answer_from_webrtc``).

The mismatch is decided from what the S-CSCF knows when the INVITE passes (a proxy
cannot re-send an INVITE with another offer once the callee has refused the first):

- a WebRTC offer (DTLS-SRTP, RFC 8827/8842) toward a contact registered without
  ICE support (no ``+sip.ice`` feature tag, RFC 5768 §4.2, and not a WebSocket
  contact) -> WebRTC caller mode;
- a plain RTP/SDES offer toward a WebSocket contact (``transport=ws``/``wss``,
  RFC 7118 §5.3: a browser, which only speaks ICE + DTLS-SRTP) -> IMS caller mode.
"""

from __future__ import annotations

import enum
import itertools
import logging
from dataclasses import dataclass, field

from webims.media.api import MediaError, MediaIWF, MediaSession
from webims.sdp import SdpError, SessionDescription, parse, profile_family
from webims.sip import NameAddr, Response, SipURI

__all__ = [
    "SDP",
    "IwfLeg",
    "MediaInterworking",
    "Mode",
    "contact_does_ice",
    "contact_is_webrtc",
    "needs_interworking",
    "offer_is_webrtc",
]

log = logging.getLogger("webims.labcore.mrf")

SDP = "application/sdp"


class Mode(enum.Enum):
    WEBRTC_CALLER = "webrtc-caller"  # seed 004 §6.X.2.3.1 (outbound from the WIC)
    IMS_CALLER = "ims-caller"  # seed 004 §6.X.2.3.2 (inbound to the WIC)


def contact_is_webrtc(contact: NameAddr) -> bool:
    """A browser contact: SIP over WebSocket (RFC 7118 §5.3 ``transport=ws``/``wss``)."""
    uri = contact.uri
    return isinstance(uri, SipURI) and (uri.param("transport") or "").lower() in ("ws", "wss")


def contact_does_ice(contact: NameAddr) -> bool:
    """Whether the contact can take an ICE/DTLS-SRTP offer: a WebSocket contact or one
    registered with the ``+sip.ice`` feature tag (RFC 5768 §4.2)."""
    return contact_is_webrtc(contact) or "+sip.ice" in contact.params


def offer_is_webrtc(offer: SessionDescription) -> bool:
    """An offer whose active RTP streams use DTLS-SRTP (UDP/TLS/RTP/SAVPF, RFC 5764 §8)."""
    families = {profile_family(m.proto) for m in offer.media if not m.is_rejected}
    return "dtls-srtp" in families


def needs_interworking(offer: SessionDescription, contact: NameAddr) -> Mode | None:
    """The interworking an INVITE with ``offer`` toward ``contact`` needs (module docstring)."""
    if not any(not m.is_rejected for m in offer.media):
        return None
    if offer_is_webrtc(offer):
        return None if contact_does_ice(contact) else Mode.WEBRTC_CALLER
    return Mode.IMS_CALLER if contact_is_webrtc(contact) else None


def _sdp_of(message_body: bytes, content_type: str | None) -> SessionDescription | None:
    if content_type != SDP or not message_body:
        return None
    try:
        return parse(message_body)
    except SdpError:
        return None


@dataclass(eq=False)
class IwfLeg:
    """The IWF session of one INVITE branch (and, once answered, of its dialog)."""

    session: MediaSession
    mode: Mode
    caller_tag: str | None  # From tag of the INVITE: tells the caller's side in the dialog
    offer_out: bytes = b""
    answers: dict[bytes, bytes] = field(default_factory=dict)  # answer in -> answer out
    confirmed: bool = False
    released: bool = False
    answered: bool = False

    async def on_response(self, response: Response) -> Response:
        """Branch hook: rewrite the answer in 18x/2xx, confirm on 2xx, release on failure."""
        if response.status >= 300:
            await self.release(f"{response.status} {response.reason}")
            return response
        sdp = _sdp_of(response.body, response.content_type)
        if sdp is not None and 100 < response.status < 300:
            out = self.answers.get(response.body)
            if out is None:
                if self.mode is Mode.WEBRTC_CALLER:
                    rewritten = await self.session.answer_from_ims(sdp)
                else:
                    rewritten = await self.session.answer_from_webrtc(sdp)
                out = self.answers[response.body] = rewritten.to_bytes()
            response.body = out
        if 200 <= response.status < 300:
            self.answered = True
            if not self.confirmed:
                self.confirmed = True
                await self.session.confirm()
        return response

    async def release(self, reason: str = "") -> None:
        if not self.released:
            self.released = True
            try:
                await self.session.release(reason)
            except MediaError as exc:
                log.info("IWF release failed: %s", exc)

    def from_webrtc_side(self, from_tag: str | None) -> bool:
        """Whether an in-dialog request with this From tag comes from the WebRTC end."""
        from_caller = from_tag == self.caller_tag
        return from_caller == (self.mode is Mode.WEBRTC_CALLER)


class MediaInterworking:
    """The S-CSCF's MRFC role: decides, creates and tracks IWF sessions per call."""

    def __init__(self, iwf: MediaIWF | None) -> None:
        self.iwf = iwf
        self._dialogs: dict[str, list[IwfLeg]] = {}
        self._ids = itertools.count(1)
        self.inserted = 0

    @property
    def enabled(self) -> bool:
        return self.iwf is not None

    async def leg_for(
        self, call_id: str, caller_tag: str | None, body: bytes, content_type: str | None, contact: NameAddr
    ) -> IwfLeg | None:
        """The IWF leg an INVITE branch toward ``contact`` needs, or None. Raises
        :class:`MediaError` (488 / 503) when the IWF cannot take the call."""
        if self.iwf is None:
            return None
        offer = _sdp_of(body, content_type)
        if offer is None:
            return None
        mode = needs_interworking(offer, contact)
        if mode is None:
            return None
        session = await self.iwf.create_session(f"{call_id}#{next(self._ids)}")
        leg = IwfLeg(session, mode, caller_tag)
        try:
            if mode is Mode.WEBRTC_CALLER:
                out = await session.offer_from_webrtc(offer)
            else:
                out = await session.offer_from_ims(offer)
        except MediaError:
            await leg.release("offer refused")
            raise
        leg.offer_out = out.to_bytes()
        self.inserted += 1
        log.info("media IWF inserted for %s (%s)", call_id, mode.value)
        return leg

    async def settle(self, call_id: str, legs: list[IwfLeg], final: Response) -> None:
        """After the INVITE transaction: keep the answered legs with the dialog, release the rest."""
        kept = []
        for leg in legs:
            if leg.answered and 200 <= final.status < 300 and not leg.released:
                kept.append(leg)
            else:
                await leg.release("not answered")
        if kept:
            self._dialogs.setdefault(call_id, []).extend(kept)

    def legs(self, call_id: str) -> list[IwfLeg]:
        return self._dialogs.get(call_id, [])

    async def in_dialog_offer(
        self, call_id: str, from_tag: str | None, body: bytes, content_type: str | None
    ) -> tuple[bytes, IwfLeg] | None:
        """A re-INVITE/UPDATE offer in an interworked dialog: (offer to forward, leg)."""
        offer = _sdp_of(body, content_type)
        legs = self.legs(call_id)
        if offer is None or not legs:
            return None
        leg = legs[0]
        if leg.from_webrtc_side(from_tag):
            out = await leg.session.offer_from_webrtc(offer)
        else:
            out = await leg.session.offer_from_ims(offer)
        return out.to_bytes(), leg

    async def in_dialog_answer(self, leg: IwfLeg, from_tag: str | None, response: Response) -> Response:
        """The answer to an in-dialog offer, rewritten for the side that made the offer."""
        sdp = _sdp_of(response.body, response.content_type)
        if sdp is None or not 100 < response.status < 300:
            return response
        if leg.from_webrtc_side(from_tag):
            out = await leg.session.answer_from_ims(sdp)
        else:
            out = await leg.session.answer_from_webrtc(sdp)
        response.body = out.to_bytes()
        return response

    async def end(self, call_id: str, reason: str = "BYE") -> None:
        """The dialog ended (BYE): release its IWF sessions."""
        for leg in self._dialogs.pop(call_id, []):
            await leg.release(reason)

    async def close(self) -> None:
        for call_id in list(self._dialogs):
            await self.end(call_id, "shutdown")
