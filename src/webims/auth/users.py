"""Web users and OAuth clients, and the web identity -> IMS identity mapping.

A user maps either to fixed IMS identities (one IMPI, one or more IMPUs; seed 004
§6.X.2.2.3 step 6, seed 000 §6.2.2.4.2 step 2 "via a data base query") or to a
pool (seed 004 §6.X.2.2.5: one IMPU of a previously registered block is allocated
per WIC, see :mod:`webims.auth.pools`).

Clients (RFC 6749 §2): *public* ones (the WIC in the browser: no secret,
authorization code + PKCE only) and *confidential* ones (the client script server,
the gateway: a secret, client credentials, introspection).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from webims.sip.digest import compute_ha1
from webims.store import Store

from .errors import Conflict, NotFound
from .identity import SCOPES, DestinationRules
from .passwords import PasswordHasher

__all__ = [
    "GRANT_TYPES",
    "Client",
    "Clients",
    "User",
    "Users",
    "check_impi",
    "check_impu",
    "check_redirect_uri",
    "hash_secret",
]

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
CLIENT_SCOPES = (*SCOPES, "pool", "introspect")
_USERNAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_IMPI = re.compile(r"[^@\s\"<>]+@[A-Za-z0-9.-]+")
_IMPU = re.compile(r"(sips?:[^\s<>\"]+@[A-Za-z0-9.\-\[\]:]+(;[^\s<>\"]*)?|tel:\+?[0-9*#().-]+(;[^\s<>\"]*)?)")


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a high-entropy secret (codes, refresh tokens, client secrets)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_impi(impi: str) -> str:
    """An IMPI is an NAI ``user@realm`` (TS 23.003 §13.3)."""
    if not _IMPI.fullmatch(impi):
        raise ValueError(f"bad IMPI {impi!r}: expected an NAI such as 'alice@ims.test'")
    return impi


def check_impu(impu: str) -> str:
    """An IMPU is a SIP URI or a tel URI (TS 23.003 §13.4)."""
    if not _IMPU.fullmatch(impu):
        raise ValueError(f"bad IMPU {impu!r}: expected 'sip:user@domain' or 'tel:+number'")
    return impu


def check_scopes(scopes: Iterable[str], allowed: Sequence[str] = CLIENT_SCOPES) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(scopes))
    for s in out:
        if s not in allowed:
            raise ValueError(f"unknown scope {s!r}: expected some of {', '.join(allowed)}")
    return out


def check_redirect_uri(uri: str) -> str:
    """RFC 6749 §3.1.2: absolute, no fragment; https, or http only on a loopback host
    (RFC 8252 §7.3)."""
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        raise ValueError(f"redirect URI {uri!r} must not have a fragment")
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return uri
    if parts.scheme == "http" and host in ("127.0.0.1", "::1", "localhost"):
        return uri
    raise ValueError(f"redirect URI {uri!r} must be https:// (or http:// on a loopback host)")


@dataclass(frozen=True)
class User:
    username: str
    scopes: tuple[str, ...]
    dest: DestinationRules
    impi: str | None
    impus: tuple[str, ...]
    pool: str | None
    disabled: bool
    digest_realm: str | None
    created_at: float

    @property
    def mapping(self) -> str:
        if self.pool is not None:
            return f"pool {self.pool}"
        if self.impus:
            return f"{self.impi or '-'} -> {', '.join(self.impus)}"
        return "unmapped"


def _user(row: sqlite3.Row) -> User:
    dest = DestinationRules.from_claim(json.loads(row["dest"])) if row["dest"] else DestinationRules()
    return User(
        username=row["username"],
        scopes=tuple(row["scopes"].split()),
        dest=dest,
        impi=row["impi"],
        impus=tuple(json.loads(row["impus"])),
        pool=row["pool"],
        disabled=bool(row["disabled"]),
        digest_realm=row["digest_realm"],
        created_at=row["created_at"],
    )


class Users:
    """The user table (sync API; call from a worker thread in async code)."""

    def __init__(self, store: Store, hasher: PasswordHasher) -> None:
        self.store = store
        self.hasher = hasher

    def add(
        self,
        username: str,
        password: str,
        *,
        scopes: Iterable[str] = SCOPES,
        digest_realm: str | None = None,
        dest: DestinationRules | None = None,
    ) -> User:
        if not _USERNAME.fullmatch(username):
            raise ValueError(f"bad username {username!r}: 1-128 of A-Z a-z 0-9 . _ @ + -")
        scope_list = check_scopes(scopes, SCOPES)
        pw_hash = self.hasher.hash(password)
        ha1_md5 = ha1_sha = None
        if digest_realm:
            ha1_md5 = compute_ha1(username, digest_realm, password, "MD5")
            ha1_sha = compute_ha1(username, digest_realm, password, "SHA-256")
        claim = (dest or DestinationRules()).to_claim()

        def insert(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM auth_users WHERE username = ?", (username,)).fetchone():
                raise Conflict(f"user {username!r} exists already")
            db.execute(
                "INSERT INTO auth_users (username, password_hash, digest_realm, ha1_md5, ha1_sha256, "
                "scopes, dest, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    username,
                    pw_hash,
                    digest_realm,
                    ha1_md5,
                    ha1_sha,
                    " ".join(scope_list),
                    json.dumps(claim) if claim else None,
                    time.time(),
                ),
            )

        self.store.write(insert)
        return self.get(username)

    def get(self, username: str) -> User:
        row = self.store.read(
            lambda db: db.execute("SELECT * FROM auth_users WHERE username = ?", (username,)).fetchone()
        )
        if row is None:
            raise NotFound(f"no user {username!r}")
        return _user(row)

    def find(self, username: str) -> User | None:
        try:
            return self.get(username)
        except NotFound:
            return None

    def list(self) -> builtins.list[User]:
        rows = self.store.read(lambda db: db.execute("SELECT * FROM auth_users ORDER BY username").fetchall())
        return [_user(r) for r in rows]

    def remove(self, username: str) -> None:
        n = self.store.write(
            lambda db: db.execute("DELETE FROM auth_users WHERE username = ?", (username,)).rowcount
        )
        if not n:
            raise NotFound(f"no user {username!r}")

    def map(
        self,
        username: str,
        *,
        impi: str | None = None,
        impus: Sequence[str] = (),
        pool: str | None = None,
        scopes: Iterable[str] | None = None,
        dest: DestinationRules | None = None,
    ) -> User:
        """Map to fixed identities (``impi`` + ``impus``) or to ``pool`` (exclusive);
        optionally replace the user's scopes and destination rules."""
        if pool is not None and (impi is not None or impus):
            raise ValueError("map a user either to fixed identities (impi/impu) or to a pool, not both")
        if impi is not None:
            check_impi(impi)
        for impu in impus:
            check_impu(impu)
        if impi is not None and not impus:
            raise ValueError("a fixed mapping needs at least one IMPU")
        scope_text = " ".join(check_scopes(scopes, SCOPES)) if scopes is not None else None
        claim = dest.to_claim() if dest is not None else None

        def update(db: sqlite3.Connection) -> None:
            if not db.execute("SELECT 1 FROM auth_users WHERE username = ?", (username,)).fetchone():
                raise NotFound(f"no user {username!r}")
            if pool is not None:
                if not db.execute("SELECT 1 FROM auth_pools WHERE name = ?", (pool,)).fetchone():
                    raise NotFound(f"no pool {pool!r}")
                db.execute(
                    "UPDATE auth_users SET pool = ?, impi = NULL, impus = '[]' WHERE username = ?",
                    (pool, username),
                )
            elif impus:
                db.execute(
                    "UPDATE auth_users SET pool = NULL, impi = ?, impus = ? WHERE username = ?",
                    (impi, json.dumps(list(impus)), username),
                )
            if scope_text is not None:
                db.execute("UPDATE auth_users SET scopes = ? WHERE username = ?", (scope_text, username))
            if dest is not None:
                db.execute(
                    "UPDATE auth_users SET dest = ? WHERE username = ?",
                    (json.dumps(claim) if claim else None, username),
                )

        self.store.write(update)
        return self.get(username)

    def set_disabled(self, username: str, disabled: bool) -> None:
        n = self.store.write(
            lambda db: (
                db.execute(
                    "UPDATE auth_users SET disabled = ? WHERE username = ?", (int(disabled), username)
                ).rowcount
            )
        )
        if not n:
            raise NotFound(f"no user {username!r}")

    def authenticate(self, username: str, password: str) -> User | None:
        """The user if the password matches and the account is enabled (slow: argon2)."""
        row = self.store.read(
            lambda db: db.execute("SELECT * FROM auth_users WHERE username = ?", (username,)).fetchone()
        )
        ok = self.hasher.verify(row["password_hash"] if row is not None else None, password)
        if not ok or row is None or row["disabled"]:
            return None
        return _user(row)

    def digest_ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """Stored HA1 for HTTP Digest (RFC 7616 §3.4.2), if provisioned for ``realm``."""
        row = self.store.read(
            lambda db: db.execute(
                "SELECT digest_realm, ha1_md5, ha1_sha256, disabled FROM auth_users WHERE username = ?",
                (username,),
            ).fetchone()
        )
        if row is None or row["disabled"] or row["digest_realm"] != realm:
            return None
        column = "ha1_sha256" if algorithm.upper().startswith("SHA-256") else "ha1_md5"
        value = row[column]
        return str(value) if value is not None else None


@dataclass(frozen=True)
class Client:
    client_id: str
    public: bool
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]


def _client(row: sqlite3.Row) -> Client:
    return Client(
        client_id=row["client_id"],
        public=row["secret_hash"] is None,
        redirect_uris=tuple(json.loads(row["redirect_uris"])),
        grant_types=tuple(row["grant_types"].split()),
        scopes=tuple(row["scopes"].split()),
    )


class Clients:
    """OAuth clients (RFC 6749 §2)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def put(
        self,
        client_id: str,
        *,
        secret: str | None = None,
        redirect_uris: Sequence[str] = (),
        grant_types: Sequence[str] | None = None,
        scopes: Sequence[str] = SCOPES,
        replace: bool = False,
    ) -> Client:
        """Add (or with ``replace=True`` update) a client. ``secret=None``: public client."""
        if not _CLIENT_ID.fullmatch(client_id):
            raise ValueError(f"bad client id {client_id!r}")
        for uri in redirect_uris:
            check_redirect_uri(uri)
        if grant_types is None:
            grant_types = (
                ("authorization_code", "refresh_token") if secret is None else ("client_credentials",)
            )
        for g in grant_types:
            if g not in GRANT_TYPES:
                raise ValueError(f"unknown grant type {g!r}: expected some of {', '.join(GRANT_TYPES)}")
        if secret is None and "client_credentials" in grant_types:
            raise ValueError("a public client (no secret) cannot use client_credentials")
        if "authorization_code" in grant_types and not redirect_uris:
            raise ValueError("authorization_code needs at least one redirect URI")
        scope_text = " ".join(check_scopes(scopes))
        secret_hash = hash_secret(secret) if secret is not None else None

        def upsert(db: sqlite3.Connection) -> None:
            exists = db.execute("SELECT 1 FROM auth_clients WHERE client_id = ?", (client_id,)).fetchone()
            if exists and not replace:
                raise Conflict(f"client {client_id!r} exists already")
            db.execute(
                "INSERT INTO auth_clients (client_id, secret_hash, redirect_uris, grant_types, scopes, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(client_id) DO UPDATE SET "
                "secret_hash = excluded.secret_hash, redirect_uris = excluded.redirect_uris, "
                "grant_types = excluded.grant_types, scopes = excluded.scopes",
                (
                    client_id,
                    secret_hash,
                    json.dumps(list(redirect_uris)),
                    " ".join(grant_types),
                    scope_text,
                    time.time(),
                ),
            )

        self.store.write(upsert)
        return self.get(client_id)

    def get(self, client_id: str) -> Client:
        row = self.store.read(
            lambda db: db.execute("SELECT * FROM auth_clients WHERE client_id = ?", (client_id,)).fetchone()
        )
        if row is None:
            raise NotFound(f"no client {client_id!r}")
        return _client(row)

    def find(self, client_id: str) -> Client | None:
        try:
            return self.get(client_id)
        except NotFound:
            return None

    def list(self) -> builtins.list[Client]:
        rows = self.store.read(
            lambda db: db.execute("SELECT * FROM auth_clients ORDER BY client_id").fetchall()
        )
        return [_client(r) for r in rows]

    def remove(self, client_id: str) -> None:
        n = self.store.write(
            lambda db: db.execute("DELETE FROM auth_clients WHERE client_id = ?", (client_id,)).rowcount
        )
        if not n:
            raise NotFound(f"no client {client_id!r}")

    def authenticate(self, client_id: str, secret: str) -> Client | None:
        """A confidential client whose secret matches (constant-time compare)."""
        row = self.store.read(
            lambda db: db.execute("SELECT * FROM auth_clients WHERE client_id = ?", (client_id,)).fetchone()
        )
        expected = row["secret_hash"] if row is not None and row["secret_hash"] is not None else "0" * 64
        ok = hmac.compare_digest(expected, hash_secret(secret))
        return _client(row) if ok and row is not None else None

    @staticmethod
    def new_secret() -> str:
        return secrets.token_urlsafe(32)
