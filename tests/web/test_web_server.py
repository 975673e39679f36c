"""The client script server over real HTTPS on loopback: security headers and CSP,
Subresource Integrity, /config.json with TURN REST credentials, metrics, CSP
reports, CORS for the authorization function, settings, and ``webims serve web``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from wictest import ROOT, free_socket, web_stack

from webims.auth.server import create_app as create_auth_app
from webims.auth.service import AuthService, ServiceSettings
from webims.auth.tokens import pkce_s256
from webims.config import ConfigError, load_config
from webims.store import Store
from webims.transport import server_context
from webims.web import allow_cors, resolve_settings
from webims.web.app import page_csp
from webims.web.bundle import Assets, BuildError, build_assets
from webims.web.metrics import Metrics
from webims.web.settings import WebConfig
from webims.web.turn import turn_credentials

TURN_SECRET = "north-wind-turn-secret"


def client_ssl(certs: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs[0]))


def directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


async def test_page_is_served_with_strict_csp_and_security_headers(
        certs: tuple[Path, Path], assets: Assets) -> None:
    issuer = "https://127.0.0.1:9443"
    async with web_stack(certs, assets, auth_issuer=issuer,
                         login_modes=("web-token", "ims-digest")) as stack, \
            aiohttp.ClientSession() as http, http.get(stack.origin + "/", ssl=client_ssl(certs)) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        page = await resp.text()
        h = resp.headers
    csp = directives(h["Content-Security-Policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert "'unsafe-inline'" not in h["Content-Security-Policy"]
    assert "'unsafe-eval'" not in h["Content-Security-Policy"]
    # connect-src: this origin (config.json), its SIP WebSocket, the authorization server, nothing else
    assert csp["connect-src"] == ["'self'", stack.wss_url, issuer]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'none'"]
    assert csp["require-trusted-types-for"] == ["'script'"] and csp["trusted-types"] == ["'none'"]
    assert h["Strict-Transport-Security"] == "max-age=31536000"
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "no-referrer"
    assert h["X-Frame-Options"] == "DENY"
    assert h["Cross-Origin-Opener-Policy"] == "same-origin"
    assert h["Permissions-Policy"].startswith("microphone=(self), camera=()")
    # no inline script or style in the page; external ones carry SRI hashes of what is served
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and "<style" not in page and " style=" not in page
    js = assets.files["wic.js"].body
    css = assets.files["wic.css"].body
    assert f'integrity="sha384-{base64.b64encode(hashlib.sha384(js).digest()).decode()}"' in page
    assert f'integrity="sha384-{base64.b64encode(hashlib.sha384(css).digest()).decode()}"' in page
    assert "__WIC_" not in page


async def test_assets_have_types_etags_and_strict_headers(certs: tuple[Path, Path], assets: Assets) -> None:
    async with web_stack(certs, assets) as stack, aiohttp.ClientSession() as http:
        tls = client_ssl(certs)
        async with http.get(stack.origin + "/wic/wic.js", ssl=tls) as resp:
            assert resp.status == 200 and resp.content_type == "text/javascript"
            assert await resp.read() == assets.files["wic.js"].body
            etag = resp.headers["ETag"]
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert directives(resp.headers["Content-Security-Policy"])["default-src"] == ["'none'"]
        async with http.get(stack.origin + "/wic/wic.js", ssl=tls, headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
        async with http.get(stack.origin + "/wic/wic.css", ssl=tls) as resp:
            assert resp.content_type == "text/css"
        async with http.get(stack.origin + "/wic/favicon.svg", ssl=tls) as resp:
            assert resp.content_type == "image/svg+xml"
        async with http.get(stack.origin + "/wic/../pyproject.toml", ssl=tls) as resp:
            assert resp.status == 404
        async with http.get(stack.origin + "/nothing-here", ssl=tls) as resp:
            assert resp.status == 404  # even errors carry the headers
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert "Strict-Transport-Security" in resp.headers


async def test_config_json_hands_out_valid_turn_rest_credentials(
        certs: tuple[Path, Path], assets: Assets) -> None:
    async with web_stack(
        certs, assets, ims_domain="ims.test", stun_urls=("stun:127.0.0.1:3478",),
        turn_urls=("turn:127.0.0.1:3478?transport=udp", "turns:127.0.0.1:5349"),
        turn_secret=TURN_SECRET, turn_ttl=1200, auth_issuer="https://127.0.0.1:9443",
        login_modes=("web-token", "ims-digest", "ims-aka"),
    ) as stack, aiohttp.ClientSession() as http:
        before = int(time.time())
        async with http.get(stack.origin + "/config.json", ssl=client_ssl(certs)) as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "no-store"
            doc = await resp.json()
        async with http.get(stack.origin + "/config.json", ssl=client_ssl(certs)) as resp:
            second = await resp.json()
        after = int(time.time())
    assert doc["wss_url"] == stack.wss_url
    assert doc["ims_domain"] == "ims.test" and doc["registrar"] == "sip:ims.test"
    assert doc["login_modes"] == ["web-token", "ims-digest", "ims-aka"]
    assert doc["auth"] == {
        "issuer": "https://127.0.0.1:9443",
        "authorization_endpoint": "https://127.0.0.1:9443/authorize",
        "token_endpoint": "https://127.0.0.1:9443/token",
        "revocation_endpoint": "https://127.0.0.1:9443/revoke",
        "client_id": "wic",
        "redirect_uri": stack.origin + "/",
        "scope": "register call message",
    }
    stun, turn = doc["ice_servers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    assert turn["urls"] == ["turn:127.0.0.1:3478?transport=udp", "turns:127.0.0.1:5349"]
    expiry_text, _, user = turn["username"].partition(":")
    expiry = int(expiry_text)
    assert before + 1200 <= expiry <= after + 1200 and doc["ice_expires_at"] == expiry
    assert user  # an opaque per-request id
    # coturn use-auth-secret: credential = base64(HMAC-SHA1(secret, username)), computed independently
    mac = hmac.new(TURN_SECRET.encode(), turn["username"].encode(), "sha1").digest()
    assert turn["credential"] == base64.b64encode(mac).decode()
    assert second["ice_servers"][1]["username"] != turn["username"]  # fresh per WIC
    assert stack.metrics.render().count("webims_web_turn_credentials_issued_total 2") == 1


def test_turn_credentials_known_answer() -> None:
    """draft-uberti-behave-turn-rest-00 §2.2 shape, checked against a fixed HMAC."""
    cred = turn_credentials("secret", "alice", now=1_700_000_000.7, ttl=86_400)
    assert cred.username == "1700086400:alice" and cred.expires == 1_700_086_400
    # printf '1700086400:alice' | openssl dgst -sha1 -hmac secret -binary | base64
    assert cred.password == base64.b64encode(
        hmac.new(b"secret", b"1700086400:alice", hashlib.sha1).digest()).decode()
    with pytest.raises(ValueError):
        turn_credentials("secret", "a:b", now=0, ttl=60)


async def test_config_without_auth_offers_no_web_login(certs: tuple[Path, Path], assets: Assets) -> None:
    async with web_stack(certs, assets, login_modes=("web-token", "ims-digest")) as stack, \
            aiohttp.ClientSession() as http, \
            http.get(stack.origin + "/config.json", ssl=client_ssl(certs)) as resp:
        doc = await resp.json()
    assert doc["auth"] is None and doc["login_modes"] == ["ims-digest"]
    assert doc["ice_servers"] == [] and doc["ice_expires_at"] is None


async def test_metrics_csp_reports_and_token(certs: tuple[Path, Path], assets: Assets) -> None:
    async with web_stack(certs, assets, metrics_token="scrape-me") as stack, aiohttp.ClientSession() as http:
        tls = client_ssl(certs)
        for _ in range(3):
            async with http.get(stack.origin + "/", ssl=tls) as resp:
                assert resp.status == 200
        report = {"csp-report": {"document-uri": stack.origin + "/", "effective-directive": "script-src-elem",
                                 "blocked-uri": "inline"}}
        async with http.post(stack.origin + "/csp-report", ssl=tls, data=json.dumps(report),
                             headers={"Content-Type": "application/csp-report"}) as resp:
            assert resp.status == 204
        async with http.post(stack.origin + "/csp-report", ssl=tls, data=b"not json") as resp:
            assert resp.status == 204
        async with http.get(stack.origin + "/metrics", ssl=tls) as resp:
            assert resp.status == 401
        async with http.get(stack.origin + "/metrics", ssl=tls,
                            headers={"Authorization": "Bearer scrape-me"}) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            text = await resp.text()
    assert "# TYPE webims_web_http_requests_total counter" in text
    assert 'webims_web_http_requests_total{handler="index",code="200"} 3' in text
    assert 'webims_web_http_requests_total{handler="metrics",code="401"} 1' in text
    assert 'webims_web_csp_violations_total{directive="script-src-elem"} 1' in text
    assert 'webims_web_csp_violations_total{directive="malformed"} 1' in text
    assert f"webims_web_bundle_bytes {assets.size}" in text


def test_metrics_text_format() -> None:
    metrics = Metrics()
    c = metrics.counter("x_total", "a counter", ("path",))
    c.inc(path='a"b\\c\nd')
    c.inc(2, path="plain")
    g = metrics.gauge("y", "a gauge", callback=lambda: 1.5)
    assert g.value() == 1.5
    text = metrics.render()
    assert 'x_total{path="a\\"b\\\\c\\nd"} 1' in text
    assert 'x_total{path="plain"} 2' in text
    assert "# TYPE y gauge\ny 1.5" in text
    with pytest.raises(ValueError):
        c.inc(-1, path="plain")
    with pytest.raises(ValueError):
        c.inc(path="a", other="b")
    with pytest.raises(ValueError):
        metrics.counter("bad name", "")
    assert metrics.counter("x_total", "again", ("path",)) is c


async def test_cors_lets_the_wic_origin_read_the_token_endpoint(
        tmp_path: Path, certs: tuple[Path, Path]) -> None:
    """The WIC on one origin, the authorization function on another: the code exchange
    answer carries Access-Control-Allow-Origin for the WIC's origin only."""
    wic = "https://127.0.0.1:8443"
    sock = free_socket()
    port = sock.getsockname()[1]
    issuer = f"https://127.0.0.1:{port}"
    service = AuthService(Store(tmp_path / "auth.sqlite3"), ServiceSettings(
        issuer=issuer, wic_redirect_uris=(wic + "/",), password_time_cost=1, password_memory_kib=1024))
    app = create_auth_app(service)
    allow_cors(app, [wic])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=server_context(*certs)).start()
    try:
        async with aiohttp.ClientSession() as http:
            tls = client_ssl(certs)
            form = {"grant_type": "authorization_code", "code": "nope", "client_id": "wic",
                    "redirect_uri": wic + "/", "code_verifier": "x" * 43}
            async with http.post(issuer + "/token", data=form, ssl=tls, headers={"Origin": wic}) as resp:
                assert resp.status == 400 and (await resp.json())["error"] == "invalid_grant"
                assert resp.headers["Access-Control-Allow-Origin"] == wic
                assert "Origin" in resp.headers.getall("Vary")
                assert "Access-Control-Allow-Credentials" not in resp.headers
            async with http.post(issuer + "/token", data=form, ssl=tls,
                                 headers={"Origin": "https://evil.example"}) as resp:
                assert "Access-Control-Allow-Origin" not in resp.headers
            async with http.get(issuer + "/jwks.json", ssl=tls, headers={"Origin": wic}) as resp:
                assert resp.headers["Access-Control-Allow-Origin"] == wic
            async with http.get(issuer + "/login", ssl=tls, headers={"Origin": wic}) as resp:
                assert "Access-Control-Allow-Origin" not in resp.headers  # only the listed endpoints
            preflight = {"Origin": wic, "Access-Control-Request-Method": "POST",
                         "Access-Control-Request-Headers": "content-type"}
            async with http.options(issuer + "/token", ssl=tls, headers=preflight) as resp:
                assert resp.status == 204
                assert resp.headers["Access-Control-Allow-Origin"] == wic
                assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            async with http.options(issuer + "/token", ssl=tls,
                                    headers={**preflight, "Origin": "https://evil.example"}) as resp:
                assert resp.status == 403
        assert pkce_s256("x" * 43)  # the verifier shape the WIC sends is a valid one
    finally:
        await runner.cleanup()
        service.store.close()
    with pytest.raises(ValueError):
        allow_cors(web.Application(), ["not an origin"])


def test_csp_names_only_what_is_configured() -> None:
    same = WebConfig(public_url="https://wic.example", wss_url="wss://wic.example/sip",
                     auth_issuer="https://wic.example/auth")
    assert "connect-src 'self' wss://wic.example/sip;" in page_csp(same)
    other = WebConfig(public_url="https://wic.example", wss_url="wss://gw.example:8443/sip",
                      auth_issuer="https://waf.example/oauth")
    assert "connect-src 'self' wss://gw.example:8443/sip https://waf.example;" in page_csp(other)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_settings_are_validated_and_derived(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "ok.toml", """
[web]
port = 9443
ims_domain = "ims.example.net"
turn_urls = ["turn:turn.example.net:3478"]
turn_secret = "s3cret"
[auth]
issuer = "https://waf.example.net"
[transport]
ws_path = "/ws"
"""), environ={})
    settings = resolve_settings(config)
    assert settings.origin == "https://127.0.0.1:9443" and settings.public_url == settings.origin
    assert settings.wss_url == "wss://127.0.0.1:9443/ws"
    assert settings.auth_issuer == "https://waf.example.net"
    assert "s3cret" not in "\n".join(config.summary())
    bad = {
        'turn_urls = ["turn:x.example"]': "web.turn_secret",
        'turn_urls = ["http://x.example"]': "web.turn_urls",
        'login_modes = ["password"]': "web.login_modes",
        'wss_url = "ws://gw.example.net/sip"': "web.wss_url",
        'auth_issuer = "https://waf.example.net/"': "web.auth_issuer",
        'public_url = "http://wic.example.net"': "web.public_url",
        "register_expires = 5": "web.register_expires",
        'bundle = "missing.js"': "web.bundle",
    }
    for line, key in bad.items():
        with pytest.raises(ConfigError, match=re.escape(key)):
            load_config(write(tmp_path / "bad.toml", f"[web]\n{line}\n"), environ={})
    with pytest.raises(ConfigError, match=r"web\.port"):
        load_config(write(tmp_path / "env.toml", ""), environ={"WEBIMS_WEB__PORT": "http"})


def test_build_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"index\.html"):
        build_assets(tmp_path)
    (tmp_path / "index.html").write_text("<!doctype html>")
    with pytest.raises(BuildError, match="entry point"):
        build_assets(tmp_path, esbuild=ROOT / "node_modules" / ".bin" / "esbuild")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.js").write_text("import x from './missing.js';\n")
    with pytest.raises(BuildError, match="esbuild failed"):
        build_assets(tmp_path, esbuild=ROOT / "node_modules" / ".bin" / "esbuild")
    prebuilt = write(tmp_path / "wic.js", "console.log(1);\n")
    with pytest.raises(BuildError, match="stylesheet"):
        build_assets(tmp_path, bundle=prebuilt)
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "wic.css").write_text("body{}")
    built = build_assets(tmp_path, bundle=prebuilt)
    assert built.files["wic.js"].body == b"console.log(1);\n" and "wic.js.map" not in built.files


def test_webims_serve_web_builds_and_serves(tmp_path: Path) -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    cfg = write(tmp_path / "webims.toml", f"""
[web]
port = {port}
login_modes = ["ims-digest"]
[state]
dir = "{tmp_path / 'state'}"
""")
    exe = Path(sys.executable).with_name("webims")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([str(exe), "serve", "web", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"WIC at https://127.0.0.1:{port}/" in line, line
        assert f"wss://127.0.0.1:{port}/sip" in line
        context = ssl.create_default_context(cafile=str(tmp_path / "state" / "tls" / "cert.pem"))
        import urllib.request

        with urllib.request.urlopen(f"https://127.0.0.1:{port}/config.json", context=context,
                                    timeout=30) as resp:
            doc = json.loads(resp.read())
        assert doc["login_modes"] == ["ims-digest"] and doc["wss_url"] == f"wss://127.0.0.1:{port}/sip"
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/wic/wic.js", context=context,
                                    timeout=30) as resp:
            assert b"JsSIP" in resp.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


async def test_wwsf_routes_share_one_app_with_the_authorization_function(
        tmp_path: Path, certs: tuple[Path, Path], assets: Assets) -> None:
    """The demo's layout: WIC, WAF (and the gateway's /sip) on one origin and port."""
    sock = free_socket()
    origin = f"https://127.0.0.1:{sock.getsockname()[1]}"
    service = AuthService(Store(tmp_path / "auth.sqlite3"), ServiceSettings(
        issuer=origin, wic_redirect_uris=(origin + "/",), password_time_cost=1, password_memory_kib=1024))
    app = create_auth_app(service)
    settings = WebConfig(public_url=origin, wss_url=f"wss://127.0.0.1:{sock.getsockname()[1]}/sip",
                         auth_issuer=origin, login_modes=("web-token", "ims-digest"))
    from webims.web import create_app

    assert create_app(settings, assets, app=app) is app
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=server_context(*certs)).start()
    try:
        async with aiohttp.ClientSession() as http:
            tls = client_ssl(certs)
            async with http.get(origin + "/", ssl=tls) as resp:
                assert resp.status == 200
                csp = directives(resp.headers["Content-Security-Policy"])
                assert csp["connect-src"] == ["'self'", settings.wss_url]  # the WAF is 'self'
                assert resp.headers["Cache-Control"] == "no-cache"
            async with http.get(origin + "/config.json", ssl=tls) as resp:
                doc = await resp.json()
                assert doc["auth"]["token_endpoint"] == origin + "/token"
            async with http.get(origin + "/.well-known/oauth-authorization-server", ssl=tls) as resp:
                assert (await resp.json())["issuer"] == origin
            async with http.get(origin + "/authorize", ssl=tls, params={
                    "response_type": "code", "client_id": "wic", "redirect_uri": origin + "/",
                    "code_challenge": pkce_s256("v" * 43), "code_challenge_method": "S256"}) as resp:
                assert resp.status == 200 and "Sign in" in await resp.text()
    finally:
        await runner.cleanup()
        service.store.close()
