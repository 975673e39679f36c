"""Random identifiers from the operating system's CSPRNG, drawn in blocks.

Via branches (RFC 3261 §8.1.1.7), tags (§19.3: "cryptographically random with at least 32
bits of randomness"), Call-IDs, icids (TS 24.229 §7.2A.5), binding and nonce ids: several per
request, each of which would cost one ``getrandom`` system call through ``secrets``. The
bytes here come from the same source (``os.urandom``), read 4 KiB at a time, each byte used
once; a forked child drops its parent's bytes. For one thread (the event loop's): the pool
takes no lock.
"""

from __future__ import annotations

import base64
import os

__all__ = ["randbelow", "token_bytes", "token_hex", "token_urlsafe"]

_BLOCK = 4096


class _Pool:
    __slots__ = ("data", "offset")

    def __init__(self) -> None:
        self.data = b""
        self.offset = 0  # the bytes before it are used

    def take(self, n: int) -> bytes:
        start = self.offset
        end = start + n
        data = self.data
        if end > len(data):
            data = self.data = os.urandom(max(_BLOCK, n))
            start, end = 0, n
        self.offset = end
        return data[start:end]

    def forget(self) -> None:
        self.data = b""
        self.offset = 0


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.forget)  # a child must not reuse its parent's bytes


def token_bytes(nbytes: int) -> bytes:
    """``secrets.token_bytes(nbytes)``, from pooled random bytes."""
    return _pool.take(nbytes)


def token_hex(nbytes: int) -> str:
    """``secrets.token_hex(nbytes)``, from pooled random bytes."""
    return _pool.take(nbytes).hex()


def token_urlsafe(nbytes: int) -> str:
    """``secrets.token_urlsafe(nbytes)``, from pooled random bytes."""
    return base64.urlsafe_b64encode(_pool.take(nbytes)).rstrip(b"=").decode("ascii")


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
