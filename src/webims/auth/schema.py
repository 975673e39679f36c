"""SQLite tables of the web authorization function (component ``auth`` in the store).

Secrets are never stored in the clear: passwords as argon2id PHC strings, client
secrets, authorization codes, refresh tokens and session ids as SHA-256 digests.
The signing keys' private JWKs are stored as-is (the database file is mode 0600);
HTTP Digest HA1 values (RFC 7616 §3.4.2) are password-equivalent for their realm and
only stored for users provisioned with ``--digest``.
"""

from __future__ import annotations

from webims.store import Migration, Store

__all__ = ["COMPONENT", "MIGRATIONS", "install"]

COMPONENT = "auth"

MIGRATIONS: list[Migration] = [
    # 1: initial schema
    """
    CREATE TABLE auth_users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        digest_realm TEXT,
        ha1_md5 TEXT,
        ha1_sha256 TEXT,
        scopes TEXT NOT NULL DEFAULT 'register call message',
        dest TEXT,                       -- JSON DestinationRules claim, or NULL
        impi TEXT,
        impus TEXT NOT NULL DEFAULT '[]', -- JSON list
        pool TEXT,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE auth_clients (
        client_id TEXT PRIMARY KEY,
        secret_hash TEXT,               -- NULL: public client (PKCE)
        redirect_uris TEXT NOT NULL DEFAULT '[]',
        grant_types TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE auth_pools (
        name TEXT PRIMARY KEY,
        impi TEXT,
        wildcard TEXT,                  -- TS 23.003 §13.5 wildcarded IMPU, or NULL
        capacity INTEGER NOT NULL,      -- concurrent allocations allowed
        created_at REAL NOT NULL
    );
    CREATE TABLE auth_pool_members (
        pool TEXT NOT NULL REFERENCES auth_pools(name) ON DELETE CASCADE,
        impu TEXT NOT NULL,
        released_at REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (pool, impu)
    );
    CREATE TABLE auth_allocations (
        id TEXT PRIMARY KEY,
        pool TEXT NOT NULL REFERENCES auth_pools(name) ON DELETE CASCADE,
        impu TEXT NOT NULL,
        holder TEXT NOT NULL,           -- web identity (sub)
        client_id TEXT,
        owner TEXT,                     -- token family or session that holds the lease
        leased_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        UNIQUE (pool, impu)
    );
    CREATE INDEX auth_allocations_expiry ON auth_allocations(pool, expires_at);
    CREATE TABLE auth_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_jwk TEXT NOT NULL,
        created_at REAL NOT NULL,
        activated_at REAL NOT NULL,     -- signs from then on (published before: pre-publication)
        retired_at REAL,                -- no longer signs
        expires_at REAL                 -- no longer published nor trusted
    );
    CREATE TABLE auth_families (
        id TEXT PRIMARY KEY,
        sub TEXT NOT NULL,
        client_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        allocation TEXT,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        revoked_at REAL,
        revoked_reason TEXT
    );
    CREATE TABLE auth_codes (
        code_hash TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        sub TEXT NOT NULL,
        scope TEXT NOT NULL,
        challenge TEXT NOT NULL,
        auth_time REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL,
        family TEXT
    );
    CREATE TABLE auth_refresh (
        token_hash TEXT PRIMARY KEY,
        family TEXT NOT NULL REFERENCES auth_families(id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL
    );
    CREATE TABLE auth_access (
        jti TEXT PRIMARY KEY,
        family TEXT,
        expires_at REAL NOT NULL
    );
    CREATE INDEX auth_access_family ON auth_access(family);
    CREATE TABLE auth_revoked (
        jti TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    );
    CREATE TABLE auth_sessions (
        id_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        allocation TEXT,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        revoked_at REAL
    );
    """,
]


def install(store: Store) -> None:
    """Create or upgrade the auth tables (idempotent)."""
    store.migrate(COMPONENT, MIGRATIONS)
