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
from webims.sdp import Origin, SdpError, SessionDescription, parse, profile_family

__all__ = [
    "SDP",
    "ExternalIwf",
    "LegSdp",
    "MediaPlan",
    "PassThrough",
    "is_webrtc",
    "parse_sdp",
    "signature",
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


def signature(sdp: SessionDescription) -> str:
    """The description without its ``o=`` line and precondition attributes: equal
    signatures mean no media change (a refresh or a precondition-only UPDATE)."""
    return "\n".join(
        line
        for line in sdp.to_text().splitlines()
        if not line.startswith("o=") and not line.startswith(_QOS_ATTRIBUTES)
    )


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

    def received(self, sdp: SessionDescription) -> bool:
        """Record a received description; True when its media differ from the last one."""
        changed = self.last_received is None or signature(sdp) != signature(self.last_received)
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

    async def offer_from_wic(self, offer: SessionDescription) -> SessionDescription:
        if self.bypass:
            return offer.copy()
        self._applied = None
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
        return await self._call(self.session.offer_from_ims(offer))

    async def answer_from_wic(self, answer: SessionDescription) -> SessionDescription:
        if self.bypass:
            return answer.copy()
        return await self._call(self.session.answer_from_webrtc(answer))

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
