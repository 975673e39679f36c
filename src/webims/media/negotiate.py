"""Codec and transport choices of the embedded IWF, sans-IO (on :mod:`webims.sdp` descriptions).

* :func:`audio_stream` reads what one description says about its audio stream.
* :func:`ims_offer_codecs` / :func:`webrtc_offer_codecs`: the codecs the IWF
  offers on the far side: the codecs both sides can share first (relayed
  without decoding), then those it can transcode to.
* :func:`plan_from_answer`: once an answer names the codec, whether the
  call is relayed or transcoded and with which payload types
  (:class:`CodecPlan`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..sdp import AMR as AMR_NB
from ..sdp import (
    G722,
    OPUS,
    PCMA,
    PCMU,
    Candidate,
    Codec,
    Crypto,
    Direction,
    Fingerprint,
    IceCredentials,
    MediaDescription,
    SessionDescription,
    Setup,
    codecs_compatible,
)
from .api import MediaError
from .transcode import can_transcode

__all__ = [
    "PASSTHROUGH",
    "AudioStream",
    "CodecPlan",
    "audio_stream",
    "event_for",
    "ims_offer_codecs",
    "plan_from_answer",
    "webrtc_offer_codecs",
]

#: Codecs relayed without decoding when both sides have them (browsers have all four).
PASSTHROUGH: frozenset[str] = frozenset(("pcmu", "pcma", "g722", "opus"))
#: Codecs a browser decodes (RFC 7874 §3: Opus and G.711 mandatory; G.722 common).
BROWSER_CODECS: frozenset[str] = frozenset(("opus", "g722", "pcmu", "pcma"))
_TEMPLATES: dict[str, Codec] = {"pcmu": PCMU, "pcma": PCMA, "g722": G722, "opus": OPUS, "amr": AMR_NB}


@dataclass(frozen=True)
class AudioStream:
    """The first active audio stream of a description and its transport."""

    index: int
    codecs: tuple[Codec, ...]
    address: str
    port: int
    rtcp_port: int | None
    direction: Direction
    proto: str
    crypto: tuple[Crypto, ...]
    ice: IceCredentials | None
    candidates: tuple[Candidate, ...]
    fingerprints: tuple[Fingerprint, ...]
    setup: Setup | None
    ice_lite: bool

    @property
    def media_codecs(self) -> list[Codec]:
        return [c for c in self.codecs if not c.is_auxiliary]

    @property
    def sends(self) -> bool:
        """The peer sends media (RFC 3264 §5.1 direction)."""
        return self.direction in ("sendrecv", "sendonly") and self.port != 0


def audio_stream(sdp: SessionDescription) -> AudioStream:
    """The first accepted audio RTP stream; :class:`MediaError` 488 when there is none."""
    for i, m in enumerate(sdp.media):
        if m.media == "audio" and m.is_rtp and not m.is_rejected:
            return _stream(sdp, i, m)
    raise MediaError("no audio stream in the session description", 488)


def _stream(sdp: SessionDescription, index: int, m: MediaDescription) -> AudioStream:
    conn = sdp.connection_for(m)
    rtcp = m.rtcp
    return AudioStream(
        index=index,
        codecs=tuple(m.codecs),
        address=conn.address if conn is not None else "0.0.0.0",
        port=m.port,
        rtcp_port=rtcp.port if rtcp is not None else None,
        direction=sdp.direction_for(m),
        proto=m.proto,
        crypto=tuple(m.crypto),
        ice=sdp.ice_credentials_for(m),
        candidates=tuple(m.candidates),
        fingerprints=tuple(sdp.fingerprints_for(m)),
        setup=sdp.setup_for(m),
        ice_lite=sdp.ice_lite,
    )


def event_for(codecs: Sequence[Codec], clock_rate: int) -> Codec | None:
    """The telephone-event payload type at ``clock_rate`` (RFC 4733 §7.1.1)."""
    return next((c for c in codecs if c.is_telephone_event and c.clock_rate == clock_rate), None)


def _template(name: str) -> Codec | None:
    return _TEMPLATES.get(name.lower())


def ims_offer_codecs(browser: Sequence[Codec], ims_names: Sequence[str]) -> list[Codec]:
    """Codecs to offer the IMS for a browser's offer.

    The browser's codecs named in ``ims_names`` that both sides share (in the
    browser's order, its payload types), then the other ``ims_names`` the IWF
    can transcode to and from one of the browser's codecs.
    """
    wanted = [n.lower() for n in ims_names]
    media = [c for c in browser if not c.is_auxiliary]
    out = [c for c in media if c.name.lower() in wanted and c.name.lower() in PASSTHROUGH]
    have = {c.name.lower() for c in out}
    for name in wanted:
        template = _template(name)
        if name in have or template is None:
            continue
        if any(can_transcode(b, template) and can_transcode(template, b) for b in media):
            out.append(template)
            have.add(name)
    if not out:
        raise MediaError("no codec the IMS side can be offered", 488)
    return out


def webrtc_offer_codecs(ims: Sequence[Codec], webrtc_names: Sequence[str]) -> list[Codec]:
    """Codecs to offer a browser for an IMS offer.

    The IMS codecs a browser can decode (IMS order and payload types), then the
    ``webrtc_names`` the IWF can transcode to and from one of the IMS codecs.
    """
    media = [c for c in ims if not c.is_auxiliary]
    out = [c for c in media if c.name.lower() in BROWSER_CODECS]
    have = {c.name.lower() for c in out}
    for name in (n.lower() for n in webrtc_names):
        template = _template(name)
        if name in have or template is None:
            continue
        if any(can_transcode(i, template) and can_transcode(template, i) for i in media):
            out.append(template)
            have.add(name)
    if not out:
        raise MediaError("no codec the WebRTC side can be offered", 488)
    return out


@dataclass(frozen=True)
class CodecPlan:
    """The codec on each leg, their telephone-events, and whether the IWF transcodes."""

    webrtc: Codec
    ims: Codec
    webrtc_event: Codec | None
    ims_event: Codec | None
    transcode: bool

    @property
    def description(self) -> str:
        how = "transcode" if self.transcode else "relay"
        return (
            f"{self.webrtc.name}/{self.webrtc.clock_rate} <-> {self.ims.name}/{self.ims.clock_rate} ({how})"
        )


def plan_from_answer(answered: Sequence[Codec], offered_other: Sequence[Codec]) -> tuple[Codec, Codec]:
    """The answer's codec and the codec to use on the other leg, from that leg's offer.

    The same codec when the other leg offered it (relay), otherwise the first
    codec of the other leg's offer that the IWF can transcode to and from.
    """
    chosen = next((c for c in answered if not c.is_auxiliary), None)
    if chosen is None:
        raise MediaError("the answer accepted no codec", 488)
    media = [c for c in offered_other if not c.is_auxiliary]
    same = next((c for c in media if codecs_compatible(c, chosen)), None)
    if same is not None:
        return chosen, same
    other = next((c for c in media if can_transcode(c, chosen) and can_transcode(chosen, c)), None)
    if other is None:
        raise MediaError(f"cannot interwork {chosen.name} with the other side's codecs", 488)
    return chosen, other


def make_plan(
    webrtc: Codec, webrtc_codecs: Sequence[Codec], ims: Codec, ims_codecs: Sequence[Codec]
) -> CodecPlan:
    transcode = not codecs_compatible(webrtc, ims)
    return CodecPlan(
        webrtc=webrtc,
        ims=ims,
        webrtc_event=event_for(webrtc_codecs, webrtc.clock_rate),
        ims_event=event_for(ims_codecs, ims.clock_rate),
        transcode=transcode,
    )
