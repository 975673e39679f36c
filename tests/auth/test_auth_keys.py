"""Signing-key rotation: pre-published next key, retired keys kept until their tokens expire."""

from __future__ import annotations

from pathlib import Path

import pytest

from webims.auth import schema
from webims.auth.errors import InvalidToken
from webims.auth.keys import KeyRing
from webims.auth.verify import StaticKeys, TokenVerifier, TrustedIssuer
from webims.store import Store


def kids(ring: KeyRing, now: float) -> list[str]:
    return [k["kid"] for k in ring.jwks(now)["keys"]]


def test_rotation_schedule(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.sqlite3")
    schema.install(store)
    ring = KeyRing(store, rotation_interval=1000, keep_for=100)
    first = ring.signing_key(0.0).kid
    published = kids(ring, 0.0)
    assert len(published) == 2 and first in published
    upcoming = next(k for k in published if k != first)
    assert ring.rotate_if_due(now=999.0) is None
    assert ring.rotate_if_due(now=1000.0) == upcoming  # the pre-published key takes over
    assert ring.signing_key(1000.0).kid == upcoming
    assert first in kids(ring, 1050.0) and len(kids(ring, 1050.0)) == 3  # retired, signing, next
    ring.rotate_if_due(now=1101.0)
    assert first not in kids(ring, 1101.0)  # its tokens have all expired
    assert next(k.kid for k in ring.keys(1101.0)) == upcoming
    # a second process sees the same keys
    other = KeyRing(Store(tmp_path / "k.sqlite3"), rotation_interval=1000)
    assert other.signing_key(1101.0).kid == upcoming


def test_jwks_never_serves_private_parts_and_old_keys_stop_verifying(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.sqlite3")
    schema.install(store)
    ring = KeyRing(store, rotation_interval=10)
    doc = ring.jwks(0.0)
    assert all(set(k) == {"kty", "crv", "x", "y", "kid", "use", "alg"} for k in doc["keys"])
    from joserfc import jwt

    token = jwt.encode(
        {"alg": "ES256", "typ": "at+jwt", "kid": ring.signing_key(0.0).kid},
        {"iss": "i", "aud": "a", "sub": "s", "exp": 10**10, "jti": "j"},
        ring.signing_key(0.0),
    )
    ring.rotate(keep_for=5, now=1.0)
    still = TokenVerifier([TrustedIssuer("i", StaticKeys(ring.jwks(3.0)), ("a",))])
    assert still.verify_cached(token).sub == "s"
    with pytest.raises(InvalidToken, match="unknown signing key"):
        TokenVerifier([TrustedIssuer("i", StaticKeys(ring.jwks(7.0)), ("a",))]).verify_cached(token)
