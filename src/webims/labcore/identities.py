"""Public user identities as the lab CSCFs compare them (TS 23.003 §13.4, TS 24.229 §5.4.3).

An identity is kept in one canonical text form so that a Request-URI, a To header
and an entry of the HSS's User-Data find each other: ``sip:user@host`` (no port,
no parameters, host lower case, the user part unescaped) and ``tel:+number``
without visual separators (RFC 3966 §5.1.1). A SIP URI with ``user=phone`` and a
global number stands for that tel URI (RFC 3261 §19.1.6).
"""

from __future__ import annotations

import functools

from webims.sip import URI, ParseError, SipURI, TelURI, parse_uri

__all__ = ["canonical", "canonical_text", "impi_from_impu"]


def canonical(uri: URI) -> str | None:
    """The canonical identity of ``uri``, or None for URIs that name no user identity."""
    if isinstance(uri, TelURI):
        return f"tel:{uri.digits}"
    if isinstance(uri, SipURI):
        if (uri.param("user") or "").lower() == "phone" and uri.user and uri.user.startswith("+"):
            digits = uri.user.split(";", 1)[0]
            return f"tel:{TelURI(digits).digits}"
        return uri.aor.replace("sips:", "sip:", 1)
    return None


@functools.lru_cache(maxsize=16384)  # a pure function of text; called for every User-Data identity
def canonical_text(text: str) -> str:
    """:func:`canonical` of a URI given as text; text that does not parse is returned
    stripped (it may be a wildcarded identity with ``!regex!`` parts, TS 23.003 §13.5)."""
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if "!" in text:
        return text
    try:
        return canonical(parse_uri(text)) or text
    except ParseError:
        return text


def impi_from_impu(impu: str) -> str:
    """The private identity derived from a public one when the REGISTER carries no
    Authorization header (TS 33.203 §6.1.1 step: user@domain without the scheme)."""
    for scheme in ("sip:", "sips:", "tel:"):
        if impu.startswith(scheme):
            return impu[len(scheme) :]
    return impu
