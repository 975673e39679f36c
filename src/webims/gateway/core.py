"""The gateway assembled: WIC side, IMS side, bindings, modes, pools, reg events, routing.

:class:`Gateway` is the Web Signalling Translator of seed 004 / the WebRTC Signalling
Function (eP-CSCF) of seed 000. It holds the shared state (the
:class:`~.state.BindingTable`, the flow-token key, the token verifier, the state
store) and dispatches requests:

- from a WIC (WebSocket): rate limits first (:mod:`.ratelimit`), then REGISTER to
  the :class:`~.registrar.Registrar`, the rest to the :class:`~.proxy.Router`
  (sessions: ``sessions``, issue 7);
- from the IMS: the :class:`~.proxy.Router` (reg-event NOTIFYs, requests for WICs).

Usage (see :mod:`.run` for the process around it)::

    gateway = Gateway(config, store=SqliteRegistrationStore(store), auth=auth_service)
    gateway.mount(app, path="/sip", origins=["https://127.0.0.1:8443"])
    await gateway.start()
    ...
    await gateway.close()
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import logging
import re
import time
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiohttp import WSCloseCode, web

from webims.auth.errors import InsufficientScope, InvalidToken, TokenError
from webims.auth.identity import Identity
from webims.auth.sessions import cookie_value
from webims.endpoint import IncomingRequest
from webims.sip import (
    DEFAULT_LIMITS,
    DEFAULT_TIMERS,
    Limits,
    NameAddr,
    ParseError,
    Request,
    TimerSettings,
    parse_name_addr,
)
from webims.sip.auth_header import AuthParam, Challenge, parse_credentials
from webims.transport import Connection, ConnectionLimits

from .ims import FlowFailure, ImsSide, UeFlow
from .modes import Modes
from .policy import PASSWORD_SCHEME, Policy, Presented
from .pool import PoolRegistrar, PoolRegistration
from .proxy import Router
from .ratelimit import RateLimiter
from .regevent import RegEvents
from .registrar import Registrar
from .regmsg import RegisterBuilder, contact_without_expires
from .resolver import Resolver
from .settings import GatewayConfig
from .state import Binding, BindingTable, MemoryRegistrationStore, RegistrationStore
from .wic import Flow, FlowTokens, WicSide

if TYPE_CHECKING:
    from webims.auth.service import AuthService
    from webims.auth.verify import TokenVerifier
    from webims.sip import DialogId

__all__ = ["Gateway", "SessionHandler"]

log = logging.getLogger("webims.gateway")

T = TypeVar("T")
_NO_CLAIMS: Mapping[str, Any] = types.MappingProxyType({})
#: How long a verified token's signature is trusted (None: until the token expires); each
#: use still re-checks expiry, revocation, pool lease and scope (TokenVerifier.recheck).
TOKEN_CACHE_SECONDS: float | None = None
TOKEN_CACHE_SIZE = 50_000
#: UE flows opened together when restored after a restart (:meth:`Gateway.restore_flows`).
RESTORE_BATCH = 64


class SessionHandler(Protocol):
    """What the session B2BUA (issue 7) plugs in as ``Gateway.sessions``."""

    async def from_wic(self, incoming: IncomingRequest, flow: Flow) -> None: ...

    async def from_ims(self, incoming: IncomingRequest, binding: Binding) -> None: ...

    def owns_dialog(self, dialog_id: DialogId) -> bool: ...  # one of its B2BUA dialogs

    async def start(self) -> None: ...  # issue 7: its media IWF

    async def close(self) -> None: ...  # issue 7: BYE to every call, stop the IWF


class Gateway:
    """The eP-CSCF / Web Signalling Translator (module docstring)."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        store: RegistrationStore | None = None,
        auth: AuthService | None = None,
        verifier: TokenVerifier | None = None,
        resolver: Resolver | None = None,
        limits: Limits = DEFAULT_LIMITS,
        connection_limits: ConnectionLimits | None = None,
        ims_timers: TimerSettings = DEFAULT_TIMERS,
        token_cache_seconds: float | None = TOKEN_CACHE_SECONDS,
    ) -> None:
        self.config = config
        self.store: RegistrationStore = store if store is not None else MemoryRegistrationStore()
        self.auth = auth
        self.verifier = verifier if verifier is not None else (auth.verifier() if auth is not None else None)
        self.bindings = BindingTable()
        self.policy = Policy(config.modes, config.mode_rules)
        self.limiter = RateLimiter(
            register_rate=config.register_rate, register_burst=config.register_burst,
            source_register_rate=config.source_register_rate,
            source_register_burst=config.source_register_burst,
            request_rate=config.request_rate, request_burst=config.request_burst,
            max_violations=config.max_violations,
        )  # fmt: skip
        self.wic = WicSide(
            self._on_wic_request,
            on_flow_closed=self._flow_closed,
            limits=limits,
            connection_limits=connection_limits or ConnectionLimits(),
        )
        self.ims = ImsSide(config, self._on_ims_request, resolver=resolver, timers=ims_timers, limits=limits)
        self.ims.endpoint.on_request_now = self._on_ims_request_now
        self.ims.on_flow_lost = self._ue_flow_lost
        self.register_builder = RegisterBuilder(
            as_pcscf=self.ims.as_pcscf, pvni=config.pvni, generated_at=config.uri_host,
            access_network_info=config.access_network_info,
        )  # fmt: skip
        self.registrar = Registrar(self)
        self.modes = Modes(self)
        self.router = Router(self)
        self.regevents = RegEvents(self)
        self.pools = PoolRegistrar(self)
        self.sessions: SessionHandler | None = None
        self.tokens = FlowTokens(b"\0" * 32)  # replaced by the stored key in start()
        self.token_cache_seconds = token_cache_seconds
        self._token_cache: collections.OrderedDict[bytes, tuple[float, Identity]] = collections.OrderedDict()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._next_recovery = 0.0  # loop time of the next UE flow reconnection slot
        self.started = False

    # ------------------------------------------------------------------ lifecycle
    def mount(
        self,
        app: web.Application,
        *,
        path: str = "/sip",
        origins: Iterable[str] = (),
        allow_same_origin: bool = True,
        allow_missing_origin: bool = False,
        heartbeat: float | None = None,
    ) -> None:
        """Add the SIP WebSocket route to ``app`` (the web server's, before it starts)."""
        self.wic.mount(
            app,
            path=path,
            origins=origins,
            allow_same_origin=allow_same_origin,
            allow_missing_origin=allow_missing_origin,
            heartbeat=heartbeat,
        )

    async def start(self) -> None:
        """Open the IMS side, restore persisted registrations, register pools."""
        self.tokens = FlowTokens(await self.store.secret("flow-token-key"))
        await self.ims.start()
        now = time.time()
        restored = 0
        for record in await self.store.load("binding", now):
            try:
                binding = Binding.from_record(record)
            except TypeError:
                continue
            self.registrar.restored(binding, self.config.restart_grace)
            restored += 1
        for binding in self.bindings:
            self.regevents.ensure(binding)
        if restored:
            log.info("restored %d registrations from the state store", restored)
        pool_regs = await self.pools.load()
        back: set[str] = set()
        if not self.ims.as_pcscf and (restored or pool_regs):
            back = await self.restore_flows(pool_regs)
        await self.pools.start(pool_regs, back)
        if self.sessions is not None:  # issue 7: the session B2BUA (its media IWF)
            await self.sessions.start()
        self.started = True

    async def close(self) -> None:
        """Stop: the registrations stay (in the store) for the next start."""
        if self.sessions is not None:  # issue 7: calls end (BYE) while both sides are still up
            await self.sessions.close()
        self.registrar.stop()
        self.pools.close()
        await self.regevents.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.flush()
        await self.wic.close()
        await self.ims.close()
        await self.store.close()

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("gateway task failed", exc_info=task.exception())

    async def run_sync(self, fn: Callable[[], T]) -> T:
        """Run a blocking call (SQLite of the authorization function) off the event loop."""
        if self.auth is not None:
            return await self.auth.store.call(fn)
        return await asyncio.get_running_loop().run_in_executor(None, fn)

    # ------------------------------------------------------------------ dispatch
    async def _on_wic_request(self, incoming: IncomingRequest) -> None:
        conn = incoming.connection
        flow = self.wic.flow(conn.id)
        if flow is None:  # not a WebSocket flow (or already closed)
            if incoming.request.method != "ACK":
                incoming.respond(403, "Forbidden (WebSocket flows only)")
            return
        request = incoming.request
        decision = self.limiter.check(
            conn.id, flow.remote_host, request.method, self.ims.endpoint.loop.time()
        )
        if not decision.allowed:
            if request.method != "ACK":
                incoming.respond(
                    503,
                    "Service Unavailable (rate limited)",
                    headers=[("Retry-After", str(decision.retry_after))],
                )
            if decision.close:
                self.wic.close_flow(conn, "too many requests")
            return
        if request.method == "REGISTER":
            await self.registrar.handle(incoming, flow)
        else:
            await self.router.from_wic(incoming, flow)

    async def _on_ims_request(self, incoming: IncomingRequest) -> None:
        await self.router.from_ims(incoming)

    def _on_ims_request_now(self, incoming: IncomingRequest) -> bool:
        """The reg-event NOTIFY of every registration, answered without a task of its own."""
        if self.regevents.owns(incoming.request):
            self.regevents.on_notify(incoming)
            return True
        return False

    def _flow_closed(self, flow: Flow) -> None:
        self.limiter.forget(flow.id)
        self.registrar.flow_closed(flow)

    # ------------------------------------------------------------------ helpers for the parts
    def token_of(self, binding: Binding) -> str:
        token = binding.flow_token
        if token is None:  # the binding id never changes: one HMAC per binding
            token = binding.flow_token = self.tokens.make("b", binding.id)
        return token

    def ims_contact_for(self, binding: Binding, wic_contact: NameAddr) -> str:
        """The Contact registered at the IMS: the WIC's own as the P-CSCF, ours (with the
        flow token) when a UE in front of an operator P-CSCF (seed 004)."""
        if self.ims.as_pcscf:
            return contact_without_expires(wic_contact)
        params = "".join(
            f";{k}" if v is None else f";{k}={v}"
            for k, v in wic_contact.params.items()
            if k.lower() != "expires"
        )
        return f"<{self.ims.uri(self.token_of(binding), flow=binding.ims_flow)}>{params}"

    # ------------------------------------------------------------------ UE flows (seed 004)
    def ims_flow_of(self, binding: Binding) -> UeFlow | None:
        """Behind a P-CSCF, the flow the binding's requests leave from (:mod:`.ueflow`): its
        own, or for a pool WIC its pool registration's; None as the P-CSCF (one listener)."""
        if self.ims.as_pcscf:
            return None
        if binding.mode == "pool":
            reg = self.pools.find(binding.impu, binding.pool)
            return None if reg is None else reg.ims_flow
        flow: UeFlow | None = binding.ims_flow
        return flow

    async def binding_flow(self, binding: Binding, port: int = 0) -> UeFlow:
        """Open the binding's own flow (from ``port`` when not 0) and make its IMS Contact name
        it. Raises :class:`FlowFailure`; a binding dropped meanwhile gets no flow."""
        flow = await self.ims.open_flow("b:" + binding.id, port)
        if self.bindings.by_id.get(binding.id) is not binding:
            flow.end()
            raise FlowFailure("the binding ended")
        old: UeFlow | None = binding.ims_flow
        if old is not None and old is not flow:
            old.end()
        binding.ims_flow = flow
        self._name_flow(binding)
        return flow

    def _name_flow(self, binding: Binding) -> None:
        """Make the binding's IMS Contact name its flow's port. When that port is a new one, the
        Contact registered before is removed by the next REGISTER (``expires=0`` in the same
        request, RFC 3261 §10.2.2), not left registered, and forked to, until it expires."""
        old = binding.ims_contact
        new = binding.ims_contact = self.ims_contact_for(binding, parse_name_addr(binding.contact))
        registered = binding.ims_registered_at > 0
        if registered and old and old != new and binding.retired_contact is None:
            binding.retired_contact = old

    async def binding_flow_or_failure(self, binding: Binding) -> tuple[UeFlow | None, str | None]:
        """:meth:`binding_flow`, or (None, why) when it cannot be opened (our 503 to the WIC)."""
        try:
            return await self.binding_flow(binding), None
        except FlowFailure as exc:
            return None, f"no flow toward the P-CSCF: {exc}"

    async def restore_flows(self, pool_regs: Sequence[PoolRegistration] = ()) -> set[str]:
        """After a restart behind a P-CSCF: each restored binding's flow on its old port (the
        P-CSCF binds the registration to that address, TS 33.203 §7.1); when the port cannot be
        bound, on a new one: the gateway registers again for the modes it manages, a relaying
        WIC's next REGISTER carries the new Contact; either removes the old one (:meth:`_name_flow`).
        The Contact to remove is kept with the binding: when the gateway stopped before the
        REGISTER that removes it succeeded, it is removed now. The flows of the restored pool
        registrations (``pool_regs``, :meth:`PoolRegistrar.load`) likewise: the result names
        those back on their old ports (the others register again, :meth:`PoolRegistrar.start`).

        Every old port, the bindings' and the pools', is asked for before any new one, so that a
        new (ephemeral) port never takes the old port of a flow not restored yet; flows open
        ``RESTORE_BATCH`` at a time (over TCP each is a connection: one round trip to the P-CSCF)."""
        bindings = [b for b in self.bindings if b.mode != "pool"]
        active = [r for r in pool_regs if r.active]
        regs = [r for r in active if r.ims_port]
        first: list[bool | None] = await _in_batches(
            [functools.partial(self._restore_on_old_port, b) for b in bindings]
            + [functools.partial(self.pools.flow_from, r, r.ims_port) for r in regs]
        )
        bindings_back, regs_back = first[: len(bindings)], first[len(bindings) :]
        moving = [b for b, ok in zip(bindings, bindings_back, strict=True) if not ok]
        pools_back = {r.ident for r, ok in zip(regs, regs_back, strict=True) if ok}
        await _in_batches(
            [functools.partial(self._restore_on_new_port, b) for b in moving]
            + [functools.partial(self.pools.flow_from, r, 0) for r in active if r.ident not in pools_back]
        )
        for binding in bindings:
            if (
                binding.retired_contact is not None
                and self.registers_for(binding)
                and self.bindings.by_id.get(binding.id) is binding
            ):
                self.spawn(self._register_again(binding))
        return pools_back

    async def _restore_on_old_port(self, binding: Binding) -> bool:
        """True when the binding's flow is back on its old port."""
        port = _port_of(binding.ims_contact)
        if not port:
            log.warning("binding %s: its Contact names no port: a new one", binding.id)
            return False
        try:
            await self.binding_flow(binding, port)
        except FlowFailure as exc:
            log.warning("binding %s: no flow from port %d again (%s): a new one", binding.id, port, exc)
            return False
        return True

    async def _restore_on_new_port(self, binding: Binding) -> None:
        try:
            await self.binding_flow(binding)
        except FlowFailure as exc:
            log.error("binding %s: no flow toward the P-CSCF: %s", binding.id, exc)
            self.registrar.drop(binding)
            return
        self.registrar.persist(binding)  # its new Contact, and the old one to remove

    def _ue_flow_lost(self, flow: UeFlow) -> None:
        log.warning("%r: its connection to the P-CSCF closed; recovering the flow", flow)
        self.spawn(self.recover_flow(flow))

    async def recover_flow(self, flow: UeFlow) -> None:
        """Behind a P-CSCF over TCP, a UE's connection closed under it (the P-CSCF restarted, a
        NAT or firewall dropped it). As that UE would (RFC 5626 §4.4.1): reconnect — from the
        same port when it can, the P-CSCF knows the UE by its address (TS 33.203 §7.1) — and
        register again where the gateway holds what it takes (token modes, on-behalf digest,
        pool). A relaying WIC cannot be registered for: when its flow had to move to a new
        port, its WebSocket is closed so that it registers again (its own flow recovery);
        on the same port the P-CSCF reaches it as before until its next refresh."""
        delay = self._recovery_slot()
        if delay > 0:
            await asyncio.sleep(delay)
        same = await flow.recover(self.config.flow_retry_base)
        if same is None:
            return
        kind, _, ident = flow.owner.partition(":")
        if kind == "p":
            reg = self.pools.by_ident.get(ident)
            if reg is not None and reg.ims_flow is flow:
                self.pools.moved(reg, flow.port)
                await self.pools.register(reg)
            return
        binding = self.bindings.by_id.get(ident)
        if binding is None or binding.ims_flow is not flow:
            return
        if not same:
            self._name_flow(binding)
            self.registrar.persist(binding)
        if self.registers_for(binding):
            await self._register_again(binding)
        elif not same:
            self.tell_wic(binding, "the flow to the IMS moved: register again")

    @staticmethod
    def registers_for(binding: Binding) -> bool:
        """Whether the gateway holds what registering the binding again takes (its flow moved or
        was recovered): TNA for the web modes; the WIC's password for on-behalf digest, which
        lives only in memory (not after a restart); never for a relaying WIC's challenge."""
        if binding.mode == "ims-digest-on-behalf":
            return binding.password is not None
        return binding.mode in ("web-token", "web-login")

    def _recovery_slot(self) -> float:
        """Seconds this flow waits before it reconnects: flows lost together (a P-CSCF restart
        drops every UE's connection) reconnect and register again ``flow_recovery_rate`` per
        second, not all at once toward a P-CSCF that has just come back."""
        now = self.ims.endpoint.loop.time()
        slot = max(now, self._next_recovery)
        self._next_recovery = slot + 1.0 / self.config.flow_recovery_rate
        return slot - now

    async def _register_again(self, binding: Binding) -> None:
        async with binding.lock:
            if self.bindings.by_id.get(binding.id) is binding:
                await self.modes.refresh(binding)

    def presented(self, request: Request, flow: Flow) -> Presented:
        """What the WIC offers (precedence: Authorization, then a session cookie)."""
        digest = digest_raw = None
        for value in request.headers.get_all("Authorization"):
            bearer = _BEARER.fullmatch(value)
            if bearer is not None:  # RFC 6750 §2.1 b64token: what parse_credentials would find
                return Presented("bearer", token=bearer.group(1))
            try:
                cred = parse_credentials(value)
            except ParseError:
                continue
            if cred.is_bearer and cred.token:
                return Presented("bearer", token=cred.token)
            if cred.scheme.lower() == PASSWORD_SCHEME.lower():
                return Presented("password", username=cred.param("username"), password=cred.param("password"))
            if cred.is_digest and digest is None:
                digest, digest_raw = cred, value
        if digest is not None:
            return Presented("digest", credentials=digest, raw=digest_raw)
        cookie = cookie_value(request.headers.get("Cookie")) or flow.cookie
        if cookie:
            return Presented("session", token=cookie)
        return Presented("none")

    async def verify_token(self, token: str, *, scope: str | None) -> Identity:
        """Verify a Bearer token and scope-check it (TS 24.371 §7.2.1: on every request).

        Verified tokens are cached by a hash of their exact text (a bounded LRU), so a WIC's refreshes
        and the requests that carry the same token skip the signature and claim checks;
        expiry, revocation, pool lease and scope are still checked on each use."""
        verifier = self.verifier
        if verifier is None:
            raise InvalidToken("bearer tokens are not accepted here")
        now = time.monotonic()
        cache = self._token_cache
        key = hashlib.blake2b(token.encode(), digest_size=20).digest()  # not the ~1 KB token itself
        hit = cache.get(key)
        if hit is not None and hit[0] > now:
            cache.move_to_end(key)
            return verifier.recheck(hit[1], scope=scope)
        identity = await verifier.verify(token, keep_claims=False)
        lifetime = max(0.0, identity.expires_at - time.time())
        ttl = lifetime if self.token_cache_seconds is None else min(self.token_cache_seconds, lifetime)
        if ttl > 0:
            cache.pop(key, None)
            while cache and (len(cache) >= TOKEN_CACHE_SIZE or next(iter(cache.values()))[0] <= now):
                cache.popitem(last=False)  # the least recently used (first when it has expired)
            cache[key] = (now + ttl, _without_claims(identity) if identity.claims else identity)
        if scope is not None and scope not in identity.scopes:
            raise InsufficientScope(f"token does not grant scope {scope!r}", scope=scope)
        return identity

    async def verify_session(self, cookie: str, *, scope: str | None) -> Identity:
        auth = self.auth
        if auth is None:
            raise InvalidToken("web login is not available here")
        return await self.run_sync(lambda: auth.verify_session(cookie, scope=scope))

    def bearer_challenge(self, error: TokenError | None = None) -> str:
        """``WWW-Authenticate: Bearer`` (RFC 8898 §2.1: realm, scope, authz_server, error)."""
        server = (
            self.config.authz_server
            or self.config.issuer
            or (self.auth.settings.issuer if self.auth is not None else "")
        )
        extra = [AuthParam("authz_server", server)] if server else []
        challenge = Challenge.bearer(
            self.config.bearer_realm or self.config.domain,
            scope=(error.scope if error else None) or "register",
            error=error.error if error else None,
            error_description=_safe(error.reason) if error else None, extra=extra,
        )  # fmt: skip
        return challenge.format()

    def warning(self, text: str) -> str:
        """``Warning: 399 <host> "<text>"`` (RFC 3261 §20.43)."""
        return f'399 {self.config.uri_host} "{_safe(text)}"'

    def tell_wic(self, binding: Binding, reason: str) -> None:
        """A binding ended without the WIC asking: close its WebSocket when nothing else uses it."""
        conn: Connection | None = binding.connection
        if conn is None or conn.closed:
            return
        if any(b is not binding for b in self.bindings.on_connection(conn.id)):
            return
        self.wic.close_flow(conn, reason, code=WSCloseCode.OK)

    def release_allocation(self, allocation: str) -> None:
        auth = self.auth
        if auth is not None:
            self.spawn(self.run_sync(lambda: auth.pools.release(allocation)))

    def renew_allocation(self, allocation: str) -> None:
        auth = self.auth
        if auth is None:
            return
        lease = float(self.config.pool_lease)

        def renew() -> None:
            try:
                auth.pools.renew(allocation, lease=lease)
            except Exception as exc:  # released meanwhile: the token check fails next time
                log.info("pool lease %s not renewed: %s", allocation, exc)

        self.spawn(self.run_sync(renew))


#: ``Authorization: Bearer <b64token>`` (RFC 6750 §2.1), the usual WIC credentials.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *")


def _without_claims(identity: Identity) -> Identity:
    """``dataclasses.replace(identity, claims={})`` (the cached identity does not keep the raw
    claims), without replace()'s generic field walk."""
    return Identity(
        sub=identity.sub, issuer=identity.issuer, expires_at=identity.expires_at, scopes=identity.scopes,
        client_id=identity.client_id, impi=identity.impi, impus=identity.impus, pool=identity.pool,
        allocation=identity.allocation, jti=identity.jti, dest=identity.dest, source=identity.source,
        claims=_NO_CLAIMS,
    )  # fmt: skip


def _port_of(contact: str) -> int:
    """The port of a Contact we registered (``<sip:token@host:port;...>...``), else 0."""
    try:
        uri = parse_name_addr(contact).uri
    except ParseError:
        return 0
    return getattr(uri, "port", None) or 0


def _safe(text: str) -> str:
    return "".join(c for c in text if 32 <= ord(c) < 127 and c not in '"\\')[:200]


async def _in_batches(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Await ``calls``, :data:`RESTORE_BATCH` of them at a time; their results in order."""
    results: list[T] = []
    for at in range(0, len(calls), RESTORE_BATCH):
        results += await asyncio.gather(*(call() for call in calls[at : at + RESTORE_BATCH]))
    return results
