"""Locating the next SIP hop (the I-CSCF or an operator P-CSCF): RFC 3263 §4 with DNS.

:meth:`Resolver.resolve` turns a SIP URI into an ordered list of
:class:`~webims.endpoint.Target` (transport, IP address, port):

1. a numeric host (or ``maddr``) is used as it is (§4.1, §4.2);
2. a host with an explicit port: A/AAAA only (§4.2);
3. with a ``transport`` parameter: SRV ``_sip._udp`` / ``_sip._tcp`` / ``_sips._tcp`` (§4.2);
4. otherwise NAPTR (services ``SIP+D2U``, ``SIP+D2T``, ``SIPS+D2T`` that we support,
   by order then preference, RFC 3403 §4.1) leading to SRV records; without NAPTR,
   SRV for each supported transport; without SRV, A/AAAA on the default port (§4.1);
5. SRV targets by priority, then weighted at random within a priority (RFC 2782).

Answers are cached for their TTL (bounded by ``max_ttl``). ``nameservers`` pins the
DNS servers (``"127.0.0.1:5353"`` form allowed); without them the system's
configuration is used for NAPTR/SRV and ``getaddrinfo`` (``/etc/hosts``) for
addresses.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

from webims.endpoint import Target
from webims.sip import SipURI
from webims.transport import is_ip_address

__all__ = ["ResolveError", "Resolver"]

log = logging.getLogger("webims.gateway.resolver")

_NAPTR_SERVICES = {"SIP+D2U": "UDP", "SIP+D2T": "TCP", "SIPS+D2T": "TLS"}
_SRV_PREFIX = {"UDP": "_sip._udp.", "TCP": "_sip._tcp.", "TLS": "_sips._tcp."}
_DEFAULT_PORT = {"UDP": 5060, "TCP": 5060, "TLS": 5061}


class ResolveError(Exception):
    """No usable target for a URI."""


@dataclass(frozen=True)
class _Srv:
    priority: int
    weight: int
    port: int
    target: str


def _order_srv(records: list[_Srv], rng: random.Random) -> list[_Srv]:
    """RFC 2782 ordering: ascending priority, weighted random selection within one."""
    out: list[_Srv] = []
    for prio in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == prio]
        while group:
            total = sum(r.weight for r in group)
            if total == 0:
                pick = group[0]
            else:
                point = rng.uniform(0, total)
                acc = 0
                pick = group[-1]
                for r in group:
                    acc += r.weight
                    if acc >= point:
                        pick = r
                        break
            out.append(pick)
            group.remove(pick)
    return out


class Resolver:
    """RFC 3263 resolution with a TTL cache (module docstring)."""

    def __init__(
        self,
        nameservers: Sequence[str] = (),
        *,
        transports: Sequence[str] = ("UDP", "TCP"),
        default_transport: str = "UDP",
        timeout: float = 2.0,
        max_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.transports = tuple(t.upper() for t in transports)
        self.default_transport = default_transport.upper()
        self.timeout = timeout
        self.max_ttl = max_ttl
        self._clock = clock
        self._rng = rng or random.Random()
        self._pinned = bool(nameservers)
        self._dns = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            self._dns.nameservers = [_nameserver(n) for n in nameservers]
        self._cache: dict[str, tuple[float, list[Target]]] = {}
        self.queries = 0

    def cached(self, uri: SipURI) -> list[Target] | None:
        """The targets for ``uri`` when still cached (no coroutine: the common case)."""
        hit = self._cache.get(str(uri))
        return hit[1] if hit is not None and hit[0] > self._clock() else None

    async def resolve(self, uri: SipURI) -> list[Target]:
        """Targets for ``uri`` in the order to try them; raises :class:`ResolveError`."""
        text = str(uri)
        hit = self._cache.get(text)
        now = self._clock()
        if hit is not None and hit[0] > now:
            return hit[1]
        targets, ttl = await self._resolve(uri)
        if not targets:
            raise ResolveError(f"no address for {text}")
        self._cache[text] = (now + min(ttl, self.max_ttl), targets)
        return targets

    def forget(self, uri: SipURI) -> None:
        self._cache.pop(str(uri), None)

    async def _resolve(self, uri: SipURI) -> tuple[list[Target], float]:
        transport = (uri.param("transport") or "").upper() or None
        if uri.scheme == "sips":
            transport = "TLS"
        host = (uri.param("maddr") or uri.host).strip("[]")
        if is_ip_address(host):
            t = transport or self.default_transport
            return [Target(t, host, uri.port or _DEFAULT_PORT.get(t, 5060))], self.max_ttl
        if uri.port is not None:
            t = transport or self.default_transport
            addrs, ttl = await self._addresses(host)
            return [Target(t, a, uri.port) for a in addrs], ttl
        if transport is not None:
            targets, ttl = await self._srv(transport, _SRV_PREFIX.get(transport, "_sip._udp.") + host)
            if targets:
                return targets, ttl
            addrs, ttl = await self._addresses(host)
            return [Target(transport, a, _DEFAULT_PORT.get(transport, 5060)) for a in addrs], ttl
        targets, ttl = await self._naptr(host)
        if targets:
            return targets, ttl
        ordered = [self.default_transport, *(t for t in self.transports if t != self.default_transport)]
        for t in ordered:
            targets, ttl = await self._srv(t, _SRV_PREFIX[t] + host)
            if targets:
                return targets, ttl
        addrs, ttl = await self._addresses(host)
        return [Target(self.default_transport, a, 5060) for a in addrs], ttl

    async def _query(self, name: str, rdtype: str) -> tuple[list[object], float]:
        self.queries += 1
        try:
            answer = await self._dns.resolve(name, rdtype, lifetime=self.timeout, search=False)
        except (
            dns.resolver.NXDOMAIN,
            dns.resolver.NoAnswer,
            dns.resolver.NoNameservers,
            dns.exception.Timeout,
            dns.resolver.YXDOMAIN,
        ) as exc:
            log.debug("DNS %s %s: %s", rdtype, name, type(exc).__name__)
            return [], 30.0
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else 30.0
        return list(answer), ttl

    async def _naptr(self, host: str) -> tuple[list[Target], float]:
        records, ttl = await self._query(host, "NAPTR")
        usable = []
        for r in records:
            service = r.service.decode().upper()  # type: ignore[attr-defined]
            flags = r.flags.decode().lower()  # type: ignore[attr-defined]
            t = _NAPTR_SERVICES.get(service)
            if t is None or t not in self.transports or flags != "s":
                continue
            usable.append((r.order, r.preference, t, str(r.replacement).rstrip(".")))  # type: ignore[attr-defined]
        usable.sort(key=lambda x: (x[0], x[1]))
        out: list[Target] = []
        for _, _, t, name in usable:
            targets, srv_ttl = await self._srv(t, name)
            ttl = min(ttl, srv_ttl)
            out.extend(x for x in targets if x not in out)
        return out, ttl

    async def _srv(self, transport: str, name: str) -> tuple[list[Target], float]:
        records, ttl = await self._query(name, "SRV")
        srvs = [
            _Srv(r.priority, r.weight, r.port, str(r.target).rstrip("."))  # type: ignore[attr-defined]
            for r in records
            if str(r.target) != "."  # type: ignore[attr-defined]
        ]
        out: list[Target] = []
        for srv in _order_srv(srvs, self._rng):
            addrs, a_ttl = await self._addresses(srv.target)
            ttl = min(ttl, a_ttl)
            out.extend(Target(transport, a, srv.port) for a in addrs)
        return out, ttl

    async def _addresses(self, host: str) -> tuple[list[str], float]:
        if is_ip_address(host):
            return [host], self.max_ttl
        if not self._pinned:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except OSError:
                return [], 30.0
            addrs: list[str] = []
            for info in infos:
                addr = str(info[4][0])
                if addr not in addrs:
                    addrs.append(addr)
            return addrs, 60.0
        a, ttl_a = await self._query(host, "A")
        aaaa, ttl_aaaa = await self._query(host, "AAAA")
        addrs = [str(r) for r in a] + [str(r) for r in aaaa]
        ttls = [t for t, rs in ((ttl_a, a), (ttl_aaaa, aaaa)) if rs]
        return addrs, min(ttls) if ttls else 30.0


def _nameserver(text: str) -> dns.nameserver.Do53Nameserver:
    host, port = text, 53
    if text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    elif text.startswith("[") and "]:" in text:
        host, _, p = text[1:].partition("]:")
        port = int(p)
    return dns.nameserver.Do53Nameserver(host.strip("[]"), port)


def target_uri(target: Target) -> str:
    """A URI naming ``target`` (for logs)."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"sip:{host}:{target.port};transport={target.transport.lower()}"
