"""SDP lines and the typed values of the fixed-format ones (RFC 8866 §5, §9).

A session description is a list of ``<type>=<value>`` lines (RFC 8866 §5).
:class:`Line` keeps one line exactly as received, so that an unmodified
description serializes byte for byte.  The typed classes here (:class:`Origin`,
:class:`Connection`, :class:`Bandwidth`, :class:`Timing`, :class:`MediaLine`,
:class:`Attribute`) parse a line's value and render a new one; they are used
only when a line is read or changed through the model.

Each ``parse`` raises :class:`~webims.sdp.errors.SdpError` (400) on a value
that does not match the RFC 8866 §9 grammar, and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import SdpError

# RFC 8866 §9: token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E
_TOKEN = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+\Z")
_DIGITS = re.compile(r"[0-9]{1,20}\Z")
# A non-whitespace run of visible characters (RFC 5234 VCHAR; UTF-8 beyond ASCII allowed).
_NONWS = re.compile(r"[^\x00-\x20\x7f]+\Z")

#: Line types defined by RFC 8866 §5, in the order the session part uses them.
SESSION_TYPES = "vosiuepcbtrzka"
#: Line types allowed in a media description (RFC 8866 §5).
MEDIA_TYPES = "micbka"


def is_token(text: str) -> bool:
    """True if ``text`` is an RFC 8866 §9 ``token``."""
    return _TOKEN.match(text) is not None


def check_token(text: str, what: str) -> str:
    """``text`` if it is a token, else :class:`SdpError` naming ``what``."""
    if _TOKEN.match(text) is None:
        raise SdpError(f"bad {what}")
    return text


def check_nonws(text: str, what: str) -> str:
    """``text`` if it is a non-empty run of visible characters."""
    if _NONWS.match(text) is None:
        raise SdpError(f"bad {what}")
    return text


def parse_uint(text: str, what: str, maximum: int | None = None) -> int:
    """A decimal integer of at most 20 ASCII digits (and at most ``maximum``)."""
    if _DIGITS.match(text) is None:
        raise SdpError(f"bad {what}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise SdpError(f"{what} out of range")
    return value


def parse_port(text: str) -> int:
    """A transport port 0..65535 (RFC 8866 §9 ``port``)."""
    return parse_uint(text, "port", 65535)


@dataclass(frozen=True, slots=True)
class Line:
    """One SDP line: its type letter and its value, exactly as received."""

    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.type}={self.value}"


@dataclass(frozen=True, slots=True)
class Attribute:
    """An ``a=`` line (RFC 8866 §5.13): ``name`` or ``name:value``.

    ``value`` is None for a property attribute (``a=rtcp-mux``) and ``""`` for
    ``a=name:`` with an empty value, so that rendering is exact.
    """

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Attribute:
        """Split the value of an ``a=`` line at its first colon."""
        name, colon, value = text.partition(":")
        if _TOKEN.match(name) is None:
            raise SdpError("bad attribute name")
        return cls(name, value if colon else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"

    def to_line(self) -> Line:
        return Line("a", str(self))


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`` (RFC 8866 §5.2)."""

    username: str
    sess_id: str
    sess_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    unicast_address: str = "127.0.0.1"

    @classmethod
    def parse(cls, text: str) -> Origin:
        parts = text.split(" ")
        if len(parts) != 6:
            raise SdpError("bad origin")
        username, sess_id, version, nettype, addrtype, address = parts
        check_nonws(username, "origin username")
        parse_uint(sess_id, "sess-id")
        return cls(
            username,
            sess_id,
            parse_uint(version, "sess-version"),
            check_token(nettype, "nettype"),
            check_token(addrtype, "addrtype"),
            check_nonws(address, "origin address"),
        )

    def __str__(self) -> str:
        return (
            f"{self.username} {self.sess_id} {self.sess_version} "
            f"{self.nettype} {self.addrtype} {self.unicast_address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (RFC 8866 §5.7).

    For multicast IP4 the address may carry ``/<ttl>[/<number>]``; for IP6
    ``/<number>``.  ``ttl`` and ``number`` hold those suffixes.
    """

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"
    ttl: int | None = None
    number: int | None = None

    @classmethod
    def parse(cls, text: str) -> Connection:
        parts = text.split(" ")
        if len(parts) != 3:
            raise SdpError("bad connection")
        nettype, addrtype, full = parts
        check_token(nettype, "nettype")
        check_token(addrtype, "addrtype")
        check_nonws(full, "connection address")
        ttl: int | None = None
        number: int | None = None
        address = full
        if addrtype in ("IP4", "IP6") and "/" in full:
            address, *suffix = full.split("/")
            if addrtype == "IP4":
                if len(suffix) > 2:
                    raise SdpError("bad connection address")
                ttl = parse_uint(suffix[0], "ttl", 255)
                if len(suffix) == 2:
                    number = parse_uint(suffix[1], "address count")
            else:
                if len(suffix) != 1:
                    raise SdpError("bad connection address")
                number = parse_uint(suffix[0], "address count")
        if not address:
            raise SdpError("bad connection address")
        return cls(address, addrtype, nettype, ttl, number)

    def __str__(self) -> str:
        text = f"{self.nettype} {self.addrtype} {self.address}"
        if self.ttl is not None:
            text += f"/{self.ttl}"
        if self.number is not None:
            text += f"/{self.number}"
        return text

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """``IN IP4 <address>`` or ``IN IP6 <address>`` (IP6 when it has a colon)."""
        return cls(address, "IP6" if ":" in address else "IP4")


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (RFC 8866 §5.8).

    Types: ``CT``/``AS`` (kbit/s, RFC 8866), ``TIAS`` (bit/s, RFC 3890),
    ``RS``/``RR`` (RTCP bit/s, RFC 3556).
    """

    type: str
    value: int

    @classmethod
    def parse(cls, text: str) -> Bandwidth:
        bwtype, colon, value = text.partition(":")
        if not colon:
            raise SdpError("bad bandwidth")
        return cls(check_token(bwtype, "bwtype"), parse_uint(value, "bandwidth"))

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=<start-time> <stop-time>`` (RFC 8866 §5.9), NTP seconds; ``0 0`` is unbounded."""

    start: int = 0
    stop: int = 0

    @classmethod
    def parse(cls, text: str) -> Timing:
        parts = text.split(" ")
        if len(parts) != 2:
            raise SdpError("bad timing")
        return cls(parse_uint(parts[0], "start-time"), parse_uint(parts[1], "stop-time"))

    def __str__(self) -> str:
        return f"{self.start} {self.stop}"


def is_rtp_proto(proto: str) -> bool:
    """True for the RTP profiles (RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/SAVPF, ...).

    Their formats are RTP payload types (RFC 8866 §5.14).
    """
    return "RTP/" in proto.upper()


@dataclass(frozen=True, slots=True)
class MediaLine:
    """``m=<media> <port>[/<number of ports>] <proto> <fmt> ...`` (RFC 8866 §5.14)."""

    media: str
    port: int
    proto: str
    fmts: tuple[str, ...]
    port_count: int | None = None

    @classmethod
    def parse(cls, text: str) -> MediaLine:
        parts = text.split(" ")
        if len(parts) < 3:  # the parser also requires a format (RFC 8866 §5.14)
            raise SdpError("bad media line")
        media, port_text, proto, *fmts = parts
        check_token(media, "media")
        port_str, slash, count_str = port_text.partition("/")
        port = parse_port(port_str)
        count = parse_uint(count_str, "number of ports", 65535) if slash else None
        for part in proto.split("/"):
            check_token(part, "proto")
        for fmt in fmts:
            check_token(fmt, "fmt")
        if is_rtp_proto(proto):
            for fmt in fmts:
                parse_uint(fmt, "payload type", 127)
        return cls(media, port, proto, tuple(fmts), count)

    def __str__(self) -> str:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        return " ".join((self.media, port, self.proto, *self.fmts))
