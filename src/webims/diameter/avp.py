"""AVPs: the AVP header and payload (RFC 6733 §4.1), Grouped AVPs (§4.4), and typed access.

:class:`Avp` keeps its payload as raw bytes, so decode -> encode is byte-exact
(padding is always written as zeros, RFC 6733 §4.1). Typed views decode the
payload on demand and raise :class:`DiameterError` with the right Failed-AVP.

Speed: an HSS decodes, checks and builds some ten AVPs per Cx message, thousands
of messages a second. :class:`Avp` is therefore an immutable 4-tuple (created by
the decoder with ``tuple.__new__``, no per-field work), the dictionary entry of
each AVP carries its derived facts (send flags, fixed length, integer struct,
text encoding), and the common typed reads take a fast path that falls back to
the fully checked one only when the payload is wrong.
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
from .dictionary import AVP_BY_CODE, AVP_BY_NAME, AvpDef, lookup
from .errors import DiameterError

_T = TypeVar("_T")
_TEXT_TYPES = frozenset((AvpType.UTF8_STRING, AvpType.DIAMETER_IDENTITY, AvpType.DIAMETER_URI))
_HEADER = struct.Struct(">IB3s")
#: The AVP header as two words: code, then flags (high byte) and length (low 24 bits).
_HEAD8 = struct.Struct(">II")
_HEAD12 = struct.Struct(">III")
_VENDOR = struct.Struct(">I")
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by length % 4
_MAX_LENGTH = 0xFFFFFF
_new_tuple = tuple.__new__

AvpValue = int | float | str | bytes | Address | Sequence["Avp"]


def padded(length: int) -> int:
    """``length`` rounded up to a multiple of four (RFC 6733 §4.1, AVP padding)."""
    return (length + 3) & ~3


class Avp(tuple[int, int, int, bytes]):
    """One AVP: code, flags byte (V/M/P and reserved bits, kept verbatim), vendor, payload.

    An immutable ``(code, flags, vendor_id, data)`` tuple with named fields.
    """

    __slots__ = ()

    def __new__(cls, code: int, flags: int, vendor_id: int, data: bytes) -> Avp:
        if not 0 <= code <= 0xFFFFFFFF or not 0 <= flags <= 0xFF:
            raise ValueError(f"bad AVP code/flags {code}/{flags}")
        if vendor_id and not flags & AVP_FLAG_VENDOR:
            raise ValueError(f"AVP {code} has Vendor-Id {vendor_id} but no 'V' bit")
        if not 0 <= vendor_id <= 0xFFFFFFFF:
            raise ValueError(f"bad Vendor-Id {vendor_id}")
        return _new_tuple(cls, (code, flags, vendor_id, bytes(data)))

    def __getnewargs__(self) -> tuple[int, int, int, bytes]:  # copy / pickle
        return (self[0], self[1], self[2], self[3])

    def __repr__(self) -> str:
        return f"Avp(code={self[0]}, flags={self[1]}, vendor_id={self[2]}, data={self[3]!r})"

    # --- fields -----------------------------------------------------------------------------
    @property
    def code(self) -> int:
        return self[0]

    @property
    def flags(self) -> int:
        return self[1]

    @property
    def vendor_id(self) -> int:
        return self[2]

    @property
    def data(self) -> bytes:
        return self[3]

    # --- flags ------------------------------------------------------------------------------
    @property
    def is_vendor_specific(self) -> bool:
        return bool(self[1] & AVP_FLAG_VENDOR)

    @property
    def is_mandatory(self) -> bool:
        return bool(self[1] & AVP_FLAG_MANDATORY)

    @property
    def is_protected(self) -> bool:
        return bool(self[1] & AVP_FLAG_PROTECTED)

    @property
    def definition(self) -> AvpDef | None:
        return AVP_BY_CODE.get((self[0], self[2]))

    @property
    def name(self) -> str:
        d = self.definition
        return d.name if d is not None else f"AVP-{self[0]}/{self[2]}"

    @property
    def header_length(self) -> int:
        return 12 if self[1] & AVP_FLAG_VENDOR else 8

    @property
    def length(self) -> int:
        """The AVP Length field: header plus payload, without padding (RFC 6733 §4.1)."""
        return (12 if self[1] & AVP_FLAG_VENDOR else 8) + len(self[3])

    # --- wire -------------------------------------------------------------------------------
    def encode(self) -> bytes:
        code, flags, vendor, data = self
        if flags & AVP_FLAG_VENDOR:
            length = 12 + len(data)
            head = _HEAD12.pack(code, (flags << 24) | (length & _MAX_LENGTH), vendor)
        else:
            length = 8 + len(data)
            head = _HEAD8.pack(code, (flags << 24) | (length & _MAX_LENGTH))
        if length > _MAX_LENGTH:
            raise ValueError(f"AVP {code} too long ({length} bytes)")
        return head + data + _PADDING[length & 3]

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
        d = AVP_BY_CODE.get((self[0], self[2]))
        if d is not None:
            fmt = d.int_struct
            if fmt is not None and len(self[3]) == d.fixed_length:
                value: int = fmt.unpack(self[3])[0]
                return value
        default = AvpType.UNSIGNED64 if len(self[3]) == 8 else AvpType.UNSIGNED32
        return self._wire(lambda: decode_int(self._type(default), self[3]))

    def as_float(self) -> float:
        return self._wire(lambda: decode_float(self._type(AvpType.FLOAT64), self[3]))

    def as_str(self) -> str:
        """UTF8String, DiameterIdentity, DiameterURI, or an OctetString holding UTF-8 text."""
        d = AVP_BY_CODE.get((self[0], self[2]))
        try:
            return self[3].decode(d.text_encoding if d is not None else "utf-8")
        except UnicodeDecodeError:
            return self._wire(lambda: decode_text(self._type(AvpType.UTF8_STRING), self[3]))

    def as_address(self) -> Address:
        return self._wire(lambda: decode_address(self[3]))

    def as_group(self) -> Group:
        """The AVPs inside a Grouped AVP (RFC 6733 §4.4)."""
        return Group(_inner(self, (self,)), (self,))

    def check(self) -> None:
        """Raise DiameterError (5014/5004) if the payload does not fit the dictionary format."""
        d = lookup(self[0], self[2])
        if d is None or d.type is AvpType.GROUPED:
            return
        try:
            check_length(d.type, self[3])
            if d.type in _TEXT_TYPES:
                decode_text(d.type, self[3])
        except ValueProblem as exc:
            raise DiameterError(
                exc.result_code, f"{d.name}: {exc.reason}", failed_avp=self.encode()
            ) from None


def raw_avp(code: int, flags: int, vendor_id: int, data: bytes) -> Avp:
    """An :class:`Avp` from values already known to be valid (the codec's own fast path)."""
    return _new_tuple(Avp, (code, flags, vendor_id, data))


def make_avp(name: str, value: AvpValue, *, mandatory: bool | None = None) -> Avp:
    """Build the AVP ``name`` from a Python value, with the dictionary's V/M flags.

    Grouped AVPs take a sequence of :class:`Avp`. ``mandatory`` overrides the
    dictionary's M-bit rule.
    """
    d = AVP_BY_NAME[name]
    t = d.type
    int_struct = d.int_struct
    if type(value) is str and d.fixed_length < 0 and t is not AvpType.GROUPED and t is not AvpType.ADDRESS:
        # OctetString, UTF8String: UTF-8; DiameterIdentity, DiameterURI: ASCII (RFC 6733 §4.3.1)
        data = value.encode(d.text_encoding)
    elif type(value) is int and int_struct is not None:
        try:
            data = int_struct.pack(value)
        except struct.error:
            raise ValueError(f"{value} out of range for {t.value}") from None
    elif t is AvpType.GROUPED:
        if isinstance(value, str | bytes | Avp) or not isinstance(value, Sequence):
            raise TypeError(f"{name} is Grouped: give a sequence of Avp")
        inner = [a for a in value if isinstance(a, Avp)]
        if len(inner) != len(value):
            raise TypeError(f"{name} is Grouped: give a sequence of Avp")
        data = b"".join([a.encode() for a in inner])
    else:
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            raise TypeError(f"{name} is {d.type.value}, not Grouped")
        data = encode_value(d.type, value)
    flags = d.send_flags
    if mandatory is not None:
        flags = (flags & ~AVP_FLAG_MANDATORY) | (AVP_FLAG_MANDATORY if mandatory else 0)
    return _new_tuple(Avp, (d.code, flags, d.vendor_id, data))


def example_avp(name: str) -> Avp:
    """A zero-filled example of AVP ``name`` for Failed-AVP (RFC 6733 §7.1.5, 5005)."""
    d = AVP_BY_NAME[name]
    return Avp(d.code, d.send_flags, d.vendor_id, b"\0" * minimum_length(d.type))


def encode_avps(avps: Iterable[Avp]) -> bytes:
    return b"".join([a.encode() for a in avps])


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
    if type(data) is not bytes:
        data = bytes(data)
    avps: list[Avp] = []
    append = avps.append
    unpack8 = _HEAD8.unpack_from
    unpack_vendor = _VENDOR.unpack_from
    pos = start
    while pos < end:
        if end - pos < 8:
            return avps, _length_error(data, pos, end, "truncated AVP header")
        code, word = unpack8(data, pos)
        flags = word >> 24
        length = word & _MAX_LENGTH
        if flags & AVP_FLAG_VENDOR:
            if end - pos < 12:
                return avps, _length_error(data, pos, end, "truncated Vendor-Id")
            hlen = 12
            vendor = unpack_vendor(data, pos + 8)[0]
        else:
            hlen = 8
            vendor = 0
        if length < hlen:
            return avps, _length_error(data, pos, end, f"AVP {code} length {length} below its header")
        stop = pos + length
        if stop > end:
            return avps, _length_error(data, pos, end, f"AVP {code} length {length} beyond its container")
        append(_new_tuple(Avp, (code, flags, vendor, data[pos + hlen : stop])))
        nxt = pos + ((length + 3) & ~3)
        if nxt > end and not (lenient_tail and stop == end):
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
        failed = Avp(p[0], p[1], p[2], failed).encode()
    return DiameterError(
        err.result_code, err.reason, failed_avp=failed, close_connection=err.close_connection
    )


#: ``name -> (code, vendor_id)`` for the container lookups below.
_KEYS: dict[str, tuple[int, int]] = {name: d.key for name, d in AVP_BY_NAME.items()}


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
        code, vendor = _KEYS[name]
        for a in self.avps:
            if a[0] == code and a[2] == vendor:
                return a
        return None

    def find_all(self, name: str) -> list[Avp]:
        code, vendor = _KEYS[name]
        return [a for a in self.avps if a[0] == code and a[2] == vendor]

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

    # The getters below run a dozen times per Cx message: the conversion is called directly
    # (no bound-method wrapper through _call), errors re-homed as _call does.
    def get_int(self, name: str) -> int | None:
        a = self.find(name)
        if a is None:
            return None
        try:
            return a.as_int()
        except DiameterError as exc:
            raise wrap_error(exc, self._parents()) from None

    def get_str(self, name: str) -> str | None:
        a = self.find(name)
        if a is None:
            return None
        try:
            return a.as_str()
        except DiameterError as exc:
            raise wrap_error(exc, self._parents()) from None

    def get_bytes(self, name: str) -> bytes | None:
        a = self.find(name)
        return None if a is None else a[3]

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
        a = self.require(name)
        try:
            return a.as_int()
        except DiameterError as exc:
            raise wrap_error(exc, self._parents()) from None

    def require_str(self, name: str) -> str:
        a = self.require(name)
        try:
            return a.as_str()
        except DiameterError as exc:
            raise wrap_error(exc, self._parents()) from None

    def require_bytes(self, name: str) -> bytes:
        return self.require(name)[3]

    def require_group(self, name: str) -> Group:
        return self._group(self.require(name))

    def get_all_int(self, name: str) -> list[int]:
        try:
            return [a.as_int() for a in self.find_all(name)]
        except DiameterError as exc:
            raise wrap_error(exc, self._parents()) from None

    def get_all_str(self, name: str) -> list[str]:
        try:
            return [a.as_str() for a in self.find_all(name)]
        except DiameterError as exc:
            raise wrap_error(exc, self._parents()) from None

    def get_all_group(self, name: str) -> list[Group]:
        return [self._group(a) for a in self.find_all(name)]


def _inner(a: Avp, parents: tuple[Avp, ...]) -> tuple[Avp, ...]:
    data = a[3]
    remember = type(data) is bytes and len(data) <= _MAX_REMEMBERED_GROUP
    if remember:
        known = _groups.get(data)
        if known is not None:
            return known
    avps, err = scan_avps(data, 0, len(data))
    if err is not None:
        raise wrap_error(err, parents)
    found = tuple(avps)
    if remember:
        if len(_groups) >= _MAX_REMEMBERED_GROUPS:
            _groups.clear()
        _groups[data] = found
    return found


#: The content of small Grouped AVPs, by their bytes: the same few (Experimental-Result,
#: Vendor-Specific-Application-Id, Server-Capabilities, a user's SIP-Auth-Data-Item...)
#: come again and again; AVPs are immutable tuples, so the parsed content is shared.
_groups: dict[bytes, tuple[Avp, ...]] = {}
_MAX_REMEMBERED_GROUP = 256
_MAX_REMEMBERED_GROUPS = 4096


@dataclass(frozen=True, slots=True)
class Group(AvpContainer):
    """The content of a Grouped AVP; ``parents`` is the chain of enclosing AVPs, outermost first."""

    avps: tuple[Avp, ...]
    parents: tuple[Avp, ...] = ()

    def _parents(self) -> tuple[Avp, ...]:
        return self.parents
