"""The media IWF's hot paths against their general / reference implementations.

* :meth:`Forwarder.relay` (the list-free fast path) must give, byte for byte,
  what :meth:`Forwarder.forward` gives for a plain audio packet of the current
  source (RFC 3550 §7.2 translator: payload type, sequence number, timestamp
  and SSRC rewritten), leave the forwarder untouched and answer None for
  anything else (RFC 4733 events, a new SSRC, CSRCs, header extension,
  padding, transcoding).  Each scenario runs on two forwarders in the same
  state: one driven as the embedded IWF drives it (relay, else forward), its
  twin through forward() only.
* :class:`SrtpSession` (libsrtp through one preallocated buffer per call)
  must interoperate with pylibsrtp's own :class:`pylibsrtp.Session` on the
  same key (RFC 3711 SRTP and SRTCP, both directions, byte-identical output)
  and fail as it does: :class:`pylibsrtp.Error` with libsrtp's message for a
  replayed packet (RFC 3711 §3.3.2), a packet older than the replay window
  and a bad authentication tag (§3.4); ValueError for a packet too long.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import pylibsrtp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webims.media.ims_leg import SDES_SUITES, SrtpSession, srtp_session
from webims.media.relay import Forwarder, OutboundStream, StreamPlan
from webims.media.rtp import RtpPacket, TelephoneEvent, parse_rtp
from webims.sdp import Codec

# -- fixtures ---------------------------------------------------------------------------------

# Chromium's first Opus packet (marker set, PT 111, plain 12-byte header), as captured in
# tests/media/test_media_packets.py; its payload is a real Opus frame.
CHROME_OPUS_FIRST = bytes.fromhex(
    "80ef62e290f018f4234e8e6c780be4c136ecc58d8c49469904c5aaed92e7634a3a1898ee62cb60ff6c1b2900"
)
CHROME_SSRC = 0x234E8E6C
OPUS_FRAME = CHROME_OPUS_FIRST[12:]
# The embedded IWF's compound RTCP (SR with one report block + SDES CNAME).
IWF_SR_SDES = bytes.fromhex(
    "81c8000c81c33a74eeabba0c3974700063ab52550000009700005e605c30f32b00000000"
    "0000048200000004000000000000000081ca000681c33a740110776562696d732d62726f777365722d310000"
)

OPUS_IN = Codec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1")  # Chromium's numbering
OPUS_OUT = Codec(96, "opus", 48000, 2)  # the other side's numbering for the same codec
TE_IN = Codec(126, "telephone-event", 48000, None, "0-15")
TE_OUT = Codec(101, "telephone-event", 48000, None, "0-15")
PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)

OUT_SSRC = 0x5EB1_0001
OUT_SEQ = 0xFFF0  # near the 16-bit wrap
OUT_TS = 0xFFFF_F000  # near the 32-bit wrap
STEP = 960  # 20 ms at 48 kHz

_HEADER = struct.Struct("!BBHII")


def rtp(
    pt: int, seq: int, ts: int, ssrc: int, payload: bytes = OPUS_FRAME, marker: bool = False, b0: int = 0x80
) -> bytes:
    """An RTP packet by hand (RFC 3550 §5.1 fixed header)."""
    return _HEADER.pack(b0, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def event(seq: int, ts: int, ssrc: int, digit: int, end: bool, duration: int) -> bytes:
    """An RFC 4733 §2.3 telephone-event packet (PT of TE_IN)."""
    body = TelephoneEvent(digit, end, 10, duration).to_bytes()
    return rtp(TE_IN.payload_type, seq, ts, ssrc, body, marker=duration == 0)


@dataclass
class Twin:
    """A forwarder driven as the IWF drives it (relay, else forward), and one through forward() only."""

    fast: Forwarder
    slow: Forwarder
    fast_digits: list[str]
    slow_digits: list[str]

    def send(self, data: bytes, now: float) -> tuple[bytes | None, list[bytes]]:
        """Both paths for one packet; asserts they agree.  Returns (relay's answer, packets)."""
        quick = self.fast.relay(data, now)
        fast_out = [quick] if quick is not None else self.fast.forward(data, now)
        slow_out = self.slow.forward(data, now)
        assert fast_out == slow_out
        assert state(self.fast) == state(self.slow)
        assert self.fast_digits == self.slow_digits
        return quick, slow_out


def state(fwd: Forwarder) -> tuple[object, ...]:
    """Everything a forwarded packet may change, as observed from outside (and the offsets)."""
    out = fwd.out
    return (
        out.ssrc,
        out.next_seq,
        out.packets,
        out.octets,
        out.last_timestamp,
        out.last_timestamp_time,
        fwd.dropped,
        fwd._source,
        fwd._seq_delta,
        fwd._ts_delta,
    )


def stream() -> OutboundStream:
    out = OutboundStream(OUT_SSRC)
    out.next_seq = OUT_SEQ
    out.last_timestamp = OUT_TS
    return out


def make_plan(transcode: bool = False) -> StreamPlan:
    if transcode:
        return StreamPlan(PCMU, PCMA, transcode=True)
    return StreamPlan(OPUS_IN, OPUS_OUT, TE_IN, TE_OUT)


def twin(transcode: bool = False) -> Twin:
    fast_digits: list[str] = []
    slow_digits: list[str] = []
    plan = make_plan(transcode)
    return Twin(
        Forwarder(plan, stream(), fast_digits.append),
        Forwarder(plan, stream(), slow_digits.append),
        fast_digits,
        slow_digits,
    )


# -- Forwarder.relay == Forwarder.forward ---------------------------------------------------


def test_relay_equals_forward_over_a_call() -> None:
    """A call's worth of packets: wraps, reordering, marker, events, a source change and back."""
    t = twin()
    a, b = CHROME_SSRC, 0x0BADCAFE
    seq, ts, now = 0xFFFD, 0xFFFF_FC40, 100.0  # both counters wrap within the first packets
    handled: list[bool] = []

    def audio(marker: bool = False, payload: bytes = OPUS_FRAME, ssrc: int = a) -> None:
        quick, _ = t.send(rtp(111, seq, ts, ssrc, payload, marker), now)
        handled.append(quick is not None)

    audio(marker=True)  # first packet: a new source, forward() takes it
    for _ in range(6):
        seq, ts, now = seq + 1, ts + STEP, now + 0.02
        audio()
    # reordered: seq+2 before seq+1 (each keeps its own mapped number, as forward() does)
    t.send(rtp(111, seq + 2, ts + 2 * STEP, a), now + 0.04)
    t.send(rtp(111, seq + 1, ts + STEP, a), now + 0.04)
    seq, ts, now = seq + 2, ts + 2 * STEP, now + 0.04
    # a DTMF digit "5" (RFC 4733 §2.5): start, update, three end packets, same timestamp
    ev_ts = ts + STEP
    for n, (end, duration) in enumerate([(False, 0), (False, 960), (True, 1920), (True, 1920), (True, 1920)]):
        quick, _ = t.send(event(seq + 1 + n, ev_ts, a, 5, end, duration), now + 0.02 * (n + 1))
        assert quick is None
    seq, ts, now = seq + 6, ts + 7 * STEP, now + 0.12
    audio(marker=True)  # talkspurt after the digit
    audio_zero = rtp(111, seq + 1, ts + STEP, a, b"")  # empty payload, 12 bytes
    t.send(audio_zero, now + 0.02)
    seq, ts, now = seq + 1, ts + STEP, now + 0.02
    # the peer changes SSRC (re-INVITE, another device): forward() re-anchors, relay() resumes
    seq, ts, now = 0x1234, 0x7000_0000, now + 0.5
    audio(ssrc=b, marker=True)
    for _ in range(3):
        seq, ts, now = seq + 1, ts + STEP, now + 0.02
        audio(ssrc=b)
    # the old source again: relay() declines, forward() takes it as a new source
    seq, ts, now = 0x6300, 0x9100_0000, now + 0.02
    audio(ssrc=a)
    seq, ts, now = seq + 1, ts + STEP, now + 0.02
    audio(ssrc=a)
    assert t.fast_digits == ["5"]
    assert t.slow.dropped == 0
    # the fast path did carry the plain packets of a known source
    assert handled == [False, *[True] * 6, True, False, True, True, True, False, True]


def test_relay_rewrites_header_as_rfc3550_translator() -> None:
    """The fast path's packets, checked field by field (not only against forward())."""
    t = twin()
    t.send(rtp(111, 0x62E2, 0x90F018F4, CHROME_SSRC), 1.0)  # the source is learnt by forward()
    base_ts = t.fast.out.last_timestamp
    marked = rtp(111, 0x62E3, 0x90F018F4 + STEP, CHROME_SSRC, marker=True)
    quick, _ = t.send(marked, 1.02)
    assert quick is not None
    p = parse_rtp(quick)
    assert p == RtpPacket(
        96, (OUT_SEQ + 1) & 0xFFFF, (base_ts + STEP) & 0xFFFFFFFF, OUT_SSRC, OPUS_FRAME, True
    )
    quick, _ = t.send(rtp(111, 0x62E4, 0x90F018F4 + 2 * STEP, CHROME_SSRC), 1.04)
    assert quick is not None
    p = parse_rtp(quick)
    assert (p.sequence_number, p.timestamp, p.marker) == (
        (OUT_SEQ + 2) & 0xFFFF,
        (base_ts + 2 * STEP) & 0xFFFFFFFF,
        False,
    )
    out = t.fast.out
    assert (out.next_seq, out.packets, out.octets) == ((OUT_SEQ + 3) & 0xFFFF, 3, 3 * len(OPUS_FRAME))
    assert (out.last_timestamp, out.last_timestamp_time) == ((base_ts + 2 * STEP) & 0xFFFFFFFF, 1.04)


def test_source_change_keeps_sequence_and_timestamp_continuous() -> None:
    """RFC 3550 §7.2: the other leg sees one stream whatever the sources behind it."""
    t = twin()
    t.send(rtp(111, 100, 5000, CHROME_SSRC), 10.0)
    first_ts = t.fast.out.last_timestamp
    # 20 ms after the last packet (no earlier one): the first timestamp continues OUT_TS by 20 ms
    assert first_ts == (OUT_TS + STEP) & 0xFFFFFFFF
    for n in range(1, 4):  # quarter-second steps: float times exact, so are the expectations
        quick, _ = t.send(rtp(111, 100 + n, 5000 + n * STEP, CHROME_SSRC), 10.0 + 0.25 * n)
        assert quick is not None
    last_seq, last_ts = (OUT_SEQ + 3) & 0xFFFF, (first_ts + 3 * STEP) & 0xFFFFFFFF
    # new SSRC 0.5 s after the last packet, its own random sequence number and timestamp
    new = rtp(111, 0xFFFF, 0xFFFF_FF00, 0xC0FFEE, marker=True)
    assert t.fast.relay(new, 11.25) is None
    _, packets = t.send(new, 11.25)
    p = parse_rtp(packets[0])
    assert p.sequence_number == (last_seq + 1) & 0xFFFF
    assert p.timestamp == (last_ts + 24000) & 0xFFFFFFFF  # the wall-clock gap kept, at 48 kHz
    assert (p.ssrc, p.marker) == (OUT_SSRC, True)
    # the new source's next packets (its sequence number wraps) take the fast path, continuing
    for n in range(1, 4):
        quick, _ = t.send(rtp(111, 0xFFFF + n, 0xFFFF_FF00 + n * STEP, 0xC0FFEE), 11.25 + 0.25 * n)
        assert quick is not None
        q = parse_rtp(quick)
        assert q.sequence_number == (p.sequence_number + n) & 0xFFFF
        assert q.timestamp == (p.timestamp + n * STEP) & 0xFFFFFFFF


def test_events_share_the_sequence_space_with_relayed_audio() -> None:
    """forward()'s event packets and relay()'s audio packets number one stream (RFC 4733 §2.1)."""
    t = twin()
    t.send(rtp(111, 1, 0, CHROME_SSRC), 0.0)
    t.send(rtp(111, 2, STEP, CHROME_SSRC), 0.02)
    _, ev = t.send(event(3, 2 * STEP, CHROME_SSRC, 11, True, 960), 0.04)
    quick, _ = t.send(rtp(111, 4, 3 * STEP, CHROME_SSRC), 0.06)
    assert quick is not None
    seqs = [parse_rtp(ev[0]).sequence_number, parse_rtp(quick).sequence_number]
    assert seqs == [(OUT_SEQ + 2) & 0xFFFF, (OUT_SEQ + 3) & 0xFFFF]
    assert parse_rtp(ev[0]).payload_type == TE_OUT.payload_type
    assert t.fast_digits == ["#"]


def _known_source(transcode: bool = False) -> Forwarder:
    fwd = Forwarder(make_plan(transcode), stream())
    pt = PCMU.payload_type if transcode else OPUS_IN.payload_type
    payload = bytes(160) if transcode else OPUS_FRAME
    fwd.forward(rtp(pt, 10, 1000, CHROME_SSRC, payload), 5.0)
    return fwd


_PADDED = RtpPacket(111, 11, 1000 + STEP, CHROME_SSRC, OPUS_FRAME, padding=4).to_bytes()
_CSRC = RtpPacket(111, 11, 1000 + STEP, CHROME_SSRC, OPUS_FRAME, csrcs=(0x11111111,)).to_bytes()
# Chromium's one-byte header extension (RFC 8285 §4.2: 0xBEDE, ssrc-audio-level id 1)
_EXTENSION = RtpPacket(
    111,
    11,
    1000 + STEP,
    CHROME_SSRC,
    OPUS_FRAME,
    extension_profile=0xBEDE,
    extension_data=b"\x10\x85\x00\x00",
).to_bytes()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(event(11, 1000 + STEP, CHROME_SSRC, 1, False, 0), id="telephone-event"),
        pytest.param(rtp(111, 11, 1000 + STEP, 0xC0FFEE), id="new-ssrc"),
        pytest.param(_PADDED, id="padding"),
        pytest.param(_CSRC, id="csrc"),
        pytest.param(_EXTENSION, id="header-extension"),
        pytest.param(rtp(13, 11, 1000 + STEP, CHROME_SSRC, b"\x40"), id="comfort-noise"),
        pytest.param(rtp(96, 11, 1000 + STEP, CHROME_SSRC), id="outgoing-pt"),
        pytest.param(rtp(111, 11, 1000 + STEP, CHROME_SSRC, b0=0x40), id="rtp-version-1"),
        pytest.param(rtp(111, 11, 1000 + STEP, CHROME_SSRC)[:11], id="short"),
        pytest.param(b"", id="empty"),
        pytest.param(IWF_SR_SDES, id="rtcp"),
    ],
)
def test_relay_declines_what_it_does_not_handle(data: bytes) -> None:
    fwd = _known_source()
    before = state(fwd)
    assert fwd.relay(data, 5.02) is None
    assert state(fwd) == before  # declining changes nothing: forward() sees the packet afresh


def test_relay_declines_before_any_source() -> None:
    fwd = Forwarder(make_plan(), stream())
    before = state(fwd)
    assert fwd.relay(CHROME_OPUS_FIRST, 0.0) is None
    assert state(fwd) == before
    assert len(fwd.forward(CHROME_OPUS_FIRST, 0.0)) == 1


def test_relay_declines_when_transcoding() -> None:
    fwd = _known_source(transcode=True)
    before = state(fwd)
    assert fwd.relay(rtp(PCMU.payload_type, 11, 1160, CHROME_SSRC, bytes(160)), 5.02) is None
    assert state(fwd) == before


@pytest.mark.parametrize("data", [_PADDED, _CSRC, _EXTENSION], ids=["padding", "csrc", "extension"])
def test_declined_packets_match_through_forward(data: bytes) -> None:
    """The IWF's relay-else-forward path gives what forward() alone gives for the odd packets."""
    t = twin()
    t.send(rtp(111, 10, 1000, CHROME_SSRC), 5.0)
    quick, packets = t.send(data, 5.02)
    assert quick is None and len(packets) == 1
    quick, _ = t.send(rtp(111, 12, 1000 + 2 * STEP, CHROME_SSRC), 5.04)
    assert quick is not None


_SOURCES = (CHROME_SSRC, 0x0BADCAFE, 0xC0FFEE)


@st.composite
def _packets(draw: st.DrawFn) -> list[tuple[bytes, float]]:
    """A random mix of the packets a WebRTC or IMS peer sends, with arrival times."""
    count = draw(st.integers(1, 40))
    out: list[tuple[bytes, float]] = []
    seq = draw(st.integers(0, 0xFFFF))
    ts = draw(st.integers(0, 0xFFFFFFFF))
    now = 1000.0
    for _ in range(count):
        ssrc = draw(st.sampled_from(_SOURCES))
        seq += draw(st.sampled_from([1, 1, 1, 2, -1, 0, 40000]))
        ts += draw(st.sampled_from([STEP, STEP, 0, 2 * STEP, -STEP, 1 << 31]))
        now += draw(st.sampled_from([0.0, 0.02, 0.02, 0.5]))
        kind = draw(st.sampled_from(["audio", "audio", "audio", "event", "cn", "odd"]))
        marker = draw(st.booleans())
        if kind == "audio":
            payload = draw(st.binary(max_size=80))
            data = rtp(111, seq, ts, ssrc, payload, marker)
        elif kind == "event":
            data = event(
                seq, ts, ssrc, draw(st.integers(0, 15)), draw(st.booleans()), draw(st.integers(0, 4000))
            )
        elif kind == "cn":
            data = rtp(13, seq, ts, ssrc, b"\x40", marker)
        else:
            data = RtpPacket(
                111,
                seq & 0xFFFF,
                ts & 0xFFFFFFFF,
                ssrc,
                draw(st.binary(max_size=20)),
                marker,
                csrcs=tuple(draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=2))),
                padding=draw(st.integers(0, 4)),
            ).to_bytes()
        out.append((data, now))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_packets())
def test_relay_else_forward_equals_forward_for_any_stream(packets: list[tuple[bytes, float]]) -> None:
    t = twin()
    for data, now in packets:
        quick, _ = t.send(data, now)
        if quick is not None:  # when the fast path answers, it is a header rewrite of the input
            assert quick[12:] == data[12:]
            assert quick[1] & 0x7F == OPUS_OUT.payload_type


# -- SrtpSession == pylibsrtp.Session ---------------------------------------------------------

P = pylibsrtp.Policy
# profile -> master key + salt length (RFC 3711 §8.2 / RFC 7714 §12: key || salt)
PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": (P.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    "AES_CM_128_HMAC_SHA1_32": (P.SRTP_PROFILE_AES128_CM_SHA1_32, 30),
    "AEAD_AES_128_GCM": (P.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
    "AEAD_AES_256_GCM": (P.SRTP_PROFILE_AEAD_AES_256_GCM, 44),
}
# the ones negotiated by SDES on the IMS leg are those pylibsrtp calls by these names
assert SDES_SUITES["AES_CM_128_HMAC_SHA1_80"] == PROFILES["AES_CM_128_HMAC_SHA1_80"][0]
assert SDES_SUITES["AES_CM_128_HMAC_SHA1_32"] == PROFILES["AES_CM_128_HMAC_SHA1_32"][0]

AEAD = (P.SRTP_PROFILE_AEAD_AES_128_GCM, P.SRTP_PROFILE_AEAD_AES_256_GCM)
AUTH_FAILURE = "authentication failure"
REPLAY = "replay check failed (bad index)"
TOO_OLD = "replay check failed (index too old)"


def _key(length: int, salt: int = 0) -> bytes:
    return bytes((i * 37 + 11 + salt) & 0xFF for i in range(length))


def reference(profile: int, key: bytes, outbound: bool) -> pylibsrtp.Session:
    """pylibsrtp's own session with the policy :func:`srtp_session` uses."""
    policy = P(
        key=key, ssrc_type=P.SSRC_ANY_OUTBOUND if outbound else P.SSRC_ANY_INBOUND, srtp_profile=profile
    )
    policy.allow_repeat_tx = True
    policy.window_size = 1024
    return pylibsrtp.Session(policy)


def plain(seq: int, payload: bytes = OPUS_FRAME, ssrc: int = CHROME_SSRC) -> bytes:
    return rtp(111, seq, 0x90F018F4 + seq * STEP, ssrc, payload)


def outcome(call: Callable[[bytes], bytes], data: bytes) -> bytes | tuple[type[Exception], str]:
    """What a protect/unprotect call gives: the bytes or (exception type, message)."""
    try:
        return call(data)
    except (pylibsrtp.Error, ValueError) as exc:
        return (type(exc), str(exc))


@pytest.fixture(params=list(PROFILES), name="suite")
def _suite(request: pytest.FixtureRequest) -> tuple[int, bytes]:
    profile, length = PROFILES[request.param]
    return profile, _key(length)


def test_srtp_protect_is_byte_identical_and_interoperates(suite: tuple[int, bytes]) -> None:
    profile, key = suite
    ours_tx, ref_tx = srtp_session(profile, key, True), reference(profile, key, True)
    ours_rx, ref_rx = srtp_session(profile, key, False), reference(profile, key, False)
    assert isinstance(ours_tx, SrtpSession)
    sizes = [len(OPUS_FRAME), 0, 1, 160, 1200, 17, len(OPUS_FRAME)]  # shrinking after a big one too
    for seq, size in enumerate(sizes, start=0xFFFE):  # the SRTP index's rollover counter steps (§3.3.1)
        packet = plain(seq, (OPUS_FRAME * 40)[:size])
        ours = ours_tx.protect(packet)
        theirs = ref_tx.protect(packet)
        assert type(ours) is bytes
        assert ours == theirs and ours != packet
        assert ref_rx.unprotect(ours) == packet  # our protect -> pylibsrtp unprotect
        assert ours_rx.unprotect(theirs) == packet  # pylibsrtp protect -> our unprotect


def test_srtp_results_are_not_views_of_the_shared_buffer(suite: tuple[int, bytes]) -> None:
    """Each call's bytes stay valid after the next call reuses the preallocated buffer."""
    profile, key = suite
    tx, rx = srtp_session(profile, key, True), srtp_session(profile, key, False)
    first, second = plain(1), plain(2, bytes(range(256)) * 4)
    p1 = tx.protect(first)
    saved = bytes(p1)
    p2 = tx.protect(second)
    assert p1 == saved
    u1 = rx.unprotect(p1)
    u2 = rx.unprotect(p2)
    assert (u1, u2) == (first, second)
    r1 = tx.protect_rtcp(IWF_SR_SDES)
    saved = bytes(r1)
    tx.protect_rtcp(IWF_SR_SDES + bytes(400))
    assert r1 == saved


def test_srtp_replay_is_the_error_pylibsrtp_raises(suite: tuple[int, bytes]) -> None:
    profile, key = suite
    tx = reference(profile, key, True)
    ours, ref = srtp_session(profile, key, False), reference(profile, key, False)
    wire = {seq: tx.protect(plain(seq)) for seq in (0, 1, 2, 2000)}
    for seq in (0, 2, 1):  # in-window reordering is accepted
        assert outcome(ours.unprotect, wire[seq]) == outcome(ref.unprotect, wire[seq]) == plain(seq)
    replay = outcome(ours.unprotect, wire[1])
    assert replay == outcome(ref.unprotect, wire[1]) == (pylibsrtp.Error, REPLAY)
    assert outcome(ours.unprotect, wire[2000]) == outcome(ref.unprotect, wire[2000]) == plain(2000)
    # seq 2 is now 1998 behind: outside the 1024-packet window (§3.3.2)
    assert outcome(ours.unprotect, wire[2]) == outcome(ref.unprotect, wire[2]) == (pylibsrtp.Error, TOO_OLD)
    with pytest.raises(pylibsrtp.Error, match=r"^replay check failed \(bad index\)$"):
        ours.unprotect(wire[2000])


def test_srtp_tampered_packet_fails_authentication(suite: tuple[int, bytes]) -> None:
    profile, key = suite
    tx = reference(profile, key, True)
    ours, ref = srtp_session(profile, key, False), reference(profile, key, False)
    wire = tx.protect(plain(7))
    for at in (len(wire) - 1, 20, 2):  # tag, encrypted payload, authenticated header
        bad = bytearray(wire)
        bad[at] ^= 0x01
        got = outcome(ours.unprotect, bytes(bad))
        assert got == outcome(ref.unprotect, bytes(bad)) == (pylibsrtp.Error, AUTH_FAILURE)
    # a rejected forgery does not enter the replay window: the genuine packet still passes
    assert ours.unprotect(wire) == ref.unprotect(wire) == plain(7)
    # wrong key: authentication fails too
    stranger = srtp_session(profile, _key(len(key), salt=1), False)
    with pytest.raises(pylibsrtp.Error, match=r"^authentication failure$"):
        stranger.unprotect(tx.protect(plain(8)))


def test_srtcp_interop_replay_and_tamper(suite: tuple[int, bytes]) -> None:
    profile, key = suite
    ours_tx, ref_tx = srtp_session(profile, key, True), reference(profile, key, True)
    ours_rx, ref_rx = srtp_session(profile, key, False), reference(profile, key, False)
    reports = [IWF_SR_SDES + bytes(4 * n) for n in range(3)]  # three sizes
    wire: list[bytes] = []
    for report in reports:
        ours = ours_tx.protect_rtcp(report)
        assert type(ours) is bytes
        assert ours == ref_tx.protect_rtcp(report) != report  # SRTCP index 0, 1, 2 on both (§3.4)
        wire.append(ours)
    # our protect_rtcp -> pylibsrtp unprotect_rtcp, and the other way
    assert [ref_rx.unprotect_rtcp(w) for w in wire] == reports
    theirs = [reference(profile, key, True).protect_rtcp(reports[0])]
    assert ours_rx.unprotect_rtcp(theirs[0]) == reports[0]
    # from here on ours_rx and a pylibsrtp receiver in the same state (index 0 seen) get the same
    mirror = reference(profile, key, False)
    assert mirror.unprotect_rtcp(theirs[0]) == reports[0]

    def both(data: bytes) -> bytes | tuple[type[Exception], str]:
        got = outcome(ours_rx.unprotect_rtcp, data)
        assert got == outcome(mirror.unprotect_rtcp, data)
        return got

    assert both(wire[0]) == (pylibsrtp.Error, REPLAY)  # index 0 again (RFC 3711 §3.3.2)
    assert both(wire[2]) == reports[2]
    # the tag ends the packet for AES-CM (RFC 3711 §3.4); for AEAD the E flag + SRTCP index
    # follow it (RFC 7714 §9.1)
    tag_end = len(wire[1]) - (5 if profile in AEAD else 1)
    for at in (tag_end, 9, 1):  # the tag, the encrypted part, the authenticated header
        bad = bytearray(wire[1])
        bad[at] ^= 0x01
        assert both(bytes(bad)) == (pylibsrtp.Error, AUTH_FAILURE)
    assert both(wire[1]) == reports[1]  # the forgeries did not take its index
    assert both(wire[1]) == (pylibsrtp.Error, REPLAY)


def test_srtp_repeated_transmission_is_allowed_like_the_policy_says() -> None:
    """srtp_session sets allow_repeat_tx: the same packet protected twice gives the same bytes."""
    profile, length = PROFILES["AES_CM_128_HMAC_SHA1_80"]
    key = _key(length)
    ours, ref = srtp_session(profile, key, True), reference(profile, key, True)
    packet = plain(42)
    first = ours.protect(packet)
    assert ours.protect(packet) == first == ref.protect(packet) == ref.protect(packet)


def test_srtp_sizes_as_pylibsrtp() -> None:
    """pylibsrtp's 1500-byte buffer limits (RFC 3711 trailer room), same errors."""
    profile, length = PROFILES["AES_CM_128_HMAC_SHA1_80"]
    key = _key(length)
    ours, ref = srtp_session(profile, key, True), reference(profile, key, True)
    biggest_rtp = plain(1, bytes(1500 - 144 - 12))
    assert ours.protect(biggest_rtp) == ref.protect(biggest_rtp)
    too_big = plain(2, bytes(1500 - 144 - 11))
    assert (
        outcome(ours.protect, too_big) == outcome(ref.protect, too_big) == (ValueError, "packet is too long")
    )
    biggest_rtcp = IWF_SR_SDES + bytes(1500 - 148 - len(IWF_SR_SDES))
    assert ours.protect_rtcp(biggest_rtcp) == ref.protect_rtcp(biggest_rtcp)
    assert outcome(ours.protect_rtcp, biggest_rtcp + b"\0") == outcome(ref.protect_rtcp, biggest_rtcp + b"\0")
    rx, ref_rx = srtp_session(profile, key, False), reference(profile, key, False)
    huge = bytes(1501)
    assert (
        outcome(rx.unprotect, huge) == outcome(ref_rx.unprotect, huge) == (ValueError, "packet is too long")
    )
    assert outcome(rx.unprotect_rtcp, huge) == outcome(ref_rx.unprotect_rtcp, huge)
    # garbage of a legal size: libsrtp's answer, as pylibsrtp reports it
    junk = plain(3)[:12] + bytes(3)
    assert outcome(rx.unprotect, junk) == outcome(ref_rx.unprotect, junk)
    assert isinstance(outcome(rx.unprotect, junk), tuple)


def test_srtp_sessions_do_not_share_buffers() -> None:
    """Two legs' sessions, interleaved packet by packet, each keep their own stream."""
    profile, length = PROFILES["AES_CM_128_HMAC_SHA1_80"]
    key_a, key_b = _key(length), _key(length, salt=5)
    tx_a, tx_b = srtp_session(profile, key_a, True), srtp_session(profile, key_b, True)
    rx_a, rx_b = reference(profile, key_a, False), reference(profile, key_b, False)
    for seq in range(5):
        pa, pb = plain(seq, b"a" * (10 + seq)), plain(seq, b"b" * (200 - seq), ssrc=0x0BADCAFE)
        wa, wb = tx_a.protect(pa), tx_b.protect(pb)
        assert (rx_a.unprotect(wa), rx_b.unprotect(wb)) == (pa, pb)
