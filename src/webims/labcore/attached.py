"""P-CSCF duties of the lab core for UEs attached without a P-CSCF.

Web clients reach the lab core through the webims gateway, which is their P-CSCF: it
inserts Path when registering them and asserts their identity (P-Asserted-Identity).
A SIP phone registered *directly* at the lab I-CSCF has no P-CSCF, so the core takes
over the P-CSCF's originating duties for it (TS 24.229 §5.2.6.3):

- its flow is recorded on the binding when a REGISTER without Path is accepted
  (:attr:`Binding.flow`, the source behind our I-CSCF read from the Via it stamped,
  :mod:`webims.labcore.flows`);
- a request outside a dialog from that flow is an originating request of that UE
  (wherever it arrives: the I-CSCF sends it on to the S-CSCF's originating part, as
  if the UE had used its Service-Route, RFC 3608 §6);
- :func:`assert_identity`: the asserted identity is the one the UE prefers in
  P-Preferred-Identity when it is one of the identities of its registrations
  (registered or implicitly registered, not barred), else the default one, the first
  registered public user identity (TS 24.229 §5.2.6.3.1, RFC 3325 §9.2); any
  P-Asserted-Identity and P-Preferred-Identity it sent is replaced (RFC 3325 §5: the
  UE is outside the trust domain); a From naming none of its identities gets 403
  (an anonymous From, RFC 3323 §4.1.1.3, is allowed: the identity is asserted anyway
  and the Privacy the UE asked keeps it from the callee, RFC 3325 §7).

:class:`FlowIndex` also knows the flows that registered users *with* Path: those are
P-CSCFs, in the trust domain (RFC 3325 §2.3), and their P-Asserted-Identity is
believed on the Service-Route (TS 24.229 §5.4.3.2), for the users they registered:
anyone who can authenticate can send a Path, so a P-CSCF known only that way (not a
configured trusted node) asserts no one else.

A UE over UDP is also known by the address of its registered Contact (``sip:u@host:port``
with an IP address): symmetric UEs (RFC 3581) send from there, and a test tool may
register for another process on that port. Such a match only counts for a source that
is neither a P-CSCF nor a configured trusted node (a Contact is only claimed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from webims.sip import Request, SipURI
from webims.transport import host_key
from webims.transport.via import is_ip_address

from .flows import Flow
from .identities import canonical, canonical_text
from .registrations import Binding, Registration

__all__ = ["ANONYMOUS_HOST", "Asserted", "FlowIndex", "Refused", "assert_identity", "contact_flow"]

#: RFC 3323 §4.1.1.3: an anonymous From is ``sip:anonymous@anonymous.invalid``.
ANONYMOUS_HOST = "anonymous.invalid"


def contact_flow(binding: Binding) -> Flow | None:
    """The UDP flow a Contact ``sip:user@ip:port`` names (None for other contacts)."""
    uri = binding.contact.uri
    if not isinstance(uri, SipURI) or uri.scheme != "sip" or not is_ip_address(uri.host):
        return None
    if (uri.param("transport") or "udp").lower() != "udp" or uri.param("maddr"):
        return None
    return Flow("UDP", host_key(uri.host), uri.port or 5060)


class FlowIndex:
    """Bindings by the flow their REGISTER came from (see the module docstring)."""

    def __init__(self) -> None:
        self._ue: dict[Flow, dict[Binding, Registration]] = {}
        self._contact: dict[Flow, dict[Binding, Registration]] = {}
        self._pcscf: dict[Flow, dict[Binding, Registration]] = {}

    def add(self, binding: Binding, reg: Registration) -> None:
        flow = binding.flow
        if flow is None:
            return
        if binding.path:
            self._pcscf.setdefault(flow, {})[binding] = reg
            return
        self._ue.setdefault(flow, {})[binding] = reg
        named = contact_flow(binding)
        if named is not None and named != flow:
            self._contact.setdefault(named, {})[binding] = reg

    def remove(self, binding: Binding) -> None:
        flow = binding.flow
        if flow is None:
            return
        if binding.path:
            _drop(self._pcscf, flow, binding)
            return
        _drop(self._ue, flow, binding)
        named = contact_flow(binding)
        if named is not None and named != flow:
            _drop(self._contact, named, binding)

    def registrations(self, flow: Flow) -> list[Registration]:
        """The active registrations of the UE that registered from ``flow`` (oldest first)."""
        return _active(self._ue.get(flow))

    def by_contact(self, flow: Flow) -> list[Registration]:
        """The active registrations whose UDP Contact names ``flow``."""
        return _active(self._contact.get(flow))

    def is_pcscf(self, flow: Flow) -> bool:
        """Whether ``flow`` registered someone with Path (a P-CSCF, RFC 3327)."""
        return flow in self._pcscf

    def registered_through(self, flow: Flow, reg: Registration) -> bool:
        """Whether ``reg`` has a binding that ``flow`` registered with Path: the users a P-CSCF
        known only by its Path (not a configured trusted node) may assert."""
        return reg in (self._pcscf.get(flow) or {}).values()

    @property
    def ue_flows(self) -> int:
        return len(self._ue)


def _drop(index: dict[Flow, dict[Binding, Registration]], flow: Flow, binding: Binding) -> None:
    entries = index.get(flow)
    if entries is not None:
        entries.pop(binding, None)
        if not entries:
            del index[flow]


def _active(entries: dict[Binding, Registration] | None) -> list[Registration]:
    if not entries:
        return []
    out: list[Registration] = []
    for reg in entries.values():
        if reg.active and reg not in out:
            out.append(reg)
    return out


@dataclass(frozen=True)
class Asserted:
    """The identity the core asserts for a UE's request, and the registration serving it."""

    identity: str
    registration: Registration


@dataclass(frozen=True)
class Refused:
    status: int
    reason: str


def _identity_of(value: str | None) -> str | None:
    if not value:
        return None
    return canonical_text(value.split(",")[0].strip())


def assert_identity(
    request: Request, registrations: list[Registration], serves: Callable[[str, Registration], bool]
) -> Asserted | Refused:
    """TS 24.229 §5.2.6.3.1 for a request of a UE attached without a P-CSCF.

    ``registrations``: those of the UE's flow (at least one); ``serves(identity, reg)``
    tells whether ``identity`` is one of ``reg``'s identities (registered or implicitly
    registered, wildcarded ranges included, not barred). The request is changed: its
    P-Preferred-Identity and P-Asserted-Identity are replaced by the asserted identity.
    """
    headers = request.headers
    from_uri = request.from_.uri
    anonymous = isinstance(from_uri, SipURI) and from_uri.host.lower() == ANONYMOUS_HOST
    from_identity = None if anonymous else canonical(from_uri)
    chosen: Registration | None = None
    if from_identity is not None:
        chosen = next((r for r in registrations if serves(from_identity, r)), None)
        if chosen is None:
            return Refused(403, "Forbidden (From is not a registered identity of this UE)")
    asserted: str | None = None
    preferred = _identity_of(headers.get("p-preferred-identity"))
    if preferred is not None:
        owner = next((r for r in registrations if serves(preferred, r)), None)
        if owner is not None:
            asserted, chosen = preferred, owner
    if chosen is None:
        chosen = registrations[0]
    if asserted is None:
        asserted = chosen.identities[0] if chosen.identities else chosen.impu
    headers.remove("p-preferred-identity")
    headers.remove("p-asserted-identity")
    headers.add("P-Asserted-Identity", f"<{asserted}>")
    return Asserted(asserted, chosen)
