"""OAuth 2.0 endpoints, login pages and web sessions (see :mod:`webims.auth.server`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Any, NoReturn
from urllib.parse import unquote_plus, urlsplit

from aiohttp import web
from multidict import MultiMapping
from yarl import URL

from webims.sip.digest import DigestError, VerifyStatus, parse_credentials

from .errors import OAuthError, Problem
from .http_admin import is_admin
from .identity import SCOPES
from .pages import CSS, error_page, login_page
from .server import AUTH_APP, AuthApp, PendingRequest, problem
from .sessions import SESSION_COOKIE, cookie_value, session_cookie
from .tokens import check_challenge
from .users import Client, User

__all__ = ["add_routes"]

CSRF_COOKIE = "webims_csrf"
_DUMMY_HA1 = "0" * 64


def _state(request: web.Request) -> AuthApp:
    return request.app[AUTH_APP]


def _html(body: bytes, status: int = 200, *, csp: str | None = None) -> web.Response:
    headers = {"Content-Security-Policy": csp} if csp else None
    return web.Response(body=body, status=status, content_type="text/html", charset="utf-8", headers=headers)


def _page_csp(extra_form_origin: str | None = None) -> str:
    form = "'self'" + (f" {extra_form_origin}" if extra_form_origin else "")
    return (
        f"default-src 'none'; style-src 'self'; img-src 'self'; form-action {form}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def _origin_of(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def _single(params: MultiMapping[Any]) -> dict[str, str]:
    """RFC 6749 §3.1/§3.2: parameters MUST NOT be repeated; values must be text."""
    out: dict[str, str] = {}
    for key in params:
        values = params.getall(key)
        if len(values) > 1:
            raise OAuthError("invalid_request", f"parameter {key!r} is repeated")
        if not isinstance(values[0], str):
            raise OAuthError("invalid_request", f"parameter {key!r} is not text")
        out[key] = values[0]
    return out


async def _form(request: web.Request) -> dict[str, str]:
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "expected an application/x-www-form-urlencoded body")
    return _single(await request.post())


def _required(form: dict[str, str], key: str) -> str:
    """A parameter the request must carry, non-empty (RFC 6749 §5.2 ``invalid_request``)."""
    value = form.get(key)
    if not value:
        raise OAuthError("invalid_request", f"{key} is missing")
    return value


def _check_origin(request: web.Request, state: AuthApp) -> None:
    """Cross-site form posts are refused (CSRF defence in depth beside the token)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null" and origin != state.origin:
        raise Problem(403, "forbidden", f"cross-origin request from {origin} refused")
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise Problem(403, "forbidden", "cross-site request refused")


def _csrf_field(state: AuthApp, cookie: str, rid: str) -> str:
    mac = hmac.new(state.csrf_key, f"{cookie}|{rid}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _safe_next(path: str | None, default: str) -> str:
    """Only same-origin relative paths: no scheme, no '//' or '/\\' (open redirect defence)."""
    if not path or not path.startswith("/") or path.startswith(("//", "/\\")) or "\\" in path:
        return default
    if urlsplit(path).scheme or urlsplit(path).netloc or any(ord(c) < 0x21 for c in path):
        return default
    return path


async def _client_auth(request: web.Request, form: dict[str, str], *, allow_public: bool) -> Client:
    """RFC 6749 §2.3.1: client_secret_basic or client_secret_post; public clients send client_id."""
    state = _state(request)
    unauthorized = {"WWW-Authenticate": 'Basic realm="webims"'}
    header = request.headers.get("Authorization", "")
    client_id = secret = None
    if header[:6].lower() == "basic ":
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError(
                "invalid_client", "malformed Basic credentials", status=401, headers=unauthorized
            ) from None
        cid, sep, sec = raw.partition(":")
        if not sep:
            raise OAuthError(
                "invalid_client", "malformed Basic credentials", status=401, headers=unauthorized
            )
        client_id, secret = unquote_plus(cid), unquote_plus(sec)
        if "client_secret" in form:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        if form.get("client_id", client_id) != client_id:
            raise OAuthError("invalid_request", "client_id does not match the authenticated client")
    elif "client_secret" in form:
        client_id, secret = form.get("client_id"), form["client_secret"]
    else:
        client_id = form.get("client_id")
    if not client_id:
        raise OAuthError("invalid_client", "client authentication required", status=401, headers=unauthorized)
    if secret is not None:
        client = await state.db(state.service.clients.authenticate, client_id, secret)
        if client is None:
            raise OAuthError(
                "invalid_client", "client authentication failed", status=401, headers=unauthorized
            )
        return client
    found = await state.db(state.service.clients.find, client_id)
    if found is None:
        raise OAuthError("invalid_client", f"unknown client {client_id!r}", status=401, headers=unauthorized)
    if not found.public or not allow_public:
        raise OAuthError("invalid_client", "client authentication required", status=401, headers=unauthorized)
    return found


# ---------------------------------------------------------------------------- metadata


async def metadata(request: web.Request) -> web.Response:
    """RFC 8414 §2 authorization server metadata."""
    s = _state(request)
    return web.json_response(
        {
            "issuer": s.issuer,
            "authorization_endpoint": s.url("/authorize"),
            "token_endpoint": s.url("/token"),
            "jwks_uri": s.url("/jwks.json"),
            "introspection_endpoint": s.url("/introspect"),
            "revocation_endpoint": s.url("/revoke"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "scopes_supported": [*SCOPES, "pool"],
            "authorization_response_iss_parameter_supported": True,
            "access_token_signing_alg_values_supported": [s.service.keys.alg],
        },
        headers={"Cache-Control": "max-age=300"},
    )


async def jwks(request: web.Request) -> web.Response:
    s = _state(request)
    doc = await s.db(s.service.keys.jwks)
    return web.json_response(doc, headers={"Cache-Control": "max-age=60"})


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(body=CSS, content_type="text/css", headers={"Cache-Control": "max-age=3600"})


# ---------------------------------------------------------------------------- authorize + login


def _redirect(uri: str, params: dict[str, str]) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location=str(URL(uri).update_query(params)))


def _error_redirect(
    redirect_uri: str, state: AuthApp, exc: OAuthError, client_state: str | None
) -> web.HTTPSeeOther:
    """RFC 6749 §4.1.2.1: errors after the redirect URI was validated go back to the client."""
    params = {"error": exc.error, "error_description": exc.description, "iss": state.issuer}
    if client_state is not None:
        params["state"] = client_state
    return _redirect(redirect_uri, params)


async def _complete(state: AuthApp, pending: PendingRequest, user: User, client: Client) -> NoReturn:
    """Issue the code and send the browser back (RFC 6749 §4.1.2, RFC 9207 iss)."""
    try:
        if user.pool is None and not user.impus:
            raise OAuthError("access_denied", f"user {user.username!r} is not mapped to any IMS identity")
        scope = state.service.tokens.grant_scope(client, user, pending.scope or None)
    except OAuthError as exc:
        raise _error_redirect(pending.redirect_uri, state, exc, pending.state) from None
    code = await state.db(
        state.service.tokens.create_code,
        client_id=client.client_id,
        redirect_uri=pending.redirect_uri,
        sub=user.username,
        scope=scope,
        challenge=pending.challenge,
    )
    params = {"code": code, "iss": state.issuer}
    if pending.state is not None:
        params["state"] = pending.state
    raise _redirect(pending.redirect_uri, params)


def _login_form(
    request: web.Request,
    state: AuthApp,
    *,
    rid: str = "",
    next_path: str = "",
    client: Client | None = None,
    form_origin: str | None = None,
    username: str = "",
    error: str = "",
    status: int = 200,
) -> web.Response:
    cookie = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    body = login_page(
        action=state.path("/login"),
        css_href=state.path("/static/auth.css"),
        csrf=_csrf_field(state, cookie, rid),
        request_id=rid,
        next_path=next_path,
        client_id=client.client_id if client else "",
        username=username,
        error=error,
    )
    resp = _html(body, status, csp=_page_csp(form_origin))
    resp.set_cookie(
        CSRF_COOKIE,
        cookie,
        path=state.path("/login") or "/",
        httponly=True,
        secure=state.secure,
        samesite="Strict",
        max_age=3600,
    )
    return resp


async def authorize(request: web.Request) -> web.StreamResponse:
    """RFC 6749 §4.1.1 authorization request (with RFC 7636 PKCE)."""
    s = _state(request)
    css = s.path("/static/auth.css")
    try:
        q = _single(request.query)
    except OAuthError as exc:
        return _html(error_page("Bad request", exc.description, css_href=css), 400)
    client = await s.db(s.service.clients.find, q.get("client_id", ""))
    if client is None:
        return _html(
            error_page("Unknown client", "The application is not registered here.", css_href=css), 400
        )
    redirect_uri = q.get("redirect_uri")
    if redirect_uri is None and len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]
    if redirect_uri is None or redirect_uri not in client.redirect_uris:
        # never redirect to an unregistered URI (RFC 6749 §4.1.2.1, open redirector §10.15)
        detail = "The redirect_uri is missing or not registered for this application."
        return _html(error_page("Invalid redirect URI", detail, css_href=css), 400)
    client_state = q.get("state")
    try:
        if q.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "only response_type=code is supported")
        if "authorization_code" not in client.grant_types:
            raise OAuthError("unauthorized_client", "this client may not use the authorization code grant")
        challenge = check_challenge(q.get("code_challenge"), q.get("code_challenge_method"))
        scope = q.get("scope", "")
        for item in scope.split():
            if item not in client.scopes:
                raise OAuthError("invalid_scope", f"scope {item!r} is not allowed for this client")
    except OAuthError as exc:
        raise _error_redirect(redirect_uri, s, exc, client_state) from None
    pending = PendingRequest(client.client_id, redirect_uri, client_state, scope, challenge, s.now())
    username = await s.db(s.service.sessions.username_of, request.cookies.get(SESSION_COOKIE))
    if username is not None and q.get("prompt") != "login":
        user = await s.db(s.service.users.find, username)
        if user is not None and not user.disabled:
            await _complete(s, pending, user, client)
    if q.get("prompt") == "none":
        raise _error_redirect(redirect_uri, s, OAuthError("login_required", "not logged in"), client_state)
    rid = s.add_pending(pending)
    return _login_form(request, s, rid=rid, client=client, form_origin=_origin_of(redirect_uri))


async def login_get(request: web.Request) -> web.StreamResponse:
    s = _state(request)
    return _login_form(request, s, next_path=_safe_next(request.query.get("next"), ""))


def _too_many(request: web.Request, state: AuthApp, retry: int) -> web.Response:
    detail = f"Too many failed logins; try again in {retry} s."
    headers = {"Retry-After": str(retry)}
    if "text/html" in request.headers.get("Accept", ""):
        resp = _html(error_page("Too many attempts", detail, css_href=state.path("/static/auth.css")), 429)
        resp.headers.update(headers)
        return resp
    return problem(429, "too many requests", detail, headers=headers)


async def login_post(request: web.Request) -> web.StreamResponse:
    s = _state(request)
    _check_origin(request, s)
    form = await _form(request)
    rid = form.get("request", "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(form.get("csrf", ""), _csrf_field(s, cookie, rid)):
        raise Problem(403, "forbidden", "CSRF check failed: reload the login page and try again")
    next_path = _safe_next(form.get("next"), "")
    username, password = form.get("username", ""), form.get("password", "")
    pending = s.pending.get(rid) if rid else None
    if rid and pending is None:
        return _html(
            error_page(
                "Login expired", "Start again from the application.", css_href=s.path("/static/auth.css")
            ),
            400,
        )
    client = await s.db(s.service.clients.find, pending.client_id) if pending else None
    origin = _origin_of(pending.redirect_uri) if pending else None
    ip = request.remote or "?"
    retry = s.service.limiter.check(username, ip)
    if retry is not None:
        return _too_many(request, s, retry)
    user = await s.cpu(s.service.users.authenticate, username, password) if username and password else None
    if user is None:
        s.service.limiter.failure(username, ip)
        return _login_form(
            request,
            s,
            rid=rid,
            next_path=next_path,
            client=client,
            form_origin=origin,
            username=username,
            error="Wrong username or password.",
            status=401,
        )
    s.service.limiter.success(username, ip)
    if rid:
        pending = s.take_pending(rid)
        if pending is None or client is None:
            return _html(
                error_page(
                    "Login expired", "Start again from the application.", css_href=s.path("/static/auth.css")
                ),
                400,
            )
    sid = await s.db(s.service.sessions.create, user)
    cookie_header = session_cookie(
        sid, max_age=s.service.settings.session_ttl, secure=s.secure, path=s.path("/") or "/"
    )
    try:
        if pending is not None and client is not None:
            await _complete(s, pending, user, client)
        raise web.HTTPSeeOther(location=next_path or s.path("/session"))
    except web.HTTPSeeOther as redirect:
        redirect.headers.add("Set-Cookie", cookie_header)
        raise


async def logout(request: web.Request) -> web.StreamResponse:
    s = _state(request)
    _check_origin(request, s)
    ended = await s.db(s.service.sessions.end, request.cookies.get(SESSION_COOKIE))
    resp = web.json_response({"logged_out": ended})
    resp.headers.add("Set-Cookie", session_cookie("", max_age=0, secure=s.secure, path=s.path("/") or "/"))
    return resp


def _identity_json(ident: Any) -> dict[str, Any]:
    return {
        "sub": ident.sub,
        "impi": ident.impi,
        "impu": list(ident.impus),
        "pool": ident.pool,
        "allocation": ident.allocation,
        "scope": " ".join(sorted(ident.scopes)),
        "expires_at": int(ident.expires_at),
    }


async def session_info(request: web.Request) -> web.Response:
    s = _state(request)
    ident = await s.db(s.service.sessions.verify_session, cookie_value(request.headers.get("Cookie")))
    return web.json_response(_identity_json(ident))


async def session_digest(request: web.Request) -> web.StreamResponse:
    """HTTP Digest login (RFC 7616, SHA-256 and MD5 challenges, §3.7) -> session cookie."""
    s = _state(request)
    now = s.now()
    header = request.headers.get("Authorization")

    def challenge(stale: bool = False, detail: str = "authentication required") -> web.Response:
        resp = problem(401, "unauthorized", detail)
        for alg in s.digest.algorithms:
            resp.headers.add("WWW-Authenticate", s.digest.challenge(now, stale=stale, algorithm=alg).format())
        return resp

    if not header or not header.lower().startswith("digest "):
        return challenge()
    try:
        creds = parse_credentials(header)
    except DigestError as exc:
        return problem(400, "bad request", f"malformed Digest credentials: {exc.reason}")
    username = creds.username or ""
    ip = request.remote or "?"
    retry = s.service.limiter.check(username, ip)
    if retry is not None:
        return _too_many(request, s, retry)
    alg = creds.algorithm or "MD5"
    ha1 = await s.db(s.service.users.digest_ha1, username, s.digest.realm, alg)
    verdict = s.digest.verify(
        creds, method=request.method, now=now, ha1=ha1 or _DUMMY_HA1, request_uri=request.path_qs
    )
    if verdict.status is VerifyStatus.BAD_REQUEST:
        return problem(400, "bad request", f"Digest: {verdict.reason}")
    if verdict.status is VerifyStatus.STALE and ha1 is not None:
        return challenge(stale=True, detail="nonce expired")
    if not verdict.ok or ha1 is None:
        if verdict.status is not VerifyStatus.INVALID_NONCE:
            s.service.limiter.failure(username, ip)
        return challenge(detail="wrong username or password")
    s.service.limiter.success(username, ip)
    user = await s.db(s.service.users.find, username)
    if user is None:  # removed meanwhile
        return challenge()
    sid = await s.db(s.service.sessions.create, user)
    resp = web.json_response({"sub": user.username, "expires_in": s.service.settings.session_ttl})
    resp.headers.add(
        "Set-Cookie",
        session_cookie(sid, max_age=s.service.settings.session_ttl, secure=s.secure, path=s.path("/") or "/"),
    )
    return resp


# ---------------------------------------------------------------------------- token endpoints


async def token(request: web.Request) -> web.Response:
    """RFC 6749 §3.2 token endpoint."""
    s = _state(request)
    form = await _form(request)
    grant = _required(form, "grant_type")
    tokens = s.service.tokens
    if grant == "authorization_code":
        client = await _client_auth(request, form, allow_public=True)
        if "authorization_code" not in client.grant_types:
            raise OAuthError("unauthorized_client", "this client may not use the authorization code grant")
        issued = await s.db(
            tokens.redeem_code,
            _required(form, "code"),
            client=client,
            redirect_uri=form.get("redirect_uri"),
            verifier=form.get("code_verifier"),
        )
    elif grant == "refresh_token":
        client = await _client_auth(request, form, allow_public=True)
        if "refresh_token" not in client.grant_types:
            raise OAuthError("unauthorized_client", "this client may not use refresh tokens")
        refresh = _required(form, "refresh_token")
        issued = await s.db(tokens.refresh, refresh, client=client, scope=form.get("scope"))
    elif grant == "client_credentials":
        client = await _client_auth(request, form, allow_public=False)
        issued = await s.db(tokens.client_credentials, client, scope=form.get("scope"))
    else:
        raise OAuthError("unsupported_grant_type", f"grant_type {grant!r} is not supported")
    return web.json_response(issued.response(), headers={"Pragma": "no-cache"})


async def introspect(request: web.Request) -> web.Response:
    """RFC 7662 §2: only authenticated (confidential) clients, or the admin token."""
    s = _state(request)
    form = await _form(request)
    if not is_admin(request, s):
        await _client_auth(request, form, allow_public=False)
    return web.json_response(await s.db(s.service.tokens.introspect, _required(form, "token")))


async def revoke(request: web.Request) -> web.Response:
    """RFC 7009 §2.1: 200 whether or not the token was known."""
    s = _state(request)
    form = await _form(request)
    client = await _client_auth(request, form, allow_public=True)
    await s.db(s.service.tokens.revoke, _required(form, "token"), client=client)
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/.well-known/oauth-authorization-server", metadata)
    app.router.add_get("/jwks.json", jwks)
    app.router.add_get("/static/auth.css", stylesheet)
    app.router.add_get("/authorize", authorize)
    app.router.add_get("/login", login_get)
    app.router.add_post("/login", login_post)
    app.router.add_post("/logout", logout)
    app.router.add_get("/session", session_info)
    app.router.add_get("/session/digest", session_digest)
    app.router.add_post("/token", token)
    app.router.add_post("/introspect", introspect)
    app.router.add_post("/revoke", revoke)
