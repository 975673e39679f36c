"""webims.store: one SQLite file, per-component migrations, transactions, threads."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from webims.store import Store, StoreError

V1 = "CREATE TABLE demo_items (name TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0);"


def add_column(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE demo_items ADD COLUMN note TEXT")
    db.execute("UPDATE demo_items SET note = 'migrated'")


def test_migrations_apply_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store(path) as store:
        assert store.version("demo") == 0
        assert store.migrate("demo", [V1]) == 1
        store.write(lambda db: db.execute("INSERT INTO demo_items (name) VALUES ('a')"))
        assert store.migrate("demo", [V1]) == 0
        assert store.migrate("demo", [V1, add_column]) == 1
        assert store.version("demo") == 2 and store.version("other") == 0
        assert store.read(lambda db: db.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert (path.stat().st_mode & 0o777) == 0o600
    with Store(path) as again:  # reopened: state intact
        row = again.read(lambda db: db.execute("SELECT name, note FROM demo_items").fetchone())
        assert (row["name"], row["note"]) == ("a", "migrated")
        with pytest.raises(StoreError, match="schema version 2, this webims knows only 1"):
            again.migrate("demo", [V1])


def test_failed_migration_leaves_schema_unchanged(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite3") as store:
        with pytest.raises(sqlite3.OperationalError):
            store.migrate("demo", [V1 + "\nCREATE TABLE broken (;"])
        assert store.version("demo") == 0
        assert (
            store.read(
                lambda db: db.execute("SELECT name FROM sqlite_master WHERE name='demo_items'").fetchone()
            )
            is None
        )


def test_write_rolls_back_and_nests(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite3") as store:
        store.migrate("demo", [V1])

        def failing(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO demo_items (name) VALUES ('x')")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            store.write(failing)
        assert store.read(lambda db: db.execute("SELECT count(*) FROM demo_items").fetchone()[0]) == 0

        def outer(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO demo_items (name) VALUES ('o')")
            store.write(lambda d: d.execute("INSERT INTO demo_items (name) VALUES ('i')"))  # joins
            raise RuntimeError("undo both")

        with pytest.raises(RuntimeError):
            store.write(outer)
        assert store.read(lambda db: db.execute("SELECT count(*) FROM demo_items").fetchone()[0]) == 0


def test_counter_is_atomic_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store(path) as setup:
        setup.migrate("demo", [V1])
        setup.write(lambda db: db.execute("INSERT INTO demo_items (name) VALUES ('c')"))

    def bump(db: sqlite3.Connection) -> None:  # read-modify-write: needs BEGIN IMMEDIATE
        n = db.execute("SELECT n FROM demo_items WHERE name = 'c'").fetchone()[0]
        db.execute("UPDATE demo_items SET n = ? WHERE name = 'c'", (n + 1,))

    def worker() -> None:
        with Store(path) as mine:
            for _ in range(50):
                mine.write(bump)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Store(path) as check:
        assert check.read(lambda db: db.execute("SELECT n FROM demo_items").fetchone()[0]) == 300


async def test_async_calls_run_on_the_store_thread(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite3") as store:
        store.migrate("demo", [V1])
        names = [f"n{i}" for i in range(20)]

        def insert(name: str) -> Callable[[sqlite3.Connection], object]:
            return lambda db: db.execute("INSERT INTO demo_items (name) VALUES (?)", (name,))

        await asyncio.gather(*(store.awrite(insert(n)) for n in names))
        count = await store.aread(lambda db: db.execute("SELECT count(*) FROM demo_items").fetchone()[0])
        assert count == 20
        thread = await store.call(lambda: threading.current_thread().name)
        assert thread.startswith("webims-store")
    with pytest.raises(StoreError, match="closed"):
        store.read(lambda db: None)


def test_memory_store_and_unopenable_file(tmp_path: Path) -> None:
    with Store(":memory:") as mem:
        assert mem.migrate("demo", [V1]) == 1
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(StoreError, match="cannot open database"):
        Store(tmp_path / "dir.sqlite3")
