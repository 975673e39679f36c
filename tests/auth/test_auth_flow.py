"""The full authorization code + PKCE flow over real HTTPS on 127.0.0.1 (seed 004
§6.X.2.2.3 steps 2-3 and 6): login, code, token, verification by a remote gateway
(JWKS over HTTPS), introspection, refresh with rotation, revocation."""

from __future__ import annotations

import base64
import json

import pytest
from auth_helpers import REDIRECT, Browser, Server, gateway_auth, new_verifier

from webims.auth.errors import InsufficientScope, InvalidToken
from webims.auth.identity import check_destination
from webims.auth.verify import Introspector, RemoteJWKS, TokenVerifier, TrustedIssuer


def _parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    h, p, _ = token.split(".")

    def decode(s: str) -> dict[str, object]:
        return dict(json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))))

    return decode(h), decode(p)


def remote_verifier(server: Server, **kw: object) -> TokenVerifier:
    keys = RemoteJWKS(server.base + "/jwks.json", ssl=server.tls.client)
    return TokenVerifier([TrustedIssuer(server.base, keys, ("webims",))], **kw)  # type: ignore[arg-type]


async def test_metadata_and_jwks(browser: Browser, server: Server) -> None:
    resp = await browser.session.get(server.base + "/.well-known/oauth-authorization-server")
    meta = await resp.json()
    assert meta["issuer"] == server.base
    assert meta["token_endpoint"] == server.base + "/token"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    resp = await browser.session.get(meta["jwks_uri"])
    jwks = await resp.json()
    assert [k["kty"] for k in jwks["keys"]] == ["EC", "EC"]  # signing + pre-published next
    assert all("d" not in k for k in jwks["keys"])  # no private part
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age" in resp.headers["Strict-Transport-Security"]


async def test_login_page_is_csp_strict(browser: Browser) -> None:
    resp = await browser.authorize(new_verifier())
    page = await resp.text()
    assert resp.status == 200
    assert "<script" not in page and "style=" not in page and "<style" not in page
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "form-action 'self' https://127.0.0.1:9" in csp
    assert resp.headers["X-Frame-Options"] == "DENY"


async def test_full_pkce_flow(browser: Browser, server: Server) -> None:
    verifier = new_verifier()
    code = await browser.login_for_code("alice", "alice-password-1", verifier)
    # the login also opened a web session (HttpOnly, Secure, SameSite=Strict)
    status, body = await browser.code_for_tokens(code, verifier)
    assert status == 200, body
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert body["scope"] == "register call message"
    access, refresh = body["access_token"], body["refresh_token"]

    header, claims = _parts(access)
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": header["kid"]}
    assert claims["iss"] == server.base and claims["aud"] == "webims"
    assert claims["sub"] == "alice" and claims["client_id"] == "wic"
    assert claims["impi"] == "alice@ims.test"
    assert claims["impu"] == ["sip:alice@ims.test", "tel:+15550100"]
    for name in ("exp", "iat", "nbf", "jti"):
        assert name in claims

    # the gateway verifies with the JWKS fetched over HTTPS
    verifier_rs = remote_verifier(server)
    ident = await verifier_rs.verify(access, scope="register")
    assert (ident.sub, ident.impi, ident.impus) == (
        "alice",
        "alice@ims.test",
        ("sip:alice@ims.test", "tel:+15550100"),
    )
    assert ident.scopes == {"register", "call", "message"}
    assert check_destination(ident, "sip:bob@ims.test", scope="call")

    # introspection by the confidential gateway client
    status, intro, _ = await browser.post_form("/introspect", {"token": access}, auth=gateway_auth())
    assert status == 200 and intro["active"] is True and intro["sub"] == "alice"
    assert intro["impu"] == ["sip:alice@ims.test", "tel:+15550100"]
    status, intro, _ = await browser.post_form("/introspect", {"token": refresh}, auth=gateway_auth())
    assert intro["active"] is True and intro["token_type"] == "refresh_token"
    # the gateway's introspection client (RFC 7662) for opaque tokens
    introspector = Introspector(
        server.base + "/introspect", "gateway", "gateway-secret-0123456789", ssl=server.tls.client
    )
    opaque_verifier = remote_verifier(server, introspector=introspector)
    with pytest.raises(InvalidToken, match="not active"):
        await opaque_verifier.verify("opaque-token-that-was-never-issued")

    # refresh: rotation
    status, fresh = await browser.token(
        {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "wic"}
    )
    assert status == 200, fresh
    assert fresh["refresh_token"] != refresh and fresh["access_token"] != access
    status, intro, _ = await browser.post_form("/introspect", {"token": refresh}, auth=gateway_auth())
    assert intro == {"active": False}  # the old refresh token is spent
    narrowed = {"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"], "client_id": "wic"}
    status, narrow = await browser.token({**narrowed, "scope": "register"})
    assert status == 200 and narrow["scope"] == "register"
    with pytest.raises(InsufficientScope) as info:
        await verifier_rs.verify(narrow["access_token"], scope="call")
    assert info.value.error == "insufficient_scope" and info.value.status == 403

    # revocation (RFC 7009) by the public client: the family goes
    status, _, _ = await browser.post_form("/revoke", {"token": narrow["refresh_token"], "client_id": "wic"})
    assert status == 200
    local = server.service.verifier()
    for token in (access, fresh["access_token"], narrow["access_token"]):
        with pytest.raises(InvalidToken, match="revoked"):
            local.verify_cached(token)
        status, intro, _ = await browser.post_form("/introspect", {"token": token}, auth=gateway_auth())
        assert intro == {"active": False}
    status, err = await browser.token({**narrowed, "refresh_token": narrow["refresh_token"]})
    assert status == 400 and err["error"] == "invalid_grant" and "revoked" in err["error_description"]


async def test_single_sign_on_then_logout(browser: Browser, server: Server) -> None:
    await browser.full_login("alice", "alice-password-1")
    cookies = {c.key: c for c in browser.session.cookie_jar}
    session = cookies["webims_session"]
    assert session["httponly"] and session["secure"] and session["samesite"] == "Strict"
    # a second authorization skips the form: the session is reused
    resp = await browser.authorize(new_verifier())
    assert resp.status == 303 and "code=" in resp.headers["Location"]
    assert resp.headers["Location"].startswith(REDIRECT + "?")
    # prompt=login forces the form
    resp = await browser.authorize(new_verifier(), prompt="login")
    assert resp.status == 200 and "<form" in await resp.text()
    resp = await browser.session.post(browser.url("/logout"), headers={"Origin": server.base})
    assert (await resp.json()) == {"logged_out": True}
    resp = await browser.authorize(new_verifier(), prompt="none")
    assert resp.status == 303 and "error=login_required" in resp.headers["Location"]


async def test_client_credentials(browser: Browser, server: Server) -> None:
    status, body = await browser.token(
        {"grant_type": "client_credentials", "scope": "pool"}, auth=gateway_auth()
    )
    assert status == 200 and "refresh_token" not in body
    _, claims = _parts(body["access_token"])
    assert claims["sub"] == "gateway" and claims["scope"] == "pool" and "impu" not in claims
    status, err = await browser.token(
        {"grant_type": "client_credentials", "scope": "register"}, auth=gateway_auth()
    )
    assert status == 400 and err["error"] == "invalid_scope"
    # a public client cannot use client credentials
    status, err = await browser.token({"grant_type": "client_credentials", "client_id": "wic"})
    assert status == 401 and err["error"] == "invalid_client"


async def test_key_rotation_keeps_old_tokens_valid(browser: Browser, server: Server) -> None:
    old = (await browser.full_login("alice", "alice-password-1"))["access_token"]
    verifier = remote_verifier(server)
    await verifier.verify(old)
    status, body = await browser.admin("POST", "/admin/keys/rotate")
    assert status == 200
    new = (await browser.full_login("alice", "alice-password-1"))["access_token"]
    assert _parts(new)[0]["kid"] == body["kid"] != _parts(old)[0]["kid"]
    # the gateway meets an unknown kid: one JWKS refresh, then both verify
    assert (await verifier.verify(new)).sub == "alice"
    assert (await verifier.verify(old)).sub == "alice"
    resp = await browser.session.get(server.base + "/jwks.json")
    kids = {k["kid"] for k in (await resp.json())["keys"]}
    assert {_parts(old)[0]["kid"], body["kid"]} < kids  # retired, signing and the next one
    assert len(kids) == 3


async def test_errors_are_json_never_tracebacks(browser: Browser, server: Server) -> None:
    resp = await browser.session.get(server.base + "/nope")
    assert resp.status == 404 and resp.content_type == "application/problem+json"
    status, err, _ = await browser.post_form("/token", {"grant_type": "password", "client_id": "wic"})
    assert status == 400 and err["error"] == "unsupported_grant_type"
    resp = await browser.session.post(
        server.base + "/token", data=b"{}", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_request"
    status, err, _ = await browser.post_form(
        "/token", {"grant_type": "authorization_code", "grant_type ": "x"}
    )
    assert status == 401 and err["error"] == "invalid_client"
    resp = await browser.session.get(server.base + "/session")
    body = await resp.json()
    assert resp.status == 401 and body["title"] == "invalid_token" and "Traceback" not in json.dumps(body)
    assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="webims", error="invalid_token"')


async def test_gateway_by_introspection_only(browser: Browser, server: Server) -> None:
    """Seed 004 §6.X.2.2.3 NOTE 2: the gateway sends the token to the server and gets
    the IMPI/IMPU back (RFC 7662); revocation is seen at once (no cache here)."""
    tokens = await browser.full_login("alice", "alice-password-1")
    introspector = Introspector(
        server.base + "/introspect",
        "gateway",
        "gateway-secret-0123456789",
        ssl=server.tls.client,
        cache_seconds=0,
        audience="webims",
    )
    verifier = TokenVerifier([], introspector=introspector, introspect_all=True)
    ident = await verifier.verify(tokens["access_token"], scope="register")
    assert ident.source == "introspection"
    assert (ident.sub, ident.impi, ident.impus) == (
        "alice",
        "alice@ims.test",
        ("sip:alice@ims.test", "tel:+15550100"),
    )
    with pytest.raises(InvalidToken, match="not an access token"):
        await verifier.verify(tokens["refresh_token"])  # a refresh token is no bearer token
    wrong_aud = Introspector(
        server.base + "/introspect",
        "gateway",
        "gateway-secret-0123456789",
        ssl=server.tls.client,
        audience="other",
    )
    with pytest.raises(InvalidToken, match="wrong audience"):
        await TokenVerifier([], introspector=wrong_aud, introspect_all=True).verify(tokens["access_token"])
    bad_client = Introspector(server.base + "/introspect", "gateway", "wrong", ssl=server.tls.client)
    with pytest.raises(InvalidToken, match="answered 401"):
        await TokenVerifier([], introspector=bad_client, introspect_all=True).verify(tokens["access_token"])
    status, _, _ = await browser.post_form("/revoke", {"token": tokens["access_token"], "client_id": "wic"})
    assert status == 200
    with pytest.raises(InvalidToken, match="not active"):
        await verifier.verify(tokens["access_token"])
    assert introspector.requests == 3  # nothing cached with cache_seconds=0


async def test_plain_http_only_on_loopback(server: Server) -> None:
    from webims.auth.server import start_server

    with pytest.raises(ValueError, match="plain HTTP on non-loopback"):
        await start_server(server.service, "0.0.0.0", 0, ssl_context=None)
