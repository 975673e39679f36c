"""WebRTC <-> IMS session description transforms for the media interworking function.

The WebRTC side (RFC 8829 JSEP, RFC 8834/8835) uses UDP/TLS/RTP/SAVPF with
ICE (RFC 8839), DTLS-SRTP (RFC 5764, RFC 8842), rtcp-mux (RFC 5761) and
BUNDLE (RFC 8843); the IMS side (TS 24.229 §6.1, TS 26.114 §6.2) plain
RTP/AVP with one port per stream.  The media IWF (eIMS-AGW, TS 23.228 Annex
U; seed 004 §6.X.2.3.3-4) terminates both and rewrites each description with
its own addresses, ports, ICE credentials and certificate fingerprint:

* :func:`webrtc_to_ims` — a browser's offer or answer to the IMS profile;
* :func:`ims_to_webrtc` — an IMS offer or answer to the WebRTC profile.

Both are pure: the input is not changed.  With ``offer=`` the result is an
answer to that offer (same m-lines, its payload types and mids, RFC 3264
§6); ``codecs=`` is the IWF's choice of codecs for the side being written
(when it transcodes), otherwise the source's codecs pass through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .errors import SdpError
from .ice import Candidate, IceCredentials
from .lines import Attribute, Bandwidth, Connection, Origin, Timing
from .match import assign_payload_types, intersect_codecs
from .model import MediaDescription, SessionDescription
from .offer_answer import rejected_media
from .qos import Precondition
from .rtp import Codec
from .security import Fingerprint, Setup, answer_setup
from .streams import Group, Msid, Rtcp, Ssrc

#: The m-line proto of WebRTC media (RFC 5764 §8, RFC 8827 §6.5).
WEBRTC_PROTO = "UDP/TLS/RTP/SAVPF"
#: The m-line proto of IMS speech (TS 26.114 §6.2.1: RTP/AVP, AVPF optional).
IMS_PROTO = "RTP/AVP"
#: Payload formats a plain RTP peer has no use for (RFC 4588 rtx, RFC 2198 RED, FEC).
_WEBRTC_ONLY_FORMATS = frozenset(("rtx", "red", "ulpfec", "flexfec", "flexfec-03"))


@dataclass(frozen=True, slots=True)
class RtpEndpoint:
    """Where the IWF takes plain RTP for one IMS-side stream.

    ``rtcp_port`` None means RTP port + 1 (RFC 3550 §11) and no ``a=rtcp``.
    """

    address: str
    port: int
    rtcp_port: int | None = None

    @property
    def connection(self) -> Connection:
        return Connection.for_address(self.address)


@dataclass(frozen=True, slots=True)
class IceEndpoint:
    """The IWF's WebRTC-side transport: ICE credentials and candidates, DTLS certificate and role.

    One endpoint serves every bundled stream (RFC 8843).  ``setup`` is the
    role written in an offer (``actpass``, RFC 8842 §5.2); in an answer an
    ``actpass`` here is turned into the answerer role (:func:`answer_setup`).
    ``msid``/``ssrc``/``cname`` describe the IWF's outgoing track, if given.
    """

    ice_ufrag: str
    ice_pwd: str
    fingerprints: tuple[Fingerprint, ...]
    candidates: tuple[Candidate, ...] = field(default=())
    setup: Setup = "actpass"
    ice_lite: bool = False
    ice_options: tuple[str, ...] = field(default=())
    end_of_candidates: bool = True
    msid: Msid | None = None
    ssrc: int | None = None
    cname: str | None = None

    def __post_init__(self) -> None:
        IceCredentials(self.ice_ufrag, self.ice_pwd)  # RFC 8839 §5.4 syntax
        if not self.fingerprints:
            raise ValueError("a DTLS fingerprint is required (RFC 8842 §5)")

    @property
    def default_candidate(self) -> Candidate | None:
        """The first RTP-component candidate: its address goes in ``c=``/``m=`` (RFC 8839 §4)."""
        return next((c for c in self.candidates if c.component == 1), None)

    @property
    def connection(self) -> Connection:
        cand = self.default_candidate
        # Without candidates (trickle ICE), JSEP §5.2.1 writes "IN IP4 0.0.0.0" and port 9.
        return Connection("0.0.0.0") if cand is None else Connection.for_address(cand.address)

    @property
    def port(self) -> int:
        cand = self.default_candidate
        return 9 if cand is None else cand.port


def _timing(src: SessionDescription) -> Timing:
    timings = src.timings
    return timings[0] if timings else Timing()


def _derived_origin(src: SessionDescription, address: str) -> Origin:
    """The source's origin, with the IWF's address (a B2BUA keeps sess-id/version in step)."""
    o = src.origin
    return Origin(
        o.username, o.sess_id, o.sess_version, "IN", Connection.for_address(address).addrtype, address
    )


def _choose_codecs(
    src: MediaDescription, chosen: Sequence[Codec] | None, keep_telephone_event: bool, feedback: bool
) -> list[Codec]:
    """The codecs to write: the source's (minus rtx/RED/FEC), or ``chosen``.

    With ``chosen`` and ``keep_telephone_event``, each clock rate of a chosen
    media codec gets a telephone-event (the source's at that rate, or a new
    ``0-15`` one, RFC 4733 §7.1.1; TS 26.114 wants one per rate).
    """
    offered = [c for c in src.codecs if c.name.lower() not in _WEBRTC_ONLY_FORMATS]
    if chosen is None:
        out = [c for c in offered if keep_telephone_event or not c.is_telephone_event]
    else:
        out = list(chosen)
        if keep_telephone_event:
            have = {c.clock_rate for c in out if c.is_telephone_event}
            for clock in dict.fromkeys(c.clock_rate for c in chosen if not c.is_auxiliary):
                if clock in have:
                    continue
                te = next((c for c in offered if c.is_telephone_event and c.clock_rate == clock), None)
                out.append(te or Codec(101, "telephone-event", clock, None, "0-15"))
                have.add(clock)
        out = assign_payload_types(out)
    return out if feedback else [replace(c, rtcp_fb=()) if c.rtcp_fb else c for c in out]


def _check_answer_shape(answer: SessionDescription, offer: SessionDescription | None) -> None:
    if offer is not None and len(offer.media) != len(answer.media):
        raise SdpError("answer and offer differ in number of m-lines (RFC 3264 §6)", 488)


def _endpoint_list(
    endpoints: RtpEndpoint | Sequence[RtpEndpoint | None],
    sdp: SessionDescription,
    offer: SessionDescription | None,
    media_types: Sequence[str],
) -> list[RtpEndpoint | None]:
    if isinstance(endpoints, RtpEndpoint):
        out: list[RtpEndpoint | None] = [None] * len(sdp.media)
        for i, m in enumerate(sdp.media):
            offered_ok = offer is None or not offer.media[i].is_rejected
            if m.is_rtp and not m.is_rejected and m.media in media_types and offered_ok:
                out[i] = endpoints
                break
        return out
    listed = list(endpoints)[: len(sdp.media)]
    return listed + [None] * (len(sdp.media) - len(listed))


def webrtc_to_ims(
    sdp: SessionDescription,
    endpoints: RtpEndpoint | Sequence[RtpEndpoint | None],
    *,
    codecs: Sequence[Codec] | None = None,
    offer: SessionDescription | None = None,
    origin: Origin | None = None,
    keep_telephone_event: bool = True,
    ptime: float | None = None,
    bandwidths: Sequence[Bandwidth] | None = None,
    preconditions: Sequence[Precondition] | None = None,
    media_types: Sequence[str] = ("audio",),
) -> SessionDescription:
    """A WebRTC description rewritten for the IMS side, with the IWF's plain RTP endpoint(s).

    ``endpoints`` is one :class:`RtpEndpoint` (used for the first active
    stream of ``media_types``; the others are rejected) or one per m-line
    (None rejects).  The result has the same m-lines in the same order
    (RFC 3264 §8): accepted ones become RTP/AVP with the endpoint's port and
    address, the chosen codecs, telephone-event, direction, ptime/maxptime,
    bandwidth and the given preconditions; ICE, DTLS, rtcp-mux/rsize,
    BUNDLE/mid, ssrc, msid, extmap and rtcp-fb are gone.
    With ``offer`` (an IMS offer) the result answers it.
    """
    _check_answer_shape(sdp, offer)
    eps = _endpoint_list(endpoints, sdp, offer, media_types)
    first = next((e for e in eps if e is not None), None)
    if first is None:
        raise SdpError("no stream the IMS side can take", 488)
    out = SessionDescription.create(
        origin or _derived_origin(sdp, first.address), sdp.session_name, first.connection, _timing(sdp)
    )
    for bw in sdp.bandwidths:
        out.set_bandwidth(bw.type, bw.value)
    if sdp.direction is not None:
        out.direction = sdp.direction
    accepted = False
    for i, src in enumerate(sdp.media):
        ep = eps[i]
        offered = offer.media[i] if offer is not None else None
        chosen: list[Codec] = []
        if ep is not None and src.is_rtp and not src.is_rejected and not (offered and offered.is_rejected):
            chosen = _choose_codecs(src, codecs, keep_telephone_event, feedback=False)
            if offered is not None:
                chosen = intersect_codecs(offered.codecs, chosen, prefer_local_order=True)
        if ep is None or not any(not c.is_auxiliary for c in chosen):
            template = offered or src
            rejected = rejected_media(template, IMS_PROTO if template.is_rtp else template.proto)
            rejected.remove_attributes("mid")
            out.media.append(rejected)
            continue
        accepted = True
        m = MediaDescription.create(src.media, ep.port, IMS_PROTO)
        if ep.address != first.address:
            m.connection = ep.connection
        for bw in bandwidths if bandwidths is not None else src.bandwidths:
            m.set_bandwidth(bw.type, bw.value)
        m.set_codecs(chosen)
        m.ptime = ptime if ptime is not None else src.ptime
        if src.maxptime is not None:
            m.add_attribute(Attribute("maxptime", src.attribute_value("maxptime") or ""))
        if ep.rtcp_port is not None and ep.rtcp_port != ep.port + 1:
            m.add_attribute(Rtcp(ep.rtcp_port).to_attribute())
        m.set_preconditions(preconditions if preconditions is not None else src.preconditions)
        if src.direction is not None:
            m.direction = src.direction
        out.media.append(m)
    if not accepted:
        raise SdpError("no stream the IMS side can take", 488)
    return out


def ims_to_webrtc(
    sdp: SessionDescription,
    endpoint: IceEndpoint,
    *,
    codecs: Sequence[Codec] | None = None,
    offer: SessionDescription | None = None,
    origin: Origin | None = None,
    keep_telephone_event: bool = True,
    media_types: Sequence[str] = ("audio",),
) -> SessionDescription:
    """An IMS description rewritten for a browser, with the IWF's ICE/DTLS endpoint.

    Accepted streams (active RTP streams of ``media_types``) become
    UDP/TLS/RTP/SAVPF on the endpoint's default candidate, with its ICE
    credentials, candidates, fingerprint(s), setup role, ``a=rtcp-mux`` and
    one BUNDLE group; preconditions, SDES crypto, ``a=rtcp`` and other
    IMS-only attributes are dropped.  With ``offer`` (the browser's offer)
    the result answers it: its m-lines, mids, payload types and BUNDLE group,
    transport attributes only in the first bundled stream (RFC 8843 §7.3),
    ``a=rtcp-rsize`` only if offered, and an answerer DTLS role.
    """
    _check_answer_shape(sdp, offer)
    src_origin = sdp.origin
    conn = endpoint.connection
    out = SessionDescription.create(
        origin
        or Origin(
            src_origin.username,
            src_origin.sess_id,
            src_origin.sess_version,
            "IN",
            conn.addrtype,
            conn.address,
        ),
        sdp.session_name,
        None,
        _timing(sdp),
    )
    if endpoint.ice_lite:
        out.add_attribute(Attribute("ice-lite"))
    setup = endpoint.setup
    offer_bundle: tuple[str, ...] = ()
    if offer is not None:
        groups = offer.bundle_groups
        offer_bundle = groups[0].mids if groups else ()
        if setup == "actpass":
            offered_setup = next((offer.setup_for(m) for m in offer.media if not m.is_rejected), None)
            setup = answer_setup(offered_setup or "actpass")
    bundle: list[str] = []
    tagged = False
    for i, src in enumerate(sdp.media):
        offered = offer.media[i] if offer is not None else None
        mid = offered.mid if offered is not None else (src.mid or str(i))
        chosen: list[Codec] = []
        if (
            src.is_rtp
            and not src.is_rejected
            and src.media in media_types
            and not (offered and offered.is_rejected)
        ):
            chosen = _choose_codecs(src, codecs, keep_telephone_event, feedback=True)
            if offered is not None:
                chosen = intersect_codecs(offered.codecs, chosen, prefer_local_order=True)
        if not any(not c.is_auxiliary for c in chosen):
            template = offered or src
            rejected = rejected_media(template, WEBRTC_PROTO if template.is_rtp else template.proto)
            if mid is not None:
                rejected.mid = mid
            out.media.append(rejected)
            continue
        bundled = offer is None or (mid is not None and mid in offer_bundle)
        m = MediaDescription.create(src.media, endpoint.port, WEBRTC_PROTO)
        m.connection = conn
        if not (bundled and tagged):
            m.add_attributes(c.to_attribute() for c in endpoint.candidates)
            m.add_attributes(IceCredentials(endpoint.ice_ufrag, endpoint.ice_pwd).to_attributes())
            if endpoint.ice_options:
                m.add_attribute(Attribute("ice-options", " ".join(endpoint.ice_options)))
            m.add_attributes(f.to_attribute() for f in endpoint.fingerprints)
            m.add_attribute(Attribute("setup", setup))
        if mid is not None:
            m.mid = mid
        m.direction = sdp.direction_for(src)
        if endpoint.msid is not None:
            m.add_attribute(endpoint.msid.to_attribute())
        m.add_attribute(Attribute("rtcp-mux"))
        if offered is None or offered.rtcp_rsize:
            m.add_attribute(Attribute("rtcp-rsize"))
        m.set_codecs(chosen)
        for name in ("ptime", "maxptime"):
            value = src.attribute_value(name)
            if value is not None:
                m.add_attribute(Attribute(name, value))
        if endpoint.ssrc is not None and endpoint.cname is not None:
            m.add_attribute(Ssrc(endpoint.ssrc, "cname", endpoint.cname).to_attribute())
        if endpoint.end_of_candidates and not (bundled and tagged):
            m.add_attribute(Attribute("end-of-candidates"))
        if bundled and mid is not None:
            bundle.append(mid)
            tagged = True
        out.media.append(m)
    if not any(not m.is_rejected for m in out.media):
        raise SdpError("no stream the WebRTC side can take", 488)
    if offer is not None:
        bundle = [mid for mid in offer_bundle if mid in bundle]
    if bundle:
        out.add_attribute(Group("BUNDLE", tuple(bundle)).to_attribute())
    return out
