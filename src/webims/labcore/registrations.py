"""Registrations held by the S-CSCF: bindings and implicit registration sets.

A :class:`Registration` is the state of one implicit registration set (TS 23.228
§4.3.3.4, the public identities TS 29.228 Annex E User-Data lists together); its
:class:`Binding` s are the registered contacts (RFC 3261 §10.3, RFC 5626 §6 for
``+sip.instance``/``reg-id``), each with its Path (RFC 3327) and the reg event
contact event of its last change (RFC 3680 §5.1.2).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

from webims.sip import NameAddr, SipURI

from .hss.user_data import IdentityType, ImsSubscription
from .hss.wildcard import is_wildcarded
from .identities import canonical_text

__all__ = ["Binding", "Registration", "binding_key"]


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
    id: str = field(default_factory=lambda: secrets.token_hex(4))
    event: str = "registered"  # RFC 3680 §5.1.2 contact event of the last change
    state: str = "active"

    @property
    def key(self) -> str:
        return binding_key(self.contact)

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
    id: str = field(default_factory=lambda: secrets.token_hex(4))
    timer: asyncio.TimerHandle | None = None

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
