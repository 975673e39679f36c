"""REGISTER messages on both sides of the gateway.

The gateway is a back-to-back element for registration: toward the IMS it keeps one
REGISTER "dialog" per WIC binding (one Call-ID, a rising CSeq, RFC 3261 §10.2),
whatever Call-ID the WIC used and whether or not the WIC is connected; toward the
WIC it answers each REGISTER from the IMS's answer (or by itself when the mode
needs no IMS traffic). The Request-URI, To and the WIC's Digest/AKA credentials are
passed unchanged, so the S-CSCF can check responses the WIC computed.

As the P-CSCF (seed 000, TS 24.229 §5.2.2.1) the REGISTER carries:

- ``Path`` with our flow token and ``ob`` when the WIC uses outbound (RFC 3327 §5,
  RFC 5626 §5.3), and ``Supported: path``;
- ``P-Visited-Network-ID`` (RFC 7315 §4.3), ``P-Charging-Vector`` with an icid (§4.6),
  ``P-Access-Network-Info`` when configured;
- ``integrity-protected`` in the Authorization header (TS 24.229 §7.2A.2), per mode:

  =====================  ==========================================================
  ims-aka, ims-digest    ``tls-pending`` until a 2xx binds the WSS flow to the
                         IMPI, then ``tls-yes`` for REGISTERs on that same flow
                         (the WSS connection plays TS 24.229's TLS session; there
                         is no IPsec over WebSocket, so ck/ik are dropped); over
                         plain WS (development only) ``no``
  web-token, web-login   ``auth-done``: Trusted Node Authentication (TS 33.203
                         Annex U; seeds 004 §6.X.2.2.3, 000 §6.2.2.4.2)
  ims-digest-on-behalf   none: the gateway answers the digest challenge itself,
                         as a UE without TLS would (§5.2.2.1)
  pool                   none with digest (``pool_auth = "digest"``), ``auth-done``
                         with ``pool_auth = "tna"``
  =====================  ==========================================================

In front of an operator P-CSCF (seed 004) the gateway is a UE: no Path, no
P-Visited-Network-ID, no charging vector, no integrity-protected (the P-CSCF adds
its own), and the Contact is ours (the flow token in its user part) so that the
P-CSCF routes terminating requests to us.
"""

from __future__ import annotations

import functools
import re
import sys

from mypy_extensions import mypyc_attr

from webims.sip import Header, Headers, NameAddr, ParseError, Request, Response, parse_name_addr, parse_uri
from webims.sip.auth_header import Challenge, Credentials, parse_challenge, parse_credentials
from webims.sip.digest import DigestError, parse_algorithm
from webims.sip.headers import format_params, is_list_header, iter_tokens, new_cseq, split_list
from webims.sip.randomness import token_hex

from .identity import charging_vector

__all__ = [
    "COPIED_RESPONSE_HEADERS",
    "contact_without_expires",
    "integrity_value",
    "strip_keys",
    "tna_credentials",
    "wic_digest_credentials",
]

#: Header fields of the IMS's answer that go back to the WIC as they are.
COPIED_RESPONSE_HEADERS = (
    "Service-Route", "P-Associated-URI", "Min-Expires", "Retry-After", "Warning", "Authentication-Info",
    "Date", "Allow", "Unsupported",
)  # fmt: skip
#: Header fields of the WIC's REGISTER that we keep in ours.
COPIED_REQUEST_HEADERS = ("User-Agent", "Allow", "Accept", "Allow-Events")
_COPIED_ORDER = tuple(name.lower() for name in COPIED_REQUEST_HEADERS)
_COPIED_KEYS = frozenset(_COPIED_ORDER)
_COPIED_NAMES = dict(zip(_COPIED_ORDER, COPIED_REQUEST_HEADERS, strict=True))


def contact_without_expires(contact: NameAddr) -> str:
    """The Contact name-addr as registered, without ``expires`` (we set our own)."""
    params = {k: v for k, v in contact.params.items() if k.lower() != "expires"}
    if contact.display is not None:
        return str(NameAddr(contact.uri, contact.display, params))
    return f"<{contact.uri_text}>{format_params(params)}"  # what NameAddr.__str__ makes


def strip_keys(value: str) -> str:
    """A WWW-Authenticate value without the IMS keys ``ck``/``ik`` (TS 24.229 §5.2.2.1:
    the P-CSCF removes them before the 401 reaches the UE; no IPsec over WSS)."""
    if _KEY_PARAM.search(value) is None:
        return value  # no ck/ik: relayed as the S-CSCF wrote it
    try:
        return parse_challenge(value).without("ck", "ik").format()
    except ParseError:
        return value


def wic_digest_credentials(request: Request) -> Credentials | None:
    """The WIC's Digest Authorization (the IMS checks it), if any."""
    for value in request.headers.get_all("Authorization"):
        try:
            cred = parse_credentials(value)
        except ParseError:
            continue
        if cred.is_digest:
            return cred
    return None


def integrity_value(mode: str, *, secure: bool, bound: bool) -> str | None:
    """The ``integrity-protected`` value for a relayed REGISTER (module docstring)."""
    if mode in ("ims-aka", "ims-digest"):
        if not secure:
            return "no"
        return "tls-yes" if bound else "tls-pending"
    if mode in ("web-token", "web-login"):
        return "auth-done"
    return None


def tna_credentials(impi: str, realm: str, uri: str) -> str:
    """TS 24.229 §5.2.2.1 / TS 33.203 Annex U: the P-CSCF (here: the gateway) registers a
    user it authenticated: empty nonce and response, ``integrity-protected="auth-done"``
    (what ``Credentials.digest(impi, realm, "", uri, "", integrity_protected="auth-done")``
    formats, without building it)."""
    return (
        f'Digest username="{_escape(impi)}", realm="{_escape(realm)}", nonce="", uri="{_escape(uri)}", '
        'response="", integrity-protected="auth-done"'
    )


def _escape(value: str) -> str:
    """quoted-string content (RFC 3261 §25.1 quoted-pair)."""
    return value.replace("\\", "\\\\").replace('"', '\\"') if "\\" in value or '"' in value else value


@mypyc_attr(allow_interpreted_subclasses=True)  # a test spies on build() with a subclass
class RegisterBuilder:
    """Builds the IMS-side REGISTER of a binding (module docstring)."""

    def __init__(self, *, as_pcscf: bool, pvni: str, generated_at: str, access_network_info: str) -> None:
        self.as_pcscf = as_pcscf
        self.pvni = pvni
        self.generated_at = generated_at
        self.access_network_info = access_network_info
        self._pvni = Header("P-Visited-Network-ID", f'"{pvni}"')

    def build(
        self,
        *,
        request_uri: str,
        aor: str,
        call_id: str,
        from_tag: str,
        cseq: int,
        contact: str,
        expires: int,
        path: str | None,
        authorization: str | None,
        wic_request: Request | None = None,
        wic_ip: str | None = None,
        outbound: bool = False,
        retired: str | None = None,
    ) -> Request:
        """A REGISTER of ``contact`` for ``expires`` seconds; ``retired``: a Contact it replaces,
        removed in the same request (``expires=0``, RFC 3261 §10.2.2: a UE flow that moved)."""
        contact = f"{contact};expires={expires}"
        if retired is not None:
            contact = f"{retired};expires=0, {contact}"
        # header lines made with their canonical keys; values are ours or from parsed messages
        headers: list[Header | tuple[str, str]] = [
            _MAX_FORWARDS,
            Header("From", f"<{aor}>;tag={from_tag}", None, "from"),
            Header("To", f"<{aor}>", None, "to"),
            Header("Call-ID", call_id, None, "call-id"),
            Header("CSeq", f"{cseq} REGISTER", None, "cseq"),
            Header("Contact", contact, None, "contact"),
            Header("Expires", str(expires), None, "expires"),
        ]
        supported = {"path"} if self.as_pcscf else set()
        if outbound:
            supported.add("outbound")
        if wic_request is not None:  # one pass over the WIC's header fields
            copied: dict[str, list[Header]] = {}
            for h in wic_request.headers.fields:
                key = h.key
                if key == "supported":
                    supported.update(_option_tags(h.value))
                elif key in _COPIED_KEYS:
                    copied.setdefault(key, []).extend(_copied_lines(key, h.value))
            supported.discard("sec-agree")
            for key in _COPIED_ORDER if copied else ():
                lines = copied.get(key)
                if lines is not None:
                    headers.extend(lines)
        if supported:
            headers.append(_supported(frozenset(supported)))
        if authorization is not None:
            headers.append(Header("Authorization", _one_line(authorization), None, "authorization"))
        if self.as_pcscf:
            if path is not None:
                headers.append(Header("Path", _one_line(path), None, "path"))
            headers.append(self._pvni)
            headers.append(
                Header("P-Charging-Vector", charging_vector(self.generated_at), None, "p-charging-vector")
            )
            if self.access_network_info and wic_ip is not None:
                headers.append(("P-Access-Network-Info", self.access_network_info.replace("{ip}", wic_ip)))
        request = Request("REGISTER", request_uri, Headers(headers))
        request.headers.set_view("cseq", new_cseq(cseq, "REGISTER"))
        return request


def granted_expires(
    response: Response, contact_uri: object, default: int, *, registered: str | None = None
) -> int:
    """The expiry the registrar granted our contact: its ``expires`` parameter in the 2xx
    (RFC 3261 §10.2.4), else the Expires header, else ``default``. ``contact_uri`` is a URI,
    or its text (compared as text first: registrars echo it; else by RFC 3261 §19.1.4).

    ``registered``: the Contact as we sent it (``<uri>;params``, before ``;expires=``); from a
    registrar that echoes it as it was, the expiry is read from the text without parsing it."""
    if registered is not None and registered.startswith("<"):
        prefix = registered + ";expires="
        for h in response.headers.fields:
            if h.key == "contact" and h.value.startswith(prefix):
                digits = _DIGITS.match(h.value, len(prefix))
                if digits is not None and h.value[digits.end() : digits.end() + 1] in ("", ";", ",", " "):
                    return int(digits.group())
                break
    try:
        for c in response.contact:
            if c.expires is None:
                continue
            if isinstance(contact_uri, str):
                if c.uri_text == contact_uri:
                    return c.expires
                contact_uri = parse_uri(contact_uri)
            if c.uri == contact_uri:
                return c.expires
        if response.expires is not None:
            return response.expires
    except ParseError:
        pass
    return default


_DIGITS = re.compile(r"[0-9]{1,10}")
#: A ``ck`` / ``ik`` auth-param (TS 24.229 §5.2.2.1) could be in a challenge (or in a quoted value).
_KEY_PARAM = re.compile(r"(?:^|[\s,])(?:ck|ik)\s*=", re.IGNORECASE)
_MAX_FORWARDS = Header("Max-Forwards", "70")


@functools.lru_cache(maxsize=256)
def _copied_lines(key: str, value: str) -> tuple[Header, ...]:
    """Our header lines for one of the WIC's :data:`COPIED_REQUEST_HEADERS` lines: one per
    value of a list header (what ``get_all`` gives), shared (header lines are never changed in
    place; the same few values from every WIC)."""
    values = split_list(value) if is_list_header(key) else [value]
    name = _COPIED_NAMES[key]
    return tuple(Header(name, _one_line(v), None, key) for v in values)


def _one_line(value: str) -> str:
    """A header value we copy or make: one line (what ``Headers`` checks for name/value pairs)."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"header value with CR or LF: {value!r}")
    return value


@functools.lru_cache(maxsize=256)
def _option_tags(value: str) -> frozenset[str]:
    """The option tags of a Supported value, lower-cased (the same few values from every WIC)."""
    return frozenset(t.lower() for t in iter_tokens(value))


@functools.lru_cache(maxsize=64)
def _supported(tags: frozenset[str]) -> Header:
    """``Supported`` with these option tags, sorted: one shared header line per set."""
    return Header("Supported", ", ".join(sorted(tags)))


def service_routes(response: Response) -> list[str]:
    """The Service-Route of a 2xx to REGISTER (RFC 3608 §6), each entry as ``str`` of its parsed
    name-addr; raises ParseError. The same few routes for every user: parsed once each, one
    string object each."""
    values = tuple(response.headers.get_all("Service-Route"))
    return list(_service_routes(values)) if values else []


@functools.lru_cache(maxsize=256)
def _service_routes(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sys.intern(str(parse_name_addr(v))) for v in values)


def new_dialog() -> tuple[str, str]:
    """A fresh (Call-ID, From tag) for a binding's IMS registration."""
    return f"{token_hex(10)}@webims", token_hex(5)  # as new_tag(): 40 random bits


__all__ += ["RegisterBuilder", "granted_expires", "new_dialog", "service_routes"]


def first_digest_challenge(response: Response) -> Challenge | None:
    """The first Digest challenge of a 401/407 (WWW-Authenticate, then Proxy-Authenticate)."""
    for name in ("WWW-Authenticate", "Proxy-Authenticate"):
        for value in response.headers.get_all(name):
            try:
                challenge = parse_challenge(value)
            except ParseError:
                continue
            if challenge.is_digest:
                return challenge
    return None


@functools.lru_cache(maxsize=64)
def aka_algorithm(algorithm: str | None) -> bool:
    """Whether a Digest ``algorithm`` is AKAv1/AKAv2 (RFC 3310, RFC 4169): the same few values."""
    try:
        return parse_algorithm(algorithm).aka_version is not None
    except DigestError:
        return False


def challenge_mode(response: Response) -> str:
    """``ims-aka`` when the first Digest challenge of a 401/407 asks AKAv1/AKAv2 (RFC 3310),
    else ``ims-digest``: what :func:`first_digest_challenge` and :func:`aka_algorithm` answer,
    read from the text when it is plain (the usual S-CSCF challenge: no quoted-pair,
    ``algorithm`` once, outside any quoted string), else from the parsed challenges."""
    values = response.headers.get_all("WWW-Authenticate")
    if len(values) == 1:
        value = values[0]
        if "\\" not in value and _DIGEST.match(value) is not None:
            count = value.lower().count("algorithm")
            if count == 0:
                return "ims-digest"  # RFC 3261 §22.4: no algorithm is MD5
            if count == 1 and _ALGORITHM.search(_QUOTED.sub('""', value)) is not None:
                found = _ALGORITHM.search(value)
                if found is not None:
                    return "ims-aka" if aka_algorithm(found.group(1)) else "ims-digest"
    challenge = first_digest_challenge(response)
    return "ims-aka" if challenge is not None and aka_algorithm(challenge.algorithm) else "ims-digest"


_DIGEST = re.compile(r"\s*Digest\s", re.IGNORECASE)
_QUOTED = re.compile(r'"[^"]*"')
_ALGORITHM = re.compile(r'(?:^|[\s,])algorithm\s*=\s*"?([A-Za-z0-9._-]+)', re.IGNORECASE)

__all__ += ["aka_algorithm", "challenge_mode", "first_digest_challenge"]
