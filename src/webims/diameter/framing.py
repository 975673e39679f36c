"""Stream framing of Diameter over TCP/SCTP (RFC 6733 §2.1, §3): bytes in, messages out."""

from __future__ import annotations

import struct

from .constants import DIAMETER_VERSION, HEADER_LENGTH, ResultCode
from .errors import DiameterError
from .message import Message, check_header, parse_header

_LENGTH = struct.Struct(">I")  # version (high byte) and Message Length (low 24 bits)

#: Default limit on one message. Cx messages with a large User-Data stay far below it.
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024


class StreamDecoder:
    """Cut a byte stream into Diameter messages.

    :meth:`feed` returns, in stream order, a :class:`Message` for each good frame
    and a :class:`DiameterError` for each bad one. An error with
    ``close_connection`` set (unsupported version, impossible or oversized
    message length) is the last item ever returned: the stream cannot be framed
    any further and the connection must be closed (after answering, when the
    error carries a request header).
    """

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < HEADER_LENGTH:
            raise ValueError("max_message_size below the header size")
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self.broken = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message | DiameterError]:
        if self.broken:
            return []
        self._buffer += data
        out: list[Message | DiameterError] = []
        pos = 0
        buf = self._buffer
        size = len(buf)
        decode = Message.decode
        limit = self.max_message_size
        while size - pos >= HEADER_LENGTH:
            length = _LENGTH.unpack_from(buf, pos)[0] & 0xFFFFFF
            if buf[pos] != DIAMETER_VERSION or length < HEADER_LENGTH or length > limit:
                header = parse_header(bytes(buf[pos : pos + HEADER_LENGTH]))
                try:
                    check_header(header)
                    raise DiameterError(
                        ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
                        f"message length {header.length} exceeds the limit of {limit}",
                        close_connection=True,
                        header=header,
                    )
                except DiameterError as exc:
                    out.append(exc)
                    self.broken = True
                    self._buffer = bytearray()
                    return out
            if size - pos < length:
                break
            frame = bytes(buf[pos : pos + length])
            pos += length
            try:
                out.append(decode(frame))
            except DiameterError as exc:
                out.append(exc)
        if pos:
            del buf[:pos]
        return out
