"""ICE attributes (RFC 8839 §5; trickle ICE, RFC 8838 §8 / RFC 8840).

``a=candidate`` (§5.1), ``a=ice-ufrag`` / ``a=ice-pwd`` (§5.4),
``a=ice-options`` (§5.6), ``a=ice-lite`` and ``a=ice-mismatch`` (§5.3),
and ``a=end-of-candidates`` (trickle ICE, RFC 8840).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from .errors import SdpError
from .lines import Attribute, check_nonws, check_token, parse_port, parse_uint

# RFC 8839 §5.1: ice-char = ALPHA / DIGIT / "+" / "/"
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+\Z")
# connection-address: IPv4, IPv6 (with an optional zone) or an FQDN (mDNS names included).
_ADDRESS = re.compile(r"[0-9A-Za-z.:\-_%]+\Z")


def _ice_chars(text: str, what: str, low: int, high: int) -> str:
    if not low <= len(text) <= high or _ICE_CHARS.match(text) is None:
        raise SdpError(f"bad {what}")
    return text


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ``a=candidate`` value (RFC 8839 §5.1).

    ``type`` is the ``typ`` value (host, srflx, prflx, relay).  The known
    extensions ``raddr``/``rport`` (§5.1), ``tcptype`` (RFC 6544 §4.5) and
    ``generation`` (a widespread browser extension) have their own fields;
    every other extension pair stays in ``extensions``, in order.
    """

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None
    tcptype: str | None = None
    generation: int | None = None
    extensions: tuple[tuple[str, str], ...] = field(default=())

    name: ClassVar[str] = "candidate"

    @classmethod
    def parse(cls, text: str) -> Candidate:
        """Parse an attribute value; a leading ``candidate:`` (trickle form) is accepted."""
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        parts = text.split(" ")
        if len(parts) < 8 or parts[6] != "typ" or len(parts) % 2:
            raise SdpError("bad candidate")
        foundation = _ice_chars(parts[0], "candidate foundation", 1, 32)
        component = parse_uint(parts[1], "candidate component", 256)
        if component < 1 or len(parts[1]) > 3:
            raise SdpError("bad candidate component")
        transport = check_token(parts[2], "candidate transport")
        priority = parse_uint(parts[3], "candidate priority", 2**32 - 1)
        if _ADDRESS.match(parts[4]) is None:
            raise SdpError("bad candidate address")
        port = parse_port(parts[5])
        cand_type = check_token(parts[7], "candidate type")
        raddr: str | None = None
        rport: int | None = None
        tcptype: str | None = None
        generation: int | None = None
        extensions: list[tuple[str, str]] = []
        for i in range(8, len(parts), 2):
            key = check_token(parts[i], "candidate extension")
            value = check_nonws(parts[i + 1], "candidate extension value")
            if key == "raddr" and raddr is None:
                if _ADDRESS.match(value) is None:
                    raise SdpError("bad candidate raddr")
                raddr = value
            elif key == "rport" and rport is None:
                rport = parse_port(value)
            elif key == "tcptype" and tcptype is None:
                tcptype = check_token(value, "candidate tcptype")
            elif key == "generation" and generation is None:
                generation = parse_uint(value, "candidate generation")
            else:
                extensions.append((key, value))
        return cls(
            foundation,
            component,
            transport,
            priority,
            parts[4],
            port,
            cand_type,
            raddr,
            rport,
            tcptype,
            generation,
            tuple(extensions),
        )

    def __str__(self) -> str:
        parts = [
            self.foundation,
            str(self.component),
            self.transport,
            str(self.priority),
            self.address,
            str(self.port),
            "typ",
            self.type,
        ]
        if self.related_address is not None:
            parts += ["raddr", self.related_address]
        if self.related_port is not None:
            parts += ["rport", str(self.related_port)]
        if self.tcptype is not None:
            parts += ["tcptype", self.tcptype]
        if self.generation is not None:
            parts += ["generation", str(self.generation)]
        for key, value in self.extensions:
            parts += [key, value]
        return " ".join(parts)

    def to_attribute(self) -> Attribute:
        return Attribute("candidate", str(self))

    def extension(self, key: str) -> str | None:
        """The value of an extension not given its own field (e.g. ``network-cost``)."""
        for name, value in self.extensions:
            if name == key:
                return value
        return None


@dataclass(frozen=True, slots=True)
class IceCredentials:
    """``a=ice-ufrag`` and ``a=ice-pwd`` (RFC 8839 §5.4)."""

    ufrag: str
    pwd: str

    def __post_init__(self) -> None:
        parse_ice_ufrag(self.ufrag)
        parse_ice_pwd(self.pwd)

    def to_attributes(self) -> list[Attribute]:
        return [Attribute("ice-ufrag", self.ufrag), Attribute("ice-pwd", self.pwd)]


def parse_ice_ufrag(text: str) -> str:
    """``ice-ufrag`` value: 4 to 256 ice-chars (RFC 8839 §5.4)."""
    return _ice_chars(text, "ice-ufrag", 4, 256)


def parse_ice_pwd(text: str) -> str:
    """``ice-pwd`` value: 22 to 256 ice-chars (RFC 8839 §5.4)."""
    return _ice_chars(text, "ice-pwd", 22, 256)


def parse_ice_options(text: str) -> tuple[str, ...]:
    """``ice-options`` value: one or more option tags (RFC 8839 §5.6)."""
    tags = tuple(t for t in text.split(" ") if t)
    if not tags:
        raise SdpError("bad ice-options")
    for tag in tags:
        check_token(tag, "ice-option")
    return tags
