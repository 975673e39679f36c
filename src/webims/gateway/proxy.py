"""Requests other than REGISTER, in both directions (RFC 3261 §16 transaction-stateful proxying).

From a WIC toward the IMS (TS 24.229 §5.2.6.3 as the P-CSCF; a UE's §5.1.2A when
behind an operator P-CSCF):

- only a registered flow may send (403 otherwise);
- a ``Bearer`` token, when present, is verified and scope-checked (TS 24.371 §7.2.1:
  ``message`` for MESSAGE, ``call`` for INVITE) and must belong to the registered web
  identity; ``require_bearer`` makes it mandatory for web-token WICs; destination rules
  of the token/session (``dest``) are applied to out-of-dialog requests;
- untrusted headers are removed and the identity asserted
  (:mod:`.identity`; pool WICs have From translated to their allocated IMPU);
- out-of-dialog requests get Route = Service-Route (behind a P-CSCF: that P-CSCF,
  then the Service-Route), in-dialog ones lose the Route entries that name us;
  dialog-creating requests get our Record-Route (with the binding's flow token);
- the answer goes back with our Via removed.

From the IMS toward a WIC: the binding is found from the flow token in the top Route
(our Path / Record-Route entry) or in the Request-URI (our Contact behind a P-CSCF,
a pool registration's Contact + the called IMPU); a gone flow gives 430 Flow Failed
(RFC 5626 §5.3), a forged token 403. NOTIFYs of our reg-event subscriptions are
handled by :mod:`.regevent`.

INVITE and its dialog (ACK, CANCEL, PRACK, UPDATE, BYE, INFO) belong to the session
B2BUA (issue 7): ``Gateway.sessions`` when set, else 501.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from webims.auth.errors import TokenError
from webims.auth.identity import DestinationRules, Identity, check_destination
from webims.endpoint import IncomingRequest, SipEndpoint
from webims.sip import DialogId, ParseError, Request, Response, SipURI, parse_uri
from webims.sip.auth_header import parse_credentials

from .identity import (
    assert_identity,
    asserted_identity,
    charging_vector,
    same_identity,
    strip_untrusted,
    translate_from,
)
from .options import answer_options, is_for_gateway
from .state import Binding
from .wic import Flow

if TYPE_CHECKING:
    from .core import Gateway

__all__ = ["SESSION_METHODS", "Router"]

log = logging.getLogger("webims.gateway.proxy")

SESSION_METHODS = frozenset({"INVITE", "ACK", "CANCEL", "PRACK", "UPDATE", "BYE", "INFO"})
DIALOG_CREATING = frozenset({"SUBSCRIBE", "REFER", "INVITE"})
SCOPES = {"MESSAGE": "message", "INVITE": "call"}


class Router:
    """Non-REGISTER request forwarding (module docstring)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.config = gateway.config

    # ================================================================== WIC -> IMS
    async def from_wic(self, incoming: IncomingRequest, flow: Flow) -> None:
        request = incoming.request
        if request.method in SESSION_METHODS or self._b2bua_dialog(request):
            if self.gw.sessions is not None:
                await self.gw.sessions.from_wic(incoming, flow)
            elif request.method != "ACK":
                incoming.respond(501, "Not Implemented (sessions)")
            return
        bindings = self.gw.bindings.on_connection(flow.id)
        bindings = [b for b in bindings if b.confirmed]
        if not bindings:
            incoming.respond(403, "Forbidden (register first)")
            return
        binding = self._pick(bindings, request)
        allowed, identity = await self._authorize(incoming, binding)
        if not allowed:
            return
        in_dialog = request.to.tag is not None
        if not in_dialog and request.method in SCOPES and identity is not None:
            decision = check_destination(identity, str(request.uri), scope=SCOPES[request.method])
            if not decision:
                incoming.respond(
                    403,
                    "Forbidden (destination not allowed)",
                    headers=[("Warning", self.gw.warning(decision.reason))],
                )
                return
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards <= 0:
            incoming.respond(483)
            return
        fwd = Request(request.method, request.uri, request.headers.copy(), request.body)
        preferred = strip_untrusted(fwd)
        self._drop_bearer(fwd)
        fwd.headers.set("Max-Forwards", str((max_forwards if max_forwards is not None else 70) - 1))
        if binding.mode == "pool":
            translate_from(fwd, binding.aor, binding.impu)
        chosen = asserted_identity(binding.identities, preferred) or binding.impu
        assert_identity(fwd, chosen, as_pcscf=self.gw.ims.as_pcscf)
        self._route_outgoing(fwd, binding, in_dialog)
        ue_flow = self.gw.ims_flow_of(binding)  # behind a P-CSCF: the UE's own (TS 24.229 §5.2.6.3.1)
        if request.method in DIALOG_CREATING and not in_dialog:
            rr = self.gw.ims.record_route(self.gw.token_of(binding), ue_flow)
            fwd.headers.add("Record-Route", rr, first=True)
        if self.gw.ims.as_pcscf and not in_dialog:
            fwd.headers.set("P-Charging-Vector", charging_vector(self.config.uri_host))
        response = await self.gw.ims.send(fwd, flow=ue_flow)
        incoming.send(self._unwrap(response, request))

    def _b2bua_dialog(self, request: Request) -> bool:
        """A request (REFER, NOTIFY, SUBSCRIBE, MESSAGE...) within a dialog of the session B2BUA:
        the B2BUA relays it to its other leg (issue 7; RFC 3261 §12.2.2)."""
        sessions = self.gw.sessions
        if sessions is None or request.to.tag is None:
            return False
        try:
            dialog_id = DialogId.of_request(request)
        except ParseError:
            return False
        return dialog_id is not None and sessions.owns_dialog(dialog_id)

    def _pick(self, bindings: list[Binding], request: Request) -> Binding:
        try:
            sender = str(request.from_.uri)
        except ParseError:
            return bindings[0]
        for b in bindings:
            if same_identity(b.aor, sender) or any(same_identity(u, sender) for u in b.identities):
                return b
        return bindings[0]

    async def _authorize(self, incoming: IncomingRequest, binding: Binding) -> tuple[bool, Identity | None]:
        """(allowed, the identity for scope and destination checks); not allowed: answered."""
        request = incoming.request
        token = None
        for value in request.headers.get_all("Authorization"):
            try:
                cred = parse_credentials(value)
            except ParseError:
                continue
            if cred.is_bearer:
                token = cred.token
                break
        scope = SCOPES.get(request.method)
        if token is not None:
            try:
                identity = await self.gw.verify_token(token, scope=scope)
            except TokenError as exc:
                status = 403 if exc.status == 403 else 401
                incoming.respond(
                    status,
                    "Forbidden (insufficient scope)" if status == 403 else "Unauthorized (invalid token)",
                    headers=[
                        ("WWW-Authenticate", self.gw.bearer_challenge(exc)),
                        ("Warning", self.gw.warning(exc.reason)),
                    ],
                )
                return False, None
            if binding.sub is not None and identity.sub != binding.sub:
                incoming.respond(403, "Forbidden (token of another web identity)")
                return False, None
            return True, identity
        if binding.sub is None:
            return True, None  # IMS-authenticated modes: the S-CSCF applies the user's service profile
        if (
            self.config.require_bearer
            and binding.mode in ("web-token", "pool")
            and binding.origin is not None
        ):
            incoming.respond(
                401,
                "Unauthorized (Bearer token required)",
                headers=[("WWW-Authenticate", self.gw.bearer_challenge())],
            )
            return False, None
        identity = Identity(
            sub=binding.sub, issuer="", expires_at=binding.expires_at, scopes=frozenset(binding.scopes),
            client_id=binding.client_id, impi=binding.impi, impus=tuple(binding.identities),
            dest=DestinationRules.from_claim(binding.dest), source="session",
        )  # fmt: skip
        if scope is not None and scope not in identity.scopes:
            incoming.respond(
                403,
                "Forbidden (insufficient scope)",
                headers=[("Warning", self.gw.warning(f"no {scope!r} scope"))],
            )
            return False, None
        return True, identity

    @staticmethod
    def _drop_bearer(request: Request) -> None:
        kept = []
        for value in request.headers.get_all("Authorization"):
            try:
                if parse_credentials(value).is_bearer:
                    continue
            except ParseError:
                continue
            kept.append(value)
        request.headers.remove("Authorization")
        for value in kept:
            request.headers.add("Authorization", value)

    def _route_outgoing(self, fwd: Request, binding: Binding, in_dialog: bool) -> None:
        ims = self.gw.ims
        routes = [str(r) for r in fwd.route]
        fwd.headers.remove("Route")
        if in_dialog:
            while routes and ims.is_ours(_uri(routes[0])):
                routes.pop(0)
        else:
            routes = list(binding.service_route)
            if not ims.as_pcscf:
                routes.insert(0, f"<{self.config.pcscf};lr>")
        for r in routes:
            fwd.headers.add("Route", r)

    @staticmethod
    def _unwrap(response: Response, request: Request) -> Response:
        """Our answer to the WIC: the IMS's with our Via removed (§16.7 step 3)."""
        vias = response.headers.get_all("Via")
        if len(vias) > len(request.headers.get_all("Via")):
            response.headers.pop_first("Via")
        return response

    # ================================================================== IMS -> WIC
    async def from_ims(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        gw = self.gw
        if request.method == "OPTIONS" and is_for_gateway(request, gw):  # issue 7: OPTIONS to us
            answer_options(incoming)
            return
        binding, status = self._target(request)
        if binding is None:
            if request.method != "ACK":
                incoming.respond(status, None if status != 430 else "Flow Failed")
            return
        if request.method in SESSION_METHODS or self._b2bua_dialog(request):
            if gw.sessions is not None:
                await gw.sessions.from_ims(incoming, binding)
            elif request.method != "ACK":
                incoming.respond(501, "Not Implemented (sessions)")
            return
        conn = binding.connection
        if conn is None or conn.closed:
            incoming.respond(430, "Flow Failed")  # RFC 5626 §5.3
            return
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards <= 0:
            incoming.respond(483)
            return
        fwd = Request(request.method, request.uri, request.headers.copy(), request.body)
        fwd.headers.set("Max-Forwards", str((max_forwards if max_forwards is not None else 70) - 1))
        routes = [str(r) for r in fwd.route]
        fwd.headers.remove("Route")
        while routes and gw.ims.is_ours(_uri(routes[0])):
            routes.pop(0)
        for r in routes:
            fwd.headers.add("Route", r)
        if not gw.ims.as_pcscf or binding.mode == "pool" or gw.ims.is_ours(fwd.uri):
            fwd.uri = parse_uri(binding.contact_uri)
        if request.method in DIALOG_CREATING and request.to.tag is None:
            rr = gw.ims.record_route(gw.token_of(binding), gw.ims_flow_of(binding))  # the IMS's route set
            fwd.headers.add("Record-Route", rr, first=True)
        SipEndpoint.add_via(fwd, conn)
        response = await gw.wic.endpoint.request(fwd, conn)
        response.headers.pop_first("Via")
        incoming.send(response)

    def _target(self, request: Request) -> tuple[Binding | None, int]:
        """The binding a request from the IMS is for, else (None, status)."""
        gw = self.gw
        candidates: list[str] = []
        routes = request.route
        if routes and gw.ims.is_ours(routes[0].uri):
            user = routes[0].uri.user  # type: ignore[union-attr]
            if user:
                candidates.append(user)
        if isinstance(request.uri, SipURI) and request.uri.user and gw.ims.is_ours(request.uri):
            candidates.append(request.uri.user)
        forged = False
        for token in candidates:
            found = gw.tokens.read(token)
            if found is None:
                forged = True
                continue
            kind, ident = found
            if kind == "b":
                binding = gw.bindings.by_id.get(ident)
                if binding is None:
                    return None, 430  # the registration (and its flow) are gone
                return binding, 200
            if kind == "p":
                return self._pool_target(request, ident)
        return None, 403 if forged else 404

    def _pool_target(self, request: Request, ident: str) -> tuple[Binding | None, int]:
        reg = self.gw.pools.by_ident.get(ident)
        if reg is None:
            return None, 404
        called = request.headers.get("P-Called-Party-ID")
        try:
            impu = str(parse_uri(called.strip().strip("<>").split(">")[0])) if called else str(request.to.uri)
        except ParseError:
            return None, 404
        if not reg.covers(impu):
            return None, 404  # a fork for another IMPU of the same implicit registration set
        for binding in self.gw.bindings.of_impu(impu) or [
            b for b in self.gw.bindings if b.pool == reg.pool and same_identity(b.impu, impu)
        ]:
            if binding.confirmed and binding.expires_at > time.time():
                return binding, 200
        return None, 480


def _uri(value: str) -> object:
    from webims.sip import parse_name_addr

    try:
        return parse_name_addr(value).uri
    except ParseError:
        return None
