"""RTCP (RFC 3550 §6) and per-stream reception statistics, sans-IO.

* :func:`parse_rtcp` splits a compound packet into :class:`SenderReport`,
  :class:`ReceiverReport`, :class:`SourceDescription`, :class:`Goodbye` and
  :class:`OtherRtcp` (feedback, XR, APP: kept as bytes);
  each has ``to_bytes()``.
* :class:`ReceptionStats` is RFC 3550 Appendix A.1 (sequence validation),
  A.3 (expected/lost/fraction lost) and A.8 (interarrival jitter); it makes
  the :class:`ReportBlock` of our RTCP reports.
* :func:`round_trip_time` is §6.4.1's RTT from a report block's LSR/DLSR.

Time is an argument (seconds, ``now``); NTP times are computed from it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from .rtp import RtpError

__all__ = [
    "Goodbye",
    "OtherRtcp",
    "ReceiverReport",
    "ReceptionStats",
    "ReportBlock",
    "RtcpPacket",
    "SenderReport",
    "SourceDescription",
    "ntp_middle32",
    "ntp_timestamp",
    "parse_rtcp",
    "round_trip_time",
    "serialize_rtcp",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
SDES_CNAME = 1
#: Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch).
NTP_UNIX_OFFSET = 2208988800

_COMMON = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IB3sIIII")
_SR_INFO = struct.Struct("!IIIII")


def ntp_timestamp(unix_time: float) -> int:
    """The 64-bit NTP timestamp of a Unix time (RFC 3550 §4)."""
    seconds = unix_time + NTP_UNIX_OFFSET
    whole = int(seconds)
    return (whole & 0xFFFFFFFF) << 32 | int((seconds - whole) * (1 << 32)) & 0xFFFFFFFF


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, as LSR and DLSR use them (RFC 3550 §6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report block (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int  # 8-bit fixed point (lost/expected * 256)
    packets_lost: int  # cumulative, signed 24-bit
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # RTP timestamp units
    lsr: int = 0
    dlsr: int = 0  # 1/65536 s

    def to_bytes(self) -> bytes:
        lost = max(-(1 << 23), min((1 << 23) - 1, self.packets_lost)) & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc,
            self.fraction_lost & 0xFF,
            lost.to_bytes(3, "big"),
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr & 0xFFFFFFFF,
            self.dlsr & 0xFFFFFFFF,
        )

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = int.from_bytes(lost, "big")
        if cumulative & 0x800000:
            cumulative -= 1 << 24
        return cls(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr)


def _header(count: int, packet_type: int, body_len: int) -> bytes:
    return _COMMON.pack(0x80 | count, packet_type, (body_len + 4) // 4 - 1)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (RFC 3550 §6.4.1)."""

    ssrc: int
    ntp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = field(default=())

    def to_bytes(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + _SR_INFO.pack(
            self.ntp >> 32,
            self.ntp & 0xFFFFFFFF,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )
        body += b"".join(r.to_bytes() for r in self.reports)
        return _header(len(self.reports), RTCP_SR, len(body)) + body


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (RFC 3550 §6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = field(default=())

    def to_bytes(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(r.to_bytes() for r in self.reports)
        return _header(len(self.reports), RTCP_RR, len(body)) + body


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (RFC 3550 §6.5) with one chunk per source: ``(ssrc, ((item type, value), ...))``."""

    chunks: tuple[tuple[int, tuple[tuple[int, bytes], ...]], ...]

    @classmethod
    def cname(cls, ssrc: int, cname: str) -> SourceDescription:
        return cls(((ssrc, ((SDES_CNAME, cname.encode()),)),))

    def to_bytes(self) -> bytes:
        body = bytearray()
        for ssrc, items in self.chunks:
            chunk = bytearray(struct.pack("!I", ssrc))
            for item_type, value in items:
                chunk += bytes((item_type, len(value[:255]))) + value[:255]
            chunk += b"\x00" * (4 - len(chunk) % 4)  # null item(s) to a 32-bit boundary (§6.5)
            body += chunk
        return _header(len(self.chunks), RTCP_SDES, len(body)) + bytes(body)


@dataclass(frozen=True, slots=True)
class Goodbye:
    """BYE (RFC 3550 §6.6)."""

    sources: tuple[int, ...]
    reason: str = ""

    def to_bytes(self) -> bytes:
        body = b"".join(struct.pack("!I", s) for s in self.sources)
        if self.reason:
            text = self.reason.encode()[:255]
            reason = bytes((len(text),)) + text
            body += reason + b"\x00" * (-len(reason) % 4)
        return _header(len(self.sources), RTCP_BYE, len(body)) + body


@dataclass(frozen=True, slots=True)
class OtherRtcp:
    """Any other RTCP packet type (RTPFB/PSFB RFC 4585, XR RFC 3611, APP), kept whole."""

    packet_type: int
    data: bytes

    def to_bytes(self) -> bytes:
        return self.data


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | OtherRtcp


def _parse_one(packet_type: int, count: int, data: bytes) -> RtcpPacket:
    body = data[4:]
    if packet_type in (RTCP_SR, RTCP_RR):
        fixed = 24 if packet_type == RTCP_SR else 4
        if len(body) < fixed + 24 * count:
            raise RtpError("truncated RTCP report")
        (ssrc,) = struct.unpack_from("!I", body)
        blocks = tuple(ReportBlock.parse(body, fixed + 24 * i) for i in range(count))
        if packet_type == RTCP_RR:
            return ReceiverReport(ssrc, blocks)
        msw, lsw, rtp_ts, packets, octets = _SR_INFO.unpack_from(body, 4)
        return SenderReport(ssrc, msw << 32 | lsw, rtp_ts, packets, octets, blocks)
    if packet_type == RTCP_SDES:
        chunks: list[tuple[int, tuple[tuple[int, bytes], ...]]] = []
        at = 0
        for _ in range(count):
            if at + 4 > len(body):
                raise RtpError("truncated SDES chunk")
            (ssrc,) = struct.unpack_from("!I", body, at)
            at += 4
            items: list[tuple[int, bytes]] = []
            while True:
                if at >= len(body):
                    raise RtpError("unterminated SDES chunk")
                item_type = body[at]
                if item_type == 0:
                    at = (at + 4) & ~3  # skip the null octets to the next 32-bit boundary
                    break
                if at + 2 > len(body) or at + 2 + body[at + 1] > len(body):
                    raise RtpError("truncated SDES item")
                items.append((item_type, bytes(body[at + 2 : at + 2 + body[at + 1]])))
                at += 2 + body[at + 1]
            chunks.append((ssrc, tuple(items)))
        return SourceDescription(tuple(chunks))
    if packet_type == RTCP_BYE:
        if len(body) < 4 * count:
            raise RtpError("truncated BYE")
        sources = struct.unpack_from(f"!{count}I", body)
        reason = ""
        if len(body) > 4 * count:
            n = body[4 * count]
            reason = bytes(body[4 * count + 1 : 4 * count + 1 + n]).decode("utf-8", "replace")
        return Goodbye(tuple(sources), reason)
    return OtherRtcp(packet_type, bytes(data))


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a (compound) RTCP packet (RFC 3550 §6.1); :class:`RtpError` if malformed."""
    packets: list[RtcpPacket] = []
    at = 0
    if len(data) < 4:
        raise RtpError("RTCP packet shorter than its header")
    while at < len(data):
        if len(data) - at < 4:
            raise RtpError("trailing bytes after RTCP packet")
        b0, packet_type, words = _COMMON.unpack_from(data, at)
        if b0 >> 6 != 2:
            raise RtpError("not an RTCP version 2 packet")
        end = at + 4 * (words + 1)
        if end > len(data):
            raise RtpError("RTCP length beyond the datagram")
        chunk = data[at:end]
        if b0 & 0x20:  # padding (§6.4.1): only the last packet of a compound may have it
            pad = chunk[-1]
            if pad == 0 or pad > len(chunk) - 4:
                raise RtpError("bad RTCP padding")
            chunk = chunk[: len(chunk) - pad]
        packets.append(_parse_one(packet_type, b0 & 0x1F, bytes(chunk)))
        at = end
    return packets


def serialize_rtcp(packets: Sequence[RtcpPacket]) -> bytes:
    """A compound RTCP packet."""
    return b"".join(p.to_bytes() for p in packets)


def round_trip_time(block: ReportBlock, arrival_ntp: int) -> float | None:
    """RTT in seconds from a report block about our stream (RFC 3550 §6.4.1, "A - LSR - DLSR").

    None when the receiver has had no SR from us yet (LSR 0).
    """
    if block.lsr == 0:
        return None
    rtt = (ntp_middle32(arrival_ntp) - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt > 0x80000000:  # negative (clock steps): no measurement
        return None
    return rtt / 65536.0


_MAX_DROPOUT = 3000
_MAX_MISORDER = 100
_MIN_SEQUENTIAL = 2
_SEQ_MOD = 1 << 16


class ReceptionStats:
    """Reception statistics of one remote source (RFC 3550 Appendix A.1, A.3, A.8).

    Call :meth:`update` for each RTP packet with its sequence number, RTP
    timestamp and arrival time (seconds).  ``clock_rate`` converts arrival
    times to timestamp units for the jitter.
    """

    __slots__ = (
        "_arrival_base",
        "_bad_seq",
        "_expected_prior",
        "_last_sr",
        "_last_sr_arrival",
        "_probation",
        "_received_prior",
        "_transit",
        "base_seq",
        "bytes",
        "clock_rate",
        "cycles",
        "jitter",
        "max_seq",
        "received",
        "ssrc",
        "valid",
    )

    def __init__(self, ssrc: int, seq: int, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.bytes = 0
        self.jitter = 0.0
        self._transit: float | None = None
        self._arrival_base = 0.0
        self._last_sr = 0
        self._last_sr_arrival = 0.0
        self._init_seq(seq)
        self.max_seq = (seq - 1) & 0xFFFF
        self._probation = _MIN_SEQUENTIAL
        self.valid = False

    def _init_seq(self, seq: int) -> None:  # A.1 init_seq()
        self.base_seq = seq
        self.max_seq = seq
        self._bad_seq = _SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def update(self, seq: int, timestamp: int, arrival: float, size: int = 0) -> bool:
        """Account for one packet; False when A.1 says to drop it (invalid, probation)."""
        if not self._probation and seq == (self.max_seq + 1) & 0xFFFF:
            # The next packet in order (the common case of A.1, inlined).
            if seq == 0:
                self.cycles += _SEQ_MOD
            self.max_seq = seq
            self.received += 1
        elif not self._update_seq(seq):
            return False
        self.bytes += size
        # A.8: transit in timestamp units; J += (|D| - J) / 16.
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = transit - self._transit
            if d < 0:
                d = -d
            if d < 1 << 31:  # a timestamp wrap or jump is not jitter
                self.jitter += (d - self.jitter) / 16.0
        self._transit = transit
        return True

    def _update_seq(self, seq: int) -> bool:  # A.1 update_seq()
        udelta = (seq - self.max_seq) & 0xFFFF
        if self._probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self._probation -= 1
                self.max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    self.valid = True
                    return True
            else:
                self._probation = _MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < _MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += _SEQ_MOD
            self.max_seq = seq
        elif udelta <= _SEQ_MOD - _MAX_MISORDER:
            if seq == self._bad_seq:
                self._init_seq(seq)  # the source restarted: resynchronize
            else:
                self._bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: duplicate or reordered packet
        self.received += 1
        return True

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.valid else 0

    @property
    def lost(self) -> int:
        """Cumulative number of packets lost (A.3; negative with duplicates)."""
        return self.expected - self.received if self.valid else 0

    @property
    def jitter_seconds(self) -> float:
        return self.jitter / self.clock_rate

    def sender_report_received(self, ntp: int, now: float) -> None:
        """Remember an SR from this source for LSR/DLSR (§6.4.1)."""
        self._last_sr = ntp_middle32(ntp)
        self._last_sr_arrival = now

    def report_block(self, now: float) -> ReportBlock:
        """A report block for our next SR/RR; advances the fraction-lost interval (A.3)."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self.received - self._received_prior
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        dlsr = int((now - self._last_sr_arrival) * 65536) if self._last_sr else 0
        return ReportBlock(
            self.ssrc, fraction, self.lost, self.extended_max, int(self.jitter), self._last_sr, dlsr
        )
