"""HTTP(S) server of the web authorization function (aiohttp).

Routes (relative to the issuer URL; the app can also be mounted as a sub-app):

=====================================  ==============================================
``GET  /.well-known/oauth-authorization-server``  RFC 8414 metadata
``GET  /jwks.json``                    RFC 7517 JWK Set (signing + retired keys)
``GET  /authorize``                    RFC 6749 §4.1.1 + RFC 7636: login form or code
``GET|POST /login``                    login form (OAuth, or a plain web session)
``POST /logout``                       end the web session (releases its IMPU lease)
``POST /token``                        RFC 6749 §3.2: authorization_code, refresh_token,
                                       client_credentials
``POST /introspect``                   RFC 7662 (confidential clients)
``POST /revoke``                       RFC 7009
``GET  /session``                      the current web session's identity (JSON)
``GET  /session/digest``               HTTP Digest login (RFC 7616) -> session cookie
``POST /pool/release``, ``/pool/renew``  the gateway ends/extends an IMPU lease
``/admin/...``                         admin API (``Authorization: Bearer <admin_token>``)
=====================================  ==============================================

Errors are JSON: RFC 6749 §5.2 bodies on the OAuth endpoints, RFC 9457
``application/problem+json`` elsewhere; HTML pages for browsers on the login
pages. No traceback ever reaches a client. Every response carries
``Cache-Control: no-store``, ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: no-referrer`` and a strict CSP; HTTPS responses carry HSTS.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from webims.sip.digest import DigestServer

from .errors import AuthError, Conflict, NotFound, OAuthError, PoolError, Problem, TokenError
from .service import AuthService

__all__ = ["AUTH_APP", "AuthApp", "PendingRequest", "create_app", "start_server"]

log = logging.getLogger("webims.auth")
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BASE_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
MAX_PENDING = 10_000
PENDING_TTL = 600.0


@dataclass(frozen=True)
class PendingRequest:
    """A validated authorization request waiting for the user to log in."""

    client_id: str
    redirect_uri: str
    state: str | None
    scope: str
    challenge: str
    created: float


def problem(status: int, title: str, detail: str, *, headers: dict[str, str] | None = None) -> web.Response:
    """RFC 9457 problem details response."""
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    return web.Response(status=status, body=body, content_type="application/problem+json", headers=headers)


def oauth_error(exc: OAuthError) -> web.Response:
    """RFC 6749 §5.2 error response."""
    headers = {"Pragma": "no-cache", **exc.headers}
    return web.json_response(exc.body(), status=exc.status, headers=headers)


class AuthApp:
    """Shared state of the HTTP handlers."""

    def __init__(self, service: AuthService, *, secure: bool = True) -> None:
        self.service = service
        self.secure = secure
        settings = service.settings
        self.issuer = settings.issuer
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(settings.issuer))
        self.base_path = urlsplit(settings.issuer).path.rstrip("/")
        self.csrf_key = secrets.token_bytes(32)
        self.pending: dict[str, PendingRequest] = {}
        self.digest = DigestServer(
            settings.digest_realm,
            secrets.token_bytes(32),
            algorithms=settings.digest_algorithms,
            qop=("auth",),
        )

    def url(self, path: str) -> str:
        return self.issuer + path

    def path(self, path: str) -> str:
        """Path (no origin) of one of our endpoints, for forms and the CSS link."""
        return self.base_path + path

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a sync store-using call on the store's thread."""
        return await self.service.store.call(functools.partial(fn, *args, **kwargs))

    async def cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a CPU-heavy call (argon2) on the default worker threads."""
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))

    def now(self) -> float:
        return self.service.clock()

    def add_pending(self, req: PendingRequest) -> str:
        now = req.created
        if len(self.pending) >= MAX_PENDING:
            for key in [k for k, v in self.pending.items() if v.created < now - PENDING_TTL]:
                del self.pending[key]
            while len(self.pending) >= MAX_PENDING:
                del self.pending[next(iter(self.pending))]
        rid = secrets.token_urlsafe(18)
        self.pending[rid] = req
        return rid

    def take_pending(self, rid: str) -> PendingRequest | None:
        req = self.pending.pop(rid, None)
        if req is None or req.created < self.now() - PENDING_TTL:
            return None
        return req


AUTH_APP = web.AppKey("webims_auth_app", AuthApp)


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except OAuthError as exc:
        return oauth_error(exc)
    except TokenError as exc:
        return problem(
            exc.status, exc.error, exc.reason, headers={"WWW-Authenticate": exc.www_authenticate()}
        )
    except Problem as exc:
        return problem(exc.status, exc.title, exc.detail)
    except NotFound as exc:
        return problem(404, "not found", str(exc))
    except Conflict as exc:
        return problem(409, "conflict", str(exc))
    except (PoolError, ValueError) as exc:
        return problem(400, "bad request", str(exc))
    except AuthError as exc:
        return problem(400, "bad request", str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(
            exc.status, exc.reason, exc.text if exc.text and exc.content_type == "text/plain" else exc.reason
        )
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return problem(500, "internal error", "the server failed to handle the request; see its log")


def _security_headers(secure: bool) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        h = response.headers
        h.setdefault("Cache-Control", "no-store")
        h.setdefault("Content-Security-Policy", BASE_CSP)
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "no-referrer"
        h["X-Frame-Options"] = "DENY"
        if secure:
            h["Strict-Transport-Security"] = "max-age=31536000"

    return on_prepare


def create_app(service: AuthService, *, secure: bool = True) -> web.Application:
    """The aiohttp application (mount it, or run it with :func:`start_server`)."""
    from . import http_admin, http_oauth

    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024)
    state = AuthApp(service, secure=secure)
    app[AUTH_APP] = state
    app.on_response_prepare.append(_security_headers(secure))
    http_oauth.add_routes(app)
    http_admin.add_routes(app)
    return app


async def start_server(
    service: AuthService,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
) -> web.AppRunner:
    """Listen on ``host:port``; HTTPS unless ``ssl_context`` is None (loopback only)."""
    from webims.config import is_loopback

    if ssl_context is None and not is_loopback(host):
        raise ValueError(f"plain HTTP on non-loopback host {host!r} is refused: give a TLS context")
    app = create_app(service, secure=ssl_context is not None)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (for ``port=0``)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("server is not listening")
