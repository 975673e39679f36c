"""Signing keys of the authorization server and their rotation (RFC 7517 JWKS).

One key signs at a time (ES256, P-256, RFC 7518 §3.4). The JWKS always carries,
besides the signing key, the *next* key (pre-publication): a gateway that cached
the JWKS already knows the key that the next rotation will start using, so a
rotation never makes fresh tokens unverifiable while the gateway's refresh is
rate-limited. :meth:`KeyRing.rotate` retires the signing key — it signs nothing
more but stays in the JWKS, trusted, until every token it signed has expired
(``retired_at + keep_for``) — activates the next key and prepares a new next
one. ``kid`` is the RFC 7638 JWK thumbprint.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, KeySet

from webims.store import Store

__all__ = ["KeyRing", "SigningKey"]

SUPPORTED_SIGNING = {"ES256": "P-256", "ES384": "P-384"}


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    created_at: float
    activated_at: float
    retired_at: float | None
    expires_at: float | None


_ACTIVE = (
    "SELECT kid, private_jwk, activated_at FROM auth_keys "
    "WHERE alg = ? AND retired_at IS NULL AND activated_at <= ? "
    "ORDER BY activated_at DESC, created_at DESC LIMIT 1"
)


class KeyRing:
    """Signing keys in the store, with in-memory parsed keys."""

    def __init__(
        self,
        store: Store,
        *,
        alg: str = "ES256",
        rotation_interval: float = 7 * 86_400,
        keep_for: float = 3600,
    ) -> None:
        """``keep_for``: how long a retired key stays trusted (the longest token lifetime
        plus the verifiers' leeway)."""
        if alg not in SUPPORTED_SIGNING:
            raise ValueError(
                f"unsupported signing algorithm {alg!r}: expected one of {list(SUPPORTED_SIGNING)}"
            )
        self.store = store
        self.alg = alg
        self.rotation_interval = rotation_interval
        self.keep_for = keep_for
        self._parsed: dict[str, ECKey] = {}
        self._lock = threading.Lock()

    def _key(self, kid: str, jwk_text: str) -> ECKey:
        with self._lock:
            key = self._parsed.get(kid)
            if key is None:
                key = ECKey.import_key(json.loads(jwk_text), {"kid": kid, "use": "sig", "alg": self.alg})
                self._parsed[kid] = key
            return key

    def _new(self, db: sqlite3.Connection, now: float, activated_at: float) -> tuple[str, str]:
        key = ECKey.generate_key(SUPPORTED_SIGNING[self.alg], private=True)
        kid = key.thumbprint()
        text = json.dumps(key.as_dict(private=True))
        db.execute(
            "INSERT INTO auth_keys (kid, alg, private_jwk, created_at, activated_at) VALUES (?, ?, ?, ?, ?)",
            (kid, self.alg, text, now, activated_at),
        )
        return kid, text

    def _ensure(self, db: sqlite3.Connection, now: float) -> tuple[str, str, int]:
        """The signing key, creating it and the pre-published next key when missing, and
        retiring keys the signing key took over from (returns how many)."""
        row = db.execute(_ACTIVE, (self.alg, now)).fetchone()
        active = (row[0], row[1]) if row is not None else self._new(db, now, now)
        since = float(row[2]) if row is not None else now
        retired = db.execute(
            "UPDATE auth_keys SET retired_at = ?, expires_at = ? "
            "WHERE alg = ? AND retired_at IS NULL AND activated_at <= ? AND kid != ?",
            (since, since + self.keep_for, self.alg, now, active[0]),
        ).rowcount
        pending = db.execute(
            "SELECT 1 FROM auth_keys WHERE alg = ? AND retired_at IS NULL AND activated_at > ?",
            (self.alg, now),
        ).fetchone()
        if pending is None:
            # pre-published at least an hour ahead (or one interval, if shorter)
            self._new(db, now, max(since + self.rotation_interval, now + min(self.rotation_interval, 3600.0)))
        return active[0], active[1], retired

    def signing_key(self, now: float | None = None) -> ECKey:
        """The current signing key (created on first use)."""
        t = time.time() if now is None else now
        row = self.store.read(lambda db: db.execute(_ACTIVE, (self.alg, t)).fetchone())
        pending = self.store.read(
            lambda db: db.execute(
                "SELECT 1 FROM auth_keys WHERE alg = ? AND retired_at IS NULL AND activated_at > ?",
                (self.alg, t),
            ).fetchone()
        )
        if row is not None and pending is not None:
            return self._key(row[0], row[1])
        kid, text, _ = self.store.write(lambda db: self._ensure(db, t))
        return self._key(kid, text)

    def rotate(self, *, keep_for: float | None = None, now: float | None = None) -> str:
        """Sign with the (pre-published) next key from now on; the old one verifies for
        ``keep_for`` more seconds. Returns the new signing kid."""
        t = time.time() if now is None else now
        keep = self.keep_for if keep_for is None else keep_for

        def run(db: sqlite3.Connection) -> str:
            self._ensure(db, t)
            db.execute(
                "UPDATE auth_keys SET retired_at = ?, expires_at = ? "
                "WHERE alg = ? AND retired_at IS NULL AND activated_at <= ?",
                (t, t + keep, self.alg, t),
            )
            nxt = db.execute(
                "SELECT kid FROM auth_keys WHERE alg = ? AND retired_at IS NULL AND activated_at > ? "
                "ORDER BY activated_at LIMIT 1",
                (self.alg, t),
            ).fetchone()
            db.execute("UPDATE auth_keys SET activated_at = ? WHERE kid = ?", (t, nxt[0]))
            self._ensure(db, t)
            return str(nxt[0])

        return self.store.write(run)

    def rotate_if_due(self, *, now: float | None = None) -> str | None:
        """Hand over to the next key when its time has come (``rotation_interval`` after the
        signing key's activation) and drop expired keys; returns the new signing kid, if any."""
        t = time.time() if now is None else now

        def run(db: sqlite3.Connection) -> str | None:
            db.execute("DELETE FROM auth_keys WHERE expires_at <= ?", (t,))
            kid, _, retired = self._ensure(db, t)
            return kid if retired else None

        return self.store.write(run)

    def keys(self, now: float | None = None) -> list[SigningKey]:
        t = time.time() if now is None else now
        rows = self.store.read(
            lambda db: db.execute(
                "SELECT kid, alg, created_at, activated_at, retired_at, expires_at FROM auth_keys "
                "WHERE expires_at IS NULL OR expires_at > ? ORDER BY activated_at",
                (t,),
            ).fetchall()
        )
        return [SigningKey(*r) for r in rows]

    def jwks(self, now: float | None = None) -> dict[str, Any]:
        """Public JWK Set: signing, next and retired-but-valid keys (RFC 7517 §5)."""
        t = time.time() if now is None else now
        self.signing_key(t)
        rows = self.store.read(
            lambda db: db.execute(
                "SELECT kid, private_jwk FROM auth_keys WHERE expires_at IS NULL OR expires_at > ? "
                "ORDER BY activated_at DESC",
                (t,),
            ).fetchall()
        )
        return {"keys": [self._key(r[0], r[1]).as_dict(private=False) for r in rows]}

    def keyset(self, now: float | None = None) -> KeySet:
        """The public keys, for a local :class:`~webims.auth.verify.TokenVerifier`."""
        return KeySet.import_key_set(self.jwks(now))  # type: ignore[arg-type]
