"""UMTS/IMS AKA: authentication vectors, USIM side, resynchronisation (TS 33.102 §6.3).

Network side (HSS/AuC, §6.3.2)::

    AUTN = (SQN xor AK) || AMF || MAC-A       MAC-A = f1(SQN || RAND || AMF)
    AV   = RAND, XRES = f2, CK = f3, IK = f4, AUTN

USIM side (§6.3.3): recover SQN = (SQN xor AK) xor f5(RAND), check XMAC-A = MAC-A
(else *MAC failure*), check SQN freshness (Annex C, else *synchronisation failure*
with AUTS), then answer RES, CK, IK.

Resynchronisation (§6.3.3, §6.3.5)::

    AUTS = (SQN_MS xor AK*) || MAC-S          AK* = f5*(RAND)
    MAC-S = f1*(SQN_MS || RAND || AMF*)        AMF* = 0x0000, the dummy AMF of §6.3.3
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from .milenage import Milenage
from .sqn import UsimSqnState, sqn_from_bytes, sqn_to_bytes

__all__ = [
    "RESYNC_AMF",
    "AkaError",
    "AkaFormatError",
    "AkaMacFailure",
    "AkaResult",
    "AkaSyncFailure",
    "AuthenticationVector",
    "AutsMacFailure",
    "Usim",
    "build_autn",
    "generate_auts",
    "generate_vector",
    "split_autn",
    "verify_autn",
    "verify_auts",
]

RESYNC_AMF = b"\x00\x00"  # TS 33.102 §6.3.3: the dummy AMF used in MAC-S


class AkaError(Exception):
    """Base of the AKA errors."""


class AkaFormatError(AkaError, ValueError):
    """An AKA parameter from the wire has the wrong length or encoding."""


class AkaMacFailure(AkaError):
    """MAC-A in AUTN does not match XMAC-A: the network is not authentic (TS 33.102 §6.3.3).

    An IMS UE answers with a REGISTER whose response directive is empty and
    that carries no auts (TS 24.229 §5.1.1.5.3).
    """


class AkaSyncFailure(AkaError):
    """AUTN is authentic but SQN is not fresh (TS 33.102 §6.3.3, Annex C).

    ``auts`` is the 14-byte AUTS to send back so the HSS can resynchronise;
    ``sqn`` is the rejected SQN and ``sqn_ms`` the one AUTS carries.
    """

    def __init__(self, auts: bytes, sqn: int, sqn_ms: int) -> None:
        super().__init__(f"SQN {sqn:012x} not fresh (SQN_MS {sqn_ms:012x})")
        self.auts = auts
        self.sqn = sqn
        self.sqn_ms = sqn_ms


class AutsMacFailure(AkaError):
    """MAC-S in AUTS does not match: the resynchronisation request is rejected (TS 33.102 §6.3.5)."""


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _need(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise AkaFormatError(f"{name} must be {length} bytes, got {len(value)}")


@dataclass(frozen=True, slots=True)
class AuthenticationVector:
    """A quintet (TS 33.102 §6.3.2) plus the SQN it was built from, for the HSS's books."""

    rand: bytes
    xres: bytes
    ck: bytes
    ik: bytes
    autn: bytes
    sqn: int


@dataclass(frozen=True, slots=True)
class AkaResult:
    """The USIM's answer to an authentic, fresh challenge (TS 33.102 §6.3.3)."""

    res: bytes
    ck: bytes
    ik: bytes
    sqn: int
    amf: bytes


def build_autn(sqn_xor_ak: bytes, amf: bytes, mac_a: bytes) -> bytes:
    """AUTN = SQN xor AK || AMF || MAC-A (TS 33.102 §6.3.2)."""
    _need("SQN xor AK", sqn_xor_ak, 6)
    _need("AMF", amf, 2)
    _need("MAC-A", mac_a, 8)
    return sqn_xor_ak + amf + mac_a


def split_autn(autn: bytes) -> tuple[bytes, bytes, bytes]:
    """AUTN -> (SQN xor AK, AMF, MAC-A)."""
    _need("AUTN", autn, 16)
    return autn[:6], autn[6:8], autn[8:]


def generate_vector(
    k: bytes, opc: bytes, amf: bytes, sqn: int, rand: bytes | None = None
) -> AuthenticationVector:
    """Network side: one authentication vector for ``sqn`` (TS 33.102 §6.3.2).

    ``rand`` defaults to 16 bytes from :mod:`secrets`; tests inject it.
    """
    if rand is None:
        rand = secrets.token_bytes(16)
    _need("RAND", rand, 16)
    _need("AMF", amf, 2)
    m = Milenage(k, opc)
    sqn_b = sqn_to_bytes(sqn)
    res, ck, ik, ak = m.f2345(rand)
    autn = build_autn(_xor(sqn_b, ak), amf, m.f1(rand, sqn_b, amf))
    return AuthenticationVector(rand=rand, xres=res, ck=ck, ik=ik, autn=autn, sqn=sqn)


def verify_autn(k: bytes, opc: bytes, rand: bytes, autn: bytes) -> AkaResult:
    """USIM side without the freshness check: recover SQN, check MAC-A (TS 33.102 §6.3.3).

    Raises :class:`AkaMacFailure`; the caller decides on SQN (see :class:`Usim`).
    """
    _need("RAND", rand, 16)
    sqn_xor_ak, amf, mac_a = split_autn(autn)
    m = Milenage(k, opc)
    res, ck, ik, ak = m.f2345(rand)
    sqn_b = _xor(sqn_xor_ak, ak)
    if not hmac.compare_digest(m.f1(rand, sqn_b, amf), mac_a):
        raise AkaMacFailure("MAC-A does not match XMAC-A")
    return AkaResult(res=res, ck=ck, ik=ik, sqn=sqn_from_bytes(sqn_b), amf=amf)


def generate_auts(k: bytes, opc: bytes, rand: bytes, sqn_ms: int) -> bytes:
    """USIM side: AUTS = (SQN_MS xor AK*) || MAC-S (TS 33.102 §6.3.3)."""
    _need("RAND", rand, 16)
    m = Milenage(k, opc)
    sqn_b = sqn_to_bytes(sqn_ms)
    return _xor(sqn_b, m.f5star(rand)) + m.f1star(rand, sqn_b, RESYNC_AMF)


def verify_auts(k: bytes, opc: bytes, rand: bytes, auts: bytes) -> int:
    """Network side: check MAC-S and return SQN_MS (TS 33.102 §6.3.5).

    ``rand`` is the RAND of the challenge the USIM rejected.  Raises
    :class:`AutsMacFailure` (and :class:`AkaFormatError` for a wrong length).
    The HSS then continues from :func:`~webims.aka.sqn.resync_sqn`.
    """
    _need("RAND", rand, 16)
    _need("AUTS", auts, 14)
    m = Milenage(k, opc)
    sqn_b = _xor(auts[:6], m.f5star(rand))
    if not hmac.compare_digest(m.f1star(rand, sqn_b, RESYNC_AMF), auts[6:]):
        raise AutsMacFailure("MAC-S does not match XMAC-S")
    return sqn_from_bytes(sqn_b)


class Usim:
    """A soft USIM: K, OPc and the Annex C sequence-number state.

    :meth:`authenticate` plays the AUTHENTICATE command of TS 31.102 §7.1: it
    returns RES/CK/IK, or raises :class:`AkaMacFailure` or
    :class:`AkaSyncFailure` (whose ``auts`` goes back to the network).
    """

    __slots__ = ("_k", "_opc", "sqn_state")

    def __init__(self, k: bytes, opc: bytes, sqn_state: UsimSqnState | None = None) -> None:
        Milenage(k, opc)  # validates the lengths now rather than at first use
        self._k = k
        self._opc = opc
        self.sqn_state = sqn_state if sqn_state is not None else UsimSqnState()

    def authenticate(self, rand: bytes, autn: bytes) -> AkaResult:
        result = verify_autn(self._k, self._opc, rand, autn)
        if not self.sqn_state.is_fresh(result.sqn):
            sqn_ms = self.sqn_state.sqn_ms
            auts = generate_auts(self._k, self._opc, rand, sqn_ms)
            raise AkaSyncFailure(auts=auts, sqn=result.sqn, sqn_ms=sqn_ms)
        self.sqn_state.accept(result.sqn)
        return result
