"""The lab S-CSCF (TS 24.229 §5.4): registrar, reg event notifier, session routing, MRFC.

::

    cx = DiameterClient(origin_host="scscf.ims.test", origin_realm="ims.test",
                        peer_host="127.0.0.1", peer_port=3868)
    scscf = SCscf(config, cx, icscf_uri="sip:127.0.0.1:5070")
    await cx.start(); await scscf.start()
    ...
    await scscf.deregister("sip:alice@ims.test")     # administrative de-registration
    await scscf.stop()

Parts: :mod:`.scscf_registrar` (REGISTER, Cx MAR/SAR, RTR/PPR), :mod:`.regevent`
(SUBSCRIBE/NOTIFY reg), :mod:`.scscf_routing` (originating/terminating routing,
forking), :mod:`.mrf` (media IWF as MRF), all on the stateful :mod:`.proxy` core.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from webims.diameter import CommandCode, DiameterError, Message, ResultCode, error_answer
from webims.endpoint import IncomingRequest, SipEndpoint
from webims.media.api import MediaIWF
from webims.sip import DEFAULT_TIMERS, ParseError, TimerSettings

from .cx_client import DiameterClient
from .flows import CoreElements, Flow
from .identities import canonical_text
from .mrf import MediaInterworking
from .proxy import ProxyCore, listen
from .regevent import RegEventServer
from .scscf_registrar import Registrar, Registration
from .scscf_routing import Router
from .settings import LabCoreConfig

__all__ = ["SCscf"]

log = logging.getLogger("webims.labcore.scscf")


class SCscf:
    """One S-CSCF on UDP and TCP (see the module docstring).

    ``icscf_uri``: where originating requests to other users of the home network go
    (the I-CSCF, for its LIR). ``core_hosts``: addresses of our own I-CSCF, behind
    which the origin of a request is read from the next Via (Trusted Node
    Authentication, UEs attached without a P-CSCF); ``core``: the lab core's elements
    in this process, which tell our I-CSCF by its port rather than its host
    (:class:`webims.labcore.flows.CoreElements`; the S-CSCF adds itself).
    ``iwf``: the media interworking function, or None.
    """

    def __init__(
        self,
        config: LabCoreConfig,
        cx: DiameterClient,
        *,
        iwf: MediaIWF | None = None,
        icscf_uri: str | None = None,
        core_hosts: Sequence[str] = (),
        core: CoreElements | None = None,
        timers: TimerSettings | None = None,
    ) -> None:
        self.config = config
        self.cx = cx
        self.icscf_uri = icscf_uri
        self.core_hosts = tuple(core_hosts)
        self.core = core
        self.endpoint = SipEndpoint(self.on_request, uas_core=False, timers=timers or DEFAULT_TIMERS)
        self.mrf = MediaInterworking(iwf if config.media_interworking == "auto" else None)
        self.port = 0
        self._proxy: ProxyCore | None = None
        self._registrar: Registrar | None = None
        self._regevent: RegEventServer | None = None
        self._router: Router | None = None
        cx.on_request = self.handle_cx

    # ------------------------------------------------------------------ names
    @property
    def uri(self) -> str:
        """``sip:host:port`` of this S-CSCF (``;transport=tcp`` when it does not listen on UDP)."""
        return f"sip:{self.config.uri_host}:{self.port}{self.config.transport_param}"

    @property
    def server_name(self) -> str:
        """Our SIP name on Cx (Server-Name, TS 29.228 §7.4)."""
        return self.config.scscf_name or self.uri

    @property
    def service_route(self) -> str:
        """The Service-Route URI (TS 24.229 §5.4.1.2.2 step 9): ``orig`` marks originating requests."""
        return f"sip:orig@{self.config.uri_host}:{self.port}{self.config.transport_param};lr"

    @property
    def record_route(self) -> str:
        return f"sip:{self.config.uri_host}:{self.port}{self.config.transport_param};lr"

    @property
    def address(self) -> tuple[str, int]:
        return (self.config.host, self.port)

    @property
    def registrar(self) -> Registrar:
        assert self._registrar is not None, "S-CSCF not started"
        return self._registrar

    @property
    def regevent(self) -> RegEventServer:
        assert self._regevent is not None, "S-CSCF not started"
        return self._regevent

    @property
    def proxy(self) -> ProxyCore:
        assert self._proxy is not None, "S-CSCF not started"
        return self._proxy

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        config = self.config
        self.port = await listen(self.endpoint, config.host, config.scscf_port, config.transports)
        own = [(config.host, self.port), (config.uri_host, self.port)]
        self._proxy = ProxyCore(self.endpoint, own, record_route=self.record_route)
        if self.core is not None:
            self.core.add(self.endpoint, config.host, self.port)
        self._regevent = RegEventServer(self.endpoint, self.uri, max_expires=config.max_subscription_expires)
        self._registrar = Registrar(
            config,
            self.cx,
            server_name=self.server_name,
            service_route=self.service_route,
            core_hosts=self.core_hosts,
            core=self.core,
            on_change=self._regevent.registration_changed,
        )
        self._router = Router(
            config,
            self._proxy,
            self._registrar,
            self._regevent,
            self.mrf,
            icscf_uri=self.icscf_uri,
            core=self.core,
        )
        log.info(
            "S-CSCF %s listening on %s:%d (%s)",
            self.server_name,
            config.host,
            self.port,
            "/".join(config.transports),
        )

    async def stop(self) -> None:
        if self._regevent is not None:
            await self._regevent.close()
        if self._registrar is not None:
            await self._registrar.close()
        if self._proxy is not None:
            await self._proxy.close()
        await self.mrf.close()
        await self.endpoint.close()

    # ------------------------------------------------------------------ SIP
    async def on_request(self, incoming: IncomingRequest) -> None:
        proxy, router = self.proxy, self._router
        assert router is not None
        request = incoming.request
        method = request.method
        if method == "CANCEL":
            proxy.handle_cancel(incoming)
            return
        if method == "ACK":
            return  # an ACK the transaction layer did not absorb: nothing to forward
        try:
            max_forwards = request.max_forwards
            to_tag = request.to.tag
        except ParseError as exc:
            proxy.respond(incoming, 400, exc.reason)
            return
        if max_forwards == 0 and method != "REGISTER":
            proxy.respond(incoming, 483)  # RFC 3261 §16.3 step 3
            return
        if method == "INVITE":
            proxy.context(incoming)  # from now on a CANCEL finds it (while the HSS is asked, too)
        try:
            if method == "REGISTER":
                proxy.pop_own_routes(request)
                await self.registrar.handle_register(incoming)
            elif to_tag is not None:
                await router.in_dialog(incoming)
            else:
                await router.initial(incoming)
        except ParseError as exc:
            if not incoming.final_sent:
                proxy.respond(incoming, 400, exc.reason)
        finally:
            proxy.release(incoming)

    # ------------------------------------------------------------------ for the I-CSCF
    def originating_route(self, source: Flow) -> str | None:
        """Our Service-Route when ``source`` is the flow of a UE registered here without a
        P-CSCF (:mod:`webims.labcore.attached`): the I-CSCF sends its requests there."""
        router = self._router
        if router is None or not router.ue_registrations(source):
            return None
        return self.service_route

    def trusts(self, source: Flow) -> bool:
        """Whether ``source`` is in the trust domain (RFC 3325 §2.3): see :meth:`Router.trusted`."""
        router = self._router
        return router is not None and router.trusted(source)

    # ------------------------------------------------------------------ Cx from the HSS
    def handle_cx(self, message: Message) -> Message | None:
        """RTR and PPR from the HSS (TS 29.229 §6.1.9, §6.1.11)."""
        code = message.command_code
        if code == CommandCode.REGISTRATION_TERMINATION and self._registrar is not None:
            return self._registrar.handle_rtr(message)
        if code == CommandCode.PUSH_PROFILE and self._registrar is not None:
            return self._registrar.handle_ppr(message)
        err = DiameterError(ResultCode.DIAMETER_COMMAND_UNSUPPORTED, "not an S-CSCF command", request=message)
        return error_answer(err, origin_host=self.cx.origin_host, origin_realm=self.cx.origin_realm)

    # ------------------------------------------------------------------ administration
    async def deregister(self, identity: str, event: str = "rejected") -> bool:
        """Network-initiated de-registration by the operator (TS 24.229 §5.4.1.5)."""
        return await self.registrar.deregister(identity, event)

    def registration(self, identity: str) -> Registration | None:
        """The active registration serving ``identity`` (any URI form), if any."""
        return self.registrar.lookup(canonical_text(identity))
