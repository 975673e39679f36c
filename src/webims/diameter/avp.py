"""AVPs: the AVP header and payload (RFC 6733 §4.1), Grouped AVPs (§4.4), and typed access.

:class:`Avp` keeps its payload as raw bytes, so decode -> encode is byte-exact
(padding is always written as zeros, RFC 6733 §4.1). Typed views decode the
payload on demand and raise :class:`DiameterError` with the right Failed-AVP.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import TypeVar

from .constants import AVP_FLAG_MANDATORY, AVP_FLAG_PROTECTED, AVP_FLAG_VENDOR, ResultCode
from .datatypes import (
    Address,
    AvpType,
    RawAddress,
    ValueProblem,
    check_length,
    decode_address,
    decode_float,
    decode_int,
    decode_text,
    encode_value,
    minimum_length,
)
from .dictionary import AVP_BY_NAME, AvpDef, MRule, lookup
from .errors import DiameterError

_T = TypeVar("_T")
_TEXT_TYPES = frozenset((AvpType.UTF8_STRING, AvpType.DIAMETER_IDENTITY, AvpType.DIAMETER_URI))
_HEADER = struct.Struct(">IB3s")
_VENDOR = struct.Struct(">I")

AvpValue = int | float | str | bytes | Address | Sequence["Avp"]


def padded(length: int) -> int:
    """``length`` rounded up to a multiple of four (RFC 6733 §4.1, AVP padding)."""
    return (length + 3) & ~3


@dataclass(frozen=True, slots=True)
class Avp:
    """One AVP: code, flags byte (V/M/P and reserved bits, kept verbatim), vendor, payload."""

    code: int
    flags: int
    vendor_id: int
    data: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.code <= 0xFFFFFFFF or not 0 <= self.flags <= 0xFF:
            raise ValueError(f"bad AVP code/flags {self.code}/{self.flags}")
        if self.vendor_id and not self.flags & AVP_FLAG_VENDOR:
            raise ValueError(f"AVP {self.code} has Vendor-Id {self.vendor_id} but no 'V' bit")

    # --- flags ------------------------------------------------------------------------------
    @property
    def is_vendor_specific(self) -> bool:
        return bool(self.flags & AVP_FLAG_VENDOR)

    @property
    def is_mandatory(self) -> bool:
        return bool(self.flags & AVP_FLAG_MANDATORY)

    @property
    def is_protected(self) -> bool:
        return bool(self.flags & AVP_FLAG_PROTECTED)

    @property
    def definition(self) -> AvpDef | None:
        return lookup(self.code, self.vendor_id)

    @property
    def name(self) -> str:
        d = self.definition
        return d.name if d is not None else f"AVP-{self.code}/{self.vendor_id}"

    @property
    def header_length(self) -> int:
        return 12 if self.flags & AVP_FLAG_VENDOR else 8

    @property
    def length(self) -> int:
        """The AVP Length field: header plus payload, without padding (RFC 6733 §4.1)."""
        return self.header_length + len(self.data)

    # --- wire -------------------------------------------------------------------------------
    def encode(self) -> bytes:
        length = self.length
        if length > 0xFFFFFF:
            raise ValueError(f"AVP {self.code} too long ({length} bytes)")
        head = _HEADER.pack(self.code, self.flags, length.to_bytes(3, "big"))
        if self.flags & AVP_FLAG_VENDOR:
            head += _VENDOR.pack(self.vendor_id)
        return head + self.data + b"\0" * (padded(length) - length)

    # --- typed payload --------------------------------------------------------------------------
    def _type(self, default: AvpType) -> AvpType:
        d = self.definition
        return d.type if d is not None else default

    def _wire(self, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except ValueProblem as exc:
            raise DiameterError(
                exc.result_code, f"{self.name}: {exc.reason}", failed_avp=self.encode()
            ) from None

    def as_int(self) -> int:
        """Integer32/64, Unsigned32/64, Enumerated or Time per the dictionary (unknown: by size)."""
        default = AvpType.UNSIGNED64 if len(self.data) == 8 else AvpType.UNSIGNED32
        return self._wire(lambda: decode_int(self._type(default), self.data))

    def as_float(self) -> float:
        return self._wire(lambda: decode_float(self._type(AvpType.FLOAT64), self.data))

    def as_str(self) -> str:
        """UTF8String, DiameterIdentity, DiameterURI, or an OctetString holding UTF-8 text."""
        return self._wire(lambda: decode_text(self._type(AvpType.UTF8_STRING), self.data))

    def as_address(self) -> Address:
        return self._wire(lambda: decode_address(self.data))

    def as_group(self) -> Group:
        """The AVPs inside a Grouped AVP (RFC 6733 §4.4)."""
        return Group(_inner(self, (self,)), (self,))

    def check(self) -> None:
        """Raise DiameterError (5014/5004) if the payload does not fit the dictionary format."""
        d = lookup(self.code, self.vendor_id)
        if d is None or d.type is AvpType.GROUPED:
            return
        try:
            check_length(d.type, self.data)
            if d.type in _TEXT_TYPES:
                decode_text(d.type, self.data)
        except ValueProblem as exc:
            raise DiameterError(
                exc.result_code, f"{d.name}: {exc.reason}", failed_avp=self.encode()
            ) from None


def make_avp(name: str, value: AvpValue, *, mandatory: bool | None = None) -> Avp:
    """Build the AVP ``name`` from a Python value, with the dictionary's V/M flags.

    Grouped AVPs take a sequence of :class:`Avp`. ``mandatory`` overrides the
    dictionary's M-bit rule.
    """
    d = AVP_BY_NAME[name]
    if d.type is AvpType.GROUPED:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise TypeError(f"{name} is Grouped: give a sequence of Avp")
        inner = [a for a in value if isinstance(a, Avp)]
        if len(inner) != len(value):
            raise TypeError(f"{name} is Grouped: give a sequence of Avp")
        data = b"".join(a.encode() for a in inner)
    else:
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            raise TypeError(f"{name} is {d.type.value}, not Grouped")
        data = encode_value(d.type, value)
    m = d.mandatory is MRule.MUST if mandatory is None else mandatory
    flags = (AVP_FLAG_VENDOR if d.vendor_id else 0) | (AVP_FLAG_MANDATORY if m else 0)
    return Avp(d.code, flags, d.vendor_id, data)


def example_avp(name: str) -> Avp:
    """A zero-filled example of AVP ``name`` for Failed-AVP (RFC 6733 §7.1.5, 5005)."""
    d = AVP_BY_NAME[name]
    flags = (AVP_FLAG_VENDOR if d.vendor_id else 0) | (AVP_FLAG_MANDATORY if d.mandatory is MRule.MUST else 0)
    return Avp(d.code, flags, d.vendor_id, b"\0" * minimum_length(d.type))


def encode_avps(avps: Iterable[Avp]) -> bytes:
    return b"".join(a.encode() for a in avps)


def _broken_avp(data: bytes, offset: int, end: int) -> Avp:
    """Failed-AVP content for an AVP whose length is unusable (RFC 6733 §7.1.5, 5014)."""
    head = bytes(data[offset : min(end, offset + 12)]).ljust(12, b"\0")
    code, flags, _ = _HEADER.unpack_from(head, 0)
    vendor = _VENDOR.unpack_from(head, 8)[0] if flags & AVP_FLAG_VENDOR else 0
    d = lookup(code, vendor)
    return Avp(code, flags, vendor, b"\0" * minimum_length(d.type if d else None))


def scan_avps(
    data: bytes, start: int, end: int, *, lenient_tail: bool = True
) -> tuple[list[Avp], DiameterError | None]:
    """Split ``data[start:end]`` into AVPs; return those read and the first framing error.

    ``lenient_tail`` accepts a last AVP that is not padded up to ``end`` (the
    message length check is the caller's job, RFC 6733 §3).
    """
    avps: list[Avp] = []
    pos = start
    while pos < end:
        if end - pos < 8:
            return avps, _length_error(data, pos, end, "truncated AVP header")
        code, flags, raw_len = _HEADER.unpack_from(data, pos)
        length = int.from_bytes(raw_len, "big")
        hlen = 12 if flags & AVP_FLAG_VENDOR else 8
        if hlen == 12 and end - pos < 12:
            return avps, _length_error(data, pos, end, "truncated Vendor-Id")
        if length < hlen:
            return avps, _length_error(data, pos, end, f"AVP {code} length {length} below its header")
        if pos + length > end:
            return avps, _length_error(data, pos, end, f"AVP {code} length {length} beyond its container")
        vendor = _VENDOR.unpack_from(data, pos + 8)[0] if hlen == 12 else 0
        avps.append(Avp(code, flags, vendor, bytes(data[pos + hlen : pos + length])))
        nxt = pos + padded(length)
        if nxt > end and not (lenient_tail and pos + length == end):
            return avps, _length_error(data, pos, end, f"AVP {code} padding beyond its container")
        pos = nxt
    return avps, None


def _length_error(data: bytes, pos: int, end: int, reason: str) -> DiameterError:
    return DiameterError(
        ResultCode.DIAMETER_INVALID_AVP_LENGTH, reason, failed_avp=_broken_avp(data, pos, end).encode()
    )


def decode_avps(data: bytes) -> tuple[Avp, ...]:
    """All AVPs of ``data``; DiameterError(5014) on a broken AVP length."""
    avps, err = scan_avps(data, 0, len(data))
    if err is not None:
        raise err
    return tuple(avps)


def decode_group(parent: Avp) -> tuple[Avp, ...]:
    """The inner AVPs of ``parent``; errors carry Failed-AVP wrapped in ``parent`` (§7.5)."""
    return _inner(parent, (parent,))


def wrap_error(err: DiameterError, parents: Sequence[Avp]) -> DiameterError:
    """Re-home ``err``'s Failed-AVP inside its enclosing Grouped AVPs (RFC 6733 §7.5)."""
    failed = err.failed_avp
    if failed is None or not parents:
        return err
    for p in reversed(parents):
        failed = Avp(p.code, p.flags, p.vendor_id, failed).encode()
    return DiameterError(
        err.result_code, err.reason, failed_avp=failed, close_connection=err.close_connection
    )


class AvpContainer:
    """Lookup by dictionary name over ``self.avps``, shared by Message and Group."""

    __slots__ = ()
    avps: tuple[Avp, ...]

    def _parents(self) -> tuple[Avp, ...]:
        return ()

    def _call(self, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except DiameterError as exc:
            raise wrap_error(exc, self._parents()) from None

    def find(self, name: str) -> Avp | None:
        """The first AVP called ``name``, or None."""
        d = AVP_BY_NAME[name]
        for a in self.avps:
            if a.code == d.code and a.vendor_id == d.vendor_id:
                return a
        return None

    def find_all(self, name: str) -> list[Avp]:
        d = AVP_BY_NAME[name]
        return [a for a in self.avps if a.code == d.code and a.vendor_id == d.vendor_id]

    def require(self, name: str) -> Avp:
        """The first AVP ``name``; DiameterError 5005 with a zero-filled example if absent."""
        a = self.find(name)
        if a is None:
            raise wrap_error(
                DiameterError(
                    ResultCode.DIAMETER_MISSING_AVP, f"missing {name}", failed_avp=example_avp(name).encode()
                ),
                self._parents(),
            )
        return a

    def get_int(self, name: str) -> int | None:
        a = self.find(name)
        return None if a is None else self._call(a.as_int)

    def get_str(self, name: str) -> str | None:
        a = self.find(name)
        return None if a is None else self._call(a.as_str)

    def get_bytes(self, name: str) -> bytes | None:
        a = self.find(name)
        return None if a is None else a.data

    def get_address(self, name: str) -> IPv4Address | IPv6Address | RawAddress | None:
        a = self.find(name)
        return None if a is None else self._call(a.as_address)

    def get_group(self, name: str) -> Group | None:
        a = self.find(name)
        return None if a is None else self._group(a)

    def _group(self, a: Avp) -> Group:
        parents = (*self._parents(), a)
        return Group(_inner(a, parents), parents)

    def require_int(self, name: str) -> int:
        return self._call(self.require(name).as_int)

    def require_str(self, name: str) -> str:
        return self._call(self.require(name).as_str)

    def require_bytes(self, name: str) -> bytes:
        return self.require(name).data

    def require_group(self, name: str) -> Group:
        return self._group(self.require(name))

    def get_all_int(self, name: str) -> list[int]:
        return [self._call(a.as_int) for a in self.find_all(name)]

    def get_all_str(self, name: str) -> list[str]:
        return [self._call(a.as_str) for a in self.find_all(name)]

    def get_all_group(self, name: str) -> list[Group]:
        return [self._group(a) for a in self.find_all(name)]


def _inner(a: Avp, parents: tuple[Avp, ...]) -> tuple[Avp, ...]:
    avps, err = scan_avps(a.data, 0, len(a.data))
    if err is not None:
        raise wrap_error(err, parents)
    return tuple(avps)


@dataclass(frozen=True, slots=True)
class Group(AvpContainer):
    """The content of a Grouped AVP; ``parents`` is the chain of enclosing AVPs, outermost first."""

    avps: tuple[Avp, ...]
    parents: tuple[Avp, ...] = ()

    def _parents(self) -> tuple[Avp, ...]:
        return self.parents
