"""The lab IMS core in one process: HSS + I-CSCF + S-CSCF (+ the media IWF as MRF).

::

    core = await start_labcore(config)          # webims.config.Config
    print(core.icscf_uri, core.scscf.service_route)
    ...
    await core.stop()

Used by ``webims serve labcore`` (:func:`serve`), by the tests, and by
``webims demo``. With ``[labcore] hss = "embedded"`` the HSS of ``[hss]`` runs in
the process (on the subscriber database of ``[state]``, or the ``subscribers``
given); with ``"remote"`` the CSCFs connect to ``hss_host:hss_port``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Literal

from webims.config import Config
from webims.endpoint import Target, target_of
from webims.media.api import MediaIWF
from webims.sip import ParseError, TimerSettings, parse_uri
from webims.transport.loop import GcPolicy, stop_on_signals
from webims.transport.loop import run as run_loop

from .cx_client import DiameterClient
from .flows import CoreElements
from .hss import AdminServer, HssConfig, HssServer, SubscriberStore, running_hss
from .icscf import ICscf
from .local_hop import LocalHop
from .scscf import SCscf
from .settings import LabCoreConfig, ScscfEntry

__all__ = ["LabCore", "serve", "start_labcore"]

log = logging.getLogger("webims.labcore")


@dataclass(eq=False)
class LabCore:
    """A running lab core. ``hss``/``hss_admin`` are None with a remote HSS; ``iwf`` is the
    media IWF the S-CSCF inserts as MRF (None: no media interworking)."""

    config: LabCoreConfig
    icscf: ICscf
    scscf: SCscf
    icscf_cx: DiameterClient
    scscf_cx: DiameterClient
    hss: HssServer | None = None
    hss_admin: AdminServer | None = None
    iwf: MediaIWF | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def domain(self) -> str:
        return self.config.domain

    @property
    def icscf_uri(self) -> str:
        """Where a P-CSCF (the gateway) sends REGISTERs and terminating requests (Mw)."""
        return self.icscf.uri

    @property
    def scscf_uri(self) -> str:
        return self.scscf.uri

    @property
    def icscf_address(self) -> tuple[str, int]:
        return self.icscf.address

    @property
    def scscf_address(self) -> tuple[str, int]:
        return self.scscf.address

    @property
    def subscribers(self) -> SubscriberStore | None:
        return self.hss.subscribers if self.hss is not None else None

    async def stop(self) -> None:
        """Stop the CSCFs, their Diameter connections (DPR), the IWF if ours, then the HSS."""
        await self._stack.aclose()


async def start_labcore(
    config: Config,
    *,
    subscribers: SubscriberStore | None = None,
    iwf: MediaIWF | Literal["auto"] | None = "auto",
    timers: TimerSettings | None = None,
    connect_timeout: float = 10.0,
) -> LabCore:
    """Start the lab core described by ``config`` and return it once Cx is up.

    ``subscribers``: the embedded HSS's store (default: the ``[state]`` database).
    ``iwf``: a media IWF to use as MRF; ``"auto"`` starts the embedded one when
    ``[labcore] media_interworking = "auto"``; None disables media interworking.
    """
    settings = config.get(LabCoreConfig)
    stack = contextlib.AsyncExitStack()
    try:
        hss = admin = None
        hss_identity: str | None
        if settings.hss == "embedded":
            hss, admin = await stack.enter_async_context(running_hss(config, subscribers=subscribers))
            hss_settings = config.get(HssConfig)
            hss_host = hss.host if hss.host not in ("0.0.0.0", "::") else "127.0.0.1"
            hss_port, hss_identity = hss.port, settings.hss_identity or hss_settings.origin_host
            hss_realm = hss_settings.origin_realm
        else:
            hss_host, hss_port = settings.hss_host, settings.hss_port
            hss_identity, hss_realm = settings.hss_identity, settings.hss_realm
        media: MediaIWF | None = None
        if iwf == "auto":
            if settings.media_interworking == "auto":
                media = await _embedded_iwf(settings, stack)
        else:
            media = iwf
        clients = []
        for origin in (settings.icscf_origin_host, settings.scscf_origin_host):
            client = DiameterClient(
                origin_host=origin,
                origin_realm=settings.origin_realm,
                peer_host=hss_host,
                peer_port=hss_port,
                destination_realm=hss_realm,
                destination_host=hss_identity,
                request_timeout=settings.cx_timeout,
                product_name="webims-cscf",
            )
            clients.append(client)
            stack.push_async_callback(client.close)
        icscf_cx, scscf_cx = clients
        # the elements of this core tell each other by (transport, host, port): on loopback
        # every sender is 127.0.0.1 (webims.labcore.flows)
        elements = CoreElements()
        icscf = ICscf(settings, icscf_cx, [], timers=timers)
        icscf.core = elements
        await icscf.start()
        stack.push_async_callback(icscf.stop)
        scscf = SCscf(
            settings,
            scscf_cx,
            iwf=media,
            icscf_uri=icscf.uri,
            core_hosts=(settings.host, settings.uri_host),
            core=elements,
            timers=timers,
        )
        await scscf.start()
        stack.push_async_callback(scscf.stop)
        # P-CSCF duties for SIP phones registered without one (webims.labcore.attached)
        icscf.originating_route = scscf.originating_route
        icscf.trusts = scscf.trusts
        icscf.scscfs = [ScscfEntry(scscf.server_name, settings.capabilities), *settings.scscf_entries]
        _add_local_hop(icscf, scscf)
        if hss is not None:  # Cx requests to the embedded HSS skip the messages and TCP
            for client in clients:
                client.local = hss.answer_local
                client.local_cx = hss.local_cx
        opened = await asyncio.gather(*(c.start(wait=connect_timeout) for c in clients))
        if not all(opened):
            log.warning("Cx to the HSS at %s:%d not open yet (the CSCFs keep trying)", hss_host, hss_port)
        core = LabCore(settings, icscf, scscf, icscf_cx, scscf_cx, hss, admin, media, stack)
    except BaseException:
        await stack.aclose()
        raise
    log.info("lab core up: I-CSCF %s, S-CSCF %s, domain %s", icscf.uri, scscf.uri, settings.domain)
    return core


def _add_local_hop(icscf: ICscf, scscf: SCscf) -> None:
    """REGISTERs the I-CSCF sends to this S-CSCF (by its Server-Name or listen address) are
    handed over in-process (:mod:`webims.labcore.local_hop`)."""
    config = scscf.config
    host = config.host if config.host not in ("0.0.0.0", "::") else "127.0.0.1"
    wire = Target(config.transports[0].upper(), host, scscf.port)
    sender = (host, icscf.port)
    hop = LocalHop(scscf.endpoint, scscf.on_request, wire, icscf.endpoint, sender)
    keys = {(host, scscf.port), (config.host, scscf.port), (config.uri_host, scscf.port)}
    with contextlib.suppress(ParseError, ValueError):
        named = target_of(parse_uri(scscf.server_name))
        keys.add((named.host, named.port))
    for key in keys:
        icscf.local_hops[key] = hop


async def _embedded_iwf(settings: LabCoreConfig, stack: contextlib.AsyncExitStack) -> MediaIWF:
    from webims.media.embedded import EmbeddedConfig, EmbeddedMediaIWF

    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
    iwf = EmbeddedMediaIWF(EmbeddedConfig(webrtc_addresses=(host,), ims_address=host))
    await iwf.start()
    stack.push_async_callback(iwf.close)
    return iwf


def serve(config: Config) -> int:
    """``webims serve labcore``: run the lab core until SIGINT/SIGTERM; returns the exit status."""

    async def main() -> None:
        stop = stop_on_signals()
        core = await start_labcore(config)
        settings = core.config
        print(
            f"lab IMS core for {settings.domain}: I-CSCF {core.icscf_uri}, S-CSCF {core.scscf_uri}"
            + (f", HSS {core.hss.host}:{core.hss.port}" if core.hss is not None else ""),
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            await core.stop()

    # GcPolicy: the transaction layer keeps each request and response for Timer J/K
    # (RFC 3261 §17), hundreds of objects per registration; CPython's default collector
    # settings spend about a third of the core's CPU traversing them.
    run_loop(main(), gc_policy=GcPolicy())
    return 0
