"""The P-CSCF's subscription to each registered user's reg event (TS 24.229 §5.2.3, RFC 3680).

After a user's first successful registration the gateway (as P-CSCF) sends
``SUBSCRIBE`` with ``Event: reg`` for the user's default public identity, along the
Service-Route, ``Expires: 600000``, its own URI in From and P-Asserted-Identity. The
S-CSCF's NOTIFYs carry ``application/reginfo+xml``; when a contact of ours becomes
``terminated`` with event ``deactivated``, ``rejected``, ``unregistered``, ``expired``
or ``probation`` — or the whole registration is terminated — the binding is dropped
without further IMS traffic and the WIC is told (its WebSocket is closed when it
carries nothing else, which SIP-over-WebSocket clients such as JsSIP report as
"unregistered"; a WIC that subscribed to its own reg event also gets the NOTIFY).

One subscription per IMPU, shared by the bindings of that IMPU; it ends (Expires: 0)
with the last of them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING

from webims.endpoint import IncomingRequest
from webims.sip import Header, Headers, NameAddr, ParseError, Request, Response, parse_name_addr
from webims.sip.headers import new_cseq
from webims.sip.randomness import token_hex

from .due import DueHeap
from .identity import charging_vector

if TYPE_CHECKING:
    from .core import Gateway
    from .state import Binding

__all__ = ["ContactState", "RegEvents", "RegInfo", "parse_reginfo"]

log = logging.getLogger("webims.gateway.regevent")

NS = "{urn:ietf:params:xml:ns:reginfo}"
MAX_REGINFO = 256 * 1024
#: Contact events that end a contact without the UE asking (RFC 3680 §5.2, TS 24.229 §5.2.3).
TERMINATING = frozenset({"deactivated", "rejected", "unregistered", "expired", "probation"})
_MAX_FORWARDS = Header("Max-Forwards", "70")
_EVENT = Header("Event", "reg")
_ACCEPT = Header("Accept", "application/reginfo+xml")


class RegInfoError(ParseError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, 400, None)


@dataclass(frozen=True, slots=True)
class ContactState:
    uri: str
    state: str
    event: str | None
    expires: int | None


@dataclass(frozen=True, slots=True)
class RegInfo:
    """One ``<registration>`` element: its AOR, state and contacts."""

    aor: str
    state: str
    contacts: tuple[ContactState, ...]


def parse_reginfo(body: bytes) -> list[RegInfo]:
    """The registrations of a reginfo document (RFC 3680 §5.3); raises :class:`RegInfoError`."""
    if len(body) > MAX_REGINFO:
        raise RegInfoError("reginfo document too large")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise RegInfoError("reginfo with a DTD is refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise RegInfoError(f"bad reginfo XML: {exc}") from None
    if root.tag != NS + "reginfo":
        raise RegInfoError("not a reginfo document")
    out = []
    for reg in root.findall(NS + "registration"):
        contacts = []
        for c in reg.findall(NS + "contact"):
            uri = (c.findtext(NS + "uri") or "").strip()
            expires = c.get("expires")
            contacts.append(
                ContactState(
                    uri,
                    c.get("state", ""),
                    c.get("event"),
                    int(expires) if expires and expires.isdigit() else None,
                )
            )
        out.append(RegInfo(reg.get("aor", ""), reg.get("state", ""), tuple(contacts)))
    return out


@dataclass(slots=True, eq=False, init=False)
class Subscription:
    impu: str
    call_id: str
    from_tag: str
    route: list[str]
    remote_target: str
    cseq: int
    to_tag: str | None
    expires_at: float
    due: float | None  # when its refresh is due (RegEvents keeps one loop timer for all)
    ended: bool

    def __init__(
        self, impu: str, call_id: str, from_tag: str, route: list[str], remote_target: str, cseq: int = 0,
        to_tag: str | None = None, expires_at: float = 0.0, due: float | None = None, ended: bool = False
    ) -> None:
        self.impu = impu
        self.call_id = call_id
        self.from_tag = from_tag
        self.route = route
        self.remote_target = remote_target
        self.cseq = cseq
        self.to_tag = to_tag
        self.expires_at = expires_at
        self.due = due
        self.ended = ended


class RegEvents:
    """Subscriptions by IMPU and NOTIFY handling (module docstring)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.config = gateway.config
        self.by_impu: dict[str, Subscription] = {}
        self.by_call_id: dict[str, Subscription] = {}
        self.notifies = 0
        self._due: DueHeap[Subscription] = DueHeap(self._refresh, self.by_impu.__len__)
        self._ours_cache: tuple[int, str, Header, Header] | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.config.subscribe_reg_event and self.gw.ims.as_pcscf

    def ensure(self, binding: Binding) -> None:
        if not self.enabled or binding.mode == "pool" or not binding.impu or binding.impu in self.by_impu:
            return
        sub = Subscription(
            binding.impu,
            f"{token_hex(10)}@webims-reg",
            token_hex(5),  # as new_tag(): 40 random bits
            list(binding.service_route),
            binding.impu,
        )
        self.by_impu[sub.impu] = sub
        self.by_call_id[sub.call_id] = sub
        self._send(sub, self.config.reg_event_expires)

    def release(self, impu: str) -> None:
        sub = self.by_impu.pop(impu, None)
        if sub is None:
            return
        sub.ended = True
        sub.due = None
        if sub.to_tag is not None:
            self._send(sub, 0)
        else:
            self.by_call_id.pop(sub.call_id, None)

    async def close(self) -> None:
        self._closed = True  # SUBSCRIBEs still in flight are not answered any more
        for sub in list(self.by_impu.values()):
            sub.due = None
        self._due.stop()

    def _ours(self) -> tuple[str, Header, Header]:
        """``<our Mw URI>``, and our Contact and P-Asserted-Identity header lines (shared by
        every SUBSCRIBE: header lines are never changed in place), made once per port."""
        ims = self.gw.ims
        cached = self._ours_cache
        if cached is None or cached[0] != ims.port:
            ours = f"<{ims.uri()}>"
            contact = Header("Contact", f"<{ims.uri('regevent')}>", None, "contact")
            cached = self._ours_cache = (ims.port, ours, contact, Header("P-Asserted-Identity", ours))
        return cached[1], cached[2], cached[3]

    def _request(self, sub: Subscription, expires: int) -> Request:
        ours, contact, asserted = self._ours()
        sub.cseq += 1
        to = f"<{sub.impu}>" + (f";tag={sub.to_tag}" if sub.to_tag else "")
        # header lines made with their canonical keys (values are ours or from parsed messages)
        route = _route(tuple(sub.route)) if sub.route else None
        headers = list(route[0]) if route is not None else []
        headers += [
            _MAX_FORWARDS,
            Header("From", f"{ours};tag={sub.from_tag}", None, "from"),
            Header("To", to, None, "to"),
            Header("Call-ID", sub.call_id, None, "call-id"),
            Header("CSeq", f"{sub.cseq} SUBSCRIBE", None, "cseq"),
            contact,
            _EVENT,
            _ACCEPT,
            Header("Expires", str(expires), None, "expires"),
            asserted,
            Header("P-Charging-Vector", charging_vector(self.config.uri_host)),
        ]
        request = Request("SUBSCRIBE", sub.remote_target, Headers(headers))
        if route is not None:
            request.headers.set_view("route", route[1])  # parsed once per route set
        request.headers.set_view("cseq", new_cseq(sub.cseq, "SUBSCRIBE"))
        return request

    def _send(self, sub: Subscription, expires: int) -> None:
        """SUBSCRIBE (or un-SUBSCRIBE with 0): at once when the next hop is connected (no task:
        one per registration otherwise), else through :meth:`ImsSide.send`."""
        request = self._request(sub, expires)
        try:
            sent = self.gw.ims.send_now(request)
        except Exception as exc:  # e.g. the Mw socket closed: as a failed SUBSCRIBE
            log.warning("reg event SUBSCRIBE for %s not sent: %s", sub.impu, exc)
            self._failed(sub, expires)
            return
        if sent is None:
            self.gw.spawn(self._subscribe(sub, expires, request))
        else:
            sent.add_done_callback(functools.partial(self._sent, sub, expires))

    def _sent(self, sub: Subscription, expires: int, sent: asyncio.Future[Response]) -> None:
        if sent.cancelled() or self._closed:
            return  # the gateway is stopping
        failure = sent.exception()
        if failure is not None:
            log.warning("reg event SUBSCRIBE for %s failed: %s", sub.impu, failure)
            self._failed(sub, expires)
            return
        try:
            self._answered(sub, expires, sent.result())
        except Exception:
            log.exception("reg event SUBSCRIBE answer for %s", sub.impu)

    def _failed(self, sub: Subscription, expires: int) -> None:
        """No answer to a SUBSCRIBE: an un-SUBSCRIBE is given up, a SUBSCRIBE tried again later."""
        if not expires:
            self.by_call_id.pop(sub.call_id, None)
        elif self.by_impu.get(sub.impu) is sub:
            self._arm(sub, time.time() + min(self.config.retry_after * 4, 300))

    async def _subscribe(self, sub: Subscription, expires: int, request: Request) -> None:
        self._answered(sub, expires, await self.gw.ims.send(request))

    def _answered(self, sub: Subscription, expires: int, response: Response) -> None:
        if expires == 0:
            self.by_call_id.pop(sub.call_id, None)
            log.debug("reg event subscription of %s ended: %d", sub.impu, response.status)
            return
        if not 200 <= response.status < 300:
            log.warning("reg event SUBSCRIBE for %s: %d %s", sub.impu, response.status, response.reason)
            if self.by_impu.get(sub.impu) is sub:
                self._arm(sub, time.time() + min(self.config.retry_after * 4, 300))
            return
        if sub.to_tag is None:
            sub.to_tag = response.to.tag
            headers = response.headers
            if "Record-Route" in headers:
                rr = list(reversed([str(r) for r in response.record_route]))
                if rr:
                    sub.route = rr  # RFC 3261 §12.1.2: the route set from Record-Route
            target = _plain_contact(headers.get_all("Contact"))
            if target is not None:
                sub.remote_target = target
            else:
                try:
                    contacts = response.contact
                    if contacts:
                        sub.remote_target = contacts[0].uri_text
                except ParseError:
                    pass
        granted = response.expires if response.expires is not None else expires
        sub.expires_at = time.time() + granted
        if sub.ended:
            return
        self._arm(sub, sub.expires_at - (600 if granted > 1200 else granted / 2))

    def _arm(self, sub: Subscription, when: float) -> None:
        """Refresh ``sub`` at ``when`` (wall clock): all subscriptions share one loop timer
        (:class:`~.due.DueHeap`; no TimerHandle per subscription: 10,000 WICs)."""
        self._due.push(sub, when)

    def _refresh(self, sub: Subscription) -> None:
        if self.by_impu.get(sub.impu) is sub:
            self._send(sub, self.config.reg_event_expires)

    # ------------------------------------------------------------------ NOTIFY
    def owns(self, request: Request) -> bool:
        return request.method == "NOTIFY" and request.call_id in self.by_call_id

    def on_notify(self, incoming: IncomingRequest) -> None:
        """A NOTIFY of one of our subscriptions (:meth:`owns`): answered at once."""
        request = incoming.request
        sub = self.by_call_id.get(request.call_id)
        if sub is None or (request.from_.tag != sub.to_tag and sub.to_tag is not None):
            incoming.respond(481, "Subscription Does Not Exist")
            return
        if sub.to_tag is None:
            sub.to_tag = request.from_.tag  # the NOTIFY can beat the 2xx (RFC 6665 §4.1.2.4)
        self.notifies += 1
        body = request.body
        try:
            infos = parse_reginfo(body) if body and not _no_news(body) else []
        except RegInfoError as exc:
            incoming.respond(400, f"Bad Request ({exc.reason})")
            return
        incoming.respond(200)
        state = (request.headers.get("Subscription-State") or "").split(";")[0].strip().lower()
        for info in infos:
            self._apply(info)
        if state == "terminated" and not sub.ended:
            self.by_call_id.pop(sub.call_id, None)
            if self.by_impu.get(sub.impu) is sub:
                del self.by_impu[sub.impu]
                sub.due = None

    def _apply(self, info: RegInfo) -> None:
        bindings = self.gw.bindings.of_impu(info.aor)
        if not bindings:
            return
        whole = info.state == "terminated"
        for binding in bindings:
            if binding.mode == "pool" or binding.ending:
                continue
            mine = _contact_state(info, binding.ims_contact)
            if whole or (
                mine is not None and mine.state == "terminated" and (mine.event or "") in TERMINATING
            ):
                event = mine.event if mine is not None else "terminated"
                log.info("network-initiated de-registration of %s (%s)", binding.aor, event)
                self.gw.registrar.drop(binding)
                self.gw.tell_wic(binding, f"network-initiated de-registration ({event})")
            elif (
                mine is not None
                and mine.state == "active"
                and mine.expires is not None
                and mine.event == "shortened"
            ):
                binding.ims_expires_at = min(binding.ims_expires_at, time.time() + mine.expires)
                binding.expires_at = min(binding.expires_at, time.time() + mine.expires)
                self.gw.registrar.schedule(binding)


def _plain_contact(values: list[str]) -> str | None:
    """The URI of a lone ``Contact: <uri>`` (what a notifier usually sends), read without
    parsing it; None for anything else (parsed then)."""
    if len(values) != 1:
        return None
    value = values[0]
    if value.startswith("<") and value.endswith(">") and value.count("<") == 1 and value.count(">") == 1:
        uri = value[1:-1]
        if uri.startswith(("sip:", "sips:")) and '"' not in uri and "," not in uri:
            return uri
    return None


def _no_news(body: bytes) -> bool:
    """Whether a reginfo document can change nothing here, read without parsing it: no
    registration or contact ``terminated``, no contact ``shortened`` (RFC 3680 §5.3: the only
    states and events :meth:`RegEvents._apply` acts on), no character reference, comment or
    CDATA that could spell them otherwise (the five predefined entities, e.g. ``&lt;`` in an
    escaped ``+sip.instance``, cannot). The usual NOTIFY, our own contacts ``active``
    after each registration (TS 24.229 §5.2.3), costs no XML parse."""
    return (
        len(body) <= MAX_REGINFO
        and b"terminated" not in body
        and b"shortened" not in body
        and (b"&" not in body or _OTHER_REFERENCE.search(body) is None)
        and b"<!" not in body
        and body.rstrip().endswith(b"</reginfo>")
    )


_OTHER_REFERENCE = re.compile(rb"&(?!(?:lt|gt|amp|quot|apos);)")


@functools.lru_cache(maxsize=256)
def _route(route: tuple[str, ...]) -> tuple[tuple[Header, ...], list[NameAddr]]:
    """The Route of a subscription (the Service-Route: the same few for every user): its header
    lines (shared: header lines are never changed in place) and its entries, parsed once."""
    return tuple(Header("Route", r, None, "route") for r in route), [parse_name_addr(r) for r in route]


def _contact_state(info: RegInfo, ims_contact: str) -> ContactState | None:
    if ims_contact.startswith("<") and ">" in ims_contact:  # as we register it: <uri>;params
        text = ims_contact[1 : ims_contact.index(">")]
        for c in info.contacts:  # the S-CSCF echoes the URI as registered: compare the text first
            if c.uri == text:
                return c
    try:
        contact = parse_name_addr(ims_contact)
    except ParseError:
        return None
    text = contact.uri_text
    for c in info.contacts:
        if c.uri == text:
            return c
    ours = contact.uri
    for c in info.contacts:  # else by RFC 3261 §19.1.4
        try:
            if parse_name_addr(f"<{c.uri}>").uri == ours:
                return c
        except ParseError:
            continue
    return None
