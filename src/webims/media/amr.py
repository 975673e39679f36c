"""AMR (narrowband) RTP payload format (RFC 4867 §4) <-> AMR storage format frames (§5.3).

FFmpeg's AMR codecs read and write storage-format frames: a header octet
``0 FT(4) Q(1) 00`` and the speech bits padded to an octet.  The RTP payload
starts with a 4-bit CMR and a table of contents (F, FT, Q per frame), either
bandwidth-efficient (bits packed, §4.3) or octet-aligned (§4.4).  Sans-IO; a
malformed payload raises :class:`~webims.media.rtp.RtpError`.
"""

from __future__ import annotations

from .rtp import RtpError

__all__ = ["AMR_NB_FRAME_BITS", "from_rtp_payload", "to_rtp_payload"]

#: Speech bits per frame type (RFC 4867 §3.6 / TS 26.101 table 1a): modes 0-7 (4.75..12.2 kbit/s), SID.
AMR_NB_FRAME_BITS: dict[int, int] = {0: 95, 1: 103, 2: 118, 3: 134, 4: 148, 5: 159, 6: 204, 7: 244, 8: 39}
_NO_DATA = 15
_CMR_NONE = 15


def _frame_bits(ft: int) -> int:
    if ft == _NO_DATA:
        return 0
    bits = AMR_NB_FRAME_BITS.get(ft)
    if bits is None:
        raise RtpError(f"AMR frame type {ft} not supported")
    return bits


def from_rtp_payload(payload: bytes, octet_aligned: bool) -> list[bytes]:
    """The storage-format frames carried in one RTP payload (no interleaving, no CRC)."""
    if not payload:
        raise RtpError("empty AMR payload")
    frames: list[bytes] = []
    if octet_aligned:
        toc: list[int] = []
        at = 1  # CMR octet
        while True:
            if at >= len(payload):
                raise RtpError("truncated AMR table of contents")
            entry = payload[at]
            at += 1
            toc.append(entry)
            if not entry & 0x80:
                break
        for entry in toc:
            ft = (entry >> 3) & 0x0F
            size = (_frame_bits(ft) + 7) // 8
            if at + size > len(payload):
                raise RtpError("truncated AMR speech frame")
            frames.append(bytes(((entry & 0x7C),)) + payload[at : at + size])
            at += size
        return frames
    total = len(payload) * 8
    value = int.from_bytes(payload, "big")

    def bits(pos: int, count: int) -> int:
        if pos + count > total:
            raise RtpError("truncated AMR payload")
        return (value >> (total - pos - count)) & ((1 << count) - 1)

    pos = 4  # CMR
    entries: list[tuple[int, int]] = []
    while True:
        entry = bits(pos, 6)
        pos += 6
        entries.append(((entry >> 1) & 0x0F, entry & 0x01))
        if not entry & 0x20:
            break
    for ft, q in entries:
        n = _frame_bits(ft)
        speech = bits(pos, n) if n else 0
        pos += n
        pad = (-n) % 8
        body = (speech << pad).to_bytes((n + pad) // 8, "big") if n else b""
        frames.append(bytes((ft << 3 | q << 2,)) + body)
    return frames


def to_rtp_payload(frames: list[bytes], octet_aligned: bool, cmr: int = _CMR_NONE) -> bytes:
    """One RTP payload carrying storage-format ``frames`` (RFC 4867 §4.3 / §4.4)."""
    if not frames:
        raise RtpError("no AMR frame")
    parsed: list[tuple[int, int, bytes]] = []
    for frame in frames:
        if not frame:
            raise RtpError("empty AMR storage frame")
        ft, q = (frame[0] >> 3) & 0x0F, (frame[0] >> 2) & 1
        n = _frame_bits(ft)
        if len(frame) - 1 < (n + 7) // 8:
            raise RtpError("short AMR storage frame")
        parsed.append((ft, q, frame[1 : 1 + (n + 7) // 8]))
    if octet_aligned:
        out = bytearray(((cmr & 0x0F) << 4,))
        for i, (ft, q, _) in enumerate(parsed):
            follow = 0x80 if i < len(parsed) - 1 else 0
            out.append(follow | ft << 3 | q << 2)
        for _, _, body in parsed:
            out += body
        return bytes(out)
    value = cmr & 0x0F
    count = 4
    for i, (ft, q, _) in enumerate(parsed):
        follow = 1 if i < len(parsed) - 1 else 0
        value = value << 6 | follow << 5 | ft << 1 | q
        count += 6
    for ft, _, body in parsed:
        n = _frame_bits(ft)
        if n:
            speech = int.from_bytes(body, "big") >> ((-n) % 8)
            value = value << n | speech
            count += n
    pad = (-count) % 8
    return (value << pad).to_bytes((count + pad) // 8, "big")
