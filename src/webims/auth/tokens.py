"""Token issuance: authorization codes with PKCE, refresh-token families, RFC 9068 JWTs.

- Authorization code (RFC 6749 §4.1) with PKCE (RFC 7636), ``S256`` only: codes
  are single-use, short-lived, bound to client and redirect URI; a replayed code
  revokes the tokens issued from it (RFC 6749 §4.1.2).
- Refresh tokens are rotated on every use; the tokens of one login form a *family*;
  presenting an already used refresh token revokes the whole family (OAuth 2.0
  Security BCP, RFC 9700 §4.14.2) and releases its pool allocation.
- Access tokens are RFC 9068 JWTs: header ``typ=at+jwt``, ``alg=ES256``, ``kid``;
  claims ``iss aud exp iat nbf jti sub client_id scope`` and the IMS identity:
  ``impi``, ``impu`` (list), ``pool`` and ``alc`` (allocation id) for pooled
  identities, ``dest`` (destination rules, :mod:`webims.auth.identity`).
- Revocation (RFC 7009) puts the ``jti`` of every live access token of the family
  on the revocation list and releases the family's IMPU lease.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jwt

from webims.store import Store

from .errors import NotFound, OAuthError, PoolExhausted, TokenError
from .identity import Identity
from .keys import KeyRing
from .pools import Allocation, PoolManager
from .users import Client, Clients, User, Users, hash_secret
from .verify import CallableKeys, TokenVerifier, TrustedIssuer

__all__ = ["IssuedTokens", "TokenPolicy", "TokenService", "pkce_s256"]

_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 §4.1
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA-256), no padding


def pkce_s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_challenge(challenge: str | None, method: str | None) -> str:
    """Validate an authorization request's PKCE parameters; returns the challenge."""
    if not challenge:
        raise OAuthError("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
    if method != "S256":
        raise OAuthError(
            "invalid_request", f"code_challenge_method {method or 'plain'!r} is not supported: use S256"
        )
    if not _CHALLENGE.fullmatch(challenge):
        raise OAuthError("invalid_request", "code_challenge is not a base64url SHA-256 value")
    return challenge


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str
    audience: str
    access_ttl: int = 600
    refresh_ttl: int = 86_400
    code_ttl: int = 60
    lease_grace: int = 30  # a pool lease outlives its access token by this much
    cc: str = ""  # home country code put into dest claims for the "international" rule


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None
    identity: Identity

    def response(self) -> dict[str, Any]:
        """RFC 6749 §5.1 body."""
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


def _grant(msg: str) -> OAuthError:
    return OAuthError("invalid_grant", msg)


class RevocationList:
    """The revoked access tokens (``auth_revoked``, by jti) as a set in memory.

    Every token verification asks (TS 24.371 §7.2.1: on every request), so it must not cost
    an SQLite query on the event loop each time. The set is read again from the store at most
    every ``refresh`` seconds (only the entries not yet expired), and at once after this
    process revoked something: a revocation made through this process applies to the next
    request; one made by another process sharing the store, within ``refresh`` seconds."""

    def __init__(self, store: Store, clock: Callable[[], float], *, refresh: float = 1.0) -> None:
        self.store = store
        self.clock = clock
        self.refresh = refresh
        self._jtis: frozenset[str] = frozenset()
        self._read_at: float | None = None  # clock() of the last read; None: read at the next check
        self._changes = 0  # calls of changed(): a read that overlapped one does not count as fresh

    def __contains__(self, jti: str) -> bool:
        now = self.clock()
        read_at = self._read_at
        if read_at is None or not read_at <= now < read_at + self.refresh:
            self._read(now)
        return jti in self._jtis

    def changed(self) -> None:
        """Something was revoked through this process (called inside the store's write, whose
        lock a read waits for): the next check reads the list again."""
        self._changes += 1
        self._read_at = None

    def _read(self, now: float) -> None:
        changes = self._changes
        query = "SELECT jti FROM auth_revoked WHERE expires_at >= ?"  # (housekeeping keeps 1 h more)
        rows = self.store.read(lambda db: db.execute(query, (now - 3600,)).fetchall())
        self._jtis = frozenset(row[0] for row in rows)
        if changes == self._changes:
            self._read_at = now


class TokenService:
    """Everything the token, introspection and revocation endpoints do, minus HTTP."""

    def __init__(
        self,
        store: Store,
        keys: KeyRing,
        users: Users,
        clients: Clients,
        pools: PoolManager,
        policy: TokenPolicy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.keys = keys
        self.users = users
        self.clients = clients
        self.pools = pools
        self.policy = policy
        self.clock = clock
        self.revoked = RevocationList(store, clock)
        self.verifier = TokenVerifier(
            [TrustedIssuer(policy.issuer, CallableKeys(keys.jwks), (policy.audience,))],
            revoked=self.is_revoked,
            allocation_active=lambda alc: pools.is_active(alc, now=clock()),
            clock=clock,
        )
        # revocation accepts tokens whose lease ended or that were revoked already
        self._signature_only = TokenVerifier(
            [TrustedIssuer(policy.issuer, CallableKeys(keys.jwks), (policy.audience,))], clock=clock
        )

    # ------------------------------------------------------------------ helpers

    def grant_scope(self, client: Client, user: User | None, requested: str | None) -> str:
        wanted = requested.split() if requested else list(client.scopes)
        for s in wanted:
            if s not in client.scopes:
                raise OAuthError(
                    "invalid_scope", f"scope {s!r} is not allowed for client {client.client_id!r}"
                )
        if user is not None:
            wanted = [s for s in wanted if s in user.scopes]
            if not wanted:
                raise OAuthError("invalid_scope", f"user {user.username!r} has none of the requested scopes")
        return " ".join(dict.fromkeys(wanted))

    def _mint(
        self,
        db: sqlite3.Connection,
        client: Client,
        scope: str,
        now: float,
        *,
        user: User | None = None,
        allocation: Allocation | None = None,
        family: str | None = None,
        ttl: int | None = None,
    ) -> tuple[str, Identity, int]:
        """An access token for ``user`` (its ``sub``), else for ``client`` itself."""
        lifetime = ttl if ttl is not None else self.policy.access_ttl
        iat = int(now)
        jti = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "iss": self.policy.issuer,
            "aud": self.policy.audience,
            "sub": user.username if user is not None else client.client_id,
            "client_id": client.client_id,
            "scope": scope,
            "iat": iat,
            "nbf": iat,
            "exp": iat + lifetime,
            "jti": jti,
        }
        if user is not None:
            if allocation is not None:
                if allocation.impi is not None:
                    claims["impi"] = allocation.impi
                claims["impu"] = [allocation.impu]
                claims["pool"] = allocation.pool
                claims["alc"] = allocation.id
            elif user.impus:
                if user.impi is not None:
                    claims["impi"] = user.impi
                claims["impu"] = list(user.impus)
            dest = user.dest.to_claim()
            if dest is not None:
                if self.policy.cc and "cc" not in dest:
                    dest["cc"] = self.policy.cc
                claims["dest"] = dest
        key = self.keys.signing_key(now)
        header = {"alg": self.keys.alg, "typ": "at+jwt", "kid": key.kid}
        token = jwt.encode(header, claims, key, algorithms=[self.keys.alg])
        db.execute(
            "INSERT INTO auth_access (jti, family, expires_at) VALUES (?, ?, ?)", (jti, family, claims["exp"])
        )
        return token, Identity.from_claims(claims), lifetime

    def _new_refresh(self, db: sqlite3.Connection, family: str, now: float) -> str:
        token = "rt." + secrets.token_urlsafe(32)
        db.execute(
            "INSERT INTO auth_refresh (token_hash, family, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (hash_secret(token), family, now, now + self.policy.refresh_ttl),
        )
        return token

    def _lease(self, now: float, ttl: int | None = None) -> float:
        return (ttl if ttl is not None else self.policy.access_ttl) + self.policy.lease_grace

    def _user_for(self, sub: str) -> User:
        user = self.users.find(sub)
        if user is None or user.disabled:
            raise _grant(f"user {sub!r} no longer exists or is disabled")
        if user.pool is None and not user.impus:
            raise OAuthError("invalid_grant", f"user {sub!r} is not mapped to any IMS identity")
        return user

    def _issue_family(
        self,
        db: sqlite3.Connection,
        user: User,
        client: Client,
        scope: str,
        now: float,
        *,
        refresh: bool,
        ttl: int | None = None,
    ) -> tuple[str, IssuedTokens]:
        family = "fam-" + secrets.token_urlsafe(12)
        db.execute(
            "INSERT INTO auth_families (id, sub, client_id, scope, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (family, user.username, client.client_id, scope, now, now + self.policy.refresh_ttl),
        )
        allocation = self._allocate(db, user, client, family, now, ttl) if user.pool is not None else None
        token, identity, lifetime = self._mint(
            db, client, scope, now, user=user, allocation=allocation, family=family, ttl=ttl
        )
        rt = self._new_refresh(db, family, now) if refresh else None
        return family, IssuedTokens(token, lifetime, scope, rt, identity)

    def _allocate(
        self, db: sqlite3.Connection, user: User, client: Client, family: str, now: float, ttl: int | None
    ) -> Allocation:
        """Lease an IMPU of the user's pool to token family ``family`` (recorded on the family)."""
        assert user.pool is not None
        try:
            allocation = self.pools.allocate(
                user.pool,
                user.username,
                lease=self._lease(now, ttl),
                client_id=client.client_id,
                owner=family,
                now=now,
            )
        except PoolExhausted as exc:
            raise OAuthError(
                "temporarily_unavailable", str(exc), status=503, headers={"Retry-After": "30"}
            ) from None
        except NotFound as exc:
            raise OAuthError(
                "invalid_grant", f"user {user.username!r} is mapped to a missing pool: {exc}"
            ) from None
        db.execute("UPDATE auth_families SET allocation = ? WHERE id = ?", (allocation.id, family))
        return allocation

    # ------------------------------------------------------------------ codes

    def create_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        sub: str,
        scope: str,
        challenge: str,
        now: float | None = None,
    ) -> str:
        t = self.clock() if now is None else now
        code = secrets.token_urlsafe(32)
        self.store.write(
            lambda db: db.execute(
                "INSERT INTO auth_codes (code_hash, client_id, redirect_uri, sub, scope, challenge, "
                "auth_time, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    hash_secret(code),
                    client_id,
                    redirect_uri,
                    sub,
                    scope,
                    challenge,
                    t,
                    t + self.policy.code_ttl,
                ),
            )
        )
        return code

    def redeem_code(
        self,
        code: str,
        *,
        client: Client,
        redirect_uri: str | None,
        verifier: str | None,
        now: float | None = None,
    ) -> IssuedTokens:
        """RFC 6749 §4.1.3 + RFC 7636 §4.6. Any failure burns the code."""
        t = self.clock() if now is None else now
        code_hash = hash_secret(code)

        def burn(db: sqlite3.Connection) -> OAuthError | sqlite3.Row:
            row: sqlite3.Row | None = db.execute(
                "SELECT * FROM auth_codes WHERE code_hash = ?", (code_hash,)
            ).fetchone()
            if row is None:
                return _grant("unknown authorization code")
            if row["used_at"] is not None:
                if row["family"] is not None:
                    self._revoke_family(db, row["family"], "authorization code replayed", t)
                return _grant("authorization code was already used; the tokens issued from it are revoked")
            db.execute("UPDATE auth_codes SET used_at = ? WHERE code_hash = ?", (t, code_hash))
            if row["expires_at"] <= t:
                return _grant("authorization code expired")
            if row["client_id"] != client.client_id:
                return _grant("authorization code was issued to another client")
            if redirect_uri != row["redirect_uri"]:
                return _grant("redirect_uri does not match the authorization request")
            if not verifier or not _VERIFIER.fullmatch(verifier):
                return _grant(
                    "code_verifier missing or malformed (RFC 7636 §4.1: 43-128 unreserved characters)"
                )
            if not hmac.compare_digest(pkce_s256(verifier), row["challenge"]):
                return _grant("PKCE verification failed: code_verifier does not match code_challenge")
            return row

        row = self.store.write(burn)
        if isinstance(row, OAuthError):
            raise row
        user = self._user_for(row["sub"])

        def issue(db: sqlite3.Connection) -> IssuedTokens:
            family, tokens = self._issue_family(db, user, client, row["scope"], t, refresh=True)
            db.execute("UPDATE auth_codes SET family = ? WHERE code_hash = ?", (family, code_hash))
            return tokens

        return self.store.write(issue)

    # ------------------------------------------------------------------ refresh

    def verify_signature(self, token: str) -> Identity:
        """Check one of our access tokens' signature and claims, but not its revocation or lease."""
        return self._signature_only.verify_cached(token)

    def refresh(
        self, refresh_token: str, *, client: Client, scope: str | None = None, now: float | None = None
    ) -> IssuedTokens:
        """RFC 6749 §6 with rotation and reuse detection."""
        t = self.clock() if now is None else now
        token_hash = hash_secret(refresh_token)

        def run(db: sqlite3.Connection) -> OAuthError | IssuedTokens:
            row = db.execute(
                "SELECT r.used_at AS used_at, r.expires_at AS rt_expires, f.* FROM auth_refresh r "
                "JOIN auth_families f ON f.id = r.family WHERE r.token_hash = ?",
                (token_hash,),
            ).fetchone()
            if row is None:
                return _grant("unknown refresh token")
            if row["revoked_at"] is not None:
                return _grant(f"refresh token was revoked ({row['revoked_reason']})")
            if row["client_id"] != client.client_id:
                return _grant("refresh token was issued to another client")
            if row["used_at"] is not None:
                self._revoke_family(db, row["id"], "refresh token reuse", t)
                return _grant(
                    "refresh token was already used: reuse detected, the whole token family is revoked"
                )
            if row["rt_expires"] <= t or row["expires_at"] <= t:
                return _grant("refresh token expired")
            granted = row["scope"].split()
            if scope:
                for s in scope.split():
                    if s not in granted:
                        raise OAuthError("invalid_scope", f"scope {s!r} exceeds the original grant")
                new_scope = " ".join(dict.fromkeys(scope.split()))
            else:
                new_scope = row["scope"]
            user = self.users.find(row["sub"])
            if user is None or user.disabled:
                self._revoke_family(db, row["id"], "user removed or disabled", t)
                return _grant(f"user {row['sub']!r} no longer exists or is disabled")
            db.execute("UPDATE auth_refresh SET used_at = ? WHERE token_hash = ?", (t, token_hash))
            allocation = None
            if user.pool is not None:
                current = row["allocation"]
                if current is not None and self.pools.is_active(current, now=t):
                    allocation = self.pools.renew(current, lease=self._lease(t), now=t)
                else:
                    allocation = self._allocate(db, user, client, row["id"], t, None)
            db.execute(
                "UPDATE auth_families SET expires_at = ? WHERE id = ?",
                (t + self.policy.refresh_ttl, row["id"]),
            )
            token, identity, lifetime = self._mint(
                db, client, new_scope, t, user=user, allocation=allocation, family=row["id"]
            )
            return IssuedTokens(token, lifetime, new_scope, self._new_refresh(db, row["id"], t), identity)

        result = self.store.write(run)
        if isinstance(result, OAuthError):
            raise result
        return result

    # ------------------------------------------------------------------ other grants

    def client_credentials(
        self, client: Client, *, scope: str | None = None, now: float | None = None
    ) -> IssuedTokens:
        """RFC 6749 §4.4: a token for the client itself (no refresh token, no IMS identity)."""
        t = self.clock() if now is None else now
        if "client_credentials" not in client.grant_types:
            raise OAuthError(
                "unauthorized_client", f"client {client.client_id!r} may not use client_credentials"
            )
        granted = self.grant_scope(client, None, scope)

        def run(db: sqlite3.Connection) -> IssuedTokens:
            token, identity, lifetime = self._mint(db, client, granted, t)
            return IssuedTokens(token, lifetime, granted, None, identity)

        return self.store.write(run)

    def issue_for_user(
        self,
        username: str,
        *,
        client_id: str,
        scope: str | None = None,
        ttl: int | None = None,
        refresh: bool = False,
        now: float | None = None,
    ) -> IssuedTokens:
        """A token for a user without the browser flow (``webims token issue``, tests)."""
        t = self.clock() if now is None else now
        client = self.clients.find(client_id)
        if client is None:
            raise OAuthError("invalid_client", f"no client {client_id!r}")
        user = self.users.find(username)
        if user is None:
            raise NotFound(f"no user {username!r}")
        user = self._user_for(username)
        granted = self.grant_scope(client, user, scope)
        return self.store.write(
            lambda db: self._issue_family(db, user, client, granted, t, refresh=refresh, ttl=ttl)[1]
        )

    # ------------------------------------------------------------------ revocation

    def is_revoked(self, jti: str) -> bool:
        return jti in self.revoked

    def _revoke_family(self, db: sqlite3.Connection, family: str, reason: str, now: float) -> None:
        self.revoked.changed()
        db.execute(
            "UPDATE auth_families SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
            (now, reason, family),
        )
        db.execute(
            "INSERT OR IGNORE INTO auth_revoked (jti, expires_at) SELECT jti, expires_at FROM auth_access "
            "WHERE family = ? AND expires_at > ?",
            (family, now - 3600),
        )
        self.pools.release_owner(family, now=now)

    def revoke_family(self, family: str, reason: str, *, now: float | None = None) -> None:
        t = self.clock() if now is None else now
        self.store.write(lambda db: self._revoke_family(db, family, reason, t))

    def revoke(self, token: str, *, client: Client | None, now: float | None = None) -> bool:
        """RFC 7009 §2: revoke an access or refresh token (and its family). Returns True if
        something was revoked; unknown or invalid tokens are ignored (§2.2)."""
        t = self.clock() if now is None else now
        if token.count(".") == 2 and not token.startswith("rt."):
            try:
                ident = self._signature_only.verify_cached(token)
            except TokenError:
                return False
            if client is not None and ident.client_id != client.client_id:
                raise OAuthError("unauthorized_client", "the token was not issued to this client")
            jti = ident.jti or ""

            def run_access(db: sqlite3.Connection) -> bool:
                self.revoked.changed()
                db.execute(
                    "INSERT OR IGNORE INTO auth_revoked (jti, expires_at) VALUES (?, ?)",
                    (jti, ident.expires_at),
                )
                row = db.execute("SELECT family FROM auth_access WHERE jti = ?", (jti,)).fetchone()
                if row is not None and row[0] is not None:
                    self._revoke_family(db, row[0], "revoked (RFC 7009)", t)
                return True

            return self.store.write(run_access)

        def run_refresh(db: sqlite3.Connection) -> OAuthError | bool:
            row = db.execute(
                "SELECT f.id, f.client_id FROM auth_refresh r JOIN auth_families f ON f.id = r.family "
                "WHERE r.token_hash = ?",
                (hash_secret(token),),
            ).fetchone()
            if row is None:
                return False
            if client is not None and row["client_id"] != client.client_id:
                return OAuthError("unauthorized_client", "the token was not issued to this client")
            self._revoke_family(db, row["id"], "revoked (RFC 7009)", t)
            return True

        result = self.store.write(run_refresh)
        if isinstance(result, OAuthError):
            raise result
        return result

    # ------------------------------------------------------------------ introspection

    def introspect(self, token: str, *, now: float | None = None) -> dict[str, Any]:
        """RFC 7662 §2.2 response for one of our tokens."""
        t = self.clock() if now is None else now
        if token.count(".") == 2 and not token.startswith("rt."):
            try:
                ident = self.verifier.verify_cached(token)
            except TokenError:
                return {"active": False}
            body: dict[str, Any] = {"active": True, "token_type": "Bearer", "username": ident.sub}
            body.update(ident.claims)
            return body
        row = self.store.read(
            lambda db: db.execute(
                "SELECT r.used_at AS used_at, r.expires_at AS rt_expires, r.created_at AS rt_created, f.* "
                "FROM auth_refresh r JOIN auth_families f ON f.id = r.family WHERE r.token_hash = ?",
                (hash_secret(token),),
            ).fetchone()
        )
        if (
            row is None
            or row["used_at"] is not None
            or row["revoked_at"] is not None
            or row["rt_expires"] <= t
        ):
            return {"active": False}
        return {
            "active": True,
            "token_type": "refresh_token",
            "scope": row["scope"],
            "client_id": row["client_id"],
            "sub": row["sub"],
            "username": row["sub"],
            "iss": self.policy.issuer,
            "iat": int(row["rt_created"]),
            "exp": int(row["rt_expires"]),
        }

    # ------------------------------------------------------------------ upkeep

    def housekeeping(self, *, now: float | None = None) -> None:
        """Drop expired codes, tokens and revocation entries (the JWTs expired anyway)."""
        t = self.clock() if now is None else now

        def run(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM auth_codes WHERE expires_at < ?", (t - 3600,))
            db.execute("DELETE FROM auth_access WHERE expires_at < ?", (t - 3600,))
            db.execute("DELETE FROM auth_revoked WHERE expires_at < ?", (t - 3600,))
            db.execute("DELETE FROM auth_families WHERE expires_at < ?", (t - 3600,))
            db.execute("DELETE FROM auth_sessions WHERE expires_at < ?", (t - 3600,))

        self.store.write(run)
