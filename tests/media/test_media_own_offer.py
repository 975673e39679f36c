"""The embedded IWF's own IMS-side offer (``offer_to_ims``, RFC 3262 §5: an IMS INVITE without
SDP requiring 100rel gets the offer in the first reliable 18x), with real sockets on loopback.

The sequence: ``offer_to_ims`` -> the phone's answer -> ``answer_from_ims_to_own_offer`` (the
WebRTC offer for the WIC) -> the WIC's answer -> ``answer_from_webrtc``; both exchanges are then
complete, so media flows both ways before ``confirm`` (early media)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from webims.media import EmbeddedConfig, EmbeddedMediaIWF, MediaError
from webims.media.ports import PortAllocator
from webims.media.rtp import parse_rtp
from webims.media.transcode import AudioDecoder
from webims.sdp import AMR, OPUS, PCMA, PCMU, TELEPHONE_EVENT_8000, TELEPHONE_EVENT_48000, Codec
from webims.testing.media_peers import RtpPeer, WebRtcPeer, rms


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def decoded_rms(codec: Codec, packets: list[bytes]) -> float:
    decoder = AudioDecoder(codec, 8000 if codec.name != "opus" else 16000)
    media = [p for p in packets if p[1] & 0x7F == codec.payload_type]
    return rms(b"".join(decoder.decode(parse_rtp(p).payload) for p in media[5:]))


def config(**overrides: object) -> EmbeddedConfig:
    base: dict[str, object] = dict(
        port_min=44600, port_max=44699, timer_interval=0.1, ice_timeout=3.0, dtls_timeout=3.0
    )
    base.update(overrides)
    return EmbeddedConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
async def peers() -> AsyncIterator[tuple[WebRtcPeer, RtpPeer]]:
    ports = PortAllocator(44700, 44799)
    web, rtp = WebRtcPeer(ports), RtpPeer(ports)
    await rtp.open()
    yield web, rtp
    await web.close()
    rtp.close()


async def test_own_offer_then_amr_answer_media_both_ways_before_confirm(
    peers: tuple[WebRtcPeer, RtpPeer],
) -> None:
    web, rtp = peers
    iwf = EmbeddedMediaIWF(config())
    await iwf.start()
    try:
        session = await iwf.create_session("own-1")
        offer = await session.offer_to_ims()
        (m,) = offer.media
        assert m.proto == "RTP/AVP" and m.port == session.ims.port  # type: ignore[union-attr]
        assert offer.connection is not None and offer.connection.address == "127.0.0.1"
        # the config's ims_codecs in its order, then telephone-event (RFC 4733)
        assert [c.name for c in m.codecs] == ["PCMU", "PCMA", "G722", "AMR", "telephone-event"]
        assert m.direction == "sendrecv" and m.ptime == 20
        phone_answer = rtp.answer(offer, [AMR, TELEPHONE_EVENT_8000])
        webrtc_offer = await session.answer_from_ims_to_own_offer(phone_answer)
        (w,) = webrtc_offer.media
        assert w.proto == "UDP/TLS/RTP/SAVPF" and w.setup == "actpass"
        offered = [c.name for c in w.codecs]
        assert offered[:2] == ["opus", "PCMU"] and "AMR" not in offered  # browsers take no AMR
        browser_answer = await web.answer(webrtc_offer, [OPUS, TELEPHONE_EVENT_48000])
        answer = await session.answer_from_webrtc(browser_answer)
        assert answer.media[0].port == m.port  # the IMS side as negotiated, unchanged
        assert session.plan is not None and session.plan.transcode
        assert await web.connected()
        assert not session.confirmed
        await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0))
        await until(lambda: rtp.recorder.count >= 45 and web.recorder.count >= 45)  # early, both ways
        assert decoded_rms(AMR, rtp.received) > 1500
        assert decoded_rms(OPUS, web.received) > 1500
        await session.confirm()
        await session.release()
        assert not iwf.sessions()
    finally:
        await iwf.close()


async def test_own_offer_with_sdes_srtp_relays_pcma(peers: tuple[WebRtcPeer, RtpPeer]) -> None:
    web, rtp = peers
    iwf = EmbeddedMediaIWF(config(ims_srtp=True, ims_codecs=("PCMA", "PCMU")))
    await iwf.start()
    try:
        session = await iwf.create_session("own-2")
        offer = await session.offer_to_ims()
        assert offer.media[0].proto == "RTP/SAVP" and len(offer.media[0].crypto) == 1  # RFC 4568
        assert [c.name for c in offer.media[0].codecs] == ["PCMA", "PCMU", "telephone-event"]
        phone_answer = rtp.answer(offer, [PCMA])
        assert phone_answer.media[0].proto == "RTP/SAVP"
        webrtc_offer = await session.answer_from_ims_to_own_offer(phone_answer)
        await session.answer_from_webrtc(await web.answer(webrtc_offer, [PCMA, OPUS]))
        assert session.plan is not None and not session.plan.transcode
        assert await web.connected()
        sent = await asyncio.gather(web.send_tone(0.5), rtp.send_tone(0.5))
        await until(lambda: rtp.recorder.count >= sent[0] and web.recorder.count >= sent[1])
        assert decoded_rms(PCMA, rtp.received) > 3000  # decrypted with the IWF's SDES key
        await session.release()
    finally:
        await iwf.close()


async def test_own_offer_errors(peers: tuple[WebRtcPeer, RtpPeer]) -> None:
    _, rtp = peers
    iwf = EmbeddedMediaIWF(config(ims_codecs=("AMR-WB",)))  # nothing the IWF relays or transcodes
    await iwf.start()
    try:
        session = await iwf.create_session("own-3")
        with pytest.raises(MediaError) as none:
            await session.offer_to_ims()
        assert none.value.status == 488
        await session.release()
    finally:
        await iwf.close()
    iwf = EmbeddedMediaIWF(config(ims_codecs=("PCMU",)))
    await iwf.start()
    try:
        session = await iwf.create_session("own-4")
        with pytest.raises(MediaError) as early:
            await session.answer_from_ims_to_own_offer(rtp.offer([PCMU]))
        assert early.value.status == 500  # no offer of ours to answer
        offer = await session.offer_to_ims()
        with pytest.raises(MediaError) as twice:
            await session.offer_to_ims()
        assert twice.value.status == 500
        bad = rtp.answer(offer, [PCMU])
        bad.media[0].set_codecs([PCMA])  # RFC 3264 §6.1: the answer's codec must be an offered one
        with pytest.raises(MediaError) as wrong:
            await session.answer_from_ims_to_own_offer(bad)
        assert wrong.value.status == 488
        await session.release()
        assert not iwf.sessions()
    finally:
        await iwf.close()
