"""Stream identification and RTP/RTCP transport attributes.

* ``a=group`` (RFC 5888 §5) and ``a=mid`` (RFC 5888 §4; BUNDLE, RFC 8843 §6);
* ``a=extmap`` (RFC 8285);
* ``a=ssrc`` and ``a=ssrc-group`` (RFC 5576 §4.1, §4.2);
* ``a=msid`` (RFC 8830 §2);
* ``a=rtcp`` (RFC 3605 §2.1); ``a=rtcp-mux`` (RFC 5761 §5.1.1) and
  ``a=rtcp-rsize`` (RFC 5506 §5) are property attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .errors import SdpError
from .lines import Attribute, check_nonws, check_token, parse_port, parse_uint


def parse_mid(text: str) -> str:
    """``a=mid`` value: an identification-tag, i.e. a token (RFC 5888 §4)."""
    return check_token(text, "mid")


@dataclass(frozen=True, slots=True)
class Group:
    """``a=group:<semantics> <identification-tag> ...`` (RFC 5888 §5), e.g. ``BUNDLE 0 1``."""

    semantics: str
    mids: tuple[str, ...]

    name: ClassVar[str] = "group"

    @classmethod
    def parse(cls, text: str) -> Group:
        semantics, *mids = text.split(" ")
        check_token(semantics, "group semantics")
        # Trailing spaces occur in the wild ("a=group:BUNDLE sdparta_0 "): skip empty tags.
        tags = tuple(m for m in mids if m)
        for tag in tags:
            check_token(tag, "group identification-tag")
        return cls(semantics, tags)

    def __str__(self) -> str:
        return " ".join((self.semantics, *self.mids))

    def to_attribute(self) -> Attribute:
        return Attribute("group", str(self))


@dataclass(frozen=True, slots=True)
class Extmap:
    """``a=extmap:<value>[/<direction>] <URI> [<extensionattributes>]`` (RFC 8285)."""

    id: int
    uri: str
    direction: str | None = None
    attributes: str | None = None

    name: ClassVar[str] = "extmap"

    @classmethod
    def parse(cls, text: str) -> Extmap:
        parts = text.split(" ", 2)
        if len(parts) < 2:
            raise SdpError("bad extmap")
        ident, slash, direction = parts[0].partition("/")
        value = parse_uint(ident, "extmap id", 4095)
        if value < 1:
            raise SdpError("bad extmap id")
        if slash and direction not in ("sendrecv", "sendonly", "recvonly", "inactive"):
            raise SdpError("bad extmap direction")
        return cls(
            value,
            check_nonws(parts[1], "extmap URI"),
            direction if slash else None,
            parts[2] if len(parts) == 3 else None,
        )

    def __str__(self) -> str:
        text = str(self.id) if self.direction is None else f"{self.id}/{self.direction}"
        text += f" {self.uri}"
        return text if self.attributes is None else f"{text} {self.attributes}"

    def to_attribute(self) -> Attribute:
        return Attribute("extmap", str(self))


@dataclass(frozen=True, slots=True)
class Ssrc:
    """``a=ssrc:<ssrc-id> <attribute>[:<value>]`` (RFC 5576 §4.1), e.g. ``cname:...``."""

    ssrc: int
    attribute: str
    value: str | None = None

    name: ClassVar[str] = "ssrc"

    @classmethod
    def parse(cls, text: str) -> Ssrc:
        ident, space, rest = text.partition(" ")
        ssrc = parse_uint(ident, "ssrc-id", 2**32 - 1)
        if not space:
            raise SdpError("bad ssrc")
        attr, colon, value = rest.partition(":")
        return cls(ssrc, check_token(attr, "ssrc attribute"), value if colon else None)

    def __str__(self) -> str:
        text = f"{self.ssrc} {self.attribute}"
        return text if self.value is None else f"{text}:{self.value}"

    def to_attribute(self) -> Attribute:
        return Attribute("ssrc", str(self))


@dataclass(frozen=True, slots=True)
class SsrcGroup:
    """``a=ssrc-group:<semantics> <ssrc-id> ...`` (RFC 5576 §4.2), e.g. ``FID 1 2``."""

    semantics: str
    ssrcs: tuple[int, ...]

    name: ClassVar[str] = "ssrc-group"

    @classmethod
    def parse(cls, text: str) -> SsrcGroup:
        semantics, *ids = text.split(" ")
        check_token(semantics, "ssrc-group semantics")
        return cls(semantics, tuple(parse_uint(i, "ssrc-id", 2**32 - 1) for i in ids))

    def __str__(self) -> str:
        return " ".join((self.semantics, *map(str, self.ssrcs)))

    def to_attribute(self) -> Attribute:
        return Attribute("ssrc-group", str(self))


@dataclass(frozen=True, slots=True)
class Msid:
    """``a=msid:<stream id> [<track id>]`` (RFC 8830 §2)."""

    stream: str
    track: str | None = None

    name: ClassVar[str] = "msid"

    @classmethod
    def parse(cls, text: str) -> Msid:
        parts = text.split(" ")
        if len(parts) > 2:
            raise SdpError("bad msid")
        stream = check_nonws(parts[0], "msid-id")
        return cls(stream, check_nonws(parts[1], "msid-appdata") if len(parts) == 2 else None)

    def __str__(self) -> str:
        return self.stream if self.track is None else f"{self.stream} {self.track}"

    def to_attribute(self) -> Attribute:
        return Attribute("msid", str(self))


@dataclass(frozen=True, slots=True)
class Rtcp:
    """``a=rtcp:<port> [<nettype> <addrtype> <connection-address>]`` (RFC 3605 §2.1)."""

    port: int
    nettype: str | None = None
    addrtype: str | None = None
    address: str | None = None

    name: ClassVar[str] = "rtcp"

    @classmethod
    def parse(cls, text: str) -> Rtcp:
        parts = text.split(" ")
        if len(parts) == 1:
            return cls(parse_port(parts[0]))
        if len(parts) != 4:
            raise SdpError("bad rtcp")
        return cls(
            parse_port(parts[0]),
            check_token(parts[1], "nettype"),
            check_token(parts[2], "addrtype"),
            check_nonws(parts[3], "rtcp address"),
        )

    def __str__(self) -> str:
        if self.address is None:
            return str(self.port)
        return f"{self.port} {self.nettype or 'IN'} {self.addrtype or 'IP4'} {self.address}"

    def to_attribute(self) -> Attribute:
        return Attribute("rtcp", str(self))
