"""A small test registrar for the WIC's browser tests, on a real SipEndpoint.

It authenticates REGISTER the three ways the WIC can answer (DESIGN.md §2):

- ``digest``: RFC 3261 §22.4 MD5 digest with :class:`webims.sip.digest.DigestServer`;
- ``bearer``: ``Authorization: Bearer <token>`` (RFC 8898), checked by a callback
  (the tests verify the JWT with webims.auth's verifier);
- ``aka``: Digest-AKAv1-MD5 (RFC 3310, TS 33.203): a vector from webims.aka for
  every challenge (the S-CSCF's role), AUTS resynchronisation (TS 33.102 §6.3.5).

Every REGISTER and the Authorization header it carried are kept for the tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from webims.aka import build_aka_nonce, generate_vector, next_sqn, resync_sqn, verify_auts
from webims.aka.digest_aka import decode_auts
from webims.endpoint import IncomingRequest
from webims.sip import Request, new_tag
from webims.sip.digest import Challenge, DigestServer, compute_ha1, parse_credentials
from webims.transport import Connection

BearerCheck = Callable[[str], Awaitable[str | None]]  # token -> None if fine, else the error text
AMF = bytes.fromhex("8000")


@dataclass
class Registered:
    aor: str
    contact: str  # the Contact header value
    contact_uri: Any  # its URI (the WIC's .invalid address, RFC 7118 §5.2)
    connection: Connection


@dataclass
class WicRegistrar:
    mode: str  # "digest" | "bearer" | "aka"
    realm: str = "ims.test"
    passwords: dict[str, str] = field(default_factory=dict)  # IMPI -> password
    k: bytes = b""
    opc: bytes = b""
    sqn_he: int = 0
    bearer_check: BearerCheck | None = None
    requests: list[Request] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    bindings: dict[str, Registered] = field(default_factory=dict)
    vectors: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)  # nonce -> (RAND, XRES)
    resyncs: int = 0

    def __post_init__(self) -> None:
        self.digest = DigestServer(self.realm, secrets.token_bytes(16), algorithms=("MD5",))
        self.aka = DigestServer(self.realm, secrets.token_bytes(16), algorithms=("AKAv1-MD5",))

    async def handle(self, incoming: IncomingRequest, now: float) -> None:
        request = incoming.request
        if request.method == "OPTIONS":
            incoming.respond(200, to_tag=new_tag())
            return
        if request.method != "REGISTER":
            incoming.respond(480, "Temporarily Unavailable", to_tag=new_tag())
            return
        self.requests.append(request)
        header = request.headers.get("authorization")
        self.authorizations.append(header)
        if self.mode == "digest":
            verdict = self._digest(header, now)
        elif self.mode == "bearer":
            verdict = await self._bearer(header)
        else:
            verdict = self._aka(header)
        if isinstance(verdict, tuple):
            status, reason, challenge = verdict
            headers = [("WWW-Authenticate", challenge)] if challenge else []
            incoming.respond(status, reason, to_tag=new_tag(), headers=headers)
            return
        contact = request.headers.get("contact") or ""
        aor = str(request.to.uri)
        if not request.contact:
            incoming.respond(400, "Contact missing", to_tag=new_tag())
            return
        self.bindings[aor] = Registered(aor, contact, request.contact[0].uri, incoming.connection)
        incoming.respond(200, to_tag=new_tag(), headers=[
            ("Contact", f"{contact};expires=600" if "expires=" not in contact else contact),
            ("P-Associated-URI", f"<{aor}>"),
        ])

    # ---------------------------------------------------------------- modes
    def _digest(self, header: str | None, now: float) -> tuple[int, str, str | None] | None:
        challenge = self.digest.challenge(now).format()
        if not header or 'response=""' in header:
            return 401, "Unauthorized", challenge
        creds = parse_credentials(header)
        password = self.passwords.get(creds.username or "")
        if password is None:
            return 403, "Forbidden (unknown user)", None
        ha1 = compute_ha1(creds.username or "", self.realm, password, "MD5")
        verdict = self.digest.verify(creds, method="REGISTER", now=now, ha1=ha1)
        if not verdict.ok:
            return 403, f"Forbidden ({verdict.reason})", None
        return None

    async def _bearer(self, header: str | None) -> tuple[int, str, str | None] | None:
        assert self.bearer_check is not None
        if not header or not header.lower().startswith("bearer "):
            return 401, "Unauthorized", Challenge.bearer(self.realm).format()
        error = await self.bearer_check(header[7:].strip())
        if error is not None:
            return 401, "Unauthorized", Challenge.bearer(
                self.realm, error="invalid_token", error_description=error).format()
        return None

    def _aka_challenge(self) -> tuple[int, str, str]:
        self.sqn_he = next_sqn(self.sqn_he)
        vector = generate_vector(self.k, self.opc, AMF, self.sqn_he)
        nonce = build_aka_nonce(vector.rand, vector.autn)
        self.vectors[nonce] = (vector.rand, vector.xres)
        challenge = Challenge.digest(self.realm, nonce, algorithm="AKAv1-MD5", qop=("auth",))
        return 401, "Unauthorized", challenge.format()

    def _aka(self, header: str | None) -> tuple[int, str, str | None] | None:
        if not header or 'nonce=""' in header:
            return self._aka_challenge()
        creds = parse_credentials(header)
        vector = self.vectors.pop(creds.nonce or "", None)
        if vector is None:
            return self._aka_challenge()
        rand, xres = vector
        if creds.auts is not None:  # TS 33.102 §6.3.5 resynchronisation
            sqn_ms = verify_auts(self.k, self.opc, rand, decode_auts(creds.auts))
            self.sqn_he = resync_sqn(self.sqn_he, sqn_ms)
            self.resyncs += 1
            return self._aka_challenge()
        verdict = self.aka.verify(creds, method="REGISTER", now=0.0, password=xres, check_nonce=False)
        if not verdict.ok:
            return 403, f"Forbidden ({verdict.reason})", None
        return None


PROXY_HOST = "wwsf-proxy.invalid"


@dataclass
class WicProxy:
    """A minimal stateful proxy (RFC 3261 §16) between WICs registered on one SIP
    WebSocket server: enough for two browser tabs to call each other.

    Initial requests go to the contact registered for the Request-URI's AOR (480
    when there is none), with our Record-Route so that every in-dialog request
    (ACK, BYE, re-INVITE, INFO) comes back here and goes on to the WebSocket of
    the contact it is addressed to.  CANCEL follows the INVITE (§16.10).
    """

    registrar: WicRegistrar
    endpoint: Any = None  # SipEndpoint, set by attach()
    forwarded: dict[Any, Request] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)  # "METHOD" of every request routed

    def attach(self, endpoint: Any) -> None:
        self.endpoint = endpoint
        endpoint.on_ack = self._ack
        endpoint.on_cancel = self._cancel

    def _connection_for(self, uri: Any) -> Connection | None:
        host = str(getattr(uri, "host", "")).lower()
        for binding in self.registrar.bindings.values():
            if str(getattr(binding.contact_uri, "host", "")).lower() == host:
                return binding.connection
        return None

    def _out(self, request: Request, conn: Connection, uri: Any = None, *, record_route: bool) -> Request:
        from webims.endpoint import SipEndpoint
        from webims.sip import new_branch

        out = Request(request.method, uri or request.uri, request.headers.copy(), request.body)
        mf = request.max_forwards
        out.headers.set("Max-Forwards", str(70 if mf is None else mf - 1))
        while out.route and PROXY_HOST in str(out.route[0].uri):
            out.headers.pop_first("route")
        if record_route:
            out.headers.add("Record-Route", f"<sip:{PROXY_HOST};transport=ws;lr>", first=True)
        SipEndpoint.add_via(out, conn, new_branch())
        return out

    async def handle(self, incoming: IncomingRequest, now: float) -> None:
        request = incoming.request
        if request.method in ("REGISTER", "OPTIONS"):
            await self.registrar.handle(incoming, now)
            return
        self.seen.append(request.method)
        in_dialog = request.to.tag is not None
        if in_dialog:
            conn = self._connection_for(request.uri)
            target_uri = None
        else:
            binding = self.registrar.bindings.get(str(request.uri).split(";")[0])
            conn = binding.connection if binding else None
            target_uri = binding.contact_uri if binding else None
        if conn is None or conn.closed:
            incoming.respond(480 if not in_dialog else 481, to_tag=None if in_dialog else new_tag())
            return
        out = self._out(request, conn, target_uri, record_route=not in_dialog)
        self.forwarded[incoming.key] = out

        def relay(response: Any) -> None:
            if response.status == 100:
                return
            response.headers.pop_first("via")
            incoming.send(response)

        def extra(response: Any) -> None:
            response.headers.pop_first("via")
            incoming.final_sent = False
            incoming.send(response)

        try:
            final = await self.endpoint.request(out, conn, on_provisional=relay, on_extra_final=extra)
        finally:
            self.forwarded.pop(incoming.key, None)
        final.headers.pop_first("via")
        incoming.send(final)

    def _cancel(self, incoming: IncomingRequest) -> None:
        out = self.forwarded.get(incoming.key)
        if out is not None:
            self.seen.append("CANCEL")
            self.endpoint.cancel(out)

    def _ack(self, request: Request, conn: Connection) -> None:
        from webims.endpoint import SipEndpoint
        from webims.sip import new_branch

        self.seen.append("ACK")
        target = self._connection_for(request.uri)
        if target is None:
            return
        out = Request(request.method, request.uri, request.headers.copy(), request.body)
        while out.route and PROXY_HOST in str(out.route[0].uri):
            out.headers.pop_first("route")
        SipEndpoint.add_via(out, target, new_branch())
        self.endpoint.send_stateless(out, target)
