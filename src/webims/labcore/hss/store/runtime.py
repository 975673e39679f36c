"""Run-time access to the HSS tables: the reads and writes of Cx requests, with a row cache.

A Cx request reads a few rows (the IMPI, the IMPU, the implicit registration set,
the IMPIs sharing an IMPU) and may write the registration state. One SQLite call
costs some ten microseconds from Python, more than the rest of a simple request, so
the HSS server (:class:`webims.labcore.hss.server.HssServer`) handles each batch of
requests (what one read from a Diameter connection brought) between
:meth:`RuntimeStore.begin_batch` and :meth:`RuntimeStore.end_batch`:

- ``begin_batch``: one ``PRAGMA data_version`` query. SQLite changes that number
  when another connection (a ``webims subscriber`` command, another HSS process on
  the file) has committed something; then every cached row is dropped;
- inside the batch, rows are read from memory when known, else from SQLite and kept;
- when the cache starts (over) empty and the tables are small (at most
  ``MAX_PRELOADED_ROWS`` rows), ``begin_batch`` reads them all at once (three
  queries, a few microseconds a row instead of some 25 per query): the cache is then
  *complete* and a row it lacks does not exist, so no request (not even the first of
  each user) waits for SQLite. A write outside a batch re-reads the row it changed;
- registration state (SAR, and MAR storing the S-CSCF name, TS 29.228 §6.1.2,
  §6.3.1) is changed in the cached rows at once and written to SQLite, all of the
  batch's changes in one transaction, by ``end_batch``; the SQN of AKA is always
  written at once, in its own ``BEGIN IMMEDIATE`` transaction (TS 33.102 Annex C).

Outside a batch every call goes to SQLite, as it always did (tests, the CLI, the
admin requests). Writes made there drop the rows they change from the cache, and
provisioning changes (through any :class:`SubscriberStore` of the same
:class:`~webims.store.Store`: the cache is shared by them) drop the whole cache.
Batches run on one thread (the HSS's event loop); SQL written to the ``hss_*``
tables through the same connection by other code is not seen until another
connection changes the file.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from webims.aka import SQN_MAX
from webims.store import Store, StoreError

from ..wildcard import WildcardIndex
from .records import (
    _IMPI_COLS,
    _IMPU_COLS,
    _N_IMPI,
    _N_IMPU,
    _SEL_GENERATION,
    _SEL_IMPI,
    _SEL_IMPIS_OF,
    _SEL_IMPU,
    _SEL_IMPUS_OF,
    _SEL_IRS,
    _SEL_LINK,
    _SEL_USER,
    AkaState,
    ImpiRecord,
    ImpuMatch,
    ImpuRecord,
    RegState,
    UserLookup,
    _impi_row,
    _impu_row,
)

__all__ = ["RuntimeStore"]

log = logging.getLogger("webims.labcore.hss")

T = TypeVar("T")

#: Entries of one table of the cache before it starts over; a row is a few hundred bytes.
MAX_CACHED_ROWS = 200_000
#: Tables with at most this many rows (and a quarter of MAX_CACHED_ROWS) are read whole
#: into an empty cache: some 5 µs a row, about 0.1 s of the event loop for 10,000 subscribers.
MAX_PRELOADED_ROWS = 10_000
_UPDATE_REGISTRATION = (
    "UPDATE hss_impu SET reg_state = ?, scscf_name = ?, scscf_host = ?, scscf_realm = ?, "
    "updated_at = ? WHERE impu = ?"
)
_RegistrationRow = tuple[int, str | None, str | None, str | None, float, str]


class _Rows:
    """The cache of one :class:`Store` (see the module docstring)."""

    def __init__(self) -> None:
        self.version: int | None = None  # PRAGMA data_version when the rows were read
        self.depth = 0  # nested begin_batch calls
        self.pending: list[_RegistrationRow] = []
        self.clear()

    def clear(self) -> None:
        self.impi: dict[str, ImpiRecord | None] = {}
        self.impu: dict[str, ImpuRecord | None] = {}
        #: (IMPI, identity) -> (IMPI known, IMPU name, wildcard matched, linked)
        self.users: dict[tuple[str, str], tuple[bool, str | None, str | None, bool]] = {}
        self.sets: dict[str, tuple[str, ...]] = {}  # implicit registration set -> IMPUs
        self.impus_of: dict[str, tuple[str, ...]] = {}
        self.impis_of: dict[str, tuple[str, ...]] = {}
        self.links: dict[tuple[str, str], bool] = {}
        self.wildcards: WildcardIndex | None = None
        #: every row of the tables is cached (:meth:`RuntimeStore._preload`): a miss means "no such row"
        self.complete = False

    def room(self, table: dict[Any, Any]) -> bool:
        """Whether ``table`` may take one more entry: when full the cache starts over, unless
        rows carry changes not written yet (then nothing more is cached until they are)."""
        if len(table) < MAX_CACHED_ROWS:
            return True
        if self.pending:
            return False
        self.clear()
        return True

    def keep(self, rec: ImpuRecord) -> ImpuRecord:
        """The cached row of ``rec``'s IMPU (it may carry a change not yet written), else ``rec``."""
        cached = self.impu.get(rec.impu)
        if cached is not None:
            return cached
        if self.room(self.impu):
            self.impu[rec.impu] = rec
        return rec


_CACHES: weakref.WeakKeyDictionary[Store, _Rows] = weakref.WeakKeyDictionary()


class RuntimeStore:
    """The Cx-time reads and writes of :class:`SubscriberStore` (see the module docstring)."""

    store: Store

    def __init__(self, store: Store) -> None:
        self.store = store
        rows = _CACHES.get(store)
        if rows is None:
            rows = _CACHES[store] = _Rows()
        self._rows = rows
        self._wildcards: WildcardIndex | None = None
        self._wildcards_generation = -1

    # --- batches --------------------------------------------------------------------------------
    def begin_batch(self) -> None:
        """Start serving reads from memory (see the module docstring); calls nest."""
        rows = self._rows
        if rows.depth == 0:
            try:
                version = self.store.read(lambda db: db.execute("PRAGMA data_version").fetchone()[0])
            except (sqlite3.Error, StoreError):
                version = None  # each request will meet (and answer) the error itself
            if version != rows.version or version is None:
                rows.clear()
                rows.version = version
            if version is not None and not rows.complete and not rows.impi and not rows.impu:
                self._preload()
        rows.depth += 1

    def _preload(self) -> None:
        """Read every row of small tables into the (empty) cache and mark it complete
        (see the module docstring); nothing when the tables are larger than that."""
        limit = min(MAX_PRELOADED_ROWS, MAX_CACHED_ROWS // 4)
        counts = (
            "SELECT (SELECT count(*) FROM hss_impi), (SELECT count(*) FROM hss_impu), "
            "(SELECT count(*) FROM hss_impi_impu)"
        )

        def read(db: sqlite3.Connection) -> tuple[list[Any], list[Any], list[Any]] | None:
            own = not db.in_transaction  # one read transaction: the three tables of one snapshot
            if own:
                db.execute("BEGIN")
            try:
                if max(db.execute(counts).fetchone()) > limit:
                    return None
                return (
                    db.execute(f"SELECT {_IMPI_COLS} FROM hss_impi").fetchall(),
                    db.execute(f"SELECT {_IMPU_COLS} FROM hss_impu ORDER BY rowid").fetchall(),
                    db.execute("SELECT impi, impu FROM hss_impi_impu ORDER BY rowid").fetchall(),
                )
            finally:
                if own and db.in_transaction:
                    db.execute("COMMIT")

        try:
            found = self.store.read(read)
        except (sqlite3.Error, StoreError):
            return  # each request will meet (and answer) the error itself
        if found is None:
            return
        impi_rows, impu_rows, link_rows = found
        rows = self._rows
        impis = rows.impi
        for r in impi_rows:
            impis[r[0]] = _impi_row(r)
        impus = rows.impu
        sets: dict[str, list[str]] = {}
        for r in impu_rows:  # rowid order: _SEL_IRS and _SEL_IMPUS_OF order by the IMPU's rowid
            rec = impus[r[0]] = _impu_row(r)
            sets.setdefault(rec.irs, []).append(rec.impu)
        order = {name: i for i, name in enumerate(impus)}
        impis_of: dict[str, list[str]] = {}
        impus_of: dict[str, list[str]] = {}
        links = rows.links
        for impi, impu in link_rows:  # rowid order, as _SEL_IMPIS_OF
            links[(impi, impu)] = True
            impis_of.setdefault(impu, []).append(impi)
            if impu in order:  # _SEL_IMPUS_OF joins the IMPU row
                impus_of.setdefault(impi, []).append(impu)
        rows.sets.update((irs, tuple(names)) for irs, names in sets.items())
        rows.impis_of.update((impu, tuple(names)) for impu, names in impis_of.items())
        for impi, names in impus_of.items():
            rows.impus_of[impi] = tuple(sorted(names, key=order.__getitem__))
        rows.complete = True

    def end_batch(self) -> None:
        """End a batch; the outermost one writes the registration changes it made."""
        rows = self._rows
        rows.depth -= 1
        if rows.depth == 0:
            self.flush()

    def flush(self) -> None:
        """Write pending registration changes now (one transaction)."""
        rows = self._rows
        pending, rows.pending = rows.pending, []
        if not pending:
            return
        try:
            self.store.write(lambda db: db.executemany(_UPDATE_REGISTRATION, pending))
        except (sqlite3.Error, StoreError, OSError) as exc:
            # The batch's answers report changes the database does not have: read it again.
            log.error("HSS: cannot store %d registration changes: %s", len(pending), exc)
            rows.clear()

    def _forget_all(self) -> None:
        """After a provisioning change: nothing cached can be trusted."""
        self.flush()
        self._rows.clear()
        self._wildcards = None

    # --- reads ------------------------------------------------------------------------------------
    def impi(self, impi: str) -> ImpiRecord | None:
        rows = self._rows
        if rows.depth:
            if impi in rows.impi:
                return rows.impi[impi]
            if rows.complete:
                return None
        row = self.store.read(lambda db: db.execute(_SEL_IMPI, (impi,)).fetchone())
        rec = _impi_row(row) if row is not None else None
        if rows.depth and rows.room(rows.impi):
            rows.impi[impi] = rec
        return rec

    def impu(self, impu: str) -> ImpuRecord | None:
        """The IMPU row stored under exactly this identity (wildcarded ranges included)."""
        rows = self._rows
        if rows.depth:
            if impu in rows.impu:
                return rows.impu[impu]
            if rows.complete:
                return None
        row = self.store.read(lambda db: db.execute(_SEL_IMPU, (impu,)).fetchone())
        rec = _impu_row(row) if row is not None else None
        if rows.depth:
            if rec is not None:
                rec = rows.keep(rec)
            elif rows.room(rows.impu):
                rows.impu[impu] = None
        return rec

    def lookup_impu(self, identity: str) -> ImpuMatch | None:
        """The IMPU for ``identity``: an exact match, else the most specific wildcarded range."""
        exact = self.impu(identity)
        if exact is not None:
            return ImpuMatch(exact)
        pattern = self._wildcard_index().match(identity)
        if pattern is None:
            return None
        record = self.impu(pattern)
        return ImpuMatch(record, pattern) if record is not None else None

    def user(self, impi: str, identity: str) -> UserLookup:
        """The IMPI, the IMPU for ``identity`` (exact, else a wildcarded range) and their link."""
        rows = self._rows
        if rows.depth and rows.complete:  # as _SEL_USER, from the rows
            rec = rows.impi.get(impi)
            exact = rows.impu.get(identity)
            if exact is not None:
                return UserLookup(rec, ImpuMatch(exact), (impi, identity) in rows.links)
            match = self.lookup_impu(identity)
            linked = rec is not None and match is not None and self.is_linked(rec.impi, match.record.impu)
            return UserLookup(rec, match, linked)
        if rows.depth:
            hit = rows.users.get((impi, identity))
            if hit is not None:
                known, name, wildcard, linked = hit
                urec = self.impu(name) if name is not None else None
                match = ImpuMatch(urec, wildcard) if urec is not None else None
                return UserLookup(self.impi(impi) if known else None, match, linked)
        found = self._user(impi, identity)
        if rows.depth and rows.room(rows.users) and rows.room(rows.impi):
            match = found.match
            rows.impi.setdefault(impi, found.impi)
            if match is not None:
                match = ImpuMatch(rows.keep(match.record), match.wildcard)
                found = UserLookup(found.impi, match, found.linked)
            rows.users[(impi, identity)] = (
                found.impi is not None,
                match.record.impu if match is not None else None,
                match.wildcard if match is not None else None,
                found.linked,
            )
        return found

    def _user(self, impi: str, identity: str) -> UserLookup:
        row = self.store.read(lambda db: db.execute(_SEL_USER, (impi, identity)).fetchone())
        rec = _impi_row(row) if row is not None and row[0] is not None else None
        if row is not None and row[_N_IMPI] is not None:
            return UserLookup(rec, ImpuMatch(_impu_row(row[_N_IMPI : _N_IMPI + _N_IMPU])), bool(row[-1]))
        match = self.lookup_impu(identity)
        linked = rec is not None and match is not None and self.is_linked(rec.impi, match.record.impu)
        return UserLookup(rec, match, linked)

    def impus_of(self, impi: str) -> list[ImpuRecord]:
        return self._records(self._rows.impus_of, impi, _SEL_IMPUS_OF)

    def implicit_set(self, irs: str) -> list[ImpuRecord]:
        """The IMPUs of implicit registration set ``irs`` (TS 23.228 §5.2.1a), in provisioning order."""
        return self._records(self._rows.sets, irs, _SEL_IRS)

    def _records(self, index: dict[str, tuple[str, ...]], key: str, query: str) -> list[ImpuRecord]:
        rows = self._rows
        if rows.depth:
            names = index.get(key)
            if names is None and rows.complete:
                return []
            if names is not None:
                cached = [rows.impu.get(n) for n in names]
                if all(r is not None for r in cached):
                    return cached  # type: ignore[return-value]
        recs = [_impu_row(r) for r in self.store.read(lambda db: db.execute(query, (key,)).fetchall())]
        if rows.depth:
            recs = [rows.keep(r) for r in recs]
            if rows.room(index):
                index[key] = tuple(r.impu for r in recs)
        return recs

    def impis_of(self, impu: str) -> list[str]:
        rows = self._rows
        if rows.depth:
            names = rows.impis_of.get(impu)
            if names is not None:
                return list(names)
            if rows.complete:
                return []
        found = [r[0] for r in self.store.read(lambda db: db.execute(_SEL_IMPIS_OF, (impu,)).fetchall())]
        if rows.depth and rows.room(rows.impis_of):
            rows.impis_of[impu] = tuple(found)
        return found

    def is_linked(self, impi: str, impu: str) -> bool:
        rows = self._rows
        if rows.depth:
            linked = rows.links.get((impi, impu))
            if linked is not None:
                return linked
            if rows.complete:
                return False
        linked = self.store.read(lambda db: db.execute(_SEL_LINK, (impi, impu)).fetchone()) is not None
        if rows.depth and rows.room(rows.links):
            rows.links[(impi, impu)] = linked
        return linked

    def generation(self) -> int:
        """Bumped by every provisioning change (used to refresh cached wildcard ranges)."""
        row = self.store.read(lambda db: db.execute(_SEL_GENERATION).fetchone())
        return int(row[0]) if row is not None else 0

    def _wildcard_index(self) -> WildcardIndex:
        rows = self._rows
        if rows.depth and rows.wildcards is not None:
            return rows.wildcards
        gen = self.generation()
        if self._wildcards is None or gen != self._wildcards_generation:
            found = self.store.read(
                lambda db: db.execute("SELECT impu FROM hss_impu WHERE wildcard = 1").fetchall()
            )
            self._wildcards = WildcardIndex(r[0] for r in found)
            self._wildcards_generation = gen
        if rows.depth:
            rows.wildcards = self._wildcards
        return self._wildcards

    # --- writes -------------------------------------------------------------------------------------
    def set_registration(
        self,
        impus: Iterable[str],
        state: RegState,
        *,
        scscf_name: str | None,
        scscf_host: str | None = None,
        scscf_realm: str | None = None,
    ) -> None:
        """Set state and S-CSCF (name, Diameter host and realm; None clears them) of ``impus``."""
        now = time.time()
        changes = [(int(state), scscf_name, scscf_host, scscf_realm, now, u) for u in impus]
        rows = self._rows
        if rows.depth:
            for *_, name in changes:
                old = self.impu(name)
                if old is not None:
                    rows.impu[name] = ImpuRecord(
                        old.impu,
                        old.irs,
                        old.barred,
                        old.wildcard,
                        old.display_name,
                        old.unreg_services,
                        RegState(state),
                        scscf_name,
                        scscf_host,
                        scscf_realm,
                    )
            rows.pending += changes
            return
        self.store.write(lambda db: db.executemany(_UPDATE_REGISTRATION, changes))
        for *_, name in changes:
            rows.impu.pop(name, None)
        self._reread(rows.impu, [name for *_, name in changes], _SEL_IMPU, _impu_row)

    def aka_update(self, impi: str, fn: Callable[[AkaState], tuple[int, T]]) -> T | None:
        """Atomically read the AKA state of ``impi``, store the SQN_HE ``fn`` returns, return its result.

        None when the IMPI has no AKA credentials. ``fn`` runs inside the transaction:
        keep it to computation (Milenage is a few microseconds).
        """

        def run(db: sqlite3.Connection) -> T | None:
            row = db.execute("SELECT k, opc, amf, sqn FROM hss_impi WHERE impi = ?", (impi,)).fetchone()
            if row is None or row["k"] is None or row["opc"] is None:
                return None
            new_sqn, result = fn(AkaState(impi, row["k"], row["opc"], row["amf"], row["sqn"]))
            if not 0 <= new_sqn <= SQN_MAX:
                raise ValueError(f"SQN out of range: {new_sqn}")
            if new_sqn != row["sqn"]:
                db.execute("UPDATE hss_impi SET sqn = ? WHERE impi = ?", (new_sqn, impi))
            return result

        try:
            return self.store.write(run)
        finally:
            self._rows.impi.pop(impi, None)  # its SQN changed
            self._reread(self._rows.impi, [impi], _SEL_IMPI, _impi_row)

    def _reread(self, table: dict[str, Any], keys: list[str], query: str, make: Callable[[Any], Any]) -> None:
        """Rows of a complete cache changed outside a batch: read them again (a missing row
        would otherwise mean "no such row"); on failure the cache is no longer complete."""
        rows = self._rows
        if not rows.complete:
            return
        try:
            for key in keys:
                row = self.store.read(functools.partial(_fetch_one, query, key))
                if row is not None:
                    table[key] = make(row)
        except (sqlite3.Error, StoreError):
            rows.complete = False


def _fetch_one(query: str, key: str, db: sqlite3.Connection) -> Any:
    return db.execute(query, (key,)).fetchone()
