"""Helpers for the webims.auth tests: a real HTTPS server on 127.0.0.1 and a
cookie-keeping 'browser' that walks the authorization-code + PKCE flow."""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web

from webims.auth.server import start_server
from webims.auth.service import AuthService, ServiceSettings
from webims.auth.tokens import pkce_s256
from webims.store import Store
from webims.testing.ports import free_port
from webims.transport.tls import ensure_self_signed, server_context

REDIRECT = "https://127.0.0.1:9/callback"
ADMIN = "admin-secret-token"
GATEWAY_ID, GATEWAY_SECRET = "gateway", "gateway-secret-0123456789"


@dataclass
class Tls:
    cert: Path
    key: Path
    server: ssl.SSLContext
    client: ssl.SSLContext


def make_tls(directory: Path) -> Tls:
    cert, key = ensure_self_signed(directory, ("127.0.0.1", "localhost"))
    client = ssl.create_default_context(cafile=str(cert))
    return Tls(cert, key, server_context(cert, key), client)


@dataclass
class Server:
    service: AuthService
    runner: web.AppRunner | None
    base: str
    tls: Tls
    db: Path
    port: int

    async def stop(self, *, close_store: bool = True) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if close_store:
            self.service.store.close()


def settings(port: int, **overrides: Any) -> ServiceSettings:
    base: dict[str, Any] = {
        "issuer": f"https://127.0.0.1:{port}",
        "wic_redirect_uris": (REDIRECT,),
        "admin_token": ADMIN,
        "password_time_cost": 1,
        "password_memory_kib": 1024,
        "max_failures_per_user": 5,
        "max_failures_per_ip": 50,
    }
    base.update(overrides)
    return ServiceSettings(**base)


async def start(db: Path, tls: Tls, *, port: int | None = None, **overrides: Any) -> Server:
    port = port or free_port()
    service = AuthService(Store(db), settings(port, **overrides))
    runner = await start_server(service, "127.0.0.1", port, ssl_context=tls.server)
    return Server(service, runner, f"https://127.0.0.1:{port}", tls, db, port)


def provision(service: AuthService) -> None:
    """alice: fixed identities; bob: pool 'web' (3 IMPUs); a confidential gateway client."""
    service.users.add("alice", "alice-password-1")
    service.users.map("alice", impi="alice@ims.test", impus=["sip:alice@ims.test", "tel:+15550100"])
    service.pools.add("web", members=["sip:web-{1..3}@ims.test"], impi="webpool@ims.test")
    for name in ("bob", "carol", "dave", "erin"):
        service.users.add(name, f"{name}-password-1")
        service.users.map(name, pool="web")
    service.clients.put(
        GATEWAY_ID,
        secret=GATEWAY_SECRET,
        grant_types=("client_credentials",),
        scopes=("pool", "introspect"),
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_verifier() -> str:
    return secrets.token_urlsafe(48)


_INPUT = re.compile(r'<input type="hidden" name="([a-z]+)" value="([^"]*)">')


def hidden_fields(page: str) -> dict[str, str]:
    return {m.group(1): html.unescape(m.group(2)) for m in _INPUT.finditer(page)}


@dataclass
class Browser:
    """A cookie-keeping HTTPS client that does not follow redirects."""

    server: Server
    session: aiohttp.ClientSession = field(init=False)

    def __post_init__(self) -> None:
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            connector=aiohttp.TCPConnector(ssl=self.server.tls.client),
        )

    async def close(self) -> None:
        await self.session.close()

    def url(self, path: str) -> str:
        return self.server.base + path

    async def authorize(self, verifier: str, **params: str) -> aiohttp.ClientResponse:
        query = {
            "response_type": "code",
            "client_id": "wic",
            "redirect_uri": REDIRECT,
            "state": "st-123",
            "code_challenge": pkce_s256(verifier),
            "code_challenge_method": "S256",
            "scope": "register call message",
        }
        query.update(params)
        query = {k: v for k, v in query.items() if v is not None}
        resp = await self.session.get(self.url("/authorize"), params=query, allow_redirects=False)
        await resp.read()
        return resp

    async def submit_login(
        self, page: str, username: str, password: str, **extra: str
    ) -> aiohttp.ClientResponse:
        form = hidden_fields(page)
        form.update(username=username, password=password, **extra)
        resp = await self.session.post(
            self.url("/login"), data=form, allow_redirects=False, headers={"Origin": self.server.base}
        )
        await resp.read()
        return resp

    async def login_for_code(self, username: str, password: str, verifier: str, **params: str) -> str:
        params.setdefault("prompt", "login")  # no single sign-on from an earlier login
        page = await self.authorize(verifier, **params)
        assert page.status == 200, await page.text()
        resp = await self.submit_login(await page.text(), username, password)
        assert resp.status == 303, await resp.text()
        query = parse_qs(urlsplit(resp.headers["Location"]).query)
        assert query["state"] == ["st-123"]
        assert query["iss"] == [self.server.base]
        return query["code"][0]

    async def post_form(
        self, path: str, form: dict[str, str], *, auth: str | None = None, bearer: str | None = None
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        if auth is not None:
            headers["Authorization"] = auth
        resp = await self.session.post(self.url(path), data=form, headers=headers, allow_redirects=False)
        raw = await resp.read()
        body = json.loads(raw) if raw and "json" in resp.content_type else raw.decode()
        return resp.status, body, resp

    async def token(self, form: dict[str, str], **kw: Any) -> tuple[int, Any]:
        status, body, _ = await self.post_form("/token", form, **kw)
        return status, body

    async def code_for_tokens(self, code: str, verifier: str, **extra: str) -> tuple[int, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "wic",
            "code_verifier": verifier,
        }
        form.update(extra)
        return await self.token(form)

    async def full_login(self, username: str, password: str) -> dict[str, Any]:
        verifier = new_verifier()
        code = await self.login_for_code(username, password, verifier)
        status, body = await self.code_for_tokens(code, verifier)
        assert status == 200, body
        return dict(body)

    async def admin(self, method: str, path: str, body: Any = None, token: str = ADMIN) -> tuple[int, Any]:
        resp = await self.session.request(
            method, self.url(path), json=body, headers={"Authorization": f"Bearer {token}"}
        )
        raw = await resp.read()
        return resp.status, (json.loads(raw) if raw and "json" in resp.content_type else raw.decode())


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def gateway_auth() -> str:
    return basic(GATEWAY_ID, GATEWAY_SECRET)
