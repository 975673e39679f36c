"""Structured SIP header values (RFC 3261 §20, §25.1).

Header values stay text in the message; these parsers turn the ones callers need
into small objects.  Every malformed value raises :class:`ParseError` (400).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ParseError
from .uri import URI, parse_uri

__all__ = [
    "CSeq",
    "NameAddr",
    "Via",
    "canonical_name",
    "format_params",
    "is_list_header",
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
_HOST_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+")
_PARAM_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+|\"(?:[^\"\\]|\\.)*\"")


def canonical_name(name: str) -> str:
    """Lower-case long form of a header name, for lookups."""
    lower = name.lower()
    return _COMPACT_LOWER.get(lower, lower)


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


def split_list(value: str) -> list[str]:
    """Split a list header value on commas outside quotes and <...>."""
    if "," not in value:
        stripped = value.strip()
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
        elif c == "," and depth == 0:
            part = value[start:i].strip()
            if part:
                parts.append(part)
            start = i + 1
        i += 1
    if depth != 0:
        raise ParseError("Unbalanced angle brackets", line=value)
    part = value[start:].strip()
    if part:
        parts.append(part)
    return parts


_PARAM_RE = re.compile(
    r"[ \t]*;[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)"
    r"(?:[ \t]*=[ \t]*(\"(?:[^\"\\]|\\.)*\"|[A-Za-z0-9\-.!%*_+`'~:\[\]]+))?"
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
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass(slots=True)
class NameAddr:
    """name-addr / addr-spec with header parameters: From, To, Contact, Route... (§20)."""

    uri: URI
    display: str | None = None
    params: Mapping[str, str | None] = field(default_factory=dict)
    raw: str | None = field(default=None, repr=False, compare=False)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """Contact expires parameter (§20.10)."""
        value = self.params.get("expires")
        if value is None:
            return None
        if not value.isdigit():
            raise ParseError("Bad expires parameter", line=self.raw)
        return int(value)

    @property
    def q(self) -> float | None:
        value = self.params.get("q")
        if value is None:
            return None
        try:
            q = float(value)
        except ValueError:
            raise ParseError("Bad q parameter", line=self.raw) from None
        if not 0 <= q <= 1:
            raise ParseError("Bad q parameter", line=self.raw)
        return q

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
        if not value.isdigit():
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


_NAME_ADDR_RE = re.compile(r'[ \t]*(?:"((?:[^"\\]|\\.)*)"[ \t]*|([^<"]*))<([^<>]*)>(.*)', re.S)
_DISPLAY_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*")


def parse_name_addr(value: str) -> NameAddr:
    """Parse one name-addr or addr-spec with parameters (§25.1 from-spec, contact-param)."""
    m = _NAME_ADDR_RE.fullmatch(value)
    if m is not None:
        quoted, tokens, uri_text, rest = m.groups()
        display: str | None
        if quoted is not None:
            display = unquote(f'"{quoted}"')
        else:
            display = tokens.strip(" \t") or None
            if display is not None and not _DISPLAY_RE.fullmatch(display):
                raise ParseError("Bad display name", line=value)
        uri = parse_uri(uri_text.strip(" \t"))
        params = parse_params(rest, value) if rest else {}
        return NameAddr(uri, display, params, value.strip())
    text = value.strip()
    if not text:
        raise ParseError("Empty address", line=value)
    if text[0] == '"':
        _scan_quoted(text, 0)  # raises on an unterminated quote
        raise ParseError("Quoted display name without <URI>", line=value)
    if "<" in text:
        raise ParseError("Unterminated <URI>" if ">" not in text else "Bad address", line=value)
    semi = text.find(";")
    uri_text, rest = (text, "") if semi < 0 else (text[:semi], text[semi:])
    if any(c in uri_text for c in ' \t">'):
        raise ParseError("Bad address", line=value)
    return NameAddr(parse_uri(uri_text), None, parse_params(rest, value) if rest else {}, text)


_T = r"[A-Za-z0-9\-.!%*_+`'~]+"
_QS = r'"(?:[^"\\\r\n]|\\[^\r\n])*"'
_GV = rf"(?:{_QS}|[A-Za-z0-9\-.!%*_+`'~:]+)"
_GEN_PARAMS = rf"(?:[ \t]*;[ \t]*{_T}(?:[ \t]*=[ \t]*{_GV})?)*[ \t]*"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-_]*[A-Za-z0-9])?"
_FAST_HOST = rf"(?:{_OCTET}(?:\.{_OCTET}){{3}}|(?:{_LABEL}\.)*[A-Za-z](?:[A-Za-z0-9\-_]*[A-Za-z0-9])?\.?)"
_FAST_SIP_URI = (
    r"sips?:(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]+(?::[A-Za-z0-9\-_.!~*'()&=+$,]*)?@)?"
    rf"{_FAST_HOST}(?::[0-9]{{1,4}})?(?:;[A-Za-z0-9\-_.!~*'()/:&+$]+(?:=[A-Za-z0-9\-_.!~*'()/:&+$]+)?)*"
)
# The usual shapes of name-addr with a sip: URI (no escapes, IPv6 or URI headers); anything
# else is checked by the full parser.  Used to validate without building objects.
_FAST_NAME_ADDR_RE = re.compile(
    rf"[ \t]*(?:(?:{_QS}|{_T}(?:[ \t]+{_T})*)[ \t]*)?<{_FAST_SIP_URI}>{_GEN_PARAMS}", re.I
)
_FAST_VIA_RE = re.compile(
    rf"SIP/2\.0/[A-Za-z]+[ \t]+{_FAST_HOST}(?::[0-9]{{1,4}})?{_GEN_PARAMS}", re.I
)


def check_name_addr(value: str) -> None:
    """Raise :class:`ParseError` unless ``value`` is a valid name-addr/addr-spec list item."""
    if _FAST_NAME_ADDR_RE.fullmatch(value) is None:
        parse_name_addr(value)


def check_via(value: str) -> None:
    """Raise :class:`ParseError` unless ``value`` is a valid via-parm."""
    if _FAST_VIA_RE.fullmatch(value) is None:
        via = parse_via(value)
        if "branch" in via.params and not via.params["branch"]:
            raise ParseError("Empty Via branch", line=value)


def parse_name_addrs(value: str) -> list[NameAddr]:
    return [parse_name_addr(part) for part in split_list(value)]


@dataclass(slots=True)
class Via:
    """One Via header value (RFC 3261 §20.42, §18.2.1)."""

    transport: str
    host: str
    port: int | None = None
    params: Mapping[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"
    raw: str | None = field(default=None, repr=False, compare=False)

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
        return int(value) if value and value.isdigit() else None

    def replace(self, **changes: Any) -> Via:
        values: dict[str, Any] = {
            "transport": self.transport,
            "host": self.host,
            "port": self.port,
            "params": dict(self.params),
            "protocol": self.protocol,
        }
        values.update(changes)
        return Via(**values)

    def with_param(self, name: str, value: str | None) -> Via:
        params = dict(self.params)
        params[name] = value
        return self.replace(params=params)

    def __str__(self) -> str:
        if self.raw is not None:
            return self.raw
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


_VIA_RE = re.compile(
    r"\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*([0-9A-Za-z.]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)(?:\s*:\s*([0-9]{1,5}))?"
)


def parse_via(value: str) -> Via:
    m = _VIA_RE.match(value)
    if m is None:
        raise ParseError("Bad Via header", line=value)
    name, version, transport, host, port_s = m.groups()
    if name.upper() != "SIP" or version != "2.0":
        raise ParseError("Bad Via protocol", line=value)
    port = int(port_s) if port_s is not None else None
    if port is not None and port > 65535:
        raise ParseError("Bad Via port", line=value)
    params = parse_params(value[m.end() :], value)
    if "branch" in params and not params["branch"]:
        raise ParseError("Empty Via branch", line=value)
    return Via(
        transport=transport.upper(),
        host=host,
        port=port,
        params=params,
        protocol=f"{name}/{version}",
        raw=value.strip(),
    )


def parse_vias(value: str) -> list[Via]:
    return [parse_via(part) for part in split_list(value)]


@dataclass(frozen=True)
class CSeq:
    """CSeq header (RFC 3261 §20.16, §8.1.1.5)."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2:
        raise ParseError("Bad CSeq header", line=value)
    number, method = parts
    if not number.isdigit() or len(number) > 10 or int(number) >= 2**31:
        raise ParseError("Bad CSeq number", line=value)
    if not _TOKEN_RE.fullmatch(method):
        raise ParseError("Bad CSeq method", line=value)
    return CSeq(int(number), method)


def iter_tokens(value: str) -> Iterator[str]:
    """Items of a token list header such as Supported or Require."""
    for item in value.split(","):
        item = item.strip()
        if item:
            yield item
