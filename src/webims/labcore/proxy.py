"""The stateful proxy core the lab I-CSCF and S-CSCF share (RFC 3261 §16).

:class:`ProxyCore` runs on a :class:`~webims.endpoint.SipEndpoint` created with
``uas_core=False`` (the transaction layer then leaves CANCEL and 2xx handling to
us) and provides:

- :meth:`ProxyCore.forward`: forward a request to one or more :class:`Branch`
  targets in parallel (§16.6 request forwarding, §16.7 response processing:
  provisional responses relayed at once, 2xx forwarded at once and the other
  INVITE branches cancelled, otherwise the best final response chosen when every
  branch has finished, 6xx cancelling the rest, 503 turned into 500);
- CANCEL (§16.10): 200 to the CANCEL, every pending branch cancelled, and an
  INVITE still being routed (e.g. waiting for the HSS) answered 487;
- stateless forwarding of ACKs for 2xx (§16.11) and of stray 2xx responses
  (§16.7 step 9 applied statelessly, RFC 6026 §8.10 leaves them to the core);
- loose routing helpers (§16.4: removing our own Route entries, §16.6 step 4
  Record-Route).

A branch may carry an async ``on_response`` hook that rewrites each response
before it goes upstream (the S-CSCF's MRF rewrites SDP this way); responses of a
branch are processed strictly in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from webims.endpoint import IncomingRequest, SipEndpoint, Target
from webims.sip import URI, ParseError, Request, Response, ServerKey, SipURI, new_branch, new_tag
from webims.transport import Connection, host_key, response_destination
from webims.transport.base import TransportError as TransportFailure

__all__ = ["Branch", "ProxyCore", "ResponseHook", "best_response"]

log = logging.getLogger("webims.labcore.proxy")

ResponseHook = Callable[[Response], Awaitable[Response]]

#: Timer C (RFC 3261 §16.6 step 11): an INVITE branch with no final response this long is cancelled.
TIMER_C = 180.0
DEFAULT_MAX_FORWARDS = 70


@dataclass
class Branch:
    """One forwarding target (a "target" of RFC 3261 §16.5).

    ``uri`` becomes the Request-URI; ``routes`` are pushed on top of the Route
    header field (RFC 3327 §5.4: the Path of a registered contact); ``target``
    overrides the next hop (else the first Route, else the Request-URI, §16.6
    step 7); ``headers`` are added and ``remove`` removed; ``body`` replaces the
    body (with ``content_type``); ``on_response`` rewrites each response.
    """

    uri: URI
    routes: Sequence[str] = ()
    target: Target | None = None
    headers: Sequence[tuple[str, str]] = ()
    remove: Sequence[str] = ()
    body: bytes | None = None
    content_type: str | None = None
    on_response: ResponseHook | None = None
    data: Any = None


@dataclass(eq=False)
class _Run:
    branch: Branch
    request: Request | None = None
    done: bool = False
    final: Response | None = None
    cancelled: bool = False
    timer_c: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class _Context:
    incoming: IncomingRequest
    runs: list[_Run] = field(default_factory=list)
    cancelled: bool = False
    answered: bool = False  # a final response went upstream
    responses: list[Response] = field(default_factory=list)

    @property
    def is_invite(self) -> bool:
        return self.incoming.request.method == "INVITE"


#: host_key parses IP addresses; the few hosts a CSCF sees are worth remembering.
_host_key = functools.lru_cache(maxsize=4096)(host_key)


def best_response(responses: Sequence[Response]) -> Response:
    """The response to forward when no 2xx arrived (RFC 3261 §16.7 step 6): a 6xx if
    any, else the lowest class, earliest first; 503 becomes 500."""
    six = [r for r in responses if r.status >= 600]
    chosen = six[0] if six else min(responses, key=lambda r: r.status // 100)
    if chosen.status == 503:
        chosen.status, chosen.reason = 500, "Server Internal Error"
    return chosen


class ProxyCore:
    """Stateful forwarding for one SIP element (see the module docstring).

    ``own`` are the (host, port) pairs this element listens on; ``aliases`` host
    names that also mean us; ``record_route`` our Record-Route URI (§16.6 step 4).
    """

    def __init__(
        self,
        endpoint: SipEndpoint,
        own: Iterable[tuple[str, int]],
        *,
        aliases: Iterable[str] = (),
        record_route: str | None = None,
        timer_c: float = TIMER_C,
    ) -> None:
        self.endpoint = endpoint
        self.own = {(host_key(h), p) for h, p in own}
        self.own_hosts = {h for h, _ in self.own} | {host_key(a) for a in aliases}
        self.own_ports = {p for _, p in self.own}
        self.record_route = record_route
        self.timer_c = timer_c
        self._contexts: dict[ServerKey, _Context] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        endpoint.on_ack = self.handle_ack
        endpoint.on_stray_response = self.handle_stray_response

    # ------------------------------------------------------------------ identity
    def is_own(self, uri: URI | None) -> bool:
        """Whether ``uri`` designates this element (host and port; default port 5060)."""
        if not isinstance(uri, SipURI):
            return False
        host = _host_key(uri.param("maddr") or uri.host)
        if host not in self.own_hosts:
            return False
        port = uri.port or (5061 if uri.scheme == "sips" else 5060)
        return port in self.own_ports

    def pop_own_routes(self, request: Request) -> list[SipURI]:
        """Remove our own entries from the top of Route (§16.4); returns them (their
        user part and parameters may carry meaning, e.g. the S-CSCF's ``orig``)."""
        popped: list[SipURI] = []
        while True:
            routes = request.route
            if not routes or not self.is_own(routes[0].uri):
                return popped
            uri = routes[0].uri
            assert isinstance(uri, SipURI)
            popped.append(uri)
            request.headers.pop_first("route")

    # ------------------------------------------------------------------ contexts
    def context(self, incoming: IncomingRequest) -> _Context:
        """The forwarding state of a server transaction, created on first use (so that a
        CANCEL can find an INVITE still being routed)."""
        ctx = self._contexts.get(incoming.key)
        if ctx is None:
            ctx = self._contexts[incoming.key] = _Context(incoming)
        return ctx

    def release(self, incoming: IncomingRequest) -> None:
        self._contexts.pop(incoming.key, None)

    def is_cancelled(self, incoming: IncomingRequest) -> bool:
        ctx = self._contexts.get(incoming.key)
        return ctx is not None and ctx.cancelled

    def respond(
        self,
        incoming: IncomingRequest,
        status: int,
        reason: str | None = None,
        *,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """Answer locally (a To tag is added to final responses, §8.2.6.2 / §16.7)."""
        if incoming.request.method == "INVITE" and self.is_cancelled(incoming):
            status, reason, headers = 487, None, ()
        tag = new_tag() if status >= 200 and incoming.request.to.tag is None else None
        ctx = self._contexts.get(incoming.key)
        if ctx is not None and status >= 200:
            ctx.answered = True
        return incoming.respond(status, reason, to_tag=tag, headers=headers)

    # ------------------------------------------------------------------ forwarding
    def make_request(self, original: Request, branch: Branch, *, record_route: bool) -> Request:
        """The request to send on ``branch`` (§16.6 steps 1-6)."""
        headers = original.headers.copy()
        request = Request(original.method, branch.uri, headers, original.body)
        for name in branch.remove:
            headers.remove(name)
        mf = original.max_forwards
        headers.set("Max-Forwards", str(DEFAULT_MAX_FORWARDS if mf is None else mf - 1))
        if record_route and self.record_route is not None:
            headers.add("Record-Route", f"<{self.record_route}>", first=True)
        for route in reversed(branch.routes):
            headers.add("Route", route, first=True)
        for name, value in branch.headers:
            headers.add(name, value)
        if branch.body is not None:
            request.body = branch.body
            if branch.content_type is not None:
                headers.set("Content-Type", branch.content_type)
        return request

    async def forward(
        self,
        incoming: IncomingRequest,
        branches: Sequence[Branch],
        *,
        record_route: bool = False,
    ) -> Response:
        """Forward ``incoming`` on every branch in parallel and answer it upstream (§16.6-§16.7).

        Returns the final response that went upstream (the first 2xx for INVITE).
        """
        ctx = self.context(incoming)
        try:
            if ctx.cancelled:
                return self.respond(incoming, 487)
            if not branches:
                return self.respond(incoming, 480)
            ctx.runs = [_Run(b) for b in branches]
            if len(branches) == 1 and branches[0].on_response is None and not ctx.is_invite:
                await self._run_direct(ctx, ctx.runs[0], record_route)  # e.g. every REGISTER
            else:
                await asyncio.gather(*(self._run_branch(ctx, run, record_route) for run in ctx.runs))
            if ctx.answered:
                sent = [r for r in ctx.responses if 200 <= r.status < 300]
                return sent[0] if sent else ctx.responses[-1]
            if not ctx.responses:
                return self.respond(incoming, 500)
            chosen = best_response(ctx.responses)
            ctx.answered = True
            incoming.send(chosen)
            return chosen
        finally:
            self.release(incoming)

    async def _connect(self, ctx: _Context, run: _Run, request: Request) -> Connection | None:
        """The connection for ``run``'s next hop, or None once a local final response is recorded."""
        try:
            target = run.branch.target or self.endpoint.next_hop(request)
            conn = await self.endpoint.connect(target)
        except (TransportFailure, OSError, ValueError) as exc:
            log.info("cannot reach %s for %s: %s", run.branch.uri, request.method, exc)
            self._record_final(ctx, run, local_response(request, 503, ours_on_top=False))
            return None
        if ctx.cancelled:
            self._record_final(ctx, run, local_response(request, 487, ours_on_top=False))
            return None
        return conn

    async def _run_direct(self, ctx: _Context, run: _Run, record_route: bool) -> None:
        """One non-INVITE branch without a response hook: the same steps as
        :meth:`_run_branch`, with responses handled as they arrive (no queue, no task)."""
        request = self.make_request(ctx.incoming.request, run.branch, record_route=record_route)
        try:
            conn = await self._connect(ctx, run, request)
            if conn is None:
                return
            SipEndpoint.add_via(request, conn, new_branch())
            run.request = request
            final = await self.endpoint.request(
                request, conn, on_provisional=functools.partial(self._relay_provisional, ctx)
            )
            self._record_final(ctx, run, final)
        finally:
            run.done = True

    async def _run_branch(self, ctx: _Context, run: _Run, record_route: bool) -> None:
        branch = run.branch
        original = ctx.incoming.request
        request = self.make_request(original, branch, record_route=record_route)
        conn = await self._connect(ctx, run, request)
        if conn is None:
            return
        SipEndpoint.add_via(request, conn, new_branch())
        run.request = request
        queue: asyncio.Queue[Response] = asyncio.Queue()

        def extra_final(response: Response) -> None:
            if run.done:
                self.spawn(self._late_2xx(ctx, run, response))
            else:
                queue.put_nowait(response)

        async def send() -> None:
            final = await self.endpoint.request(
                request, conn, on_provisional=queue.put_nowait, on_extra_final=extra_final
            )
            queue.put_nowait(final)

        sender = asyncio.ensure_future(send())
        if original.method == "INVITE" and self.timer_c > 0:
            run.timer_c = asyncio.get_running_loop().call_later(self.timer_c, self._cancel_run, run)
        try:
            while True:
                response = await self._transform(run, await queue.get())
                if response.status < 200:
                    self._relay_provisional(ctx, response)
                    continue
                self._record_final(ctx, run, response)
                break
            while not queue.empty():  # further 2xx already queued (forking downstream)
                late = await self._transform(run, queue.get_nowait())
                if 200 <= late.status < 300:
                    self._relay_2xx(ctx, late)
        finally:
            run.done = True
            if run.timer_c is not None:
                run.timer_c.cancel()
            if not sender.done():
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender

    async def _transform(self, run: _Run, response: Response) -> Response:
        hook = run.branch.on_response
        if hook is None or response.status == 100:
            return response
        try:
            return await hook(response)
        except Exception:
            log.exception("response hook failed")
            if run.request is None:
                return response
            return local_response(run.request, 500, ours_on_top=True)

    async def _late_2xx(self, ctx: _Context, run: _Run, response: Response) -> None:
        response = await self._transform(run, response)
        if 200 <= response.status < 300:
            self._relay_2xx(ctx, response)

    @staticmethod
    def _strip_via(response: Response) -> Response:
        response.headers.pop_first("via")
        return response

    def _relay_provisional(self, ctx: _Context, response: Response) -> None:
        if response.status == 100 or ctx.answered:
            return  # 100 is hop by hop (§16.7 step 5)
        ctx.incoming.send(self._strip_via(response))

    def _relay_2xx(self, ctx: _Context, response: Response) -> None:
        """Forward a 2xx upstream, even after another one (forking, §16.7 step 5;
        RFC 6026 §8.7 lets the INVITE server transaction send them all)."""
        self._strip_via(response)
        ctx.responses.append(response)
        if ctx.answered and not ctx.is_invite:
            return
        ctx.answered = True
        ctx.incoming.final_sent = False  # IncomingRequest.send drops anything after a final
        ctx.incoming.send(response)

    def _record_final(self, ctx: _Context, run: _Run, response: Response) -> None:
        run.final = response
        status = response.status
        if 200 <= status < 300:
            self._relay_2xx(ctx, response)
            if ctx.is_invite:
                self._cancel_others(ctx, run)  # §16.7 step 10
            return
        self._strip_via(response)
        ctx.responses.append(response)
        if status >= 600:
            self._cancel_others(ctx, run)  # §16.7 step 5

    def _cancel_others(self, ctx: _Context, winner: _Run | None) -> None:
        for run in ctx.runs:
            if run is not winner and not run.done:
                self._cancel_run(run)

    def _cancel_run(self, run: _Run) -> None:
        if run.cancelled or run.done:
            return
        run.cancelled = True
        if run.request is not None and run.request.method == "INVITE":
            self.endpoint.cancel(run.request)

    def cancel(self, incoming: IncomingRequest) -> None:
        """Cancel the forwarding of ``incoming`` (the INVITE a CANCEL matched)."""
        ctx = self.context(incoming)
        ctx.cancelled = True
        self._cancel_others(ctx, None)

    # ------------------------------------------------------------------ CANCEL / ACK / stray
    def handle_cancel(self, incoming: IncomingRequest) -> None:
        """A CANCEL (§16.10): 200 when it matches a transaction we forward, else 481."""
        key = self.endpoint.layer.cancel_target(incoming.request)
        ctx = self._contexts.get(key) if key is not None else None
        if ctx is None:
            incoming.respond(481, to_tag=new_tag())
            return
        incoming.respond(200, to_tag=incoming.request.to.tag or new_tag())
        self.cancel(ctx.incoming)
        if not ctx.runs and not ctx.answered:
            self.respond(ctx.incoming, 487)  # still routing (e.g. waiting for the HSS)

    def handle_ack(self, request: Request, conn: Connection) -> None:
        """An ACK for a 2xx (§13.2.2.4): forwarded statelessly along its Route (§16.11)."""
        self.spawn(self._forward_stateless(request))

    async def _forward_stateless(self, request: Request) -> None:
        try:
            self.pop_own_routes(request)
            if not request.route and self.is_own(request.uri):
                return  # addressed to us; nothing to do for an ACK
            mf = request.max_forwards
            if mf is not None and mf <= 0:
                return
            request.headers.set("Max-Forwards", str(DEFAULT_MAX_FORWARDS if mf is None else mf - 1))
            conn = await self.endpoint.connect(self.endpoint.next_hop(request))
        except (TransportFailure, OSError, ValueError, ParseError) as exc:
            log.info("cannot forward %s: %s", request.method, exc)
            return
        SipEndpoint.add_via(request, conn, new_branch())
        self.endpoint.send_stateless(request, conn)

    def handle_stray_response(self, response: Response, conn: Connection) -> None:
        """A response no client transaction wants (a 2xx retransmission after Timer M):
        forwarded by its next Via when the top one is ours."""
        self.spawn(self._forward_response(response))

    async def _forward_response(self, response: Response) -> None:
        try:
            vias = response.via
            if len(vias) < 2:
                return
            top = vias[0]
            if _host_key(top.host) not in self.own_hosts:
                return
            response.headers.pop_first("via")
            nxt = response.top_via
            host, port = response_destination(nxt)
            out = await self.endpoint.transport.connect(nxt.transport, host, port)
            out.send(response)
        except (TransportFailure, OSError, ValueError, ParseError) as exc:
            log.info("cannot forward a stray response: %s", exc)

    # ------------------------------------------------------------------ tasks
    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def local_response(request: Request, status: int, *, ours_on_top: bool) -> Response:
    """A final response generated here for a request we forward on a branch.

    It must look like a response received on that branch: our Via on top, which
    the relaying code strips (a placeholder is pushed when our Via was never added).
    """
    if not ours_on_top:
        request.headers.add("Via", f"SIP/2.0/UDP invalid;branch={new_branch()}", first=True)
    return request.response(status, to_tag=new_tag())


async def listen(
    endpoint: SipEndpoint, host: str, port: int, transports: Sequence[str], *, attempts: int = 20
) -> int:
    """Listen on ``host:port`` for every transport (UDP and/or TCP, the same port for all);
    port 0 picks a port free for all of them. Returns the port."""
    wanted = [t.lower() for t in transports]
    for _ in range(attempts if port == 0 else 1):
        chosen = port
        opened: list[Any] = []
        try:
            for transport in wanted:
                if transport == "udp":
                    listener: Any = await endpoint.transport.listen_udp(host, chosen)
                else:
                    listener = await endpoint.transport.listen_tcp(host, chosen)
                opened.append(listener)
                chosen = chosen or int(listener.local[1])
            return chosen
        except OSError:
            if port != 0:
                raise
            for listener in opened:
                listener.close()
    raise OSError(f"no port free for {wanted} on {host}")
