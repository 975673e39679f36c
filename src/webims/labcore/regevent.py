"""The reg event package at the S-CSCF (RFC 3680, RFC 6665, TS 24.229 §5.4.2.1).

- :func:`build_reginfo` / :func:`parse_reginfo`: the ``application/reginfo+xml``
  document (RFC 3680 §5.3), one ``<registration>`` per public identity of the
  implicit registration set (TS 24.229 §5.4.2.1.2), each listing the contacts;
- :class:`RegEventServer`: the notifier. A SUBSCRIBE with ``Event: reg`` for a
  registered identity, from the user itself (an identity of the set in
  P-Asserted-Identity or From) or from the P-CSCF on the registration's Path,
  gets 200 and a NOTIFY with the full state (RFC 6665 §4.2.1, §4.2.2); every
  change of the registration brings a new NOTIFY (``version`` counts up, RFC 3680
  §5.2); refreshes, ``Expires: 0`` and expiry end with a ``terminated`` NOTIFY.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import xml.etree.ElementTree as ET
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from webims.endpoint import IncomingRequest, SipEndpoint
from webims.sip import URI, NameAddr, ParseError, Request, SipURI, new_tag, parse_name_addr, parse_uri
from webims.sip.randomness import randbelow
from webims.transport import host_key

from .identities import canonical, canonical_text
from .registrations import Binding, Deadlines
from .scscf_registrar import Registration

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_EXPIRES",
    "ContactInfo",
    "RegEventServer",
    "Reginfo",
    "ReginfoError",
    "RegistrationInfo",
    "Subscription",
    "build_reginfo",
    "event_is_reg",
    "parse_reginfo",
    "reginfo_of",
    "reginfo_xml",
]

log = logging.getLogger("webims.labcore.regevent")

CONTENT_TYPE = "application/reginfo+xml"
NAMESPACE = "urn:ietf:params:xml:ns:reginfo"
#: RFC 3680 §3.2: "the default expiration time for subscriptions ... is 3761 seconds".
DEFAULT_EXPIRES = 3761
MAX_REGINFO = 256 * 1024


class ReginfoError(ValueError):
    """A reginfo document that is not well-formed or not RFC 3680 shaped."""


@dataclass(frozen=True)
class ContactInfo:
    """``<contact>`` (RFC 3680 §5.1.2)."""

    id: str
    state: str  # active | terminated
    #: registered, created, refreshed, shortened, expired, deactivated, probation, unregistered, rejected
    event: str
    uri: str
    expires: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()  # <unknown-param> elements


@dataclass(frozen=True)
class RegistrationInfo:
    """``<registration>`` (RFC 3680 §5.1.1)."""

    aor: str
    id: str
    state: str  # init | active | terminated
    contacts: tuple[ContactInfo, ...] = ()


@dataclass(frozen=True)
class Reginfo:
    version: int
    state: str  # full | partial
    registrations: tuple[RegistrationInfo, ...] = ()

    def registration(self, aor: str) -> RegistrationInfo | None:
        return next((r for r in self.registrations if r.aor == aor), None)


def build_reginfo(info: Reginfo) -> bytes:
    out = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<reginfo xmlns="{NAMESPACE}" '
        f'version="{info.version}" state={quoteattr(info.state)}>'
    ]
    for reg in info.registrations:
        out.append(
            f"<registration aor={quoteattr(reg.aor)} id={quoteattr(reg.id)} state={quoteattr(reg.state)}>"
        )
        for c in reg.contacts:
            expires = f' expires="{c.expires}"' if c.expires is not None else ""
            out.append(
                f"<contact id={quoteattr(c.id)} state={quoteattr(c.state)} "
                f"event={quoteattr(c.event)}{expires}><uri>{escape(c.uri)}</uri>"
            )
            for name, value in c.params:
                text = "" if value is None else escape(value)
                out.append(f"<unknown-param name={quoteattr(name)}>{text}</unknown-param>")
            out.append("</contact>")
        out.append("</registration>")
    out.append("</reginfo>\n")
    return "".join(out).encode()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_reginfo(data: bytes | str) -> Reginfo:
    """Parse a reginfo document; raises :class:`ReginfoError` only."""
    if len(data) > MAX_REGINFO:
        raise ReginfoError("reginfo document too large")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ReginfoError(f"not well-formed: {exc}") from None
    if _local(root.tag) != "reginfo":
        raise ReginfoError(f"root element is {_local(root.tag)!r}")
    try:
        version = int(root.get("version", ""))
    except ValueError:
        raise ReginfoError("reginfo without a numeric version") from None
    regs = []
    for r in root:
        if _local(r.tag) != "registration":
            continue
        contacts = []
        for c in r:
            if _local(c.tag) != "contact":
                continue
            uri = next((x.text or "" for x in c if _local(x.tag) == "uri"), "").strip()
            params = tuple((p.get("name", ""), p.text) for p in c if _local(p.tag) == "unknown-param")
            expires = c.get("expires")
            contacts.append(
                ContactInfo(
                    c.get("id", ""),
                    c.get("state", ""),
                    c.get("event", ""),
                    uri,
                    int(expires) if expires and expires.isdigit() else None,
                    params,
                )
            )
        regs.append(RegistrationInfo(r.get("aor", ""), r.get("id", ""), r.get("state", ""), tuple(contacts)))
    return Reginfo(version, root.get("state", ""), tuple(regs))


def reginfo_of(reg: Registration, version: int, now: float) -> Reginfo:
    """The full state of a registration: every identity of the implicit set (TS 24.229
    §5.4.2.1.2), active contacts and those terminated since the last NOTIFY."""
    contacts = []
    for b in list(reg.bindings.values()) + reg.terminated:
        params = tuple((k, v) for k, v in b.contact.params.items() if k not in ("expires", "q"))
        active = b.state == "active"
        contacts.append(
            ContactInfo(
                b.id, b.state, b.event, str(b.contact.uri), b.expires_in(now) if active else 0, params
            )
        )
    state = "active" if reg.bindings else "terminated"
    regs = tuple(
        RegistrationInfo(identity, f"{reg.id}{i}", state, tuple(contacts))
        for i, identity in enumerate(reg.identities or (reg.impu,))
    )
    return Reginfo(version, "full", regs)


def reginfo_xml(reg: Registration, version: int, now: float) -> bytes:
    """``build_reginfo(reginfo_of(reg, version, now))``, byte for byte, without the intermediate
    objects (every NOTIFY of every registration is built here). The attribute values we make
    ourselves (ids, states, events, numbers) need no escaping; identities and URIs are escaped."""
    contacts = []
    for b in (*reg.bindings.values(), *reg.terminated):
        expires = b.expires_in(now) if b.state == "active" else 0
        contacts.append(
            f'<contact id="{b.id}" state="{b.state}" event="{b.event}" expires="{expires}">{_contact_tail(b)}'
        )
    body = "".join(contacts)
    state = "active" if reg.bindings else "terminated"
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<reginfo xmlns="{NAMESPACE}" version="{version}"']
    out.append(' state="full">')
    for i, identity in enumerate(reg.identities or (reg.impu,)):
        out.append(f'<registration aor={quoteattr(identity)} id="{reg.id}{i}" state="{state}">')
        out.append(body)
        out.append("</registration>")
    out.append("</reginfo>\n")
    return "".join(out).encode()


def _contact_tail(b: Binding) -> str:
    """``<uri>`` and ``<unknown-param>`` elements of a binding's ``<contact>``, and its end tag
    (they depend only on the registered contact: made once per binding)."""
    tail = b.reginfo_tail
    if tail is None:
        parts = [f"<uri>{escape(str(b.contact.uri))}</uri>"]
        for name, value in b.contact.params.items():
            if name in ("expires", "q"):
                continue
            text = "" if value is None else escape(value)
            parts.append(f"<unknown-param name={quoteattr(name)}>{text}</unknown-param>")
        parts.append("</contact>")
        tail = b.reginfo_tail = "".join(parts)
    return tail


@dataclass(eq=False)
class Subscription:
    """One reg event subscription dialog (RFC 6665 §4.2.1), we being the notifier."""

    registration: Registration
    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: str  # To of the SUBSCRIBE (without tag)
    remote_uri: str  # From of the SUBSCRIBE (without tag)
    target: str  # the subscriber's Contact URI
    route_set: tuple[str, ...]
    expires_at: float
    cseq: int = field(default_factory=lambda: randbelow(10_000) + 1)
    version: int = 0
    deadline: float | None = None  # when it expires unless refreshed (RegEventServer's Deadlines)
    terminated: bool = False
    target_uri: URI | None = None  # ``target`` parsed


class RegEventServer:
    """The S-CSCF as notifier of the reg event package (see the module docstring)."""

    def __init__(self, endpoint: SipEndpoint, contact: str, *, max_expires: int = 7200) -> None:
        self.endpoint = endpoint
        self.contact = contact
        self.max_expires = max_expires
        self._by_dialog: dict[tuple[str, str], Subscription] = {}
        self._by_registration: dict[int, list[Subscription]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._deadlines: Deadlines[Subscription] = Deadlines(self._expired)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.notifies_sent = 0

    def now(self) -> float:
        """The event loop's clock (the loop is looked up once: this runs several times a request)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._by_dialog.values())

    def find(self, request: Request) -> Subscription | None:
        tag = request.to.tag
        return self._by_dialog.get((request.call_id, tag)) if tag is not None else None

    # ------------------------------------------------------------------ SUBSCRIBE
    def authorized(self, request: Request, reg: Registration, source_host: str) -> bool:
        """TS 24.229 §5.4.2.1.1: the user (an identity of the set) or the P-CSCF of the
        registration (a host on a Path, as P-Asserted-Identity or as the sender)."""
        asserted = request.headers.get("p-asserted-identity")
        who = canonical_text(asserted.split(",")[0]) if asserted else canonical(request.from_.uri)
        if who in reg.identities or who == reg.impu:
            return True
        path_hosts: set[str] = set()
        for b in reg.bindings.values():
            path_hosts.update(_path_hosts(b.path))
        asserted_host = _host_of(asserted.split(",")[0]) if asserted else None
        if asserted_host is not None and asserted_host in path_hosts:
            return True
        return source_host in path_hosts

    def expires_of(self, request: Request) -> int:
        expires = request.expires
        return min(DEFAULT_EXPIRES if expires is None else expires, self.max_expires)

    def subscribe(self, incoming: IncomingRequest, reg: Registration) -> None:
        """An initial SUBSCRIBE (RFC 6665 §4.2.1.1) for an identity of ``reg``."""
        request = incoming.request
        if not self.authorized(request, reg, host_key(incoming.connection.remote[0])):
            incoming.respond(403, "Forbidden (not the user or its P-CSCF)", to_tag=new_tag())
            return
        contacts = request.contact
        if not contacts:
            incoming.respond(400, "Bad Request (no Contact)", to_tag=new_tag())
            return
        expires = self.expires_of(request)
        tag = new_tag()
        sub = Subscription(
            reg,
            request.call_id,
            tag,
            request.from_.tag,
            _without_tag(request, "to"),
            _without_tag(request, "from"),
            contacts[0].uri_text,
            tuple(request.headers.get_all("record-route")),
            self.now() + expires,
            target_uri=contacts[0].uri,  # parsed with the Contact (its text is taken first)
        )
        incoming.respond(200, to_tag=tag, headers=self._headers(expires))
        if expires == 0:  # a fetch (RFC 6665 §4.4.3): one NOTIFY, then done
            sub.terminated = True
            self._send(sub, "terminated;reason=timeout")
            return
        self._by_dialog[(sub.call_id, tag)] = sub
        self._by_registration.setdefault(id(reg), []).append(sub)
        self._arm(sub)
        self._send(sub, f"active;expires={expires}")

    def refresh(self, incoming: IncomingRequest, sub: Subscription) -> None:
        """A SUBSCRIBE inside the subscription's dialog (RFC 6665 §4.2.1.2)."""
        request = incoming.request
        expires = self.expires_of(request)
        incoming.respond(200, headers=self._headers(expires))
        if expires == 0:
            self._end(sub, "terminated;reason=timeout")
            return
        sub.expires_at = self.now() + expires
        self._arm(sub)
        self._send(sub, f"active;expires={expires}")

    def _headers(self, expires: int) -> list[tuple[str, str]]:
        return [("Expires", str(expires)), ("Contact", f"<{self.contact}>")]

    # ------------------------------------------------------------------ changes
    def registration_changed(self, reg: Registration) -> None:
        """Registrar hook: NOTIFY every subscription of ``reg`` (TS 24.229 §5.4.2.1.2)."""
        subs = list(self._by_registration.get(id(reg), ()))
        now = self.now()
        for sub in subs:
            if reg.bindings:
                self._send(sub, f"active;expires={max(0, int(sub.expires_at - now))}")
            else:
                events = {b.event for b in reg.terminated}
                reason = (
                    "rejected"
                    if "rejected" in events
                    else ("deactivated" if "deactivated" in events else "noresource")
                )
                self._end(sub, f"terminated;reason={reason}")

    def _end(self, sub: Subscription, state: str) -> None:
        sub.terminated = True
        self._deadlines.set(sub, None)
        self._by_dialog.pop((sub.call_id, sub.local_tag), None)
        subs = self._by_registration.get(id(sub.registration))
        if subs is not None and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._by_registration[id(sub.registration)]
        self._send(sub, state)

    def _arm(self, sub: Subscription) -> None:
        self._deadlines.set(sub, sub.expires_at)

    def _expired(self, sub: Subscription) -> None:
        if not sub.terminated:
            self._end(sub, "terminated;reason=timeout")

    # ------------------------------------------------------------------ NOTIFY
    def make_notify(self, sub: Subscription, state: str) -> Request:
        """The NOTIFY for ``sub`` with the registration's full state (RFC 6665 §4.2.2)."""
        sub.cseq += 1
        body = reginfo_xml(sub.registration, sub.version, self.now())
        sub.version += 1
        remote = sub.remote_uri + (f";tag={sub.remote_tag}" if sub.remote_tag else "")
        headers = [(name, value) for name, value in (("Route", r) for r in sub.route_set)]
        headers += [
            ("Max-Forwards", "70"),
            ("From", f"{sub.local_uri};tag={sub.local_tag}"),
            ("To", remote),
            ("Call-ID", sub.call_id),
            ("CSeq", f"{sub.cseq} NOTIFY"),
            ("Contact", f"<{self.contact}>"),
            ("Event", "reg"),
            ("Subscription-State", state),
            ("Content-Type", CONTENT_TYPE),
        ]
        if sub.target_uri is None:
            sub.target_uri = parse_uri(sub.target)  # once per subscription, not per NOTIFY
        return Request("NOTIFY", sub.target_uri, headers, body)

    def _send(self, sub: Subscription, state: str) -> None:
        request = self.make_notify(sub, state)
        self.spawn(self._deliver(sub, request))

    async def _deliver(self, sub: Subscription, request: Request) -> None:
        self.notifies_sent += 1
        response = await self.endpoint.request(request)
        if response.status >= 300 and not sub.terminated:
            # RFC 6665 §4.2.2: 481 (and other failures) end the subscription
            log.info("NOTIFY for %s answered %d: subscription ended", sub.registration.impu, response.status)
            sub.terminated = True
            self._deadlines.set(sub, None)
            self._by_dialog.pop((sub.call_id, sub.local_tag), None)
            subs = self._by_registration.get(id(sub.registration), [])
            if sub in subs:
                subs.remove(sub)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._deadlines.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _uri_of(value: str) -> SipURI | None:
    try:
        uri = parse_name_addr(value.strip()).uri
    except ParseError:
        return None
    return uri if isinstance(uri, SipURI) else None


@functools.lru_cache(maxsize=4096)  # a pure function of text: the few P-CSCFs' Path values
def _path_hosts(path: tuple[str, ...]) -> frozenset[str]:
    """The hosts of the SIP URIs of a binding's Path header values (RFC 3327)."""
    hosts = (_host_of(value) for value in path)
    return frozenset(h for h in hosts if h is not None)


@functools.lru_cache(maxsize=4096)  # the P-CSCFs' own URIs (P-Asserted-Identity), again and again
def _host_of(value: str) -> str | None:
    """The host (as compared, :func:`host_key`) of a name-addr's SIP URI, or None."""
    uri = _uri_of(value)
    return host_key(uri.host) if uri is not None else None


def _without_tag(request: Request, name: str) -> str:
    """To or From without its tag, from the parsed view the S-CSCF already read (the header
    text as it is when it does not parse)."""
    try:
        na = request.to if name == "to" else request.from_
    except ParseError:
        return request.headers.get(name, "")
    if "tag" not in na.params:
        return str(na)
    params = {k: v for k, v in na.params.items() if k != "tag"}
    # the URI as text (the URI object is not built for this; its text is the same)
    return str(NameAddr(display=na.display, params=params, uri_text=na.uri_text))


def event_is_reg(values: Iterable[str]) -> bool:
    """Whether an Event header names the reg package (RFC 3680 §3.1; parameters ignored)."""
    return any(v.split(";", 1)[0].strip().lower() == "reg" for v in values)
