"""Registrations held by the S-CSCF: bindings and implicit registration sets.

A :class:`Registration` is the state of one implicit registration set (TS 23.228
§4.3.3.4, the public identities TS 29.228 Annex E User-Data lists together); its
:class:`Binding` s are the registered contacts (RFC 3261 §10.3, RFC 5626 §6 for
``+sip.instance``/``reg-id``), each with its Path (RFC 3327) and the reg event
contact event of its last change (RFC 3680 §5.1.2).
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from webims.sip import NameAddr, SipURI
from webims.sip.randomness import token_hex

from .flows import Flow
from .hss.user_data import IdentityType, ImsSubscription
from .hss.wildcard import is_wildcarded
from .identities import canonical_text

__all__ = ["Binding", "Deadlines", "Registration", "binding_key"]


@dataclass(eq=False)
class Binding:
    """One registered contact (RFC 3261 §10.3, RFC 5626 §6)."""

    contact: NameAddr  # as registered, without the expires parameter
    expires_at: float
    impi: str
    call_id: str
    cseq: int
    path: tuple[str, ...] = ()
    instance: str | None = None
    reg_id: int | None = None
    id: str = field(default_factory=lambda: token_hex(4))
    event: str = "registered"  # RFC 3680 §5.1.2 contact event of the last change
    state: str = "active"
    #: where its REGISTER came from (:mod:`webims.labcore.flows`); without a Path the UE
    #: itself, attached without a P-CSCF (:mod:`webims.labcore.attached`)
    flow: Flow | None = None
    #: the end of its reginfo ``<contact>`` element (:func:`webims.labcore.regevent.reginfo_xml`)
    reginfo_tail: str | None = field(default=None, repr=False, compare=False)
    #: ``str(contact)``, made once (each 200 OK to a REGISTER lists every binding)
    contact_text: str | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        return binding_key(self.contact)

    def contact_with_expires(self, now: float) -> str:
        """The Contact of a 200 OK to REGISTER: the binding with its remaining expiry
        (RFC 3261 §10.3 step 8)."""
        text = self.contact_text
        if text is None:
            text = self.contact_text = str(self.contact)
        return f"{text};expires={self.expires_in(now)}"

    def expires_in(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


def binding_key(contact: NameAddr) -> str:
    """Which binding a Contact updates: +sip.instance and reg-id (RFC 5626 §6), else the URI."""
    if contact.sip_instance is not None:
        return f"{contact.sip_instance}|{contact.reg_id}"
    uri = contact.uri
    if isinstance(uri, SipURI):
        return str(
            uri.replace(
                params={k: v for k, v in uri.params.items() if k in ("transport", "maddr")},
                headers=None,
                user=uri.user,
                host=uri.host.lower(),
            )
        )
    return str(uri)


@dataclass(eq=False)
class Registration:
    """The registration of one implicit registration set (TS 23.228 §4.3.3.4)."""

    impu: str  # the identity that was registered
    impis: set[str]
    identities: tuple[str, ...] = ()  # non-barred, registered one first, wildcards excluded
    barred: frozenset[str] = frozenset()
    wildcards: tuple[str, ...] = ()
    subscription: ImsSubscription | None = None
    bindings: dict[str, Binding] = field(default_factory=dict)
    terminated: list[Binding] = field(default_factory=list)  # to report in the next NOTIFY
    id: str = field(default_factory=lambda: token_hex(4))
    deadline: float | None = None  # when the earliest binding expires (see Deadlines)
    indexed: set[str] = field(default_factory=set)  # identities the registrar maps to this one

    @property
    def active(self) -> bool:
        return bool(self.bindings)

    def apply(self, subscription: ImsSubscription | None) -> None:
        """Take the implicit set, barring and wildcards from User-Data (TS 29.228 Annex E)."""
        if subscription is None:
            self.identities = self.identities or (self.impu,)
            return
        self.subscription = subscription
        ids: list[str] = []
        barred: set[str] = set()
        wildcards: list[str] = []
        for profile in subscription.service_profiles:
            for pi in profile.public_identities:
                if pi.identity_type in (IdentityType.WILDCARDED_IMPU, IdentityType.WILDCARDED_PSI):
                    wildcards.append(pi.wildcarded_impu or pi.identity)
                    continue
                identity = canonical_text(pi.identity)
                if pi.barred:
                    barred.add(identity)
                elif identity not in ids:
                    ids.append(identity)
        if self.impu in ids:
            ids.remove(self.impu)
            ids.insert(0, self.impu)
        elif self.impu not in barred:
            ids.insert(0, self.impu)
        self.identities = tuple(ids)
        self.barred = frozenset(barred)
        self.wildcards = tuple(w for w in wildcards if is_wildcarded(w))


class _Expiring(Protocol):
    deadline: float | None


_E = TypeVar("_E", bound=_Expiring)


class Deadlines(Generic[_E]):
    """The expiry of many registrations (RFC 3261 §10.3: a binding lasts its expiry;
    TS 24.229 §5.4.1.6) or subscriptions (RFC 6665 §4.2.2) on one loop timer.

    A heap of ``(deadline, n, item)``; an entry whose deadline is no longer the item's
    ``deadline`` (refreshed, re-armed, ended) is skipped when it comes up, and such
    entries are dropped once they make up half of the heap. One timer handle per item
    and refresh would cost more than the rest of its bookkeeping.
    """

    def __init__(self, expire: Callable[[_E], None]) -> None:
        self._expire = expire
        self._heap: list[tuple[float, int, _E]] = []
        self._n = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._compact_at = 4096

    @property
    def entries(self) -> int:
        """Heap entries, stale ones included."""
        return len(self._heap)

    def set(self, reg: _E, when: float | None) -> None:
        """Expire ``reg`` at loop time ``when`` (None: never), instead of its previous deadline."""
        reg.deadline = when
        if when is None:
            return
        self._n += 1
        heapq.heappush(self._heap, (when, self._n, reg))
        if len(self._heap) >= self._compact_at:
            self._heap = [e for e in self._heap if e[2].deadline == e[0]]
            heapq.heapify(self._heap)
            self._compact_at = max(4096, 2 * len(self._heap))
        if when < self._timer_at:
            self._schedule(when)

    def _schedule(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self._run)
        self._timer_at = when

    def _run(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = asyncio.get_running_loop().time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, reg = heapq.heappop(heap)
            if reg.deadline == when:
                reg.deadline = None
                self._expire(reg)  # may set a new deadline
        if heap and heap[0][0] < self._timer_at:
            self._schedule(heap[0][0])

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf
        self._heap.clear()
