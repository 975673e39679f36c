"""The attack table of issue 4: each attempt is refused with a clear error and nothing
is granted (no token, no code, no session, the gateway's verifier says invalid_token,
introspection says inactive). Everything over real HTTPS on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from auth_helpers import REDIRECT, Browser, Server, b64url, gateway_auth, new_verifier
from joserfc import jwt
from joserfc.jwk import ECKey

from webims.auth.errors import InvalidToken
from webims.auth.verify import RemoteJWKS, StaticKeys, TokenVerifier, TrustedIssuer


def _decode(segment: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


def forge(
    server: Server,
    good: str,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    key: ECKey | None = None,
) -> str:
    """Re-sign a token's claims with changes, by default with the server's real key."""
    h, p, _ = good.split(".")
    hdr = {k: v for k, v in {**_decode(h), **(header or {})}.items() if v is not None}
    body = {k: v for k, v in {**_decode(p), **(claims or {})}.items() if v is not None}
    signing = key or server.service.keys.signing_key()
    return jwt.encode(hdr, body, signing, algorithms=[hdr["alg"]])


def unsigned(good: str) -> str:
    _, p, _ = good.split(".")
    return b64url(json.dumps({"alg": "none", "typ": "at+jwt"}).encode()) + "." + p + "."


def hs256_with_public_key(server: Server, good: str) -> str:
    """The classic RS/HS confusion: HMAC keyed with the public key the verifier holds."""
    _, p, _ = good.split(".")
    kid = server.service.keys.signing_key().kid
    public = json.dumps(server.service.keys.signing_key().as_dict(private=False)).encode()
    head = b64url(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": kid}).encode())
    sig = hmac.new(public, f"{head}.{p}".encode(), hashlib.sha256).digest()
    return f"{head}.{p}.{b64url(sig)}"


def tampered(good: str) -> str:
    h, p, s = good.split(".")
    claims = _decode(p)
    claims["impu"] = ["sip:ceo@ims.test"]
    return f"{h}.{b64url(json.dumps(claims).encode())}.{s}"


async def revoked(server: Server, browser: Browser, good: str) -> str:
    status, _, _ = await browser.post_form("/revoke", {"token": good, "client_id": "wic"})
    assert status == 200
    return good


def issued_at(server: Server, when: float) -> str:
    return str(server.service.tokens.issue_for_user("alice", client_id="wic", now=when).access_token)


ATTACKER_KEY = ECKey.generate_key("P-256", parameters={"kid": "attacker"})

# name -> (how to make the bad token from a good one, reason the verifier gives)
TOKEN_ATTACKS: dict[str, tuple[Callable[[Server, Browser, str], Any], str]] = {
    "expired": (lambda s, b, g: issued_at(s, time.time() - 7200), "expired"),
    "not yet valid": (lambda s, b, g: issued_at(s, time.time() + 3600), "not valid yet"),
    "wrong aud": (lambda s, b, g: forge(s, g, claims={"aud": "some-other-api"}), "wrong audience"),
    "wrong iss": (lambda s, b, g: forge(s, g, claims={"iss": "https://evil.example"}), "untrusted issuer"),
    "alg none": (lambda s, b, g: unsigned(g), "algorithm 'none' is not accepted"),
    "HS256 with public key": (
        lambda s, b, g: hs256_with_public_key(s, g),
        "algorithm 'HS256' is not accepted",
    ),
    "tampered payload": (lambda s, b, g: tampered(g), "bad signature"),
    "unknown kid": (
        lambda s, b, g: forge(s, g, header={"kid": "attacker"}, key=ATTACKER_KEY),
        "unknown signing key",
    ),
    "revoked": (revoked, "revoked"),
    "wrong typ": (lambda s, b, g: forge(s, g, header={"typ": "JWT"}), "wrong token type"),
    "no typ": (lambda s, b, g: forge(s, g, header={"typ": None}), "wrong token type"),
    "no exp": (lambda s, b, g: forge(s, g, claims={"exp": None}), "no expiry"),
    "no jti": (lambda s, b, g: forge(s, g, claims={"jti": None}), "no jti"),
    "garbage": (lambda s, b, g: "not.a-token", "malformed token"),
}


@pytest.mark.parametrize("attack", list(TOKEN_ATTACKS))
async def test_token_attack_refused(attack: str, browser: Browser, server: Server) -> None:
    good = (await browser.full_login("alice", "alice-password-1"))["access_token"]
    make, reason = TOKEN_ATTACKS[attack]
    bad = make(server, browser, good)
    if isinstance(bad, Awaitable):
        bad = await bad
    # the gateway in-process (store keys + revocation list)
    with pytest.raises(InvalidToken, match=reason) as info:
        await server.service.verifier().verify(bad)
    assert info.value.error == "invalid_token" and info.value.status == 401
    assert 'error="invalid_token"' in info.value.www_authenticate()
    # a remote gateway (JWKS over HTTPS); the revocation list is only known to the server
    if attack != "revoked":
        keys = RemoteJWKS(server.base + "/jwks.json", ssl=server.tls.client)
        remote = TokenVerifier([TrustedIssuer(server.base, keys, ("webims",))])
        with pytest.raises(InvalidToken, match=reason):
            await remote.verify(bad)
    # introspection: inactive, nothing about the token leaks
    status, body, _ = await browser.post_form("/introspect", {"token": bad}, auth=gateway_auth())
    assert (status, body) == (200, {"active": False})
    # and the token buys nothing at the pool endpoint either
    status, body, _ = await browser.post_form("/pool/release", {"allocation": "x"}, bearer=bad)
    assert status in (401, 415)


async def test_unknown_kid_flood_fetches_jwks_once(browser: Browser, server: Server) -> None:
    good = (await browser.full_login("alice", "alice-password-1"))["access_token"]
    keys = RemoteJWKS(server.base + "/jwks.json", ssl=server.tls.client, min_refresh_interval=3600)
    remote = TokenVerifier([TrustedIssuer(server.base, keys, ("webims",))])
    await remote.verify(good)
    for i in range(20):
        other = ECKey.generate_key("P-256", parameters={"kid": f"random-{i}"})
        with pytest.raises(InvalidToken, match="unknown signing key"):
            await remote.verify(forge(server, good, header={"kid": f"random-{i}"}, key=other))
    assert keys.fetches == 1  # the refresh on unknown kid is rate-limited, never per request


def test_algorithm_key_type_confusion() -> None:
    """ES384/RS256 headers naming a P-256 key are refused; HS* cannot even be configured."""
    key = ECKey.generate_key("P-256", parameters={"kid": "k", "use": "sig"})
    keys = StaticKeys({"keys": [key.as_dict(private=False)]})
    verifier = TokenVerifier(
        [TrustedIssuer("https://i", keys, ("webims",), algorithms=("ES256", "ES384", "RS256"))]
    )
    claims = {"iss": "https://i", "aud": "webims", "sub": "x", "exp": int(time.time()) + 60, "jti": "j"}
    good = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "k"}, claims, key)
    assert verifier.verify_cached(good).sub == "x"
    _h, p, s = good.split(".")
    for alg in ("ES384", "RS256"):
        head = b64url(json.dumps({"alg": alg, "typ": "at+jwt", "kid": "k"}).encode())
        with pytest.raises(InvalidToken, match=f"cannot verify {alg}"):
            verifier.verify_cached(f"{head}.{p}.{s}")
    for alg in ("HS256", "none"):
        with pytest.raises(ValueError, match="not accepted"):
            TrustedIssuer("https://i", keys, ("webims",), algorithms=(alg,))


@pytest.mark.parametrize(
    ("alg", "crv", "size"), [("ES256", "P-256", 32), ("ES384", "P-384", 48), ("ES512", "P-521", 66)]
)
def test_ecdsa_signatures_each_curve(alg: str, crv: str, size: int) -> None:
    """RFC 7518 §3.4 R || S on each curve: the genuine signature passes; a flipped bit, a
    DER-encoded or truncated signature, a key whose key_ops exclude verify are refused."""
    key = ECKey.generate_key(crv, parameters={"kid": "k", "use": "sig"})
    claims = {"iss": "https://i", "aud": "webims", "sub": "x", "exp": int(time.time()) + 60, "jti": "j"}
    good = jwt.encode({"alg": alg, "typ": "at+jwt", "kid": "k"}, claims, key, algorithms=[alg])
    verifier = TokenVerifier(
        [TrustedIssuer("https://i", StaticKeys({"keys": [key.as_dict(private=False)]}), ("webims",), (alg,))]
    )
    assert verifier.verify_cached(good).sub == "x"
    h, p, s = good.split(".")
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    assert len(raw) == 2 * size
    flipped = bytes([raw[0] ^ 1]) + raw[1:]
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    der = encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))
    for bad in (flipped, der, raw[:-1], raw + b"\0", b""):
        with pytest.raises(InvalidToken, match="bad signature"):
            verifier.verify_cached(f"{h}.{p}.{b64url(bad)}")
    sign_only = {**key.as_dict(private=False), "key_ops": ["sign"]}
    sign_only.pop("use")
    no_verify = TokenVerifier(
        [TrustedIssuer("https://i", StaticKeys({"keys": [sign_only]}), ("webims",), (alg,))]
    )
    with pytest.raises(InvalidToken, match="bad signature"):
        no_verify.verify_cached(good)


# ---------------------------------------------------------------------------- flow attacks


async def test_reused_authorization_code_revokes_its_tokens(browser: Browser, server: Server) -> None:
    verifier = new_verifier()
    code = await browser.login_for_code("alice", "alice-password-1", verifier)
    status, first = await browser.code_for_tokens(code, verifier)
    assert status == 200
    status, again = await browser.code_for_tokens(code, verifier)
    assert (
        status == 400 and again["error"] == "invalid_grant" and "already used" in again["error_description"]
    )
    assert "access_token" not in again
    with pytest.raises(InvalidToken, match="revoked"):
        server.service.verifier().verify_cached(first["access_token"])
    status, err = await browser.token(
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "wic"}
    )
    assert status == 400 and err["error"] == "invalid_grant"


async def test_pkce_verifier_mismatch_burns_the_code(browser: Browser) -> None:
    verifier = new_verifier()
    code = await browser.login_for_code("alice", "alice-password-1", verifier)
    status, err = await browser.code_for_tokens(code, new_verifier())
    assert status == 400 and err["error"] == "invalid_grant" and "PKCE" in err["error_description"]
    status, err = await browser.code_for_tokens(code, verifier)  # the right one is too late
    assert status == 400 and err["error"] == "invalid_grant" and "access_token" not in err
    code = await browser.login_for_code("alice", "alice-password-1", verifier)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": "wic"}
    status, err = await browser.token(form)  # no verifier at all
    assert status == 400 and "code_verifier" in err["error_description"]


async def test_redirect_uri_mismatch_at_token_endpoint(browser: Browser) -> None:
    verifier = new_verifier()
    code = await browser.login_for_code("alice", "alice-password-1", verifier)
    status, err = await browser.code_for_tokens(code, verifier, redirect_uri="https://127.0.0.1:9/other")
    assert status == 400 and err["error"] == "invalid_grant" and "redirect_uri" in err["error_description"]


async def test_code_for_another_client(browser: Browser, server: Server) -> None:
    server.service.clients.put("other", redirect_uris=[REDIRECT])
    verifier = new_verifier()
    code = await browser.login_for_code("alice", "alice-password-1", verifier)
    status, err = await browser.code_for_tokens(code, verifier, client_id="other")
    assert status == 400 and "another client" in err["error_description"]


@pytest.mark.parametrize(
    "params, error",
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "register admin"}, "invalid_scope"),
    ],
)
async def test_bad_authorization_requests_return_errors(
    browser: Browser, params: dict[str, Any], error: str
) -> None:
    resp = await browser.authorize(new_verifier(), **params)
    assert resp.status == 303
    query = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert query["error"] == [error] and "code" not in query and query["state"] == ["st-123"]
    assert resp.headers["Location"].startswith(REDIRECT + "?")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        "https://127.0.0.1:9/callback/../evil",
        "https://127.0.0.1:9/callback?next=https://evil.example",
        "https://127.0.0.1:9@evil.example/callback",
        "https://127.0.0.1:9/callbackx",
        "//evil.example/callback",
    ],
)
async def test_open_redirect_attempts_are_not_followed(browser: Browser, redirect_uri: str) -> None:
    resp = await browser.authorize(new_verifier(), redirect_uri=redirect_uri)
    assert resp.status == 400 and "Location" not in resp.headers
    assert "not registered" in await resp.text()


async def test_unknown_client_gets_an_error_page(browser: Browser) -> None:
    resp = await browser.authorize(new_verifier(), client_id="intruder")
    assert resp.status == 400 and "Location" not in resp.headers


async def test_login_next_cannot_leave_the_site(browser: Browser, server: Server) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"):
        page = await browser.session.get(browser.url("/login"), params={"next": target})
        resp = await browser.submit_login(await page.text(), "alice", "alice-password-1", next=target)
        assert resp.status == 303 and resp.headers["Location"] == "/session"


async def test_login_brute_force_is_rate_limited(browser: Browser) -> None:
    page = await browser.authorize(new_verifier())
    text = await page.text()
    for _ in range(5):
        resp = await browser.submit_login(text, "alice", "wrong-guess")
        assert resp.status == 401 and "Wrong username or password" in await resp.text()
    resp = await browser.submit_login(text, "alice", "alice-password-1")  # right, but too late
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert "Location" not in resp.headers and "webims_session" not in resp.headers.get("Set-Cookie", "")
    body = await resp.json()
    assert body["status"] == 429 and "Too many failed logins" in body["detail"]
    # another user from the same address is not locked out by alice's counter
    page = await browser.authorize(new_verifier())
    resp = await browser.submit_login(await page.text(), "bob", "bob-password-1")
    assert resp.status == 303


async def test_login_per_address_limit(tmp_path: Any, tls: Any) -> None:
    from auth_helpers import provision, start

    srv = await start(tmp_path / "db.sqlite3", tls, max_failures_per_ip=3, max_failures_per_user=100)
    provision(srv.service)
    b = Browser(srv)
    try:
        page = await (await b.authorize(new_verifier())).text()
        for name in ("u1", "u2", "u3"):
            assert (await b.submit_login(page, name, "x")).status == 401
        resp = await b.submit_login(page, "alice", "alice-password-1")
        assert resp.status == 429 and "Retry-After" in resp.headers
    finally:
        await b.close()
        await srv.stop()


async def test_login_csrf_and_cross_origin_refused(browser: Browser, server: Server) -> None:
    page = await (await browser.authorize(new_verifier())).text()
    resp = await browser.submit_login(page, "alice", "alice-password-1", csrf="forged")
    assert resp.status == 403 and "CSRF" in (await resp.json())["detail"]
    form = {"username": "alice", "password": "alice-password-1"}
    resp = await browser.session.post(
        browser.url("/login"), data=form, headers={"Origin": "https://evil.example"}, allow_redirects=False
    )
    assert resp.status == 403 and "Location" not in resp.headers


async def test_refresh_token_reuse_revokes_the_family(browser: Browser, server: Server) -> None:
    tokens = await browser.full_login("alice", "alice-password-1")
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "wic"}
    status, fresh = await browser.token(form)
    assert status == 200
    status, err = await browser.token(form)  # an attacker replays the stolen old refresh token
    assert status == 400 and "reuse detected" in err["error_description"]
    for token in (tokens["access_token"], fresh["access_token"]):
        with pytest.raises(InvalidToken, match="revoked"):
            server.service.verifier().verify_cached(token)
    status, err = await browser.token({**form, "refresh_token": fresh["refresh_token"]})
    assert status == 400 and "revoked" in err["error_description"]
