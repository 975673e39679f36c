"""Web sessions: the seed 000 §6.2.2.4.2 variant (HTTP Digest or form login).

Seed 000 §6.2.2.4.2 step 1: "The UE provides a username/password or an access token;
the WebRTC Signalling Function validates them [...] It maps the user identity
obtained during authentication to the corresponding IMS credentials." Here the
web server function authenticates the user (form login, or HTTP Digest RFC 7616
with SHA-256 or MD5) and opens a server-side session; its id travels in the cookie
``webims_session`` (``HttpOnly; Secure; SameSite=Strict; Path=/``), which the
browser also sends on the WebSocket upgrade to the gateway. The gateway calls
:meth:`SessionManager.verify_session` with the cookie value and gets the same
:class:`~webims.auth.identity.Identity` a token would give (``source="session"``).
Only SHA-256 digests of session ids are stored.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from types import MappingProxyType

from webims.store import Store

from .errors import InsufficientScope, InvalidToken, PoolExhausted
from .identity import Identity
from .pools import Allocation, PoolManager
from .users import User, Users, hash_secret

__all__ = ["SESSION_COOKIE", "SessionManager", "session_cookie"]

SESSION_COOKIE = "webims_session"


def session_cookie(value: str, *, max_age: int, secure: bool = True, path: str = "/") -> str:
    """A ``Set-Cookie`` value for the session (RFC 6265 §4.1; SameSite=Strict)."""
    attrs = [f"{SESSION_COOKIE}={value}", f"Path={path}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict"]
    if secure:
        attrs.append("Secure")
    return "; ".join(attrs)


def cookie_value(header: str | None) -> str | None:
    """The session id from a ``Cookie`` header value, if present."""
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # http.cookies raises CookieError and others on junk
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel is not None else None


class SessionManager:
    """Server-side web sessions in the store."""

    def __init__(
        self,
        store: Store,
        users: Users,
        pools: PoolManager,
        *,
        issuer: str,
        ttl: int = 43_200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.users = users
        self.pools = pools
        self.issuer = issuer
        self.ttl = ttl
        self.clock = clock

    def create(self, user: User, *, now: float | None = None) -> str:
        """Open a session for an authenticated user; returns the cookie value.

        A pooled IMPU is leased when the session is first verified (the WIC's
        REGISTER, seed 004 §6.X.2.2.5 step 6), not at login.
        """
        t = self.clock() if now is None else now
        sid = secrets.token_urlsafe(32)
        self.store.write(
            lambda db: db.execute(
                "INSERT INTO auth_sessions (id_hash, username, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (hash_secret(sid), user.username, t, t + self.ttl),
            )
        )
        return sid

    def _identity(self, user: User, allocation: Allocation | None, expires_at: float) -> Identity:
        impus: tuple[str, ...]
        if allocation is not None:
            impi, impus, pool, alc = allocation.impi, (allocation.impu,), allocation.pool, allocation.id
        else:
            impi, impus, pool, alc = user.impi, user.impus, None, None
        return Identity(
            sub=user.username,
            issuer=self.issuer,
            expires_at=expires_at,
            scopes=frozenset(user.scopes),
            impi=impi,
            impus=impus,
            pool=pool,
            allocation=alc,
            dest=user.dest,
            source="session",
            claims=MappingProxyType({"sub": user.username}),
        )

    def verify_session(
        self, value: str | None, *, scope: str | None = None, now: float | None = None
    ) -> Identity:
        """The identity of a live session (cookie value), else InvalidToken/InsufficientScope."""
        t = self.clock() if now is None else now
        if not value:
            raise InvalidToken("no session cookie")
        row = self.store.read(
            lambda db: db.execute(
                "SELECT * FROM auth_sessions WHERE id_hash = ?", (hash_secret(value),)
            ).fetchone()
        )
        if row is None:
            raise InvalidToken("unknown session")
        if row["revoked_at"] is not None:
            raise InvalidToken("session ended (logged out)")
        if row["expires_at"] <= t:
            raise InvalidToken("session expired")
        user = self.users.find(row["username"])
        if user is None or user.disabled:
            raise InvalidToken("the session's user no longer exists or is disabled")
        allocation = None
        if user.pool is not None:
            allocation = self._lease(row, user, t)
        elif not user.impus:
            raise InvalidToken("the session's user is not mapped to an IMS identity")
        identity = self._identity(user, allocation, row["expires_at"])
        if scope is not None and scope not in identity.scopes:
            raise InsufficientScope(f"session does not grant scope {scope!r}", scope=scope)
        return identity

    def _lease(self, row: sqlite3.Row, user: User, now: float) -> Allocation:
        """The session's IMPU lease: the current one, or a new one (atomically)."""
        assert user.pool is not None
        pool = user.pool
        owner = "ses-" + row["id_hash"][:24]

        def run(db: sqlite3.Connection) -> Allocation:
            current = db.execute(
                "SELECT allocation FROM auth_sessions WHERE id_hash = ?", (row["id_hash"],)
            ).fetchone()[0]
            if current is not None:
                alloc = self.pools.get_allocation(current, now=now)
                if alloc is not None and alloc.pool == pool:
                    return alloc
            try:
                alloc = self.pools.allocate(
                    pool, user.username, lease=row["expires_at"] - now, owner=owner, now=now
                )
            except PoolExhausted as exc:
                raise InvalidToken(str(exc)) from None
            db.execute(
                "UPDATE auth_sessions SET allocation = ? WHERE id_hash = ?", (alloc.id, row["id_hash"])
            )
            return alloc

        return self.store.write(run)

    def end(self, value: str | None, *, now: float | None = None) -> bool:
        """Log out: end the session and release its IMPU lease. True if one was ended."""
        if not value:
            return False
        t = self.clock() if now is None else now

        def run(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT allocation FROM auth_sessions WHERE id_hash = ? AND revoked_at IS NULL",
                (hash_secret(value),),
            ).fetchone()
            if row is None:
                return False
            db.execute("UPDATE auth_sessions SET revoked_at = ? WHERE id_hash = ?", (t, hash_secret(value)))
            if row[0] is not None:
                self.pools.release(row[0], now=t)
            return True

        return self.store.write(run)

    def username_of(self, value: str | None, *, now: float | None = None) -> str | None:
        """The user of a live session (single sign-on for the authorization endpoint), else None."""
        if not value:
            return None
        t = self.clock() if now is None else now
        row = self.store.read(
            lambda db: db.execute(
                "SELECT username FROM auth_sessions "
                "WHERE id_hash = ? AND revoked_at IS NULL AND expires_at > ?",
                (hash_secret(value), t),
            ).fetchone()
        )
        return str(row[0]) if row is not None else None
