"""Seed 000 §6.2.2.4.2 variant: form login or HTTP Digest (RFC 7616, SHA-256 and MD5)
at the web server yields a session cookie that the gateway verifies like a token."""

from __future__ import annotations

import pytest
from auth_helpers import Browser, Server

from webims.auth.errors import InsufficientScope, InvalidToken
from webims.auth.sessions import cookie_value
from webims.sip.digest import DigestClient, parse_challenge


def _session_cookie(resp_headers: object) -> str:
    for value in resp_headers.getall("Set-Cookie", []):  # type: ignore[attr-defined]
        if value.startswith("webims_session="):
            return str(value)
    raise AssertionError("no session cookie")


async def test_form_login_session(browser: Browser, server: Server) -> None:
    page = await browser.session.get(browser.url("/login"), params={"next": "/app/"})
    resp = await browser.submit_login(await page.text(), "alice", "alice-password-1")
    assert resp.status == 303 and resp.headers["Location"] == "/app/"
    set_cookie = _session_cookie(resp.headers)
    for attr in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attr in set_cookie
    value = cookie_value(set_cookie.split(";")[0])
    ident = server.service.verify_session(value, scope="call")
    assert ident.source == "session" and ident.sub == "alice" and ident.impi == "alice@ims.test"
    assert ident.impus == ("sip:alice@ims.test", "tel:+15550100")
    resp = await browser.session.get(browser.url("/session"))
    assert (await resp.json())["impu"] == ["sip:alice@ims.test", "tel:+15550100"]
    server.service.users.map("alice", scopes=["register"])
    with pytest.raises(InsufficientScope):
        server.service.verify_session(value, scope="call")
    # logout ends it
    resp = await browser.session.post(browser.url("/logout"), headers={"Origin": server.base})
    assert (await resp.json()) == {"logged_out": True}
    with pytest.raises(InvalidToken, match="logged out"):
        server.service.verify_session(value)
    for junk in (None, "", "not-a-session"):
        with pytest.raises(InvalidToken):
            server.service.verify_session(junk)


async def test_pooled_session_leases_on_first_use_and_releases_on_logout(
    browser: Browser, server: Server
) -> None:
    page = await browser.session.get(browser.url("/login"))
    resp = await browser.submit_login(await page.text(), "bob", "bob-password-1")
    value = cookie_value(_session_cookie(resp.headers).split(";")[0])
    assert server.service.pools.allocations("web") == []  # nothing leased at login
    first = server.service.verify_session(value)
    again = server.service.verify_session(value)  # the WIC reconnects: same lease
    assert first.pool == "web" and first.allocation == again.allocation and first.impus == again.impus
    assert len(server.service.pools.allocations("web")) == 1
    await browser.session.post(browser.url("/logout"), headers={"Origin": server.base})
    assert server.service.pools.allocations("web") == []


async def test_logout_cross_origin_refused(browser: Browser, server: Server) -> None:
    await browser.full_login("alice", "alice-password-1")
    resp = await browser.session.post(browser.url("/logout"), headers={"Origin": "https://evil.example"})
    assert resp.status == 403


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
async def test_http_digest_login(browser: Browser, server: Server, algorithm: str) -> None:
    server.service.users.add("dana", "dana-password-1", digest_realm=server.service.settings.digest_realm)
    server.service.users.map("dana", impi="dana@ims.test", impus=["sip:dana@ims.test"])
    url = browser.url("/session/digest")
    resp = await browser.session.get(url)
    assert resp.status == 401
    challenges = [parse_challenge(v) for v in resp.headers.getall("WWW-Authenticate")]
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]  # RFC 7616 §3.7: preferred first
    chosen = next(c for c in challenges if c.algorithm == algorithm)

    wrong = DigestClient("dana", "wrong").authorize(chosen, "GET", "/session/digest").format()
    resp = await browser.session.get(url, headers={"Authorization": wrong})
    assert resp.status == 401 and "Set-Cookie" not in resp.headers

    creds = DigestClient("dana", "dana-password-1").authorize(chosen, "GET", "/session/digest").format()
    resp = await browser.session.get(url, headers={"Authorization": creds})
    assert resp.status == 200, await resp.text()
    value = cookie_value(_session_cookie(resp.headers).split(";")[0])
    ident = server.service.verify_session(value)
    assert (ident.sub, ident.impus) == ("dana", ("sip:dana@ims.test",))

    replay = await browser.session.get(url, headers={"Authorization": creds})
    assert replay.status == 401 and "Set-Cookie" not in replay.headers  # nc replay refused


async def test_http_digest_needs_provisioned_ha1(browser: Browser, server: Server) -> None:
    url = browser.url("/session/digest")
    challenge = parse_challenge((await browser.session.get(url)).headers.getall("WWW-Authenticate")[0])
    creds = DigestClient("alice", "alice-password-1").authorize(challenge, "GET", "/session/digest").format()
    resp = await browser.session.get(url, headers={"Authorization": creds})
    assert resp.status == 401  # alice was added without --digest
    resp = await browser.session.get(url, headers={"Authorization": 'Digest username="x", realm='})
    assert resp.status == 400 and (await resp.json())["title"] == "bad request"
