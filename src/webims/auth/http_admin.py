"""Admin API (``/admin``, ``Authorization: Bearer <auth.admin_token>``) and the gateway's
pool lease calls (``/pool/release``, ``/pool/renew``).

Admin routes (JSON in and out; errors are RFC 9457 problem+json):

- ``GET /admin/users``, ``POST /admin/users`` ``{username, password, scopes?, digest?}``,
  ``DELETE /admin/users/{name}``, ``PUT /admin/users/{name}/mapping``
  ``{impi?, impus?, pool?, scopes?, allow?, deny?, cc?}``
- ``GET /admin/clients``, ``POST /admin/clients`` ``{client_id, secret?, redirect_uris?,
  grant_types?, scopes?}`` (a secret is generated for ``confidential: true``),
  ``DELETE /admin/clients/{id}``
- ``GET /admin/pools``, ``POST /admin/pools`` ``{name, members?, wildcard?, impi?, capacity?}``,
  ``GET /admin/pools/{name}`` (with its allocations), ``DELETE /admin/pools/{name}?force=1``,
  ``POST /admin/pools/{name}/release`` ``{allocation? | impu? | all?}``
- ``GET /admin/allocations``
- ``POST /admin/keys/rotate``

Pool lease calls accept the admin token, a client-credentials token with scope
``pool`` (the gateway), or — for ``/pool/release`` only — the access token that
holds the allocation (``alc`` claim).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from typing import Any

from aiohttp import web

from .errors import InvalidToken, Problem, TokenError
from .identity import SCOPES, DestinationRules
from .pools import Allocation, Pool
from .server import AUTH_APP, AuthApp
from .users import Client, User

__all__ = ["add_routes", "is_admin"]


def _state(request: web.Request) -> AuthApp:
    return request.app[AUTH_APP]


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else None


def is_admin(request: web.Request, state: AuthApp) -> bool:
    """Whether the request carries ``Authorization: Bearer <auth.admin_token>`` (and one is set)."""
    admin = state.service.settings.admin_token
    token = _bearer(request)
    return bool(admin) and token is not None and hmac.compare_digest(token.encode(), admin.encode())


@web.middleware
async def _admin_only(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith(_state(request).path("/admin")):
        state = _state(request)
        if not state.service.settings.admin_token:
            raise Problem(404, "not found", "the admin API is disabled (set auth.admin_token)")
        if not is_admin(request, state):
            raise TokenError("admin token required")
    result: web.StreamResponse = await handler(request)
    return result


async def _json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise Problem(415, "unsupported media type", "expected an application/json body")
    try:
        doc = json.loads(await request.read())
    except ValueError:
        raise Problem(400, "bad request", "body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise Problem(400, "bad request", "body must be a JSON object")
    return doc


def _strs(doc: dict[str, Any], key: str) -> list[str] | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Problem(400, "bad request", f"{key}: expected a list of strings")
    return value


def _str(doc: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise Problem(400, "bad request", f"{key}: missing")
        return None
    if not isinstance(value, str):
        raise Problem(400, "bad request", f"{key}: expected a string")
    return value


def user_json(u: User) -> dict[str, Any]:
    return {
        "username": u.username,
        "scopes": list(u.scopes),
        "impi": u.impi,
        "impus": list(u.impus),
        "pool": u.pool,
        "dest": u.dest.to_claim(),
        "disabled": u.disabled,
        "digest": u.digest_realm is not None,
    }


def client_json(c: Client) -> dict[str, Any]:
    return dataclasses.asdict(c)


def pool_json(p: Pool) -> dict[str, Any]:
    return {**dataclasses.asdict(p), "free": p.free}


def allocation_json(a: Allocation) -> dict[str, Any]:
    return dataclasses.asdict(a)


# ---------------------------------------------------------------------------- users


async def list_users(request: web.Request) -> web.Response:
    s = _state(request)
    return web.json_response([user_json(u) for u in await s.db(s.service.users.list)])


async def add_user(request: web.Request) -> web.Response:
    s = _state(request)
    doc = await _json(request)
    username = _str(doc, "username", required=True)
    password = _str(doc, "password", required=True)
    assert username is not None and password is not None
    scopes = _strs(doc, "scopes")
    realm = s.service.settings.digest_realm if doc.get("digest") else None
    users = s.service.users
    user = await s.cpu(lambda: users.add(username, password, digest_realm=realm, scopes=scopes or SCOPES))
    return web.json_response(user_json(user), status=201)


async def remove_user(request: web.Request) -> web.Response:
    s = _state(request)
    await s.db(s.service.users.remove, request.match_info["name"])
    return web.Response(status=204)


async def map_user(request: web.Request) -> web.Response:
    s = _state(request)
    doc = await _json(request)
    dest = None
    if any(k in doc for k in ("allow", "deny", "cc")):
        dest = DestinationRules(
            tuple(_strs(doc, "allow") or ()), tuple(_strs(doc, "deny") or ()), _str(doc, "cc") or ""
        )
    user = await s.db(
        s.service.users.map,
        request.match_info["name"],
        impi=_str(doc, "impi"),
        impus=_strs(doc, "impus") or (),
        pool=_str(doc, "pool"),
        scopes=_strs(doc, "scopes"),
        dest=dest,
    )
    return web.json_response(user_json(user))


# ---------------------------------------------------------------------------- clients


async def list_clients(request: web.Request) -> web.Response:
    s = _state(request)
    return web.json_response([client_json(c) for c in await s.db(s.service.clients.list)])


async def add_client(request: web.Request) -> web.Response:
    s = _state(request)
    doc = await _json(request)
    client_id = _str(doc, "client_id", required=True)
    assert client_id is not None
    secret = _str(doc, "secret")
    if secret is None and doc.get("confidential"):
        secret = s.service.clients.new_secret()
    grant_types = _strs(doc, "grant_types")
    scopes = _strs(doc, "scopes")
    client = await s.db(
        s.service.clients.put,
        client_id,
        secret=secret,
        redirect_uris=_strs(doc, "redirect_uris") or (),
        grant_types=grant_types,
        **({"scopes": scopes} if scopes else {}),
    )
    body = client_json(client)
    if secret is not None:
        body["secret"] = secret
    return web.json_response(body, status=201)


async def remove_client(request: web.Request) -> web.Response:
    s = _state(request)
    await s.db(s.service.clients.remove, request.match_info["id"])
    return web.Response(status=204)


# ---------------------------------------------------------------------------- pools


async def list_pools(request: web.Request) -> web.Response:
    s = _state(request)
    return web.json_response([pool_json(p) for p in await s.db(s.service.pools.list)])


async def add_pool(request: web.Request) -> web.Response:
    s = _state(request)
    doc = await _json(request)
    capacity = doc.get("capacity")
    if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool)):
        raise Problem(400, "bad request", "capacity: expected an integer")
    name = _str(doc, "name", required=True)
    assert name is not None
    pool = await s.db(
        s.service.pools.add,
        name,
        members=_strs(doc, "members") or (),
        wildcard=_str(doc, "wildcard"),
        impi=_str(doc, "impi"),
        capacity=capacity,
    )
    return web.json_response(pool_json(pool), status=201)


async def show_pool(request: web.Request) -> web.Response:
    s = _state(request)
    name = request.match_info["name"]
    pool = await s.db(s.service.pools.get, name)
    allocations = await s.db(s.service.pools.allocations, name)
    return web.json_response({**pool_json(pool), "allocations": [allocation_json(a) for a in allocations]})


async def remove_pool(request: web.Request) -> web.Response:
    s = _state(request)
    force = request.query.get("force", "") in ("1", "true", "yes")
    await s.db(s.service.pools.remove, request.match_info["name"], force=force)
    return web.Response(status=204)


async def release_in_pool(request: web.Request) -> web.Response:
    s = _state(request)
    name = request.match_info["name"]
    doc = await _json(request)
    if doc.get("all") is True:
        which: dict[str, Any] = {"every": True}
    elif (alc := _str(doc, "allocation")) is not None:
        which = {"allocation": alc}
    elif (impu := _str(doc, "impu")) is not None:
        which = {"impu": impu}
    else:
        raise Problem(400, "bad request", "give allocation, impu or all=true")
    released = await s.db(s.service.pools.release_in, name, **which)
    return web.json_response({"released": [allocation_json(a) for a in released]})


async def list_allocations(request: web.Request) -> web.Response:
    s = _state(request)
    return web.json_response([allocation_json(a) for a in await s.db(s.service.pools.allocations)])


async def rotate_keys(request: web.Request) -> web.Response:
    s = _state(request)
    kid = await s.db(s.service.rotate_keys)
    return web.json_response({"kid": kid})


# ---------------------------------------------------------------------------- gateway lease calls


async def _pool_caller(request: web.Request, state: AuthApp, allocation: str, *, holder_ok: bool) -> None:
    if is_admin(request, state):
        return
    token = _bearer(request)
    if token is None:
        raise TokenError("bearer token required")
    ident = await state.db(state.service.tokens.verify_signature, token)
    if "pool" in ident.scopes and ident.allocation is None:
        return
    if holder_ok and ident.allocation == allocation:
        return
    raise InvalidToken("this token may not manage that allocation")


async def pool_release(request: web.Request) -> web.Response:
    """The gateway releases a lease when the WIC disconnects (or the WIC on logout)."""
    s = _state(request)
    doc = await _json(request)
    alc = _str(doc, "allocation", required=True)
    assert alc is not None
    await _pool_caller(request, s, alc, holder_ok=True)
    released = await s.db(s.service.pools.release, alc)
    return web.json_response({"released": released is not None})


async def pool_renew(request: web.Request) -> web.Response:
    """The gateway extends a lease while the WIC stays registered."""
    s = _state(request)
    doc = await _json(request)
    alc = _str(doc, "allocation", required=True)
    assert alc is not None
    lease = doc.get("lease", s.service.settings.access_ttl)
    if not isinstance(lease, int | float) or isinstance(lease, bool) or not 1 <= lease <= 7 * 86_400:
        raise Problem(400, "bad request", "lease: expected seconds between 1 and 604800")
    await _pool_caller(request, s, alc, holder_ok=False)
    allocation = await s.db(s.service.pools.renew, alc, lease=float(lease))
    return web.json_response(allocation_json(allocation))


def add_routes(app: web.Application) -> None:
    app.middlewares.append(_admin_only)
    r = app.router
    r.add_get("/admin/users", list_users)
    r.add_post("/admin/users", add_user)
    r.add_delete("/admin/users/{name}", remove_user)
    r.add_put("/admin/users/{name}/mapping", map_user)
    r.add_get("/admin/clients", list_clients)
    r.add_post("/admin/clients", add_client)
    r.add_delete("/admin/clients/{id}", remove_client)
    r.add_get("/admin/pools", list_pools)
    r.add_post("/admin/pools", add_pool)
    r.add_get("/admin/pools/{name}", show_pool)
    r.add_delete("/admin/pools/{name}", remove_pool)
    r.add_post("/admin/pools/{name}/release", release_in_pool)
    r.add_get("/admin/allocations", list_allocations)
    r.add_post("/admin/keys/rotate", rotate_keys)
    r.add_post("/pool/release", pool_release)
    r.add_post("/pool/renew", pool_renew)
