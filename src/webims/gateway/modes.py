"""The registration modes (DESIGN.md §2), each as the IMS traffic it makes for a WIC.

- ``ims-aka`` / ``ims-digest`` (relay; seed 000 §6.2.2.4.1, 004 §6.X.2.2.1): the WIC's
  REGISTERs go to the IMS with its own credentials; the S-CSCF's challenge comes back
  without ck/ik; the WIC's answer goes on; the 2xx makes the binding.
- ``ims-digest-on-behalf`` (004 §6.X.2.2.2): the WIC hands over IMPI + password
  (``Authorization: WebIMS-Password username="...", password="..."``, WSS only); the
  gateway registers, answers the challenge itself and keeps the password in memory
  for refreshes until the binding ends (never stored, never logged).
- ``web-token`` (004 §6.X.2.2.3, RFC 8898 Bearer) and ``web-login`` (000 §6.2.2.4.2,
  session cookie): the gateway verifies, maps to IMPI/IMPU and registers with Trusted
  Node Authentication (``integrity-protected="auth-done"``). The WIC's refreshes are
  answered locally while the gateway keeps the IMS registration refreshed.
- ``pool`` (004 §6.X.2.2.5): the token/session maps to an IMPU of a pool the gateway
  registered in advance; the WIC's REGISTER is answered with no IMS traffic, the
  allocated IMPU in P-Associated-URI.
"""

from __future__ import annotations

import hmac
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from webims.auth.errors import TokenError
from webims.auth.identity import Identity
from webims.sip import Request, Response, parse_name_addr
from webims.sip.auth_header import Challenge, Credentials
from webims.sip.digest import DigestClient, DigestError

from .identity import aors_of, associated_uris, same_identity
from .ims import UeFlow, Unreachable
from .policy import Presented
from .registrar import AUTH_WAIT, RegisterAttempt
from .regmsg import (
    COPIED_RESPONSE_HEADERS,
    aka_algorithm,
    challenge_mode,
    first_digest_challenge,
    granted_expires,
    integrity_value,
    service_routes,
    strip_keys,
    tna_credentials,
)
from .state import Binding

if TYPE_CHECKING:
    from .core import Gateway

__all__ = ["Modes", "Presented"]

log = logging.getLogger("webims.gateway.modes")

RELAY = ("ims-aka", "ims-digest")
#: Header fields of the IMS's 2xx that our 2xx to the WIC repeats.
_OK_COPIED = ("Authentication-Info", "Warning", "Date")
_OK_COPIED_KEYS = frozenset(name.lower() for name in _OK_COPIED)
#: Header fields of the IMS's other answers that the WIC gets too.
_RELAYED = tuple(n for n in COPIED_RESPONSE_HEADERS if n not in ("Service-Route", "P-Associated-URI"))


def impi_of(aor: str) -> str:
    """TS 23.003 §13.3-style IMPI derived from a sip: IMPU: ``user@host``."""
    rest = aor.split(":", 1)[-1]
    return rest.split(";", 1)[0]


def _is_aka(challenge_or_cred: Challenge | Credentials | None) -> bool:
    if challenge_or_cred is None:
        return False
    return aka_algorithm(challenge_or_cred.algorithm)


class Modes:
    """Runs each mode for a :class:`~.registrar.RegisterAttempt` (module docstring)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.config = gateway.config
        self.registrar = gateway.registrar
        self._domain_uri = sys.intern(f"sip:{self.config.domain}")  # one string for all bindings

    # ================================================================== entry
    async def register(
        self, attempt: RegisterAttempt, presented: Presented, allowed: tuple[str, ...]
    ) -> None:
        if attempt.expires == 0:
            await self._wic_deregister(attempt, presented)
            return
        kind = presented.kind
        if kind == "bearer":
            if "web-token" not in allowed and "pool" not in allowed:
                self._refuse(attempt, "web-token")
                return
            try:
                identity = await self.gw.verify_token(presented.token or "", scope="register")
            except TokenError as exc:
                self._token_refused(attempt, exc)
                return
            await self._with_identity(attempt, identity, "web-token", allowed)
            return
        if kind == "session" and "web-login" not in allowed and "pool" not in allowed:
            kind = "none"  # a cookie the browser sends anyway: this WIC authenticates with the IMS
        if kind == "session":
            try:
                identity = await self.gw.verify_session(presented.token or "", scope="register")
            except TokenError as exc:
                attempt.reply(
                    403, "Forbidden (web session refused)", [("Warning", self.gw.warning(exc.reason))]
                )
                return
            if identity.pool is not None or attempt.aor in aors_of(identity.impus):
                await self._with_identity(attempt, identity, "web-login", allowed)
                return
            # The browser sends the web session cookie of another identity (e.g. another tab
            # of the same profile logged in on the web); this WIC registers an AOR that
            # session does not map to, so it authenticates with the IMS itself (relay).
            kind = "none"
        if kind == "password":
            if "ims-digest-on-behalf" not in allowed:
                self._refuse(attempt, "ims-digest-on-behalf")
                return
            if not attempt.flow.connection.source.secure:
                attempt.reply(403, "Forbidden (passwords only over WSS)")
                return
            await self._on_behalf(
                attempt, presented.username or impi_of(attempt.aor), presented.password or ""
            )
            return
        relay = [m for m in RELAY if m in allowed]
        if not relay:
            if "web-token" in allowed or "pool" in allowed:
                attempt.reply(401, headers=[("WWW-Authenticate", self.gw.bearer_challenge())])
            else:
                attempt.reply(403, "Forbidden (credentials required: web login or password)")
            return
        cred = presented.credentials
        if cred is not None and cred.algorithm is not None:
            wanted = "ims-aka" if _is_aka(cred) else "ims-digest"
            if wanted not in allowed:
                self._refuse(attempt, wanted)
                return
        await self._relay(attempt, cred, tuple(relay), presented.raw)

    def _refuse(self, attempt: RegisterAttempt, mode: str) -> None:
        attempt.reply(403, f"Forbidden (mode {mode} not allowed for this client)")

    def _token_refused(self, attempt: RegisterAttempt, exc: TokenError) -> None:
        """RFC 8898 §2.1 / RFC 6750 §3.1: 401 invalid_token, 403 insufficient_scope."""
        headers = [
            ("WWW-Authenticate", self.gw.bearer_challenge(exc)),
            ("Warning", self.gw.warning(exc.reason)),
        ]
        if exc.status == 403:
            attempt.reply(403, "Forbidden (insufficient scope)", headers)
        else:
            attempt.reply(401, "Unauthorized (invalid token)", headers)

    # ================================================================== replies
    def _ok(
        self,
        attempt: RegisterAttempt,
        binding: Binding,
        response: Response | None = None,
        associated: list[str] | None = None,
    ) -> None:
        now = time.time()
        expires = max(0, round(binding.expires_at - now))
        headers: list[tuple[str, str]] = [
            ("Contact", f"{binding.contact};expires={expires}"),
            ("Expires", str(expires)),
        ]
        uris = associated if associated is not None else binding.associated
        headers.extend(("P-Associated-URI", f"<{u}>") for u in uris)
        if response is not None:
            copied = [h for h in response.headers.fields if h.key in _OK_COPIED_KEYS]  # usually none
            for name in _OK_COPIED if copied else ():
                headers.extend((name, v) for v in response.headers.get_all(name))
        if attempt.outbound:
            headers.append(("Require", "outbound"))  # RFC 5626 §6
        headers.append(("Supported", "outbound, path"))
        if self.config.flow_timer:
            headers.append(("Flow-Timer", str(self.config.flow_timer)))  # RFC 5626 §11.5
        tag = response.to.tag if response is not None else None
        attempt.reply(200, "OK", headers, to_tag=tag)

    def _relay_answer(self, attempt: RegisterAttempt, response: Response) -> None:
        headers: list[tuple[str, str]] = []
        for value in response.headers.get_all("WWW-Authenticate"):
            headers.append(("WWW-Authenticate", strip_keys(value)))
        present = {h.key for h in response.headers.fields}  # one pass, then only what is there
        for name in _RELAYED:
            if name.lower() in present:
                headers.extend((name, v) for v in response.headers.get_all(name))
        if response.status == 503 and "Retry-After" not in response.headers:
            headers.append(("Retry-After", str(self.config.retry_after)))
        tag = response.to.tag if "to" in response.headers else None
        attempt.reply(response.status, response.reason, headers, to_tag=tag)

    def _fail(self, attempt: RegisterAttempt, binding: Binding, response: Response) -> None:
        if isinstance(response, Unreachable) or response.status >= 500:
            log.warning("registration of %s failed: %d %s", binding.aor, response.status, response.reason)
        if response.status in (401, 407) and binding.mode not in RELAY:
            attempt.reply(403, "Forbidden (the IMS refused the registration)")
        else:
            self._relay_answer(attempt, response)
        if not binding.confirmed:
            self.registrar.drop(binding)

    # ================================================================== IMS REGISTER
    async def send_register(
        self,
        binding: Binding,
        *,
        expires: int,
        authorization: str | None,
        attempt: RegisterAttempt | None = None,
    ) -> Response:
        gw = self.gw
        flow, failure = binding.ims_flow, None
        if not gw.ims.as_pcscf and (flow is None or flow.closed):  # seed 004: the UE's own flow
            flow, failure = await gw.binding_flow_or_failure(binding)
        binding.cseq += 1
        path = (
            gw.ims.path(gw.token_of(binding), outbound=binding.reg_id is not None)
            if gw.ims.as_pcscf
            else None
        )
        retired = binding.retired_contact  # its flow moved: the old Contact goes (Gateway._name_flow)
        request = gw.register_builder.build(
            request_uri=binding.request_uri or f"sip:{self.config.domain}", aor=binding.aor,
            call_id=binding.call_id, from_tag=binding.from_tag, cseq=binding.cseq,
            contact=binding.ims_contact, retired=retired, expires=expires, path=path,
            authorization=authorization, wic_request=attempt.request if attempt is not None else None,
            wic_ip=binding.connection.remote[0] if binding.connection is not None else None,
            outbound=binding.reg_id is not None,
        )  # fmt: skip
        snapshot = (
            binding.call_id, binding.from_tag, binding.cseq, binding.ims_contact, binding.aor,
            binding.request_uri, path, authorization,
        )  # fmt: skip
        if failure is not None:
            log.error("REGISTER for %s not sent: %s", binding.aor, failure)
            return gw.ims.unreachable(request, failure)
        response = await gw.ims.send(
            request, on_late=lambda late: self._undo_late(late, snapshot, expires, flow), flow=flow
        )
        if retired is not None and 200 <= response.status < 300 and binding.retired_contact == retired:
            binding.retired_contact = None
        return response

    def _undo_late(
        self, late: Response, snapshot: tuple[Any, ...], expires: int, flow: UeFlow | None
    ) -> None:
        """A registration we gave up on succeeded after all: undo it (no half state)."""
        if expires == 0 or not 200 <= late.status < 300:
            return
        call_id, from_tag, cseq, contact, aor, request_uri, path, authorization = snapshot
        log.info("late 2xx for %s: de-registering it", aor)
        request = self.gw.register_builder.build(
            request_uri=request_uri or f"sip:{self.config.domain}", aor=aor, call_id=call_id,
            from_tag=from_tag, cseq=cseq + 1000, contact=contact, expires=0, path=path,
            authorization=authorization,
        )  # fmt: skip
        if flow is not None:
            flow.hold()  # (released once sent: the flow stays open for it)
        self.gw.spawn(self._send_quietly(request, flow))

    async def _send_quietly(self, request: Request, flow: UeFlow | None = None) -> None:
        try:
            response = await self.gw.ims.send(request, flow=flow)
        finally:
            if flow is not None:
                flow.release()
        log.info("clean-up %s for %s: %d", request.method, request.to.uri, response.status)

    def _confirm(
        self,
        binding: Binding,
        attempt: RegisterAttempt | None,
        response: Response,
        *,
        ims_expires: int,
        wic_expires: int | None,
    ) -> None:
        now = time.time()
        associated = associated_uris(response)
        binding.associated = associated or [binding.aor]
        self.gw.bindings.set_impu(binding, binding.associated[0])
        binding.service_route = service_routes(response)
        binding.confirmed = True
        binding.ims_registered_at = now
        binding.ims_expires_at = now + ims_expires
        if wic_expires is not None:
            binding.expires_at = now + wic_expires
        if attempt is not None:
            binding.tls_bound = attempt.flow.connection.source.secure
        self.registrar.persist(binding)
        self.registrar.schedule(binding)
        self.gw.regevents.ensure(binding)

    # ================================================================== relay
    async def _relay(
        self,
        attempt: RegisterAttempt,
        cred: Credentials | None,
        relay: tuple[str, ...],
        raw: str | None = None,
    ) -> None:
        binding = self.registrar.find(attempt)
        if binding is not None and binding.mode not in RELAY:
            await self.registrar.end(binding, f"re-registered in relay mode instead of {binding.mode}")
            binding = None
        if binding is None:
            binding = self.registrar.new_binding(attempt, "ims-aka" if _is_aka(cred) else "ims-digest")
        else:
            self.registrar.attach(binding, attempt.flow)
        async with binding.lock:
            authorization = None
            if cred is not None:
                value = None
                if self.gw.ims.as_pcscf:
                    same_flow = binding.connection is attempt.flow.connection
                    value = integrity_value(
                        binding.mode,
                        secure=attempt.flow.connection.source.secure,
                        bound=binding.tls_bound and same_flow,
                    )
                if raw is not None and "integrity-protected" not in raw.lower():
                    # the usual case: the WIC's credentials as they came, the parameter appended
                    # (what without + with_param + format give, without re-formatting them)
                    authorization = raw if value is None else f'{raw}, integrity-protected="{value}"'
                else:
                    cred = cred.without("integrity-protected")
                    if value is not None:
                        cred = cred.with_param("integrity-protected", value)
                    authorization = cred.format()
                if cred.username:
                    binding.impi = cred.username
            response = await self.send_register(
                binding, expires=attempt.expires, authorization=authorization, attempt=attempt
            )
            if response.status in (401, 407):
                mode = challenge_mode(response)
                if mode not in relay:
                    self._refuse(attempt, mode)
                    if not binding.confirmed:
                        self.registrar.drop(binding)
                    return
                if not binding.confirmed:
                    binding.mode = mode
                    deadline = time.time() + AUTH_WAIT
                    if deadline - binding.expires_at > 1.0:  # a new binding waits AUTH_WAIT already
                        binding.expires_at = deadline
                        self.registrar.schedule(binding)
                # Only the IMS's challenge: clients such as JsSIP keep just the last
                # WWW-Authenticate, so a Bearer challenge beside it would hide it.
                self._relay_answer(attempt, response)
                return
            if 200 <= response.status < 300:
                granted = _granted(response, binding, attempt.expires)
                if granted <= 0:
                    self.registrar.drop(binding)
                    attempt.reply(200, to_tag=response.to.tag)
                    return
                self._confirm(binding, attempt, response, ims_expires=granted, wic_expires=granted)
                self._ok(attempt, binding, response)
                return
            self._fail(attempt, binding, response)

    # ================================================================== TNA (web-token, web-login)
    async def _with_identity(
        self, attempt: RegisterAttempt, identity: Identity, mode: str, allowed: tuple[str, ...]
    ) -> None:
        # a registration never outlives the token or session it was granted on (the WIC refreshes
        # with a fresh one); at least min_expires, so that a WIC is not asked to refresh at once
        remaining = int(identity.expires_at - time.time())
        attempt.expires = max(min(attempt.expires, remaining), min(self.config.min_expires, attempt.expires))
        if identity.pool is not None:
            if "pool" not in allowed:
                self._refuse(attempt, "pool")
                return
            await self._pool(attempt, identity)
            return
        if mode not in allowed:
            self._refuse(attempt, mode)
            return
        if not identity.impus:
            attempt.reply(403, "Forbidden (the token maps to no IMS identity)")
            return
        if not any(same_identity(attempt.aor, impu) for impu in identity.impus):
            attempt.reply(
                403,
                "Forbidden (IMPU not mapped to this web identity)",
                [("Warning", self.gw.warning(f"{attempt.aor} is not an IMPU of {identity.sub}"))],
            )
            return
        binding = self.registrar.find(attempt)
        now = time.time()
        if binding is not None and (binding.mode != mode or binding.sub != identity.sub):
            await self.registrar.end(binding, "re-registered by another identity or mode")
            binding = None
        if binding is not None and binding.confirmed and binding.ims_expires_at > now + 5:
            async with binding.lock:  # refresh: local only, the gateway keeps the IMS side alive
                self.registrar.attach(binding, attempt.flow)
                self._adopt_identity(binding, identity)
                binding.expires_at = now + attempt.expires
                self.registrar.persist(binding)
                self.registrar.schedule(binding)
                self._ok(attempt, binding)
            return
        if binding is None:
            binding = self.registrar.new_binding(attempt, mode)
            binding.request_uri = self._domain_uri
        else:
            self.registrar.attach(binding, attempt.flow)
        self._adopt_identity(binding, identity)
        binding.impi = identity.impi or impi_of(attempt.aor)
        async with binding.lock:
            response = await self.send_register(
                binding, expires=self.config.ims_expires, attempt=attempt,
                authorization=self._tna(binding),
            )  # fmt: skip
            if 200 <= response.status < 300:
                granted = _granted(response, binding, self.config.ims_expires)
                self._confirm(binding, attempt, response, ims_expires=granted, wic_expires=attempt.expires)
                self._ok(attempt, binding, response)
                return
            self._fail(attempt, binding, response)

    def _tna(self, binding: Binding) -> str | None:
        if not self.gw.ims.as_pcscf and not self.config.pcscf:
            return None
        uri = binding.request_uri or f"sip:{self.config.domain}"
        return tna_credentials(binding.impi or impi_of(binding.aor), self.config.domain, uri)

    @staticmethod
    def _adopt_identity(binding: Binding, identity: Identity) -> None:
        binding.sub = identity.sub
        client_id = identity.client_id
        binding.client_id = sys.intern(client_id) if client_id is not None else None
        binding.scopes = _shared_scopes(identity.scopes)
        binding.dest = identity.dest.to_claim()

    # ================================================================== on behalf
    async def _on_behalf(self, attempt: RegisterAttempt, username: str, password: str) -> None:
        mode = "ims-digest-on-behalf"
        binding = self.registrar.find(attempt)
        now = time.time()
        if binding is not None and (binding.mode != mode or binding.impi != username):
            await self.registrar.end(binding, "re-registered with other credentials")
            binding = None
        if (
            binding is not None
            and binding.confirmed
            and binding.ims_expires_at > now + 5
            and binding.password is not None
            and hmac.compare_digest(binding.password, password)
        ):
            async with binding.lock:
                self.registrar.attach(binding, attempt.flow)
                binding.expires_at = now + attempt.expires
                self.registrar.persist(binding)
                self.registrar.schedule(binding)
                self._ok(attempt, binding)
            return
        if binding is None:
            binding = self.registrar.new_binding(attempt, mode)
        else:
            self.registrar.attach(binding, attempt.flow)
        binding.impi = username
        async with binding.lock:
            binding.password = password
            binding.digest_state = DigestClient(username, password)
            response = await self._digest_register(binding, self.config.ims_expires, attempt)
            if 200 <= response.status < 300:
                granted = _granted(response, binding, self.config.ims_expires)
                self._confirm(binding, attempt, response, ims_expires=granted, wic_expires=attempt.expires)
                self._ok(attempt, binding, response)
                return
            if response.status in (401, 407):
                attempt.reply(403, "Forbidden (the IMS refused the IMPI/password)")
                if not binding.confirmed:
                    self.registrar.drop(binding)
                return
            self._fail(attempt, binding, response)

    async def _digest_register(
        self,
        binding: Binding,
        expires: int,
        attempt: RegisterAttempt | None,
    ) -> Response:
        """REGISTER, and once more with our own answer when challenged (RFC 3261 §22.2)."""
        uri = binding.request_uri or f"sip:{self.config.domain}"
        initial = Credentials.digest(binding.impi or "", self.config.domain, "", uri, "").format()
        response = await self.send_register(binding, expires=expires, authorization=initial, attempt=attempt)
        client = binding.digest_state
        if response.status not in (401, 407) or not isinstance(client, DigestClient):
            return response
        challenge = first_digest_challenge(response)
        if challenge is None or _is_aka(challenge):
            log.info(
                "the IMS asks %s of %s: cannot answer it with a password",
                challenge.algorithm if challenge else "no Digest",
                binding.aor,
            )
            return response
        try:
            cred = client.authorize(challenge, "REGISTER", uri)
        except DigestError as exc:
            log.info("cannot answer the challenge for %s: %s", binding.aor, exc.reason)
            return response
        return await self.send_register(
            binding, expires=expires, authorization=cred.format(), attempt=attempt
        )

    # ================================================================== pool
    async def _pool(self, attempt: RegisterAttempt, identity: Identity) -> None:
        if identity.impu is None or identity.pool is None:
            attempt.reply(403, "Forbidden (the token names no pooled IMPU)")
            return
        registration = await self.gw.pools.ensure(identity.pool, identity.impu)
        if registration is None:
            attempt.reply(
                503,
                "Service Unavailable (pool not registered with the IMS)",
                [("Retry-After", str(self.config.retry_after))],
            )
            return
        binding = self.registrar.find(attempt)
        if binding is not None and (
            binding.mode != "pool" or binding.sub != identity.sub or binding.allocation != identity.allocation
        ):
            self.registrar.drop(binding) if binding.mode == "pool" else await self.registrar.end(
                binding, "pool"
            )
            binding = None
        if binding is None:
            binding = self.registrar.new_binding(attempt, "pool")
        else:
            self.registrar.attach(binding, attempt.flow)
        now = time.time()
        async with binding.lock:
            self._adopt_identity(binding, identity)
            binding.pool = identity.pool
            binding.allocation = identity.allocation
            binding.impi = identity.impi
            self.gw.bindings.set_impu(binding, identity.impu)
            binding.associated = [identity.impu]
            binding.service_route = list(registration.service_route)
            binding.confirmed = True
            binding.expires_at = now + attempt.expires
            self.registrar.persist(binding)
            self.registrar.schedule(binding)
            if identity.allocation is not None:
                self.gw.renew_allocation(identity.allocation)
            self._ok(attempt, binding)

    # ================================================================== refresh / de-registration
    async def refresh(self, binding: Binding) -> None:
        """Gateway-managed IMS refresh (web-token, web-login, on-behalf digest)."""
        if binding.mode == "ims-digest-on-behalf":
            if binding.password is None:
                await self.registrar.end(
                    binding, "no password to refresh with (restarted?)", deregister=False
                )
                self.gw.tell_wic(binding, "registration lost: register again")
                return
            response = await self._digest_register(binding, self.config.ims_expires, None)
        else:
            response = await self.send_register(
                binding, expires=self.config.ims_expires, authorization=self._tna(binding)
            )
        now = time.time()
        if 200 <= response.status < 300:
            granted = _granted(response, binding, self.config.ims_expires)
            binding.ims_registered_at = now
            binding.ims_expires_at = now + granted
            binding.service_route = service_routes(response) or binding.service_route
            self.registrar.persist(binding)
            return
        log.warning("refresh of %s failed: %d %s", binding.aor, response.status, response.reason)
        if isinstance(response, Unreachable) or response.status >= 500:
            retry = now + self.config.retry_after
            binding.ims_registered_at = retry - 2 * max(retry - now, 1.0)  # refresh_at = retry
            binding.ims_expires_at = max(binding.ims_expires_at, retry + 0.001)
            return
        self.registrar.drop(binding)
        self.gw.tell_wic(binding, f"registration refused by the IMS ({response.status})")

    async def _wic_deregister(self, attempt: RegisterAttempt, presented: Presented) -> None:
        binding = self.registrar.find(attempt)
        if binding is None:
            attempt.reply(200, headers=[("Expires", "0")])
            return
        if binding.connection is not attempt.flow.connection and binding.connection is not None:
            attempt.reply(403, "Forbidden (not the flow that registered this contact)")
            return
        response = await self.deregister(attempt, binding, presented)
        attempt.incoming.send(response)

    async def deregister(
        self, attempt: RegisterAttempt, binding: Binding, presented: Presented | None = None
    ) -> Response:
        """A WIC removes one of its contacts: de-register it toward the IMS; the answer for the WIC."""
        request = attempt.request
        if binding.mode in RELAY:
            credentials = presented.credentials if presented is not None else None
            async with binding.lock:
                authorization = None
                if credentials is not None:
                    cred = credentials.without("integrity-protected")
                    if self.gw.ims.as_pcscf:
                        value = integrity_value(
                            binding.mode,
                            secure=attempt.flow.connection.source.secure,
                            bound=binding.tls_bound,
                        )
                        if value is not None:
                            cred = cred.with_param("integrity-protected", value)
                    authorization = cred.format()
                binding.ending = True
                response = await self.send_register(
                    binding, expires=0, authorization=authorization, attempt=attempt
                )
                binding.ending = False
            if response.status in (401, 407):
                self._relay_answer(attempt, response)
                return request.response(response.status, response.reason)  # already answered
            self.registrar.drop(binding)
            return request.response(
                200 if response.status < 300 else response.status,
                to_tag="webims-gw",
                headers=[("Expires", "0")],
            )
        await self.registrar.end(binding, "de-registered by the WIC")
        return request.response(200, to_tag="webims-gw", headers=[("Expires", "0")])

    async def deregister_at_ims(self, binding: Binding) -> None:
        """The gateway ends a binding's IMS registration: its contact with ``expires=0``."""
        if binding.mode == "pool" or not binding.ims_expires_at or binding.ims_expires_at < time.time():
            return
        if binding.mode == "ims-digest-on-behalf":
            if binding.digest_state is None and binding.password is not None:
                binding.digest_state = DigestClient(binding.impi or "", binding.password)
            response = await self._digest_register(binding, 0, None)
        elif binding.mode in RELAY:
            authorization = None
            if self.gw.ims.as_pcscf and binding.impi:
                uri = binding.request_uri or f"sip:{self.config.domain}"
                authorization = Credentials.digest(
                    binding.impi, self.config.domain, "", uri, "",
                    integrity_protected="tls-yes" if binding.tls_bound else "tls-pending",
                ).format()  # fmt: skip
            response = await self.send_register(binding, expires=0, authorization=authorization)
        else:
            response = await self.send_register(binding, expires=0, authorization=self._tna(binding))
        log.info(
            "de-registration of %s (%s): %d %s", binding.aor, binding.mode, response.status, response.reason
        )


_SCOPES: dict[frozenset[str], list[str]] = {}


def _shared_scopes(scopes: frozenset[str]) -> list[str]:
    """``sorted(scopes)``, one list per distinct scope set (bindings only read it)."""
    shared = _SCOPES.get(scopes)
    if shared is None:
        shared = sorted(sys.intern(s) for s in scopes)
        if len(_SCOPES) < 1024:
            _SCOPES[scopes] = shared
    return shared


def _granted(response: Response, binding: Binding, default: int) -> int:
    """The expiry the IMS granted the binding's Contact (:func:`~.regmsg.granted_expires`)."""
    return granted_expires(response, _contact_uri(binding), default, registered=binding.ims_contact)


def _contact_uri(binding: Binding) -> object:
    """The URI of the Contact registered at the IMS (its text when it is ``<uri>params``)."""
    contact = binding.ims_contact
    if contact.startswith("<") and ">" in contact:
        return contact[1 : contact.index(">")]
    return parse_name_addr(contact).uri
