"""WIC registrations in every mode of DESIGN.md §2, and their lifecycle.

:class:`Registrar` answers each REGISTER a WIC sends over its WebSocket:

1. checks it (one Contact, or ``*`` with Expires 0; RFC 5626 §6: 400 for several
   reg-id contacts, 439 when another hop without outbound stands between the WIC
   and us; 423 below ``min_expires``);
2. finds the mode from what the WIC presents and checks it against the policy
   (:mod:`.policy`);
3. runs the mode (:mod:`.modes`) against its :class:`~.state.Binding` — found by the
   RFC 5626 key (AOR, +sip.instance, reg-id), so a WIC that comes back on a new
   WebSocket gets its registration back (flow recovery).

Lifecycle, per binding (one timer each, at the earliest of these):

- the WIC's own expiry: the binding ends (its IMS registration is de-registered);
- refreshes toward the IMS where the gateway registered for the WIC (web-token,
  web-login, on-behalf digest): before the IMS registration runs out (TS 24.229
  §5.1.1.4.1: 600 s before when it lasts over 1200 s, else at half time);
- the grace period after the WIC's WebSocket closed (``grace_period``; after a
  restart ``restart_grace``): unless the WIC is back by then, the binding ends;
  modes in ``keep_on_close`` keep it until it expires.

Ending a binding de-registers its contact with ``expires=0`` (never ``Contact: *``:
Kamailio's S-CSCF keeps contacts on ``*``), releases a pool lease, and drops the
reg-event subscription of its IMPU when it was the last binding of that IMPU.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from webims.endpoint import IncomingRequest
from webims.sip import NameAddr, ParseError, Request, Response, SipURI
from webims.sip.auth_header import parse_credentials

from .due import DueHeap
from .identity import aor_of
from .policy import PASSWORD_SCHEME
from .regmsg import contact_without_expires, new_dialog
from .state import Binding, binding_key
from .wic import Flow

if TYPE_CHECKING:
    from .core import Gateway

__all__ = ["RegisterAttempt", "Registrar"]

log = logging.getLogger("webims.gateway.registrar")

#: How long a binding waits for the WIC's answer to an IMS challenge (TS 24.229 reg-await-auth).
AUTH_WAIT = 60.0
GATEWAY_MANAGED = ("web-token", "web-login", "ims-digest-on-behalf")


def refresh_margin(duration: float) -> float:
    """TS 24.229 §5.1.1.4.1: refresh 600 s before expiry when registered for over 1200 s,
    else when half the time has passed."""
    return 600.0 if duration > 1200 else duration / 2


class RegisterAttempt:
    """One WIC REGISTER being handled: the request, its flow and what it asks for."""

    __slots__ = ("aor", "contact", "expires", "flow", "incoming", "instance", "reg_id", "request")

    def __init__(
        self,
        incoming: IncomingRequest,
        flow: Flow,
        aor: str,
        contact: NameAddr | None,
        expires: int,
        instance: str | None,
        reg_id: int | None,
    ) -> None:
        self.incoming = incoming
        self.request = incoming.request
        self.flow = flow
        self.aor = aor
        self.contact = contact
        self.expires = expires
        self.instance = instance
        self.reg_id = reg_id

    @property
    def outbound(self) -> bool:
        return self.instance is not None and self.reg_id is not None

    def reply(
        self,
        status: int,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        to_tag: str | None = None,
    ) -> Response:
        return self.incoming.respond(status, reason, headers=headers or [], to_tag=to_tag or "webims-gw")


class Registrar:
    """REGISTER handling and binding lifecycle (module docstring)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.config = gateway.config
        self._due: DueHeap[Binding] = DueHeap(self._due_now, gateway.bindings.__len__)

    # ------------------------------------------------------------------ entry
    async def handle(self, incoming: IncomingRequest, flow: Flow) -> None:
        request = incoming.request
        try:
            attempt = self._parse(incoming, flow)
        except ParseError as exc:
            incoming.respond(exc.status or 400, exc.reason, to_tag="webims-gw")
            return
        if attempt is None:
            return  # answered
        if attempt.contact is None:
            await self._deregister_all(attempt)
            return
        presented = self.gw.presented(request, flow)
        allowed = self.gw.policy.allowed(flow.origin, attempt.aor, flow.remote_host)
        await self.gw.modes.register(attempt, presented, allowed)

    def _parse(self, incoming: IncomingRequest, flow: Flow) -> RegisterAttempt | None:
        request = incoming.request
        cfg = self.config
        aor = aor_of(request.to.uri)
        contacts = request.contact
        star = not contacts and request.contact_star
        header_expires = request.expires
        if star:
            if header_expires != 0 or contacts:
                incoming.respond(400, "Bad Request (Contact * needs Expires: 0 alone)", to_tag="webims-gw")
                return None
            return RegisterAttempt(incoming, flow, aor, None, 0, None, None)
        if not contacts:
            self._fetch(incoming, flow, aor)
            return None
        with_reg_id = [c for c in contacts if c.params.get("reg-id") is not None]
        if len(with_reg_id) > 1:
            incoming.respond(400, "Bad Request (more than one Contact with reg-id)", to_tag="webims-gw")
            return None
        if len(contacts) > 1:
            incoming.respond(400, "Bad Request (one Contact per REGISTER)", to_tag="webims-gw")
            return None
        contact = contacts[0]
        instance = contact.sip_instance
        reg_id = contact.reg_id if instance is not None else None  # RFC 5626 §6: ignored without instance
        if reg_id is not None and len(request.via) > 1:
            paths = request.path
            first_hop = paths[-1].uri if paths else None
            if not isinstance(first_hop, SipURI) or "ob" not in first_hop.params:
                incoming.respond(439, "First Hop Lacks Outbound Support", to_tag="webims-gw")
                return None
        expires = contact.expires if contact.expires is not None else header_expires
        if expires is None:
            expires = cfg.default_expires
        if 0 < expires < cfg.min_expires:
            incoming.respond(
                423, "Interval Too Brief", headers=[("Min-Expires", str(cfg.min_expires))], to_tag="webims-gw"
            )
            return None
        expires = min(expires, cfg.max_expires)
        return RegisterAttempt(incoming, flow, aor, contact, expires, instance, reg_id)

    def _fetch(self, incoming: IncomingRequest, flow: Flow, aor: str) -> None:
        """RFC 3261 §10.3 step 8 for a REGISTER without Contact: list this WIC's bindings."""
        now = time.time()
        mine = [b for b in self.gw.bindings.on_connection(flow.id) if b.aor == aor and b.confirmed]
        headers = [("Contact", f"{b.contact};expires={max(0, int(b.expires_at - now))}") for b in mine]
        incoming.respond(200, headers=headers, to_tag="webims-gw")

    async def _deregister_all(self, attempt: RegisterAttempt) -> None:
        """``Contact: *``: de-register this WIC's contacts of the AOR one by one."""
        flow_bindings = [b for b in self.gw.bindings.on_connection(attempt.flow.id) if b.aor == attempt.aor]
        if not flow_bindings:
            attempt.reply(200)
            return
        final: Response | None = None
        for binding in flow_bindings:
            final = await self.gw.modes.deregister(attempt, binding)
        attempt.incoming.send(final or attempt.request.response(200, to_tag="webims-gw"))

    # ------------------------------------------------------------------ bindings
    def find(self, attempt: RegisterAttempt) -> Binding | None:
        assert attempt.contact is not None
        key = binding_key(attempt.aor, attempt.contact.uri_text, attempt.instance, attempt.reg_id)
        return self.gw.bindings.by_key.get(key)

    def new_binding(self, attempt: RegisterAttempt, mode: str) -> Binding:
        assert attempt.contact is not None
        call_id, from_tag = new_dialog()
        now = time.time()
        binding = Binding(
            id=self.gw.bindings.new_id(), mode=mode, aor=attempt.aor,
            contact=contact_without_expires(attempt.contact), contact_uri=attempt.contact.uri_text,
            instance=attempt.instance, reg_id=attempt.reg_id, call_id=call_id, from_tag=from_tag,
            request_uri=attempt.request.uri_text, origin=attempt.flow.origin, created_at=now,
            expires_at=now + AUTH_WAIT,
        )  # fmt: skip
        binding.connection = attempt.flow.connection
        # as the P-CSCF the IMS gets the WIC's own Contact (Gateway.ims_contact_for), made just above
        if self.gw.ims.as_pcscf:
            binding.ims_contact = binding.contact
        else:
            binding.ims_contact = self.gw.ims_contact_for(binding, attempt.contact)
        self.gw.bindings.add(binding)
        self.schedule(binding)
        return binding

    def attach(self, binding: Binding, flow: Flow) -> None:
        """RFC 5626 flow recovery: the binding now lives on ``flow`` (a new WebSocket, maybe)."""
        if binding.connection is not flow.connection:
            if binding.connection is not None:
                log.info(
                    "binding %s moves from %s to %s",
                    binding.id,
                    binding.connection.source,
                    flow.connection.source,
                )
                binding.tls_bound = False
            self.gw.bindings.attach(binding, flow.connection)
        if binding.grace_until is not None:
            binding.grace_until = None
            self.schedule(binding)

    def persist(self, binding: Binding) -> None:
        if binding.confirmed:
            self.gw.store.put("binding", binding.id, binding.to_record(), binding.expires_at)

    # ------------------------------------------------------------------ timers
    def schedule(self, binding: Binding) -> None:
        """(Re)arm the binding's deadline: the earliest of its expiry, grace end and IMS refresh.

        All bindings share one loop timer (:class:`~.due.DueHeap`): an idle binding costs one
        small heap entry (no TimerHandle and context copy each).
        """
        if self.gw.bindings.by_id.get(binding.id) is not binding:
            binding.due = None
            return
        due = binding.expires_at
        if binding.grace_until is not None and binding.grace_until < due:
            due = binding.grace_until
        refresh = self.refresh_at(binding)
        if refresh is not None and refresh < due:
            due = refresh
        self._due.push(binding, due)

    def _due_now(self, binding: Binding) -> None:
        self.gw.spawn(self._on_timer(binding))

    def stop(self) -> None:
        self._due.stop()

    def refresh_at(self, binding: Binding) -> float | None:
        if binding.mode not in GATEWAY_MANAGED or not binding.confirmed or not binding.ims_expires_at:
            return None
        if binding.ims_expires_at >= binding.expires_at:
            return None  # the IMS registration outlives the WIC's binding: nothing to refresh
        duration = binding.ims_expires_at - binding.ims_registered_at
        return binding.ims_expires_at - refresh_margin(max(duration, 1.0))

    async def _on_timer(self, binding: Binding) -> None:
        now = time.time()
        if self.gw.bindings.by_id.get(binding.id) is not binding:
            return
        if binding.grace_until is not None and now >= binding.grace_until - 0.001:
            binding.grace_until = None
            if binding.mode in self.config.keep_on_close and binding.confirmed:
                log.info("binding %s (%s) kept after its WebSocket closed", binding.id, binding.aor)
                self.schedule(binding)
                return
            await self.end(binding, "the WIC did not come back after its WebSocket closed")
            return
        if now >= binding.expires_at - 0.001:
            await self.end(binding, "expired" if binding.confirmed else "no answer to the challenge")
            return
        refresh = self.refresh_at(binding)
        if refresh is not None and now >= refresh - 0.001:
            async with binding.lock:
                await self.gw.modes.refresh(binding)
        self.schedule(binding)

    # ------------------------------------------------------------------ flows
    def flow_closed(self, flow: Flow) -> None:
        """The WIC's WebSocket closed: start the grace period of its bindings."""
        grace = self.config.grace_period
        for binding in self.gw.bindings.on_connection(flow.id):
            self.gw.bindings.attach(binding, None)
            if not binding.confirmed:
                self.drop(binding)
                continue
            binding.grace_until = time.time() + grace
            self.schedule(binding)

    def restored(self, binding: Binding, grace: float) -> None:
        """A binding loaded from the store after a restart: wait for its WIC to come back."""
        binding.confirmed = True
        binding.grace_until = time.time() + grace
        self.gw.bindings.add(binding)
        self.schedule(binding)

    # ------------------------------------------------------------------ ending
    async def end(self, binding: Binding, why: str, *, deregister: bool = True) -> None:
        """End a binding: de-register it toward the IMS (per mode), release, forget."""
        if self.gw.bindings.by_id.get(binding.id) is not binding:
            return
        log.info("binding %s (%s, %s) ends: %s", binding.id, binding.aor, binding.mode, why)
        binding.ending = True
        async with binding.lock:
            if deregister and binding.confirmed:
                try:
                    await self.gw.modes.deregister_at_ims(binding)
                except Exception:
                    log.exception("de-registration of %s failed", binding.aor)
            self.drop(binding)

    def drop(self, binding: Binding) -> None:
        """Forget a binding at once (no IMS traffic): state, timer, store, lease, subscription."""
        binding.due = None
        present = self.gw.bindings.by_id.get(binding.id) is binding
        self.gw.bindings.remove(binding)
        binding.password = None
        binding.digest_state = None
        flow = binding.ims_flow
        if flow is not None:  # behind a P-CSCF: its own flow closes once its transactions are done
            binding.ims_flow = None
            flow.end()
        if not present:
            return
        self.gw.store.delete("binding", binding.id)
        if binding.allocation is not None:
            self.gw.release_allocation(binding.allocation)
        if binding.impu and not self.gw.bindings.of_impu(binding.impu):
            self.gw.regevents.release(binding.impu)

    # ------------------------------------------------------------------ credentials
    @staticmethod
    def password_credentials(request: Request) -> tuple[str | None, str] | None:
        """(username, password) from ``Authorization: WebIMS-Password ...``, if present."""
        for value in request.headers.get_all("Authorization"):
            try:
                cred = parse_credentials(value)
            except ParseError:
                continue
            if cred.scheme.lower() == PASSWORD_SCHEME.lower():
                password = cred.param("password")
                if password is None:
                    return None
                return cred.param("username"), password
        return None
