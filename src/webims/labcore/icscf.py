"""The lab I-CSCF (TS 24.229 §5.3, TS 23.228 §5.3.1.2, §5.5.3), a stateful proxy.

REGISTER (TS 24.229 §5.3.1.2): UAR with the public and private identities, the
Visited-Network-Identifier from P-Visited-Network-ID and User-Authorization-Type
(DE_REGISTRATION when every contact goes, else REGISTRATION); the REGISTER goes
to the S-CSCF the HSS names (Server-Name) or to one selected from its
Server-Capabilities among the configured S-CSCFs (TS 29.228 Annex A). A negative
UAA (unknown user, identities that do not match, roaming not allowed, barred)
gets 403; no answer from the HSS, or no suitable S-CSCF, 480; an S-CSCF that
cannot be reached gives the proxy's 408/500 (no re-selection, §5.3.1.3). The
I-CSCF neither record-routes nor touches the Path.

Other initial requests (TS 24.229 §5.3.2.1): LIR for the Request-URI; to the
S-CSCF named, or selected for unregistered service (DIAMETER_UNREGISTERED_SERVICE);
a wildcarded identity match is passed on in P-Profile-Key (RFC 5002, §5.3.2.1);
unknown user 404, not registered 480.

UEs attached without a P-CSCF (SIP phones registered here directly,
:mod:`webims.labcore.attached`): the I-CSCF stamps the real source on the top Via of
every request (``received`` and ``rport``, :func:`webims.labcore.flows.stamp_source`)
so that the S-CSCF can tell who sent what it forwards. A request outside a dialog from
the flow of such a UE is sent to its S-CSCF's originating part, on the Service-Route
(RFC 3608 §6: the phone may ignore it) in place of any Route it preloaded (TS 24.229
§5.2.6.3.2, §5.2.6.3.7), not routed as terminating. From any other source outside the trust
domain an initial request loses its P-Asserted-Identity (RFC 3325 §5).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

from webims.diameter import (
    DiameterError,
    ExperimentalResultCode,
    LocationInfoAnswer,
    ServerCapabilities,
    UserAuthorizationType,
    build_lir,
)
from webims.endpoint import IncomingRequest, SipEndpoint, Target, target_of
from webims.sip import DEFAULT_TIMERS, ParseError, Request, SipURI, TelURI, TimerSettings, parse_uri
from webims.transport import host_key

from .cx_client import CxError, DiameterClient
from .flows import CoreElements, Flow, flow_of, stamp_source
from .identities import canonical, impi_from_impu
from .local_hop import LocalHop
from .proxy import Branch, ProxyCore, best_response, listen
from .settings import LabCoreConfig, ScscfEntry

__all__ = ["ICscf", "select_scscf"]

log = logging.getLogger("webims.labcore.icscf")


def select_scscf(entries: Sequence[ScscfEntry], capabilities: ServerCapabilities | None) -> ScscfEntry | None:
    """S-CSCF selection from Server-Capabilities (TS 29.228 Annex A.2, TS 23.228 §5.3.1.2):
    a named preferred S-CSCF when configured here, else one having every mandatory
    capability and the most optional ones (the first on a tie)."""
    if not entries:
        return None
    if capabilities is None:
        return entries[0]
    mandatory = set(capabilities.mandatory)
    fit = [e for e in entries if mandatory <= e.capabilities]
    for name in capabilities.server_names:
        for entry in fit or entries:
            if entry.uri == name:
                return entry
    if not fit:
        return None
    optional = set(capabilities.optional)
    return max(fit, key=lambda e: (len(optional & e.capabilities), -fit.index(e)))


def _registration_type(request: Request) -> int:
    """DE_REGISTRATION when the REGISTER removes every contact (TS 29.228 §6.1.1.1)."""
    header = request.expires
    if request.contact_star:  # (with a non-zero Expires the S-CSCF answers 400)
        return UserAuthorizationType.DE_REGISTRATION if header == 0 else UserAuthorizationType.REGISTRATION
    contacts = request.contact
    if contacts and all((c.expires if c.expires is not None else header) == 0 for c in contacts):
        return UserAuthorizationType.DE_REGISTRATION
    return UserAuthorizationType.REGISTRATION


_ESCAPED = re.compile(r"\\(.)")  # a quoted-pair (RFC 3261 §25.1)
_USERNAME = re.compile(r'(?:^|[\s,])username\s*=\s*"((?:[^"\\]|\\.)*)"', re.IGNORECASE)


def _username(authorization: str) -> str | None:
    """The ``username`` of Digest credentials: the private user identity (TS 24.229 §5.3.1.2).
    Only this one directive is needed, so the header is not parsed whole (the S-CSCF does)."""
    if authorization[:7].lower() != "digest ":
        return None
    match = _USERNAME.search(authorization, 6)
    if match is None:
        return None
    value = match.group(1)
    return _ESCAPED.sub(r"\1", value) if "\\" in value else value


class ICscf:
    """One I-CSCF on UDP and TCP. ``scscfs`` are the S-CSCFs it may select, in preference order."""

    def __init__(
        self,
        config: LabCoreConfig,
        cx: DiameterClient,
        scscfs: Sequence[ScscfEntry],
        *,
        timers: TimerSettings | None = None,
    ) -> None:
        self.config = config
        self.cx = cx
        self.scscfs = list(scscfs)
        self.endpoint = SipEndpoint(self.on_request, uas_core=False, timers=timers or DEFAULT_TIMERS)
        self.port = 0
        self._proxy: ProxyCore | None = None
        self._targets: dict[str, Target] = {}  # S-CSCF name (Server-Name) -> next hop
        #: S-CSCFs in this process by (host, port) of their Server-Name: REGISTERs to them
        #: are handed over in-process (:mod:`webims.labcore.local_hop`)
        self.local_hops: dict[tuple[str, int], LocalHop] = {}
        #: the Service-Route of the S-CSCF serving a UE attached without a P-CSCF that sends
        #: from this flow, if any (set by the lab core: :meth:`webims.labcore.scscf.SCscf.originating_route`)
        self.originating_route: Callable[[Flow], str | None] | None = None
        #: whether a source is in the trust domain (RFC 3325 §2.3); None: every source is
        self.trusts: Callable[[Flow], bool] | None = None
        #: the lab core's elements in this process (we add ourselves on start)
        self.core: CoreElements | None = None

    @property
    def uri(self) -> str:
        return f"sip:{self.config.uri_host}:{self.port}{self.config.transport_param}"

    @property
    def address(self) -> tuple[str, int]:
        return (self.config.host, self.port)

    @property
    def proxy(self) -> ProxyCore:
        assert self._proxy is not None, "I-CSCF not started"
        return self._proxy

    async def start(self) -> None:
        config = self.config
        self.port = await listen(self.endpoint, config.host, config.icscf_port, config.transports)
        own = [(config.host, self.port), (config.uri_host, self.port)]
        self._proxy = ProxyCore(self.endpoint, own)
        if self.core is not None:
            self.core.add(self.endpoint, config.host, self.port)
        log.info("I-CSCF listening on %s:%d (%s)", config.host, self.port, "/".join(config.transports))

    async def stop(self) -> None:
        if self._proxy is not None:
            await self._proxy.close()
        await self.endpoint.close()

    # ------------------------------------------------------------------ SIP
    async def on_request(self, incoming: IncomingRequest) -> None:
        proxy = self.proxy
        request = incoming.request
        method = request.method
        if method == "CANCEL":
            proxy.handle_cancel(incoming)
            return
        if method == "ACK":
            return
        if method == "INVITE":
            proxy.context(incoming)  # from now on a CANCEL finds it (while the HSS is asked, too)
        try:
            stamp_source(request, incoming.connection)
            if request.max_forwards == 0:
                proxy.respond(incoming, 483)
                return
            proxy.pop_own_routes(request)
            if method == "REGISTER":
                await self.register(incoming)
            elif request.to.tag is not None:
                await proxy.forward(incoming, [Branch(request.uri)])  # loose routing (§16.4)
            else:
                await self.initial(incoming)
        except ParseError as exc:
            if not incoming.final_sent:
                proxy.respond(incoming, 400, exc.reason)
        finally:
            proxy.release(incoming)

    # ------------------------------------------------------------------ REGISTER
    async def register(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        proxy = self.proxy
        impu = canonical(request.to.uri)
        if impu is None:
            proxy.respond(incoming, 403, "Forbidden (no public user identity)")
            return
        impi = impi_from_impu(impu)
        value = request.headers.get("authorization")
        if value is not None:
            impi = _username(value) or impi
        visited = (request.headers.get("p-visited-network-id") or self.config.domain).split(",")[0].strip()
        visited = visited.strip('"')
        try:
            uaa = await self.cx.uar(impi, impu, visited, _registration_type(request))
        except (CxError, DiameterError) as exc:
            log.warning("UAR for %s failed: %s", impu, exc)
            proxy.respond(incoming, 480, "Temporarily Unavailable (HSS)")
            return
        if not uaa.result.is_success:
            log.info("UAA for %s/%s: %s", impi, impu, uaa.result.code)
            proxy.respond(incoming, 403, "Forbidden")
            return
        target = self._target(uaa.server_name, uaa.server_capabilities)
        if target is None:
            proxy.respond(incoming, 480, "Temporarily Unavailable (no S-CSCF)")
            return
        hop = self.local_hops.get((target.host, target.port))
        if hop is not None:  # our own S-CSCF, in this process: no wire in between
            request = proxy.make_request(request, Branch(request.uri), record_route=False)
            response = await hop.send(request)
            response.headers.pop_first("via")  # ours (RFC 3261 §16.7 step 3)
            incoming.send(response if response.status < 300 else best_response([response]))  # 503 -> 500
            return
        await proxy.forward(incoming, [Branch(request.uri, target=target)])

    def _target(self, name: str | None, capabilities: ServerCapabilities | None) -> Target | None:
        uri = name
        if uri is None:
            entry = select_scscf(self.scscfs, capabilities)
            uri = entry.uri if entry is not None else None
        if uri is None:
            return None
        target = self._targets.get(uri)
        if target is not None:
            return target
        try:
            target = target_of(parse_uri(uri))
        except (ParseError, ValueError):
            log.warning("unusable S-CSCF name %r", uri)
            return None
        if len(self._targets) >= 1024:
            self._targets.clear()
        self._targets[uri] = target
        return target

    async def initial(self, incoming: IncomingRequest) -> None:
        """A request outside a dialog (see the module docstring)."""
        request, proxy = incoming.request, self.proxy
        source = flow_of(incoming.connection)
        own = proxy.is_own(request.uri)
        if self.originating_route is not None and not own:
            route = self.originating_route(source)
            if route is not None:
                await self.originating(incoming, route)
                return
        if self.trusts is not None and not self.trusts(source) and not self._is_scscf(source):
            request.headers.remove("p-asserted-identity")  # RFC 3325 §5: not from the trust domain
        if request.route:
            await proxy.forward(incoming, [Branch(request.uri)])  # loose routing (§16.4)
        elif own:
            proxy.respond(incoming, 200 if request.method == "OPTIONS" else 404)
        else:
            await self.terminating(incoming)

    def _is_scscf(self, source: Flow) -> bool:
        """Whether ``source`` is the listening address of an S-CSCF we may select (in the
        trust domain; our own is told by :attr:`trusts`)."""
        for entry in self.scscfs:
            target = self._target(entry.uri, None)
            if target is not None and target.port == source.port and host_key(target.host) == source.host:
                return True
        return False

    # ------------------------------------------------------------------ originating
    async def originating(self, incoming: IncomingRequest, service_route: str) -> None:
        """An initial request of a UE attached without a P-CSCF: to its S-CSCF's originating
        part on ``service_route`` (TS 24.229 §5.2.6.3.2 dialogs, §5.2.6.3.7 standalone
        transactions: a preloaded Route that is not the Service-Route is replaced by it;
        RFC 3608 §6). The S-CSCF asserts its identity."""
        request = incoming.request
        request.headers.remove("route")
        branch = Branch(request.uri, routes=(f"<{service_route}>",))
        await self.proxy.forward(incoming, [branch], record_route=False)

    # ------------------------------------------------------------------ terminating
    async def terminating(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        proxy = self.proxy
        uri = request.uri
        identity = canonical(uri)
        if identity is None or not isinstance(uri, TelURI | SipURI):
            proxy.respond(incoming, 404, "Not Found")
            return
        cx = self.cx
        lir = build_lir(
            session_id=cx.session_id(),
            origin_host=cx.origin_host,
            origin_realm=cx.origin_realm,
            destination_realm=cx.destination_realm,
            destination_host=cx.destination_host,
            public_identity=identity,
        )
        try:
            lia = LocationInfoAnswer.from_message(await cx.request(lir))
        except (CxError, DiameterError) as exc:
            log.warning("LIR for %s failed: %s", identity, exc)
            proxy.respond(incoming, 480, "Temporarily Unavailable (HSS)")
            return
        if not lia.result.is_success:
            code = lia.result.experimental_result_code
            if code == ExperimentalResultCode.DIAMETER_ERROR_USER_UNKNOWN:
                proxy.respond(incoming, 404, "Not Found")
            else:  # IDENTITY_NOT_REGISTERED and anything else
                proxy.respond(incoming, 480, "Temporarily Unavailable")
            return
        target = self._target(lia.server_name, lia.server_capabilities)
        if target is None:
            proxy.respond(incoming, 480, "Temporarily Unavailable (no S-CSCF)")
            return
        branch = Branch(request.uri, target=target)
        if lia.wildcarded_public_identity:
            branch.remove = ("P-Profile-Key",)
            branch.headers = [("P-Profile-Key", f"<{lia.wildcarded_public_identity}>")]
        await proxy.forward(incoming, [branch], record_route=False)
