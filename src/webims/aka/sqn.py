"""Sequence numbers for AKA (TS 33.102 §6.3.2, §6.3.5, Annex C).

SQN is 48 bits (TS 33.102 §6.3.7).  Annex C.1 splits it into SEQ (high bits)
and IND (low ``ind_bits`` bits, 5 in the Annex C.3 profile): the AuC keeps one
SEQ_HE counter and gives each serving node (or batch) an IND; the USIM keeps an
array of the highest SEQ accepted for each IND value (Annex C.2.2) so vectors
used out of order by different nodes are still accepted.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "DEFAULT_DELTA",
    "DEFAULT_IND_BITS",
    "SQN_BITS",
    "SQN_MAX",
    "UsimSqnState",
    "join_sqn",
    "next_sqn",
    "resync_sqn",
    "split_sqn",
    "sqn_from_bytes",
    "sqn_to_bytes",
]

SQN_BITS = 48  # TS 33.102 §6.3.7
SQN_MAX = (1 << SQN_BITS) - 1
DEFAULT_IND_BITS = 5  # TS 33.102 Annex C.3: IND of 5 bits, an array of a = 32 entries
DEFAULT_DELTA = 1 << 28  # TS 33.102 Annex C.3: the wrap-around limit delta = 2^28 (C.2.1)


def sqn_to_bytes(sqn: int) -> bytes:
    """48-bit SQN as the 6 bytes AUTN and AUTS carry."""
    if not 0 <= sqn <= SQN_MAX:
        raise ValueError(f"SQN out of range: {sqn}")
    return sqn.to_bytes(6, "big")


def sqn_from_bytes(data: bytes) -> int:
    if len(data) != 6:
        raise ValueError(f"SQN must be 6 bytes, got {len(data)}")
    return int.from_bytes(data, "big")


def split_sqn(sqn: int, ind_bits: int = DEFAULT_IND_BITS) -> tuple[int, int]:
    """SQN -> (SEQ, IND) (TS 33.102 Annex C.1)."""
    if not 0 <= sqn <= SQN_MAX:
        raise ValueError(f"SQN out of range: {sqn}")
    return sqn >> ind_bits, sqn & ((1 << ind_bits) - 1)


def join_sqn(seq: int, ind: int, ind_bits: int = DEFAULT_IND_BITS) -> int:
    """(SEQ, IND) -> SQN = SEQ || IND (TS 33.102 Annex C.1)."""
    if not 0 <= ind < (1 << ind_bits):
        raise ValueError(f"IND out of range: {ind}")
    if not 0 <= seq < (1 << (SQN_BITS - ind_bits)):
        raise ValueError(f"SEQ out of range: {seq}")
    return (seq << ind_bits) | ind


def next_sqn(sqn_he: int, *, ind: int | None = None, ind_bits: int = DEFAULT_IND_BITS) -> int:
    """The SQN of the next vector the AuC generates after ``sqn_he`` (TS 33.102 Annex C.1, C.3).

    SEQ is incremented by one (wrapping at 2^(48 - ind_bits)); IND is ``ind`` when
    given (the index of the serving node the vector goes to), else kept.
    """
    seq, cur = split_sqn(sqn_he, ind_bits)
    seq = (seq + 1) % (1 << (SQN_BITS - ind_bits))
    return join_sqn(seq, cur if ind is None else ind, ind_bits)


def resync_sqn(
    sqn_he: int, sqn_ms: int, *, ind_bits: int = DEFAULT_IND_BITS, delta: int = DEFAULT_DELTA
) -> int:
    """SQN_HE to continue from after a verified AUTS carrying ``sqn_ms`` (TS 33.102 §6.3.5).

    If the next SQN generated from SQN_HE would be accepted by the USIM (its SEQ is
    above SEQ_MS and within delta of it), SQN_HE is kept; otherwise SQN_HE is reset
    to SQN_MS.  Either way, the next vector uses :func:`next_sqn` of the result.
    """
    seq_he, _ = split_sqn(next_sqn(sqn_he, ind_bits=ind_bits), ind_bits)
    seq_ms, _ = split_sqn(sqn_ms, ind_bits)
    if seq_ms < seq_he <= seq_ms + delta:
        return sqn_he
    return sqn_ms


class UsimSqnState:
    """The USIM's record of accepted sequence numbers (TS 33.102 C.2).

    ``seq_array[i]`` is the highest SEQ accepted with IND = i (all zero at first).
    A received SQN is fresh when:

    1. SEQ - SEQ_MS <= ``delta``, where SEQ_MS is the highest SEQ in the array
       (C.2.1, protection against wrap around); ``None`` disables the check;
    2. optionally, SEQ_MS - SEQ < ``age_limit`` L (C.2.2); ``None`` (the
       default) applies no limit;
    3. SEQ > SEQ_MS(IND), the array entry for its own IND (C.2.2).

    Otherwise the USIM answers with a synchronisation failure carrying SQN_MS.
    """

    __slots__ = ("age_limit", "delta", "ind_bits", "seq_array")

    def __init__(
        self,
        *,
        ind_bits: int = DEFAULT_IND_BITS,
        delta: int | None = DEFAULT_DELTA,
        age_limit: int | None = None,
        seq_array: Sequence[int] | None = None,
    ) -> None:
        size = 1 << ind_bits
        if seq_array is not None and len(seq_array) != size:
            raise ValueError(f"seq_array must have {size} entries")
        self.ind_bits = ind_bits
        self.delta = delta
        self.age_limit = age_limit
        self.seq_array: list[int] = list(seq_array) if seq_array is not None else [0] * size

    @property
    def seq_ms(self) -> int:
        """SEQ_MS, the highest SEQ accepted so far."""
        return max(self.seq_array)

    @property
    def sqn_ms(self) -> int:
        """SQN_MS sent in AUTS: the highest SEQ accepted, with the IND it was accepted for."""
        seq = self.seq_ms
        return join_sqn(seq, self.seq_array.index(seq), self.ind_bits)

    def is_fresh(self, sqn: int) -> bool:
        seq, ind = split_sqn(sqn, self.ind_bits)
        if seq <= self.seq_array[ind]:
            return False
        seq_ms = self.seq_ms
        if self.delta is not None and seq - seq_ms > self.delta:
            return False
        return not (self.age_limit is not None and seq_ms - seq >= self.age_limit)

    def accept(self, sqn: int) -> None:
        """Record ``sqn`` as used (C.2.2: SEQ_MS(IND) := SEQ)."""
        seq, ind = split_sqn(sqn, self.ind_bits)
        self.seq_array[ind] = seq
