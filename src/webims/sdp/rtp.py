"""RTP payload formats: ``a=rtpmap``, ``a=fmtp``, ``a=rtcp-fb``, ``a=ptime``.

* ``a=rtpmap`` (RFC 8866 §6.6) and the static payload types of RFC 3551 §6;
* ``a=fmtp`` (RFC 8866 §6.15), parameters as ``name=value;...`` (RFC 4855 §3);
* ``a=rtcp-fb`` (RFC 4585 §4.2);
* ``a=ptime`` / ``a=maxptime`` (RFC 8866 §6.4, §6.5).

:class:`Codec` gathers what a media description says about one payload type.
The constants at the end are the codecs webims offers (Opus RFC 7587, G.711,
G.722, AMR / AMR-WB RFC 4867 as profiled by 3GPP TS 26.114 §6.2.2,
telephone-event RFC 4733).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import ClassVar

from .errors import SdpError
from .lines import Attribute, check_token, parse_uint

_PTIME = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?\Z")

#: RFC 3551 §6 (tables 4 and 5): static payload type -> (encoding name, clock rate, channels).
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    14: ("MPA", 90000, None),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
    25: ("CelB", 90000, None),
    26: ("JPEG", 90000, None),
    28: ("nv", 90000, None),
    31: ("H261", 90000, None),
    32: ("MPV", 90000, None),
    33: ("MP2T", 90000, None),
    34: ("H263", 90000, None),
}

#: Payload formats that carry no media of their own (retransmission, redundancy,
#: FEC, comfort noise, DTMF events): never "the" codec of a stream.
AUXILIARY_ENCODINGS: frozenset[str] = frozenset(
    ("rtx", "red", "ulpfec", "flexfec-03", "flexfec", "cn", "telephone-event")
)


@dataclass(frozen=True, slots=True)
class Rtpmap:
    """``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`` (RFC 8866 §6.6)."""

    payload_type: int
    encoding_name: str
    clock_rate: int
    channels: int | None = None

    name: ClassVar[str] = "rtpmap"

    @classmethod
    def parse(cls, text: str) -> Rtpmap:
        pt, space, encoding = text.partition(" ")
        if not space:
            raise SdpError("bad rtpmap")
        parts = encoding.split("/")
        if len(parts) not in (2, 3):
            raise SdpError("bad rtpmap")
        check_token(parts[0], "encoding name")
        channels = parse_uint(parts[2], "encoding parameters", 255) if len(parts) == 3 else None
        return cls(
            parse_uint(pt, "payload type", 127), parts[0], parse_uint(parts[1], "clock rate"), channels
        )

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding_name}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"

    def to_attribute(self) -> Attribute:
        return Attribute("rtpmap", str(self))


@dataclass(frozen=True, slots=True)
class Fmtp:
    """``a=fmtp:<format> <format specific parameters>`` (RFC 8866 §6.15)."""

    format: str
    parameters: str

    name: ClassVar[str] = "fmtp"

    @classmethod
    def parse(cls, text: str) -> Fmtp:
        fmt, space, params = text.partition(" ")
        check_token(fmt, "fmtp format")
        if not space:
            raise SdpError("bad fmtp")
        return cls(fmt, params)

    def __str__(self) -> str:
        return f"{self.format} {self.parameters}"

    def to_attribute(self) -> Attribute:
        return Attribute("fmtp", str(self))


@dataclass(frozen=True, slots=True)
class RtcpFb:
    """``a=rtcp-fb:<payload type or *> <type> [<parameters>]`` (RFC 4585 §4.2)."""

    payload_type: str
    value: str

    name: ClassVar[str] = "rtcp-fb"

    @classmethod
    def parse(cls, text: str) -> RtcpFb:
        pt, space, value = text.partition(" ")
        if pt != "*":
            parse_uint(pt, "rtcp-fb payload type", 127)
        if not space:
            raise SdpError("bad rtcp-fb")
        check_token(value.split(" ")[0], "rtcp-fb type")
        return cls(pt, value)

    def __str__(self) -> str:
        return f"{self.payload_type} {self.value}"

    def to_attribute(self) -> Attribute:
        return Attribute("rtcp-fb", str(self))


def parse_fmtp_parameters(text: str) -> dict[str, str | None]:
    """``name=value;name=value`` -> ``{name (lower case): value}`` (RFC 4855 §3).

    Whitespace around items is ignored (TS 26.114 examples write ``; ``).  An
    item without ``=`` (telephone-event ``0-15``, RFC 4733 §7.1.1; RED
    ``111/111``) maps to None.
    """
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        params.setdefault(key.strip().lower(), value.strip() if eq else None)
    return params


def parse_ptime(text: str) -> float:
    """``a=ptime`` / ``a=maxptime`` value in milliseconds (RFC 8866 §6.4, §6.5)."""
    if _PTIME.match(text) is None:
        raise SdpError("bad packet time")
    return float(text)


def format_ptime(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


@dataclass(frozen=True, slots=True)
class Codec:
    """One payload type of an RTP media description.

    ``name``/``clock_rate``/``channels`` come from ``a=rtpmap`` (or from the
    RFC 3551 static table), ``fmtp`` is the raw ``a=fmtp`` parameter string
    and ``rtcp_fb`` the ``a=rtcp-fb`` values for this payload type.
    ``channels`` None means "not given" (1 for audio, RFC 8866 §6.6).
    """

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    fmtp: str | None = None
    rtcp_fb: tuple[str, ...] = field(default=())

    @property
    def parameters(self) -> dict[str, str | None]:
        """The fmtp parameters by lower-case name (see :func:`parse_fmtp_parameters`)."""
        return parse_fmtp_parameters(self.fmtp) if self.fmtp else {}

    @property
    def encoding(self) -> tuple[str, int, int]:
        """``(lower-case name, clock rate, channels)`` with channels defaulting to 1."""
        return (self.name.lower(), self.clock_rate, self.channels or 1)

    @property
    def is_auxiliary(self) -> bool:
        """True for rtx, red, FEC, comfort noise and telephone-event."""
        return self.name.lower() in AUXILIARY_ENCODINGS

    @property
    def is_telephone_event(self) -> bool:
        return self.name.lower() == "telephone-event"

    @property
    def is_static(self) -> bool:
        """A static payload type carrying its RFC 3551 encoding."""
        entry = STATIC_PAYLOAD_TYPES.get(self.payload_type)
        return entry is not None and self.encoding == (entry[0].lower(), entry[1], entry[2] or 1)

    def with_payload_type(self, payload_type: int) -> Codec:
        return self if payload_type == self.payload_type else replace(self, payload_type=payload_type)

    def rtpmap(self) -> Rtpmap:
        return Rtpmap(self.payload_type, self.name, self.clock_rate, self.channels)

    def to_attributes(self) -> list[Attribute]:
        """``a=rtpmap``, then ``a=rtcp-fb`` lines, then ``a=fmtp`` (the browsers' order)."""
        attrs = [self.rtpmap().to_attribute()]
        attrs += [RtcpFb(str(self.payload_type), fb).to_attribute() for fb in self.rtcp_fb]
        if self.fmtp is not None:
            attrs.append(Fmtp(str(self.payload_type), self.fmtp).to_attribute())
        return attrs

    @classmethod
    def static(cls, payload_type: int) -> Codec | None:
        """The codec of an RFC 3551 static payload type, or None for a dynamic one."""
        entry = STATIC_PAYLOAD_TYPES.get(payload_type)
        if entry is None:
            return None
        return cls(payload_type, entry[0], entry[1], None)


#: PCMU (G.711 mu-law), RFC 3551 §4.5.14.
PCMU = Codec(0, "PCMU", 8000)
#: PCMA (G.711 A-law), RFC 3551 §4.5.14.
PCMA = Codec(8, "PCMA", 8000)
#: G.722; its RTP clock is 8000 for historical reasons (RFC 3551 §4.5.2).
G722 = Codec(9, "G722", 8000)
#: Opus as the browsers offer it (RFC 7587 §7).
OPUS = Codec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1")
#: AMR-WB bandwidth-efficient, as TS 26.114 §6.2.2.2 recommends offering it.
AMR_WB = Codec(104, "AMR-WB", 16000, 1, "mode-change-capability=2;max-red=0")
#: AMR-WB octet-aligned (RFC 4867 §8.1 ``octet-align=1``).
AMR_WB_OCTET_ALIGNED = Codec(105, "AMR-WB", 16000, 1, "octet-align=1;mode-change-capability=2;max-red=0")
#: AMR (narrowband) bandwidth-efficient.
AMR = Codec(102, "AMR", 8000, 1, "mode-change-capability=2;max-red=0")
#: DTMF events, RFC 4733 §7.1, at the clock rates IMS and browsers use.
TELEPHONE_EVENT_8000 = Codec(101, "telephone-event", 8000, None, "0-15")
TELEPHONE_EVENT_16000 = Codec(100, "telephone-event", 16000, None, "0-15")
TELEPHONE_EVENT_48000 = Codec(110, "telephone-event", 48000, None, "0-15")
