"""Preconditions: ``a=curr``, ``a=des``, ``a=conf`` (RFC 3312 §5, updated by RFC 4032).

IMS uses the ``qos`` precondition type with the segmented status types
``local`` and ``remote`` (TS 24.229 §6.1.2, §6.1.3).  "local" and "remote"
are relative to the writer of the description, so an answerer swaps them
(RFC 3312 §6).  RFC 4032 updates the framework: the answer keeps the offer's
precondition types and strengths may only be raised; an offerer learns from ``a=conf``
that it must report when its own segment is ready (RFC 3312 §5.1.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from .errors import SdpError
from .lines import Attribute, check_token

PreconditionKind = Literal["curr", "des", "conf"]
STRENGTHS = ("none", "optional", "mandatory", "failure", "unknown")
STATUS_TYPES = ("e2e", "local", "remote")
DIRECTION_TAGS = ("none", "send", "recv", "sendrecv")
_STRENGTH_RANK = {"unknown": 0, "none": 1, "optional": 2, "mandatory": 3, "failure": 4}


@dataclass(frozen=True, slots=True)
class Precondition:
    """One ``a=curr`` / ``a=des`` / ``a=conf`` line (RFC 3312 §5).

    ``strength`` is set only for ``des``.
    """

    kind: PreconditionKind
    status_type: str
    direction: str
    strength: str | None = None
    type: str = "qos"

    names: ClassVar[tuple[str, ...]] = ("curr", "des", "conf")

    @classmethod
    def parse(cls, kind: str, text: str) -> Precondition:
        parts = text.split(" ")
        strength: str | None = None
        k: PreconditionKind
        if kind == "des":
            k = "des"
            if len(parts) != 4 or parts[1] not in STRENGTHS:
                raise SdpError("bad des precondition")
            ptype, strength, status, direction = parts
        elif kind in ("curr", "conf"):
            k = "curr" if kind == "curr" else "conf"
            if len(parts) != 3:
                raise SdpError(f"bad {kind} precondition")
            ptype, status, direction = parts
        else:
            raise SdpError("not a precondition attribute")
        check_token(ptype, "precondition type")
        if status not in STATUS_TYPES:
            raise SdpError("bad precondition status-type")
        if direction not in DIRECTION_TAGS:
            raise SdpError("bad precondition direction-tag")
        return cls(k, status, direction, strength, ptype)

    def __str__(self) -> str:
        if self.kind == "des":
            return f"{self.type} {self.strength} {self.status_type} {self.direction}"
        return f"{self.type} {self.status_type} {self.direction}"

    def to_attribute(self) -> Attribute:
        return Attribute(self.kind, str(self))

    def swapped(self) -> Precondition:
        """The same line as seen by the peer: ``local`` <-> ``remote`` (RFC 3312 §6)."""
        swap = {"local": "remote", "remote": "local"}
        return replace(self, status_type=swap.get(self.status_type, self.status_type))


def covers(current: str, desired: str) -> bool:
    """True if the current direction-tag satisfies the desired one (RFC 3312 §5)."""
    if desired == "none":
        return True
    return current == "sendrecv" or current == desired


def current_status(preconditions: Iterable[Precondition], status_type: str, ptype: str = "qos") -> str:
    """The ``a=curr`` direction for a status type (``none`` when absent)."""
    for p in preconditions:
        if p.kind == "curr" and p.status_type == status_type and p.type == ptype:
            return p.direction
    return "none"


def preconditions_met(preconditions: Sequence[Precondition]) -> bool:
    """True when every mandatory desired status is covered by the current status (RFC 3312 §5, §7).

    A ``failure`` strength means the precondition failed: not met.  Optional
    and ``none`` strengths never hold the session back.
    """
    for p in preconditions:
        if p.kind != "des":
            continue
        if p.strength == "failure":
            return False
        if p.strength == "mandatory" and not covers(
            current_status(preconditions, p.status_type, p.type), p.direction
        ):
            return False
    return True


def qos_offer(
    local_current: str = "none",
    remote_current: str = "none",
    *,
    local_strength: str = "mandatory",
    remote_strength: str = "optional",
    direction: str = "sendrecv",
) -> list[Precondition]:
    """The segmented ``qos`` lines of an initial IMS offer (TS 24.229 §6.1.2, RFC 3312 §5.1).

    Default: local resources not yet reserved, mandatory locally, optional at
    the remote end, as a VoLTE UE writes them.
    """
    return [
        Precondition("curr", "local", local_current),
        Precondition("curr", "remote", remote_current),
        Precondition("des", "local", direction, local_strength),
        Precondition("des", "remote", direction, remote_strength),
    ]


def qos_answer(
    offer: Sequence[Precondition],
    local_current: str = "none",
    *,
    local_strength: str = "mandatory",
    confirm: bool = False,
) -> list[Precondition]:
    """The answerer's precondition lines for an offer (RFC 3312 §6, RFC 4032).

    The offer's view is swapped (its ``local`` becomes our ``remote``); our
    own current status is ``local_current``; a desired strength is never
    lowered and our own local segment gets at least ``local_strength``.  With
    ``confirm``, ``a=conf:qos remote sendrecv`` asks the offerer to report
    when its segment is ready.
    """
    if not any(p.kind == "des" for p in offer):
        return []
    out: list[Precondition] = []
    types = sorted({p.type for p in offer if p.kind == "des"})
    for ptype in types:
        remote_seen = current_status(offer, "local", ptype)
        out.append(Precondition("curr", "local", local_current, type=ptype))
        out.append(Precondition("curr", "remote", remote_seen, type=ptype))
        desired = [p.swapped() for p in offer if p.kind == "des" and p.type == ptype]
        desired.sort(key=lambda p: STATUS_TYPES.index(p.status_type))  # e2e, local, remote
        for mine in desired:
            strength = mine.strength or "none"
            if mine.status_type == "local" and _STRENGTH_RANK[local_strength] > _STRENGTH_RANK[strength]:
                strength = local_strength
            out.append(replace(mine, strength=strength))
        if confirm:
            out.append(Precondition("conf", "remote", "sendrecv", type=ptype))
    return out


def with_current(
    preconditions: Sequence[Precondition], status_type: str, direction: str
) -> list[Precondition]:
    """``preconditions`` with the ``a=curr`` of ``status_type`` set to ``direction``."""
    out = [
        replace(p, direction=direction) if p.kind == "curr" and p.status_type == status_type else p
        for p in preconditions
    ]
    if not any(p.kind == "curr" and p.status_type == status_type for p in out):
        out.insert(0, Precondition("curr", status_type, direction))
    return out
