"""The client script server's HTTP application (aiohttp).

Routes:

=========================  ===================================================
``GET /``                  the WIC (index.html; also the OAuth redirect URI)
``GET /wic/{name}``        its script (built by esbuild), source map, CSS, icon
``GET /config.json``       the WIC's configuration, with fresh TURN credentials
``GET /metrics``           Prometheus text exposition
``POST /csp-report``       CSP violation reports (counted, logged)
``GET /healthz``           liveness
=========================  ===================================================

Security headers: a strict Content-Security-Policy on the page (scripts and styles
only from this origin, with SRI; ``connect-src`` only this origin, the SIP
WebSocket URL and the authorization function; Trusted Types; no framing; no
forms), HSTS over HTTPS, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
no-referrer`` (the OAuth code never leaks in a Referer), COOP/CORP, and a
Permissions-Policy granting only the microphone.

:func:`create_app` makes a new application, or adds these routes to an existing
one (e.g. the authorization function's, so that the web client, the WAF and the
SIP WebSocket route of the gateway share one origin and port)::

    app = create_app(settings, assets)                       # stand-alone
    mount_websocket(app, gateway.transport, path="/sip")     # the gateway, same port
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from .bundle import Asset, Assets
from .metrics import CONTENT_TYPE, Metrics
from .settings import WebConfig
from .turn import turn_credentials

__all__ = ["WEB_APP", "AuthEndpoints", "WebApp", "create_app", "page_csp"]

log = logging.getLogger("webims.web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: CSP of everything but the page (JSON, assets, errors).
RESOURCE_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PERMISSIONS_POLICY = "microphone=(self), camera=(), geolocation=(), payment=(), usb=(), display-capture=()"
MAX_REPORT_BYTES = 16 * 1024


@dataclass(frozen=True)
class AuthEndpoints:
    """Endpoints of a webims authorization function, from its issuer URL (RFC 8414 §3)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str

    @classmethod
    def from_issuer(cls, issuer: str) -> AuthEndpoints:
        base = issuer.rstrip("/")
        return cls(base, base + "/authorize", base + "/token", base + "/revoke")

    @property
    def origin(self) -> str:
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page_csp(settings: WebConfig) -> str:
    """The page's Content-Security-Policy (CSP Level 3)."""
    connect = ["'self'"]
    if settings.wss_url:
        connect.append(settings.wss_url)
    if settings.auth_issuer and _origin_of(settings.auth_issuer) != settings.origin:
        connect.append(_origin_of(settings.auth_issuer))
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self'",
        "connect-src " + " ".join(connect),
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
        "report-uri /csp-report",
    ])


@dataclass
class WebApp:
    """State of the client script server's handlers."""

    settings: WebConfig
    assets: Assets
    metrics: Metrics
    secure: bool = True
    clock: Callable[[], float] = time.time
    csp: str = field(init=False)

    def __post_init__(self) -> None:
        self.csp = page_csp(self.settings)
        m = self.metrics
        self.requests = m.counter("webims_web_http_requests_total", "HTTP requests answered by the WWSF",
                                  ("handler", "code"))
        self.configs = m.counter("webims_web_config_served_total", "config.json documents served")
        self.turn_issued = m.counter("webims_web_turn_credentials_issued_total",
                                     "TURN REST credentials handed out")
        self.csp_reports = m.counter("webims_web_csp_violations_total", "CSP violation reports received",
                                     ("directive",))
        m.gauge("webims_web_bundle_bytes", "size of the WIC files served").set(self.assets.size)
        m.gauge("webims_web_start_time_seconds", "start time of the WWSF, seconds since the epoch").set(
            int(self.clock()))

    def client_config(self) -> dict[str, Any]:
        """What the WIC needs to run (the body of /config.json)."""
        s = self.settings
        now = self.clock()
        ice: list[dict[str, Any]] = []
        expires_at: int | None = None
        if s.stun_urls:
            ice.append({"urls": list(s.stun_urls)})
        if s.turn_urls:
            user = "wic" + secrets.token_hex(6)
            cred = turn_credentials(s.turn_secret, user, now=now, ttl=s.turn_ttl, urls=s.turn_urls)
            ice.append(cred.ice_server())
            expires_at = cred.expires
            self.turn_issued.inc()
        auth: dict[str, str] | None = None
        if "web-token" in s.login_modes and s.auth_issuer:
            ends = AuthEndpoints.from_issuer(s.auth_issuer)
            auth = {
                "issuer": ends.issuer,
                "authorization_endpoint": ends.authorization_endpoint,
                "token_endpoint": ends.token_endpoint,
                "revocation_endpoint": ends.revocation_endpoint,
                "client_id": s.auth_client_id,
                "redirect_uri": s.origin + "/",
                "scope": s.auth_scope,
            }
        modes = [m for m in s.login_modes if m != "web-token" or auth is not None]
        return {
            "version": 1,
            "ims_domain": s.ims_domain,
            "registrar": f"sip:{s.ims_domain}",
            "wss_url": s.wss_url,
            "login_modes": modes,
            "register_expires": s.register_expires,
            "ice_servers": ice,
            "ice_expires_at": expires_at,
            "auth": auth,
            "server_time": int(now),
        }


WEB_APP = web.AppKey("webims_web_app", WebApp)


def _state(request: web.Request) -> WebApp:
    return request.config_dict[WEB_APP]


def _secure_headers(response: web.StreamResponse, state: WebApp, *, csp: str = RESOURCE_CSP) -> None:
    h = response.headers
    h["Content-Security-Policy"] = csp
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    h["X-Frame-Options"] = "DENY"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    h["Permissions-Policy"] = PERMISSIONS_POLICY
    if state.secure and state.settings.hsts_max_age:
        h["Strict-Transport-Security"] = f"max-age={state.settings.hsts_max_age}"


def _asset_response(request: web.Request, asset: Asset, *, csp: str, cache: str) -> web.Response:
    state = _state(request)
    headers = {"ETag": asset.etag, "Cache-Control": cache}
    if asset.etag in request.headers.get("If-None-Match", ""):
        resp = web.Response(status=304, headers=headers)
    else:
        resp = web.Response(body=asset.body, headers=headers)
        resp.content_type = asset.content_type
        if asset.content_type.startswith("text/") or asset.content_type.endswith(("json", "+xml")):
            resp.charset = "utf-8"
    _secure_headers(resp, state, csp=csp)
    return resp


def _count(name: str, handler: Handler) -> Handler:
    async def counted(request: web.Request) -> web.StreamResponse:
        state = _state(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            state.requests.inc(handler=name, code=str(exc.status))
            raise
        state.requests.inc(handler=name, code=str(response.status))
        return response

    return counted


async def index(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    return _asset_response(request, state.assets.index, csp=state.csp, cache="no-cache")


async def asset(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    found = state.assets.files.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound(text="no such file\n")
    return _asset_response(request, found, csp=RESOURCE_CSP, cache="no-cache")


async def config_json(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    body = state.client_config()
    state.configs.inc()
    resp = web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
    _secure_headers(resp, state)
    return resp


async def metrics_page(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    token = state.settings.metrics_token
    if token:
        given = request.headers.get("Authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
            resp = web.Response(status=401, text="metrics need a Bearer token\n",
                                headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
            _secure_headers(resp, state)
            return resp
    resp = web.Response(body=state.metrics.render().encode(), headers={"Cache-Control": "no-store"})
    resp.headers["Content-Type"] = CONTENT_TYPE
    _secure_headers(resp, state)
    return resp


async def csp_report(request: web.Request) -> web.StreamResponse:
    """CSP violation reports (``application/csp-report``, CSP2 §7.1 format)."""
    state = _state(request)
    if request.content_length is not None and request.content_length > MAX_REPORT_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_REPORT_BYTES, actual_size=request.content_length)
    raw = await request.content.read(MAX_REPORT_BYTES + 1)
    directive = "unknown"
    try:
        report = json.loads(raw).get("csp-report", {})
        value = str(report.get("effective-directive") or report.get("violated-directive") or "unknown")
        directive = value.split()[0][:40] if value.split() else "unknown"
        log.warning("CSP violation: %s blocked %s on %s", directive,
                    str(report.get("blocked-uri", "?"))[:200], str(report.get("document-uri", "?"))[:200])
    except (ValueError, AttributeError):
        directive = "malformed"
    state.csp_reports.inc(directive=directive)
    resp = web.Response(status=204)
    _secure_headers(resp, state)
    return resp


async def healthz(request: web.Request) -> web.StreamResponse:
    resp = web.Response(text="ok\n", headers={"Cache-Control": "no-store"})
    _secure_headers(resp, _state(request))
    return resp


def create_app(
    settings: WebConfig,
    assets: Assets,
    *,
    app: web.Application | None = None,
    metrics: Metrics | None = None,
    secure: bool = True,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The WWSF application; with ``app``, its routes are added to that application.

    ``settings`` must be resolved (origin, ``wss_url`` and ``auth_issuer`` filled in:
    see :func:`webims.web.run.resolve_settings`).  ``metrics`` is the registry rendered
    at /metrics (share it with the components on the same server).
    """
    own = app is None
    target = web.Application(client_max_size=64 * 1024) if app is None else app
    state = WebApp(settings, assets, metrics or Metrics(), secure=secure, clock=clock)
    target[WEB_APP] = state
    router = target.router
    router.add_get("/", _count("index", index))
    router.add_get("/wic/{name}", _count("asset", asset))
    router.add_get("/config.json", _count("config", config_json))
    if settings.metrics:
        router.add_get("/metrics", _count("metrics", metrics_page))
    router.add_post("/csp-report", _count("csp_report", csp_report))
    router.add_get("/healthz", healthz)
    if own:
        async def defaults(request: web.Request, response: web.StreamResponse) -> None:
            if "Content-Security-Policy" not in response.headers:  # 404s and other errors
                _secure_headers(response, state)

        target.on_response_prepare.append(defaults)
    return target
