"""The HSS subscriber database: identities, credentials and registration state.

Kept in the shared SQLite :class:`webims.store.Store` (tables ``hss_*``), so it
survives restarts and a provisioning command (``webims subscriber ...``) can change
it while the HSS runs. Model (TS 23.228 §4.3.3.4, TS 29.228 Annex B):

* an **IMPI** (private user identity, ``hss_impi``) holds the credentials: the SIP
  Digest HA1 = H(IMPI ":" realm ":" password) in MD5 and SHA-256 (the password itself
  is never stored, RFC 7616 §3.4.2), and the AKA secrets K, OPc (an OP is turned into
  OPc at provisioning, TS 35.206 §4.1), AMF and SQN_HE (TS 33.102 Annex C);
* an **IMPU** (public user identity, ``hss_impu``: ``sip:``/``sips:``/``tel:``, or a
  wildcarded range, TS 23.003 §13.5) has its implicit registration set (``irs``),
  barring, the "services for unregistered state" flag, and the registration state
  with the assigned S-CSCF (SIP name, Diameter host and realm; TS 29.228 §6.1.2);
* ``hss_impi_impu`` links them (an IMPU may be shared by several IMPIs).

SQN_HE is the last SQN used; each new vector uses :func:`webims.aka.next_sqn` of it.
All calls are short synchronous SQLite transactions (microseconds), made on the
caller's thread; :meth:`aka_update` is one ``BEGIN IMMEDIATE`` read-modify-write, so
two HSS processes on one file never hand out the same SQN. The HSS server serves the
reads of each batch of Cx requests from a row cache (:mod:`.runtime`, which holds
the run-time reads and writes; :mod:`.records` the rows and their SQL).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from webims.aka import SQN_MAX, compute_opc
from webims.sip.digest import compute_ha1
from webims.store import Store

from ..user_data import check_ifc_xml
from ..wildcard import WildcardError, compile_wildcard, is_wildcarded
from .records import (
    _BUMP,
    _IMPI_COLS,
    _SEL_IMPI,
    _SEL_IMPU,
    AkaState,
    ImpiRecord,
    ImpuMatch,
    ImpuRecord,
    RegState,
    UserLookup,
    _impi_row,
)
from .runtime import RuntimeStore

__all__ = [
    "AkaState",
    "DigestAlgorithmName",
    "ImpiRecord",
    "ImpuMatch",
    "ImpuRecord",
    "ProvisioningError",
    "RegState",
    "Subscriber",
    "SubscriberChanges",
    "SubscriberSpec",
    "SubscriberStore",
    "UserLookup",
]

T = TypeVar("T")
DigestAlgorithmName = Literal["MD5", "SHA-256"]
DIGEST_ALGORITHMS: tuple[DigestAlgorithmName, ...] = ("MD5", "SHA-256")
DEFAULT_AMF = b"\x80\x00"  # TS 33.102 Annex H: separation bit set
MAX_IDENTITY = 256
_SCHEMES = ("sip:", "sips:", "tel:")

MIGRATIONS = [
    """
    CREATE TABLE hss_impi (
        impi TEXT PRIMARY KEY,
        realm TEXT NOT NULL,
        ha1_md5 TEXT,
        ha1_sha256 TEXT,
        digest_algorithm TEXT NOT NULL DEFAULT 'MD5',
        k BLOB,
        opc BLOB,
        amf BLOB NOT NULL DEFAULT x'8000',
        sqn INTEGER NOT NULL DEFAULT 0,
        visited_networks TEXT NOT NULL DEFAULT '',
        ifc_xml TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE hss_impu (
        impu TEXT PRIMARY KEY,
        irs TEXT NOT NULL,
        barred INTEGER NOT NULL DEFAULT 0,
        wildcard INTEGER NOT NULL DEFAULT 0,
        display_name TEXT,
        unreg_services INTEGER NOT NULL DEFAULT 0,
        reg_state INTEGER NOT NULL DEFAULT 0,
        scscf_name TEXT,
        scscf_host TEXT,
        scscf_realm TEXT,
        updated_at REAL NOT NULL
    );
    CREATE INDEX hss_impu_by_irs ON hss_impu (irs);
    CREATE TABLE hss_impi_impu (
        impi TEXT NOT NULL REFERENCES hss_impi (impi) ON DELETE CASCADE,
        impu TEXT NOT NULL REFERENCES hss_impu (impu) ON DELETE CASCADE,
        PRIMARY KEY (impi, impu)
    );
    CREATE INDEX hss_impi_impu_by_impu ON hss_impi_impu (impu);
    CREATE TABLE hss_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO hss_meta (key, value) VALUES ('generation', 0);
    """,
]


class ProvisioningError(ValueError):
    """A subscriber change that cannot be applied (unknown IMPI, bad key length, ...)."""


@dataclass(frozen=True, slots=True)
class Subscriber:
    impi: ImpiRecord
    impus: tuple[ImpuRecord, ...]


@dataclass(frozen=True)
class SubscriberSpec:
    """A new subscriber. ``implicit_sets`` group IMPUs; the IMPUs in no group form one set."""

    impi: str
    impus: tuple[str, ...]
    password: str | None = None
    realm: str | None = None
    k: bytes | None = None
    op: bytes | None = None
    opc: bytes | None = None
    amf: bytes = DEFAULT_AMF
    sqn: int = 0
    barred: frozenset[str] = frozenset()
    implicit_sets: tuple[tuple[str, ...], ...] = ()
    unreg_services: frozenset[str] = frozenset()
    display_names: tuple[tuple[str, str], ...] = ()
    visited_networks: tuple[str, ...] = ()
    ifc_xml: str = ""
    digest_algorithm: DigestAlgorithmName = "MD5"


@dataclass(frozen=True)
class SubscriberChanges:
    """Changes for :meth:`SubscriberStore.update`; ``None`` / empty means "unchanged"."""

    password: str | None = None
    realm: str | None = None
    k: bytes | None = None
    op: bytes | None = None
    opc: bytes | None = None
    amf: bytes | None = None
    sqn: int | None = None
    add_impus: tuple[str, ...] = ()
    remove_impus: tuple[str, ...] = ()
    barred: tuple[str, ...] = ()
    unbarred: tuple[str, ...] = ()
    implicit_sets: tuple[tuple[str, ...], ...] = ()
    unreg_services: tuple[str, ...] = ()
    no_unreg_services: tuple[str, ...] = ()
    display_names: tuple[tuple[str, str], ...] = ()
    visited_networks: tuple[str, ...] | None = None
    ifc_xml: str | None = None
    digest_algorithm: DigestAlgorithmName | None = None
    clear_password: bool = False
    clear_aka: bool = False


# --- validation -----------------------------------------------------------------------------------


def check_impu(identity: str) -> bool:
    """Validate an IMPU; returns True for a wildcarded one. Raises ProvisioningError."""
    if not identity or len(identity) > MAX_IDENTITY or any(c.isspace() for c in identity):
        raise ProvisioningError(f"invalid public identity {identity!r}")
    if not identity.lower().startswith(_SCHEMES):
        raise ProvisioningError(f"public identity {identity!r} must be a sip:, sips: or tel: URI")
    if is_wildcarded(identity):
        try:
            compile_wildcard(identity)
        except WildcardError as exc:
            raise ProvisioningError(str(exc)) from None
        return True
    return False


def _check_impi(impi: str) -> None:
    if not impi or len(impi) > MAX_IDENTITY or any(c.isspace() or c in ':<>"' for c in impi):
        raise ProvisioningError(f"invalid private identity {impi!r} (expected user@realm, TS 23.003 §13.3)")


def _need_len(name: str, value: bytes | None, n: int) -> None:
    if value is not None and len(value) != n:
        raise ProvisioningError(f"{name} must be {n} bytes ({2 * n} hex digits), got {len(value)}")


def _ha1s(impi: str, realm: str, password: str) -> tuple[str, str]:
    return compute_ha1(impi, realm, password, "MD5"), compute_ha1(impi, realm, password, "SHA-256")


class SubscriberStore(RuntimeStore):
    """Provisioning and run-time access to the HSS tables of a :class:`webims.store.Store`.

    The run-time reads and writes of Cx requests, and their row cache, are
    :class:`~.runtime.RuntimeStore`'s.
    """

    def __init__(self, store: Store, *, default_realm: str = "ims.test") -> None:
        super().__init__(store)
        self.default_realm = default_realm
        store.migrate("hss", MIGRATIONS)

    # --- provisioning ---------------------------------------------------------------------------------
    def get(self, impi: str) -> Subscriber | None:
        record = self.impi(impi)
        return Subscriber(record, tuple(self.impus_of(impi))) if record is not None else None

    def list(self) -> list[Subscriber]:
        rows = self.store.read(
            lambda db: db.execute(f"SELECT {_IMPI_COLS} FROM hss_impi ORDER BY impi").fetchall()
        )
        return [Subscriber(_impi_row(r), tuple(self.impus_of(r[0]))) for r in rows]

    def add(self, spec: SubscriberSpec) -> Subscriber:
        """Create a subscriber; IMPUs that already exist are shared (linked), not changed."""
        _check_impi(spec.impi)
        if not spec.impus:
            raise ProvisioningError("a subscriber needs at least one public identity (IMPU)")
        wild = {u: check_impu(u) for u in spec.impus}
        if len(set(spec.impus)) != len(spec.impus):
            raise ProvisioningError("duplicate public identity")
        self._check_subset("barred", spec.barred, spec.impus)
        self._check_subset("services for unregistered state", spec.unreg_services, spec.impus)
        self._check_subset("display names", {u for u, _ in spec.display_names}, spec.impus)
        realm = spec.realm or self._realm_of(spec.impi)
        ha1 = _ha1s(spec.impi, realm, spec.password) if spec.password is not None else (None, None)
        k, opc = self._aka(spec.k, spec.op, spec.opc)
        _need_len("AMF", spec.amf, 2)
        if not 0 <= spec.sqn <= SQN_MAX:
            raise ProvisioningError("SQN must be a 48-bit number")
        if spec.digest_algorithm not in DIGEST_ALGORITHMS:
            raise ProvisioningError(f"digest algorithm must be one of {DIGEST_ALGORITHMS}")
        ifc = self._ifc(spec.ifc_xml)
        sets = self._sets(spec.impus, spec.implicit_sets)
        names = dict(spec.display_names)
        now = time.time()

        def run(db: sqlite3.Connection) -> None:
            if db.execute(_SEL_IMPI, (spec.impi,)).fetchone() is not None:
                raise ProvisioningError(f"subscriber {spec.impi} already exists")
            db.execute(
                "INSERT INTO hss_impi (impi, realm, ha1_md5, ha1_sha256, digest_algorithm, k, opc, amf, sqn, "
                "visited_networks, ifc_xml, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    spec.impi,
                    realm,
                    ha1[0],
                    ha1[1],
                    spec.digest_algorithm,
                    k,
                    opc,
                    spec.amf,
                    spec.sqn,
                    "\n".join(spec.visited_networks),
                    ifc,
                    now,
                    now,
                ),
            )
            for impu in spec.impus:
                if db.execute(_SEL_IMPU, (impu,)).fetchone() is None:
                    db.execute(
                        "INSERT INTO hss_impu (impu, irs, barred, wildcard, display_name, unreg_services, "
                        "updated_at) VALUES (?,?,?,?,?,?,?)",
                        (
                            impu,
                            sets[impu],
                            impu in spec.barred,
                            wild[impu],
                            names.get(impu),
                            impu in spec.unreg_services,
                            now,
                        ),
                    )
                db.execute("INSERT INTO hss_impi_impu (impi, impu) VALUES (?, ?)", (spec.impi, impu))
            db.execute(_BUMP)

        self._provision(run)
        result = self.get(spec.impi)
        assert result is not None
        return result

    def update(self, impi: str, ch: SubscriberChanges) -> Subscriber:
        current = self.get(impi)
        if current is None:
            raise ProvisioningError(f"no subscriber {impi}")
        rec = current.impi
        have = [u.impu for u in current.impus]
        wild = {u: check_impu(u) for u in ch.add_impus}
        after = [u for u in have if u not in ch.remove_impus] + [u for u in ch.add_impus if u not in have]
        for name, group in (
            ("removed", ch.remove_impus),
            ("barred", ch.barred),
            ("unbarred", ch.unbarred),
            ("services for unregistered state", (*ch.unreg_services, *ch.no_unreg_services)),
            ("display names", tuple(u for u, _ in ch.display_names)),
        ):
            self._check_subset(name, set(group), have if name == "removed" else after)
        if not after:
            raise ProvisioningError("a subscriber needs at least one public identity (IMPU)")
        realm = ch.realm or rec.realm
        values: dict[str, object] = {}
        if ch.realm is not None and ch.realm != rec.realm and ch.password is None and rec.has_digest:
            raise ProvisioningError("changing the realm changes HA1: give the password again")
        if ch.realm is not None:
            values["realm"] = realm
        if ch.password is not None:
            values["ha1_md5"], values["ha1_sha256"] = _ha1s(impi, realm, ch.password)
        elif ch.clear_password:
            values["ha1_md5"] = values["ha1_sha256"] = None
        if ch.k is not None or ch.op is not None or ch.opc is not None:
            values["k"], values["opc"] = self._aka(ch.k if ch.k is not None else rec.k, ch.op, ch.opc)
        elif ch.clear_aka:
            values["k"] = values["opc"] = None
        if ch.amf is not None:
            _need_len("AMF", ch.amf, 2)
            values["amf"] = ch.amf
        if ch.sqn is not None:
            if not 0 <= ch.sqn <= SQN_MAX:
                raise ProvisioningError("SQN must be a 48-bit number")
            values["sqn"] = ch.sqn
        if ch.visited_networks is not None:
            values["visited_networks"] = "\n".join(ch.visited_networks)
        if ch.ifc_xml is not None:
            values["ifc_xml"] = self._ifc(ch.ifc_xml)
        if ch.digest_algorithm is not None:
            if ch.digest_algorithm not in DIGEST_ALGORITHMS:
                raise ProvisioningError(f"digest algorithm must be one of {DIGEST_ALGORITHMS}")
            values["digest_algorithm"] = ch.digest_algorithm
        new_sets = self._sets(list(ch.add_impus), ()) if ch.add_impus else {}
        regroup = self._sets(after, ch.implicit_sets, only_listed=True) if ch.implicit_sets else {}
        now = time.time()

        def run(db: sqlite3.Connection) -> None:
            if values:
                cols = ", ".join(f"{c} = ?" for c in values)
                db.execute(
                    f"UPDATE hss_impi SET {cols}, updated_at = ? WHERE impi = ?",
                    (*values.values(), now, impi),
                )
            for impu in ch.remove_impus:
                db.execute("DELETE FROM hss_impi_impu WHERE impi = ? AND impu = ?", (impi, impu))
                db.execute(
                    "DELETE FROM hss_impu WHERE impu = ? AND impu NOT IN (SELECT impu FROM hss_impi_impu)",
                    (impu,),
                )
            for impu in ch.add_impus:
                if impu in have:
                    continue
                if db.execute(_SEL_IMPU, (impu,)).fetchone() is None:
                    db.execute(
                        "INSERT INTO hss_impu (impu, irs, wildcard, updated_at) VALUES (?,?,?,?)",
                        (impu, new_sets[impu], wild[impu], now),
                    )
                db.execute("INSERT INTO hss_impi_impu (impi, impu) VALUES (?, ?)", (impi, impu))
            for column, group, value in (
                ("barred", ch.barred, 1),
                ("barred", ch.unbarred, 0),
                ("unreg_services", ch.unreg_services, 1),
                ("unreg_services", ch.no_unreg_services, 0),
            ):
                for impu in group:
                    db.execute(
                        f"UPDATE hss_impu SET {column} = ?, updated_at = ? WHERE impu = ?", (value, now, impu)
                    )
            for impu, name in ch.display_names:
                db.execute(
                    "UPDATE hss_impu SET display_name = ?, updated_at = ? WHERE impu = ?",
                    (name or None, now, impu),
                )
            for impu, irs in regroup.items():
                db.execute("UPDATE hss_impu SET irs = ?, updated_at = ? WHERE impu = ?", (irs, now, impu))
            db.execute(_BUMP)

        self._provision(run)
        result = self.get(impi)
        assert result is not None
        return result

    def remove(self, impi: str) -> bool:
        """Delete ``impi`` and the IMPUs no other IMPI shares; False if it did not exist."""

        def run(db: sqlite3.Connection) -> bool:
            impus = [r[0] for r in db.execute("SELECT impu FROM hss_impi_impu WHERE impi = ?", (impi,))]
            if db.execute("DELETE FROM hss_impi WHERE impi = ?", (impi,)).rowcount == 0:
                return False
            for impu in impus:
                db.execute(
                    "DELETE FROM hss_impu WHERE impu = ? AND impu NOT IN (SELECT impu FROM hss_impi_impu)",
                    (impu,),
                )
            db.execute(_BUMP)
            return True

        return self._provision(run)

    # --- helpers -----------------------------------------------------------------------------------------
    def _provision(self, run: Callable[[sqlite3.Connection], T]) -> T:
        """A provisioning transaction; the run-time row cache starts over after it."""
        self.flush()
        try:
            return self.store.write(run)
        finally:
            self._forget_all()

    def _realm_of(self, impi: str) -> str:
        """TS 23.003 §13.3: the IMPI is username@realm; the digest realm defaults to that realm."""
        _, at, domain = impi.rpartition("@")
        return domain if at and domain else self.default_realm

    @staticmethod
    def _aka(k: bytes | None, op: bytes | None, opc: bytes | None) -> tuple[bytes | None, bytes | None]:
        if op is not None and opc is not None:
            raise ProvisioningError("give OP or OPc, not both")
        _need_len("K", k, 16)
        _need_len("OP", op, 16)
        _need_len("OPc", opc, 16)
        if k is None:
            if op is not None or opc is not None:
                raise ProvisioningError("OP/OPc without K")
            return None, None
        if op is not None:
            return k, compute_opc(k, op)  # TS 35.206 §4.1: OPc = OP xor E_K(OP); OP is not kept
        if opc is None:
            raise ProvisioningError("K needs OP or OPc")
        return k, opc

    @staticmethod
    def _ifc(xml: str) -> str:
        try:
            return check_ifc_xml(xml)
        except ValueError as exc:
            raise ProvisioningError(str(exc)) from None

    @staticmethod
    def _check_subset(what: str, group: Iterable[str], impus: Sequence[str]) -> None:
        unknown = sorted(set(group) - set(impus))
        if unknown:
            raise ProvisioningError(f"{what}: {', '.join(unknown)} not among the subscriber's IMPUs")

    @staticmethod
    def _sets(
        impus: Sequence[str], groups: Sequence[Sequence[str]], *, only_listed: bool = False
    ) -> dict[str, str]:
        """IMPU -> implicit registration set id (the set's first IMPU). Unlisted IMPUs share one set."""
        out: dict[str, str] = {}
        for group in groups:
            for impu in group:
                if impu not in impus:
                    raise ProvisioningError(f"implicit set: {impu} is not among the subscriber's IMPUs")
                if impu in out:
                    raise ProvisioningError(f"implicit set: {impu} is in two sets")
                out[impu] = group[0]
        if not only_listed:
            rest = [u for u in impus if u not in out]
            for impu in rest:
                out[impu] = rest[0]
        return out
