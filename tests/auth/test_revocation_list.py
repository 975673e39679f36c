"""The revocation list in memory (webims.auth.tokens.RevocationList): read from the store at
most every ``refresh`` seconds, at once after a revocation made through this process."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from webims.auth import schema
from webims.auth.tokens import RevocationList
from webims.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def revoke(store: Store, jti: str, expires_at: float) -> None:
    store.write(
        lambda db: db.execute("INSERT INTO auth_revoked (jti, expires_at) VALUES (?, ?)", (jti, expires_at))
    )


def test_another_process_revocation_is_seen_within_refresh(tmp_path: Path) -> None:
    path = str(tmp_path / "webims.sqlite3")
    ours, theirs = Store(path), Store(path)  # two connections to one file: two processes
    try:
        schema.install(ours)
        clock = Clock()
        revoked = RevocationList(ours, clock, refresh=1.0)
        revoke(theirs, "old", clock.now + 600)
        assert "old" in revoked and "new" not in revoked
        revoke(theirs, "new", clock.now + 600)
        clock.now += 0.5
        assert "new" not in revoked  # no query per check: the list read 0.5 s ago
        clock.now += 0.5
        assert "new" in revoked and "old" in revoked
        # entries expired over an hour ago are dropped by housekeeping, and not read
        revoke(theirs, "stale", clock.now - 3601)
        clock.now += 1.0
        assert "stale" not in revoked and "new" in revoked
        # a clock stepping back is no reason to trust the list read "in the future"
        revoke(theirs, "later", clock.now + 600)
        clock.now -= 10
        assert "later" in revoked
    finally:
        ours.close()
        theirs.close()


def test_revocation_through_this_process_applies_at_once(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "webims.sqlite3"))
    try:
        schema.install(store)
        clock = Clock()
        revoked = RevocationList(store, clock, refresh=60.0)
        assert "jti-1" not in revoked

        def run(db: sqlite3.Connection) -> None:
            revoked.changed()  # as TokenService does inside the write that revokes
            revoke(store, "jti-1", clock.now + 600)

        store.write(run)
        assert "jti-1" in revoked  # within the 60 s in which the list would not be read again
    finally:
        store.close()
