"""The rtpengine backend of the media IWF: :class:`~webims.media.api.MediaIWF` on rtpengine's ng protocol.

rtpengine (Sipwise; Debian ``rtpengine-daemon``) terminates ICE, DTLS-SRTP and
rtcp-mux toward the WIC, plain RTP/AVP toward the IMS, and transcodes (Opus,
G.711, G.722, AMR, AMR-WB with ``libavcodec-extra``) when the two sides share no
codec — the eIMS-AGW / IWF of seed 004 §6.X.2.3.3-4 and TS 23.228 Annex U.

One webims session is one rtpengine call (``call-id`` = prefix + session id) with
two monologues, tagged ``webrtc`` (the WIC's leg) and ``ims``.  Mapping of the API
(the ng keys are rtpengine's ``docs/ng_control_protocol.md``):

===================== =====================================================================
API call              ng request
===================== =====================================================================
offer_from_webrtc     ``offer`` from-tag=webrtc: ``transport-protocol=RTP/AVP``, ``ICE=remove``,
                      ``rtcp-mux=[demux]``, ``SDES=[off]``, codec transcode/mask toward the IMS
answer_from_ims       ``answer`` from-tag=webrtc, to-tag=ims (rtpengine restores ICE/DTLS/mux
                      toward the WIC by itself)
offer_from_ims        ``offer`` from-tag=ims: ``transport-protocol=UDP/TLS/RTP/SAVPF``,
                      ``ICE=force``, ``rtcp-mux=[offer, require]``, ``SDES=[off]``,
                      ``generate-mid``, DTLS ``actpass`` (RFC 8842 §5.2), codecs for browsers
answer_from_webrtc    ``answer`` from-tag=ims, to-tag=webrtc (plain RTP/AVP back toward the IMS)
confirm               nothing to tell rtpengine: it forwards both ways once answered
release               ``query`` (final statistics) then ``delete``
refresh_stats         ``query``; its per-stream counters become :class:`LegStats`
===================== =====================================================================

Re-INVITEs/UPDATEs use the same calls with the other tag as ``to-tag``.  The SDP
rtpengine returns is tidied with :mod:`webims.sdp`: on the IMS side the WebRTC-only
attributes rtpengine passes through (msid, ssrc, mid, rtcp-fb, BUNDLE...) are
removed; on the WebRTC side the RFC 3312 precondition attributes (the gateway does
preconditions with the IMS itself, TS 23.228 §5.6.4/§5.7.4 NI-O/NI-T).

Failures: rtpengine's ``error-reason`` becomes a :class:`MediaError` with that
reason (488 for SDP/codec trouble, 503 for limits/ports, 500 otherwise); no answer
within the retransmission policy (:class:`~webims.media.ng.RetransmitPolicy`,
4 s by default) is a ``MediaError(503)`` naming rtpengine's address.  When the
offer that creates the call fails, the call is deleted (best effort), so nothing
leaks on rtpengine.

:class:`LegStats` from ``query``: ``packets_received``/``bytes_received`` of a leg
are rtpengine's counters of the RTP streams of that monologue (what the peer sent
it); ``packets_sent``/``bytes_sent`` are the other leg's received counters (what
rtpengine forwarded; exact for pass-through, a close estimate when transcoding).
Loss, jitter and RTT come from the RTCP-derived SSRC section when the peers send
RTCP; the MOS is :func:`estimate_mos` on those.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..sdp import SdpError, SessionDescription, parse
from .api import LegSide, LegStats, MediaError, MediaEvent, MediaEventKind, estimate_mos
from .ng import NgError, NgErrorReply, NgTimeout, RetransmitPolicy
from .ng_client import NgClient

__all__ = ["CodecPolicy", "RtpengineIWF", "RtpengineSession", "error_status", "leg_stats_from_query"]

log = logging.getLogger(__name__)

WEBRTC_TAG = "webrtc"
IMS_TAG = "ims"

#: Attributes a plain RTP/AVP peer has no use for (RFC 8830 msid, RFC 5576 ssrc, RFC 8843 BUNDLE/mid,
#: RFC 4585 rtcp-fb, RFC 8285 extmap, RFC 5506 rsize, ICE and DTLS left at session level).
_IMS_DROP_SESSION = ("msid-semantic", "extmap-allow-mixed", "group", "ice-options", "ice-lite",
                     "ice-ufrag", "ice-pwd", "fingerprint", "setup")  # fmt: skip
_IMS_DROP_MEDIA = ("msid", "ssrc", "ssrc-group", "mid", "rtcp-fb", "extmap", "rtcp-rsize", "ice-ufrag",
                   "ice-pwd", "ice-options", "candidate", "end-of-candidates", "fingerprint", "setup",
                   "extmap-allow-mixed")  # fmt: skip
#: RFC 3312 preconditions stay between the gateway and the IMS.
_WEBRTC_DROP_MEDIA = ("curr", "des", "conf")


@dataclass(frozen=True)
class CodecPolicy:
    """Codec rules per direction (rtpengine's ``codec`` dictionary: transcode = add if
    missing, transcoding when the far side picks it; mask = hide from the far side but keep
    it on the side that offered it).

    Defaults: the IMS always gets PCMU and PCMA offered and never Opus/RED; the WIC always
    gets Opus and never AMR/AMR-WB/EVS (no browser decodes them).  For AMR-WB toward the
    IMS put ``"AMR-WB"`` first in ``ims_transcode`` (needs Debian's ``libavcodec-extra``).
    """

    ims_transcode: tuple[str, ...] = ("PCMU", "PCMA")
    ims_mask: tuple[str, ...] = ("opus", "red")
    webrtc_transcode: tuple[str, ...] = ("opus",)
    webrtc_mask: tuple[str, ...] = ("AMR-WB", "AMR", "EVS")

    @staticmethod
    def _codec_key(transcode: Sequence[str], mask: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if transcode:
            out["transcode"] = list(transcode)
        if mask:
            out["mask"] = list(mask)
        return out

    def toward_ims(self) -> dict[str, Any]:
        return self._codec_key(self.ims_transcode, self.ims_mask)

    def toward_webrtc(self) -> dict[str, Any]:
        return self._codec_key(self.webrtc_transcode, self.webrtc_mask)


_SDP_REASONS = ("sdp", "payload type", "codec", "rtcp attribute", "ptype")
_LIMIT_REASONS = ("ran out of ports", "limit", "exceeded")


def error_status(reason: str) -> int:
    """The SIP status for an rtpengine ``error-reason``: 503 limits/ports, 488 SDP/codec, 500 else."""
    low = reason.lower()
    if any(word in low for word in _LIMIT_REASONS):
        return 503
    if any(word in low for word in _SDP_REASONS):
        return 488
    return 500


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _tag_counters(tag: dict[str, Any]) -> tuple[int, int]:
    """(packets, bytes) received on the RTP streams of one monologue of a ``query`` answer."""
    packets = octets = 0
    for media in tag.get("medias", []) or []:
        if not isinstance(media, dict):
            continue
        for stream in media.get("streams", []) or []:
            if not isinstance(stream, dict) or "RTP" not in (stream.get("flags") or []):
                continue
            stats = stream.get("stats") or {}
            packets += _as_int(stats.get("packets"))
            octets += _as_int(stats.get("bytes"))
    return packets, octets


def _ssrc_quality(body: dict[str, Any], tag: str) -> tuple[float, float, float | None]:
    """(fraction lost, jitter ms, RTT ms) reported by RTCP for the SSRCs a monologue sends, if any."""
    lost: list[float] = []
    jitter: list[float] = []
    rtt: list[float] = []
    ssrcs = body.get("SSRC") or {}
    for entry in ssrcs.values() if isinstance(ssrcs, dict) else ():
        if not isinstance(entry, dict) or entry.get("tag") != tag:
            continue
        mos = entry.get("average MOS")
        if not isinstance(mos, dict) or not mos.get("samples"):
            continue
        lost.append(_as_int(mos.get("packet loss")) / 100.0)
        jitter.append(float(_as_int(mos.get("jitter"))))
        if mos.get("round-trip time"):
            rtt.append(_as_int(mos.get("round-trip time")) / 1000.0)  # rtpengine reports microseconds
    n = len(lost)
    return (
        sum(lost) / n if n else 0.0,
        sum(jitter) / n if n else 0.0,
        sum(rtt) / len(rtt) if rtt else None,
    )


def leg_stats_from_query(body: dict[str, Any], codecs: dict[LegSide, str] | None = None) -> list[LegStats]:
    """Both legs' :class:`LegStats` from an ng ``query`` (or ``delete``) answer."""
    tags = body.get("tags") or {}
    received = {
        side: _tag_counters(tags.get(tag) or {}) if isinstance(tags, dict) else (0, 0)
        for side, tag in ((LegSide.WEBRTC, WEBRTC_TAG), (LegSide.IMS, IMS_TAG))
    }
    out = []
    for side, other, tag in (
        (LegSide.WEBRTC, LegSide.IMS, WEBRTC_TAG),
        (LegSide.IMS, LegSide.WEBRTC, IMS_TAG),
    ):
        codec = (codecs or {}).get(side, "")
        fraction_lost, jitter_ms, rtt_ms = _ssrc_quality(body, tag)
        packets_in, bytes_in = received[side]
        packets_out, bytes_out = received[other]
        out.append(
            LegStats(
                side=side,
                codec=codec,
                packets_sent=packets_out,
                packets_received=packets_in,
                bytes_sent=bytes_out,
                bytes_received=bytes_in,
                packets_lost=round(fraction_lost * packets_in),
                fraction_lost=fraction_lost,
                jitter_ms=jitter_ms,
                rtt_ms=rtt_ms,
                mos=estimate_mos(fraction_lost, jitter_ms, rtt_ms, codec or "PCMU") if packets_in else 0.0,
            )
        )
    return out


def _first_codec(sdp: SessionDescription) -> str:
    """The encoding name of the first audio codec that is not an RFC 4733 event or comfort noise."""
    for media in sdp.media:
        if media.media == "audio" and not media.is_rejected:
            for codec in media.codecs:
                if codec.name.lower() not in ("telephone-event", "cn"):
                    return codec.name
    return ""


def _tidy(sdp: SessionDescription, toward: LegSide) -> SessionDescription:
    if toward is LegSide.IMS:
        sdp.remove_attributes(*_IMS_DROP_SESSION)
        for media in sdp.media:
            media.remove_attributes(*_IMS_DROP_MEDIA)
    else:
        for media in sdp.media:
            media.remove_attributes(*_WEBRTC_DROP_MEDIA)
    return sdp


class RtpengineSession:
    """One call through rtpengine (see the module docstring for the ng mapping)."""

    def __init__(
        self, iwf: RtpengineIWF, session_id: str, on_event: Callable[[MediaEvent], None] | None
    ) -> None:
        self.iwf = iwf
        self.session_id = session_id
        self.call_id = f"{iwf.call_id_prefix}{session_id}"
        self.on_event = on_event
        #: Whether rtpengine holds this call (an offer succeeded and no delete since).
        self.exists = False
        #: Whether each leg has been in an answered offer/answer exchange.
        self.answered = False
        self.confirmed = False
        self.released = False
        self._codecs: dict[LegSide, str] = {}
        self._stats: list[LegStats] = [LegStats(LegSide.WEBRTC), LegStats(LegSide.IMS)]
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<RtpengineSession {self.session_id} call-id={self.call_id} exists={self.exists}>"

    # -- the MediaSession API -----------------------------------------------------------------

    async def offer_from_webrtc(self, offer: SessionDescription) -> SessionDescription:
        params = self.iwf.offer_params_toward_ims()
        return await self._offer(WEBRTC_TAG, IMS_TAG, offer, params, LegSide.IMS)

    async def answer_from_ims(self, answer: SessionDescription) -> SessionDescription:
        return await self._answer(WEBRTC_TAG, IMS_TAG, answer, LegSide.WEBRTC)

    async def offer_from_ims(self, offer: SessionDescription) -> SessionDescription:
        params = self.iwf.offer_params_toward_webrtc()
        return await self._offer(IMS_TAG, WEBRTC_TAG, offer, params, LegSide.WEBRTC)

    async def answer_from_webrtc(self, answer: SessionDescription) -> SessionDescription:
        return await self._answer(IMS_TAG, WEBRTC_TAG, answer, LegSide.IMS)

    async def offer_to_ims(self) -> SessionDescription:
        """Not possible: rtpengine's ng ``offer`` (and ``publish``/``subscribe request``) rewrites
        an SDP it is given and has no command that makes an offer from nothing, so the gateway
        offers in its 200 instead (a delayed offer, RFC 3261 §13.2.1)."""
        self._check_usable("offer_to_ims")
        raise MediaError(
            "rtpengine cannot make an offer without a source SDP (the ng offer rewrites a given SDP)", 488
        )

    async def answer_from_ims_to_own_offer(self, answer: SessionDescription) -> SessionDescription:
        """Never reached: :meth:`offer_to_ims` makes no offer."""
        raise MediaError("no offer of the IWF to answer (rtpengine makes none)", 500)

    async def confirm(self) -> None:
        """rtpengine forwards both ways as soon as the answer is in: nothing to send."""
        self._check_usable("confirm")
        if not self.answered:
            raise MediaError("confirm before any answer", 500)
        self.confirmed = True

    async def release(self, reason: str = "") -> None:
        """ng ``delete`` (idempotent; a failure is logged, rtpengine's own timeout cleans up then)."""
        if self.released:
            return
        self.released = True
        self.iwf._forget(self)
        async with self._lock:
            if not self.exists:
                return
            self.exists = False
            try:
                if self.iwf.final_stats and self.answered:
                    # rtpengine's delete answer carries no counters: query first (final LegStats).
                    body = await self.iwf.client.request("query", {"call-id": self.call_id})
                    self._stats = leg_stats_from_query(body, self._codecs)
                await self.iwf.client.request("delete", {"call-id": self.call_id, **self.iwf.delete_params()})
            except NgError as exc:
                log.warning("rtpengine delete of %s (%s) failed: %s", self.call_id, reason or "release", exc)

    def stats(self) -> list[LegStats]:
        """The statistics of the last :meth:`refresh_stats` (or the final ones, taken at release)."""
        return list(self._stats)

    # -- additions to the API -----------------------------------------------------------------

    async def refresh_stats(self) -> list[LegStats]:
        """ng ``query`` now; updates and returns :meth:`stats`."""
        if not self.exists:
            return self.stats()
        try:
            body = await self.iwf.client.request("query", {"call-id": self.call_id})
        except NgError as exc:
            raise self._media_error(exc) from None
        self._stats = leg_stats_from_query(body, self._codecs)
        return self.stats()

    # -- internals ----------------------------------------------------------------------------

    def _check_usable(self, what: str) -> None:
        if self.released:
            raise MediaError(f"{what} on released media session {self.session_id}", 500)

    def _media_error(self, exc: NgError) -> MediaError:
        if isinstance(exc, NgErrorReply):
            return MediaError(f"rtpengine {exc.command} refused: {exc.reason}", error_status(exc.reason))
        if isinstance(exc, NgTimeout):
            return MediaError(f"rtpengine unreachable: {exc.reason}", 503)
        return MediaError(f"rtpengine {exc.command or 'request'} failed: {exc.reason}", 503)

    def _emit(self, kind: MediaEventKind, side: LegSide, detail: str = "") -> None:
        if self.on_event is not None:
            try:
                self.on_event(MediaEvent(self.session_id, kind, side, detail))
            except Exception:
                log.exception("media event handler failed for %s", self.session_id)

    async def _offer(
        self, from_tag: str, to_tag: str, sdp: SessionDescription, params: dict[str, Any], toward: LegSide
    ) -> SessionDescription:
        self._check_usable("offer")
        async with self._lock:
            creating = not self.exists
            request = {"call-id": self.call_id, "from-tag": from_tag, "sdp": sdp.to_bytes(), **params}
            if not creating:
                request["to-tag"] = to_tag
            try:
                body = await self.iwf.client.request("offer", request)
                result = _tidy(self._sdp(body, "offer"), toward)
            except (NgError, MediaError) as exc:
                if creating:
                    await self._delete_quietly()
                raise exc if isinstance(exc, MediaError) else self._media_error(exc) from None
            self.exists = True
            return result

    async def _answer(
        self, from_tag: str, to_tag: str, sdp: SessionDescription, toward: LegSide
    ) -> SessionDescription:
        self._check_usable("answer")
        async with self._lock:
            if not self.exists:
                raise MediaError(f"answer without an offer on media session {self.session_id}", 500)
            request = {
                "call-id": self.call_id, "from-tag": from_tag, "to-tag": to_tag, "sdp": sdp.to_bytes(),
                **self.iwf.answer_params(LegSide.IMS if toward is LegSide.WEBRTC else LegSide.WEBRTC),
            }  # fmt: skip
            try:
                body = await self.iwf.client.request("answer", request)
            except NgError as exc:
                raise self._media_error(exc) from None
            result = _tidy(self._sdp(body, "answer"), toward)
            self.answered = True
            answerer = LegSide.IMS if toward is LegSide.WEBRTC else LegSide.WEBRTC
            self._codecs[answerer] = _first_codec(sdp)
            self._codecs[toward] = _first_codec(result)
            return result

    def _sdp(self, body: dict[str, Any], command: str) -> SessionDescription:
        text = body.get("sdp")
        if not isinstance(text, str):
            raise MediaError(f"rtpengine {command} answer carries no SDP", 500)
        try:
            return parse(text.encode("utf-8", "surrogateescape"))
        except SdpError as exc:
            raise MediaError(f"rtpengine {command} returned SDP webims cannot parse: {exc}", 500) from None

    async def _delete_quietly(self) -> None:
        """Best-effort ``delete`` after a failed creating offer (rtpengine may hold the call anyway)."""
        try:
            await self.iwf.client.request("delete", {"call-id": self.call_id, **self.iwf.delete_params()})
        except NgError as exc:
            log.debug("cleanup delete of %s: %s", self.call_id, exc)
        self.exists = False


class RtpengineIWF:
    """A media IWF on one rtpengine daemon, reached over ng at ``address``.

    ``webrtc_interface`` / ``ims_interface``: rtpengine interface names (``--interface=NAME/IP``)
    for each side (ng ``direction``), when the WIC side and the IMS side are different networks.
    ``max_sessions``: MediaError(503) beyond it.  ``call_id_prefix`` (random by default) keeps
    several webims instances apart on one rtpengine.  ``ims_srtp``: offer RTP/SAVP with SDES
    toward the IMS instead of RTP/AVP.  ``stats_interval``: poll ``query`` for every answered
    session that often (seconds) and report ``MEDIA_TIMEOUT`` when a leg received nothing for
    ``media_timeout`` seconds, ``BACKEND_LOST`` when rtpengine no longer answers or lost the call.
    ``final_stats``: ``query`` before the ``delete`` of an answered call, so that :meth:`stats`
    keeps the final counters (one more round trip per call).
    """

    def __init__(
        self,
        address: tuple[str, int] = ("127.0.0.1", 2223),
        *,
        policy: RetransmitPolicy | None = None,
        codecs: CodecPolicy | None = None,
        webrtc_interface: str | None = None,
        ims_interface: str | None = None,
        max_sessions: int | None = None,
        call_id_prefix: str | None = None,
        ims_srtp: bool = False,
        stats_interval: float | None = None,
        media_timeout: float = 30.0,
        final_stats: bool = True,
    ) -> None:
        self.address = address
        self.client = NgClient(address[0], address[1], policy=policy)
        self.codecs = codecs or CodecPolicy()
        self.webrtc_interface = webrtc_interface
        self.ims_interface = ims_interface
        self.max_sessions = max_sessions
        self.call_id_prefix = (
            call_id_prefix if call_id_prefix is not None else f"webims-{secrets.token_hex(4)}-"
        )
        self.ims_srtp = ims_srtp
        self.stats_interval = stats_interval
        self.media_timeout = media_timeout
        self.final_stats = final_stats
        self._sessions: dict[str, RtpengineSession] = {}
        self._started = False
        self._poller: asyncio.Task[None] | None = None

    # -- ng parameters (one place, so that tests and the benchmark see what is sent) --------------

    def _direction(self, toward: LegSide) -> dict[str, Any]:
        if not (self.webrtc_interface and self.ims_interface):
            return {}
        if toward is LegSide.IMS:
            return {"direction": [self.webrtc_interface, self.ims_interface]}
        return {"direction": [self.ims_interface, self.webrtc_interface]}

    def offer_params_toward_ims(self) -> dict[str, Any]:
        """ng ``offer`` keys for a WebRTC offer going to the IMS (plain RTP, no ICE, no DTLS)."""
        params: dict[str, Any] = {
            "transport-protocol": "RTP/SAVP" if self.ims_srtp else "RTP/AVP",
            "ICE": "remove",
            "rtcp-mux": ["demux"],
            "replace": self._replace(LegSide.WEBRTC),
            "flags": ["strip-extmap"],
            **self._direction(LegSide.IMS),
        }
        if not self.ims_srtp:
            params["SDES"] = ["off"]
        codec = self.codecs.toward_ims()
        if codec:
            params["codec"] = codec
        return params

    def offer_params_toward_webrtc(self) -> dict[str, Any]:
        """ng ``offer`` keys for an IMS offer going to a WIC (ICE, DTLS-SRTP, rtcp-mux, mid)."""
        params: dict[str, Any] = {
            "transport-protocol": "UDP/TLS/RTP/SAVPF",
            "ICE": "force",
            "rtcp-mux": ["offer", "require"],
            "SDES": ["off"],
            "replace": self._replace(LegSide.IMS),
            "flags": ["generate-mid"],
            **self._direction(LegSide.WEBRTC),
        }
        codec = self.codecs.toward_webrtc()
        if codec:
            params["codec"] = codec
        return params

    def answer_params(self, source: LegSide) -> dict[str, Any]:
        """ng ``answer`` keys for an answer coming from ``source``."""
        return {"replace": self._replace(source)}

    @staticmethod
    def _replace(source: LegSide) -> list[str]:
        """``replace``: our origin and c= (RFC 3264 §8: the version goes up when the SDP changes);
        from a WIC also ``zero-address``: JSEP writes ``c=IN IP4 0.0.0.0`` when ICE decides
        (RFC 8829 §5.2.1, mDNS candidates), which rtpengine would otherwise pass on as an
        RFC 2543 hold."""
        replace = ["origin", "session-connection", "SDP-version"]
        if source is LegSide.WEBRTC:
            replace.append("zero-address")
        return replace

    def delete_params(self) -> dict[str, Any]:
        return {"delete-delay": 0}

    # -- the MediaIWF API ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the ng socket and ``ping``; MediaError(503) if rtpengine does not answer."""
        await self.client.start()
        try:
            await self.client.ping()
        except NgError as exc:
            await self.client.close()
            raise MediaError(f"rtpengine unreachable: {exc.reason}", 503) from None
        self._started = True
        if self.stats_interval and self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="rtpengine-stats")

    async def close(self) -> None:
        """Release every session (ng ``delete``) and close the ng socket."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        await asyncio.gather(*(s.release("iwf closed") for s in list(self._sessions.values())))
        self._started = False
        await self.client.close()

    async def create_session(
        self, session_id: str, on_event: Callable[[MediaEvent], None] | None = None
    ) -> RtpengineSession:
        if not self._started:
            raise MediaError("rtpengine IWF not started", 503)
        if session_id in self._sessions:
            raise MediaError(f"media session {session_id} exists already", 500)
        if self.max_sessions is not None and len(self._sessions) >= self.max_sessions:
            raise MediaError(f"rtpengine IWF at its limit of {self.max_sessions} sessions", 503)
        session = RtpengineSession(self, session_id, on_event)
        self._sessions[session_id] = session
        return session

    def sessions(self) -> list[str]:
        return list(self._sessions)

    def _forget(self, session: RtpengineSession) -> None:
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]

    # -- supervision ----------------------------------------------------------------------------

    async def _poll(self) -> None:
        assert self.stats_interval
        loop = asyncio.get_running_loop()
        last_change: dict[tuple[str, LegSide], tuple[int, float]] = {}
        reported: set[tuple[str, LegSide]] = set()
        while True:
            await asyncio.sleep(self.stats_interval)
            for session in [s for s in self._sessions.values() if s.answered and s.exists]:
                try:
                    stats = await session.refresh_stats()
                except MediaError as exc:
                    if session.exists and not session.released:
                        session._emit(MediaEventKind.BACKEND_LOST, LegSide.WEBRTC, exc.reason)
                        session._emit(MediaEventKind.BACKEND_LOST, LegSide.IMS, exc.reason)
                    continue
                now = loop.time()
                for leg in stats:
                    key = (session.session_id, leg.side)
                    count, since = last_change.get(key, (-1, now))
                    if leg.packets_received != count:
                        last_change[key] = (leg.packets_received, now)
                        reported.discard(key)
                    elif session.confirmed and now - since >= self.media_timeout and key not in reported:
                        reported.add(key)
                        session._emit(
                            MediaEventKind.MEDIA_TIMEOUT, leg.side, f"no RTP for {now - since:.0f} s"
                        )
            live = set(self._sessions)
            for key in [k for k in last_change if k[0] not in live]:
                del last_change[key]
                reported.discard(key)
