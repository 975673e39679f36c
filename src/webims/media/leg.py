"""What both legs of a session share: reception statistics, RTCP reports, media timeout.

A leg receives RTP and RTCP (already decrypted by the subclass), keeps RFC
3550 statistics about the remote source, answers with its own SR/RR + SDES
every few seconds (§6.2, interval randomized 0.5-1.5 times, §6.3.1), and
measures the round-trip time from the report blocks about our stream
(§6.4.1).  :meth:`MediaLeg.stats` gives a :class:`~.api.LegStats` with a MOS
from :func:`~.api.estimate_mos`.  The subclasses do the I/O.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable

from .api import LegSide, LegStats, estimate_mos
from .relay import OutboundStream
from .rtcp import (
    ReceiverReport,
    ReceptionStats,
    SenderReport,
    SourceDescription,
    ntp_timestamp,
    parse_rtcp,
    round_trip_time,
    serialize_rtcp,
)
from .rtp import RtpError

__all__ = ["RTCP_INTERVAL", "MediaLeg"]

#: Seconds between our RTCP reports (RFC 3550 §6.2: 5 s minimum for a two-party session).
RTCP_INTERVAL = 5.0
_SEQ_TS_SSRC = struct.Struct("!HII")

RtpSink = Callable[[bytes, float], None]


class MediaLeg:
    """One side of a media session (base class; subclasses implement :meth:`send_packet`)."""

    side: LegSide

    def __init__(self, side: LegSide, cname: str) -> None:
        self.side = side
        self.cname = cname
        self.out = OutboundStream()
        self.rx: ReceptionStats | None = None
        self.clock_rate = 8000
        self.codec_name = ""
        self.sink: RtpSink | None = None
        self.last_rx: float | None = None
        self.rtt: float | None = None
        self.packets_received = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.packets_sent = 0
        self.timed_out = False
        #: Wall clock for NTP timestamps in SR and RTT (RFC 3550 §4); replaceable in tests.
        self.wall_clock: Callable[[], float] = time.time
        self._next_rtcp: float | None = None

    # -- receiving (called by subclasses with plain packets) ------------------------------

    def rtp_received(self, data: bytes, now: float) -> None:
        if len(data) < 12:
            return
        self.last_rx = now
        self.packets_received += 1
        self.bytes_received += len(data)
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
        rx = self.rx
        if rx is None or rx.ssrc != ssrc:
            rx = self.rx = ReceptionStats(ssrc, seq, self.clock_rate)
        rx.update(seq, ts, now, len(data))
        sink = self.sink
        if sink is not None:
            sink(data, now)

    def rtcp_received(self, data: bytes, now: float) -> None:
        self.last_rx = now
        try:
            packets = parse_rtcp(data)
        except RtpError:
            return
        arrival = ntp_timestamp(self.wall_clock())
        for packet in packets:
            if isinstance(packet, SenderReport) and self.rx is not None and packet.ssrc == self.rx.ssrc:
                self.rx.sender_report_received(packet.ntp, now)
            if isinstance(packet, SenderReport | ReceiverReport):
                for block in packet.reports:
                    if block.ssrc == self.out.ssrc:
                        rtt = round_trip_time(block, arrival)
                        if rtt is not None:
                            self.rtt = rtt

    # -- sending ---------------------------------------------------------------------------

    def send_packet(self, data: bytes, rtcp: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def send_rtp(self, data: bytes) -> None:
        self.packets_sent += 1
        self.bytes_sent += len(data)
        self.send_packet(data, False)

    def make_rtcp(self, now: float) -> bytes:
        """Our compound report: SR if we sent media since the last one, else RR; then SDES CNAME."""
        blocks = (self.rx.report_block(now),) if self.rx is not None and self.rx.valid else ()
        ntp = ntp_timestamp(self.wall_clock())
        out = self.out
        report: SenderReport | ReceiverReport
        if out.packets and out.last_timestamp_time is not None:
            ts = out.last_timestamp + int((now - out.last_timestamp_time) * self.clock_rate)
            report = SenderReport(out.ssrc, ntp, ts & 0xFFFFFFFF, out.packets, out.octets, blocks)
        else:
            report = ReceiverReport(out.ssrc, blocks)
        return serialize_rtcp([report, SourceDescription.cname(out.ssrc, self.cname)])

    def rtcp_due(self, now: float) -> bool:
        """True (and the next report scheduled) when a report should go out now."""
        if self._next_rtcp is None:
            self._next_rtcp = now + RTCP_INTERVAL * random.uniform(0.1, 0.6)
            return False
        if now < self._next_rtcp:
            return False
        self._next_rtcp = now + RTCP_INTERVAL * random.uniform(0.5, 1.5)
        return True

    def send_rtcp(self, now: float) -> None:
        self.send_packet(self.make_rtcp(now), True)

    # -- statistics --------------------------------------------------------------------------

    def stats(self) -> LegStats:
        rx = self.rx
        lost = rx.lost if rx is not None else 0
        expected = rx.expected if rx is not None else 0
        fraction = max(0.0, lost / expected) if expected > 0 else 0.0
        jitter_ms = rx.jitter_seconds * 1000 if rx is not None else 0.0
        rtt_ms = self.rtt * 1000 if self.rtt is not None else None
        codec = self.codec_name
        mos = estimate_mos(fraction, jitter_ms, rtt_ms, codec) if self.packets_received else 0.0
        return LegStats(
            side=self.side,
            codec=codec,
            packets_sent=self.packets_sent,
            packets_received=self.packets_received,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            packets_lost=max(0, lost),
            fraction_lost=fraction,
            jitter_ms=jitter_ms,
            rtt_ms=rtt_ms,
            mos=mos,
        )
