"""Identity handling at the trust-domain edge: what a WIC may say about itself, and what we assert.

- :func:`strip_untrusted`: the header fields a P-CSCF removes from whatever a UE sends
  (TS 24.229 §5.2.6.3.x, RFC 3325 §5: P-Asserted-Identity from outside the trust
  domain; charging, visited-network and served-user headers are the network's).
- :func:`associated_uris`: P-Associated-URI of a 2xx to REGISTER (RFC 7315 §4.1).
- :func:`asserted_identity`: the identity to assert for a request: the IMPU the WIC
  prefers (P-Preferred-Identity, RFC 3325 §9.2) when it is one of its registered
  ones, else the default (first) public identity (TS 24.229 §5.2.6.3.1).
- :func:`assert_identity`: P-Asserted-Identity as the P-CSCF (seed 000), or
  P-Preferred-Identity when the gateway is a UE in front of an operator P-CSCF
  (seed 004: only that P-CSCF may assert).
- :func:`translate_from`: pool mode (seed 004 §6.X.2.2.5) — the WIC's own address
  becomes the allocated IMPU in From (tags and display name kept).
- :func:`charging_vector`: P-Charging-Vector with a fresh icid (RFC 7315 §4.6).
"""

from __future__ import annotations

import functools
import re

from webims.sip import NameAddr, ParseError, Request, Response, SipURI, TelURI, parse_name_addr, parse_uri
from webims.sip.randomness import token_hex

__all__ = [
    "UNTRUSTED_HEADERS",
    "aor_of",
    "aors_of",
    "assert_identity",
    "asserted_identity",
    "associated_uris",
    "charging_vector",
    "impu_key",
    "same_identity",
    "strip_untrusted",
    "translate_from",
]

#: Removed from every WIC request before it enters the IMS (TS 24.229 §5.2.6.3.1, §5.2.2.1;
#: RFC 3325 §5; X-WebIMS-TNA is the Kamailio test harness's trust marker).
UNTRUSTED_HEADERS = (
    "P-Asserted-Identity", "P-Charging-Vector", "P-Charging-Function-Addresses", "P-Visited-Network-ID",
    "P-Served-User", "P-Profile-Key", "P-Called-Party-ID", "P-Associated-URI", "X-WebIMS-TNA",
)  # fmt: skip


def strip_untrusted(request: Request, *, keep_preferred: bool = False) -> str | None:
    """Remove :data:`UNTRUSTED_HEADERS` (and P-Preferred-Identity unless ``keep_preferred``);
    returns the first P-Preferred-Identity the WIC sent (its choice), if any."""
    preferred = request.headers.get("P-Preferred-Identity")
    for name in UNTRUSTED_HEADERS:
        request.headers.remove(name)
    if not keep_preferred:
        request.headers.remove("P-Preferred-Identity")
    return preferred


def aor_of(uri: object) -> str:
    """A canonical address-of-record string for comparisons (RFC 3261 §10.3 step 5)."""
    if isinstance(uri, SipURI):
        return uri.aor
    if isinstance(uri, TelURI):
        return f"tel:{uri.digits}"
    return str(uri)


def aors_of(impus: tuple[str, ...]) -> set[str]:
    """Canonical AORs of a web identity's IMPUs (unparseable ones are ignored)."""
    out = set()
    for impu in impus:
        try:
            out.add(aor_of(parse_uri(impu)))
        except ParseError:
            continue
    return out


def impu_key(value: str) -> str:
    """A canonical form of a public identity for table keys (scheme, user, host; no parameters).

    A plain ``sip:user@host`` (lower-case host, no escapes, port or parameters) is its own
    key, told without parsing it (what every registration's IMPU usually is)."""
    if _CANONICAL.fullmatch(value) is not None:
        return value
    return _impu_key(value)


@functools.lru_cache(maxsize=65_536)
def _impu_key(value: str) -> str:
    try:
        return aor_of(parse_uri(_bare(value)))
    except ParseError:
        return value


#: ``sips?:user@host`` that parses (RFC 3261 §25.1: unreserved and user-unreserved characters,
#: no escapes, ``;`` or ``:``; a hostname in lower case, no IP address, no port) and that
#: :func:`aor_of` gives back unchanged.
_CANONICAL = re.compile(
    r"sips?:[A-Za-z0-9\-_.!~*'()&=+$,]+@"
    r"(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)*[a-z](?:[a-z0-9\-]*[a-z0-9])?\.?"
)


def same_identity(a: str, b: str) -> bool:
    """Whether two URIs (strings) name the same public identity (scheme, user, host)."""
    return a == b or impu_key(a) == impu_key(b)


def _bare(value: str) -> str:
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        return value[1:-1]
    if "<" in value:
        return str(parse_name_addr(value).uri)
    return value


def associated_uris(response: Response) -> list[str]:
    """URIs of P-Associated-URI (RFC 7315 §4.1), in order; unusable entries skipped."""
    out: list[str] = []
    for value in response.headers.get_all("P-Associated-URI"):
        if value.startswith("<") and value.endswith(">") and _CANONICAL.fullmatch(value, 1, len(value) - 1):
            out.append(value[1:-1])  # ``<sip:user@host>``: what parsing it gives, without parsing
            continue
        try:
            out.append(parse_name_addr(value).uri_text)
        except ParseError:
            continue
    return out


def asserted_identity(identities: list[str], preferred: str | None) -> str | None:
    """The identity to assert: ``preferred`` if it is one of ``identities`` (RFC 3325
    §9.2 / TS 24.229 §5.2.6.3.1), else the first (default) one."""
    if preferred:
        try:
            wanted = _bare(preferred)
        except ParseError:
            wanted = ""
        for identity in identities:
            if wanted and same_identity(identity, wanted):
                return identity
    return identities[0] if identities else None


def assert_identity(request: Request, identity: str, *, as_pcscf: bool) -> None:
    """Set P-Asserted-Identity (we are the P-CSCF) or P-Preferred-Identity (a UE behind one)."""
    request.headers.remove("P-Asserted-Identity")
    request.headers.remove("P-Preferred-Identity")
    request.headers.add("P-Asserted-Identity" if as_pcscf else "P-Preferred-Identity", f"<{identity}>")


def translate_from(request: Request, wic_aor: str, impu: str) -> bool:
    """Pool mode: when From is the WIC's own address, make it the allocated IMPU. True if changed."""
    try:
        sender = request.from_
    except ParseError:
        return False
    if not same_identity(aor_of(sender.uri), wic_aor):
        return False
    new = NameAddr(parse_uri(impu), sender.display, dict(sender.params))
    request.headers.set("From", str(new))
    return True


def charging_vector(generated_at: str, *, orig_ioi: str | None = None) -> str:
    """``P-Charging-Vector: icid-value=...;icid-generated-at=...`` (RFC 7315 §4.6, TS 24.229 §7.2A.5)."""
    value = f'icid-value="{token_hex(12)}";icid-generated-at={generated_at}'
    if orig_ioi:
        value += f";orig-ioi={orig_ioi}"
    return value
