"""The offer/answer model (RFC 3264) and media compatibility.

* :func:`answer_direction` — direction negotiation (RFC 3264 §6.1);
* :func:`create_answer` — an answer with the offer's m-lines in the same
  order, rejected streams at port 0 (RFC 3264 §6, §6.1), the offered
  payload types (§6.1), mids and BUNDLE groups (RFC 5888, RFC 8843 §7.3);
* :func:`profile_family`, :func:`media_compatibility`, :func:`can_share_media`
  — whether two endpoints can exchange media without an interworking
  function: same transport/security family and a common codec (the test an
  S-CSCF makes before inserting an MRF, TS 23.228 Annex U).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import SdpError
from .lines import Attribute, Bandwidth, Connection, Origin, Timing
from .match import common_codecs, intersect_codecs, limit_codecs
from .model import Direction, MediaDescription, SessionDescription
from .rtp import Codec
from .streams import Group


def reverse_direction(direction: Direction) -> Direction:
    """The direction as seen from the other end (sendonly <-> recvonly)."""
    if direction == "sendonly":
        return "recvonly"
    if direction == "recvonly":
        return "sendonly"
    return direction


def answer_direction(offered: Direction, local: Direction = "sendrecv") -> Direction:
    """The answer's direction for an offered one, given what the answerer wants (RFC 3264 §6.1).

    sendonly is answered recvonly (or inactive), recvonly sendonly (or
    inactive), inactive inactive; sendrecv with what the answerer wants.
    """
    local_sends = local in ("sendrecv", "sendonly")
    local_receives = local in ("sendrecv", "recvonly")
    if offered == "sendrecv":
        return local
    if offered == "sendonly":
        return "recvonly" if local_receives else "inactive"
    if offered == "recvonly":
        return "sendonly" if local_sends else "inactive"
    return "inactive"


@dataclass(frozen=True, slots=True)
class MediaAnswer:
    """How to answer one offered media description.

    ``codecs`` are the answerer's capabilities in its order of preference;
    ``port`` 0 rejects the stream.  ``proto`` defaults to the offered one.
    ``attributes`` are added as they are (ICE, DTLS, preconditions, ...).
    ``max_codecs`` keeps only that many media codecs (plus the
    telephone-event/CN of their clock rate).
    """

    codecs: Sequence[Codec]
    port: int
    connection: Connection | None = None
    direction: Direction = "sendrecv"
    attributes: Sequence[Attribute] = field(default=())
    proto: str | None = None
    bandwidths: Sequence[Bandwidth] = field(default=())
    max_codecs: int | None = None
    ptime: float | None = None


def rejected_media(offered: MediaDescription, proto: str | None = None) -> MediaDescription:
    """A rejected stream answering ``offered``: port 0, the same media type, one format (RFC 3264 §6)."""
    fmts = offered.fmts[:1] or ("0",)
    rejected = MediaDescription.create(offered.media, 0, proto or offered.proto, fmts)
    mid = offered.mid
    if mid is not None:
        rejected.mid = mid
    return rejected


def create_answer(
    offer: SessionDescription,
    answers: Sequence[MediaAnswer | None],
    *,
    origin: Origin,
    connection: Connection | None = None,
    session_name: str = "-",
    session_attributes: Sequence[Attribute] = (),
    prefer_local_order: bool = False,
) -> SessionDescription:
    """An RFC 3264 answer to ``offer``.

    ``answers[i]`` answers ``offer.media[i]`` (missing or None: rejected).  The
    answer has exactly the offered m-lines, in order (§6); a stream is
    rejected (port 0) when the offer disabled it, ``answers`` says so, or no
    codec is common (§6.1).  Codecs use the offered payload types.  mids are
    copied and each BUNDLE group is kept with its accepted mids (RFC 8843
    §7.3).  Raises :class:`SdpError` 488 when no stream can be accepted.
    """
    sdp = SessionDescription.create(origin, session_name, connection, Timing())
    for attr in session_attributes:
        sdp.add_attribute(attr)
    accepted_mids: list[str] = []
    any_accepted = False
    for i, offered in enumerate(offer.media):
        spec = answers[i] if i < len(answers) else None
        codecs: list[Codec] = []
        if spec is not None and spec.port != 0 and not offered.is_rejected:
            codecs = intersect_codecs(offered.codecs, spec.codecs, prefer_local_order=prefer_local_order)
            if spec.max_codecs is not None:
                codecs = limit_codecs(codecs, spec.max_codecs)
        if spec is None or not any(not c.is_auxiliary for c in codecs):
            sdp.media.append(rejected_media(offered, spec.proto if spec is not None else None))
            continue
        any_accepted = True
        m = MediaDescription.create(offered.media, spec.port, spec.proto or offered.proto)
        if spec.connection is not None:
            m.connection = spec.connection
        for bw in spec.bandwidths:
            m.set_bandwidth(bw.type, bw.value)
        if offered.mid is not None:
            m.mid = offered.mid
            accepted_mids.append(offered.mid)
        m.add_attributes(spec.attributes)
        m.set_codecs(codecs)
        if spec.ptime is not None:
            m.ptime = spec.ptime
        m.direction = answer_direction(offer.direction_for(offered), spec.direction)
        sdp.media.append(m)
    if offer.media and not any_accepted:
        raise SdpError("no acceptable media", 488)
    for group in offer.bundle_groups:
        kept = tuple(mid for mid in group.mids if mid in accepted_mids)
        if kept:
            sdp.add_attribute(Group(group.semantics, kept).to_attribute())
    if (
        sdp.media
        and connection is None
        and any(not m.is_rejected and m.connection is None for m in sdp.media)
    ):
        raise ValueError("every accepted stream needs a connection (session or media level)")
    return sdp


def profile_family(proto: str) -> str:
    """The transport/security family of an m-line proto.

    ``dtls-srtp`` (UDP/TLS/RTP/SAVP[F], RFC 5764 §8; needs ICE in WebRTC),
    ``sdes-srtp`` (RTP/SAVP[F], RFC 4568), ``rtp`` (RTP/AVP[F]; AVPF
    interworks with AVP, RFC 4585 §5) or the proto itself in upper case.
    """
    p = proto.upper()
    if p.endswith(("TLS/RTP/SAVP", "TLS/RTP/SAVPF", "DTLS/RTP/SAVP", "DTLS/RTP/SAVPF")):
        return "dtls-srtp"
    if p in ("RTP/SAVP", "RTP/SAVPF"):
        return "sdes-srtp"
    if p in ("RTP/AVP", "RTP/AVPF"):
        return "rtp"
    return p


@dataclass(frozen=True, slots=True)
class StreamCompatibility:
    """One pair of active streams of the same media type."""

    index_a: int
    index_b: int
    media: str
    family_a: str
    family_b: str
    common: tuple[tuple[Codec, Codec], ...]

    @property
    def ok(self) -> bool:
        return self.family_a == self.family_b and bool(self.common)


@dataclass(frozen=True, slots=True)
class Compatibility:
    """Whether two session descriptions can share media directly, and why not."""

    ok: bool
    reason: str
    streams: tuple[StreamCompatibility, ...] = ()


def media_compatibility(a: SessionDescription, b: SessionDescription) -> Compatibility:
    """Pair each active stream of ``a`` with the next active one of ``b`` of the same media type.

    Compatible when at least one pair exists and every pair has the same
    :func:`profile_family` and a common media codec (by name, clock rate,
    channels and the fmtp parameters that matter, see :mod:`webims.sdp.match`).
    """
    pairs: list[StreamCompatibility] = []
    used: set[int] = set()
    for i, ma in enumerate(a.media):
        if ma.is_rejected:
            continue
        for j, mb in enumerate(b.media):
            if j in used or mb.is_rejected or mb.media != ma.media:
                continue
            used.add(j)
            common = tuple(common_codecs(ma.codecs, mb.codecs))
            pairs.append(
                StreamCompatibility(
                    i, j, ma.media, profile_family(ma.proto), profile_family(mb.proto), common
                )
            )
            break
    if not pairs:
        return Compatibility(False, "no stream of a common media type")
    for p in pairs:
        if p.family_a != p.family_b:
            return Compatibility(False, f"{p.media}: {p.family_a} vs {p.family_b}", tuple(pairs))
        if not p.common:
            return Compatibility(False, f"{p.media}: no common codec", tuple(pairs))
    return Compatibility(True, "", tuple(pairs))


def can_share_media(a: SessionDescription, b: SessionDescription) -> bool:
    """True when ``a`` and ``b`` can exchange media without an interworking function."""
    return media_compatibility(a, b).ok
