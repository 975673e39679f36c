"""Admin API over HTTPS (admin-token protected), config section, `serve auth`."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest
from auth_helpers import Browser, Server, free_port

from webims.auth.config import AuthConfig
from webims.auth.run import build_service, run, ssl_context_for
from webims.config import ConfigError, load_config


async def test_admin_api_needs_the_token(browser: Browser) -> None:
    status, body = await browser.admin("GET", "/admin/users", token="wrong")
    assert status == 401 and body["title"] == "invalid_token"
    resp = await browser.session.get(browser.url("/admin/pools"))
    assert resp.status == 401 and "Bearer" in resp.headers["WWW-Authenticate"]


async def test_admin_provisioning_and_allocations(browser: Browser, server: Server) -> None:
    status, user = await browser.admin(
        "POST", "/admin/users", {"username": "frank", "password": "frank-pw-1"}
    )
    assert status == 201 and user["username"] == "frank"
    status, body = await browser.admin("POST", "/admin/users", {"username": "frank", "password": "x"})
    assert status == 409 and "exists already" in body["detail"]
    status, pool = await browser.admin(
        "POST",
        "/admin/pools",
        {"name": "lab", "members": ["sip:lab-{1..2}@ims.test"], "impi": "lab@ims.test"},
    )
    assert status == 201 and pool["capacity"] == 2 and pool["free"] == 2
    status, body = await browser.admin("POST", "/admin/pools", {"name": "bad", "members": ["sip:x-{5..1}@t"]})
    assert status == 400 and "end is below the start" in body["detail"]
    status, mapped = await browser.admin(
        "PUT", "/admin/users/frank/mapping", {"pool": "lab", "deny": ["international"]}
    )
    assert status == 200 and mapped["pool"] == "lab" and mapped["dest"] == {"deny": ["international"]}
    status, body = await browser.admin("PUT", "/admin/users/ghost/mapping", {"pool": "lab"})
    assert status == 404

    tokens = await browser.full_login("frank", "frank-pw-1")
    ident = server.service.verifier().verify_cached(tokens["access_token"])
    status, shown = await browser.admin("GET", "/admin/pools/lab")
    assert shown["allocated"] == 1 and shown["allocations"][0]["holder"] == "frank"
    status, allocations = await browser.admin("GET", "/admin/allocations")
    assert [a["id"] for a in allocations] == [ident.allocation]
    status, body = await browser.admin("DELETE", "/admin/pools/lab")
    assert status == 409 and "active allocation" in body["detail"]
    status, body = await browser.admin("POST", "/admin/pools/lab/release", {"impu": ident.impus[0]})
    assert status == 200 and body["released"][0]["holder"] == "frank"
    status, shown = await browser.admin("GET", "/admin/pools/lab")
    assert shown["allocated"] == 0
    status, _ = await browser.admin("DELETE", "/admin/pools/lab")
    assert status == 204
    status, body = await browser.admin("GET", "/admin/pools/lab")
    assert status == 404


async def test_gateway_renews_and_releases_with_its_client_token(browser: Browser, server: Server) -> None:
    tokens = await browser.full_login("bob", "bob-password-1")
    alc = server.service.verifier().verify_cached(tokens["access_token"]).allocation
    from auth_helpers import gateway_auth

    _status, body = await browser.token(
        {"grant_type": "client_credentials", "scope": "pool"}, auth=gateway_auth()
    )
    gw = body["access_token"]
    headers = {"Authorization": f"Bearer {gw}"}
    resp = await browser.session.post(
        browser.url("/pool/renew"), json={"allocation": alc, "lease": 3600}, headers=headers
    )
    renewed = await resp.json()
    assert resp.status == 200 and renewed["expires_at"] > server.service.clock() + 3000
    # the WIC's own token may release but not renew
    wic = {"Authorization": f"Bearer {tokens['access_token']}"}
    resp = await browser.session.post(browser.url("/pool/renew"), json={"allocation": alc}, headers=wic)
    assert resp.status == 401
    resp = await browser.session.post(browser.url("/pool/release"), json={"allocation": alc}, headers=headers)
    assert (await resp.json()) == {"released": True}
    resp = await browser.session.post(browser.url("/pool/renew"), json={"allocation": alc}, headers=headers)
    assert resp.status == 404 and "not active" in (await resp.json())["detail"]


def test_config_section(tmp_path: Path) -> None:
    conf = tmp_path / "webims.toml"
    conf.write_text(
        '[auth]\nport = 9443\nadmin_token = "s3cret"\nwic_redirect_uris = ["https://w.example/"]\n'
    )
    cfg = load_config(conf, environ={"WEBIMS_AUTH__LOGIN__MAX_FAILURES_PER_USER": "3"}).get(AuthConfig)
    assert cfg.issuer_url == "https://127.0.0.1:9443" and cfg.login.max_failures_per_user == 3
    bad = {
        '[auth]\nplain_http = true\nhost = "192.0.2.1"\n': "auth.plain_http",
        '[auth]\nwic_redirect_uris = ["http://w.example/"]\n': "auth.wic_redirect_uris",
        '[auth]\nissuer = "https://x.example/"\n': "auth.issuer",
        '[auth]\nproviders_file = "missing.toml"\n': "auth.providers_file",
        '[auth]\nhome_country_code = "+1"\n': "auth.home_country_code",
    }
    for text, key in bad.items():
        conf.write_text(text)
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(conf, environ={})


async def test_serve_auth_https_with_self_signed_certificate(tmp_path: Path) -> None:
    port = free_port()
    conf = tmp_path / "webims.toml"
    conf.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[auth]\nport = {port}\n')
    config = load_config(conf, environ={})
    service = build_service(config)
    ctx = ssl_context_for(config)
    assert ctx is not None and (tmp_path / "state" / "tls" / "cert.pem").is_file()
    stop = asyncio.Event()
    task = asyncio.create_task(run(service, config.get(AuthConfig), ctx, stop))
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "state" / "tls" / "cert.pem"))
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    resp = await session.get(
                        f"https://127.0.0.1:{port}/.well-known/oauth-authorization-server", ssl=client_ctx
                    )
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            assert (await resp.json())["issuer"] == f"https://127.0.0.1:{port}"
    finally:
        stop.set()
        await task
        service.store.close()
    assert (tmp_path / "state" / "webims.sqlite3").is_file()
