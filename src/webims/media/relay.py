"""The relay between the two legs, sans-IO: one :class:`Forwarder` per direction.

A forwarder takes plain RTP packets from one leg and returns the packets to
send on the other, in our outgoing stream (:class:`OutboundStream`: our SSRC,
sequence numbers and timestamps, RFC 3550 §7.2 "translator" that rewrites
SSRC, so a peer's SSRC change or a re-INVITE to another source never shows on
the other leg).

* Same codec on both sides: the packet is relayed without decoding; only
  payload type, sequence number, timestamp and SSRC are rewritten.
* Different codecs: the payload goes through a :class:`~.transcode.Transcoder`
  and timestamps are mapped between the clock rates.
* RFC 4733 telephone-events are relayed with payload-type mapping, or
  translated (timestamp and duration rescaled) when the clock rates differ;
  each DTMF digit is reported once, on its end packet (§2.5.1.4).
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ..sdp import Codec
from .rtp import RtpError, TelephoneEvent, payload_offset, rewrite_header
from .transcode import Transcoder

__all__ = ["Forwarder", "OutboundStream", "StreamPlan"]

_SEQ_TS_SSRC = struct.Struct("!HII")
_HEADER = struct.Struct("!BBHII")


class OutboundStream:
    """Our RTP stream on one leg: SSRC, next sequence number, sender counters (RFC 3550 §6.4.1)."""

    __slots__ = ("last_timestamp", "last_timestamp_time", "next_seq", "octets", "packets", "ssrc")

    def __init__(self, ssrc: int | None = None) -> None:
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.next_seq = secrets.randbits(16)  # random initial values, RFC 3550 §5.1
        self.packets = 0
        self.octets = 0
        self.last_timestamp = secrets.randbits(32)
        self.last_timestamp_time: float | None = None

    def sent(self, data: bytes, timestamp: int, now: float) -> None:
        self.packets += 1
        self.octets += len(data) - 12
        self.last_timestamp = timestamp
        self.last_timestamp_time = now


@dataclass(frozen=True)
class StreamPlan:
    """What one direction carries: the incoming and outgoing codec and telephone-event."""

    codec_in: Codec
    codec_out: Codec
    event_in: Codec | None = None
    event_out: Codec | None = None
    transcode: bool = False
    ptime_ms: int = 20


class Forwarder:
    """One direction of the relay (sans-IO): :meth:`forward` plain RTP in, plain RTP packets out."""

    def __init__(
        self,
        plan: StreamPlan,
        out: OutboundStream,
        on_dtmf: Callable[[str], None] | None = None,
    ) -> None:
        self.plan = plan
        self.out = out
        self.on_dtmf = on_dtmf
        self._audio_in = plan.codec_in.payload_type
        self._audio_out = plan.codec_out.payload_type
        self._event_in = plan.event_in.payload_type if plan.event_in is not None else -1
        self._event_out = plan.event_out.payload_type if plan.event_out is not None else -1
        self._clock_in = plan.codec_in.clock_rate
        self._clock_out = plan.codec_out.clock_rate
        self._transcoder = (
            Transcoder(plan.codec_in, plan.codec_out, plan.ptime_ms) if plan.transcode else None
        )
        #: The payload type :meth:`relay` handles (-1: none, every packet goes to forward()).
        self._relay_pt = self._audio_in if self._transcoder is None else -1
        self._source: int | None = None
        self._seq_delta = 0
        self._ts_delta = 0
        # transcoding: out_ts = anchor_out + (in_ts - anchor_in) * clock_out / clock_in
        self._anchor_in = 0
        self._anchor_out = 0
        self._next_out_ts = 0
        self._last_in_ts: int | None = None
        self._reported: set[int] = set()
        self.dropped = 0

    # -- the hot path ------------------------------------------------------------------------

    def relay(self, data: bytes, now: float) -> bytes | None:
        """The common case of :meth:`forward`, without its list: the packet to send, or None.

        A plain 12-byte-header audio packet of the current source, relayed
        without transcoding, comes back with its payload type, sequence number,
        timestamp and SSRC rewritten (as :func:`~.rtp.rewrite_header` does);
        for anything else (events, a new source, CSRCs, padding, transcoding)
        the answer is None and the caller uses :meth:`forward`.
        """
        if len(data) < 12 or data[0] != 0x80:
            return None
        b1 = data[1]
        if b1 & 0x7F != self._relay_pt:
            return None
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
        if ssrc != self._source:
            return None
        out = self.out
        seq = (seq + self._seq_delta) & 0xFFFF
        ts = (ts + self._ts_delta) & 0xFFFFFFFF
        packet = _HEADER.pack(0x80, (b1 & 0x80) | self._audio_out, seq, ts, out.ssrc) + data[12:]
        out.next_seq = (seq + 1) & 0xFFFF
        out.packets += 1  # OutboundStream.sent(), inlined
        out.octets += len(packet) - 12
        out.last_timestamp = ts
        out.last_timestamp_time = now
        return packet

    def forward(self, data: bytes, now: float) -> list[bytes]:
        """Packets to send on the other leg for one received RTP packet (maybe none)."""
        if len(data) < 12:
            self.dropped += 1
            return []
        pt = data[1] & 0x7F
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
        if ssrc != self._source:
            self._new_source(ssrc, seq, ts, now)
        try:
            if pt == self._audio_in:
                if self._transcoder is None:
                    out = self.out
                    out_ts = (ts + self._ts_delta) & 0xFFFFFFFF
                    packet = rewrite_header(data, self._audio_out, seq + self._seq_delta, out_ts, out.ssrc)
                    out.next_seq = (seq + self._seq_delta + 1) & 0xFFFF
                    out.packets += 1  # OutboundStream.sent(), inlined on the hot path
                    out.octets += len(packet) - 12
                    out.last_timestamp = out_ts
                    out.last_timestamp_time = now
                    return [packet]
                return self._transcode(data, ts, now)
            if pt == self._event_in:
                return self._event(data, seq, ts, now)
        except RtpError:
            self.dropped += 1
            return []
        self.dropped += 1  # comfort noise, RED, FEC... not negotiated on the other side
        return []

    # -- source changes ----------------------------------------------------------------------

    def _new_source(self, ssrc: int, seq: int, ts: int, now: float) -> None:
        """A new (or changed) incoming SSRC: keep our outgoing sequence and timestamps continuous."""
        self._source = ssrc
        self._seq_delta = (self.out.next_seq - seq) & 0xFFFF
        elapsed = 0.02
        if self.out.last_timestamp_time is not None:
            elapsed = max(0.02, now - self.out.last_timestamp_time)
        continued = (self.out.last_timestamp + int(elapsed * self._clock_out)) & 0xFFFFFFFF
        self._ts_delta = (continued - ts) & 0xFFFFFFFF
        self._resync(ts, continued)

    def _resync(self, in_ts: int, out_ts: int) -> None:
        self._anchor_in = in_ts
        self._anchor_out = out_ts
        self._next_out_ts = out_ts
        self._last_in_ts = in_ts

    def _map_ts(self, in_ts: int, clock_out: int) -> int:
        delta = (in_ts - self._anchor_in) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        return (self._anchor_out + delta * clock_out // self._clock_in) & 0xFFFFFFFF

    def _stamp(self, payload: bytes, pt: int, ts: int, marker: bool, now: float) -> bytes:
        seq = self.out.next_seq
        self.out.next_seq = (seq + 1) & 0xFFFF
        packet = _HEADER.pack(0x80, (0x80 if marker else 0) | pt, seq, ts, self.out.ssrc) + payload
        self.out.sent(packet, ts, now)
        return packet

    # -- transcoding -------------------------------------------------------------------------

    def _transcode(self, data: bytes, ts: int, now: float) -> list[bytes]:
        assert self._transcoder is not None
        payload = data[payload_offset(data) :]
        if data[0] & 0x20 and payload:
            payload = payload[: len(payload) - payload[-1]]
        marker = False
        expected = self._map_ts(ts, self._clock_out)
        step = self._transcoder.rtp_step
        if self._last_in_ts is not None and ((ts - self._last_in_ts) & 0xFFFFFFFF) >= 1 << 31:
            return []  # late (reordered) packet: its time has passed
        drift = (expected - self._next_out_ts) & 0xFFFFFFFF
        if drift >= 1 << 31:
            drift -= 1 << 32
        if abs(drift) > 2 * step:  # a gap (DTX, loss, new talkspurt): jump ahead
            self._next_out_ts = expected
            marker = True
        self._last_in_ts = ts
        out: list[bytes] = []
        for frame in self._transcoder.transcode(payload):
            out.append(self._stamp(frame, self._audio_out, self._next_out_ts, marker, now))
            self._next_out_ts = (self._next_out_ts + step) & 0xFFFFFFFF
            marker = False
        return out

    # -- RFC 4733 events ---------------------------------------------------------------------

    def _event(self, data: bytes, seq: int, ts: int, now: float) -> list[bytes]:
        offset = payload_offset(data)
        event = TelephoneEvent.parse(data[offset:])
        if event.end and ts not in self._reported:
            self._reported.add(ts)
            if len(self._reported) > 64:
                self._reported = {ts}
            if self.on_dtmf is not None:
                self.on_dtmf(event.digit)
        if self.plan.event_out is None:
            return []
        clock_out = self.plan.event_out.clock_rate
        clock_in = self.plan.event_in.clock_rate if self.plan.event_in is not None else clock_out
        if self._transcoder is None and clock_in == clock_out:
            out_ts = (ts + self._ts_delta) & 0xFFFFFFFF
            packet = rewrite_header(data, self._event_out, seq + self._seq_delta, out_ts, self.out.ssrc)
            self.out.next_seq = (seq + self._seq_delta + 1) & 0xFFFF
            self.out.sent(packet, out_ts, now)
            return [packet]
        # Translate: the event's start time and duration in the other clock (RFC 4733 §2.5.1.2).
        out_ts = (
            (ts + self._ts_delta) & 0xFFFFFFFF if self._transcoder is None else self._map_ts(ts, clock_out)
        )
        duration = min(0xFFFF, event.duration * clock_out // clock_in)
        body = TelephoneEvent(event.event, event.end, event.volume, duration).to_bytes()
        return [self._stamp(body, self._event_out, out_ts, bool(data[1] & 0x80), now)]
