"""Media security attributes: DTLS-SRTP and SDES.

* ``a=fingerprint`` (RFC 8122 §5) and ``a=setup`` (RFC 4145 §4, used for
  DTLS by RFC 8842 §5), ``a=tls-id`` (RFC 8842 §4);
* ``a=crypto`` (SDES, RFC 4568 §9.1).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import ClassVar, Literal, cast

from .errors import SdpError
from .lines import Attribute, check_nonws, check_token, parse_uint

Setup = Literal["active", "passive", "actpass", "holdconn"]
SETUP_VALUES: frozenset[str] = frozenset(("active", "passive", "actpass", "holdconn"))

#: Digest sizes of the RFC 8122 §5 hash functions, by lower-case name.
HASH_SIZES: dict[str, int] = {
    "md2": 16,
    "md5": 16,
    "sha-1": 20,
    "sha-224": 28,
    "sha-256": 32,
    "sha-384": 48,
    "sha-512": 64,
}
_HASHLIB_NAMES = {
    "md5": "md5",
    "sha-1": "sha1",
    "sha-224": "sha224",
    "sha-256": "sha256",
    "sha-384": "sha384",
    "sha-512": "sha512",
}
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*\Z")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """``a=fingerprint:<hash-func> <fingerprint>`` (RFC 8122 §5).

    ``value`` keeps the colon-separated hex as written (upper case per the
    RFC 8122 grammar; lower case is accepted).
    """

    algorithm: str
    value: str

    name: ClassVar[str] = "fingerprint"

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        algorithm, space, value = text.partition(" ")
        check_token(algorithm, "fingerprint hash function")
        if not space or _HEX_PAIRS.match(value) is None:
            raise SdpError("bad fingerprint")
        size = HASH_SIZES.get(algorithm.lower())
        if size is not None and (len(value) + 1) // 3 != size:
            raise SdpError("fingerprint length does not match its hash function")
        return cls(algorithm, value)

    def __str__(self) -> str:
        return f"{self.algorithm} {self.value}"

    def to_attribute(self) -> Attribute:
        return Attribute("fingerprint", str(self))

    @property
    def digest(self) -> bytes:
        """The fingerprint as bytes."""
        return bytes.fromhex(self.value.replace(":", ""))

    @classmethod
    def from_digest(cls, algorithm: str, digest: bytes) -> Fingerprint:
        """A fingerprint in the canonical upper-case form."""
        return cls(algorithm, ":".join(f"{b:02X}" for b in digest))

    @classmethod
    def of_certificate(cls, der: bytes, algorithm: str = "sha-256") -> Fingerprint:
        """The fingerprint of a DER-encoded certificate (RFC 8122 §5)."""
        name = _HASHLIB_NAMES.get(algorithm.lower())
        if name is None:
            raise ValueError(f"unsupported hash function {algorithm!r}")
        return cls.from_digest(algorithm, hashlib.new(name, der).digest())

    def matches(self, other: Fingerprint) -> bool:
        """Same hash function and digest, ignoring case."""
        return self.algorithm.lower() == other.algorithm.lower() and self.digest == other.digest


def parse_setup(text: str) -> Setup:
    """``a=setup`` value (RFC 4145 §4)."""
    if text not in SETUP_VALUES:
        raise SdpError("bad setup")
    return cast(Setup, text)


def answer_setup(offered: Setup) -> Setup:
    """The DTLS role an answerer takes for an offered ``setup`` (RFC 4145 §4.1, RFC 8842 §5).

    ``actpass`` is answered ``active`` (RFC 5763 §5: the answerer should be active),
    ``active`` with ``passive`` and ``passive`` with ``active``.
    """
    if offered == "active":
        return "passive"
    if offered in ("actpass", "passive"):
        return "active"
    return "holdconn"


@dataclass(frozen=True, slots=True)
class Crypto:
    """``a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]`` (RFC 4568 §9.1).

    ``key_params`` are the ``;``-separated key parameters
    (``inline:<key||salt>[|<lifetime>][|<MKI>:<length>]``).
    """

    tag: int
    suite: str
    key_params: tuple[str, ...]
    session_params: tuple[str, ...] = ()

    name: ClassVar[str] = "crypto"

    @classmethod
    def parse(cls, text: str) -> Crypto:
        parts = text.split(" ")
        if len(parts) < 3:
            raise SdpError("bad crypto")
        if len(parts[0]) > 9:
            raise SdpError("bad crypto tag")
        tag = parse_uint(parts[0], "crypto tag")
        suite = check_token(parts[1], "crypto suite")
        keys = tuple(parts[2].split(";"))
        for key in keys:
            method, colon, info = key.partition(":")
            check_token(method, "crypto key method")
            if not colon:
                raise SdpError("bad crypto key params")
            check_nonws(info, "crypto key info")
        for param in parts[3:]:
            check_nonws(param, "crypto session param")
        return cls(tag, suite, keys, tuple(parts[3:]))

    def __str__(self) -> str:
        return " ".join((str(self.tag), self.suite, ";".join(self.key_params), *self.session_params))

    def to_attribute(self) -> Attribute:
        return Attribute("crypto", str(self))

    @property
    def inline_keys(self) -> list[str]:
        """The base64 ``key||salt`` of each ``inline:`` key parameter, without lifetime/MKI."""
        return [kp[len("inline:") :].split("|")[0] for kp in self.key_params if kp.startswith("inline:")]


def parse_tls_id(text: str) -> str:
    """``a=tls-id`` value: 20 to 255 characters of ALPHA / DIGIT / "+" / "/" / "-" / "_" (RFC 8842 §4)."""
    if not 20 <= len(text) <= 255 or re.match(r"[A-Za-z0-9+/\-_]+\Z", text) is None:
        raise SdpError("bad tls-id")
    return text
