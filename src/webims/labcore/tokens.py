"""Random tokens for tags and identifiers, from the operating system's CSPRNG in blocks.

RFC 3261 §19.3 wants tags "cryptographically random with at least 32 bits of
randomness"; ``secrets.token_hex`` gives that with one ``getrandom`` system call per
token, several per registration. The bytes here come from the same source
(``os.urandom``), drawn 4 KiB at a time and never used twice.
"""

from __future__ import annotations

import os

__all__ = ["randbelow", "token_hex"]

_BLOCK = 4096


class _Pool:
    __slots__ = ("data", "offset")

    def __init__(self) -> None:
        self.data = b""
        self.offset = 0  # the bytes before it are used

    def take(self, n: int) -> bytes:
        start = self.offset
        end = start + n
        if end > len(self.data):
            self.data = os.urandom(max(_BLOCK, n))
            start, end = 0, n
        self.offset = end
        return self.data[start:end]


_pool = _Pool()


def token_hex(nbytes: int) -> str:
    """``secrets.token_hex(nbytes)``, from pooled random bytes."""
    return _pool.take(nbytes).hex()


def randbelow(n: int) -> int:
    """A uniformly random int in ``[0, n)`` (rejection sampling, as ``secrets.randbelow``)."""
    if n <= 0:
        raise ValueError("upper bound must be positive")
    bits = n.bit_length()
    size = (bits + 7) // 8
    while True:
        value = int.from_bytes(_pool.take(size), "big") >> (size * 8 - bits)
        if value < n:
            return value
