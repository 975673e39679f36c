"""The embedded media IWF with real sockets on loopback: synthetic WebRTC and RTP peers.

The WebRTC peer does real ICE (aioice) and DTLS-SRTP; the RTP peer plain
RTP/AVP (or SDES-SRTP).  Nothing is mocked: packets cross UDP sockets.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from webims.media import (
    EmbeddedConfig,
    EmbeddedMediaIWF,
    LegSide,
    MediaError,
    MediaEvent,
    MediaEventKind,
    MediaIWF,
)
from webims.media.dtls import DtlsCertificate
from webims.media.embedded import EmbeddedSession
from webims.media.ports import PortAllocator
from webims.media.rtp import TelephoneEvent, parse_rtp
from webims.media.transcode import AudioDecoder
from webims.sdp import (
    AMR,
    OPUS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT_8000,
    TELEPHONE_EVENT_48000,
    Codec,
    SessionDescription,
)
from webims.testing.media_peers import RtpPeer, WebRtcPeer, rms


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


@dataclass
class Env:
    iwf: EmbeddedMediaIWF
    peers: PortAllocator
    events: list[MediaEvent] = field(default_factory=list)

    async def session(self, name: str = "call-1") -> EmbeddedSession:
        return await self.iwf.create_session(name, self.events.append)

    def kinds(self) -> list[MediaEventKind]:
        return [e.kind for e in self.events]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    iwf = EmbeddedMediaIWF(
        EmbeddedConfig(
            port_min=42000,
            port_max=42099,
            media_timeout=1.0,
            timer_interval=0.1,
            ice_timeout=3.0,
            dtls_timeout=3.0,
        )
    )
    await iwf.start()
    e = Env(iwf, PortAllocator(43000, 43099))
    yield e
    await iwf.close()
    assert iwf.sessions() == []
    assert iwf.ports.in_use == frozenset()


async def originate(
    env: Env, browser: list[Codec], ims: list[Codec], name: str = "call-1"
) -> tuple[EmbeddedSession, WebRtcPeer, RtpPeer]:
    session = await env.session(name)
    web = WebRtcPeer(env.peers)
    rtp = RtpPeer(env.peers)
    await rtp.open()
    ims_offer = await session.offer_from_webrtc(await web.offer(browser))
    answer = await session.answer_from_ims(rtp.answer(ims_offer, ims))
    await web.accept(answer)
    await session.confirm()
    assert await web.connected()
    return session, web, rtp


async def close_peers(*peers: WebRtcPeer | RtpPeer) -> None:
    for p in peers:
        if isinstance(p, WebRtcPeer):
            await p.close()
        else:
            p.close()


def decoded_rms(codec: Codec, packets: list[bytes]) -> float:
    decoder = AudioDecoder(codec, 8000 if codec.name != "opus" else 16000)
    media = [p for p in packets if p[1] & 0x7F == codec.payload_type]
    pcm = b"".join(decoder.decode(parse_rtp(p).payload) for p in media[5:])
    return rms(pcm)


async def test_pcmu_relayed_without_decoding(env: Env) -> None:
    session, web, rtp = await originate(env, [PCMU, TELEPHONE_EVENT_8000], [PCMU, TELEPHONE_EVENT_8000])
    assert session.plan is not None and not session.plan.transcode
    sent = await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0, freq=1000))
    await until(lambda: rtp.recorder.count >= sent[0] and web.recorder.count >= sent[1])
    # Same payload bytes, rewritten header: the IWF's SSRC on the IMS leg, PT of the IMS answer.
    web_frames = {f for f, _ in web.tone_frames()}
    assert all(parse_rtp(p).payload in web_frames for p in rtp.received)
    assert {parse_rtp(p).ssrc for p in rtp.received} == {session.ims.out.ssrc}  # type: ignore[union-attr]
    assert {parse_rtp(p).payload_type for p in web.received} == {0}
    webrtc_stats, ims_stats = session.stats()
    assert webrtc_stats.codec == ims_stats.codec == "PCMU"
    assert webrtc_stats.packets_received == sent[0] and ims_stats.packets_sent == sent[0]
    assert ims_stats.packets_received == sent[1] and webrtc_stats.packets_sent == sent[1]
    assert webrtc_stats.packets_lost == 0 and 4.0 < webrtc_stats.mos <= 4.5
    await session.release("done")
    await close_peers(web, rtp)


async def test_opus_transcoded_to_pcmu_and_back(env: Env) -> None:
    opus_te = TELEPHONE_EVENT_48000
    session, web, rtp = await originate(env, [OPUS, opus_te], [PCMU, TELEPHONE_EVENT_8000])
    assert session.plan is not None and session.plan.transcode
    assert session.plan.webrtc.name == "opus" and session.plan.ims.name == "PCMU"
    await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0))
    await until(lambda: rtp.recorder.count >= 45 and web.recorder.count >= 45)
    assert {p[1] & 0x7F for p in rtp.received} == {0}
    assert {p[1] & 0x7F for p in web.received} == {OPUS.payload_type}
    assert decoded_rms(PCMU, rtp.received) > 2000  # the 440 Hz tone (amplitude 8000 -> rms ~5600)
    assert decoded_rms(OPUS, web.received) > 2000
    # Opus timestamps step 960 per 20 ms, PCMU 160 (RFC 7587 §4.1, RFC 3551).
    ts = [parse_rtp(p).timestamp for p in web.received[:10]]
    assert {(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(ts)} == {960}
    await session.release()
    await close_peers(web, rtp)


async def test_dtmf_relayed_and_reported(env: Env) -> None:
    chrome_te = Codec(126, "telephone-event", 8000, None, "0-15")  # Chrome's payload type
    session, web, rtp = await originate(env, [PCMU, chrome_te], [PCMU, TELEPHONE_EVENT_8000])
    assert session.plan is not None and session.plan.ims_event is not None
    ims_te = session.plan.ims_event.payload_type
    web.send_event(5, 126, 8000)
    web.send_event(11, 126, 8000)
    await until(lambda: len([e for e in env.events if e.kind is MediaEventKind.DTMF]) == 2)
    dtmf = [(e.detail, e.side) for e in env.events if e.kind is MediaEventKind.DTMF]
    assert dtmf == [("5", LegSide.WEBRTC), ("#", LegSide.WEBRTC)]
    await until(lambda: sum(1 for p in rtp.received if p[1] & 0x7F == ims_te) == 12)
    events = [TelephoneEvent.parse(parse_rtp(p).payload) for p in rtp.received]
    assert [e.event for e in events if e.end] == [5, 5, 5, 11, 11, 11]
    assert max(e.duration for e in events if e.event == 5) == 640  # 4 x 20 ms at 8 kHz
    # And from the IMS side toward the browser.
    rtp.send_event(1, ims_te, 8000)
    await until(lambda: any(e.detail == "1" and e.side is LegSide.IMS for e in env.events))
    await until(lambda: any(p[1] & 0x7F == 126 for p in web.received))
    await session.release()
    await close_peers(web, rtp)


async def test_dtmf_translated_between_clock_rates(env: Env) -> None:
    session, web, rtp = await originate(env, [OPUS, TELEPHONE_EVENT_48000], [PCMU, TELEPHONE_EVENT_8000])
    web.send_event(9, TELEPHONE_EVENT_48000.payload_type, 48000)
    await until(lambda: any(p[1] & 0x7F == 101 and TelephoneEvent.parse(p[12:]).end for p in rtp.received))
    events = [TelephoneEvent.parse(p[12:]) for p in rtp.received if p[1] & 0x7F == 101]
    assert max(e.duration for e in events) == 640  # 3840 at 48 kHz -> 640 at 8 kHz (RFC 4733 §2.5.1.2)
    assert {e.event for e in events} == {9}
    await session.release()
    await close_peers(web, rtp)


async def test_terminating_call_transcodes_amr_for_the_browser(env: Env) -> None:
    session = await env.session("mt-1")
    rtp, web = RtpPeer(env.peers), WebRtcPeer(env.peers)
    await rtp.open()
    offer = await session.offer_from_ims(rtp.offer([AMR, TELEPHONE_EVENT_8000]))
    offered = [c.name for c in offer.media[0].codecs]
    assert offered[:2] == ["opus", "PCMU"] and "AMR" not in offered  # browsers take no AMR
    ims_answer = await session.answer_from_webrtc(await web.answer(offer, [OPUS, TELEPHONE_EVENT_48000]))
    rtp.take(ims_answer)
    assert [c.name for c in ims_answer.media[0].codecs] == ["AMR", "telephone-event"]
    await session.confirm()
    assert await web.connected()
    await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0))
    await until(lambda: rtp.recorder.count >= 45 and web.recorder.count >= 45)
    assert decoded_rms(AMR, rtp.received) > 1500
    assert decoded_rms(OPUS, web.received) > 1500
    await session.release()
    await close_peers(web, rtp)


async def test_terminating_pcma_relayed_with_sdes_srtp(env: Env) -> None:
    session = await env.session("mt-2")
    rtp, web = RtpPeer(env.peers), WebRtcPeer(env.peers)
    await rtp.open()
    ims_offer = rtp.offer([PCMA])
    ims_offer.media[0].proto = "RTP/SAVP"
    ims_offer.media[0].add_attribute(rtp.leg.make_local_crypto().to_attribute())
    offer = await session.offer_from_ims(ims_offer)
    ims_answer = await session.answer_from_webrtc(await web.answer(offer, [PCMA, OPUS]))
    assert ims_answer.media[0].proto == "RTP/SAVP" and len(ims_answer.media[0].crypto) == 1
    rtp.take(ims_answer)
    await session.confirm()
    assert await web.connected()
    sent = await asyncio.gather(web.send_tone(0.5), rtp.send_tone(0.5))
    await until(lambda: rtp.recorder.count >= sent[0] and web.recorder.count >= sent[1])
    assert session.plan is not None and not session.plan.transcode
    assert decoded_rms(PCMA, rtp.received) > 3000  # decrypted by the peer with the IWF's SDES key
    await session.release()
    await close_peers(web, rtp)


async def test_symmetric_rtp_latches_to_the_source(env: Env) -> None:
    session = await env.session()
    web, rtp = WebRtcPeer(env.peers), RtpPeer(env.peers)
    await rtp.open()
    ims_offer = await session.offer_from_webrtc(await web.offer([PCMU]))
    answer = rtp.answer(ims_offer, [PCMU])
    answer.media[0].port = 9  # the SDP lies (a NAT in the way): nothing listens there
    await web.accept(await session.answer_from_ims(answer))
    await session.confirm()
    assert await web.connected()
    await rtp.send_tone(0.2)  # first packets from the real source...
    await web.send_tone(0.4)  # ...so the IWF answers there, not to port 9
    await until(lambda: rtp.recorder.count >= 15)
    assert session.ims is not None and session.ims.latched == ("127.0.0.1", rtp.leg.port)
    await session.release()
    await close_peers(web, rtp)


async def test_media_timeout_reported(env: Env) -> None:
    session, web, rtp = await originate(env, [PCMU], [PCMU])
    await until(lambda: len([e for e in env.events if e.kind is MediaEventKind.MEDIA_TIMEOUT]) == 2, 5)
    sides = sorted(e.side.value for e in env.events if e.kind is MediaEventKind.MEDIA_TIMEOUT)
    assert sides == ["ims", "webrtc"]
    assert env.iwf.sessions() == ["call-1"]  # reported, not released: the signalling side decides
    await session.release()
    await close_peers(web, rtp)


async def test_dtls_fingerprint_mismatch_releases_session(env: Env) -> None:
    session = await env.session()
    web, rtp = WebRtcPeer(env.peers), RtpPeer(env.peers)
    await rtp.open()
    offer = await web.offer([PCMU])
    offer.media[0].replace_attributes(
        "fingerprint", [DtlsCertificate.generate().fingerprint().to_attribute()]
    )
    answer = await session.answer_from_ims(rtp.answer(await session.offer_from_webrtc(offer), [PCMU]))
    await web.accept(answer)
    await until(lambda: MediaEventKind.DTLS_FAILED in env.kinds())
    await until(lambda: env.iwf.sessions() == [])
    failure = next(e for e in env.events if e.kind is MediaEventKind.DTLS_FAILED)
    assert "fingerprint" in failure.detail and failure.side.value == "webrtc"
    assert session.released and env.iwf.ports.in_use == frozenset()
    with pytest.raises(MediaError):
        await session.confirm()
    await close_peers(web, rtp)


async def test_ice_failure_releases_session(env: Env) -> None:
    session = await env.session()
    rtp = RtpPeer(env.peers)
    await rtp.open()
    web = WebRtcPeer(env.peers)
    offer = await web.offer([PCMU])
    await web.close()  # the browser is gone: its candidate answers no check
    answer = await session.answer_from_ims(rtp.answer(await session.offer_from_webrtc(offer), [PCMU]))
    assert answer.media[0].candidates
    await until(lambda: MediaEventKind.ICE_FAILED in env.kinds(), 10)
    await until(lambda: env.iwf.sessions() == [])
    assert env.iwf.ports.in_use == frozenset()
    rtp.close()


async def test_port_exhaustion_is_503_and_release_frees_ports() -> None:
    # 6 ports: one session takes an RTP/RTCP pair and one WebRTC port.
    iwf = EmbeddedMediaIWF(EmbeddedConfig(port_min=44000, port_max=44005))
    peers = PortAllocator(44100, 44199)
    await iwf.start()
    try:
        webs = [WebRtcPeer(peers) for _ in range(3)]
        offers = [await w.offer([PCMU]) for w in webs]
        s1 = await iwf.create_session("a")
        s2 = await iwf.create_session("b")
        await s1.offer_from_webrtc(offers[0])
        await s2.offer_from_webrtc(offers[1])
        assert len(iwf.ports.in_use) == 6
        with pytest.raises(MediaError) as info:
            s3 = await iwf.create_session("c")
            await s3.offer_from_webrtc(offers[2])
        assert info.value.status == 503
        assert sorted(iwf.sessions()) == ["a", "b"]
        await s1.release()
        assert len(iwf.ports.in_use) == 3 and iwf.sessions() == ["b"]
        s4 = await iwf.create_session("d")
        ims_offer = await s4.offer_from_webrtc(offers[2])
        assert ims_offer.media[0].port in range(44000, 44006)
        await s4.release()
        await s2.release()
        await s2.release()  # idempotent
        assert iwf.ports.in_use == frozenset() and iwf.sessions() == []
        for w in webs:
            await w.close()
    finally:
        await iwf.close()


async def test_offer_without_audio_or_ice_is_488(env: Env) -> None:
    session = await env.session()
    web = WebRtcPeer(env.peers)
    offer = await web.offer([PCMU])
    bad = SessionDescription(offer.lines, [])
    with pytest.raises(MediaError) as info:
        await session.offer_from_webrtc(bad)
    assert info.value.status == 488
    no_ice = offer.copy()
    no_ice.media[0].remove_attributes("ice-ufrag", "ice-pwd")
    with pytest.raises(MediaError) as info:
        await session.offer_from_webrtc(no_ice)
    assert info.value.status == 488
    only_video = offer.copy()
    only_video.media[0].set_codecs([Codec(96, "VP8", 90000)])
    with pytest.raises(MediaError):
        await session.offer_from_webrtc(only_video)
    await session.release()
    await web.close()


async def test_ice_lite_iwf_and_reoffer_keep_media_flowing() -> None:
    config = EmbeddedConfig(port_min=44200, port_max=44299, ice_lite=True, ims_codecs=("PCMU", "opus"))
    iwf = EmbeddedMediaIWF(config)
    _: MediaIWF = iwf  # the embedded backend implements the API's protocols
    peers = PortAllocator(44300, 44399)
    await iwf.start()
    try:
        env = Env(iwf, peers)
        session, web, rtp = await originate(env, [PCMU, OPUS], [PCMU])
        assert session.webrtc is not None and session.webrtc.ice.lite
        assert session.webrtc.local_endpoint("active").ice_lite
        await asyncio.gather(web.send_tone(0.4), rtp.send_tone(0.4))
        await until(lambda: rtp.recorder.count >= 18 and web.recorder.count >= 18)
        # re-INVITE from the WIC (same ICE/DTLS, codec change to Opus on the IMS side too).
        offer2 = await web.offer([OPUS, PCMU])
        ims_offer2 = await session.offer_from_webrtc(offer2)
        assert ims_offer2.media[0].port == session.ims.port  # type: ignore[union-attr]
        await session.answer_from_ims(rtp.answer(ims_offer2, [OPUS]))
        assert session.plan is not None and session.plan.ims.name == "opus" and not session.plan.transcode
        before = rtp.recorder.count
        await asyncio.gather(web.send_tone(0.4), rtp.send_tone(0.4))
        await until(lambda: rtp.recorder.count >= before + 18)
        assert {p[1] & 0x7F for p in rtp.received[before:]} == {OPUS.payload_type}
        await session.release()
        await close_peers(web, rtp)
    finally:
        await iwf.close()
    assert iwf.ports.in_use == frozenset()
