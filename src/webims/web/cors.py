"""CORS (WHATWG Fetch §3.2) for the authorization function's public endpoints.

When the WIC is served from another origin than the authorization function, its
``fetch`` to the token endpoint (the PKCE code exchange, refresh, revocation) is
cross-origin.  Those are "simple" requests (POST of
``application/x-www-form-urlencoded`` without custom headers), so no preflight is
needed; the browser only lets the WIC read the answer when it carries
``Access-Control-Allow-Origin`` naming the WIC's origin.  Credentials (cookies)
are never allowed cross-origin.  A preflight (OPTIONS) is answered anyway, for
clients that add headers.

    from webims.auth.server import create_app as create_auth_app
    auth_app = create_auth_app(service)
    allow_cors(auth_app, ["https://wic.example.com"])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from webims.transport import normalize_origin

__all__ = ["CORS_PATHS", "allow_cors"]

#: Endpoints a browser client of the authorization function calls (RFC 8414, 6749, 7009, 7517).
CORS_PATHS = frozenset({
    "/.well-known/oauth-authorization-server",
    "/jwks.json",
    "/token",
    "/revoke",
})
_METHODS = "GET, POST"
_MAX_AGE = "600"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def allow_cors(app: web.Application, origins: Iterable[str], *, paths: Iterable[str] = CORS_PATHS,
               prefix: str = "") -> None:
    """Let ``origins`` (exact, e.g. ``https://wic.example.com:8443``) read ``paths`` of ``app``.

    Call before the application starts.  ``prefix``: where ``app`` is mounted as a
    sub-application (``paths`` are relative to it).
    """
    origins = list(origins)
    prefix = prefix.rstrip("/")
    allowed = {key for o in origins if (key := normalize_origin(o)) is not None}
    bad = [o for o in origins if normalize_origin(o) is None]
    if bad:
        raise ValueError(f"not an origin (scheme://host[:port]): {bad[0]!r}")
    wanted = frozenset(paths)

    def relative(request: web.Request) -> str:
        path = request.path
        return path[len(prefix):] if prefix and path.startswith(prefix + "/") else path

    def origin_ok(request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin is None or normalize_origin(origin) not in allowed:
            return None
        return origin

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
                and relative(request) in wanted):
            origin = origin_ok(request)
            if origin is None:
                return web.Response(status=403, text="CORS origin not allowed\n")
            headers = {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": _METHODS,
                "Access-Control-Allow-Headers": "content-type, authorization",
                "Access-Control-Max-Age": _MAX_AGE,
                "Vary": "Origin",
            }
            return web.Response(status=204, headers=headers)
        return await handler(request)

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        if relative(request) not in wanted:
            return
        response.headers.add("Vary", "Origin")
        origin = origin_ok(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin

    app.middlewares.append(preflight)
    app.on_response_prepare.append(on_prepare)
