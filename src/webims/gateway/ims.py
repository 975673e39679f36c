"""The IMS side of the gateway: SIP over UDP/TCP toward the I-CSCF (Mw) or an operator P-CSCF.

:class:`ImsSide` owns the Mw :class:`~webims.endpoint.SipEndpoint` (UDP and TCP
listeners on ``mw_host:mw_port``), finds the next hop (the first Route, else the
configured I-CSCF / P-CSCF, resolved with RFC 3263 by :class:`~.resolver.Resolver`)
and sends requests with a bounded wait:

- each target is tried in turn while the failure is local (connection refused,
  transaction timeout: RFC 3263 §4.3 fail-over);
- after ``timeout`` seconds in all, :meth:`ImsSide.send` returns an
  :class:`Unreachable` 503 (our answer to the WIC carries ``Retry-After``), while the
  transaction itself runs on; ``on_late`` then gets its real final response, so a
  registration that succeeds too late can be undone (no half state).

It also makes the URIs the IMS reaches us by: the Path entry with the flow token
(RFC 3327, RFC 5626 §5.3 ``ob``), Contacts and Record-Route entries.

In the ``behind-p-cscf`` topology (seed 004) each UE registration has its own flow
(:mod:`.ueflow`: a P-CSCF without IPsec knows a UE by its source address and port, TS
24.229 §5.2.6.3.1, TS 33.203 §7.1): :meth:`ImsSide.open_flow` makes one, and ``flow=``
on :meth:`ImsSide.send` and :meth:`ImsSide.uri` sends from it and names its port. As the
P-CSCF (``p-cscf``) there is only the shared listener.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from webims.endpoint import RequestHandler, SipEndpoint, Target
from webims.sip import DEFAULT_TIMERS, Request, Response, SipURI, TimerSettings, parse_uri
from webims.transport import Connection, ConnectionLimits, host_key
from webims.transport.base import TransportError as TransportFailure

from .resolver import ResolveError, Resolver
from .settings import GatewayConfig
from .ueflow import FlowFailure, UeFlow

__all__ = ["FlowFailure", "ImsSide", "UeFlow", "Unreachable"]

log = logging.getLogger("webims.gateway.ims")


class Unreachable(Response):
    """Our own 503: no next hop answered within the bound (or none could be reached)."""

    __slots__ = ()


class ImsSide:
    """Mw (or UE-side Gm) transport, next-hop selection and bounded requests (module docstring)."""

    def __init__(
        self,
        config: GatewayConfig,
        on_request: RequestHandler,
        *,
        resolver: Resolver | None = None,
        timers: TimerSettings = DEFAULT_TIMERS,
        **transport_options: Any,
    ) -> None:
        self.config = config
        transport_options.setdefault("connection_limits", ConnectionLimits(idle_timeout=None))
        self.endpoint = SipEndpoint(on_request, timers=timers, **transport_options)
        default = config.mw_transport.upper()
        self.resolver = resolver or Resolver(config.dns_servers, default_transport=default)
        uri = parse_uri(config.icscf if config.topology == "p-cscf" else config.pcscf)
        if not isinstance(uri, SipURI):
            raise ValueError(f"next hop {uri} is not a SIP URI")
        self.next_hop = uri
        self.port = config.mw_port
        self.as_pcscf = config.topology == "p-cscf"
        self.late_responses = 0
        self._flows: dict[Target, Connection] = {}
        self.ue_flows: dict[str, UeFlow] = {}  # behind-p-cscf: each UE's own flow, by owner
        self._ue_ports: dict[int, UeFlow] = {}  # ... by local port (is_ours)
        self.on_flow_lost: Callable[[UeFlow], None] | None = None  # a UE's TCP flow to recover
        if not self.as_pcscf:
            self.endpoint.on_connection_lost = self._connection_lost

    async def start(self) -> None:
        udp = await self.endpoint.transport.listen_udp(self.config.mw_host, self.config.mw_port)
        self.port = udp.local[1]
        await self.endpoint.transport.listen_tcp(self.config.mw_host, self.port)

    async def close(self) -> None:
        flows = list(self.ue_flows.values())
        for flow in flows:
            flow.stop()
        await self.endpoint.close()
        for flow in flows:  # their ports are free again once this returns (a restart binds them)
            if flow.listener is not None:
                await flow.listener.wait_closed()
            if flow.server is not None:
                await flow.server.wait_closed()

    # ------------------------------------------------------------------ UE flows (seed 004)
    async def open_flow(self, owner: str, port: int = 0) -> UeFlow:
        """A new flow of one UE toward the P-CSCF (:mod:`.ueflow`), from ``mw_host:port`` (0:
        an ephemeral port); an open flow of ``owner`` is ended first. Raises
        :class:`FlowFailure` (no socket: e.g. out of file descriptors, the port is taken)."""
        if self.as_pcscf:
            raise FlowFailure("the P-CSCF topology has no per-UE flows")
        old = self.ue_flows.pop(owner, None)
        if old is not None:
            old.end()
        transport = "TCP" if self.config.mw_transport == "tcp" else "UDP"
        flow = UeFlow(self, owner, transport)
        target = None
        if transport == "TCP":
            targets = self.resolver.cached(self.next_hop)
            if targets is None:
                try:
                    resolving = self.resolver.resolve(self.next_hop)
                    targets = await asyncio.wait_for(resolving, self.config.ims_timeout)
                except (ResolveError, TimeoutError) as exc:
                    raise FlowFailure(f"cannot resolve {self.next_hop}: {exc or 'timeout'}") from exc
            if not targets:
                raise FlowFailure(f"no address for {self.next_hop}")
            target = targets[0]
        await flow.open(port, target)
        self.ue_flows[owner] = flow
        self._ue_ports[flow.port] = flow
        log.debug("%r open", flow)
        return flow

    def pcscf_hosts(self) -> set[str]:
        """The P-CSCF's addresses known now (behind a P-CSCF: who may connect to a UE flow)."""
        targets = self.resolver.cached(self.next_hop)
        return set() if targets is None else {host_key(t.host) for t in targets}

    def moved(self, flow: UeFlow, old: Connection | None, old_port: int) -> None:
        """A TCP flow reconnected, from ``old_port`` again or from a new one."""
        if self._ue_ports.get(old_port) is flow:
            del self._ue_ports[old_port]
        self._ue_ports[flow.port] = flow
        if old is not None and old is not flow.stream:
            old.close()

    def _connection_lost(self, conn: Connection) -> None:
        """A stream connection closed: when it was a UE's own flow, closed under it (by the
        P-CSCF, a middlebox), :attr:`on_flow_lost` recovers it (:meth:`UeFlow.recover`)."""
        flow = self._ue_ports.get(conn.local[1])
        if flow is not None and flow.lost(conn) and self.on_flow_lost is not None:
            self.on_flow_lost(flow)

    def forget(self, flow: UeFlow) -> None:
        """A flow closed (:meth:`UeFlow.end`)."""
        if self.ue_flows.get(flow.owner) is flow:
            del self.ue_flows[flow.owner]
        if self._ue_ports.get(flow.port) is flow:
            del self._ue_ports[flow.port]
        log.debug("%r closed", flow)

    # ------------------------------------------------------------------ our URIs
    def uri(
        self, user: str | None = None, *, params: str = "", flow: UeFlow | None = None, port: int = 0
    ) -> str:
        """``sip:[user@]host:port[;transport=tcp]`` on our Mw listener (or on a UE's ``flow``:
        its port; or on ``port``: a flow's former one), plus ``params``."""
        host = self.config.uri_host
        host = f"[{host}]" if ":" in host else host
        transport = ";transport=tcp" if self.config.mw_transport == "tcp" else ""
        who = f"{user}@" if user else ""
        port = port or (self.port if flow is None else flow.port)
        return f"sip:{who}{host}:{port}{transport}{params}"

    def path(self, token: str, *, outbound: bool) -> str:
        """Our Path entry (RFC 3327 §5; RFC 5626 §5.3: the flow token in the user part, ``ob``)."""
        return f"<{self.uri(token, params=';lr;ob' if outbound else ';lr')}>"

    def record_route(self, token: str, flow: UeFlow | None = None) -> str:
        return f"<{self.uri(token, params=';lr', flow=flow)}>"

    def is_ours(self, uri: object) -> bool:
        """Whether a Route / Request-URI points at our Mw listener."""
        if not isinstance(uri, SipURI):
            return False
        hosts = {host_key(self.config.uri_host), host_key(self.config.mw_host)}
        port = uri.port or 5060
        if host_key(uri.host) not in hosts:
            return False
        return port == self.port or (not self.as_pcscf and port in self._ue_ports)

    # ------------------------------------------------------------------ sending
    def send_now(self, request: Request) -> asyncio.Future[Response] | None:
        """Send ``request`` (no Via yet) at once, without a coroutine, when its next hop is one
        target we already have a flow to; the future gets the final response, bounded by the
        client transaction's own timeout (RFC 3261 §17.1.2.2 Timer F: 408). None when the hop
        must be resolved or connected first, or offers fail-over: then use :meth:`send`.
        ``request`` becomes the one sent (with our Via)."""
        routes = request.route
        hop = routes[0].uri if routes else self.next_hop
        if not isinstance(hop, SipURI):
            return None
        targets = self.resolver.cached(hop)
        if targets is None or len(targets) != 1:
            return None
        conn = self._flows.get(targets[0])
        if conn is None or conn.closed:
            return None
        SipEndpoint.add_via(request, conn)
        return self.endpoint.start_request(request, conn)

    def send(
        self,
        request: Request,
        *,
        timeout: float | None = None,
        on_late: Callable[[Response], None] | None = None,
        flow: UeFlow | None = None,
    ) -> Coroutine[Any, Any, Response]:
        """Send ``request`` (no Via yet) to its next hop (a coroutine: await it); see the module
        docstring. With ``flow`` (behind a P-CSCF: a UE's own, :mod:`.ueflow`) it leaves from
        that flow; without, no coroutine more than before (the registration hot path)."""
        if flow is None:
            return self._send(request, timeout, on_late, None)
        return self._send_on(request, timeout, on_late, flow)

    async def _send_on(
        self,
        request: Request,
        timeout: float | None,
        on_late: Callable[[Response], None] | None,
        flow: UeFlow,
    ) -> Response:
        return await flow.carry(request, lambda: self._send(request, timeout, on_late, flow))

    async def _send(
        self,
        request: Request,
        timeout: float | None,
        on_late: Callable[[Response], None] | None,
        flow: UeFlow | None,
    ) -> Response:
        limit = self.config.ims_timeout if timeout is None else timeout
        loop = self.endpoint.loop  # (asyncio.get_running_loop() asks the kernel for our pid)
        deadline = loop.time() + limit
        routes = request.route
        hop = routes[0].uri if routes else self.next_hop
        if not isinstance(hop, SipURI):
            return self.unreachable(request, "next hop is not a SIP URI")
        targets = self.resolver.cached(hop)
        if targets is None:
            try:
                targets = await asyncio.wait_for(
                    self.resolver.resolve(hop), max(0.01, deadline - loop.time())
                )
            except (ResolveError, TimeoutError) as exc:
                log.warning("cannot resolve %s: %s", hop, exc or "timeout")
                return self.unreachable(request, "next hop not found")
        for target in targets:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            attempt = request.copy()
            conn = self._flows.get(target) if flow is None else flow.connection(target)
            pending: asyncio.Future[Response]
            if conn is not None and not conn.closed:  # the usual case: no task, the transaction starts now
                SipEndpoint.add_via(attempt, conn)
                pending = self.endpoint.start_request(attempt, conn)
            else:
                pending = asyncio.ensure_future(self._attempt(attempt, target, flow))
            if not pending.done() and not await _wait(loop, pending, remaining):
                self._late(pending, on_late, flow)
                log.warning("%s to %s: no final answer within %.1f s", request.method, target, limit)
                return self.unreachable(request, "no answer from the IMS")
            response = pending.result()
            if response.status in (408, 503) and response.to.tag is None:
                log.info(
                    "%s to %s failed (%d %s); next target",
                    request.method,
                    target,
                    response.status,
                    response.reason,
                )
                self.resolver.forget(hop)
                continue
            return response
        return self.unreachable(request, "IMS unreachable")

    async def connect(self, target: Target, flow: UeFlow | None = None) -> Connection:
        """A connection to ``target``: from the UE's own ``flow`` behind a P-CSCF, else the
        endpoint's (RFC 3261 §18.1.1 reuse). Raises TransportError, FlowFailure or OSError."""
        if flow is not None:
            return await flow.connect(target)
        return await self.endpoint.connect(target)

    async def _attempt(self, request: Request, target: Target, flow: UeFlow | None) -> Response:
        try:
            if flow is not None:
                conn: Connection = await flow.connect(target)
                SipEndpoint.add_via(request, conn)
                return await self.endpoint.request(request, conn)
            known = self._flows.get(target)
            if known is not None and not known.closed:
                conn = known
            else:
                conn = await self.endpoint.connect(target)
                if len(self._flows) > 64:
                    self._flows.clear()
                self._flows[target] = conn  # UDP flows and TCP connections are reused (RFC 3261 §18.1.1)
        except (TransportFailure, FlowFailure, OSError, ValueError) as exc:
            log.info("cannot reach %s: %s", target, exc)
            return request.response(503, "Service Unavailable (next hop unreachable)")
        SipEndpoint.add_via(request, conn)
        return await self.endpoint.request(request, conn)

    def _late(
        self, task: asyncio.Future[Response], on_late: Callable[[Response], None] | None, flow: UeFlow | None
    ) -> None:
        if flow is not None:
            flow.hold()  # the flow stays open for the late answer (and its undo: on_late)

        def done(fut: asyncio.Future[Response]) -> None:
            try:
                if fut.cancelled() or fut.exception() is not None:
                    return
                self.late_responses += 1
                if on_late is not None:
                    try:
                        on_late(fut.result())
                    except Exception:
                        log.exception("late response handler failed")
            finally:
                if flow is not None:
                    flow.release()

        task.add_done_callback(done)

    def unreachable(self, request: Request, why: str) -> Unreachable:
        """Our 503 for ``request`` (with Retry-After), saying ``why``."""
        return Unreachable(
            503, f"Service Unavailable ({why})",
            [(n, v) for n, v in request.response(503).headers]
            + [("Retry-After", str(self.config.retry_after))],
        )  # fmt: skip


async def _wait(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Response], timeout: float) -> bool:
    """Wait for ``future`` at most ``timeout`` seconds without cancelling it (it runs on:
    see ``on_late``); True when it is done. One waiter and one loop timer: cheaper than
    ``wait_for(shield(task))``, which it replaces on the registration path."""
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    handle = loop.call_later(timeout, wake)
    try:
        await waiter
    finally:
        handle.cancel()
        future.remove_done_callback(wake)
    return future.done()
