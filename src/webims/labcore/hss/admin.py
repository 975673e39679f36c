"""The HSS admin endpoint: HTTP+JSON for the operator commands that need the running HSS.

Network-initiated de-registration (RTR) and profile push (PPR) are sent over the
Diameter connection the S-CSCF holds with the running HSS, so ``webims subscriber
deregister|push-profile`` asks the HSS process to send them. Endpoints (all JSON):

==========================  ===============================================  ==========
``GET  /hss/peers``         open Diameter peers                              -
``POST /hss/deregister``    ``{"impi", "reason", "info"?, "impus"?}`` -> RTR  TS 29.228 §6.1.3
``POST /hss/push-profile``  ``{"impi"}`` -> PPR with the current User-Data   TS 29.228 §6.2.2
==========================  ===============================================  ==========

``reason``: ``permanent-termination`` (default), ``new-server-assigned``,
``server-change``, ``remove-s-cscf`` (Reason-Code, TS 29.229 §6.3.17). Answers:
200 with the RTA/PPA result, 400 bad request, 401 bad token, 404 unknown IMPI,
409 no S-CSCF assigned, 504 S-CSCF not connected or not answering.

It listens on ``[hss] admin_host:admin_port`` (loopback by default). With
``admin_token`` set every request needs ``Authorization: Bearer <token>``; the
config refuses a non-loopback ``admin_host`` without a token.
"""

from __future__ import annotations

import hmac
import json
import urllib.error
import urllib.request
from typing import Any

from aiohttp import web

from webims.diameter import ReasonCode

from .server import AdminError, HssServer

REASONS: dict[str, int] = {
    "permanent-termination": ReasonCode.PERMANENT_TERMINATION,
    "new-server-assigned": ReasonCode.NEW_SERVER_ASSIGNED,
    "server-change": ReasonCode.SERVER_CHANGE,
    "remove-s-cscf": ReasonCode.REMOVE_S_CSCF,
}
MAX_BODY = 16 * 1024


class AdminServer:
    """aiohttp application serving the endpoints above for one :class:`HssServer`."""

    def __init__(self, hss: HssServer, host: str, port: int, token: str | None = None) -> None:
        self.hss = hss
        self.host = host
        self.port = port
        self.token = token
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[self._auth])
        self.app.router.add_get("/hss/peers", self._peers)
        self.app.router.add_post("/hss/deregister", self._deregister)
        self.app.router.add_post("/hss/push-profile", self._push_profile)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.token is not None:
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {self.token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except AdminError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise AdminError("body is not JSON", status=400) from None
        if not isinstance(body, dict) or not isinstance(body.get("impi"), str):
            raise AdminError('expected {"impi": "..."}', status=400)
        return body

    async def _peers(self, request: web.Request) -> web.Response:
        peers = [
            {
                "origin_host": c.peer_origin_host,
                "origin_realm": c.peer_origin_realm,
                "address": list(c.remote or ()),
            }
            for c in self.hss.peers()
        ]
        return web.json_response({"peers": peers})

    async def _deregister(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        reason = body.get("reason", "permanent-termination")
        if reason not in REASONS:
            raise AdminError(f"reason must be one of {', '.join(REASONS)}", status=400)
        info = body.get("info")
        impus = body.get("impus", [])
        if (info is not None and not isinstance(info, str)) or not (
            isinstance(impus, list) and all(isinstance(u, str) for u in impus)
        ):
            raise AdminError('"info" must be a string and "impus" a list of strings', status=400)
        result = await self.hss.deregister(
            body["impi"], reason_code=REASONS[reason], reason_info=info, impus=impus
        )
        return web.json_response(result.to_json())

    async def _push_profile(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        result = await self.hss.push_profile(body["impi"])
        return web.json_response(result.to_json())


# --- client side (used by the CLI; synchronous, stdlib only) ----------------------------------------


class AdminClientError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def admin_call(
    base_url: str,
    path: str,
    payload: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """POST ``payload`` (or GET when None) to the admin endpoint; the JSON answer or AdminClientError."""
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(base_url.rstrip("/") + path, data=data, method="POST" if data else "GET")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        except (json.JSONDecodeError, AttributeError):
            detail = exc.reason
        raise AdminClientError(f"HSS admin: {detail}", exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        raise AdminClientError(f"cannot reach the HSS admin endpoint at {base_url}: {exc}") from None
    if not isinstance(answer, dict):
        raise AdminClientError("HSS admin: unexpected answer")
    return answer
