"""The shared embedded state store: one SQLite database file for every component.

DESIGN.md §1: state backends live in ``webims.store`` (SQLite embedded by default).
Each component (auth users and pools, HSS subscribers, gateway registrations, ...)
owns its tables and creates/migrates them through :meth:`Store.migrate`; nothing
is listed centrally.

Usage::

    from webims.store import Store

    store = Store("/var/lib/webims/webims.sqlite3")     # or Store(":memory:")
    store.migrate("hss", [
        # version 1
        "CREATE TABLE hss_subscribers (impi TEXT PRIMARY KEY, k BLOB NOT NULL);",
        # version 2: a string (SQL script) or a callable(conn) for data migrations
        "ALTER TABLE hss_subscribers ADD COLUMN opc BLOB;",
    ])
    # short read: no explicit transaction
    n = store.read(lambda db: db.execute("SELECT count(*) FROM hss_subscribers").fetchone()[0])
    # read-modify-write: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception)
    store.write(lambda db: db.execute("INSERT INTO hss_subscribers VALUES (?, ?)", (impi, k)))
    # from asyncio: the same calls run on the store's own thread
    n = await store.aread(count_subscribers)
    await store.awrite(add_subscriber)

Rules:

- **One file, WAL mode** (``journal_mode=WAL``, ``synchronous=NORMAL``,
  ``foreign_keys=ON``, a ``busy_timeout``): several processes (``webims serve``
  and a provisioning ``webims user add``) may use the same file at once.
- **Schema versions**: the table ``schema_version(component, version, updated_at)``
  records how many migrations of each component were applied. ``migrate()``
  applies the missing ones in order, all in one ``BEGIN IMMEDIATE`` transaction
  (SQLite DDL is transactional), so concurrent starters never apply one twice and
  a failing migration leaves the schema as it was. A database newer than the code
  (more versions than migrations) is refused with :class:`StoreError`.
  Name your tables with the component as prefix (``auth_users``, ``hss_...``).
- **Transactions**: :meth:`Store.write` runs the callable inside
  ``BEGIN IMMEDIATE`` (the write lock is taken at the start, so a
  read-then-update such as "find a free IMPU, then allocate it" is atomic across
  threads *and* processes). A nested ``write``/``read`` on the same thread joins
  the outer transaction.
- **Threads and asyncio**: one connection, guarded by a re-entrant lock; the
  sync calls work from any thread. The ``a*`` variants run the callable on a
  dedicated single-thread executor so the event loop never blocks on SQLite.
  Keep callables short (no network, no password hashing inside them).
- Rows come back as :class:`sqlite3.Row` (index or column name).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

__all__ = ["Migration", "Store", "StoreError"]

T = TypeVar("T")

Migration = str | Callable[[sqlite3.Connection], None]
"""One schema step: an SQL script (statements separated by ``;``) or a callable."""

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL
)
"""


class StoreError(Exception):
    """The database cannot be used (unreadable file, schema newer than this code...)."""


def _statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (sqlite3.complete_statement)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        if not sqlite3.complete_statement(buf + ";"):
            raise StoreError(f"incomplete SQL statement in migration: {buf.strip()[:80]!r}")
        out.append(buf.strip())
    return out


class Store:
    """One SQLite database shared by the components of a webims process (module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0) -> None:
        self.path = str(path)
        memory = self.path == ":memory:" or self.path.startswith("file::memory:")
        if not memory:
            parent = Path(self.path).parent
            parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._db.row_factory = sqlite3.Row
            if not memory:
                self._db.execute("PRAGMA journal_mode=WAL")
                with contextlib.suppress(OSError):  # not ours to change: leave it
                    os.chmod(self.path, 0o600)  # keys and password hashes live here
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            self._db.execute(_VERSION_TABLE)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path!r}: {exc}") from exc
        self._lock = threading.RLock()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection and the executor thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ schema

    def version(self, component: str) -> int:
        """How many migrations of ``component`` are applied (0 = none)."""
        row = self.read(
            lambda db: db.execute(
                "SELECT version FROM schema_version WHERE component = ?", (component,)
            ).fetchone()
        )
        return int(row[0]) if row is not None else 0

    def migrate(self, component: str, migrations: Sequence[Migration]) -> int:
        """Bring ``component``'s tables to ``len(migrations)``; returns the number applied."""

        def apply(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT version FROM schema_version WHERE component = ?", (component,)
            ).fetchone()
            current = int(row[0]) if row is not None else 0
            if current > len(migrations):
                raise StoreError(
                    f"database {self.path!r} has {component} schema version {current}, "
                    f"this webims knows only {len(migrations)}: upgrade webims"
                )
            for step in migrations[current:]:
                if callable(step):
                    step(db)
                else:
                    for statement in _statements(step):
                        db.execute(statement)
            if current < len(migrations):
                db.execute(
                    "INSERT INTO schema_version (component, version, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version, "
                    "updated_at = excluded.updated_at",
                    (component, len(migrations), time.time()),
                )
            return len(migrations) - current

        return self.write(apply)

    # ------------------------------------------------------------------ access

    def _check(self) -> None:
        if self._closed:
            raise StoreError(f"database {self.path!r} is closed")

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` without an explicit transaction (or inside the caller's)."""
        with self._lock:
            self._check()
            return fn(self._db)

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error)."""
        with self._lock:
            self._check()
            if self._db.in_transaction:  # nested call on this thread: join the outer transaction
                return fn(self._db)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._db)
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webims-store")
            return self._executor

    async def aread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """:meth:`read` on the store's thread (for asyncio code)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self.read, fn)

    async def awrite(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """:meth:`write` on the store's thread (for asyncio code)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self.write, fn)

    async def call(self, fn: Callable[[], T]) -> T:
        """Run a plain callable that uses the store's sync API, on the store's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool(), fn)
