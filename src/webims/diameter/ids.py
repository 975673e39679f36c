"""Identifier generation: Hop-by-Hop and End-to-End (RFC 6733 §3), Session-Id (§8.8)."""

from __future__ import annotations

import random

_MASK32 = 0xFFFFFFFF


class IdGenerator:
    """Hop-by-Hop and End-to-End identifiers for the requests one node sends.

    RFC 6733 §3: the End-to-End identifier "MAY" start with the low 12 bits of the
    current time in its high 12 bits and a random value in its low 20 bits; it must
    stay locally unique for at least 4 minutes, so it then counts up. Hop-by-Hop
    identifiers only need to be unique on the connection; they start at a random value.
    ``start_time`` is passed in (sans-IO: no clock is read here).
    """

    def __init__(self, start_time: float, rng: random.Random | None = None) -> None:
        rng = rng if rng is not None else random.SystemRandom()
        self._hop_by_hop = rng.getrandbits(32)
        self._end_to_end = ((int(start_time) & 0xFFF) << 20) | rng.getrandbits(20)

    def next_hop_by_hop(self) -> int:
        value = self._hop_by_hop
        self._hop_by_hop = (value + 1) & _MASK32
        return value

    def next_end_to_end(self) -> int:
        value = self._end_to_end
        self._end_to_end = (value + 1) & _MASK32
        return value


class SessionIdGenerator:
    """Session-Id values ``<DiameterIdentity>;<high 32 bits>;<low 32 bits>[;<optional>]``.

    RFC 6733 §8.8: the 64-bit value must be unique over time; the high 32 bits are
    initialised from the start-up time, the low 32 bits count up.
    """

    def __init__(self, origin_host: str, start_time: float, rng: random.Random | None = None) -> None:
        rng = rng if rng is not None else random.SystemRandom()
        self.origin_host = origin_host
        self._high = int(start_time) & _MASK32
        self._low = rng.getrandbits(32)

    def next(self, optional: str | None = None) -> str:
        value = f"{self.origin_host};{self._high};{self._low}"
        self._low = (self._low + 1) & _MASK32
        if self._low == 0:
            self._high = (self._high + 1) & _MASK32
        return value if optional is None else f"{value};{optional}"
