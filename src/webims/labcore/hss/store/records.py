"""Rows of the HSS tables as records, and the SQL that reads them (see :mod:`.subscribers`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = ["AkaState", "ImpiRecord", "ImpuMatch", "ImpuRecord", "RegState", "UserLookup"]


class RegState(IntEnum):
    """Registration state of a public identity (TS 29.228 §6.1.2, TS 23.228 §5.3.2)."""

    NOT_REGISTERED = 0
    REGISTERED = 1
    UNREGISTERED = 2  # assigned to an S-CSCF for services in unregistered state


@dataclass(frozen=True, slots=True)
class ImpiRecord:
    impi: str
    realm: str
    ha1_md5: str | None
    ha1_sha256: str | None
    digest_algorithm: str
    k: bytes | None
    opc: bytes | None
    amf: bytes
    sqn: int
    visited_networks: tuple[str, ...]
    ifc_xml: str

    @property
    def has_digest(self) -> bool:
        return self.ha1_md5 is not None

    @property
    def has_aka(self) -> bool:
        return self.k is not None and self.opc is not None

    def ha1(self, algorithm: str | None = None) -> str | None:
        alg = (algorithm or self.digest_algorithm).upper()
        return self.ha1_sha256 if alg == "SHA-256" else self.ha1_md5


@dataclass(frozen=True, slots=True)
class ImpuRecord:
    impu: str
    irs: str
    barred: bool
    wildcard: bool
    display_name: str | None
    unreg_services: bool
    reg_state: RegState
    scscf_name: str | None
    scscf_host: str | None
    scscf_realm: str | None


@dataclass(frozen=True, slots=True)
class ImpuMatch:
    """An IMPU found for an identity; ``wildcard`` is set when it matched a wildcarded range."""

    record: ImpuRecord
    wildcard: str | None = None


@dataclass(frozen=True, slots=True)
class AkaState:
    """What :meth:`SubscriberStore.aka_update` passes to its callback."""

    impi: str
    k: bytes
    opc: bytes
    amf: bytes
    sqn: int


@dataclass(frozen=True, slots=True)
class UserLookup:
    """What :meth:`SubscriberStore.user` found for an (IMPI, IMPU) pair of a Cx request."""

    impi: ImpiRecord | None
    match: ImpuMatch | None
    linked: bool


_IMPI_COLS = "impi, realm, ha1_md5, ha1_sha256, digest_algorithm, k, opc, amf, sqn, visited_networks, ifc_xml"
_IMPU_COLS = (
    "impu, irs, barred, wildcard, display_name, unreg_services, reg_state, "
    "scscf_name, scscf_host, scscf_realm"
)
_N_IMPI = 11
_N_IMPU = 10


def _impi_row(r: Sequence[Any]) -> ImpiRecord:
    vn = r[9]
    return ImpiRecord(
        impi=r[0],
        realm=r[1],
        ha1_md5=r[2],
        ha1_sha256=r[3],
        digest_algorithm=r[4],
        k=r[5],
        opc=r[6],
        amf=r[7],
        sqn=r[8],
        visited_networks=tuple(vn.split("\n")) if vn else (),
        ifc_xml=r[10],
    )


def _impu_row(r: Sequence[Any]) -> ImpuRecord:
    return ImpuRecord(
        impu=r[0],
        irs=r[1],
        barred=bool(r[2]),
        wildcard=bool(r[3]),
        display_name=r[4],
        unreg_services=bool(r[5]),
        reg_state=RegState(r[6]),
        scscf_name=r[7],
        scscf_host=r[8],
        scscf_realm=r[9],
    )


_SEL_IMPI = f"SELECT {_IMPI_COLS} FROM hss_impi WHERE impi = ?"
_SEL_IMPU = f"SELECT {_IMPU_COLS} FROM hss_impu WHERE impu = ?"
_SEL_IMPUS_OF = (
    f"SELECT {', '.join('u.' + c.strip() for c in _IMPU_COLS.split(','))} FROM hss_impu u "
    "JOIN hss_impi_impu l ON l.impu = u.impu WHERE l.impi = ? ORDER BY u.rowid"
)
_SEL_IMPIS_OF = "SELECT impi FROM hss_impi_impu WHERE impu = ? ORDER BY rowid"
_SEL_IRS = f"SELECT {_IMPU_COLS} FROM hss_impu WHERE irs = ? ORDER BY rowid"
_SEL_LINK = "SELECT 1 FROM hss_impi_impu WHERE impi = ? AND impu = ?"
#: One round trip for the common request: the IMPI, the IMPU (exact) and whether they are linked.
_SEL_USER = (
    f"SELECT {', '.join('i.' + c.strip() for c in _IMPI_COLS.split(','))}, "
    f"{', '.join('u.' + c.strip() for c in _IMPU_COLS.split(','))}, "
    "(SELECT 1 FROM hss_impi_impu l WHERE l.impi = q.a AND l.impu = q.b) "
    "FROM (SELECT ? AS a, ? AS b) q LEFT JOIN hss_impi i ON i.impi = q.a LEFT JOIN hss_impu u ON u.impu = q.b"
)
_SEL_GENERATION = "SELECT value FROM hss_meta WHERE key = 'generation'"
_BUMP = "UPDATE hss_meta SET value = value + 1 WHERE key = 'generation'"
