"""RTP/RTCP parsing and statistics (sans-IO), with packets captured from Chromium 156.

Fixtures: RTP and RTCP (after SRTP decryption) that Chromium sent to the
embedded IWF in tests/media/browser_worker.py, and the IWF's own SR.
"""

from __future__ import annotations

import pytest

from webims.media.amr import from_rtp_payload, to_rtp_payload
from webims.media.api import LegSide
from webims.media.leg import MediaLeg
from webims.media.rtcp import (
    Goodbye,
    OtherRtcp,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    SenderReport,
    SourceDescription,
    ntp_middle32,
    ntp_timestamp,
    parse_rtcp,
    round_trip_time,
    serialize_rtcp,
)
from webims.media.rtp import (
    RtpError,
    RtpPacket,
    TelephoneEvent,
    is_rtcp,
    parse_rtp,
    payload_offset,
    rewrite_header,
)

# Chromium's first Opus packet (marker set, PT 111) and a later one.
CHROME_OPUS_FIRST = bytes.fromhex(
    "80ef62e290f018f4234e8e6c780be4c136ecc58d8c49469904c5aaed92e7634a3a1898ee62cb60ff6c1b2900"
)
# Chromium's compound SR + SDES (CNAME) and its reduced-size RR (RFC 5506).
CHROME_SR_SDES = bytes.fromhex(
    "80c8000618ce12c0eeabba0b7967dbb1e106ac6400000073000016d6"
    "81ca000618ce12c001106f6777656e6a6d4136506b75396f426b0000"
)
CHROME_RR = bytes.fromhex("81c9000718ce12c02ad19224000000000000543f0000001aba0b390d00006c29")
# The embedded IWF's SR (one report block) + SDES toward an RTP peer.
IWF_SR_SDES = bytes.fromhex(
    "81c8000c81c33a74eeabba0c3974700063ab52550000009700005e605c30f32b00000000"
    "0000048200000004000000000000000081ca000681c33a740110776562696d732d62726f777365722d310000"
)


def test_parse_chrome_opus_packet() -> None:
    p = parse_rtp(CHROME_OPUS_FIRST)
    assert (p.payload_type, p.marker, p.sequence_number) == (111, True, 0x62E2)
    assert (p.timestamp, p.ssrc) == (0x90F018F4, 0x234E8E6C)
    assert p.csrcs == () and p.extension_profile is None and p.padding == 0
    assert p.payload == CHROME_OPUS_FIRST[12:]
    assert p.to_bytes() == CHROME_OPUS_FIRST
    assert not is_rtcp(CHROME_OPUS_FIRST)


def test_rtp_with_csrc_extension_and_padding_round_trips() -> None:
    p = RtpPacket(
        payload_type=0,
        sequence_number=65535,
        timestamp=0xFFFFFFFF,
        ssrc=1,
        payload=b"\xff" * 160,
        marker=False,
        csrcs=(7, 8),
        extension_profile=0xBEDE,  # RFC 8285 one-byte header, as browsers send
        extension_data=bytes.fromhex("10ff0000"),
        padding=4,
    )
    wire = p.to_bytes()
    assert wire[0] == 0x80 | 0x20 | 0x10 | 2
    assert payload_offset(wire) == 12 + 8 + 8
    assert parse_rtp(wire) == p


def test_rewrite_header_drops_extension_and_keeps_marker() -> None:
    ext = RtpPacket(
        111, 10, 1000, 5, b"opus", marker=True, extension_profile=0xBEDE, extension_data=b"\x10\x7f\0\0"
    )
    out = rewrite_header(ext.to_bytes(), 96, 70000, 2**32 + 5, 9)
    p = parse_rtp(out)
    assert (p.payload_type, p.sequence_number, p.timestamp, p.ssrc) == (96, 70000 - 65536, 5, 9)
    assert p.marker and p.extension_profile is None and p.payload == b"opus"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x00",
        bytes(12),  # version 0
        b"\x8f" + bytes(11),  # 15 CSRCs announced, none present
        b"\x90\x00" + bytes(10) + b"\xbe\xde\x00\x05",  # extension longer than the packet
        b"\xa0\x00" + bytes(10) + b"\x00",  # padding count 0
        b"\xa0\x00" + bytes(10) + b"\x20",  # padding beyond the payload
        CHROME_RR,  # RTCP is not RTP
    ],
)
def test_malformed_rtp_raises_rtp_error(data: bytes) -> None:
    with pytest.raises(RtpError):
        parse_rtp(data)


def test_parse_chrome_sr_and_sdes() -> None:
    assert is_rtcp(CHROME_SR_SDES)
    sr, sdes = parse_rtcp(CHROME_SR_SDES)
    assert isinstance(sr, SenderReport) and isinstance(sdes, SourceDescription)
    assert sr.ssrc == 0x18CE12C0 and sr.ntp == 0xEEABBA0B7967DBB1
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count, sr.reports) == (0xE106AC64, 115, 5846, ())
    assert sdes.chunks == ((0x18CE12C0, ((1, b"ogwenjmA6Pku9oBk"),)),)
    assert serialize_rtcp([sr, sdes]) == CHROME_SR_SDES


def test_parse_chrome_reduced_size_rr() -> None:
    (rr,) = parse_rtcp(CHROME_RR)
    assert isinstance(rr, ReceiverReport) and rr.ssrc == 0x18CE12C0
    (block,) = rr.reports
    assert block == ReportBlock(0x2AD19224, 0, 0, 0x543F, 26, 0xBA0B390D, 0x6C29)
    assert rr.to_bytes() == CHROME_RR


def test_iwf_sr_round_trip_and_rtt() -> None:
    sr, sdes = parse_rtcp(IWF_SR_SDES)
    assert isinstance(sr, SenderReport) and isinstance(sdes, SourceDescription)
    assert sr.reports[0].ssrc == 0x5C30F32B and sr.reports[0].jitter == 4
    assert sdes.chunks[0][1] == ((1, b"webims-browser-1"),)
    assert serialize_rtcp([sr, sdes]) == IWF_SR_SDES
    # RTT = A - LSR - DLSR (RFC 3550 §6.4.1): an SR sent at t, RR 0.5 s later holding it 0.2 s.
    sent = ntp_timestamp(1_700_000_000.0)
    block = ReportBlock(1, 0, 0, 0, 0, ntp_middle32(sent), int(0.2 * 65536))
    rtt = round_trip_time(block, ntp_timestamp(1_700_000_000.5))
    assert rtt is not None and abs(rtt - 0.3) < 1e-3
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, 0, 0), sent) is None


def test_bye_and_unknown_rtcp_round_trip() -> None:
    bye = Goodbye((1, 2), "hangup")
    fb = OtherRtcp(205, bytes.fromhex("8fcd0004") + bytes(16))  # RTPFB (RFC 4585), kept whole
    packets = parse_rtcp(serialize_rtcp([bye, fb]))
    assert packets == [bye, fb]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\xc8",
        b"\x80\xc8\x00\x06" + bytes(8),
        b"\x00\xc8\x00\x00",
        b"\x81\xc9\x00\x01" + bytes(4),
        b"\x81\xca\x00\x01\x00\x00\x00\x01",
    ],
)
def test_malformed_rtcp_raises_rtp_error(data: bytes) -> None:
    with pytest.raises(RtpError):
        parse_rtcp(data)


def test_reception_stats_loss_and_fraction() -> None:
    stats = ReceptionStats(ssrc=5, seq=65530, clock_rate=8000)
    arrival = 0.0
    for i in range(100):
        seq = (65530 + i) & 0xFFFF
        if i in (10, 11, 50):
            continue  # three lost, across the sequence wrap
        stats.update(seq, i * 160, arrival + i * 0.02)
    assert stats.cycles == 65536 and stats.valid
    assert stats.expected == 99  # first packet is probation (RFC 3550 A.1)
    assert stats.lost == 3
    block = stats.report_block(2.0)
    assert block.packets_lost == 3 and block.fraction_lost == (3 << 8) // 99
    assert stats.report_block(3.0).fraction_lost == 0  # nothing new in the interval


def test_jitter_follows_rfc3550_a8() -> None:
    steady = ReceptionStats(1, 0, 8000)
    for i in range(50):
        steady.update(i, i * 160, i * 0.02)
    assert steady.jitter == pytest.approx(0.0, abs=1e-6)
    # Transit alternating by 80 timestamp units (10 ms): J -> 80 (J += (|D| - J) / 16).
    alternating = ReceptionStats(1, 0, 8000)
    expected = 0.0
    for i in range(400):
        alternating.update(i, i * 160, i * 0.02 + (0.01 if i % 2 else 0.0))
        if i >= 2:  # packets 0 is probation; packet 1 sets the first transit
            expected += (80 - expected) / 16
    assert alternating.jitter == pytest.approx(expected, rel=1e-6)
    assert alternating.jitter_seconds == pytest.approx(0.01, rel=1e-3)


def test_telephone_event_rfc4733() -> None:
    # RFC 4733 §2.3: event 5 ("5"), end bit, volume 10, duration 1280.
    payload = bytes.fromhex("058a0500")
    ev = TelephoneEvent.parse(payload)
    assert ev == TelephoneEvent(5, True, 10, 1280) and ev.digit == "5"
    assert ev.to_bytes() == payload
    assert TelephoneEvent(11, False, 0, 0).digit == "#"
    with pytest.raises(RtpError):
        TelephoneEvent.parse(b"\x05")


def test_amr_payload_formats_round_trip() -> None:
    # A 12.2 kbit/s storage frame (FT 7, Q 1): 244 speech bits in 31 octets.
    speech = bytes(range(30)) + b"\xf0"  # last 4 bits are padding
    storage = bytes((7 << 3 | 1 << 2,)) + speech
    octet = to_rtp_payload([storage], octet_aligned=True)
    assert octet[:2] == bytes((0xF0, 0x3C))  # CMR 15, ToC F=0 FT=7 Q=1 (RFC 4867 §4.4)
    assert from_rtp_payload(octet, octet_aligned=True) == [storage]
    packed = to_rtp_payload([storage], octet_aligned=False)
    assert len(packed) == 32  # 4 + 6 + 244 bits -> 32 octets (RFC 4867 §4.3)
    assert from_rtp_payload(packed, octet_aligned=False) == [storage]
    with pytest.raises(RtpError):
        from_rtp_payload(packed[:10], octet_aligned=False)


class _Leg(MediaLeg):
    def __init__(self, side: LegSide) -> None:
        super().__init__(side, f"{side.value}@test")
        self.wire: list[bytes] = []

    def send_packet(self, data: bytes, rtcp: bool) -> None:
        self.wire.append(data)


def test_legs_measure_rtt_and_loss_from_rtcp() -> None:
    """Leg A sends RTP and an SR; B answers with a report block (LSR/DLSR); A gets the RTT."""
    a, b = _Leg(LegSide.WEBRTC), _Leg(LegSide.IMS)
    for i in range(50):
        if i != 20:  # one packet lost on the way
            packet = RtpPacket(0, 100 + i, i * 160, a.out.ssrc, b"\xff" * 160).to_bytes()
            b.rtp_received(packet, now=10.0 + i * 0.02)
        a.out.sent(b"\x80" * 172, i * 160, 10.0 + i * 0.02)
    wall = [1_700_000_000.0]
    a.wall_clock = b.wall_clock = lambda: wall[0]
    a.send_rtcp(now=11.0)
    sr, sdes = parse_rtcp(a.wire[-1])
    assert isinstance(sr, SenderReport) and sr.packet_count == 50 and sr.octet_count == 50 * 160
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0][1] == ((1, b"webrtc@test"),)
    b.rtcp_received(a.wire[-1], now=11.0)
    b.send_rtcp(now=11.25)  # B holds the SR 250 ms before reporting
    rr = parse_rtcp(b.wire[-1])[0]
    assert isinstance(rr, ReceiverReport)
    (block,) = rr.reports
    assert block.ssrc == a.out.ssrc and block.packets_lost == 1
    assert block.dlsr == int(0.25 * 65536) and block.lsr == ntp_middle32(sr.ntp)
    wall[0] += 0.3  # the RR reaches A 300 ms after its SR left: RTT = 300 - 250 ms
    a.rtcp_received(b.wire[-1], now=11.3)
    assert a.rtt == pytest.approx(0.05, abs=1e-3)
    assert a.stats().rtt_ms == pytest.approx(50, abs=1)
    stats = b.stats()
    assert stats.packets_received == 49 and stats.packets_lost == 1
    assert stats.fraction_lost == pytest.approx(1 / 49, rel=0.05) and 1.0 < stats.mos < 4.5
