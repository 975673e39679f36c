"""Structured SIP header values (RFC 3261 §20, §25.1).

Header values stay text in the message; these parsers turn the ones callers need
into small objects.  Every malformed value raises :class:`ParseError` (400).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import ParseError
from .uri import HOSTNAME, IPV4, URI, check_host, is_ip_address, parse_uri, parse_valid_sip_uri

__all__ = [
    "CSeq",
    "NameAddr",
    "Via",
    "canonical_name",
    "format_params",
    "is_list_header",
    "new_cseq",
    "parse_cseq",
    "parse_name_addr",
    "parse_name_addrs",
    "parse_params",
    "parse_via",
    "parse_vias",
    "split_list",
    "unquote",
]

# RFC 3261 §7.3.3 and the registries of later RFCs: compact form -> full name.
COMPACT_FORMS = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "r": "Refer-To",  # RFC 3515
    "b": "Referred-By",  # RFC 3892
    "o": "Event",  # RFC 6665
    "u": "Allow-Events",  # RFC 6665
    "x": "Session-Expires",  # RFC 4028
    "a": "Accept-Contact",  # RFC 3841
    "j": "Reject-Contact",  # RFC 3841
    "d": "Request-Disposition",  # RFC 3841
    "y": "Identity",  # RFC 8224
}
_COMPACT_LOWER = {k: v.lower() for k, v in COMPACT_FORMS.items()}

# Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1).
_LIST_HEADERS = frozenset(
    h.lower()
    for h in (
        "Via", "Contact", "Route", "Record-Route", "Path", "Service-Route", "Allow", "Supported",
        "Require", "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Accept-Language",
        "Allow-Events", "Content-Encoding", "Content-Language", "In-Reply-To", "Alert-Info",
        "Call-Info", "Error-Info", "Warning", "P-Associated-URI", "P-Asserted-Identity",
        "P-Preferred-Identity", "P-Called-Party-ID", "Security-Client", "Security-Server",
        "Security-Verify", "Accept-Contact", "Reject-Contact", "Request-Disposition", "Reason",
        "History-Info", "Privacy", "Feature-Caps", "Recv-Info", "P-Charging-Function-Addresses",
    )
)

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# quoted-string = DQUOTE *(qdtext / quoted-pair) DQUOTE (RFC 3261 §25.1): qdtext excludes
# the controls but HTAB; quoted-pair escapes %x00-09 / %x0B-0C / %x0E-7F.
_QDTEXT = r'[^"\\\x00-\x08\x0a-\x1f\x7f]'
QUOTED_STRING = rf'"{_QDTEXT}*(?:\\[\x00-\x09\x0b\x0c\x0e-\x7f]{_QDTEXT}*)*"'
_QUOTED_RE = re.compile(QUOTED_STRING)
_QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def is_digits(text: str) -> bool:
    """1*DIGIT in ASCII (``str.isdigit`` alone also accepts other scripts' digits)."""
    return text.isdigit() and text.isascii()


_CANONICAL: dict[str, str] = {}


def canonical_name(name: str) -> str:
    """Lower-case long form of a header name, for lookups (remembered: few names recur)."""
    key = _CANONICAL.get(name)
    if key is None:
        lower = name.lower()
        key = _COMPACT_LOWER.get(lower, lower)
        if len(_CANONICAL) < 4096:
            _CANONICAL[name] = key
    return key


def is_list_header(key: str) -> bool:
    return key in _LIST_HEADERS


def unquote(value: str | None) -> str | None:
    """Remove quotes and backslash escapes of a quoted-string (RFC 3261 §25.1)."""
    if value is None or len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    inner = value[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    it = iter(inner)
    for c in it:
        out.append(next(it, "") if c == "\\" else c)
    return "".join(out)


def _scan_quoted(text: str, start: int) -> int:
    """Index just past the quoted-string beginning at ``text[start] == '"'``."""
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    raise ParseError("Unterminated quoted string", line=text)


def split_list(value: str, *, allow_empty: bool = True) -> list[str]:
    """Split a list header value on commas outside quotes and <...>.

    Empty items are dropped, or refused with ``allow_empty=False`` (the grammar of
    Via, Contact... has none: RFC 3261 §25.1).
    """
    if "," not in value:
        stripped = value.strip(" \t")
        if not stripped and not allow_empty:
            raise ParseError("Empty list element", line=value)
        return [stripped] if stripped else []
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == '"':
            i = _scan_quoted(value, i)
            continue
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
            if depth < 0:
                raise ParseError("Unbalanced angle brackets", line=value)
        elif c == "," and depth == 0:
            part = value[start:i].strip(" \t")
            if part:
                parts.append(part)
            elif not allow_empty:
                raise ParseError("Empty list element", line=value)
            start = i + 1
        i += 1
    if depth != 0:
        raise ParseError("Unbalanced angle brackets", line=value)
    part = value[start:].strip(" \t")
    if part:
        parts.append(part)
    elif not allow_empty:
        raise ParseError("Empty list element", line=value)
    return parts


_PARAM_RE = re.compile(
    r"[ \t]*;[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)"
    rf"(?:[ \t]*=[ \t]*({QUOTED_STRING}|[A-Za-z0-9\-.!%*_+`'~:\[\]]+))?"
)


def parse_params(text: str, raw: str) -> dict[str, str | None]:
    """Parse ``;name[=value]...`` (generic-param, RFC 3261 §25.1); values kept as on the wire."""
    params: dict[str, str | None] = {}
    i = 0
    n = len(text)
    match = _PARAM_RE.match
    while i < n:
        m = match(text, i)
        if m is None:
            if text[i:].strip(" \t"):
                if '"' in text[i:] and text[i:].count('"') % 2:
                    raise ParseError("Unterminated quoted string", line=raw)
                raise ParseError("Bad parameter syntax", line=raw)
            break
        params[m.group(1).lower()] = m.group(2)
        i = m.end()
    return params


def format_params(params: Mapping[str, str | None]) -> str:
    return "".join([f";{k}" if v is None else f";{k}={v}" for k, v in params.items()])


class NameAddr:
    """name-addr / addr-spec with header parameters: From, To, Contact, Route... (§20).

    A parsed one whose URI has the common shape (:data:`FAST_SIP_URI_RE`: valid for the
    full parser too) keeps the URI as text and builds the :data:`URI` object on first
    use of :attr:`uri`: most readers only want a tag or a parameter, or the text
    (:attr:`uri_text`). Values, compared like a dataclass (``raw`` aside); read-only.
    """

    __slots__ = ("_uri", "_uri_text", "display", "params", "raw")
    __match_args__ = ("uri", "display", "params")

    def __init__(self, uri: URI | None = None, display: str | None = None,
                 params: Mapping[str, str | None] | None = None, raw: str | None = None, *,
                 uri_text: str | None = None) -> None:  # fmt: skip
        if uri is None and uri_text is None:
            raise TypeError("NameAddr needs a uri")
        self._uri = uri
        self._uri_text = uri_text
        self.display = display
        self.params: Mapping[str, str | None] = params if params is not None else {}
        self.raw = raw

    @property
    def uri(self) -> URI:
        uri = self._uri
        if uri is None:
            assert self._uri_text is not None
            uri = self._uri = parse_valid_sip_uri(self._uri_text)  # validated when parsed
        return uri

    @property
    def uri_text(self) -> str:
        """``str(self.uri)`` without building the URI object."""
        return self._uri_text if self._uri is None and self._uri_text is not None else str(self.uri)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, NameAddr)
        return (self.uri, self.display, self.params) == (other.uri, other.display, other.params)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value, as the dataclass was

    def __repr__(self) -> str:
        return f"NameAddr(uri={self.uri!r}, display={self.display!r}, params={self.params!r})"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """Contact expires parameter (§20.10)."""
        value = self.params.get("expires")
        if value is None:
            return None
        if not is_digits(value):
            raise ParseError("Bad expires parameter", line=self.raw)
        return int(value)

    @property
    def q(self) -> float | None:
        value = self.params.get("q")
        if value is None:
            return None
        if _QVALUE_RE.fullmatch(value) is None:  # qvalue (RFC 3261 §25.1)
            raise ParseError("Bad q parameter", line=self.raw)
        return float(value)

    @property
    def sip_instance(self) -> str | None:
        """+sip.instance without its quotes and angle brackets (RFC 5626 §4.1)."""
        value = unquote(self.params.get("+sip.instance"))
        if value is not None and value.startswith("<") and value.endswith(">"):
            return value[1:-1]
        return value

    @property
    def reg_id(self) -> int | None:
        value = self.params.get("reg-id")
        if value is None:
            return None
        if not is_digits(value):
            raise ParseError("Bad reg-id parameter", line=self.raw)
        return int(value)

    def param(self, name: str) -> str | None:
        return unquote(self.params.get(name))

    def replace(self, **changes: Any) -> NameAddr:
        values: dict[str, Any] = {"uri": self.uri, "display": self.display, "params": dict(self.params)}
        values.update(changes)
        return NameAddr(**values)

    def with_param(self, name: str, value: str | None) -> NameAddr:
        params = dict(self.params)
        params[name] = value
        return self.replace(params=params)

    def __str__(self) -> str:
        if self.raw is not None:
            return self.raw
        display = ""
        if self.display is not None:
            escaped = self.display.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{format_params(self.params)}"


_NAME_ADDR_RE = re.compile(rf"(?:({QUOTED_STRING})[ \t]*|([^<\"]*))<([^<>]*)>(.*)", re.S)
_DISPLAY_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*")


def parse_name_addr(value: str) -> NameAddr:
    """Parse one name-addr or addr-spec with parameters (§25.1 from-spec, contact-param).

    ``LAQUOT = SWS "<"`` and ``RAQUOT = ">" SWS``: no whitespace inside the angle
    brackets (RFC 4475 §3.1.2.14).  An addr-spec without brackets may not contain
    "," or "?" (§20.10).  The common shape (:data:`FAST_NAME_ADDR_RE`) is taken apart
    by one match; anything else by the full parser (the same result for both).
    """
    text = value.strip(" \t")
    m = NAME_ADDR_PARTS_RE.fullmatch(text)
    if m is not None:
        return name_addr_from(m, text)
    return _parse_name_addr_full(value, text)


def _parse_name_addr_full(value: str, text: str) -> NameAddr:
    m = _NAME_ADDR_RE.fullmatch(text)
    if m is not None:
        quoted, tokens, uri_text, rest = m.groups()
        display: str | None
        if quoted is not None:
            display = unquote(quoted)
        else:
            display = tokens.strip(" \t") or None
            if display is not None and not _DISPLAY_RE.fullmatch(display):
                raise ParseError("Bad display name", line=value)
        if uri_text != uri_text.strip(" \t\r\n"):
            raise ParseError("Whitespace inside <URI>", line=value)
        if FAST_SIP_URI_RE.fullmatch(uri_text) is not None:  # valid: the URI object on first use
            return NameAddr(None, display, parse_params(rest, value) if rest else {}, text, uri_text=uri_text)
        uri = parse_uri(uri_text)
        return NameAddr(uri, display, parse_params(rest, value) if rest else {}, text)
    if not text:
        raise ParseError("Empty address", line=value)
    if text[0] == '"':
        _scan_quoted(text, 0)  # raises on an unterminated quote
        raise ParseError("Quoted display name without <URI>", line=value)
    if "<" in text:
        raise ParseError("Unterminated <URI>" if ">" not in text else "Bad address", line=value)
    semi = text.find(";")
    uri_text, rest = (text, "") if semi < 0 else (text[:semi].rstrip(" \t"), text[semi:])
    if any(c in uri_text for c in ' \t">,?'):
        raise ParseError("Bad address: URI with space, comma or '?' must be in <>", line=value)
    return NameAddr(parse_uri(uri_text), None, parse_params(rest, value) if rest else {}, text)


# Every run is followed by a character outside its own set, so each value splits one way
# only and the first match found is the one meant; the repeats are atomic groups (Python
# >= 3.11), so that a failed match does not go back into them.  Not the possessive
# ``X++`` / ``X*+``: Python 3.11.0-3.11.4, Debian 12's python3 among them, match those
# wrongly (a failed last round of ``(?:[ \t]++T)*+`` stayed in the display name:
# gh-100061, gh-106052).  The atomic repeats cost about 0.2 us more per match than the
# possessive ones did on 3.11.7.
_T = r"[A-Za-z0-9\-.!%*_+`'~]+"
_QS = rf'"(?>{_QDTEXT}*(?:\\[\x00-\x09\x0b\x0c\x0e-\x7f]{_QDTEXT}*)*)"'
_GV = rf"(?:{_QS}|[A-Za-z0-9\-.!%*_+`'~:\[\]]+)"
_GEN_PARAMS = rf"(?>(?:[ \t]*;[ \t]*{_T}(?:[ \t]*=[ \t]*{_GV})?)*)"
# A port of 0-65535 (what the full parsers accept, leading zeros included, up to five
# digits), never a prefix of a longer number: inside an atomic repeat (``rport=`` in the
# Via parameters) an alternative that took fewer digits could not be retried.
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[0-5][0-9]{4}|[0-9]{1,4})(?![0-9])"
_FAST_HOST = rf"(?:{IPV4}|{HOSTNAME})"
_FAST_SIP_URI = (
    r"[Ss][Ii][Pp][Ss]?:(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]+(?::[A-Za-z0-9\-_.!~*'()&=+$,]*)?@)?"
    rf"{_FAST_HOST}(?::{_PORT})?(?>(?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+)?)*)"
)
# The usual shapes, checked without building objects: a sip:/sips: URI without escapes,
# IPv6 or URI headers.  Anything else goes through the full parsers; everything these
# patterns accept, the full parsers accept too.
FAST_SIP_URI_RE = re.compile(_FAST_SIP_URI)
FAST_NAME_ADDR_RE = re.compile(
    rf"(?:(?:{_QS}|{_T}(?>(?:[ \t]+{_T})*))[ \t]*)?<{_FAST_SIP_URI}>{_GEN_PARAMS}"
)
# Via parameters with a grammar of their own (branch, received, rport, ttl, maddr: §20.42,
# RFC 3581) are left to parse_via, except the common branch=token, received=IPv4address
# and rport[=port].
_VIA_SPECIAL = r"(?i:branch|received|rport|ttl|maddr)(?![A-Za-z0-9\-.!%*_+`'~])"
_FAST_VIA_PARAMS = (
    rf"(?>(?:[ \t]*;[ \t]*(?:branch={_T}|received={IPV4}|rport(?:={_PORT})?"
    rf"|(?!{_VIA_SPECIAL}){_T}(?:[ \t]*=[ \t]*{_GV})?))*)"
)
FAST_VIA_RE = re.compile(rf"SIP/2\.0/[A-Za-z]+[ \t]+{_FAST_HOST}(?::{_PORT})?{_FAST_VIA_PARAMS}")


# The same patterns with groups, to build the objects from the one match that validates:
# display (quoted, tokens), URI, parameters / transport, host, port, parameters.
NAME_ADDR_PARTS_RE = re.compile(
    rf"(?:(?:({_QS})|({_T}(?>(?:[ \t]+{_T})*)))[ \t]*)?<({_FAST_SIP_URI})>({_GEN_PARAMS})"
)
VIA_PARTS_RE = re.compile(rf"SIP/2\.0/([A-Za-z]+)[ \t]+({_FAST_HOST})(?::({_PORT}))?({_FAST_VIA_PARAMS})")


def _valid_params(rest: str) -> dict[str, str | None]:
    """The generic-params of ``rest``, a full match of ``_GEN_PARAMS`` (validated), as
    :func:`parse_params` gives them.  Tokens and unquoted values contain no ";", "=" or
    whitespace, so str methods split them; a quoted value with ";" or "\\" inside goes
    to the pattern."""
    if '"' in rest and ("\\" in rest or any(";" in q for q in rest.split('"')[1::2])):
        return {k.lower(): v or None for k, v in _PARAM_RE.findall(rest)}
    params: dict[str, str | None] = {}
    for item in rest.split(";")[1:]:
        name, eq, value = item.partition("=")
        params[name.strip(" \t").lower()] = value.strip(" \t") if eq else None
    return params


def name_addr_from(m: re.Match[str], text: str) -> NameAddr:
    """The NameAddr of ``text``, a full match of :data:`NAME_ADDR_PARTS_RE`: the URI stays
    text (valid: built on first use)."""
    quoted, tokens, uri_text, rest = m.groups()
    return NameAddr(None, unquote(quoted) if quoted is not None else tokens,
                    _valid_params(rest) if rest else {}, text, uri_text=uri_text)


def via_from(m: re.Match[str], text: str) -> Via:
    """The Via of ``text``, a full match of :data:`VIA_PARTS_RE` (as :func:`parse_via` gives it)."""
    transport, host, port, rest = m.groups()
    params = _valid_params(rest) if rest else {}
    return Via(transport.upper(), host, int(port) if port is not None else None, params, "SIP/2.0", text)


def check_name_addr(value: str) -> None:
    """Raise :class:`ParseError` unless ``value`` is a valid name-addr/addr-spec list item."""
    if FAST_NAME_ADDR_RE.fullmatch(value) is None:
        parse_name_addr(value)


def check_via(value: str) -> None:
    """Raise :class:`ParseError` unless ``value`` is a valid via-parm."""
    if FAST_VIA_RE.fullmatch(value) is None:
        parse_via(value)


def parse_name_addrs(value: str) -> list[NameAddr]:
    return [parse_name_addr(part) for part in split_list(value)]


@dataclass(slots=True, init=False)
class Via:
    """One Via header value (RFC 3261 §20.42, §18.2.1)."""

    transport: str
    host: str
    port: int | None
    params: Mapping[str, str | None]
    protocol: str
    raw: str | None = field(repr=False, compare=False)

    def __init__(
        self, transport: str, host: str, port: int | None = None,
        params: Mapping[str, str | None] | None = None, protocol: str = "SIP/2.0", raw: str | None = None
    ) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.params = {} if params is None else params
        self.protocol = protocol
        self.raw = raw

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        value = self.params.get("rport")
        return int(value) if value and is_digits(value) else None

    def replace(self, **changes: Any) -> Via:
        get = changes.pop
        params = get("params") if "params" in changes else dict(self.params)
        return Via(get("transport", self.transport), get("host", self.host), get("port", self.port),
                   params, get("protocol", self.protocol), **changes)  # fmt: skip

    def with_param(self, name: str, value: str | None) -> Via:
        params = dict(self.params)
        params[name] = value
        return self.replace(params=params)

    def __str__(self) -> str:
        if self.raw is not None:
            return self.raw
        sent_by = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {sent_by}{format_params(self.params)}"


_VIA_RE = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*"
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
)


def parse_via(value: str) -> Via:
    """One via-parm (RFC 3261 §20.42, §25.1; received per RFC 5118 §4.5, rport per RFC 3581).
    The common shape (:data:`FAST_VIA_RE`) is taken apart by one match."""
    text = value.strip(" \t")
    fast = VIA_PARTS_RE.fullmatch(text)
    if fast is not None:
        return via_from(fast, text)
    return _parse_via_full(value, text)


def _parse_via_full(value: str, text: str) -> Via:
    m = _VIA_RE.match(text)
    if m is None:
        raise ParseError("Bad Via header", line=value)
    name, version, transport, host, port_s = m.groups()
    if name.upper() != "SIP" or version != "2.0":
        raise ParseError("Bad Via protocol", line=value)
    check_host(host, value)
    port = int(port_s) if port_s is not None else None
    if port is not None and port > 65535:
        raise ParseError("Bad Via port", line=value)
    params = parse_params(text[m.end() :], value)
    for pname, check in _VIA_PARAM_CHECKS.items():
        if pname in params and not check(params[pname]):
            raise ParseError(f"Bad Via {pname} parameter", line=value)
    return Via(
        transport=transport.upper(),
        host=host,
        port=port,
        params=params,
        protocol=f"{name}/{version}",
        raw=text,
    )


def _is_port(value: str | None) -> bool:
    return value is not None and is_digits(value) and int(value) <= 65535


def _is_host(value: str | None) -> bool:
    if value is None:
        return False
    try:
        check_host(value, value)
    except ParseError:
        return False
    return True


_VIA_PARAM_CHECKS: dict[str, Callable[[str | None], bool]] = {
    "branch": lambda v: v is not None and _TOKEN_RE.fullmatch(v) is not None,
    "received": lambda v: v is not None and is_ip_address(v),
    "rport": lambda v: v is None or _is_port(v),
    "ttl": lambda v: v is not None and is_digits(v) and int(v) <= 255,
    "maddr": _is_host,
}


def parse_vias(value: str, *, validated: bool = False) -> list[Via]:
    """The via-parms of one Via header value. ``validated``: the parser already checked
    every item (:func:`check_via`), so only the fields are taken apart."""
    if validated:
        return [_split_via(part) for part in split_list(value)]
    return [parse_via(part) for part in split_list(value)]


def _split_via(text: str) -> Via:
    fast = VIA_PARTS_RE.fullmatch(text)
    if fast is not None:
        return via_from(fast, text)
    m = _VIA_RE.match(text)
    if m is None:  # pragma: no cover - validated by the parser
        return parse_via(text)
    name, version, transport, host, port_s = m.groups()
    rest = text[m.end() :]
    # validated: the parameters are exactly what _PARAM_RE finds (a value is never empty)
    params = {k.lower(): v or None for k, v in _PARAM_RE.findall(rest)} if rest else {}
    return Via(transport.upper(), host, int(port_s) if port_s is not None else None,
               params, f"{name}/{version}", text)  # fmt: skip


class CSeq(NamedTuple):
    """CSeq header (RFC 3261 §20.16, §8.1.1.5)."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


_new_tuple = tuple.__new__


def new_cseq(seq: int, method: str) -> CSeq:
    """``CSeq(seq, method)`` without the NamedTuple's Python ``__new__``: the view a builder
    records for the CSeq line it wrote (what parsing that line would give)."""
    return _new_tuple(CSeq, (seq, method))


CSEQ_RE = re.compile(r"([0-9]{1,10})[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)")


def parse_cseq(value: str) -> CSeq:
    """CSeq = 1*DIGIT LWS Method, the number below 2**31 (RFC 3261 §8.1.1.5, §25.1)."""
    m = CSEQ_RE.fullmatch(value.strip(" \t"))
    if m is None:
        parts = value.split()
        if len(parts) == 2 and _TOKEN_RE.fullmatch(parts[1]):
            raise ParseError("Bad CSeq number", line=value)
        raise ParseError("Bad CSeq header", line=value)
    number = int(m.group(1))
    if number >= 2**31:
        raise ParseError("Bad CSeq number: not below 2**31", line=value)
    return new_cseq(number, m.group(2))


def iter_tokens(value: str) -> Iterator[str]:
    """Items of a token list header such as Supported or Require."""
    for item in value.split(","):
        item = item.strip(" \t")
        if item:
            yield item
