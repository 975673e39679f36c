"""Cutting SIP messages out of transports (RFC 3261 §18.3, RFC 5626 §3.5.1, RFC 7118 §5).

Stream transports (TCP, TLS) use :class:`StreamFramer`: bytes in, messages and
keep-alives out, Content-Length mandatory.  Message-per-frame transports (UDP
datagrams, WebSocket messages) use :func:`parse_frame`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ParseError
from .message import DEFAULT_LIMITS, Limits, Request, Response
from .parser import parse

__all__ = ["FramingError", "Ping", "Pong", "StreamFramer", "parse_frame"]


@dataclass(frozen=True)
class Ping:
    """A double-CRLF keep-alive ping (RFC 5626 §3.5.1); answer with :data:`PONG_BYTES`."""


@dataclass(frozen=True)
class Pong:
    """A single-CRLF keep-alive pong (RFC 5626 §3.5.1)."""


PING_BYTES = b"\r\n\r\n"
PONG_BYTES = b"\r\n"

Event = Request | Response | Ping | Pong


class FramingError(ParseError):
    """The stream lost its framing: answer if possible, then close the connection."""


# Content-Length (or its compact form "l"), its value possibly folded onto the next line.
_CONTENT_LENGTH_RE = re.compile(
    rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(?:\r?\n[ \t]+)?([^\r\n]*?)[ \t]*\r?$"
)


def parse_frame(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Event:
    """One UDP datagram or WebSocket message: a SIP message or a keep-alive."""
    if data == PING_BYTES:
        return Ping()
    if data == PONG_BYTES:
        return Pong()
    return parse(data, limits)


class StreamFramer:
    """Sans-IO framer for TCP/TLS (RFC 3261 §18.3: Content-Length delimits the body).

    ``role`` is "server" (a CRLF not followed by another is noise before a start
    line, §7.5; CRLFCRLF is a ping, even when it arrives byte by byte) or "client"
    (a CRLF is the pong to our ping; a CRLFCRLF arriving at once is a ping).
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS, role: str = "server") -> None:
        if role not in ("server", "client"):
            raise ValueError(f"role must be 'server' or 'client', not {role!r}")
        self._buf = bytearray()
        self._limits = limits
        self._client = role == "client"
        self._failed = False

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_event(self) -> Event | None:
        """The next complete event, or None when more bytes are needed.

        A :class:`FramingError` means the stream cannot be resynchronised; a plain
        :class:`ParseError` means one message was bad but framing holds.
        """
        if self._failed:
            raise FramingError("Stream framing lost")
        buf = self._buf
        while buf[:1] == b"\r":
            if buf[:4] == PING_BYTES:
                del buf[:4]
                return Ping()
            if buf[:2] != b"\r\n":
                if len(buf) == 1:
                    return None  # the start of a CRLF
                break  # a lone CR: left to the message parser to refuse
            if self._client:
                del buf[:2]
                return Pong()
            if len(buf) < 4 and PING_BYTES.startswith(buf):
                return None  # maybe the start of a ping
            del buf[:2]  # a stray CRLF before a start line (§7.5)
        if not buf:
            return None
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self._limits.max_message_bytes:
                self._failed = True
                raise FramingError("Message Too Large", 513)
            return None
        head = bytes(buf[:end])
        lengths = _CONTENT_LENGTH_RE.findall(head)
        if not lengths:
            self._failed = True
            raise FramingError("Missing Content-Length header")
        if len(set(lengths)) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 9:
            self._failed = True
            raise FramingError("Bad Content-Length header", line=lengths[0].decode("latin-1"))
        total = end + 4 + int(lengths[0])
        if total > self._limits.max_message_bytes:
            self._failed = True
            raise FramingError("Message Too Large", 513)
        if len(buf) < total:
            return None
        data = bytes(buf[:total])
        del buf[:total]
        return parse(data, self._limits, stream=True)

    def events(self) -> list[Event]:
        """All complete events now buffered (stops at, and raises, the first error)."""
        out: list[Event] = []
        while (event := self.next_event()) is not None:
            out.append(event)
        return out
