"""The media interworking function's API (seed 004 §6.X.2.3.1-4, §6.1.3).

One :class:`MediaSession` per call, with two legs: the WebRTC leg toward the WIC
(ICE, DTLS-SRTP, rtcp-mux, Opus...) and the IMS leg (RTP/AVP, G.711, AMR-WB...).
The methods follow the seed's steps:

- originating (WIC calls an IMS user): ``offer_from_webrtc`` ("reserve initial
  resources, STUN/TURN, address and port mappings"), then ``answer_from_ims`` for
  each 18x/2xx answer ("update based on codec negotiation"), then ``confirm``
  ("answered: allocate final resources, two-way media");
- terminating (an IMS user calls the WIC): ``offer_from_ims`` then
  ``answer_from_webrtc`` then ``confirm``;
- terminating without an IMS offer whose first reliable 18x must carry one (RFC 3262
  §5): ``offer_to_ims`` (the IWF's own IMS-side offer), then
  ``answer_from_ims_to_own_offer`` (the IMS's answer in, the WebRTC offer for the WIC
  out), then ``answer_from_webrtc`` and ``confirm``;
- re-INVITE/UPDATE (hold, resume, codec change): the same calls again on the
  established session; ``release`` at the end.

SDP goes in and out as :class:`webims.sdp.SessionDescription`.  Backends: the
embedded one (``webims.media.embedded``) and rtpengine (``webims.media.rtpengine``).
Every failure is a :class:`MediaError` carrying the SIP status to answer with.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..sdp import SessionDescription

__all__ = [
    "LegSide",
    "LegStats",
    "MediaError",
    "MediaEvent",
    "MediaEventKind",
    "MediaIWF",
    "MediaSession",
    "estimate_mos",
]


class LegSide(enum.Enum):
    WEBRTC = "webrtc"
    IMS = "ims"


class MediaError(Exception):
    """A media failure with the SIP answer it maps to (488 codec/SDP, 503 no resources/backend,
    500 internal)."""

    def __init__(self, reason: str, status: int = 500) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class MediaEventKind(enum.Enum):
    ICE_FAILED = "ice-failed"
    DTLS_FAILED = "dtls-failed"
    MEDIA_TIMEOUT = "media-timeout"
    BACKEND_LOST = "backend-lost"
    DTMF = "dtmf"  # RFC 4733 event seen on a leg (detail: the digit)


@dataclass(frozen=True)
class MediaEvent:
    """Reported to the signalling side through the session's ``on_event`` callback."""

    session_id: str
    kind: MediaEventKind
    side: LegSide
    detail: str = ""


@dataclass(frozen=True)
class LegStats:
    """Per-leg statistics (RFC 3550 §6.4 terms)."""

    side: LegSide
    codec: str = ""
    packets_sent: int = 0
    packets_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    packets_lost: int = 0
    fraction_lost: float = 0.0
    jitter_ms: float = 0.0
    rtt_ms: float | None = None
    mos: float = field(default=0.0)


def estimate_mos(fraction_lost: float, jitter_ms: float, rtt_ms: float | None, codec: str = "PCMU") -> float:
    """An E-model estimate (ITU-T G.107, simplified as in G.107 Annex and common practice):
    R = 93.2 - Id(delay) - Ie,eff(loss), MOS from R per G.107 Annex B."""
    one_way = (rtt_ms or 0.0) / 2 + jitter_ms * 2 + 10.0
    i_d = 0.024 * one_way + (0.11 * (one_way - 177.3) if one_way > 177.3 else 0.0)
    ie, bpl = {"PCMU": (0.0, 4.3), "PCMA": (0.0, 4.3), "G722": (0.0, 4.3), "opus": (0.0, 10.0),
               "AMR": (5.0, 10.0), "AMR-WB": (0.0, 10.0)}.get(codec, (0.0, 4.3))
    ppl = max(0.0, min(1.0, fraction_lost)) * 100
    ie_eff = ie + (95 - ie) * ppl / (ppl + bpl)
    r = max(0.0, min(100.0, 93.2 - i_d - ie_eff))
    if r <= 0:
        return 1.0
    return max(1.0, min(4.5, 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6))


class MediaSession(Protocol):
    """One call's media through the IWF."""

    session_id: str

    async def offer_from_webrtc(self, offer: SessionDescription) -> SessionDescription:
        """WIC's offer in; the offer to send toward the IMS out (RTP/AVP, IWF's IMS address)."""

    async def answer_from_ims(self, answer: SessionDescription) -> SessionDescription:
        """IMS answer (18x or 2xx) in; the answer for the WIC out (ICE/DTLS of the IWF)."""

    async def offer_from_ims(self, offer: SessionDescription) -> SessionDescription:
        """IMS offer in; the offer for the WIC out."""

    async def answer_from_webrtc(self, answer: SessionDescription) -> SessionDescription:
        """WIC's answer in; the answer toward the IMS out (after :meth:`answer_from_ims_to_own_offer`
        the IMS leg's exchange is already complete: the result only restates its media)."""

    async def offer_to_ims(self) -> SessionDescription:
        """The IWF's own offer toward the IMS, before any WebRTC SDP (an IMS INVITE without SDP
        that requires 100rel: the first reliable 18x must carry the offer, RFC 3262 §5 with RFC
        3261 §13.2.1): the legs open and the offer has the backend's IMS-side codecs on the IMS
        leg's address. The IMS's answer goes to :meth:`answer_from_ims_to_own_offer`.
        A backend that cannot offer without a source SDP raises ``MediaError(488)``."""

    async def answer_from_ims_to_own_offer(self, answer: SessionDescription) -> SessionDescription:
        """The IMS's answer to :meth:`offer_to_ims` in; the offer for the WIC out (its answer then
        goes to :meth:`answer_from_webrtc`). Both legs' exchanges are then complete: early
        media flows both ways before :meth:`confirm`."""

    async def confirm(self) -> None:
        """The call is answered: final resources, two-way media."""

    async def release(self, reason: str = "") -> None:
        """Free everything (idempotent)."""

    def stats(self) -> list[LegStats]:
        """Current statistics of both legs."""


class MediaIWF(Protocol):
    """A media interworking backend."""

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Release every session and stop."""

    async def create_session(
        self, session_id: str, on_event: Callable[[MediaEvent], None] | None = None
    ) -> MediaSession:
        """A new call; raises MediaError(503) when out of ports/capacity."""

    def sessions(self) -> list[str]:
        """Ids of the live sessions (for leak checks and the admin API)."""
