"""The S-CSCF registrar (TS 24.229 §5.4.1, TS 33.203 §6.1, RFC 3261 §10.3, RFC 3327).

REGISTER handling, in the order TS 24.229 §5.4.1.2 describes it:

1. identities: the public user identity from To, the private one from the
   Authorization ``username`` (or derived from the public one);
2. checks: ``Contact: *`` only with ``Expires: 0`` (RFC 3261 §10.3 step 6), Path
   only with ``Supported: path`` (420, RFC 3327 §5.3), expiry above ``min_expires``
   (423 with Min-Expires, RFC 3261 §10.3 step 7);
3. authentication: Trusted Node Authentication (``integrity-protected="auth-done"``,
   TS 24.229 §5.4.1.2.2F, TS 33.203 Annex U) only when the REGISTER entered the core
   from a configured trusted node; otherwise credentials answering a challenge of
   ours are verified (SIP Digest with the HA1 from the HSS, AKAv1/AKAv2-MD5 with
   XRES, RFC 3310/4169), an ``auts`` triggers resynchronisation (MAR with RAND||AUTS,
   TS 33.203 §6.1.2), and anything else gets a fresh challenge (MAR, then 401 with
   ``ck``/``ik`` for AKA, TS 24.229 §5.4.1.2.1); a wrong response gets 403;
4. SAR REGISTRATION / RE_REGISTRATION (TS 29.228 §6.1.2), User-Data gives the
   implicit registration set and barring (TS 29.228 Annex E); a barred identity gets 403;
5. bindings stored (contact, expiry, Path, +sip.instance/reg-id, RFC 5626 §6), 200 OK
   with Contact, Path, Service-Route (``orig`` user part, TS 24.229 §5.4.1.2.2 step 9)
   and P-Associated-URI (RFC 7315 §4.1).

De-registration: ``expires=0`` per contact or ``Contact: *`` (SAR USER_DEREGISTRATION),
expiry (SAR TIMEOUT_DEREGISTRATION), the HSS's RTR and :meth:`Registrar.deregister`
(SAR ADMINISTRATIVE_DEREGISTRATION), TS 24.229 §5.4.1.4-§5.4.1.5. Every change is
reported to ``on_change`` (the reg event package, :mod:`webims.labcore.regevent`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from webims.diameter import (
    DiameterError,
    ExperimentalResultCode,
    Message,
    ReasonCode,
    RegistrationTerminationRequest,
    ResultCode,
    ServerAssignmentAnswer,
    ServerAssignmentType,
    build_ppa,
    build_rta,
)
from webims.diameter.cx_parse import PushProfileRequest
from webims.endpoint import IncomingRequest
from webims.sip import NameAddr, ParseError, Request
from webims.sip.randomness import token_hex

from .attached import FlowIndex
from .cx_client import CxError, DiameterClient
from .flows import CoreElements
from .hss.user_data import ImsSubscription, UserDataError
from .hss.wildcard import WildcardIndex
from .identities import canonical, canonical_text, impi_from_impu
from .registrations import Binding, Deadlines, Registration, binding_key
from .scscf_auth import Authenticator, credentials, reply
from .settings import LabCoreConfig

__all__ = ["Binding", "Registrar", "Registration"]

log = logging.getLogger("webims.labcore.scscf")

ChangeHook = Callable[[Registration], None]

#: Parsed User-Data documents kept (immutable, keyed by the document's bytes).
MAX_CACHED_PROFILES = 10_000


class Registrar:
    """Registrations and authentication of one S-CSCF (see the module docstring)."""

    def __init__(
        self,
        config: LabCoreConfig,
        cx: DiameterClient,
        *,
        server_name: str,
        service_route: str,
        core_hosts: Sequence[str] = (),
        core: CoreElements | None = None,
        on_change: ChangeHook | None = None,
    ) -> None:
        self.config = config
        self.cx = cx
        self.server_name = server_name
        self.service_route = service_route
        self.auth = Authenticator(config, cx, server_name=server_name, core_hosts=core_hosts, core=core)
        #: bindings by the flow that registered them (UEs attached without a P-CSCF, P-CSCFs)
        self.flows = FlowIndex()
        self.on_change = on_change
        self._by_identity: dict[str, Registration] = {}
        self._wildcards: WildcardIndex = WildcardIndex(())
        self._wildcard_owner: dict[str, Registration] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._profiles: dict[bytes, ImsSubscription] = {}
        self._deadlines: Deadlines[Registration] = Deadlines(self._expire)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.registrations_completed = 0

    # ------------------------------------------------------------------ clock / lookup
    def now(self) -> float:
        """The event loop's clock (the loop is looked up once: this runs several times a request)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    @property
    def registrations(self) -> list[Registration]:
        seen: dict[int, Registration] = {}
        for reg in self._by_identity.values():
            seen.setdefault(id(reg), reg)
        return list(seen.values())

    def lookup(self, identity: str, profile_key: str | None = None) -> Registration | None:
        """The active registration serving ``identity`` (canonical form): exact match, then
        the wildcarded identity named by P-Profile-Key (TS 24.229 §5.3.2.1), then any
        registered wildcarded range (TS 23.003 §13.5)."""
        reg = self._by_identity.get(identity)
        if reg is not None:
            return reg
        if profile_key is not None:
            reg = self._wildcard_owner.get(profile_key)
            if reg is not None:
                return reg
        pattern = self._wildcards.match(identity)
        return self._wildcard_owner.get(pattern) if pattern is not None else None

    def serves(self, identity: str, reg: Registration) -> bool:
        """Whether ``identity`` (canonical) is one of ``reg``'s identities: registered or
        implicitly registered, or in one of its wildcarded ranges, and not barred."""
        return identity not in reg.barred and self.lookup(identity) is reg

    def is_barred(self, identity: str) -> bool:
        reg = self._by_identity.get(identity)
        return reg is not None and identity in reg.barred

    # ------------------------------------------------------------------ REGISTER
    async def handle_register(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        try:
            await self._register(incoming, request)
        except ParseError as exc:
            reply(incoming, exc.status if 400 <= exc.status < 700 else 400, exc.reason)

    async def _register(self, incoming: IncomingRequest, request: Request) -> None:
        impu = canonical(request.to.uri)
        if impu is None:
            reply(incoming, 403, "Forbidden (no public user identity)")
            return
        creds = credentials(request)
        impi = creds.username if creds is not None and creds.username else impi_from_impu(impu)
        # RFC 3327 §5.3: a Path needs "Supported: path" (strict mode)
        if request.path and "path" not in request.option_tags("supported"):
            reply(incoming, 420, "Bad Extension", headers=[("Unsupported", "path")])
            return
        star = request.contact_star
        if star and request.expires != 0:
            reply(incoming, 400, "Bad Request (Contact * needs Expires: 0)")
            return
        changes = [] if star else self._requested(request)
        for _, expires in changes:
            if 0 < expires < self.config.min_expires:
                reply(incoming, 423, headers=[("Min-Expires", str(self.config.min_expires))])
                return
        if not await self.auth.authenticate(incoming, request, creds, impi, impu):
            return
        reg = self._by_identity.get(impu)  # exact: a wildcarded range is another registration
        if star or (changes and all(e == 0 for _, e in changes)):
            await self._deregister_request(incoming, request, reg, impi, impu, changes, star)
            return
        await self._save(incoming, request, reg, impi, impu, changes)

    def _requested(self, request: Request) -> list[tuple[NameAddr, int]]:
        header = request.expires
        out = []
        for contact in request.contact:
            expires = contact.expires
            if expires is None:
                expires = header if header is not None else self.config.default_expires
            out.append((contact, min(expires, self.config.max_expires)))
        return out

    # ------------------------------------------------------------------ SAR
    async def _sar(self, impi: str, impus: Sequence[str], assignment: int) -> ServerAssignmentAnswer:
        saa, _ = await self.cx.sar(self.server_name, assignment, impi, impus)
        return saa

    async def assign_unregistered(self, identity: str) -> bool | None:
        """SAR UNREGISTERED_USER for a terminating request to an identity not registered here
        (TS 29.228 §6.1.2): True when the HSS knows it, False when unknown, None on failure."""
        try:
            saa = await self._sar("", [identity], ServerAssignmentType.UNREGISTERED_USER)
        except (CxError, DiameterError):
            return None
        if saa.result.is_success:
            return True
        return False if saa.result.code == ExperimentalResultCode.DIAMETER_ERROR_USER_UNKNOWN else None

    def _subscription(self, user_data: bytes) -> ImsSubscription:
        """The parsed User-Data document (TS 29.228 Annex E); the same document (a user's
        every re-registration) is parsed once."""
        subscription = self._profiles.get(user_data)
        if subscription is None:
            subscription = ImsSubscription.from_xml(user_data)
            if len(self._profiles) >= MAX_CACHED_PROFILES:
                self._profiles.clear()
            self._profiles[user_data] = subscription
        return subscription

    # ------------------------------------------------------------------ save / de-register
    async def _save(
        self,
        incoming: IncomingRequest,
        request: Request,
        reg: Registration | None,
        impi: str,
        impu: str,
        changes: list[tuple[NameAddr, int]],
    ) -> None:
        first = reg is None or impi not in reg.impis
        assignment = ServerAssignmentType.REGISTRATION if first else ServerAssignmentType.RE_REGISTRATION
        try:
            saa, parsed = await self.cx.sar(self.server_name, assignment, impi, [impu])
        except (CxError, DiameterError) as exc:
            log.warning("SAR for %s failed: %s", impu, exc)
            reply(incoming, 480, "Temporarily Unavailable (HSS)")
            return
        if not saa.result.is_success:
            reply(incoming, 403, f"Forbidden (HSS {saa.result.code})")
            return
        subscription = None
        if saa.user_data:
            try:  # the HSS in this process may give it read already
                subscription = parsed if parsed is not None else self._subscription(saa.user_data)
            except UserDataError as exc:
                log.warning("User-Data of %s unusable: %s", impu, exc)
        reg = self._by_identity.get(impu) if reg is None else reg
        if reg is None:
            reg = Registration(impu, {impi})
        reg.impis.add(impi)
        reg.apply(subscription)
        if impu in reg.barred:
            reply(incoming, 403, "Forbidden (barred)")
            if not reg.bindings:
                await self._sar_quietly(impi, [impu], ServerAssignmentType.USER_DEREGISTRATION)
            return
        now = self.now()
        path = tuple(request.headers.get_all("path"))
        flow = self.auth.origin(request, incoming)  # the UE itself when there is no Path
        for contact, expires in changes:
            key = binding_key(contact)
            old = reg.bindings.get(key)
            if old is not None and old.call_id == request.call_id and old.cseq >= request.cseq.seq:
                continue  # RFC 3261 §10.3 step 7: an older request
            plain = contact  # as registered (its text too), without an expires parameter
            if "expires" in contact.params:
                plain = contact.replace(params={k: v for k, v in contact.params.items() if k != "expires"})
            if expires == 0:
                if old is not None:
                    self._terminate(reg, old, "unregistered")
                continue
            if old is None:
                event = "registered"
            else:
                event = "shortened" if expires < old.expires_in(now) else "refreshed"
            binding = Binding(
                plain,
                now + expires,
                impi,
                request.call_id,
                request.cseq.seq,
                path,
                contact.sip_instance,
                contact.reg_id,
                id=old.id if old is not None else token_hex(4),
                event=event,
                flow=flow,
            )
            if old is not None:
                self.flows.remove(old)
            reg.bindings[key] = binding
            self.flows.add(binding, reg)
        self._index(reg)
        self._arm(reg)
        self.registrations_completed += 1
        self._ok(incoming, request, reg, path)
        self._changed(reg)
        if not reg.bindings:
            await self._ended(reg, impi, ServerAssignmentType.USER_DEREGISTRATION)

    def _ok(
        self, incoming: IncomingRequest, request: Request, reg: Registration, path: tuple[str, ...]
    ) -> None:
        now = self.now()
        headers: list[tuple[str, str]] = []
        for b in reg.bindings.values():
            headers.append(("Contact", b.contact_with_expires(now)))
        for value in path:
            headers.append(("Path", value))
        if path:
            headers.append(("Supported", "path"))
        headers.append(("Service-Route", f"<{self.service_route}>"))
        if reg.identities:
            headers.append(("P-Associated-URI", ", ".join(f"<{i}>" for i in reg.identities)))
        reply(incoming, 200, headers=headers)

    async def _deregister_request(
        self,
        incoming: IncomingRequest,
        request: Request,
        reg: Registration | None,
        impi: str,
        impu: str,
        changes: list[tuple[NameAddr, int]],
        star: bool,
    ) -> None:
        """User-initiated de-registration (TS 24.229 §5.4.1.4, RFC 3261 §10.3 step 6-7)."""
        if reg is not None:
            keys = list(reg.bindings) if star else [binding_key(c) for c, _ in changes]
            for key in keys:
                binding = reg.bindings.get(key)
                if binding is not None:
                    self._terminate(reg, binding, "unregistered")
            self._arm(reg)
        self.registrations_completed += 1
        reply(
            incoming,
            200,
            headers=[("Service-Route", f"<{self.service_route}>")]
            if reg is not None and reg.bindings
            else (),
        )
        if reg is None:
            await self._sar_quietly(impi, [impu], ServerAssignmentType.USER_DEREGISTRATION)
            return
        self._changed(reg)
        if not reg.bindings:
            await self._ended(reg, impi, ServerAssignmentType.USER_DEREGISTRATION)
        elif not any(b.impi == impi for b in reg.bindings.values()):
            reg.impis.discard(impi)
            await self._sar_quietly(impi, [reg.impu], ServerAssignmentType.USER_DEREGISTRATION)

    def _terminate(self, reg: Registration, binding: Binding, event: str) -> None:
        reg.bindings.pop(binding.key, None)
        self.flows.remove(binding)
        binding.state, binding.event = "terminated", event
        reg.terminated.append(binding)

    async def _sar_quietly(self, impi: str, impus: Sequence[str], assignment: int) -> None:
        try:
            saa = await self._sar(impi, impus, assignment)
            if not saa.result.is_success:
                log.info("SAR %d for %s: %s", assignment, impus, saa.result.code)
        except (CxError, DiameterError) as exc:
            log.warning("SAR %d for %s failed: %s", assignment, impus, exc)

    async def _ended(self, reg: Registration, impi: str, assignment: int) -> None:
        """The last binding is gone: forget the registration, tell the HSS (TS 29.228 §6.1.2)."""
        self._unindex(reg)
        for owner in sorted(reg.impis):
            await self._sar_quietly(owner, [reg.impu], assignment)

    # ------------------------------------------------------------------ index and timers
    def _index(self, reg: Registration) -> None:
        for identity in (reg.impu, *reg.identities):
            self._by_identity[identity] = reg
            reg.indexed.add(identity)
        if reg.wildcards:
            for pattern in reg.wildcards:
                self._wildcard_owner[pattern] = reg
            self._wildcards = WildcardIndex(self._wildcard_owner)

    def _unindex(self, reg: Registration) -> None:
        self._deadlines.set(reg, None)
        for identity in reg.indexed:
            if self._by_identity.get(identity) is reg:
                del self._by_identity[identity]
        reg.indexed.clear()
        if reg.wildcards:
            for pattern in reg.wildcards:
                if self._wildcard_owner.get(pattern) is reg:
                    del self._wildcard_owner[pattern]
            self._wildcards = WildcardIndex(self._wildcard_owner)

    def _arm(self, reg: Registration) -> None:
        when = min((b.expires_at for b in reg.bindings.values()), default=None)
        self._deadlines.set(reg, None if when is None else when + 0.01)

    def _expire(self, reg: Registration) -> None:
        """Registration timer: expired bindings go; the last one ends the registration
        with SAR TIMEOUT_DEREGISTRATION (TS 24.229 §5.4.1.6 de-registration by expiry)."""
        now = self.now()
        expired = [b for b in reg.bindings.values() if b.expires_at <= now]
        for binding in expired:
            self._terminate(reg, binding, "expired")
        self._arm(reg)
        if expired:
            self._changed(reg)
        if not reg.bindings:
            self.spawn(self._ended(reg, "", ServerAssignmentType.TIMEOUT_DEREGISTRATION))

    def _changed(self, reg: Registration) -> None:
        if self.on_change is not None:
            try:
                self.on_change(reg)
            except Exception:
                log.exception("registration change hook failed")
        reg.terminated.clear()

    # ------------------------------------------------------------------ network-initiated
    def terminate_registration(self, reg: Registration, event: str) -> None:
        """Drop every binding of ``reg`` with contact event ``event`` (deactivated or
        rejected, RFC 3680 §5.1.2) and forget it; the HSS is not told (it asked us)."""
        for binding in list(reg.bindings.values()):
            self._terminate(reg, binding, event)
        self._unindex(reg)
        self._changed(reg)

    def handle_rtr(self, message: Message) -> Message:
        """RTR from the HSS (TS 29.228 §6.1.3, TS 24.229 §5.4.1.5): de-register and answer."""
        cx = self.cx
        try:
            rtr = RegistrationTerminationRequest.from_message(message)
        except DiameterError as exc:
            return build_rta(
                message, result=exc.result_code, origin_host=cx.origin_host, origin_realm=cx.origin_realm
            )
        reason = rtr.deregistration_reason.reason_code
        final = reason in (ReasonCode.PERMANENT_TERMINATION, ReasonCode.REMOVE_S_CSCF)
        event = "rejected" if final else "deactivated"
        impis = {rtr.user_name, *rtr.associated_identities}
        targets: list[Registration] = []
        if rtr.public_identities:
            for identity in rtr.public_identities:
                reg = self.lookup(canonical_text(identity))
                if reg is not None and reg not in targets:
                    targets.append(reg)
        else:
            targets = [r for r in self.registrations if r.impis & impis]
        for reg in targets:
            self.terminate_registration(reg, event)
        log.info("RTR for %s: %d registration(s) ended (%s)", rtr.user_name, len(targets), event)
        return build_rta(
            message,
            result=ResultCode.DIAMETER_SUCCESS,
            origin_host=cx.origin_host,
            origin_realm=cx.origin_realm,
        )

    def handle_ppr(self, message: Message) -> Message:
        """PPR (TS 29.228 §6.2.2): new User-Data for a served user's registrations."""
        cx = self.cx
        try:
            ppr = PushProfileRequest.from_message(message)
        except DiameterError as exc:
            return build_ppa(
                message, result=exc.result_code, origin_host=cx.origin_host, origin_realm=cx.origin_realm
            )
        if ppr.user_data:
            try:
                subscription = ImsSubscription.from_xml(ppr.user_data)
            except UserDataError:
                return build_ppa(
                    message,
                    result=ResultCode.DIAMETER_UNABLE_TO_COMPLY,
                    origin_host=cx.origin_host,
                    origin_realm=cx.origin_realm,
                )
            for reg in [r for r in self.registrations if ppr.user_name in r.impis]:
                self._unindex(reg)
                reg.apply(subscription)
                if reg.impu in reg.barred:
                    self.terminate_registration(reg, "rejected")
                    continue
                self._index(reg)
                self._arm(reg)
                self._changed(reg)
        return build_ppa(
            message,
            result=ResultCode.DIAMETER_SUCCESS,
            origin_host=cx.origin_host,
            origin_realm=cx.origin_realm,
        )

    async def deregister(self, identity: str, event: str = "rejected") -> bool:
        """Administrative de-registration (TS 24.229 §5.4.1.5): NOTIFY, then SAR
        ADMINISTRATIVE_DEREGISTRATION. Returns False when ``identity`` is not registered."""
        reg = self.lookup(canonical_text(identity))
        if reg is None:
            return False
        self.terminate_registration(reg, event)
        for impi in sorted(reg.impis):
            await self._sar_quietly(impi, [reg.impu], ServerAssignmentType.ADMINISTRATIVE_DEREGISTRATION)
        return True

    # ------------------------------------------------------------------ tasks
    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._deadlines.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
