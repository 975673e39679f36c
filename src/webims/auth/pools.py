"""IMPU pools: a block of IMS identities shared by WICs, one WIC per IMPU at a time.

Seed 004 §6.X.2.2.4: the gateway registers a block of IMPUs (or a wildcarded IMPU)
with the IMS in advance; §6.X.2.2.5 step 6: each authenticated WIC is mapped onto
"one of the previously registered IMS identities". A pool is defined by

- explicit members: a list, and/or patterns with brace ranges or lists, e.g.
  ``sip:web-{000..999}@ims.test`` (1000 IMPUs, zero-padded like the bounds) or
  ``sip:{alice,bob}@ims.test``;
- and/or a wildcarded IMPU (TS 23.003 §13.5, TS 24.229 §3.1): the part between two
  ``!`` is a regular expression, e.g. ``sip:web-!.*!@ims.test``. Without explicit
  members, distinct identities matching it are generated on allocation, up to the
  pool's ``capacity``.

Allocation (:meth:`PoolManager.allocate`) runs in one ``BEGIN IMMEDIATE``
transaction: expired leases are reclaimed, a free IMPU chosen (least recently
released first) and the lease inserted; ``UNIQUE(pool, impu)`` backs it up, so an
IMPU is never held twice, even by concurrent processes. A lease ends on
:meth:`~PoolManager.release` (logout, token revocation, the gateway's release on
WIC disconnect) or when it expires (token expiry), and is extended with
:meth:`~PoolManager.renew` (token refresh, the gateway's keep-alive).
"""

from __future__ import annotations

import builtins
import itertools
import re
import secrets
import sqlite3
import string
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from webims.store import Store

from .errors import Conflict, NotFound, PoolError, PoolExhausted
from .users import check_impi, check_impu

__all__ = ["Allocation", "Pool", "PoolManager", "expand_pattern", "wildcard_regex"]

MAX_MEMBERS = 1_000_000
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"(-?\d+)\.\.(-?\d+)")
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def expand_pattern(pattern: str, limit: int = MAX_MEMBERS) -> list[str]:
    """Expand ``{a..b}`` ranges and ``{x,y}`` lists (cartesian product, left to right)."""
    parts: list[list[str]] = []
    pos = 0
    total = 1
    for m in _BRACE.finditer(pattern):
        parts.append([pattern[pos : m.start()]])
        body = m.group(1)
        rng = _RANGE.fullmatch(body)
        if rng:
            lo_s, hi_s = rng.groups()
            lo, hi = int(lo_s), int(hi_s)
            if hi < lo:
                raise PoolError(f"bad range {{{body}}} in {pattern!r}: the end is below the start")
            padded = lo_s.lstrip("-").startswith("0") or hi_s.lstrip("-").startswith("0")
            width = max(len(lo_s), len(hi_s)) if padded else 0
            if hi - lo + 1 > limit:
                raise PoolError(f"pattern {pattern!r} expands to more than {limit} identities")
            parts.append([str(n).zfill(width) for n in range(lo, hi + 1)])
        elif "," in body:
            parts.append(body.split(","))
        else:
            raise PoolError(f"bad brace group {{{body}}} in {pattern!r}: use {{000..999}} or {{a,b}}")
        total *= len(parts[-1])
        if total > limit:
            raise PoolError(f"pattern {pattern!r} expands to more than {limit} identities")
        pos = m.end()
    parts.append([pattern[pos:]])
    if "{" in pattern[pos:] or "}" in pattern[pos:]:
        raise PoolError(f"unbalanced brace in {pattern!r}")
    return ["".join(p) for p in itertools.product(*parts)]


def wildcard_regex(wildcard: str) -> re.Pattern[str]:
    """The regex a wildcarded IMPU (TS 23.003 §13.5) covers; raises PoolError if malformed."""
    pieces = wildcard.split("!")
    if len(pieces) != 3 or not pieces[1]:
        raise PoolError(
            f"bad wildcarded IMPU {wildcard!r}: expected one '!regex!' part, e.g. 'sip:web-!.*!@ims.test'"
        )
    try:
        return re.compile(re.escape(pieces[0]) + "(?:" + pieces[1] + ")" + re.escape(pieces[2]))
    except re.error as exc:
        raise PoolError(f"bad regular expression in wildcarded IMPU {wildcard!r}: {exc}") from None


_ALPHABETS = (string.ascii_lowercase + string.digits, string.digits, string.ascii_lowercase)


def _generate(wildcard: str, rx: re.Pattern[str]) -> str | None:
    """A random identity covered by ``wildcard``, or None if our candidates never match."""
    head, _, tail = wildcard.split("!")
    for alphabet in _ALPHABETS:
        for _ in range(3):
            cand = head + "".join(secrets.choice(alphabet) for _ in range(10)) + tail
            if rx.fullmatch(cand):
                return cand
    return None


@dataclass(frozen=True)
class Pool:
    name: str
    impi: str | None  # IMPI the gateway registers the block with (if shared)
    wildcard: str | None
    capacity: int
    members: int  # explicit IMPUs (0: generated from the wildcard)
    allocated: int

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.allocated)


@dataclass(frozen=True)
class Allocation:
    """One IMPU leased to one WIC."""

    id: str
    pool: str
    impu: str
    impi: str | None
    holder: str  # the web identity (token ``sub``)
    client_id: str | None
    owner: str | None  # the token family or web session holding the lease
    leased_at: float
    expires_at: float


def _allocation(row: sqlite3.Row) -> Allocation:
    return Allocation(
        id=row["id"],
        pool=row["pool"],
        impu=row["impu"],
        impi=row["impi"],
        holder=row["holder"],
        client_id=row["client_id"],
        owner=row["owner"],
        leased_at=row["leased_at"],
        expires_at=row["expires_at"],
    )


_SELECT_ALLOCATION = "SELECT a.*, p.impi AS impi FROM auth_allocations a JOIN auth_pools p ON p.name = a.pool"


class PoolManager:
    """Pool provisioning and atomic allocation (sync; use ``store.call`` from asyncio)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ---------------------------------------------------------------- provisioning

    def add(
        self,
        name: str,
        *,
        members: Iterable[str] = (),
        wildcard: str | None = None,
        impi: str | None = None,
        capacity: int | None = None,
    ) -> Pool:
        """Create a pool from member IMPUs/patterns and/or a wildcarded IMPU."""
        if not _NAME.fullmatch(name):
            raise PoolError(f"bad pool name {name!r}: 1-64 of A-Z a-z 0-9 . _ -")
        impus: list[str] = []
        for item in members:
            impus.extend(expand_pattern(item))
        impus = list(dict.fromkeys(impus))
        if len(impus) > MAX_MEMBERS:
            raise PoolError(f"pool {name!r} would have more than {MAX_MEMBERS} members")
        for impu in impus:
            try:
                check_impu(impu)
            except ValueError as exc:
                raise PoolError(str(exc)) from None
        if impi is not None:
            try:
                check_impi(impi)
            except ValueError as exc:
                raise PoolError(str(exc)) from None
        if wildcard is not None:
            rx = wildcard_regex(wildcard)
            for impu in impus:
                if not rx.fullmatch(impu):
                    raise PoolError(f"member {impu!r} is not covered by the wildcarded IMPU {wildcard!r}")
            if not impus and _generate(wildcard, rx) is None:
                raise PoolError(
                    f"cannot generate identities matching {wildcard!r}: list the members explicitly"
                )
        if not impus and wildcard is None:
            raise PoolError(f"pool {name!r} needs members (list or pattern) or a wildcarded IMPU")
        if capacity is None:
            if not impus:
                raise PoolError(f"pool {name!r} from a wildcarded IMPU needs a capacity")
            capacity = len(impus)
        if capacity < 1 or (impus and capacity > len(impus)):
            raise PoolError(f"capacity {capacity} must be between 1 and the number of members")

        def insert(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM auth_pools WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"pool {name!r} exists already")
            db.execute(
                "INSERT INTO auth_pools (name, impi, wildcard, capacity, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, impi, wildcard, capacity, time.time()),
            )
            db.executemany(
                "INSERT INTO auth_pool_members (pool, impu) VALUES (?, ?)", ((name, u) for u in impus)
            )

        self.store.write(insert)
        return self.get(name)

    def remove(self, name: str, *, force: bool = False) -> None:
        def delete(db: sqlite3.Connection) -> None:
            if not db.execute("SELECT 1 FROM auth_pools WHERE name = ?", (name,)).fetchone():
                raise NotFound(f"no pool {name!r}")
            busy = db.execute(
                "SELECT count(*) FROM auth_allocations WHERE pool = ? AND expires_at > ?", (name, time.time())
            ).fetchone()[0]
            if busy and not force:
                raise Conflict(f"pool {name!r} has {busy} active allocation(s); release them or force")
            db.execute("UPDATE auth_users SET pool = NULL WHERE pool = ?", (name,))
            db.execute("DELETE FROM auth_pools WHERE name = ?", (name,))

        self.store.write(delete)

    def _pool(self, db: sqlite3.Connection, name: str, now: float) -> Pool:
        row = db.execute("SELECT * FROM auth_pools WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no pool {name!r}")
        members = db.execute("SELECT count(*) FROM auth_pool_members WHERE pool = ?", (name,)).fetchone()[0]
        allocated = db.execute(
            "SELECT count(*) FROM auth_allocations WHERE pool = ? AND expires_at > ?", (name, now)
        ).fetchone()[0]
        return Pool(row["name"], row["impi"], row["wildcard"], row["capacity"], members, allocated)

    def get(self, name: str, *, now: float | None = None) -> Pool:
        t = time.time() if now is None else now
        return self.store.read(lambda db: self._pool(db, name, t))

    def list(self, *, now: float | None = None) -> builtins.list[Pool]:
        t = time.time() if now is None else now

        def run(db: sqlite3.Connection) -> builtins.list[Pool]:
            names = [r[0] for r in db.execute("SELECT name FROM auth_pools ORDER BY name")]
            return [self._pool(db, n, t) for n in names]

        return self.store.read(run)

    def members(self, name: str) -> builtins.list[str]:
        """The explicit IMPUs of a pool (what the gateway registers, seed 004 §6.X.2.2.4)."""
        rows = self.store.read(
            lambda db: db.execute(
                "SELECT impu FROM auth_pool_members WHERE pool = ? ORDER BY impu", (name,)
            ).fetchall()
        )
        return [r[0] for r in rows]

    # ---------------------------------------------------------------- leases

    @staticmethod
    def _reclaim(db: sqlite3.Connection, pool: str, now: float) -> None:
        expired = db.execute(
            "SELECT impu FROM auth_allocations WHERE pool = ? AND expires_at <= ?", (pool, now)
        ).fetchall()
        if expired:
            db.executemany(
                "UPDATE auth_pool_members SET released_at = ? WHERE pool = ? AND impu = ?",
                ((now, pool, r[0]) for r in expired),
            )
            db.execute("DELETE FROM auth_allocations WHERE pool = ? AND expires_at <= ?", (pool, now))

    def allocate(
        self,
        pool: str,
        holder: str,
        *,
        lease: float,
        client_id: str | None = None,
        owner: str | None = None,
        now: float | None = None,
    ) -> Allocation:
        """Lease one free IMPU of ``pool`` to ``holder`` for ``lease`` seconds.

        Raises :class:`PoolExhausted` when all ``capacity`` IMPUs are held,
        :class:`NotFound` for an unknown pool.
        """
        t = time.time() if now is None else now
        alloc_id = "alc-" + secrets.token_urlsafe(12)

        def run(db: sqlite3.Connection) -> Allocation:
            row = db.execute("SELECT * FROM auth_pools WHERE name = ?", (pool,)).fetchone()
            if row is None:
                raise NotFound(f"no pool {pool!r}")
            self._reclaim(db, pool, t)
            held = db.execute("SELECT count(*) FROM auth_allocations WHERE pool = ?", (pool,)).fetchone()[0]
            if held >= row["capacity"]:
                raise PoolExhausted(pool, row["capacity"])
            free = db.execute(
                "SELECT impu FROM auth_pool_members m WHERE pool = ? AND NOT EXISTS (SELECT 1 FROM "
                "auth_allocations a WHERE a.pool = m.pool AND a.impu = m.impu) "
                "ORDER BY released_at, impu LIMIT 1",
                (pool,),
            ).fetchone()
            impu: str | None = free[0] if free is not None else None
            if impu is None and row["wildcard"] is not None:
                has_members = db.execute(
                    "SELECT 1 FROM auth_pool_members WHERE pool = ? LIMIT 1", (pool,)
                ).fetchone()
                if not has_members:
                    rx = wildcard_regex(row["wildcard"])
                    for _ in range(16):
                        cand = _generate(row["wildcard"], rx)
                        if (
                            cand is not None
                            and not db.execute(
                                "SELECT 1 FROM auth_allocations WHERE pool = ? AND impu = ?", (pool, cand)
                            ).fetchone()
                        ):
                            impu = cand
                            break
            if impu is None:
                raise PoolExhausted(pool, row["capacity"])
            db.execute(
                "INSERT INTO auth_allocations (id, pool, impu, holder, client_id, owner, leased_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (alloc_id, pool, impu, holder, client_id, owner, t, t + lease),
            )
            return Allocation(alloc_id, pool, impu, row["impi"], holder, client_id, owner, t, t + lease)

        return self.store.write(run)

    def get_allocation(self, allocation_id: str, *, now: float | None = None) -> Allocation | None:
        """The allocation if its lease is still running, else None."""
        t = time.time() if now is None else now
        row = self.store.read(
            lambda db: db.execute(
                _SELECT_ALLOCATION + " WHERE a.id = ? AND a.expires_at > ?", (allocation_id, t)
            ).fetchone()
        )
        return _allocation(row) if row is not None else None

    def is_active(self, allocation_id: str, *, now: float | None = None) -> bool:
        return self.get_allocation(allocation_id, now=now) is not None

    def renew(self, allocation_id: str, *, lease: float, now: float | None = None) -> Allocation:
        """Extend a running lease to ``now + lease`` (never shortens it)."""
        t = time.time() if now is None else now

        def run(db: sqlite3.Connection) -> Allocation:
            n = db.execute(
                "UPDATE auth_allocations SET expires_at = max(expires_at, ?) WHERE id = ? AND expires_at > ?",
                (t + lease, allocation_id, t),
            ).rowcount
            if not n:
                raise NotFound(f"allocation {allocation_id!r} is not active (released or expired)")
            row = db.execute(_SELECT_ALLOCATION + " WHERE a.id = ?", (allocation_id,)).fetchone()
            return _allocation(row)

        return self.store.write(run)

    def _release_where(
        self, where: str, args: Sequence[object], now: float | None
    ) -> builtins.list[Allocation]:
        t = time.time() if now is None else now

        def run(db: sqlite3.Connection) -> builtins.list[Allocation]:
            rows = db.execute(_SELECT_ALLOCATION + " WHERE " + where, tuple(args)).fetchall()
            for r in rows:
                db.execute("DELETE FROM auth_allocations WHERE id = ?", (r["id"],))
                db.execute(
                    "UPDATE auth_pool_members SET released_at = ? WHERE pool = ? AND impu = ?",
                    (t, r["pool"], r["impu"]),
                )
            return [_allocation(r) for r in rows]

        return self.store.write(run)

    def release(self, allocation_id: str, *, now: float | None = None) -> Allocation | None:
        """End a lease (WIC disconnect, logout). Returns it, or None if already gone."""
        out = self._release_where("a.id = ?", (allocation_id,), now)
        return out[0] if out else None

    def release_impu(self, pool: str, impu: str, *, now: float | None = None) -> Allocation | None:
        out = self._release_where("a.pool = ? AND a.impu = ?", (pool, impu), now)
        return out[0] if out else None

    def release_owner(self, owner: str, *, now: float | None = None) -> builtins.list[Allocation]:
        """End every lease held by a token family or web session."""
        return self._release_where("a.owner = ?", (owner,), now)

    def release_in(
        self,
        pool: str,
        *,
        every: bool = False,
        allocation: str | None = None,
        impu: str | None = None,
        now: float | None = None,
    ) -> builtins.list[Allocation]:
        """End leases of ``pool`` (``webims pool release``, ``POST /admin/pools/{name}/release``):
        ``every`` running one, else the running one with id ``allocation``, else the one of ``impu``.
        Returns those ended (none: nothing matched)."""
        if every:
            ended = [self.release(a.id, now=now) for a in self.allocations(pool, now=now)]
        elif allocation is not None:
            found = self.get_allocation(allocation, now=now)
            ended = [self.release(allocation, now=now)] if found is not None and found.pool == pool else []
        elif impu is not None:
            ended = [self.release_impu(pool, impu, now=now)]
        else:
            raise ValueError("give an allocation, an IMPU or every=True")
        return [a for a in ended if a is not None]

    def allocations(self, pool: str | None = None, *, now: float | None = None) -> builtins.list[Allocation]:
        """Running leases (all pools, or one)."""
        t = time.time() if now is None else now
        if pool is None:
            sql, args = " WHERE a.expires_at > ? ORDER BY a.pool, a.impu", (t,)
        else:
            sql, args = " WHERE a.pool = ? AND a.expires_at > ? ORDER BY a.impu", (pool, t)  # type: ignore[assignment]
        rows = self.store.read(lambda db: db.execute(_SELECT_ALLOCATION + sql, args).fetchall())
        return [_allocation(r) for r in rows]
