"""MILENAGE, the 3GPP example algorithm set f1, f1*, f2, f3, f4, f5, f5* (TS 35.206).

The kernel E_K is AES-128 (TS 35.206 §4.1 uses Rijndael with 128-bit blocks and
keys), taken from ``cryptography``.  Test data: TS 35.208 §4.3 (tests/test_milenage.py).

Layout (TS 35.206 §4.1)::

    TEMP = E_K(RAND xor OPc)
    IN1  = SQN || AMF || SQN || AMF
    OUT1 = E_K(TEMP xor rot(IN1 xor OPc, r1) xor c1) xor OPc
    OUTi = E_K(rot(TEMP xor OPc, ri) xor ci) xor OPc        for i = 2..5

    f1 = MAC-A = OUT1[0..63]     f1* = MAC-S = OUT1[64..127]
    f5 = AK = OUT2[0..47]        f2  = RES   = OUT2[64..127]
    f3 = CK = OUT3               f4  = IK    = OUT4
    f5* = AK* = OUT5[0..47]

with r1..r5 = 64, 0, 32, 64, 96 bits and c1..c5 = 0, 1, 2, 4, 8 (in the last bit
positions), the values TS 35.206 §4.1 fixes.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["Milenage", "compute_opc"]

# TS 35.206 §4.1: rotation amounts (in bytes here: all r are multiples of 8) and constants.
_R = (8, 0, 4, 8, 12)
_C = tuple(bytes(15) + bytes([v]) for v in (0, 1, 2, 4, 8))


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _rot(x: bytes, r_bytes: int) -> bytes:
    """rot(x, r): cyclic rotation of 128-bit ``x`` by r bits toward the most significant end."""
    return x[r_bytes:] + x[:r_bytes]


def _check(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")


def _aes(k: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def compute_opc(k: bytes, op: bytes) -> bytes:
    """OPc = OP xor E_K(OP) (TS 35.206 §4.1)."""
    _check("K", k, 16)
    _check("OP", op, 16)
    return _xor(op, _aes(k, op))


class Milenage:
    """MILENAGE for one subscriber key K and its OPc (TS 35.206 §4.1).

    All inputs and outputs are ``bytes``: RAND 16, SQN 6, AMF 2; MAC-A/MAC-S 8,
    RES 8, CK 16, IK 16, AK/AK* 6.
    """

    __slots__ = ("_encryptor", "opc")

    def __init__(self, k: bytes, opc: bytes) -> None:
        _check("K", k, 16)
        _check("OPc", opc, 16)
        self.opc = opc
        # ECB over independent 16-byte blocks: one encryptor serves every call.
        self._encryptor = Cipher(algorithms.AES(k), modes.ECB()).encryptor()

    @classmethod
    def from_op(cls, k: bytes, op: bytes) -> Milenage:
        """Build from the operator variant OP instead of OPc."""
        return cls(k, compute_opc(k, op))

    def _e(self, block: bytes) -> bytes:
        return self._encryptor.update(block)

    def _temp(self, rand: bytes) -> bytes:
        _check("RAND", rand, 16)
        return self._e(_xor(rand, self.opc))

    def _out1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        _check("SQN", sqn, 6)
        _check("AMF", amf, 2)
        temp = self._temp(rand)
        in1 = sqn + amf + sqn + amf
        block = _xor(_xor(temp, _rot(_xor(in1, self.opc), _R[0])), _C[0])
        return _xor(self._e(block), self.opc)

    def _out(self, temp: bytes, i: int) -> bytes:
        """OUT2..OUT5 for ``i`` = 1..4 (0-based index into r and c)."""
        block = _xor(_rot(_xor(temp, self.opc), _R[i]), _C[i])
        return _xor(self._e(block), self.opc)

    def f1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """MAC-A, the network authentication code (TS 33.102 §6.3.2)."""
        return self._out1(rand, sqn, amf)[:8]

    def f1star(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """MAC-S, the resynchronisation authentication code (TS 33.102 §6.3.3)."""
        return self._out1(rand, sqn, amf)[8:]

    def f2345(self, rand: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        """(RES, CK, IK, AK) in one pass, sharing TEMP."""
        temp = self._temp(rand)
        out2 = self._out(temp, 1)
        return out2[8:], self._out(temp, 2), self._out(temp, 3), out2[:6]

    def f2(self, rand: bytes) -> bytes:
        """RES / XRES."""
        return self._out(self._temp(rand), 1)[8:]

    def f3(self, rand: bytes) -> bytes:
        """CK, the cipher key."""
        return self._out(self._temp(rand), 2)

    def f4(self, rand: bytes) -> bytes:
        """IK, the integrity key."""
        return self._out(self._temp(rand), 3)

    def f5(self, rand: bytes) -> bytes:
        """AK, the anonymity key that conceals SQN in AUTN."""
        return self._out(self._temp(rand), 1)[:6]

    def f5star(self, rand: bytes) -> bytes:
        """AK*, the anonymity key that conceals SQN_MS in AUTS."""
        return self._out(self._temp(rand), 4)[:6]
