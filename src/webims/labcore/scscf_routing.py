"""Session routing at the S-CSCF (TS 24.229 §5.4.3, TS 23.228 §5.4, §5.6, §5.7).

- **Originating** (the request came on the Service-Route, whose URI carries the
  ``orig`` user part, TS 24.229 §5.4.3.2): the served user (P-Asserted-Identity,
  else From) must be registered here and not barred (else 403). Only a P-CSCF (a
  source that registered users with Path, or a configured trusted node) may use the
  Service-Route that way (RFC 3325 §5: its P-Asserted-Identity is believed); anyone
  else gets 403. A request outside a dialog from the flow of a UE registered without
  a P-CSCF is that UE's originating request, on the Service-Route or not, directly or
  through our I-CSCF: the core asserts its identity as its P-CSCF would
  (TS 24.229 §5.2.6.3.1, :mod:`webims.labcore.attached`). A callee in the
  home network registered at this S-CSCF is reached directly; any other callee
  in the home network (``sip:...@domain`` or ``tel:``) through the I-CSCF, whose
  LIR finds its S-CSCF (TS 23.228 §5.5.3); other domains by their URI.
- **Terminating** (TS 24.229 §5.4.3.3): the Request-URI (canonical identity, tel:
  through the implicit sets, wildcarded ranges, P-Profile-Key) selects the
  registration; every contact is tried in parallel (forking, RFC 3261 §16.6)
  with the Request-URI set to the contact and Route to its Path (RFC 3327 §5.4),
  P-Called-Party-ID carrying the called identity (RFC 7315 §4.2). A known user
  without contacts gets 480, an unknown one 404 (SAR UNREGISTERED_USER tells
  which, TS 29.228 §6.1.2).
- A P-Asserted-Identity from outside the trust domain is removed (RFC 3325 §5).
- Dialog-creating requests are record-routed (INVITE, SUBSCRIBE, REFER); requests
  inside a dialog follow their Route set (loose routing, RFC 3261 §16.4).
- The MRF (:mod:`webims.labcore.mrf`) rewrites SDP on branches that need the media IWF.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from webims.endpoint import IncomingRequest, Target, target_of
from webims.media.api import MediaError
from webims.sip import Request, Response, SipURI, TelURI, parse_uri

from .attached import Refused, assert_identity
from .flows import CoreElements, Flow
from .identities import canonical, canonical_text
from .mrf import SDP, IwfLeg, MediaInterworking
from .proxy import Branch, ProxyCore, ResponseHook
from .regevent import RegEventServer, event_is_reg
from .scscf_registrar import Registrar, Registration

if TYPE_CHECKING:
    from .settings import LabCoreConfig

__all__ = ["DIALOG_CREATING", "Router"]

log = logging.getLogger("webims.labcore.scscf")

#: Methods whose initial request creates a dialog the S-CSCF stays in (RFC 3261 §12, RFC 6665, RFC 3515).
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})


class Router:
    """Initial and in-dialog request routing of one S-CSCF."""

    def __init__(
        self,
        config: LabCoreConfig,
        proxy: ProxyCore,
        registrar: Registrar,
        regevent: RegEventServer,
        mrf: MediaInterworking,
        *,
        icscf_uri: str | None,
        core: CoreElements | None = None,
    ) -> None:
        self.config = config
        self.core = core
        self.proxy = proxy
        self.registrar = registrar
        self.regevent = regevent
        self.mrf = mrf
        self.icscf: Target | None = None
        if icscf_uri:
            self.icscf = target_of(parse_uri(icscf_uri))
        self.domain = config.domain.lower()

    # ------------------------------------------------------------------ entry points
    async def initial(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        popped = self.proxy.pop_own_routes(request)
        originating = any(u.user == "orig" or "orig" in u.params for u in popped)
        if request.method == "SUBSCRIBE" and event_is_reg(request.headers.get_all("event")):
            identity = canonical(request.uri)
            reg = self.registrar.lookup(identity) if identity else None
            if reg is not None:
                self.regevent.subscribe(incoming, reg)
                return
        source = self.registrar.auth.origin(request, incoming)
        ue = self.ue_registrations(source)
        if ue and not self.proxy.is_own(request.uri):
            # TS 24.229 §5.2.6.3: we are its P-CSCF; past our own entry a Route it preloaded
            # would not be the Service-Route (§5.2.6.3.2, §5.2.6.3.7)
            request.headers.remove("route")
            await self.originating(incoming, ue)
            return
        trusted = self.trusted(source)
        if originating:
            if not trusted:
                log.info("%s on the Service-Route from %s (no P-CSCF, no UE): 403", request.method, source)
                self.proxy.respond(incoming, 403, "Forbidden (not from a P-CSCF or a registered UE)")
                return
            await self.originating(incoming, through=None if self.fully_trusted(source) else source)
            return
        if not trusted and "p-asserted-identity" in request.headers:
            request.headers.remove("p-asserted-identity")  # RFC 3325 §5: not from the trust domain
        if request.route:
            await self.proxy.forward(incoming, [Branch(request.uri)], record_route=self._rr(request.method))
        elif self.proxy.is_own(request.uri):
            if request.method == "OPTIONS":
                self.proxy.respond(
                    incoming,
                    200,
                    headers=[
                        ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY, REGISTER")
                    ],
                )
            else:
                self.proxy.respond(incoming, 404, "Not Found (no such user here)")
        else:
            await self.terminating(incoming)

    async def in_dialog(self, incoming: IncomingRequest) -> None:
        """A request with a To tag (RFC 3261 §16.4 loose routing, §12.2)."""
        request = incoming.request
        if request.method == "SUBSCRIBE":
            sub = self.regevent.find(request)
            if sub is not None:
                self.regevent.refresh(incoming, sub)
                return
        self.proxy.pop_own_routes(request)
        if not request.route and self.proxy.is_own(request.uri):
            self.proxy.respond(incoming, 481)  # addressed to us, but we hold no such dialog
            return
        branch = Branch(request.uri)
        call_id, from_tag = request.call_id, request.from_.tag
        legs = self.mrf.legs(call_id)
        if legs and request.method in ("INVITE", "UPDATE") and request.content_type == SDP:
            try:
                result = await self.mrf.in_dialog_offer(call_id, from_tag, request.body, request.content_type)
            except MediaError as exc:
                self.proxy.respond(incoming, exc.status, exc.reason)
                return
            if result is not None:
                body, leg = result
                branch.body, branch.content_type = body, SDP
                branch.on_response = _in_dialog_hook(self.mrf, leg, from_tag)
        final = await self.proxy.forward(incoming, [branch])
        if legs and request.method == "BYE":
            await self.mrf.end(call_id, f"BYE {final.status}")

    # ------------------------------------------------------------------ originating
    # ------------------------------------------------------------------ sources
    def ue_registrations(self, source: Flow) -> list[Registration]:
        """The registrations of the UE attached without a P-CSCF that sends from ``source``
        (empty: not such a UE). The flow its REGISTER came from; else, for a source that is
        neither in the trust domain nor our own, a UDP Contact it registered
        (:class:`webims.labcore.attached.FlowIndex`)."""
        flows = self.registrar.flows
        regs = flows.registrations(source)
        if regs or self.trusted(source):
            return regs
        return flows.by_contact(source)

    def fully_trusted(self, source: Flow) -> bool:
        """The lab core's own elements and the configured trusted nodes: their P-Asserted-Identity
        is believed for anyone (a P-CSCF known only by its Path, for the users it registered)."""
        if self.core is not None:
            if self.core.is_own(source):
                return True
        elif (source.host, source.port) in self.proxy.own:
            return True
        return self.registrar.auth.is_trusted(source.host)

    def trusted(self, source: Flow) -> bool:
        """The trust domain (RFC 3325 §2.3, TS 24.229 §4.4): the lab core's own elements, the
        P-CSCFs (sources that registered users with Path, RFC 3327) and the configured
        trusted nodes (``[labcore] trusted_nodes``)."""
        return self.fully_trusted(source) or self.registrar.flows.is_pcscf(source)

    @staticmethod
    def served_user(request: Request) -> str | None:
        """TS 24.229 §5.4.3.2: the P-Asserted-Identity the P-CSCF set, else From."""
        asserted = request.headers.get("p-asserted-identity")
        if asserted:
            return canonical_text(asserted.split(",")[0].strip())
        return canonical(request.from_.uri)

    def is_home(self, uri: object) -> bool:
        if isinstance(uri, TelURI):
            return True
        return isinstance(uri, SipURI) and uri.host.lower() == self.domain

    async def originating(
        self, incoming: IncomingRequest, ue: list[Registration] | None = None, *, through: Flow | None = None
    ) -> None:
        """TS 24.229 §5.4.3.2 (no iFC / application servers in the lab core). ``ue``: the
        registrations of the UE attached without a P-CSCF that sent it, whose identity is
        asserted first (TS 24.229 §5.2.6.3.1, :func:`webims.labcore.attached.assert_identity`).
        ``through``: the P-CSCF, known only by the Path it registered users with, that sent it:
        it may assert only those users (:meth:`webims.labcore.attached.FlowIndex.registered_through`)."""
        request = incoming.request
        if ue:
            asserted = assert_identity(request, ue, self.registrar.serves)
            if isinstance(asserted, Refused):
                log.info("%s from %s: %s", request.method, request.from_.uri, asserted.reason)
                self.proxy.respond(incoming, asserted.status, asserted.reason)
                return
            served: str | None = asserted.identity
            reg: Registration | None = asserted.registration
        else:
            served = self.served_user(request)
            reg = self.registrar.lookup(served) if served else None
        if served is None or reg is None or not reg.active:
            self.proxy.respond(incoming, 403, "Forbidden (originating user not registered)")
            return
        if through is not None and not self.registrar.flows.registered_through(through, reg):
            log.info("%s from %s asserts %s, whom it did not register: 403", request.method, through, served)
            self.proxy.respond(incoming, 403, "Forbidden (identity not registered through this P-CSCF)")
            return
        if served in reg.barred:
            self.proxy.respond(incoming, 403, "Forbidden (barred identity)")
            return
        if "p-asserted-identity" not in request.headers:
            request.headers.set("P-Asserted-Identity", f"<{served}>")
        rr = self._rr(request.method)
        callee = canonical(request.uri)
        local = self.registrar.lookup(callee) if callee else None
        if local is not None:
            await self.deliver(incoming, local, callee or "", record_route=rr)
        elif self.is_home(request.uri):
            if self.icscf is None:
                self.proxy.respond(incoming, 404, "Not Found")
                return
            await self.proxy.forward(incoming, [Branch(request.uri, target=self.icscf)], record_route=rr)
        elif isinstance(request.uri, SipURI):
            await self.proxy.forward(incoming, [Branch(request.uri)], record_route=rr)
        else:
            self.proxy.respond(incoming, 404, "Not Found (cannot route this URI)")

    # ------------------------------------------------------------------ terminating
    async def terminating(self, incoming: IncomingRequest) -> None:
        """TS 24.229 §5.4.3.3."""
        request = incoming.request
        identity = canonical(request.uri)
        if identity is None:
            self.proxy.respond(incoming, 404, "Not Found")
            return
        key = request.headers.get("p-profile-key")
        reg = self.registrar.lookup(identity, canonical_text(key) if key else None)
        if reg is None:
            known = await self.registrar.assign_unregistered(identity)
            if known is False:
                self.proxy.respond(incoming, 404, "Not Found")
            else:
                self.proxy.respond(incoming, 480, "Temporarily Unavailable (not registered)")
            return
        if identity in reg.barred:
            self.proxy.respond(incoming, 404, "Not Found (barred)")
            return
        await self.deliver(incoming, reg, identity, record_route=self._rr(request.method))

    async def deliver(
        self, incoming: IncomingRequest, reg: Registration, identity: str, *, record_route: bool
    ) -> None:
        """Fork to every contact of ``reg`` (highest q first, all in parallel)."""
        request = incoming.request
        if not reg.bindings:
            self.proxy.respond(incoming, 480, "Temporarily Unavailable (no contact)")
            return
        called = str(request.uri)
        bindings = sorted(reg.bindings.values(), key=lambda b: -(_q(b.contact.params.get("q"))))
        branches: list[Branch] = []
        legs: list[IwfLeg] = []
        refused: list[MediaError] = []
        for binding in bindings:
            branch = Branch(
                binding.contact.uri,
                routes=binding.path,
                remove=("P-Called-Party-ID",),
                headers=[("P-Called-Party-ID", f"<{called}>")],
                data=binding,
            )
            if request.method == "INVITE" and self.mrf.enabled:
                try:
                    leg = await self.mrf.leg_for(
                        request.call_id,
                        request.from_.tag,
                        request.body,
                        request.content_type,
                        binding.contact,
                    )
                except MediaError as exc:
                    refused.append(exc)
                    continue
                if leg is not None:
                    branch.body, branch.content_type = leg.offer_out, SDP
                    branch.on_response = leg.on_response
                    legs.append(leg)
            branches.append(branch)
        if not branches:
            self.proxy.respond(incoming, refused[0].status, refused[0].reason)
            return
        try:
            final = await self.proxy.forward(incoming, branches, record_route=record_route)
        except BaseException:
            for leg in legs:
                await leg.release("error")
            raise
        if legs:
            await self.mrf.settle(request.call_id, legs, final)

    @staticmethod
    def _rr(method: str) -> bool:
        return method in DIALOG_CREATING


def _q(value: str | None) -> float:
    try:
        return float(value) if value is not None else 1.0
    except ValueError:
        return 1.0


def _in_dialog_hook(mrf: MediaInterworking, leg: IwfLeg, from_tag: str | None) -> ResponseHook:
    async def hook(response: Response) -> Response:
        return await mrf.in_dialog_answer(leg, from_tag, response)

    return hook
