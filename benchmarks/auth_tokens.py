"""Token benchmark (issue 4): verifications per second with a cached JWKS (ES256) and
issuances per second, on one core.

- ``verify``: :meth:`TokenVerifier.verify_cached` on distinct RFC 9068 tokens (full
  checks: alg allowlist, key type, typ, signature, iss, aud, exp/nbf/iat, jti),
  keys from a cached JWKS, no revocation lookup (a remote gateway's fast path);
- ``verify+store``: the in-process gateway verifier (revocation list and pool lease
  looked up in SQLite for every token);
- ``issue``: :meth:`TokenService.issue_for_user` (ES256 signature plus the token
  family and jti rows in SQLite, one transaction each).

The last line is JSON: ``{"verify_per_s": ..., "verify_store_per_s": ..., "issue_per_s": ...}``.

    .venv/bin/python benchmarks/auth_tokens.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from webims.auth.service import AuthService, ServiceSettings
from webims.auth.verify import StaticKeys, TokenVerifier, TrustedIssuer
from webims.store import Store

ISSUER = "https://127.0.0.1:8443"


def rate(fn: Callable[[int], object], seconds: float) -> float:
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            fn(count)
            count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite3")
        service = AuthService(
            store,
            ServiceSettings(
                issuer=ISSUER,
                wic_redirect_uris=("https://127.0.0.1:8443/",),
                password_time_cost=1,
                password_memory_kib=1024,
            ),
        )
        service.users.add("alice", "alice-password-1")
        service.users.map("alice", impi="alice@ims.test", impus=["sip:alice@ims.test", "tel:+15550100"])

        issue = rate(lambda i: service.tokens.issue_for_user("alice", client_id="wic"), args.seconds)
        print(f"issue (ES256 + SQLite rows): {issue:,.0f} tokens/s")

        tokens = [service.tokens.issue_for_user("alice", client_id="wic").access_token for _ in range(2000)]
        jwks = StaticKeys(service.keys.jwks())
        cached = TokenVerifier([TrustedIssuer(ISSUER, jwks, ("webims",))])
        verify = rate(lambda i: cached.verify_cached(tokens[i % len(tokens)], scope="register"), args.seconds)
        print(f"verify (cached JWKS, ES256): {verify:,.0f} tokens/s")

        local = service.verifier()
        verify_store = rate(lambda i: local.verify_cached(tokens[i % len(tokens)]), args.seconds)
        print(f"verify (in-process, revocation list in SQLite): {verify_store:,.0f} tokens/s")
        store.close()
    print(
        json.dumps(
            {
                "verify_per_s": round(verify),
                "verify_store_per_s": round(verify_store),
                "issue_per_s": round(issue),
            }
        )
    )


if __name__ == "__main__":
    main()
