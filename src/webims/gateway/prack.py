"""Reliable provisional responses (RFC 3262), sans-IO: both roles of the gateway.

The gateway does 100rel with the IMS on behalf of WICs that do not (NI-O / NI-T,
TS 23.228 §5.6.4 / §5.7.4; JsSIP supports none of it):

- as UAC (originating calls): :class:`RSeqTracker` per early dialog takes each
  reliable 1xx once, in order (§4: ``RSeq`` one higher than the last, the first
  any value), and writes the ``RAck`` of the PRACK;
- as UAS (terminating calls): :class:`ReliableSender` numbers the reliable 1xx
  (``RSeq`` from a random start, §3), keeps one outstanding at a time (§3: no new
  reliable 1xx before the previous one is PRACKed), gives the retransmission
  times (T1, doubling, to 64*T1; §3) and matches the PRACK's ``RAck`` (§7.2).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from webims.sip import Request, Response

__all__ = [
    "RAck",
    "RSeqTracker",
    "ReliableSender",
    "is_reliable",
    "parse_rack",
    "rseq_of",
]


def rseq_of(response: Response) -> int | None:
    value = (response.headers.get("RSeq") or "").strip()
    return int(value) if value.isdigit() and 0 < int(value) < 2**32 else None


def is_reliable(response: Response) -> bool:
    """A 101-199 sent reliably: ``Require: 100rel`` and an ``RSeq`` (§7.1)."""
    return (
        100 < response.status < 200
        and "100rel" in response.option_tags("require")
        and rseq_of(response) is not None
    )


@dataclass(frozen=True, slots=True)
class RAck:
    """``RAck: response-num CSeq-num method`` (§7.2)."""

    rseq: int
    cseq: int
    method: str

    def __str__(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


def parse_rack(value: str | None) -> RAck | None:
    parts = (value or "").split()
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return RAck(int(parts[0]), int(parts[1]), parts[2].upper())


class RSeqTracker:
    """UAC side: the reliable 1xx of one early dialog (§4)."""

    def __init__(self) -> None:
        self.last: int | None = None

    def accept(self, response: Response) -> bool:
        """True for a new reliable 1xx to PRACK; False for a retransmission or one out of order."""
        rseq = rseq_of(response)
        if rseq is None:
            return False
        if self.last is not None and rseq != self.last + 1:
            return False
        self.last = rseq
        return True

    @staticmethod
    def rack(response: Response) -> RAck:
        rseq = rseq_of(response)
        assert rseq is not None
        return RAck(rseq, response.cseq.seq, response.cseq.method)


class ReliableSender:
    """UAS side: numbering, one-at-a-time, retransmission schedule and PRACK matching (§3)."""

    def __init__(self, invite: Request, *, t1: float = 0.5, start: int | None = None) -> None:
        self.invite = invite
        self.t1 = t1
        self.next_rseq = start if start is not None else 1 + secrets.randbelow(2**31 - 1)
        self.outstanding: Response | None = None
        self.acknowledged: list[int] = []

    def prepare(self, response: Response) -> Response:
        """Make ``response`` (101-199) reliable: ``Require: 100rel`` and the next ``RSeq``."""
        if self.outstanding is not None:
            raise ValueError("a reliable provisional response is still unacknowledged (RFC 3262 §3)")
        response.headers.add("Require", "100rel")
        response.headers.set("RSeq", str(self.next_rseq))
        self.next_rseq += 1
        self.outstanding = response
        return response

    def retransmit_intervals(self) -> list[float]:
        """Waits between transmissions: T1, 2*T1, ... while the total stays within 64*T1 (§3)."""
        out, wait, total = [], self.t1, 0.0
        while total + wait <= 64 * self.t1:
            out.append(wait)
            total += wait
            wait *= 2
        return out

    def match(self, prack: Request) -> bool:
        """Whether ``prack`` acknowledges the outstanding reliable 1xx (§7.2 RAck)."""
        rack = parse_rack(prack.headers.get("RAck"))
        outstanding = self.outstanding
        if rack is None or outstanding is None:
            return False
        if (rack.rseq, rack.cseq, rack.method) != (
            rseq_of(outstanding),
            self.invite.cseq.seq,
            self.invite.cseq.method,
        ):
            return False
        self.acknowledged.append(rack.rseq)
        self.outstanding = None
        return True
