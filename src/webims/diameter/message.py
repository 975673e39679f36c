"""Diameter messages: the header (RFC 6733 §3) and the AVP list, decode and encode.

``Message.decode(Message.encode(m)) == m`` and, for well-formed input (zero
padding), ``Message.decode(b).encode() == b``: the codec is byte-exact.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from .avp import _KEYS, Avp, AvpContainer, encode_avps, scan_avps
from .constants import (
    DIAMETER_VERSION,
    FLAG_ERROR,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMITTED,
    HEADER_LENGTH,
    ResultCode,
)
from .datatypes import AvpType as _T
from .datatypes import ValueProblem, decode_text
from .errors import DiameterError, Header

_HEADER = struct.Struct(">B3sB3sIII")
#: The header as five words: version|length, flags|command code, application, hop-by-hop, end-to-end.
_WORDS = struct.Struct(">IIIII")
_U24 = 0xFFFFFF
_SESSION_ID = 263
#: Largest value of the 24-bit Message Length field.
MAX_MESSAGE_LENGTH = 0xFFFFFF


def parse_header(data: bytes) -> Header:
    """The 20-byte header at the start of ``data`` (caller checks there are 20 bytes)."""
    version, raw_len, flags, raw_code, app, hbh, e2e = _HEADER.unpack_from(data, 0)
    return Header(
        version, int.from_bytes(raw_len, "big"), flags, int.from_bytes(raw_code, "big"), app, hbh, e2e
    )


def check_header(header: Header) -> None:
    """Header checks that make the stream unframeable (RFC 6733 §3): close the connection."""
    if header.version != DIAMETER_VERSION:
        raise DiameterError(
            ResultCode.DIAMETER_UNSUPPORTED_VERSION,
            f"Diameter version {header.version}",
            close_connection=True,
            header=header,
        )
    if header.length < HEADER_LENGTH:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
            f"message length {header.length} shorter than the header",
            close_connection=True,
            header=header,
        )


@dataclass(frozen=True, slots=True)
class Message(AvpContainer):
    """A Diameter message. ``flags`` is the command flags byte (R/P/E/T and reserved bits)."""

    command_code: int
    application_id: int
    flags: int
    hop_by_hop: int
    end_to_end: int
    avps: tuple[Avp, ...]
    version: int = DIAMETER_VERSION
    #: ``(code, vendor) -> first AVP``, built on the first lookup by name (handlers read
    #: a dozen AVPs of each message, most of them absent: no scan of the list each time).
    _index: dict[tuple[int, int], Avp] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def find(self, name: str) -> Avp | None:
        """The first AVP called ``name``, or None."""
        index = self._index
        if index is None:
            index = {}
            for a in self.avps:
                index.setdefault((a[0], a[2]), a)
            object.__setattr__(self, "_index", index)
        return index.get(_KEYS[name])

    # --- header flags (RFC 6733 §3) --------------------------------------------------------
    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)

    @property
    def is_proxiable(self) -> bool:
        return bool(self.flags & FLAG_PROXIABLE)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    @property
    def is_retransmitted(self) -> bool:
        return bool(self.flags & FLAG_RETRANSMITTED)

    @property
    def length(self) -> int:
        return HEADER_LENGTH + sum((a.length + 3) & ~3 for a in self.avps)

    @property
    def header(self) -> Header:
        return Header(
            self.version,
            self.length,
            self.flags,
            self.command_code,
            self.application_id,
            self.hop_by_hop,
            self.end_to_end,
        )

    # --- frequently used AVPs --------------------------------------------------------------
    @property
    def session_id(self) -> str | None:
        return self.get_str("Session-Id")

    @property
    def origin_host(self) -> str | None:
        return self.get_str("Origin-Host")

    @property
    def origin_realm(self) -> str | None:
        return self.get_str("Origin-Realm")

    @property
    def result_code(self) -> int | None:
        """The Result-Code AVP (RFC 6733 §7.1), not Experimental-Result."""
        return self.get_int("Result-Code")

    @property
    def experimental_result(self) -> tuple[int, int] | None:
        """(Vendor-Id, Experimental-Result-Code) of Experimental-Result (RFC 6733 §7.6)."""
        g = self.get_group("Experimental-Result")
        if g is None:
            return None
        return g.require_int("Vendor-Id"), g.require_int("Experimental-Result-Code")

    def with_ids(self, hop_by_hop: int, end_to_end: int) -> Message:
        m = self
        return Message(m.command_code, m.application_id, m.flags, hop_by_hop, end_to_end, m.avps, m.version)

    def with_flags(self, flags: int) -> Message:
        return replace(self, flags=flags)

    # --- wire ----------------------------------------------------------------------------------
    def encode(self) -> bytes:
        body = encode_avps(self.avps)
        length = HEADER_LENGTH + len(body)
        if length > MAX_MESSAGE_LENGTH:
            raise ValueError(f"message too long ({length} bytes)")
        if not 0 <= self.version <= 0xFF or not 0 <= self.flags <= 0xFF or not 0 <= self.command_code <= _U24:
            raise ValueError(f"bad header field in {self.version}/{self.flags}/{self.command_code}")
        head = _WORDS.pack(
            (self.version << 24) | length,
            (self.flags << 24) | self.command_code,
            self.application_id,
            self.hop_by_hop,
            self.end_to_end,
        )
        return head + body

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Decode one whole message; raise only :class:`DiameterError`.

        Only the structure is checked here (header, lengths, AVP framing); the
        command's rules are checked by :func:`webims.diameter.validate.check_message`.
        """
        if type(data) is not bytes:
            data = bytes(data)
        size = len(data)
        if size >= HEADER_LENGTH and not size & 3 and data[0] == DIAMETER_VERSION:
            # The common case, a well-formed frame: one header unpack, no Header object.
            word0, word1, app, hbh, e2e = _WORDS.unpack_from(data, 0)
            if word0 & _U24 == size:
                avps, err = scan_avps(data, HEADER_LENGTH, size)
                if err is None:
                    return cls(word1 & _U24, app, word1 >> 24, hbh, e2e, tuple(avps), DIAMETER_VERSION)
        if len(data) < HEADER_LENGTH:
            raise DiameterError(
                ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
                f"{len(data)} bytes cannot hold a Diameter header",
                close_connection=True,
            )
        header = parse_header(data)
        check_header(header)
        if header.length != len(data):
            raise DiameterError(
                ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
                f"message length {header.length} but {len(data)} bytes",
                close_connection=True,
                header=header,
            )
        avps, err = scan_avps(data, HEADER_LENGTH, header.length)
        session_id = _session_id(avps)
        if err is not None:
            raise err.with_context(header=header, session_id=session_id)
        if header.length % 4:
            # RFC 6733 §3: "the Message Length field is always a multiple of 4".
            raise DiameterError(
                ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
                f"message length {header.length} is not a multiple of 4",
                header=header,
                session_id=session_id,
            )
        return cls(
            header.command_code,
            header.application_id,
            header.flags,
            header.hop_by_hop,
            header.end_to_end,
            tuple(avps),
            header.version,
        )


def _session_id(avps: list[Avp]) -> str | None:
    for a in avps:
        if a.code == _SESSION_ID and not a.vendor_id:
            try:
                return decode_text(_T.UTF8_STRING, a.data)
            except ValueProblem:
                return None
    return None
