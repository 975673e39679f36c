"""Pool registrations: the gateway registers a block of IMPUs (or a wildcarded IMPU) itself.

Seed 004 §6.X.2.2.4: "at start-up (or on request)" the Web Signalling Translator
registers the identities of a block allocated to it, with SIP digest (the pool's
IMPI and password from ``pool_passwords``) or, with ``pool_auth = "tna"``, as a
trusted node. §6.X.2.2.5: later each WIC that authenticates on the web is given one
of these IMPUs by the authorization function (a lease) and its REGISTER is answered
with no IMS traffic (:meth:`webims.gateway.modes.Modes._pool`).

A pool comes from the ``[auth]`` store when the authorization function runs in this
process (its explicit members, or its wildcarded IMPU when it has none), else from
``pool_members`` patterns. Each registration has its own Contact
``sip:p<token>@<mw>`` (and Path), so a terminating request names the registration
it belongs to; the called IMPU (P-Called-Party-ID, else To) then names the WIC.

Registrations are refreshed before they expire and kept in the state store: a
restarted gateway resumes them without registering again. They are not
de-registered at shutdown (they belong to the gateway, not to a WIC).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from webims.sip import ParseError, Response
from webims.sip.auth_header import Credentials, parse_challenge
from webims.sip.digest import DigestClient, DigestError

from .identity import associated_uris, same_identity
from .regmsg import granted_expires, new_dialog, tna_credentials
from .ueflow import FlowFailure

if TYPE_CHECKING:
    from .core import Gateway

__all__ = ["PoolRegistrar", "PoolRegistration"]

log = logging.getLogger("webims.gateway.pool")


@dataclass(slots=True, eq=False)
class PoolRegistration:
    pool: str
    impu: str  # an explicit member, or an identity covered by the wildcarded IMPU
    impi: str
    ident: str  # token identifier (Contact user part)
    call_id: str
    from_tag: str
    cseq: int = 0
    expires_at: float = 0.0
    registered_at: float = 0.0
    service_route: list[str] = field(default_factory=list)
    associated: list[str] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Future[bool] | None = None
    wildcard: str | None = None  # the wildcarded IMPU (TS 23.003 §13.5) this registration stands for
    ims_port: int = 0  # behind a P-CSCF: the port of its own flow (kept across restarts)
    ims_flow: Any = None  # behind a P-CSCF: its own .ueflow.UeFlow (runtime only)
    retired_contact: str | None = None  # its flow moved: the old Contact, removed by the next REGISTER

    @property
    def active(self) -> bool:
        return self.expires_at > time.time()

    @property
    def pattern(self) -> re.Pattern[str] | None:
        return wildcard_pattern(self.wildcard) if self.wildcard else None

    def covers(self, impu: str) -> bool:
        pattern = self.pattern
        if pattern is None:
            return same_identity(self.impu, impu)
        return pattern.fullmatch(impu) is not None

    def to_record(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "pool",
                "impu",
                "impi",
                "ident",
                "call_id",
                "from_tag",
                "cseq",
                "expires_at",
                "registered_at",
                "service_route",
                "associated",
                "wildcard",
                "ims_port",
            )
        }


def wildcard_pattern(wildcard: str) -> re.Pattern[str] | None:
    """The identities a wildcarded IMPU covers (the part between ``!`` is a regex)."""
    if wildcard.count("!") < 2:
        return None
    head, body, tail = wildcard.split("!", 2)
    try:
        return re.compile(re.escape(head) + "(?:" + body + ")" + re.escape(tail))
    except re.error:
        return None


def representative(wildcard: str) -> str | None:
    """A distinct identity covered by ``wildcard`` to register for it.

    The wildcarded IMPU itself cannot go in a Request-URI or To (its regex characters
    are not allowed in a SIP URI user part); registering one identity of the range
    registers the implicit registration set the HSS links the wildcard to (TS 23.228
    §4.3.3.4, TS 29.228 §7.2b), so that every identity of the range reaches us.
    """
    pattern = wildcard_pattern(wildcard)
    if pattern is None:
        return None
    head, _, tail = wildcard.split("!", 2)
    for middle in ("0", "1", "00", "000000", "a", "gw", "webims", "gateway", "0a", "a0", "x-0"):
        candidate = head + middle + tail.split("!", 1)[-1]
        if pattern.fullmatch(candidate):
            return candidate
    return None


class PoolRegistrar:
    """The gateway's own registrations of pool IMPUs (module docstring)."""

    def __init__(self, gateway: Gateway) -> None:
        from .settings import parse_assignments

        self.gw = gateway
        self.config = gateway.config
        self.passwords = parse_assignments(self.config.pool_passwords)
        self.impis = parse_assignments(self.config.pool_impis)
        self.patterns: dict[str, list[str]] = {}
        for value in self.config.pool_members:
            name, _, pattern = value.partition("=")
            self.patterns.setdefault(name.strip(), []).append(pattern)
        self.regs: dict[str, PoolRegistration] = {}  # by IMPU (or wildcard)
        self.by_ident: dict[str, PoolRegistration] = {}
        self.clients: dict[str, DigestClient] = {}

    # ------------------------------------------------------------------ definitions
    def _definition(self, name: str) -> tuple[str | None, list[str]]:
        """(IMPI, IMPUs to register) of a pool."""
        auth = self.gw.auth
        impi = self.impis.get(name)
        if name in self.patterns:
            from webims.auth.pools import expand_pattern

            impus = [u for p in self.patterns[name] for u in expand_pattern(p)]
            return impi, impus
        if auth is None:
            raise ValueError(f"pool {name!r}: no [auth] in this process; list gateway.pool_members")
        pool = auth.pools.get(name)
        members = auth.pools.members(name)
        impus = members if members else ([pool.wildcard] if pool.wildcard else [])
        return impi or pool.impi, impus

    async def load(self) -> list[PoolRegistration]:
        """The registrations kept in the state store, before :meth:`start`; behind a P-CSCF
        :meth:`.core.Gateway.restore_flows` opens their flows with the bindings' (every old
        port before any new one)."""
        loaded: list[PoolRegistration] = []
        for record in await self.gw.store.load("pool", time.time()):
            try:
                reg = PoolRegistration(**record)
            except TypeError:
                continue
            self._add(reg)
            loaded.append(reg)
        return loaded

    async def start(self, loaded: Iterable[PoolRegistration] = (), back: Container[str] = ()) -> None:
        """Refresh timers for the ``loaded`` registrations (:meth:`load`); behind a P-CSCF, one
        whose flow is not on its old port (its ident not in ``back``) registers again at once:
        the P-CSCF knows it by that port. Then the configured pools' registrations."""
        for reg in loaded:
            if not self.gw.ims.as_pcscf and reg.active and reg.ident not in back:
                self.gw.spawn(self._refresh_one(reg))
                continue
            self._arm(reg)
        for name in self.config.pools:
            impi, impus = await self.gw.run_sync(lambda n=name: self._definition(n))  # type: ignore[misc]
            for impu in impus:
                wildcard = impu if impu.count("!") >= 2 else None
                member = representative(impu) if wildcard else impu
                if member is None:
                    log.warning("pool %s: no identity of %s to register; list pool_members", name, impu)
                    continue
                if member in self.regs:
                    continue
                call_id, from_tag = new_dialog()
                reg = PoolRegistration(
                    name,
                    member,
                    impi or member.split(":", 1)[-1],
                    self.gw.tokens.ident_for(member),
                    call_id,
                    from_tag,
                    wildcard=wildcard,
                )
                self._add(reg)
        if self.config.pool_registration == "startup":
            todo = [r for r in self.regs.values() if not r.active]
            if todo:
                sem = asyncio.Semaphore(self.config.pool_concurrency)

                async def one(reg: PoolRegistration) -> bool:
                    async with sem:
                        return await self.register(reg)

                results = await asyncio.gather(*(one(r) for r in todo))
                log.info("pool registrations: %d of %d succeeded", sum(results), len(todo))

    def _add(self, reg: PoolRegistration) -> None:
        self.regs[reg.impu] = reg
        self.by_ident[reg.ident] = reg

    def find(self, impu: str, pool: str | None = None) -> PoolRegistration | None:
        reg = self.regs.get(impu)
        if reg is not None:
            return reg
        for reg in self.regs.values():
            if (pool is None or reg.pool == pool) and reg.covers(impu):
                return reg
        return None

    async def ensure(self, pool: str, impu: str) -> PoolRegistration | None:
        """The active registration covering ``impu`` (registering it now when on demand)."""
        reg = self.find(impu, pool)
        if reg is None:
            return None
        if reg.active:
            return reg
        if self.config.pool_registration == "on-demand" or reg.task is not None:
            ok = await self.register(reg)
            return reg if ok else None
        return None

    # ------------------------------------------------------------------ REGISTER
    def contact(self, reg: PoolRegistration, port: int = 0) -> str:
        """Its IMS Contact (on its own flow behind a P-CSCF; with ``port``, on that former one)."""
        return f"<{self.gw.ims.uri(self.gw.tokens.make('p', reg.ident), flow=reg.ims_flow, port=port)}>"

    def moved(self, reg: PoolRegistration, port: int) -> None:
        """Its flow now has ``port``: when that is a new one, the next REGISTER removes the
        Contact on the old one (``expires=0`` in the same request, RFC 3261 §10.2.2)."""
        if reg.ims_port and port != reg.ims_port and reg.retired_contact is None:
            reg.retired_contact = self.contact(reg, port=reg.ims_port)
        reg.ims_port = port

    async def _flow(self, reg: PoolRegistration) -> bool:
        """Behind a P-CSCF, open the registration's own flow (seed 004 §6.X.2.2.4: the
        registration of a block of identities is a UE's toward the P-CSCF, which knows it by
        its address and port, TS 33.203 §7.1), on its old port when it has one; True when it
        has that port (False: a new port, or none; the registration must be made again)."""
        if reg.ims_flow is not None and not reg.ims_flow.closed:
            return True
        for port in (reg.ims_port, 0) if reg.ims_port else (0,):
            same = await self.flow_from(reg, port)
            if same is not None:
                return same
        return False

    async def flow_from(self, reg: PoolRegistration, port: int) -> bool | None:
        """Open the registration's flow from ``port`` (0: a new one): True when that is its old
        port, False when another, None when it could not be opened (logged)."""
        try:
            flow = await self.gw.ims.open_flow("p:" + reg.ident, port)
        except FlowFailure as exc:
            log.warning("pool %s: no flow for %s from port %d: %s", reg.pool, reg.impu, port, exc)
            return None
        reg.ims_flow = flow
        same = flow.port == reg.ims_port
        self.moved(reg, flow.port)
        return same

    async def register(self, reg: PoolRegistration, expires: int | None = None) -> bool:
        """Register (or refresh, or with ``expires=0`` end) one pool IMPU; True on 2xx."""
        if reg.task is not None and expires is None:
            return await asyncio.shield(reg.task)
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if expires is None:
            reg.task = fut
        try:
            ok = await self._register(reg, self.config.ims_expires if expires is None else expires)
            fut.set_result(ok)
            return ok
        finally:
            if reg.task is fut:
                reg.task = None
            if not fut.done():
                fut.set_result(False)

    async def _register(self, reg: PoolRegistration, expires: int) -> bool:
        gw = self.gw
        uri = f"sip:{self.config.domain}"
        async with reg.lock:
            if self.config.pool_auth == "tna":
                authorization: str | None = tna_credentials(reg.impi, self.config.domain, uri)
            else:
                authorization = Credentials.digest(reg.impi, self.config.domain, "", uri, "").format()
            response = await self._send(reg, expires, authorization)
            if response.status in (401, 407) and self.config.pool_auth == "digest":
                client = self.clients.get(reg.pool)
                if client is None or client.username != reg.impi:
                    client = self.clients[reg.pool] = DigestClient(reg.impi, self.passwords.get(reg.pool, ""))
                challenge = None
                for value in response.headers.get_all("WWW-Authenticate"):
                    try:
                        challenge = parse_challenge(value)
                    except ParseError:
                        continue
                    if challenge.is_digest:
                        break
                if challenge is not None:
                    try:
                        cred = client.authorize(challenge, "REGISTER", uri)
                    except DigestError as exc:
                        log.warning(
                            "pool %s: cannot answer the challenge for %s: %s", reg.pool, reg.impu, exc.reason
                        )
                    else:
                        response = await self._send(reg, expires, cred.format())
            now = time.time()
            if not 200 <= response.status < 300:
                log.warning(
                    "pool %s: REGISTER %s (expires %d): %d %s",
                    reg.pool,
                    reg.impu,
                    expires,
                    response.status,
                    response.reason,
                )
                if expires:
                    self._arm(reg, retry=True)
                return False
            if expires == 0:
                reg.expires_at = 0.0
                gw.store.delete("pool", reg.impu)
                if reg.ims_flow is not None:  # its flow closes with it
                    reg.ims_flow.end()
                    reg.ims_flow = None
                return True
            from webims.sip import parse_name_addr

            granted = granted_expires(response, parse_name_addr(self.contact(reg)).uri, expires)
            reg.registered_at = now
            reg.expires_at = now + granted
            reg.service_route = [str(r) for r in response.service_route]
            reg.associated = associated_uris(response)
            gw.store.put("pool", reg.impu, reg.to_record(), reg.expires_at)
            self._arm(reg)
            return True

    async def _send(self, reg: PoolRegistration, expires: int, authorization: str | None) -> Response:
        gw = self.gw
        if not gw.ims.as_pcscf:
            await self._flow(reg)
        reg.cseq += 1
        token = gw.tokens.make("p", reg.ident)
        retired = reg.retired_contact  # its flow moved: the old Contact goes (moved)
        request = gw.register_builder.build(
            request_uri=f"sip:{self.config.domain}", aor=reg.impu, call_id=reg.call_id, from_tag=reg.from_tag,
            cseq=reg.cseq, contact=self.contact(reg), retired=retired, expires=expires,
            path=gw.ims.path(token, outbound=False) if gw.ims.as_pcscf else None, authorization=authorization,
        )  # fmt: skip
        flow = reg.ims_flow
        if not gw.ims.as_pcscf and flow is None:
            return gw.ims.unreachable(request, "no flow toward the P-CSCF")
        response = await gw.ims.send(request, flow=flow)
        if retired is not None and 200 <= response.status < 300 and reg.retired_contact == retired:
            reg.retired_contact = None
        return response

    def _arm(self, reg: PoolRegistration, *, retry: bool = False) -> None:
        if reg.timer is not None:
            reg.timer.cancel()
        now = time.time()
        if retry:
            when = now + self.config.retry_after
        else:
            duration = max(reg.expires_at - reg.registered_at, 1.0)
            when = reg.expires_at - (600 if duration > 1200 else duration / 2)
        loop = asyncio.get_running_loop()
        reg.timer = loop.call_at(loop.time() + max(0.0, when - now), self._refresh, reg)

    def _refresh(self, reg: PoolRegistration) -> None:
        reg.timer = None
        if self.regs.get(reg.impu) is reg:
            self.gw.spawn(self._refresh_one(reg))

    async def _refresh_one(self, reg: PoolRegistration) -> None:
        await self.register(reg)

    async def deregister_all(self) -> None:
        """End every pool registration (``webims`` does this only when asked)."""
        await asyncio.gather(*(self.register(r, 0) for r in self.regs.values() if r.active))

    def close(self) -> None:
        for reg in self.regs.values():
            if reg.timer is not None:
                reg.timer.cancel()
                reg.timer = None
            if reg.ims_flow is not None:
                reg.ims_flow.end()
                reg.ims_flow = None
