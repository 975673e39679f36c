"""RTP packets (RFC 3550 §5) and RFC 4733 telephone-events, sans-IO.

:func:`parse_rtp` / :meth:`RtpPacket.to_bytes` for the general case;
:func:`rewrite_header` for the relay's hot path (payload type, sequence
number, timestamp and SSRC rewritten in a copy, header extension and CSRCs
dropped).  :class:`TelephoneEvent` is the RFC 4733 §2.3 payload.
:func:`is_rtcp` demultiplexes RTP and RTCP on one port (RFC 5761 §4).

Every malformed input raises :class:`RtpError` (nothing else escapes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "DTMF_EVENTS",
    "RtpError",
    "RtpPacket",
    "TelephoneEvent",
    "is_rtcp",
    "is_rtp_or_rtcp",
    "parse_rtp",
    "payload_offset",
    "rewrite_header",
]

RTP_VERSION = 2
_HEADER = struct.Struct("!BBHII")
_EXT = struct.Struct("!HH")
_EVENT = struct.Struct("!BBH")

#: RFC 4733 §3.2 (table 1): DTMF event codes 0-15.
DTMF_EVENTS = "0123456789*#ABCD"


class RtpError(ValueError):
    """A datagram that is not a valid RTP packet (it is dropped: there is no wire answer)."""


def is_rtp_or_rtcp(data: bytes) -> bool:
    """First byte in 128..191: RTP or RTCP (RFC 7983 §7 demultiplexing with STUN and DTLS)."""
    return len(data) > 0 and 127 < data[0] < 192


def is_rtcp(data: bytes) -> bool:
    """RTCP when the second byte (marker + payload type) is 192..223 (RFC 5761 §4)."""
    return len(data) > 1 and 191 < data[1] < 224


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """An RTP packet (RFC 3550 §5.1 fixed header, §5.3.1 header extension)."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = field(default=())
    extension_profile: int | None = None
    extension_data: bytes = b""
    padding: int = 0

    def to_bytes(self) -> bytes:
        """The packet on the wire (padding, when given, as RFC 3550 §5.1 describes)."""
        if not 0 <= self.payload_type < 128:
            raise RtpError("payload type out of range")
        b0 = RTP_VERSION << 6 | len(self.csrcs)
        if self.padding:
            b0 |= 0x20
        if self.extension_profile is not None:
            b0 |= 0x10
        out = bytearray(
            _HEADER.pack(
                b0,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc,
            )
        )
        for csrc in self.csrcs:
            out += struct.pack("!I", csrc)
        if self.extension_profile is not None:
            if len(self.extension_data) % 4:
                raise RtpError("header extension length is not a multiple of 4")
            out += _EXT.pack(self.extension_profile, len(self.extension_data) // 4) + self.extension_data
        out += self.payload
        if self.padding:
            out += bytes(self.padding - 1) + bytes((self.padding,))
        return bytes(out)


def payload_offset(data: bytes) -> int:
    """Where the payload of an RTP packet starts (after CSRCs and header extension)."""
    if len(data) < 12 or data[0] >> 6 != RTP_VERSION:
        raise RtpError("not an RTP version 2 packet")
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if len(data) < offset + 4:
            raise RtpError("truncated header extension")
        _, words = _EXT.unpack_from(data, offset)
        offset += 4 + 4 * words
    if offset > len(data):
        raise RtpError("truncated RTP header")
    return offset


def _payload_end(data: bytes, offset: int) -> int:
    end = len(data)
    if data[0] & 0x20:
        pad = data[-1]
        if pad == 0 or offset + pad > end:
            raise RtpError("bad padding")
        end -= pad
    return end


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse an RTP packet (RFC 3550 §5.1); :class:`RtpError` if malformed or RTCP."""
    if is_rtcp(data):
        raise RtpError("RTCP, not RTP")
    offset = payload_offset(data)
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    cc = b0 & 0x0F
    csrcs = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
    profile: int | None = None
    ext = b""
    if b0 & 0x10:
        at = 12 + 4 * cc
        profile, words = _EXT.unpack_from(data, at)
        ext = bytes(data[at + 4 : at + 4 + 4 * words])
    end = _payload_end(data, offset)
    return RtpPacket(
        payload_type=b1 & 0x7F,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(b1 & 0x80),
        csrcs=tuple(csrcs),
        extension_profile=profile,
        extension_data=ext,
        padding=data[-1] if b0 & 0x20 else 0,
    )


def rewrite_header(data: bytes, payload_type: int, seq: int, timestamp: int, ssrc: int) -> bytes:
    """A copy of an RTP packet with a new payload type, sequence number, timestamp and SSRC.

    The marker bit and payload (with padding) are kept; CSRCs and the header
    extension are dropped, as a translator that rewrites the SSRC must (RFC
    3550 §7.3; the IMS peer did not negotiate the browser's extensions).
    """
    first = data[0] if data else 0
    # A plain 12-byte header (no CSRC, extension or padding) is the usual case: no parsing.
    offset = 12 if first == 0x80 and len(data) >= 12 else payload_offset(data)
    header = _HEADER.pack(
        0x80 | (first & 0x20), (data[1] & 0x80) | payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
    )
    return header + data[offset:]


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """An RFC 4733 §2.3 named-event payload (one event, no redundancy)."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < 4:
            raise RtpError("telephone-event payload shorter than 4 bytes")
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def to_bytes(self) -> bytes:
        if not (0 <= self.event < 256 and 0 <= self.volume < 64 and 0 <= self.duration < 65536):
            raise RtpError("telephone-event field out of range")
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str:
        """The DTMF digit (RFC 4733 §3.2), or ``event:N`` for other events."""
        return DTMF_EVENTS[self.event] if self.event < len(DTMF_EVENTS) else f"event:{self.event}"
