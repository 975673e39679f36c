"""Authentication at the S-CSCF registrar (TS 24.229 §5.4.1.2, TS 33.203 §6.1, RFC 3310, RFC 4169).

:class:`Authenticator` decides whether a REGISTER is authenticated, and otherwise
answers it (401 challenge, 403, 400, 480):

- Trusted Node Authentication (``integrity-protected="auth-done"``, TS 24.229
  §5.4.1.2.2F, TS 33.203 Annex U) is accepted only when the REGISTER entered the
  core from a configured trusted node: its direct source, or, behind our own
  I-CSCF, the address that I-CSCF stamped on the next Via (RFC 3261 §18.2.1);
- credentials answering one of our challenges are verified: SIP Digest with the
  HA1 the HSS gave (MD5, qop=auth), AKAv1-MD5 / AKAv2-MD5 with the password derived
  from XRES (and IK, CK for v2); a wrong or empty response gets 403;
- an ``auts`` starts resynchronisation: MAR with SIP-Authorization = RAND || AUTS
  (TS 33.203 §6.1.2), then a new challenge;
- anything else gets a fresh challenge: MAR (the scheme named by the Authorization
  ``algorithm``, else the configured one), then 401 with the nonce (base64(RAND ||
  AUTN) for AKA, RFC 3310 §3.2) and, for AKA, ``ck``/``ik`` for the P-CSCF
  (TS 24.229 §5.4.1.2.1).

A challenge stays usable for ``auth_timeout`` seconds (reg-await-auth); its nonce
may be used again with a growing nonce count (RFC 7616 §3.4).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from webims.aka import AkaFormatError, aka_password, build_aka_nonce, decode_auts, parse_aka_nonce
from webims.diameter import (
    AUTH_SCHEME_AKAV1_MD5,
    AUTH_SCHEME_AKAV2_MD5,
    AUTH_SCHEME_SIP_DIGEST,
    DiameterError,
    MultimediaAuthAnswer,
    SipAuthDataItem,
)
from webims.endpoint import IncomingRequest
from webims.sip import ParseError, Request
from webims.sip.digest import AuthParam, Challenge, Credentials, DigestServer, parse_credentials
from webims.sip.randomness import token_hex
from webims.transport import host_key

from .cx_client import CxError, DiameterClient
from .flows import CoreElements, Flow, flow_of, via_flow
from .settings import LabCoreConfig

__all__ = ["Authenticator", "credentials", "reply"]

#: host_key parses IP addresses; the few hosts in front of an S-CSCF are worth remembering.
_host_key = functools.lru_cache(maxsize=4096)(host_key)

log = logging.getLogger("webims.labcore.scscf")

_ALGORITHM_SCHEME = {
    "md5": AUTH_SCHEME_SIP_DIGEST,
    "akav1-md5": AUTH_SCHEME_AKAV1_MD5,
    "akav2-md5": AUTH_SCHEME_AKAV2_MD5,
}
_SCHEME_ALGORITHM = {AUTH_SCHEME_AKAV1_MD5: "AKAv1-MD5", AUTH_SCHEME_AKAV2_MD5: "AKAv2-MD5"}
#: Challenges kept per private identity (older ones are forgotten).
MAX_CHALLENGES_PER_IMPI = 4
MAX_CHALLENGES = 100_000


@dataclass(eq=False)
class _Pending:
    """A challenge we issued (the reg-await-auth state of TS 24.229 §5.4.1.2.1)."""

    impi: str
    impu: str
    scheme: str
    algorithm: str
    realm: str
    nonce: str
    expires_at: float
    ha1: str | None = None
    password: bytes | None = None  # AKA: derived from XRES, IK, CK
    rand: bytes | None = None
    authenticated: bool = False


def reply(
    incoming: IncomingRequest,
    status: int,
    reason: str | None = None,
    *,
    headers: Sequence[tuple[str, str]] = (),
) -> None:
    """Answer a REGISTER locally (with a To tag, RFC 3261 §8.2.6.2)."""
    incoming.respond(status, reason, to_tag=token_hex(5), headers=headers)


class Authenticator:
    """Challenges and verification for one S-CSCF (see the module docstring)."""

    def __init__(
        self,
        config: LabCoreConfig,
        cx: DiameterClient,
        *,
        server_name: str,
        core_hosts: Sequence[str] = (),
        core: CoreElements | None = None,
    ) -> None:
        self.config = config
        self.core = core
        self.cx = cx
        self.server_name = server_name
        self.core_hosts = {host_key(h) for h in core_hosts}
        self.trusted = [ipaddress.ip_network(n, strict=False) for n in config.trusted_nodes]
        self._trusted_cache: dict[str, bool] = {}  # address -> trusted (the few nodes in front of us)
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        # nonces of each (IMPI, IMPU), oldest first: one IMPI may register many IMPUs at
        # once (a gateway's IMPU pool, seed 004 §6.X.2.2.4), each with its own challenge
        self._by_impi: dict[tuple[str, str], list[str]] = {}
        self._digest: dict[str, DigestServer] = {}
        self._secret = os.urandom(32)
        self._loop: asyncio.AbstractEventLoop | None = None

    def now(self) -> float:
        """The event loop's clock (the loop is looked up once: this runs several times a request)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    @staticmethod
    def _reply(
        incoming: IncomingRequest,
        status: int,
        reason: str | None = None,
        *,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        reply(incoming, status, reason, headers=headers)

    def origin(self, request: Request, incoming: IncomingRequest) -> Flow:
        """Where a request entered the core: its direct source, or behind our own I-CSCF the
        source that I-CSCF stamped on the next Via (``received``/``rport``, RFC 3261 §18.2.1,
        RFC 3581; :func:`webims.labcore.flows.stamp_source`).

        With the lab core's elements known (``core``), "our own I-CSCF" is told by its
        (transport, host, port), which matters on loopback where every sender is 127.0.0.1;
        otherwise by the configured ``core_hosts`` addresses."""
        direct = flow_of(incoming.connection)
        core = self.core
        behind = core.is_own(direct) if core is not None else direct.host in self.core_hosts
        if behind:
            vias = request.via
            if len(vias) >= 2 and (core is not None or _host_key(vias[0].host) in self.core_hosts):
                return via_flow(vias[1])
        return direct

    def is_trusted(self, address: str) -> bool:
        """Whether ``address`` is a configured trusted node (``[labcore] trusted_nodes``)."""
        trusted = self._trusted_cache.get(address)
        if trusted is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                trusted = False
            else:
                trusted = any(ip in net for net in self.trusted)
            if len(self._trusted_cache) >= 4096:
                self._trusted_cache.clear()
            self._trusted_cache[address] = trusted
        return trusted

    async def authenticate(
        self, incoming: IncomingRequest, request: Request, creds: Credentials | None, impi: str, impu: str
    ) -> bool:
        now = self.now()
        if creds is not None and (creds.integrity_protected or "").lower() == "auth-done":
            origin = self.origin(request, incoming).host
            if self.is_trusted(origin):
                return True  # TS 24.229 §5.4.1.2.2F: trusted node authenticated the user
            log.info("auth-done REGISTER for %s from untrusted %s: challenged", impu, origin)
        pending = self._pending.get(creds.nonce) if creds is not None and creds.nonce else None
        if pending is not None and (pending.expires_at < now or pending.impi != impi):
            pending = None
        if creds is None or pending is None or not creds.is_digest:
            await self._challenge(incoming, impi, impu, creds)
            return False
        if creds.auts:
            await self._resynchronise(incoming, pending, creds)
            return False
        if not creds.response:
            self._forget(pending.nonce)
            self._reply(incoming, 403, "Forbidden (authentication failed)")
            return False
        server = self._digest_server(pending.realm)
        verdict = server.verify(
            creds,
            method=request.method,
            now=now,
            ha1=pending.ha1,
            password=pending.password,
            check_nonce=False,
        )
        if verdict.ok:
            pending.authenticated = True
            return True
        if verdict.status.value == "replay" and pending.authenticated:
            await self._challenge(incoming, impi, impu, creds)  # nonce used up: a fresh one
            return False
        if verdict.status.value == "bad-request":
            self._reply(incoming, 400, f"Bad Request ({verdict.reason})")
            return False
        self._forget(pending.nonce)
        log.info("REGISTER for %s: %s", impu, verdict.reason)
        self._reply(incoming, 403, "Forbidden (authentication failed)")
        return False

    def _digest_server(self, realm: str) -> DigestServer:
        server = self._digest.get(realm)
        if server is None:
            server = self._digest[realm] = DigestServer(
                realm, self._secret, algorithms=("MD5", "AKAv1-MD5", "AKAv2-MD5"), qop=("auth",)
            )
        return server

    def _scheme_for(self, creds: Credentials | None) -> str:
        algorithm = (creds.algorithm or "").lower() if creds is not None else ""
        return _ALGORITHM_SCHEME.get(algorithm, self.config.auth_scheme)

    async def _mar(self, impi: str, impu: str, item: SipAuthDataItem) -> MultimediaAuthAnswer:
        return await self.cx.mar(self.server_name, impi, impu, item, 1)

    async def _challenge(
        self,
        incoming: IncomingRequest,
        impi: str,
        impu: str,
        creds: Credentials | None,
        *,
        resync: bytes | None = None,
        scheme: str | None = None,
    ) -> None:
        item = SipAuthDataItem(authentication_scheme=scheme or self._scheme_for(creds), authorization=resync)
        try:
            maa = await self._mar(impi, impu, item)
        except (CxError, DiameterError) as exc:
            log.warning("MAR for %s failed: %s", impu, exc)
            self._reply(incoming, 480, "Temporarily Unavailable (HSS)")
            return
        if not maa.result.is_success or not maa.sip_auth_data_items:
            log.info("MAA for %s/%s: %s", impi, impu, maa.result.code)
            self._reply(incoming, 403, "Forbidden")
            return
        pending = self._pending_from(maa.sip_auth_data_items[0], impi, impu)
        if pending is None:
            self._reply(incoming, 403, "Forbidden (authentication scheme)")
            return
        self._remember(pending)
        extra: list[AuthParam] = []
        if pending.rand is not None:
            item0 = maa.sip_auth_data_items[0]
            # TS 24.229 §5.4.1.2.1: CK and IK for the P-CSCF (it removes them)
            extra = [
                AuthParam("ik", (item0.integrity_key or b"").hex()),
                AuthParam("ck", (item0.confidentiality_key or b"").hex()),
            ]
        challenge = Challenge.digest(
            pending.realm, pending.nonce, algorithm=pending.algorithm, qop=("auth",), extra=extra
        )
        self._reply(incoming, 401, headers=[("WWW-Authenticate", challenge.format())])

    def _pending_from(self, item: SipAuthDataItem, impi: str, impu: str) -> _Pending | None:
        now = self.now()
        expires = now + self.config.auth_timeout
        scheme = item.authentication_scheme or ""
        if item.digest is not None:
            algorithm = item.digest.algorithm or "MD5"
            server = self._digest_server(item.digest.realm)
            return _Pending(
                impi,
                impu,
                scheme,
                algorithm,
                item.digest.realm,
                server.make_nonce(now),
                expires,
                ha1=item.digest.ha1,
            )
        aka_algorithm = _SCHEME_ALGORITHM.get(scheme)
        auth, xres = item.authenticate, item.authorization
        if aka_algorithm is None or auth is None or xres is None or len(auth) < 32:
            return None
        version = 2 if aka_algorithm == "AKAv2-MD5" else 1
        password = aka_password(version, xres, item.integrity_key or b"", item.confidentiality_key or b"")
        nonce = build_aka_nonce(auth[:16], auth[16:32])
        return _Pending(
            impi,
            impu,
            scheme,
            aka_algorithm,
            self.config.domain,
            nonce,
            expires,
            password=password,
            rand=auth[:16],
        )

    def _remember(self, pending: _Pending) -> None:
        mine = self._by_impi.setdefault((pending.impi, pending.impu), [])
        while len(mine) >= MAX_CHALLENGES_PER_IMPI:
            self._forget(mine[0])
        mine.append(pending.nonce)
        self._pending[pending.nonce] = pending
        now = self.now()
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if oldest.expires_at >= now and len(self._pending) <= MAX_CHALLENGES:
                break
            self._forget(oldest.nonce)

    def _forget(self, nonce: str) -> None:
        pending = self._pending.pop(nonce, None)
        if pending is None:
            return
        mine = self._by_impi.get((pending.impi, pending.impu))
        if mine is not None:
            if nonce in mine:
                mine.remove(nonce)
            if not mine:
                del self._by_impi[(pending.impi, pending.impu)]

    async def _resynchronise(self, incoming: IncomingRequest, pending: _Pending, creds: Credentials) -> None:
        """RFC 3310 §3.4, TS 33.203 §6.1.2: MAR with SIP-Authorization = RAND || AUTS."""
        self._forget(pending.nonce)
        try:
            auts = decode_auts(creds.auts or "")
            rand = pending.rand or parse_aka_nonce(pending.nonce).rand
        except AkaFormatError:
            self._reply(incoming, 400, "Bad Request (auts)")
            return
        await self._challenge(
            incoming, pending.impi, pending.impu, creds, resync=rand + auts, scheme=pending.scheme
        )


def credentials(request: Request) -> Credentials | None:
    value = request.headers.get("authorization")
    if value is None:
        return None
    try:
        creds = parse_credentials(value)
    except ParseError:
        return None
    return creds if creds.is_digest else None
