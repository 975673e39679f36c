"""The embedded media IWF backend (in-process, the default): :class:`EmbeddedMediaIWF`.

Each :class:`EmbeddedSession` has a WebRTC leg (:class:`~.ice_leg.WebRtcLeg`:
ICE, DTLS-SRTP, rtcp-mux) and an IMS leg (:class:`~.ims_leg.ImsLeg`: RTP/AVP
on a port pair, latching, optional SDES-SRTP), joined by two
:class:`~.relay.Forwarder` s.  The seed's steps (004 §6.X.2.3.3-4) map as:

* "reserve initial resources, STUN/TURN, address/port mappings" —
  ``offer_from_webrtc`` / ``offer_from_ims``: ports bound, ICE candidates
  gathered, the far side's offer written;
* "update based on codec negotiation" — ``answer_from_ims`` /
  ``answer_from_webrtc``: codec plan fixed (relay or transcode), ICE and DTLS
  started, media toward the caller flows (early media);
* "answered: final resources, two-way media" — ``confirm``.

Failures (ICE, DTLS, consent) release the session and report a
:class:`~.api.MediaEvent`; a leg that goes silent after ``confirm`` reports
``MEDIA_TIMEOUT`` once.  RTCP reports go out from one IWF-wide timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from ..sdp import (
    G722,
    OPUS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT_8000,
    TELEPHONE_EVENT_16000,
    TELEPHONE_EVENT_48000,
    Codec,
    MediaDescription,
    Origin,
    Rtcp,
    RtpEndpoint,
    SdpError,
    SessionDescription,
    Setup,
    Timing,
    answer_setup,
    ims_to_webrtc,
    webrtc_to_ims,
)
from .api import LegSide, LegStats, MediaError, MediaEvent, MediaEventKind
from .dtls import DtlsCertificate, DtlsRole
from .ice_leg import WebRtcLeg
from .ims_leg import SDES_SUITES, ImsLeg
from .negotiate import (
    AudioStream,
    CodecPlan,
    audio_stream,
    event_for,
    ims_offer_codecs,
    make_plan,
    plan_from_answer,
    webrtc_offer_codecs,
)
from .ports import PortAllocator
from .relay import Forwarder, StreamPlan

__all__ = ["EmbeddedConfig", "EmbeddedMediaIWF", "EmbeddedSession"]

log = logging.getLogger(__name__)
_SAVP = ("RTP/SAVP", "RTP/SAVPF")
#: The codecs a browser offers (RFC 7874 §3: Opus and G.711 mandatory; G.722 common): the IWF's own
#: IMS offer (:meth:`EmbeddedSession.offer_to_ims`) has the ``ims_codecs`` it relays or transcodes to them.
_BROWSER_CODECS = (OPUS, G722, PCMU, PCMA)
_EVENTS = {e.clock_rate: e for e in (TELEPHONE_EVENT_8000, TELEPHONE_EVENT_16000, TELEPHONE_EVENT_48000)}


@dataclass(frozen=True)
class EmbeddedConfig:
    """Settings of the embedded IWF (the ``[media]`` section maps onto these)."""

    #: Addresses for the WebRTC leg's host candidates (one socket each, same port).
    webrtc_addresses: tuple[str, ...] = ("127.0.0.1",)
    #: Address of the IMS leg's RTP/RTCP sockets (written in the IMS-side SDP).
    ims_address: str = "127.0.0.1"
    port_min: int = 40000
    port_max: int = 49999
    ice_lite: bool = False
    ice_timeout: float = 15.0
    dtls_timeout: float = 10.0
    #: Seconds without packets on a leg (after confirm) before MEDIA_TIMEOUT.
    media_timeout: float = 30.0
    #: Codecs offered toward the IMS, in preference order (shared ones relayed, others transcoded).
    ims_codecs: tuple[str, ...] = ("PCMU", "PCMA", "G722", "AMR")
    #: Codecs offered toward browsers when the IMS offer has none a browser can take.
    webrtc_codecs: tuple[str, ...] = ("opus", "PCMU")
    #: Offer SDES-SRTP (RTP/SAVP, RFC 4568) toward the IMS.
    ims_srtp: bool = False
    ptime_ms: int = 20
    max_sessions: int | None = None
    timer_interval: float = 0.5


def _ignore_failure(kind: MediaEventKind, reason: str) -> None:
    """A released session's legs report nothing."""


def own_ims_codecs(names: tuple[str, ...]) -> list[Codec]:
    """The codecs of the IWF's own IMS offer: each of ``names`` (config order) that the IWF
    relays to a browser or transcodes to and from one of a browser's codecs, then the
    telephone-event of each of their clock rates (RFC 4733 §7.1.1)."""
    media: list[Codec] = []
    for name in names:
        try:
            found = ims_offer_codecs(_BROWSER_CODECS, [name])
        except MediaError:  # a codec the IWF can neither relay nor transcode
            continue
        media += [c for c in found if all(c.encoding != m.encoding for m in media)]
    if not media:
        raise MediaError(f"no IMS-side codec the IWF can offer in ims_codecs {list(names)}", 488)
    events = [_EVENTS[rate] for rate in dict.fromkeys(c.clock_rate for c in media) if rate in _EVENTS]
    return media + events


def own_ims_offer(endpoint: RtpEndpoint, codecs: list[Codec], ptime_ms: int) -> SessionDescription:
    """An RTP/AVP audio offer (RFC 3264 §5) on ``endpoint`` with ``codecs``, sendrecv."""
    connection = endpoint.connection
    origin = Origin("-", str(secrets.randbits(62)), 1, "IN", connection.addrtype, endpoint.address)
    sdp = SessionDescription.create(origin, "-", connection, Timing())
    m = MediaDescription.create("audio", endpoint.port, "RTP/AVP")
    m.set_codecs(codecs)
    m.ptime = ptime_ms
    if endpoint.rtcp_port is not None and endpoint.rtcp_port != endpoint.port + 1:
        m.add_attribute(Rtcp(endpoint.rtcp_port).to_attribute())
    m.direction = "sendrecv"
    sdp.media.append(m)
    return sdp


class EmbeddedSession:
    """One call's media through the embedded IWF (implements :class:`~.api.MediaSession`)."""

    def __init__(
        self, iwf: EmbeddedMediaIWF, session_id: str, on_event: Callable[[MediaEvent], None] | None
    ) -> None:
        self.session_id = session_id
        self.iwf = iwf
        self.on_event = on_event
        self.config = iwf.config
        self.webrtc: WebRtcLeg | None = None
        self.ims: ImsLeg | None = None
        self.plan: CodecPlan | None = None
        self.originating: bool | None = None
        self.confirmed = False
        self.released = False
        self.release_reason = ""
        self._webrtc_offer: SessionDescription | None = None
        self._ims_offer: SessionDescription | None = None
        self._to_ims: Forwarder | None = None
        self._to_webrtc: Forwarder | None = None
        self._sends = {LegSide.WEBRTC: True, LegSide.IMS: True}
        self._dtls_role: DtlsRole | None = None
        self._own_offer: SessionDescription | None = None  # offer_to_ims's, until its answer
        self._ims_offered = False  # offer_to_ims: both legs answered before the 200, early media both ways

    # -- legs --------------------------------------------------------------------------------

    async def _open_legs(self, controlling: bool) -> None:
        """Bind the ports and gather candidates; on failure the session is released (no leak)."""
        if self.webrtc is not None:
            return
        try:
            await self._bind_legs(controlling)
        except BaseException as exc:
            await self.release(f"no media resources: {exc}")
            raise

    async def _bind_legs(self, controlling: bool) -> None:
        cfg = self.config
        cname = f"webims-{self.session_id}"[:64]
        ims = ImsLeg(cfg.ims_address, self.iwf.ports, cname)
        webrtc = WebRtcLeg(
            certificate=self.iwf.certificate,
            addresses=cfg.webrtc_addresses,
            ports=self.iwf.ports,
            controlling=controlling,
            cname=cname,
            on_failure=self._leg_failed,
            ice_lite=cfg.ice_lite,
            ice_timeout=cfg.ice_timeout,
            dtls_timeout=cfg.dtls_timeout,
        )
        try:
            await ims.open()
            await webrtc.gather()
        except BaseException:
            ims.close()
            await webrtc.close()
            raise
        self.ims, self.webrtc = ims, webrtc
        webrtc.sink = self._from_webrtc
        ims.sink = self._from_ims

    def _leg_failed(self, kind: MediaEventKind, reason: str) -> None:
        self._emit(kind, LegSide.WEBRTC, reason)
        if not self.released:
            self.iwf._spawn(self.release(reason))

    def _emit(self, kind: MediaEventKind, side: LegSide, detail: str) -> None:
        if self.on_event is not None:
            try:
                self.on_event(MediaEvent(self.session_id, kind, side, detail))
            except Exception:  # the signalling side's bug must not stop the media
                log.exception("media event handler failed")

    def _check(self) -> None:
        if self.released:
            raise MediaError(f"session released: {self.release_reason}", 500)

    # -- the data path -----------------------------------------------------------------------

    def _from_webrtc(self, data: bytes, now: float) -> None:
        fwd, ims = self._to_ims, self.ims
        if fwd is None or ims is None or not (self.confirmed or self.originating is False):
            return
        packet = fwd.relay(data, now)
        if packet is not None:
            ims.send_rtp(packet)
            return
        for packet in fwd.forward(data, now):
            ims.send_rtp(packet)

    def _from_ims(self, data: bytes, now: float) -> None:
        fwd, webrtc = self._to_webrtc, self.webrtc
        if fwd is None or webrtc is None or not (self.confirmed or self.originating or self._ims_offered):
            return
        packet = fwd.relay(data, now)
        if packet is not None:
            webrtc.send_rtp(packet)
            return
        for packet in fwd.forward(data, now):
            webrtc.send_rtp(packet)

    def _install(self, plan: CodecPlan) -> None:
        webrtc, ims = self.webrtc, self.ims
        assert webrtc is not None and ims is not None
        if self.plan == plan and self._to_ims is not None:
            return
        self.plan = plan
        ptime = self.config.ptime_ms
        to_ims = StreamPlan(plan.webrtc, plan.ims, plan.webrtc_event, plan.ims_event, plan.transcode, ptime)
        to_webrtc = StreamPlan(
            plan.ims, plan.webrtc, plan.ims_event, plan.webrtc_event, plan.transcode, ptime
        )
        self._to_ims = Forwarder(
            to_ims, ims.out, lambda d: self._emit(MediaEventKind.DTMF, LegSide.WEBRTC, d)
        )
        self._to_webrtc = Forwarder(
            to_webrtc, webrtc.out, lambda d: self._emit(MediaEventKind.DTMF, LegSide.IMS, d)
        )
        webrtc.clock_rate, webrtc.codec_name = plan.webrtc.clock_rate, plan.webrtc.name
        ims.clock_rate, ims.codec_name = plan.ims.clock_rate, plan.ims.name
        log.info("media %s: %s", self.session_id, plan.description)

    # -- IMS transport details -------------------------------------------------------------

    def _ims_remote(self, stream: AudioStream) -> None:
        assert self.ims is not None
        self.ims.set_remote(stream.address, stream.port, stream.rtcp_port)
        self._sends[LegSide.IMS] = stream.sends
        if stream.proto in _SAVP:
            crypto = next((c for c in stream.crypto if c.suite in SDES_SUITES), None)
            if crypto is None:
                raise MediaError("no supported SDES crypto suite (RFC 4568)", 488)
            self.ims.set_remote_crypto(crypto)

    def _add_crypto(self, sdp: SessionDescription, index: int, suite: str, tag: int) -> None:
        assert self.ims is not None
        crypto = self.ims.local_crypto or self.ims.make_local_crypto(suite, tag)
        m = sdp.media[index]
        m.proto = "RTP/SAVP"
        m.remove_attributes("crypto")
        m.add_attribute(crypto.to_attribute())

    # -- originating: WIC offers ---------------------------------------------------------------

    async def offer_from_webrtc(self, offer: SessionDescription) -> SessionDescription:
        self._check()
        stream = audio_stream(offer)
        if stream.ice is None or not stream.fingerprints:
            raise MediaError("WebRTC offer without ICE credentials or DTLS fingerprint", 488)
        codecs = ims_offer_codecs(stream.codecs, self.config.ims_codecs)
        if self.originating is None:
            self.originating = True
        await self._open_legs(controlling=stream.ice_lite)
        assert self.ims is not None
        self._webrtc_offer = offer
        self._sends[LegSide.WEBRTC] = stream.sends
        try:
            ims_offer = webrtc_to_ims(offer, self.ims.endpoint, codecs=codecs, ptime=self.config.ptime_ms)
        except SdpError as exc:
            raise MediaError(f"cannot write the IMS offer: {exc}", 488) from exc
        if self.config.ims_srtp:
            self._add_crypto(ims_offer, audio_stream(ims_offer).index, "AES_CM_128_HMAC_SHA1_80", 1)
        self._ims_offer = ims_offer
        return ims_offer

    async def answer_from_ims(self, answer: SessionDescription) -> SessionDescription:
        self._check()
        if self._webrtc_offer is None or self.webrtc is None:
            raise MediaError("IMS answer without a WebRTC offer", 500)
        browser = audio_stream(self._webrtc_offer)
        stream = audio_stream(answer)
        ims_codec, webrtc_codec = plan_from_answer(stream.codecs, browser.codecs)
        self._ims_remote(stream)
        setup = answer_setup(browser.setup or "actpass")
        # No RTCP feedback (transport-cc, NACK...): the IWF terminates RTCP and does none of it.
        chosen = [replace(webrtc_codec, rtcp_fb=())]
        te = event_for(browser.codecs, webrtc_codec.clock_rate)
        if te is not None:
            chosen.append(te)
        try:
            out = ims_to_webrtc(
                answer, self.webrtc.local_endpoint(setup), codecs=chosen, offer=self._webrtc_offer
            )
        except SdpError as exc:
            raise MediaError(f"cannot write the WebRTC answer: {exc}", 488) from exc
        mine = audio_stream(out)
        self._install(make_plan(mine.media_codecs[0], mine.codecs, ims_codec, stream.codecs))
        await self._start_webrtc(browser, "client" if setup == "active" else "server")
        return out

    # -- terminating: IMS offers ---------------------------------------------------------------

    async def offer_from_ims(self, offer: SessionDescription) -> SessionDescription:
        self._check()
        stream = audio_stream(offer)
        codecs = webrtc_offer_codecs(stream.codecs, self.config.webrtc_codecs)
        if self.originating is None:
            self.originating = False
        await self._open_legs(controlling=True)
        self._ims_remote(stream)
        self._ims_offer = offer
        return self._offer_to_webrtc(offer, codecs)

    def _offer_to_webrtc(self, ims: SessionDescription, codecs: list[Codec]) -> SessionDescription:
        """The WebRTC offer for the IMS side's media ``ims`` (its offer, or its answer to ours)."""
        assert self.webrtc is not None
        setup: Setup = "actpass"
        if self._dtls_role is not None:  # a re-offer keeps the established DTLS roles (RFC 8842 §5.5)
            setup = "active" if self._dtls_role == "client" else "passive"
        try:
            out = ims_to_webrtc(
                ims, self.webrtc.local_endpoint(setup), codecs=[replace(c, rtcp_fb=()) for c in codecs]
            )
        except SdpError as exc:
            raise MediaError(f"cannot write the WebRTC offer: {exc}", 488) from exc
        self._webrtc_offer = out
        return out

    # -- terminating, the IMS offered nothing: the IWF offers (RFC 3262 §5) ----------------------

    async def offer_to_ims(self) -> SessionDescription:
        """The IWF's own IMS-side offer: the ``ims_codecs`` of the config that it relays or
        transcodes to a browser's codecs (config order), telephone-event at their clock rates
        (RFC 4733 §7.1.1), on the IMS leg's RTP endpoint (RTP/SAVP with SDES when ``ims_srtp``).
        The WebRTC leg is ICE controlling: the IWF offers to the WIC later (RFC 8445 §6.1.1)."""
        self._check()
        if self.originating is not None:
            raise MediaError("offer_to_ims on a session that already has an offer/answer", 500)
        codecs = own_ims_codecs(self.config.ims_codecs)
        self.originating = False
        await self._open_legs(controlling=True)
        assert self.ims is not None
        offer = own_ims_offer(self.ims.endpoint, codecs, self.config.ptime_ms)
        if self.config.ims_srtp:
            self._add_crypto(offer, 0, "AES_CM_128_HMAC_SHA1_80", 1)
        self._own_offer = offer
        self._ims_offered = True
        return offer

    async def answer_from_ims_to_own_offer(self, answer: SessionDescription) -> SessionDescription:
        """The IMS's answer to :meth:`offer_to_ims` in (its media: remote address, codec, SDES key);
        the WebRTC offer for the WIC out, with the answer's codecs (relayed) and the
        ``webrtc_codecs`` the IWF transcodes to. The WIC's answer then goes to
        :meth:`answer_from_webrtc`, planned against the IMS's answer."""
        self._check()
        own = self._own_offer
        if own is None or self.webrtc is None:
            raise MediaError("IMS answer without an offer of the IWF", 500)
        stream = audio_stream(answer)
        offered = {c.encoding for c in audio_stream(own).codecs}
        chosen = next((c for c in stream.codecs if not c.is_auxiliary), None)
        if chosen is None or chosen.encoding not in offered:  # RFC 3264 §6.1: one of the offered
            raise MediaError("the IMS answer's codec was not in the IWF's offer (RFC 3264 §6.1)", 488)
        self._ims_remote(stream)
        self._own_offer = None
        self._ims_offer = answer  # the IMS side's negotiated media: answer_from_webrtc plans on it
        return self._offer_to_webrtc(answer, webrtc_offer_codecs(stream.codecs, self.config.webrtc_codecs))

    async def answer_from_webrtc(self, answer: SessionDescription) -> SessionDescription:
        self._check()
        if self._ims_offer is None or self._webrtc_offer is None or self.ims is None:
            raise MediaError("WebRTC answer without an IMS offer", 500)
        stream = audio_stream(answer)
        if stream.ice is None or not stream.fingerprints:
            raise MediaError("WebRTC answer without ICE credentials or DTLS fingerprint", 488)
        ims = audio_stream(self._ims_offer)
        webrtc_codec, ims_codec = plan_from_answer(stream.codecs, ims.codecs)
        chosen: list[Codec] = [ims_codec]
        te = event_for(ims.codecs, ims_codec.clock_rate)
        if te is not None:
            chosen.append(te)
        try:
            out = webrtc_to_ims(answer, self.ims.endpoint, codecs=chosen, offer=self._ims_offer)
        except SdpError as exc:
            raise MediaError(f"cannot write the IMS answer: {exc}", 488) from exc
        mine = audio_stream(out)
        if ims.proto in _SAVP:
            offered = next(c for c in ims.crypto if c.suite in SDES_SUITES)
            self._add_crypto(out, mine.index, offered.suite, offered.tag)
        self._sends[LegSide.WEBRTC] = stream.sends
        self._install(make_plan(webrtc_codec, stream.codecs, mine.media_codecs[0], mine.codecs))
        # The answerer's a=setup says who is DTLS client (RFC 8842 §5.3).
        await self._start_webrtc(stream, "server" if stream.setup == "active" else "client")
        return out

    async def _start_webrtc(self, remote: AudioStream, role: DtlsRole) -> None:
        webrtc = self.webrtc
        assert webrtc is not None and remote.ice is not None
        if self._dtls_role is None:
            self._dtls_role = role
        await webrtc.set_remote(
            remote.ice.ufrag, remote.ice.pwd, remote.candidates, remote.fingerprints, role, remote.ice_lite
        )
        webrtc.start()

    # -- the rest of the API -----------------------------------------------------------------

    async def confirm(self) -> None:
        self._check()
        if self.plan is None:
            raise MediaError("confirm before the offer/answer completed", 500)
        self.confirmed = True
        now = time.monotonic()
        for leg in (self.webrtc, self.ims):
            if leg is not None and leg.last_rx is None:
                leg.last_rx = now  # the media timeout counts from the answer

    async def release(self, reason: str = "") -> None:
        if self.released:
            return
        self.released = True
        self.release_reason = reason or "released"
        self._to_ims = self._to_webrtc = None
        ims, webrtc = self.ims, self.webrtc
        if ims is not None:
            ims.close()
            ims.sink = None
        if webrtc is not None:
            await webrtc.close()
            webrtc.sink = None
            webrtc.on_failure = _ignore_failure
        self.iwf._forget(self.session_id)
        # No reference cycle is left (legs -> our bound methods -> us; the caller's on_event
        # closure): a released session is freed by reference counting alone.
        self.on_event = None

    def stats(self) -> list[LegStats]:
        return [leg.stats() for leg in (self.webrtc, self.ims) if leg is not None]

    def tick(self, now: float) -> None:
        """IWF timer: RTCP reports and the media timeout."""
        for leg in (self.webrtc, self.ims):
            if leg is None or self.plan is None:
                continue
            if leg is self.webrtc and self.webrtc is not None and self.webrtc._tx is None:
                continue
            if leg.rtcp_due(now):
                leg.send_rtcp(now)
            if (
                self.confirmed
                and not leg.timed_out
                and self._sends[leg.side]
                and leg.last_rx is not None
                and now - leg.last_rx > self.config.media_timeout
            ):
                leg.timed_out = True
                self._emit(
                    MediaEventKind.MEDIA_TIMEOUT,
                    leg.side,
                    f"no media from the {leg.side.value} side for {self.config.media_timeout:g} s",
                )


class EmbeddedMediaIWF:
    """The in-process media IWF (implements :class:`~.api.MediaIWF`)."""

    def __init__(
        self, config: EmbeddedConfig | None = None, certificate: DtlsCertificate | None = None
    ) -> None:
        self.config = config or EmbeddedConfig()
        self.ports = PortAllocator(self.config.port_min, self.config.port_max)
        self.certificate = certificate or DtlsCertificate.generate()
        self._sessions: dict[str, EmbeddedSession] = {}
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._timer is None:
            self._timer = asyncio.create_task(self._run_timer())

    async def close(self) -> None:
        for session in list(self._sessions.values()):
            await session.release("media IWF closing")
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def create_session(
        self, session_id: str, on_event: Callable[[MediaEvent], None] | None = None
    ) -> EmbeddedSession:
        if session_id in self._sessions:
            raise MediaError(f"media session {session_id} exists", 500)
        limit = self.config.max_sessions
        if limit is not None and len(self._sessions) >= limit:
            raise MediaError("media session limit reached", 503)
        if self.ports.capacity - len(self.ports.in_use) < 3:
            raise MediaError("no free media port", 503)
        session = EmbeddedSession(self, session_id, on_event)
        self._sessions[session_id] = session
        return session

    def sessions(self) -> list[str]:
        return list(self._sessions)

    def session(self, session_id: str) -> EmbeddedSession | None:
        return self._sessions.get(session_id)

    def _forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_timer(self) -> None:
        while True:
            await asyncio.sleep(self.config.timer_interval)
            self._tick(time.monotonic())

    def _tick(self, now: float) -> None:
        # a function of its own: a loop variable left in _run_timer's frame would keep the last
        # session ticked alive while the timer sleeps (after its release)
        for session in list(self._sessions.values()):
            try:
                session.tick(now)
            except Exception:
                log.exception("media timer failed for %s", session.session_id)
