"""HTTP Digest AKA: the AKA parts of the digest exchange (RFC 3310, RFC 4169).

- nonce = base64(RAND || AUTN || server-data) (RFC 3310 §3.2);
- AKAv1: the digest password is RES itself, as raw bytes (RFC 3310 §3.3);
- AKAv2: the password is base64(PRF(RES || IK || CK, "http-digest-akav2-password"))
  with PRF = HMAC-MD5, keyed by RES || IK || CK (RFC 4169 §3);
- on synchronisation failure the client sends ``auts="base64(AUTS)"`` and computes
  the response with an empty password (RFC 3310 §3.4).

The digest computation itself lives in :mod:`webims.sip.digest`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from .vectors import AkaFormatError

__all__ = [
    "AKAV2_PASSWORD_LABEL",
    "AkaNonce",
    "aka_password",
    "akav1_password",
    "akav2_password",
    "build_aka_nonce",
    "decode_auts",
    "encode_auts",
    "parse_aka_nonce",
]

AKAV2_PASSWORD_LABEL = b"http-digest-akav2-password"  # RFC 4169 §3


def _b64decode(text: str, what: str) -> bytes:
    """Strict base64 (RFC 4648 §4); tolerates missing '=' padding, as some UEs omit it."""
    stripped = text.strip()
    padded = stripped + "=" * (-len(stripped) % 4)
    try:
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise AkaFormatError(f"{what} is not base64") from exc


@dataclass(frozen=True, slots=True)
class AkaNonce:
    """The decoded AKA nonce (RFC 3310 §3.2)."""

    rand: bytes
    autn: bytes
    server_data: bytes = b""


def build_aka_nonce(rand: bytes, autn: bytes, server_data: bytes = b"") -> str:
    """nonce = base64(RAND || AUTN || server-data) (RFC 3310 §3.2)."""
    if len(rand) != 16 or len(autn) != 16:
        raise AkaFormatError("RAND and AUTN must be 16 bytes each")
    return base64.b64encode(rand + autn + server_data).decode("ascii")


def parse_aka_nonce(nonce: str) -> AkaNonce:
    """Split an AKA nonce; raises :class:`AkaFormatError` if it is not base64 or too short."""
    raw = _b64decode(nonce, "AKA nonce")
    if len(raw) < 32:
        raise AkaFormatError(f"AKA nonce carries {len(raw)} bytes, needs RAND and AUTN (32)")
    return AkaNonce(rand=raw[:16], autn=raw[16:32], server_data=raw[32:])


def akav1_password(res: bytes) -> bytes:
    """AKAv1-MD5: the password is RES as raw bytes (RFC 3310 §3.3)."""
    return res


def akav2_password(res: bytes, ik: bytes, ck: bytes) -> bytes:
    """AKAv2-MD5: base64(HMAC-MD5(key = RES || IK || CK, "http-digest-akav2-password")) (RFC 4169 §3)."""
    mac = hmac.new(res + ik + ck, AKAV2_PASSWORD_LABEL, "md5").digest()
    return base64.b64encode(mac)


def aka_password(version: int, res: bytes, ik: bytes, ck: bytes) -> bytes:
    """The digest password for AKA version ``version`` (1: RFC 3310, 2: RFC 4169)."""
    if version == 1:
        return akav1_password(res)
    if version == 2:
        return akav2_password(res, ik, ck)
    raise AkaFormatError(f"unsupported AKA version {version}")


def encode_auts(auts: bytes) -> str:
    """The value of the ``auts`` directive: base64 of the 14-byte AUTS (RFC 3310 §3.4)."""
    if len(auts) != 14:
        raise AkaFormatError(f"AUTS must be 14 bytes, got {len(auts)}")
    return base64.b64encode(auts).decode("ascii")


def decode_auts(value: str) -> bytes:
    """Decode an ``auts`` directive value; raises :class:`AkaFormatError`."""
    raw = _b64decode(value, "auts")
    if len(raw) != 14:
        raise AkaFormatError(f"AUTS must be 14 bytes, got {len(raw)}")
    return raw
