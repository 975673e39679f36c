"""The rtpengine backend against a real rtpengine (Debian rtpengine-daemon, userspace, loopback).

Signalling and SDP shape: browser fixtures in, what rtpengine gives back checked
field by field (RTP/AVP without ICE/DTLS toward the IMS; ICE, DTLS and rtcp-mux
toward the WIC; transcoding codecs); failures: rtpengine's own errors, an
unreachable or silent rtpengine (MediaError 503), no call left behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import pytest

from webims.media.api import LegSide, MediaError, MediaIWF, MediaSession
from webims.media.ng import RetransmitPolicy, decode_message
from webims.media.rtpengine import CodecPolicy, RtpengineIWF, error_status
from webims.sdp import (
    OPUS,
    PCMU,
    TELEPHONE_EVENT_8000,
    TELEPHONE_EVENT_48000,
    Attribute,
    Codec,
    Connection,
    MediaAnswer,
    Origin,
    SessionDescription,
    create_answer,
    parse,
)
from webims.testing.rtpengine import Rtpengine, codec_support, free_udp_port

FIXTURES = Path(__file__).resolve().parents[1] / "sdp" / "fixtures"
ICE_AND_DTLS = (
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "candidate",
    "end-of-candidates",
    "fingerprint",
    "setup",
)
WEBRTC_ONLY = ("msid", "ssrc", "ssrc-group", "mid", "extmap", "rtcp-fb", "rtcp-rsize", "rtcp-mux")


def fixture(name: str) -> SessionDescription:
    return parse((FIXTURES / name).read_bytes())


@pytest.fixture(scope="module")
def rtpe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rtpengine]:
    with Rtpengine(tmp_path_factory.mktemp("rtpengine")) as daemon:
        yield daemon


@pytest.fixture
async def iwf(rtpe: Rtpengine) -> AsyncIterator[RtpengineIWF]:
    backend = RtpengineIWF(rtpe.ng_address)
    await backend.start()
    yield backend
    await backend.close()
    assert not [c for c in rtpe.calls() if c.startswith(backend.call_id_prefix)], rtpe.log_tail()


def ims_answer(offer: SessionDescription, codecs: list[Codec], port: int = 20000) -> SessionDescription:
    """An IMS endpoint's RFC 3264 answer on 127.0.0.1 choosing among ``codecs``."""
    origin = Origin("ims", "82645", 82646, "IN", "IP4", "127.0.0.1")
    return create_answer(
        offer, [MediaAnswer(codecs, port, Connection("127.0.0.1"))] + [None] * (len(offer.media) - 1),
        origin=origin,
    )  # fmt: skip


def browser_answer(offer: SessionDescription) -> SessionDescription:
    """Chrome's answer (ICE, DTLS active, rtcp-mux, mDNS candidate from the fixture) to ``offer``."""
    chrome = fixture("chrome_answer_audio.sdp")
    media = chrome.media[0]
    keep = ("candidate", "ice-ufrag", "ice-pwd", "ice-options", "fingerprint", "setup", "rtcp-mux")
    attributes = [a for a in media.attributes if a.name in keep]
    return create_answer(
        offer,
        [MediaAnswer([OPUS, PCMU, TELEPHONE_EVENT_48000, TELEPHONE_EVENT_8000], 61527, Connection("0.0.0.0"),
                     attributes=attributes, proto="UDP/TLS/RTP/SAVPF")],
        origin=chrome.origin,
    )  # fmt: skip


def names(sdp: SessionDescription, index: int = 0) -> list[str]:
    return [c.name for c in sdp.media[index].codecs]


def attribute_names(sdp: SessionDescription) -> set[str]:
    out = {a.name for a in sdp.attributes}
    for media in sdp.media:
        out |= {a.name for a in media.attributes}
    return out


def assert_ims_side(sdp: SessionDescription, rtpe: Rtpengine) -> None:
    media = sdp.media[0]
    assert media.proto == "RTP/AVP"
    assert sdp.connection_for(media) == Connection("127.0.0.1")
    assert rtpe.port_min <= media.port <= rtpe.port_max
    assert not attribute_names(sdp) & set(ICE_AND_DTLS + WEBRTC_ONLY), sdp
    assert not media.crypto
    assert "group" not in {a.name for a in sdp.attributes}


def assert_webrtc_side(sdp: SessionDescription, rtpe: Rtpengine, setup: set[str]) -> None:
    media = sdp.media[0]
    assert media.proto == "UDP/TLS/RTP/SAVPF"
    assert media.rtcp_mux
    credentials = sdp.ice_credentials_for(media)
    assert credentials is not None and len(credentials.pwd) >= 22  # RFC 8839 §5.4: 128 bits
    [candidate] = [c for c in media.candidates if c.component == 1]
    assert (candidate.address, candidate.transport.upper(), candidate.type) == ("127.0.0.1", "UDP", "host")
    assert rtpe.port_min <= candidate.port <= rtpe.port_max
    [fingerprint] = sdp.fingerprints_for(media)
    assert fingerprint.algorithm == "sha-256" and len(fingerprint.value.split(":")) == 32
    assert sdp.setup_for(media) in setup
    assert not media.crypto


async def test_originating_offer_answer_delete(iwf: RtpengineIWF, rtpe: Rtpengine) -> None:
    session = await iwf.create_session("orig-1")
    ims_offer = await session.offer_from_webrtc(fixture("chrome_offer_audio.sdp"))
    assert_ims_side(ims_offer, rtpe)
    # Chrome offered G722, PCMU, PCMA: passed through; opus and RED masked from the IMS.
    assert names(ims_offer)[:3] == ["G722", "PCMU", "PCMA"]
    assert not {"opus", "red"} & {n.lower() for n in names(ims_offer)}
    assert session.call_id in rtpe.calls()

    webrtc_answer = await session.answer_from_ims(ims_answer(ims_offer, [PCMU, TELEPHONE_EVENT_8000]))
    assert_webrtc_side(webrtc_answer, rtpe, {"active", "passive"})
    # The browser's own payload types come back (PCMU 0, telephone-event/8000 126).
    assert [(c.payload_type, c.name) for c in webrtc_answer.media[0].codecs] == [
        (0, "PCMU"), (126, "telephone-event")
    ]  # fmt: skip
    await session.confirm()
    assert iwf.sessions() == ["orig-1"]

    await session.release("bye")
    await session.release("bye again")  # idempotent
    assert iwf.sessions() == []
    assert session.call_id not in rtpe.calls()


async def test_opus_only_browser_is_transcoded_to_pcmu(iwf: RtpengineIWF, rtpe: Rtpengine) -> None:
    offer = fixture("chrome_offer_audio.sdp")
    offer.media[0].set_codecs([c for c in offer.media[0].codecs if c.name in ("opus", "telephone-event")])
    session = await iwf.create_session("opus-only")
    ims_offer = await session.offer_from_webrtc(offer)
    assert_ims_side(ims_offer, rtpe)
    assert "PCMU" in names(ims_offer) and "PCMA" in names(ims_offer)
    assert "opus" not in names(ims_offer)
    webrtc_answer = await session.answer_from_ims(ims_answer(ims_offer, [PCMU]))
    assert_webrtc_side(webrtc_answer, rtpe, {"active", "passive"})
    assert names(webrtc_answer)[0] == "opus"
    assert webrtc_answer.media[0].codecs[0].payload_type == 111
    await session.release()


async def test_amr_wb_toward_ims(rtpe: Rtpengine) -> None:
    support = codec_support()
    assert support.get("AMR-WB") == "fully supported", f"AMR-WB encoding needs libavcodec-extra: {support}"
    iwf = RtpengineIWF(rtpe.ng_address, codecs=CodecPolicy(ims_transcode=("AMR-WB", "PCMU")))
    await iwf.start()
    try:
        offer = fixture("chrome_offer_audio.sdp")
        offer.media[0].set_codecs([c for c in offer.media[0].codecs if c.name == "opus"])
        session = await iwf.create_session("amr-wb")
        ims_offer = await session.offer_from_webrtc(offer)
        codecs = {c.name: c for c in ims_offer.media[0].codecs}
        assert codecs["AMR-WB"].clock_rate == 16000
        assert "PCMU" in codecs and "opus" not in codecs
        webrtc_answer = await session.answer_from_ims(ims_answer(ims_offer, [codecs["AMR-WB"]]))
        assert names(webrtc_answer) == ["opus"]
    finally:
        await iwf.close()


async def test_terminating_offer_answer(iwf: RtpengineIWF, rtpe: Rtpengine) -> None:
    session = await iwf.create_session("term-1")
    volte = fixture("ims_volte_offer.sdp")
    webrtc_offer = await session.offer_from_ims(volte)
    assert_webrtc_side(webrtc_offer, rtpe, {"actpass"})  # RFC 8842 §5.2: the offerer says actpass
    media = webrtc_offer.media[0]
    assert media.mid is not None
    assert names(webrtc_offer)[0] == "opus"
    assert not {"AMR", "AMR-WB"} & set(names(webrtc_offer))
    assert not {"curr", "des", "conf"} & {a.name for a in media.attributes}

    ims_answer_sdp = await session.answer_from_webrtc(browser_answer(webrtc_offer))
    assert_ims_side(ims_answer_sdp, rtpe)
    # The answer toward the IMS picks from what the IMS offered (AMR-WB), rtpengine transcodes.
    offered = {(c.payload_type, c.name) for c in volte.media[0].codecs}
    answered = [(c.payload_type, c.name) for c in ims_answer_sdp.media[0].codecs]
    assert answered and set(answered) <= offered
    assert answered[0][1] == "AMR-WB"
    await session.confirm()
    [webrtc_stats, ims_stats] = session.stats()
    assert (webrtc_stats.side, ims_stats.side) == (LegSide.WEBRTC, LegSide.IMS)
    await session.release()


async def test_firefox_session_level_dtls_is_removed_toward_ims(iwf: RtpengineIWF, rtpe: Rtpengine) -> None:
    session = await iwf.create_session("firefox")
    ims_offer = await session.offer_from_webrtc(fixture("firefox_offer_audio_video.sdp"))
    assert_ims_side(ims_offer, rtpe)
    assert [m.media for m in ims_offer.media] == ["audio", "video"]
    assert all(m.proto == "RTP/AVP" for m in ims_offer.media)
    await session.release()


async def test_reoffers_in_both_directions(iwf: RtpengineIWF, rtpe: Rtpengine) -> None:
    session = await iwf.create_session("reinvite")
    ims_offer = await session.offer_from_webrtc(fixture("chrome_offer_audio.sdp"))
    await session.answer_from_ims(ims_answer(ims_offer, [PCMU]))
    await session.confirm()
    port = ims_offer.media[0].port

    hold = fixture("chrome_offer_audio.sdp")
    hold.media[0].direction = "sendonly"
    hold_offer = await session.offer_from_webrtc(hold)
    assert hold_offer.media[0].direction == "sendonly"
    assert hold_offer.media[0].port == port  # same call, same IMS-side port
    assert_ims_side(hold_offer, rtpe)

    # The IMS re-offers (e.g. resume from the far end) on the same call.
    resume = ims_answer(hold_offer, [PCMU])
    resume.media[0].direction = "sendrecv"
    webrtc_offer = await session.offer_from_ims(resume)
    assert_webrtc_side(webrtc_offer, rtpe, {"actpass", "active", "passive"})
    ims_side = await session.answer_from_webrtc(browser_answer(webrtc_offer))
    assert_ims_side(ims_side, rtpe)
    assert rtpe.calls().count(session.call_id) == 1
    await session.release()


async def test_rtpengine_error_reason_becomes_media_error(iwf: RtpengineIWF, rtpe: Rtpengine) -> None:
    session = await iwf.create_session("lost")
    ims_offer = await session.offer_from_webrtc(fixture("chrome_offer_audio.sdp"))
    rtpe.ng("delete", {"call-id": session.call_id})  # rtpengine forgets the call behind our back
    with pytest.raises(MediaError) as info:
        await session.answer_from_ims(ims_answer(ims_offer, [PCMU]))
    assert "Call-ID not found" in info.value.reason or "Unknown call" in info.value.reason, info.value.reason
    assert info.value.status == 500
    await session.release()


def test_error_status_mapping() -> None:
    assert error_status("Ran out of ports") == 503
    assert error_status("Load limit exceeded") == 503
    assert error_status("Parallel session limit reached") == 503
    assert error_status("Failed to parse SDP") == 488
    assert error_status("Incomplete SDP specification") == 488
    assert error_status("Call-ID not found or tags didn't match") == 500


async def test_api_misuse(iwf: RtpengineIWF) -> None:
    session = await iwf.create_session("misuse")
    with pytest.raises(MediaError) as info:
        await iwf.create_session("misuse")
    assert info.value.status == 500
    with pytest.raises(MediaError):
        await session.answer_from_ims(fixture("ims_mrf_pcmu_answer.sdp"))
    with pytest.raises(MediaError):
        await session.confirm()
    await session.release()
    with pytest.raises(MediaError):
        await session.offer_from_webrtc(fixture("chrome_offer_audio.sdp"))


async def test_max_sessions_is_503(rtpe: Rtpengine) -> None:
    iwf = RtpengineIWF(rtpe.ng_address, max_sessions=1)
    await iwf.start()
    try:
        await iwf.create_session("one")
        with pytest.raises(MediaError) as info:
            await iwf.create_session("two")
        assert info.value.status == 503
    finally:
        await iwf.close()
    assert iwf.sessions() == []


async def test_close_deletes_every_call(rtpe: Rtpengine) -> None:
    iwf = RtpengineIWF(rtpe.ng_address)
    await iwf.start()
    for n in range(3):
        session = await iwf.create_session(f"c{n}")
        await session.offer_from_webrtc(fixture("chrome_offer_audio.sdp"))
    assert len([c for c in rtpe.calls() if c.startswith(iwf.call_id_prefix)]) == 3
    await iwf.close()
    assert not [c for c in rtpe.calls() if c.startswith(iwf.call_id_prefix)]
    with pytest.raises(MediaError):
        await iwf.create_session("after-close")


# -- rtpengine unreachable ----------------------------------------------------------------------

FAST = RetransmitPolicy(initial_interval=0.1, max_interval=0.2, timeout=0.6)


async def test_unreachable_rtpengine_is_503_at_start() -> None:
    port = free_udp_port()  # nobody listens: ICMP port unreachable
    iwf = RtpengineIWF(("127.0.0.1", port), policy=FAST)
    with pytest.raises(MediaError) as info:
        await iwf.start()
    assert info.value.status == 503
    assert f"127.0.0.1:{port}" in info.value.reason and "did not answer 'ping'" in info.value.reason
    assert "refused" in info.value.reason.lower()


class Silent(asyncio.DatagramProtocol):
    """A UDP socket that takes ng requests and never answers."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.datagrams.append(data)


async def test_silent_rtpengine_is_retried_then_503() -> None:
    loop = asyncio.get_running_loop()
    transport, silent = await loop.create_datagram_endpoint(Silent, local_addr=("127.0.0.1", 0))
    try:
        iwf = RtpengineIWF(transport.get_extra_info("sockname")[:2], policy=FAST)
        with pytest.raises(MediaError) as info:
            await iwf.start()
        assert info.value.status == 503 and "rtpengine unreachable" in info.value.reason
    finally:
        transport.close()
    # Retransmitted with the same cookie (rtpengine would answer from its cookie cache).
    assert 2 <= len(silent.datagrams) <= len(FAST.send_times())
    assert len(set(silent.datagrams)) == 1
    assert decode_message(silent.datagrams[0])[1] == {"command": "ping"}


class DropOfferAnswers(asyncio.DatagramProtocol):
    """Between the IWF and rtpengine: forwards every request, drops rtpengine's answers to offers."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.transport: asyncio.DatagramTransport | None = None
        self.client: tuple[str | object, ...] | None = None
        self.commands: dict[bytes, str] = {}
        self.seen: list[str] = []
        self.to_rtpengine: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (asyncio's selector datagram transport is not a DatagramTransport subclass)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        cookie, body = decode_message(data)
        self.client = addr
        self.commands[cookie.encode()] = str(body["command"])
        self.seen.append(str(body["command"]))
        assert self.to_rtpengine is not None
        self.to_rtpengine.sendto(data)

    def answer(self, data: bytes) -> None:
        if self.commands.get(data.partition(b" ")[0]) == "offer":
            return
        assert self.transport is not None and self.client is not None
        self.transport.sendto(data, self.client)


class Upstream(asyncio.DatagramProtocol):
    def __init__(self, proxy: DropOfferAnswers) -> None:
        self.proxy = proxy

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.proxy.answer(data)


async def test_offer_timeout_leaves_no_call_on_rtpengine(rtpe: Rtpengine) -> None:
    loop = asyncio.get_running_loop()
    proxy = DropOfferAnswers(rtpe.ng_address)
    front, _ = await loop.create_datagram_endpoint(lambda: proxy, local_addr=("127.0.0.1", 0))
    back, _ = await loop.create_datagram_endpoint(lambda: Upstream(proxy), remote_addr=rtpe.ng_address)
    proxy.to_rtpengine = back
    iwf = RtpengineIWF(front.get_extra_info("sockname")[:2], policy=FAST)
    try:
        await iwf.start()
        session = await iwf.create_session("half-open")
        with pytest.raises(MediaError) as info:
            await session.offer_from_webrtc(fixture("chrome_offer_audio.sdp"))
        assert info.value.status == 503
        assert "did not answer 'offer'" in info.value.reason
        # rtpengine did create the call (it got the offer), and the IWF deleted it.
        assert "offer" in proxy.seen and proxy.seen[-1] == "delete"
        assert session.call_id not in rtpe.calls()
        assert not session.exists
        await session.release()
        assert iwf.sessions() == []
    finally:
        await iwf.close()
        front.close()
        back.close()


async def test_rtpengine_gone_mid_call(tmp_path: Path) -> None:
    with Rtpengine(tmp_path) as daemon:
        iwf = RtpengineIWF(daemon.ng_address, policy=FAST)
        await iwf.start()
        session = await iwf.create_session("gone")
        ims_offer = await session.offer_from_webrtc(fixture("chrome_offer_audio.sdp"))
        daemon.stop()
        with pytest.raises(MediaError) as info:
            await session.answer_from_ims(ims_answer(ims_offer, [PCMU]))
        assert info.value.status == 503 and "rtpengine unreachable" in info.value.reason
        await iwf.close()  # the delete fails quietly
        assert iwf.sessions() == []


def test_attribute_helpers_are_used_on_real_lines() -> None:
    # Guards the tidy-up rules above: the fixture really carries what must be removed.
    offer = fixture("chrome_offer_audio.sdp")
    assert {"msid", "ssrc", "mid", "extmap", "rtcp-fb"} <= attribute_names(offer)
    assert Attribute("rtcp-mux") in offer.media[0].attributes


async def test_backend_satisfies_the_media_api(rtpe: Rtpengine) -> None:
    # mypy --strict checks these assignments against the MediaIWF / MediaSession protocols.
    backend: MediaIWF = RtpengineIWF(rtpe.ng_address)
    await backend.start()
    session: MediaSession = await backend.create_session("typed")
    assert backend.sessions() == ["typed"]
    await session.release()
    await backend.close()
    assert backend.sessions() == []


async def test_no_offer_without_a_source_sdp(iwf: RtpengineIWF, rtpe: Rtpengine) -> None:
    """rtpengine's ng ``offer`` rewrites a given SDP: the IWF's own offer toward the IMS (an IMS
    INVITE without SDP requiring 100rel, RFC 3262 §5) is 488, and no call is made."""
    session = await iwf.create_session("own-offer-1")
    with pytest.raises(MediaError) as info:
        await session.offer_to_ims()
    assert info.value.status == 488 and "source SDP" in info.value.reason
    assert session.call_id not in rtpe.calls()
    with pytest.raises(MediaError):
        await session.answer_from_ims_to_own_offer(fixture("ims_volte_offer.sdp"))
    await session.release("not possible")
    assert iwf.sessions() == []
