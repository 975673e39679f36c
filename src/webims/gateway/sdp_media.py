"""SDP across the B2BUA and the media IWF at the seed's steps (seed 004 §6.X.2.3.1-4).

:class:`MediaPlan` is one call's media handling, chosen by ``[sessions] media``:

- :class:`PassThrough` ("ims"): media interworking inside the IMS (§6.X.2.3.1-2):
  the WebRTC SDP goes on unchanged (the S-CSCF detects the mismatch and inserts
  its MRF), the IMS's SDP comes back unchanged;
- :class:`ExternalIwf` ("external", §6.X.2.3.3-4): the gateway drives the IWF —
  ``offer_from_webrtc`` on the WIC's INVITE (steps 2-3: initial resources,
  STUN/TURN, address mappings), ``answer_from_ims`` on each 18x/2xx answer
  (step 11: codec negotiation), ``confirm`` on the 200 (step 20: final resources,
  two-way media); for a terminating call ``offer_from_ims`` (step 5),
  ``answer_from_webrtc`` (steps 7-8, 14) and ``confirm`` (step 20); ``release`` on
  BYE, CANCEL and failure. A :class:`~webims.media.api.MediaError` carries the
  SIP status the WIC (or the IMS) gets.

:class:`LegSdp` keeps, per leg of the B2BUA, the gateway's own ``o=`` line (RFC
3264 §8: the same session id, a version one higher whenever the description
changes) and what was last sent and received, so that a session refresh
(unchanged SDP, RFC 4028) is answered without touching the other leg and a change
(hold, resume, codec) is passed on.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable
from typing import Protocol

from webims.media.api import MediaError, MediaSession
from webims.sdp import Connection, Origin, SdpError, SessionDescription, parse, profile_family, rejected_media

__all__ = [
    "SDP",
    "ExternalIwf",
    "LegSdp",
    "MediaPlan",
    "PassThrough",
    "is_webrtc",
    "parse_sdp",
    "rejecting_answer",
    "signature",
    "transport_of",
]

SDP = "application/sdp"
_QOS_ATTRIBUTES = ("a=curr:", "a=des:", "a=conf:")


def parse_sdp(body: bytes, content_type: str | None) -> SessionDescription | None:
    """The SDP of a message body, None when there is none; :class:`SdpError` when it is bad."""
    if not body or content_type != SDP:
        return None
    return parse(body)


def is_webrtc(sdp: SessionDescription) -> bool:
    """Whether the active streams use DTLS-SRTP (UDP/TLS/RTP/SAVPF, RFC 5764 §8): a browser's SDP."""
    families = {profile_family(m.proto) for m in sdp.media if not m.is_rejected}
    return families == {"dtls-srtp"}


def signature(sdp: SessionDescription, *, roles: bool = True) -> str:
    """The description without its ``o=`` line and precondition attributes: equal
    signatures mean no media change (a refresh or a precondition-only UPDATE).
    ``roles=False`` leaves out ``a=setup`` too: an answer says ``active``/``passive``
    where the same endpoint's offer said ``actpass`` (RFC 8842 §5.1), no change of media."""
    skip = _QOS_ATTRIBUTES if roles else (*_QOS_ATTRIBUTES, "a=setup:")
    return "\n".join(
        line for line in sdp.to_text().splitlines() if not line.startswith("o=") and not line.startswith(skip)
    )


def rejecting_answer(offer: SessionDescription, address: str) -> SessionDescription:
    """An answer to ``offer`` that rejects each of its streams (RFC 3264 §6: the same ``m=`` lines
    in order, port 0, the media type and one offered format kept), from ``address``: valid
    whatever the offer's codecs, for an offer the gateway must answer but will not take."""
    family = "IP6" if ":" in address else "IP4"
    origin = Origin("-", str(secrets.randbelow(2**62) + 1), 1, "IN", family, address)
    sdp = SessionDescription.create(origin, "-", Connection(address, family))
    sdp.media = [rejected_media(m) for m in offer.media]
    return sdp


def transport_of(sdp: SessionDescription) -> list[tuple[str, int, str, str]]:
    """Where each stream's media go — (media, port, profile, connection address) per ``m=`` line:
    what an answer alone cannot change for the offerer (RFC 3264 §6.1: the answerer's direction
    and codec choice are its own; our address is ours)."""
    out = []
    for m in sdp.media:
        conn = m.connection or sdp.connection
        out.append((m.media, m.port, m.proto, conn.address if conn is not None else ""))
    return out


class LegSdp:
    """The SDP state of one leg (module docstring)."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.session_id = str(secrets.randbelow(2**62) + 1)
        self.version = 0
        self.address = address
        self.last_sent: SessionDescription | None = None
        self._sent_text: str | None = None
        self.last_received: SessionDescription | None = None

    def stamp(self, sdp: SessionDescription) -> bytes:
        """Our ``o=`` on ``sdp`` (version + 1 when the content differs from the last one sent)."""
        out = sdp.copy()
        o = out.origin
        out.origin = Origin("-", self.session_id, 0, o.nettype, o.addrtype, o.unicast_address)
        text = out.to_text()  # serialized once: the o= line is patched in the text
        head, sep, rest = text.partition(f"o=- {self.session_id} 0 ")
        content = head + rest  # the description without its version
        if self._sent_text is None or content != self._sent_text:
            self.version += 1
        self._sent_text = content
        o = out.origin
        out.origin = Origin(o.username, o.sess_id, self.version, o.nettype, o.addrtype, o.unicast_address)
        self.last_sent = out
        if not sep:  # (an origin written some other way: serialize again)
            return out.to_bytes()
        return (head + sep[: -len("0 ")] + f"{self.version} " + rest).encode()

    def again(self) -> bytes | None:
        """The last description sent, unchanged (a session refresh, RFC 4028 §7.4)."""
        return self.last_sent.to_bytes() if self.last_sent is not None else None

    def received(self, sdp: SessionDescription, *, roles: bool = True) -> bool:
        """Record a received description; True when its media differ from the last one
        (``roles=False``: a change of ``a=setup`` alone is none, as for an answer)."""
        last = self.last_received
        changed = last is None or signature(sdp, roles=roles) != signature(last, roles=roles)
        self.last_received = sdp
        return changed

    def is_refresh(self, sdp: SessionDescription) -> bool:
        """True when ``sdp`` changes nothing but its ``o=`` version and preconditions."""
        return self.last_received is not None and signature(sdp) == signature(self.last_received)


class MediaPlan(Protocol):
    """One call's media (module docstring). Every method may raise :class:`MediaError`."""

    external: bool

    async def offer_from_wic(self, offer: SessionDescription) -> SessionDescription: ...

    async def answer_from_ims(self, answer: SessionDescription) -> SessionDescription: ...

    async def offer_from_ims(self, offer: SessionDescription) -> SessionDescription: ...

    async def answer_from_wic(self, answer: SessionDescription) -> SessionDescription: ...

    async def confirm(self) -> None: ...

    async def release(self, reason: str = "") -> None: ...


class PassThrough:
    """Media interworking inside the IMS: the SDP crosses the gateway as it is."""

    external = False

    async def offer_from_wic(self, offer: SessionDescription) -> SessionDescription:
        return offer.copy()

    async def answer_from_ims(self, answer: SessionDescription) -> SessionDescription:
        return answer.copy()

    async def offer_from_ims(self, offer: SessionDescription) -> SessionDescription:
        return offer.copy()

    async def answer_from_wic(self, answer: SessionDescription) -> SessionDescription:
        return answer.copy()

    async def confirm(self) -> None:
        return None

    async def release(self, reason: str = "") -> None:
        return None


class ExternalIwf:
    """The gateway drives an external media IWF session (module docstring)."""

    external = True

    def __init__(self, session: MediaSession) -> None:
        self.session = session
        self.confirmed = False
        self.released = False
        self.bypass = False  # the call turned out to need no interworking (WebRTC on both sides)
        self.session_unused = True
        self._applied: tuple[str, SessionDescription] | None = None  # the IMS answer the IWF has
        self._own_offer = False  # offer_to_ims made an offer: the IMS's next SDP answers it

    async def offer_from_wic(self, offer: SessionDescription) -> SessionDescription:
        if self.bypass:
            return offer.copy()
        self._applied = None
        self._own_offer = False
        self.session_unused = False
        return await self._call(self.session.offer_from_webrtc(offer))

    async def answer_from_ims(self, answer: SessionDescription) -> SessionDescription:
        if self.bypass:
            return answer.copy()
        # the same answer again (a 2xx repeating a 183's SDP): the IWF already has it; another
        # fork's answer (forking) is taken again, so the IWF follows the fork that answers
        key = signature(answer)
        if self._applied is not None and self._applied[0] == key:
            return self._applied[1].copy()
        out = await self._call(self.session.answer_from_ims(answer))
        self._applied = (key, out)
        return out.copy()

    async def offer_from_ims(self, offer: SessionDescription) -> SessionDescription:
        if not self.bypass and self.session_unused and is_webrtc(offer):
            # Already WebRTC (an MRF in the IMS interworked it, or a WebRTC peer): the WIC takes
            # it as it is and our IWF session is not needed (no second interworking).
            self.bypass = True
            await self.release("not needed: WebRTC SDP from the IMS")
        if self.bypass:
            return offer.copy()
        self.session_unused = False
        if self._own_offer:  # the IMS's answer to our offer_to_ims: the IWF makes the WIC's offer
            self._own_offer = False
            return await self._call(self.session.answer_from_ims_to_own_offer(offer))
        return await self._call(self.session.offer_from_ims(offer))

    async def answer_from_wic(self, answer: SessionDescription) -> SessionDescription:
        if self.bypass:
            return answer.copy()
        return await self._call(self.session.answer_from_webrtc(answer))

    async def offer_to_ims(self) -> SessionDescription:
        """An offer toward the IMS before the WIC has any SDP (the IMS called without one and
        requires 100rel: our first reliable 1xx must carry an offer, RFC 3262 §5): the IWF's own
        IMS-side offer (:meth:`~webims.media.api.MediaSession.offer_to_ims`, the IMS-side codecs
        of its media config). The IMS's answer then comes through :meth:`offer_from_ims` (the
        gateway goes on as if the IMS had offered it), which hands it to the IWF as the answer to
        that offer (``answer_from_ims_to_own_offer``, the WebRTC offer for the WIC out); the WIC's
        answer goes through :meth:`answer_from_wic`. A backend that cannot offer without a
        source SDP (rtpengine) raises ``MediaError(488)``."""
        self._applied = None
        offer = await self._call(self.session.offer_to_ims())
        self.session_unused = False
        self._own_offer = True
        return offer

    async def confirm(self) -> None:
        if not self.confirmed and not self.bypass:
            self.confirmed = True
            await self.session.confirm()

    async def release(self, reason: str = "") -> None:
        if not self.released:
            self.released = True
            with contextlib.suppress(MediaError):
                await self.session.release(reason)

    @staticmethod
    async def _call(step: Awaitable[SessionDescription]) -> SessionDescription:
        try:
            return await step
        except SdpError as exc:  # a backend that lets the SDP library's error through
            raise MediaError(exc.reason, exc.status) from exc
