"""RTP really flowing through rtpengine, driven by the rtpengine backend, between two Python RTP peers.

Both peers speak plain RTP/AVP on loopback (the "WebRTC" peer too: rtpengine gives
each side back the profile it offered), so what is checked is rtpengine's
relaying and transcoding as set up by :class:`RtpengineIWF`: PCMU passed through
byte for byte, Opus <-> PCMU and Opus -> AMR-WB really transcoded (decoded with
PyAV and found to carry the tone that was sent), and the ``query`` counters as
:class:`LegStats`.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import struct
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import pytest

from webims.media.api import LegSide, MediaEvent, MediaEventKind
from webims.media.ng import RetransmitPolicy
from webims.media.rtpengine import CodecPolicy, RtpengineIWF, RtpengineSession
from webims.sdp import OPUS, PCMA, PCMU, Codec, SessionDescription
from webims.testing.rtpengine import Rtpengine, RtpPacket, RtpPeer, codec_support, rtp_target

PACKETS = 50
TONE_HZ = 440.0


@pytest.fixture(scope="module")
def rtpe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rtpengine]:
    with Rtpengine(tmp_path_factory.mktemp("rtpengine-media")) as daemon:
        yield daemon


@pytest.fixture
async def peers() -> AsyncIterator[tuple[RtpPeer, RtpPeer]]:
    webrtc, ims = await RtpPeer.open(), await RtpPeer.open()
    yield webrtc, ims
    webrtc.close()
    ims.close()


def tone(rate: int, samples: int, start: int = 0, amplitude: float = 8000.0) -> list[int]:
    return [int(amplitude * math.sin(2 * math.pi * TONE_HZ * (start + n) / rate)) for n in range(samples)]


def ulaw(sample: int) -> int:
    """ITU-T G.711 µ-law encoding of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | exponent << 4 | mantissa) & 0xFF


def ulaw_decode(byte: int) -> int:
    byte = ~byte & 0xFF
    magnitude = (((byte & 0x0F) << 3) + 0x84) << ((byte >> 4) & 0x07)
    return 0x84 - magnitude if byte & 0x80 else magnitude - 0x84


def rms(samples: list[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def tone_frequency(samples: list[int], rate: int) -> float:
    """Frequency from the zero crossings (enough to tell 440 Hz from noise or silence)."""
    crossings = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    return crossings * rate / (2 * len(samples))


def opus_frames(count: int) -> list[bytes]:
    """``count`` 20 ms Opus frames of the tone (48 kHz mono), encoded with PyAV's libopus."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.time_base = Fraction(1, 48000)
    frames: list[bytes] = []
    for n in range(count + 5):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.sample_rate = 48000
        frame.pts = n * 960
        frame.planes[0].update(struct.pack(f"<{960}h", *tone(48000, 960, n * 960)))
        frames += [bytes(p) for p in encoder.encode(frame)]
    return frames[:count]


def decode(codec: str, payloads: list[bytes]) -> list[int]:
    """Decode payloads with PyAV into mono 16-bit samples."""
    decoder = cast(av.AudioCodecContext, av.CodecContext.create(codec, "r"))
    if codec in ("libopus", "opus"):
        decoder.sample_rate = 48000
        decoder.layout = "mono"
    samples: list[int] = []
    for payload in payloads:
        for frame in decoder.decode(av.Packet(payload)):
            name, channels = frame.format.name, len(frame.layout.channels)
            step = 1 if frame.format.is_planar else channels  # first channel only
            raw = bytes(frame.planes[0])
            if name.startswith("flt"):
                values = struct.unpack(f"<{len(raw) // 4}f", raw)[::step]
                samples += [int(v * 32767) for v in values[: frame.samples]]
            else:
                assert name.startswith("s16"), name
                samples += list(struct.unpack(f"<{len(raw) // 2}h", raw)[::step][: frame.samples])
    return samples


async def setup_call(
    iwf: RtpengineIWF, webrtc: RtpPeer, ims: RtpPeer, webrtc_codecs: list[Codec], pick: str
) -> tuple[RtpengineSession, SessionDescription, SessionDescription]:
    """offer_from_webrtc, the IMS peer answers ``pick``, answer_from_ims, confirm.

    Returns the session, the IMS-side offer (where the IMS peer sends) and the
    WebRTC-side answer (where the WebRTC peer sends).
    """
    session = await iwf.create_session("call")
    ims_offer = await session.offer_from_webrtc(webrtc.describe(webrtc_codecs))
    chosen = next(c for c in ims_offer.media[0].codecs if c.name == pick)
    webrtc_answer = await session.answer_from_ims(ims.describe([chosen]))
    await session.confirm()
    return session, ims_offer, webrtc_answer


async def test_pcmu_passthrough_both_ways(rtpe: Rtpengine, peers: tuple[RtpPeer, RtpPeer]) -> None:
    webrtc, ims = peers
    iwf = RtpengineIWF(rtpe.ng_address)
    await iwf.start()
    try:
        session, ims_offer, webrtc_answer = await setup_call(iwf, webrtc, ims, [PCMU], "PCMU")
        to_ims_side, to_webrtc_side = rtp_target(webrtc_answer), rtp_target(ims_offer)
        sent_up = [bytes([ulaw(s) for s in tone(8000, 160, n * 160)]) for n in range(PACKETS)]
        for n, payload in enumerate(sent_up):
            webrtc.send(RtpPacket(0, n, n * 160, 0x1111, payload), to_ims_side)
            ims.send(RtpPacket(0, 1000 + n, n * 160, 0x2222, payload[::-1]), to_webrtc_side)
        assert await ims.wait_packets(PACKETS, 10), (len(ims.received), rtpe.log_tail())
        assert await webrtc.wait_packets(PACKETS, 10), (len(webrtc.received), rtpe.log_tail())
        # Pass-through: the very bytes, payload type and sequence numbers; rtpengine's own ports.
        # (In sequence order: rtpengine's worker threads may reorder datagrams on a busy machine.)
        up = sorted(ims.received, key=lambda p: p.sequence)
        down = sorted(webrtc.received, key=lambda p: p.sequence)
        assert [p.payload for p in up] == sent_up
        assert [p.sequence for p in up] == list(range(PACKETS))
        assert {p.payload_type for p in ims.received} == {0}
        assert [p.payload for p in down] == [p[::-1] for p in sent_up]
        assert [p.sequence for p in down] == list(range(1000, 1000 + PACKETS))
        assert ims.sources == {to_webrtc_side} and webrtc.sources == {to_ims_side}

        stats = {s.side: s for s in await session.refresh_stats()}
        for side in (LegSide.WEBRTC, LegSide.IMS):
            assert stats[side].packets_received == PACKETS
            assert stats[side].packets_sent == PACKETS
            assert stats[side].bytes_received >= PACKETS * 160
            assert stats[side].codec == "PCMU"
            assert stats[side].mos > 4.0
        await session.release()
        final = {s.side: s for s in session.stats()}
        assert final[LegSide.IMS].packets_received == PACKETS
    finally:
        await iwf.close()


async def test_opus_to_pcmu_transcoding_both_ways(rtpe: Rtpengine, peers: tuple[RtpPeer, RtpPeer]) -> None:
    webrtc, ims = peers
    iwf = RtpengineIWF(rtpe.ng_address)
    await iwf.start()
    try:
        _, ims_offer, webrtc_answer = await setup_call(iwf, webrtc, ims, [OPUS], "PCMU")
        assert [c.name for c in webrtc_answer.media[0].codecs] == ["opus"]
        to_ims_side, to_webrtc_side = rtp_target(webrtc_answer), rtp_target(ims_offer)
        for n, payload in enumerate(opus_frames(PACKETS)):
            webrtc.send(RtpPacket(111, n, n * 960, 0x3333, payload), to_ims_side)
            ims.send(RtpPacket(0, n, n * 160, 0x4444, bytes(ulaw(s) for s in tone(8000, 160, n * 160))),
                     to_webrtc_side)  # fmt: skip
        assert await ims.wait_packets(PACKETS - 5, 10), (len(ims.received), rtpe.log_tail())
        assert await webrtc.wait_packets(PACKETS - 5, 10), (len(webrtc.received), rtpe.log_tail())

        # Toward the IMS: PCMU, 20 ms frames, carrying the 440 Hz tone.
        assert {p.payload_type for p in ims.received} == {0}
        assert {len(p.payload) for p in ims.received} == {160}
        pcm = [ulaw_decode(b) for p in ims.received[10:] for b in p.payload]
        assert rms(pcm) > 1000
        assert abs(tone_frequency(pcm, 8000) - TONE_HZ) < 40
        # Toward the WIC: Opus (PT 111) that decodes to the tone.
        assert {p.payload_type for p in webrtc.received} == {111}
        pcm48 = decode("libopus", [p.payload for p in webrtc.received])[48000 // 5 :]
        assert rms(pcm48) > 1000
        assert abs(tone_frequency(pcm48, 48000) - TONE_HZ) < 40
    finally:
        await iwf.close()


async def test_pcma_to_pcmu_transcoding(rtpe: Rtpengine, peers: tuple[RtpPeer, RtpPeer]) -> None:
    # A browser offering only PCMA; the IMS answers PCMU (added by CodecPolicy.ims_transcode).
    webrtc, ims = peers
    iwf = RtpengineIWF(rtpe.ng_address, codecs=CodecPolicy(ims_transcode=("PCMU",)))
    await iwf.start()
    try:
        _, ims_offer, webrtc_answer = await setup_call(iwf, webrtc, ims, [PCMA], "PCMU")
        assert [c.name for c in ims_offer.media[0].codecs][:2] == ["PCMA", "PCMU"]
        alaw = av.CodecContext.create("pcm_alaw", "w")
        alaw.sample_rate, alaw.layout, alaw.format = 8000, "mono", "s16"
        for n in range(PACKETS):
            frame = av.AudioFrame(format="s16", layout="mono", samples=160)
            frame.sample_rate = 8000
            frame.planes[0].update(struct.pack("<160h", *tone(8000, 160, n * 160)))
            payload = b"".join(bytes(p) for p in alaw.encode(frame))
            webrtc.send(RtpPacket(8, n, n * 160, 0x5555, payload), rtp_target(webrtc_answer))
        assert await ims.wait_packets(PACKETS - 5, 10), (len(ims.received), rtpe.log_tail())
        assert {p.payload_type for p in ims.received} == {0}
        pcm = [ulaw_decode(b) for p in ims.received for b in p.payload]
        assert rms(pcm) > 1000 and abs(tone_frequency(pcm, 8000) - TONE_HZ) < 40
    finally:
        await iwf.close()


async def test_opus_to_amr_wb_transcoding(rtpe: Rtpengine, peers: tuple[RtpPeer, RtpPeer]) -> None:
    support = codec_support()
    assert support.get("AMR-WB") == "fully supported", f"AMR-WB encoding needs libavcodec-extra: {support}"
    webrtc, ims = peers
    iwf = RtpengineIWF(rtpe.ng_address, codecs=CodecPolicy(ims_transcode=("AMR-WB",)))
    await iwf.start()
    try:
        _, ims_offer, webrtc_answer = await setup_call(iwf, webrtc, ims, [OPUS], "AMR-WB")
        amr_wb = next(c for c in ims_offer.media[0].codecs if c.name == "AMR-WB")
        octet_aligned = amr_wb.parameters.get("octet-align") == "1"
        for n, payload in enumerate(opus_frames(PACKETS)):
            webrtc.send(RtpPacket(111, n, n * 960, 0x6666, payload), rtp_target(webrtc_answer))
        assert await ims.wait_packets(PACKETS - 5, 10), (len(ims.received), rtpe.log_tail())
        assert {p.payload_type for p in ims.received} == {amr_wb.payload_type}
        assert octet_aligned, amr_wb  # rtpengine's AMR-WB default (RFC 4867 §4.4)
        # RFC 4867 §4.4 octet-aligned, one frame: CMR byte, ToC byte (F=0, FT, Q), speech bits.
        # Storage format (§5) = ToC + speech: what ffmpeg's amrwb decoder reads.
        frame_types = {(p.payload[1] >> 3) & 0x0F for p in ims.received}
        assert frame_types <= set(range(9)), frame_types  # speech modes 0-8 (6.6-23.85 kbit/s)
        pcm = decode("amrwb", [p.payload[1:] for p in ims.received])[16000 // 5 :]
        assert rms(pcm) > 1000
        assert abs(tone_frequency(pcm, 16000) - TONE_HZ) < 40
    finally:
        await iwf.close()


async def test_supervision_reports_media_timeout_then_backend_lost(
    tmp_path: Path, peers: tuple[RtpPeer, RtpPeer]
) -> None:
    webrtc, ims = peers
    events: list[MediaEvent] = []
    arrived = asyncio.Event()

    def on_event(event: MediaEvent) -> None:
        events.append(event)
        arrived.set()

    async def next_event(kind: MediaEventKind) -> list[MediaEvent]:
        while not [e for e in events if e.kind is kind]:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 20)
        return [e for e in events if e.kind is kind]

    with Rtpengine(tmp_path) as daemon:
        iwf = RtpengineIWF(
            daemon.ng_address, stats_interval=0.2, media_timeout=0.6,
            policy=RetransmitPolicy(0.1, 0.2, 0.6),
        )  # fmt: skip
        await iwf.start()
        session = await iwf.create_session("quiet")
        session.on_event = on_event
        ims_offer = await session.offer_from_webrtc(webrtc.describe([PCMU]))
        webrtc_answer = await session.answer_from_ims(ims.describe([PCMU]))
        await session.confirm()

        # Only the WIC talks: the IMS leg times out, the WebRTC leg does not.
        async def talk() -> None:
            for n in range(100_000):
                webrtc.send(RtpPacket(0, n, n * 160, 7, bytes(160)), rtp_target(webrtc_answer))
                await asyncio.sleep(0.02)

        talker = asyncio.create_task(talk())
        try:
            timeouts = await next_event(MediaEventKind.MEDIA_TIMEOUT)
        finally:
            talker.cancel()
        assert [(e.session_id, e.side) for e in timeouts] == [("quiet", LegSide.IMS)]
        assert await ims.wait_packets(10, 10)
        del ims_offer

        daemon.stop()
        lost = await next_event(MediaEventKind.BACKEND_LOST)
        assert {e.side for e in lost} == {LegSide.WEBRTC, LegSide.IMS}
        assert "rtpengine unreachable" in lost[0].detail
        await iwf.close()
