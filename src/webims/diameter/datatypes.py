"""AVP data formats, RFC 6733 §4.2 (basic) and §4.3 (derived).

Conversions between AVP payload bytes and Python values. Decoding never raises
anything but :class:`ValueProblem`, which the caller turns into a
:class:`~webims.diameter.errors.DiameterError` that knows the offending AVP.
Encoding raises ``TypeError``/``ValueError``: a wrong value given by our own
code is a programming error, not a wire error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address, IPv6Address, ip_address

from .constants import ResultCode


class AvpType(Enum):
    """The data formats of RFC 6733 §4.2 and §4.3."""

    OCTET_STRING = "OctetString"
    INTEGER32 = "Integer32"
    INTEGER64 = "Integer64"
    UNSIGNED32 = "Unsigned32"
    UNSIGNED64 = "Unsigned64"
    FLOAT32 = "Float32"
    FLOAT64 = "Float64"
    GROUPED = "Grouped"
    ADDRESS = "Address"
    TIME = "Time"
    UTF8_STRING = "UTF8String"
    DIAMETER_IDENTITY = "DiameterIdentity"
    DIAMETER_URI = "DiameterURI"
    ENUMERATED = "Enumerated"

    # Members are singletons compared by identity: the C-level identity hash keeps the
    # many dictionary lookups keyed by AvpType cheap (Enum.__hash__ is Python code).
    __hash__ = object.__hash__


#: Payload length of the fixed-size formats (RFC 6733 §4.2, §4.3.1 "Time", §4.3.1 "Enumerated").
FIXED_LENGTH: dict[AvpType, int] = {
    AvpType.INTEGER32: 4,
    AvpType.INTEGER64: 8,
    AvpType.UNSIGNED32: 4,
    AvpType.UNSIGNED64: 8,
    AvpType.FLOAT32: 4,
    AvpType.FLOAT64: 8,
    AvpType.TIME: 4,
    AvpType.ENUMERATED: 4,
}

#: Address families of IANA "Address Family Numbers" used by the Address format (§4.3.1).
ADDRESS_FAMILY_IPV4 = 1
ADDRESS_FAMILY_IPV6 = 2

INT_FORMAT: dict[AvpType, str] = {
    AvpType.INTEGER32: ">i",
    AvpType.INTEGER64: ">q",
    AvpType.UNSIGNED32: ">I",
    AvpType.UNSIGNED64: ">Q",
    AvpType.TIME: ">I",
    AvpType.ENUMERATED: ">i",
}
_INT_FORMAT = INT_FORMAT
_FLOAT_FORMAT: dict[AvpType, str] = {AvpType.FLOAT32: ">f", AvpType.FLOAT64: ">d"}
_TEXT_TYPES = (AvpType.UTF8_STRING, AvpType.DIAMETER_IDENTITY, AvpType.DIAMETER_URI)

#: Seconds between the NTP epoch (1900-01-01) and the Unix epoch (1970-01-01).
NTP_UNIX_OFFSET = 2_208_988_800
_NTP_ERA = 1 << 32


@dataclass(frozen=True, slots=True)
class RawAddress:
    """An Address of a family other than IPv4/IPv6 (e.g. E.164, family 8)."""

    family: int
    value: bytes


Address = IPv4Address | IPv6Address | RawAddress


class ValueProblem(Exception):
    """Internal: an AVP payload that does not fit its data format."""

    def __init__(self, result_code: int, reason: str) -> None:
        super().__init__(reason)
        self.result_code = result_code
        self.reason = reason


def minimum_length(avp_type: AvpType | None) -> int:
    """Length of the zero-filled example payload for Failed-AVP (RFC 6733 §7.1.5, 5005/5014)."""
    if avp_type is None:
        return 0
    if avp_type is AvpType.ADDRESS:
        return 2 + 4
    return FIXED_LENGTH.get(avp_type, 0)


def check_length(avp_type: AvpType, data: bytes) -> None:
    """Raise ValueProblem(5014) when ``data`` cannot have format ``avp_type``."""
    want = FIXED_LENGTH.get(avp_type)
    if want is not None and len(data) != want:
        raise ValueProblem(
            ResultCode.DIAMETER_INVALID_AVP_LENGTH,
            f"{avp_type.value} payload of {len(data)} bytes, expected {want}",
        )
    if avp_type is AvpType.ADDRESS:
        if len(data) < 2:
            raise ValueProblem(ResultCode.DIAMETER_INVALID_AVP_LENGTH, "Address shorter than its family")
        family = int.from_bytes(data[:2], "big")
        size = {ADDRESS_FAMILY_IPV4: 4, ADDRESS_FAMILY_IPV6: 16}.get(family)
        if size is not None and len(data) != 2 + size:
            raise ValueProblem(
                ResultCode.DIAMETER_INVALID_AVP_LENGTH,
                f"Address of family {family} with {len(data) - 2} bytes",
            )


def decode_int(avp_type: AvpType, data: bytes) -> int:
    check_length(avp_type, data)
    fmt = _INT_FORMAT.get(avp_type)
    if fmt is None:
        raise ValueProblem(ResultCode.DIAMETER_INVALID_AVP_VALUE, f"{avp_type.value} is not an integer")
    value: int = struct.unpack(fmt, data)[0]
    return value


def decode_float(avp_type: AvpType, data: bytes) -> float:
    check_length(avp_type, data)
    fmt = _FLOAT_FORMAT.get(avp_type)
    if fmt is None:
        raise ValueProblem(ResultCode.DIAMETER_INVALID_AVP_VALUE, f"{avp_type.value} is not a float")
    value: float = struct.unpack(fmt, data)[0]
    return value


def decode_text(avp_type: AvpType, data: bytes) -> str:
    """UTF8String (RFC 6733 §4.3.1), DiameterIdentity and DiameterURI (ASCII, §4.3.1)."""
    encoding = "utf-8" if avp_type is AvpType.UTF8_STRING else "ascii"
    if avp_type is AvpType.OCTET_STRING:
        encoding = "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise ValueProblem(
            ResultCode.DIAMETER_INVALID_AVP_VALUE, f"{avp_type.value} is not valid {encoding}"
        ) from None


def decode_address(data: bytes) -> Address:
    """Address: 2-byte family then the address (RFC 6733 §4.3.1)."""
    check_length(AvpType.ADDRESS, data)
    family = int.from_bytes(data[:2], "big")
    if family == ADDRESS_FAMILY_IPV4:
        return IPv4Address(data[2:])
    if family == ADDRESS_FAMILY_IPV6:
        return IPv6Address(data[2:])
    return RawAddress(family, data[2:])


def encode_address(value: Address | str) -> bytes:
    if isinstance(value, str):
        value = ip_address(value)
    if isinstance(value, IPv4Address):
        return ADDRESS_FAMILY_IPV4.to_bytes(2, "big") + value.packed
    if isinstance(value, IPv6Address):
        return ADDRESS_FAMILY_IPV6.to_bytes(2, "big") + value.packed
    if isinstance(value, RawAddress):
        return value.family.to_bytes(2, "big") + value.value
    raise TypeError(f"not an address: {value!r}")


def ntp_to_unix(ntp_seconds: int) -> int:
    """Time (RFC 6733 §4.3.1) to Unix seconds, with the RFC 4330 §3 rule for after 2036."""
    if ntp_seconds & 0x80000000:
        return ntp_seconds - NTP_UNIX_OFFSET
    return ntp_seconds + _NTP_ERA - NTP_UNIX_OFFSET


def unix_to_ntp(unix_seconds: float) -> int:
    """Unix seconds to the 32-bit Time format (RFC 6733 §4.3.1, RFC 4330 §3)."""
    return (int(unix_seconds) + NTP_UNIX_OFFSET) % _NTP_ERA


def encode_value(avp_type: AvpType, value: object) -> bytes:
    """Payload bytes of ``value`` in format ``avp_type`` (Grouped takes encoded bytes)."""
    if avp_type in _INT_FORMAT:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{avp_type.value} needs an int, got {value!r}")
        try:
            return struct.pack(_INT_FORMAT[avp_type], value)
        except struct.error:
            raise ValueError(f"{value} out of range for {avp_type.value}") from None
    if avp_type in _FLOAT_FORMAT:
        if not isinstance(value, float | int) or isinstance(value, bool):
            raise TypeError(f"{avp_type.value} needs a float, got {value!r}")
        return struct.pack(_FLOAT_FORMAT[avp_type], float(value))
    if avp_type is AvpType.ADDRESS:
        if not isinstance(value, IPv4Address | IPv6Address | RawAddress | str):
            raise TypeError(f"Address needs an IP address, got {value!r}")
        return encode_address(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str) and avp_type is not AvpType.GROUPED:
        if avp_type in (AvpType.DIAMETER_IDENTITY, AvpType.DIAMETER_URI):
            return value.encode("ascii")
        return value.encode("utf-8")
    raise TypeError(f"{avp_type.value} cannot hold {value!r}")


def decode_value(avp_type: AvpType, data: bytes) -> int | float | str | bytes | Address:
    """The Python value of a non-grouped payload (Grouped and OctetString stay bytes)."""
    if avp_type in _INT_FORMAT:
        return decode_int(avp_type, data)
    if avp_type in _FLOAT_FORMAT:
        return decode_float(avp_type, data)
    if avp_type is AvpType.ADDRESS:
        return decode_address(data)
    if avp_type in _TEXT_TYPES:
        return decode_text(avp_type, data)
    return data
