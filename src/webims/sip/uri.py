"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966; RFC 5118).

URIs are treated as immutable values (never assign to their fields).  ``str(uri)``
of a parsed URI returns the exact input text;
``uri.replace(...)`` makes a modified copy that serializes canonically.  ``==``
is the comparison of RFC 3261 §19.1.4 (SIP) and RFC 3966 §4 (tel).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ParseError

__all__ = [
    "URI",
    "AbsoluteURI",
    "SipURI",
    "TelURI",
    "escape",
    "parse_uri",
    "parse_valid_sip_uri",
    "unescape",
]

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# RFC 3261 §25.1 SIP-URI: user = 1*( unreserved / escaped / user-unreserved ), password,
# hostport, uri-parameters (pname/pvalue = 1*paramchar), headers (hname "=" hvalue).
_SIP_RE = re.compile(
    r"(?:(?P<user>[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+)(?::(?P<password>[A-Za-z0-9\-_.!~*'()&=+$,%]*))?@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<params>(?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+)?)*)"
    r"(?:\?(?P<headers>[A-Za-z0-9\-_.!~*'()\[\]/?:+$%@]+=[A-Za-z0-9\-_.!~*'()\[\]/?:+$%@]*"
    r"(?:&[A-Za-z0-9\-_.!~*'()\[\]/?:+$%@]+=[A-Za-z0-9\-_.!~*'()\[\]/?:+$%@]*)*))?",
)
# hostname = *( domainlabel "." ) toplabel [ "." ] (RFC 3261 §25.1; "_" tolerated as in practice).
# Plain greedy runs: the classes alternate (label characters, "-" or "_", "."), so a host
# splits one way only and a failed match backtracks in linear time. Not the possessive
# ``X++`` / ``X*+`` that would skip that backtracking: Python 3.11.0-3.11.4, Debian 12's
# python3 among them, match those wrongly (gh-100061, gh-106052).
_DOMAINLABEL = r"[A-Za-z0-9]+(?:[\-_]+[A-Za-z0-9]+)*"
_TOPLABEL = r"[A-Za-z][A-Za-z0-9]*(?:[\-_]+[A-Za-z0-9]+)*"
HOSTNAME = rf"(?:{_DOMAINLABEL}\.)*{_TOPLABEL}\.?"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_HOSTNAME_RE = re.compile(HOSTNAME)
_IPV4_RE = re.compile(IPV4)
_DOTTED_RE = re.compile(r"[0-9.]+")
_URI_PARAM_RE = re.compile(r";([^;=]*)(?:=([^;]*))?")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_ESCAPES_RE = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_TEL_GLOBAL_RE = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")
_TEL_LOCAL_RE = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")
_TEL_PARAM_RE = re.compile(r"[A-Za-z0-9\-]+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+)?")
_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")

# RFC 3261 §19.1.4: these parameters must match when present in either URI.
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def _decode_escapes(match: re.Match[str]) -> str:
    raw = bytes.fromhex(match.group(0).replace("%", ""))
    try:
        return raw.decode()
    except UnicodeDecodeError:  # not UTF-8 (e.g. %00 or a lone %C3): one character per octet
        return raw.decode("latin-1")


def unescape(text: str, raw: str | None = None) -> str:
    """Decode %HH escapes (RFC 3261 §19.1.2, UTF-8 where the octets are UTF-8);
    a bad escape is a :class:`ParseError` naming ``raw`` (the whole URI) or ``text``."""
    if "%" not in text:
        return text
    if text.count("%") != len(_ESCAPE_RE.findall(text)):
        raise ParseError("Bad escape in URI", line=text if raw is None else raw)
    return _ESCAPES_RE.sub(_decode_escapes, text)


_UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"
_USER_SAFE = frozenset(_UNRESERVED + "&=+$,;?/")
_PARAM_SAFE = frozenset(_UNRESERVED + "[]/:&+$")


def escape(text: str, safe: frozenset[str] = _USER_SAFE) -> str:
    """Escape the characters of ``text`` not allowed unescaped in a URI user part
    (or, with another ``safe`` set, in another URI component)."""
    return "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def _parse_params(text: str, raw: str) -> dict[str, str | None]:
    """uri-parameters (§19.1.1): names lower-cased; names and values unescaped once
    (RFC 4475 §3.1.1.3: ``v%61lue%25%34%31`` is ``value%41``)."""
    if not text:
        return {}
    params: dict[str, str | None] = {}
    escaped = "%" in text
    for name, value in _URI_PARAM_RE.findall(text):
        if not name:
            raise ParseError("Empty URI parameter", line=raw)
        if escaped:
            name, value = unescape(name, raw), unescape(value, raw)
        params[name.lower()] = value if value else None
    return params


def _format_params(params: Mapping[str, str | None]) -> str:
    return "".join(
        f";{escape(k, _PARAM_SAFE)}" if v is None else f";{escape(k, _PARAM_SAFE)}={escape(v, _PARAM_SAFE)}"
        for k, v in params.items()
    )


def check_host(host: str, raw: str) -> str:
    """Validate a host: hostname, IPv4address or IPv6reference (RFC 3261 §25.1, RFC 5118 §4.2)."""
    if host.startswith("["):
        if not host.endswith("]") or not _is_ipv6(host[1:-1]):
            raise ParseError("Bad IPv6 reference", line=raw)
        return host
    if _DOTTED_RE.fullmatch(host):
        if not _IPV4_RE.fullmatch(host):
            raise ParseError("Bad IPv4 address", line=raw)
        return host
    if not _HOSTNAME_RE.fullmatch(host):
        raise ParseError("Bad host name", line=raw)
    return host


def _is_ipv6(text: str) -> bool:
    if "%" in text:  # zone identifiers have no place in SIP (RFC 5118 §4.2)
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def is_ip_address(text: str) -> bool:
    """IPv4address / IPv6address / IPv6reference: a Via received= value (RFC 3261 §20.42, RFC 5118 §4.5)."""
    if text.startswith("[") and text.endswith("]"):
        return _is_ipv6(text[1:-1])
    if ":" in text:
        return _is_ipv6(text)
    return _IPV4_RE.fullmatch(text) is not None


def _host_key(host: str) -> str:
    """Host for comparison: case-insensitive; IPv6 references by address (RFC 5954 §4)."""
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:  # pragma: no cover - validated at parse time
            return host.lower()
    return host.lower()


@dataclass(slots=True, eq=False, init=False)
class SipURI:
    """A sip: or sips: URI (RFC 3261 §19.1.1)."""

    host: str
    user: str | None
    port: int | None
    params: Mapping[str, str | None]
    headers: str | None
    password: str | None
    scheme: str
    raw: str | None = field(repr=False)

    def __init__(
        self, host: str, user: str | None = None, port: int | None = None,
        params: Mapping[str, str | None] | None = None, headers: str | None = None,
        password: str | None = None, scheme: str = "sip", raw: str | None = None
    ) -> None:
        self.host = host
        self.user = user
        self.port = port
        self.params = {} if params is None else params
        self.headers = headers
        self.password = password
        self.scheme = scheme
        self.raw = raw

    @classmethod
    def parse(cls, text: str, scheme: str, rest: str) -> SipURI:
        m = _SIP_RE.fullmatch(rest)
        if m is None:
            raise ParseError("Bad SIP URI", line=text)
        user, password, host, port_s, params_s, headers = m.groups()
        for part in (user, password, headers):
            if part is not None and "%" in part:
                unescape(part, text)  # validates the escapes
        port = None
        if port_s is not None:
            port = int(port_s)
            if port > 65535:
                raise ParseError("Bad port in URI", line=text)
        return cls(
            host=check_host(host, text),
            user=user,
            port=port,
            params=_parse_params(params_s, text),
            headers=headers,
            password=password,
            scheme=scheme.lower(),
            raw=text,
        )

    def replace(self, **changes: Any) -> SipURI:
        """Copy with ``changes`` applied; the copy serializes canonically."""
        values: dict[str, Any] = {
            "host": self.host,
            "user": self.user,
            "port": self.port,
            "params": dict(self.params),
            "headers": self.headers,
            "password": self.password,
            "scheme": self.scheme,
        }
        values.update(changes)
        return SipURI(**values)

    def param(self, name: str) -> str | None:
        return self.params.get(name)

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def aor(self) -> str:
        """Address of record form: scheme:user@host (RFC 3261 §10.3 step 5)."""
        user = f"{unescape(self.user)}@" if self.user else ""
        return f"{self.scheme}:{user}{self.host.lower()}"

    def __str__(self) -> str:
        if self.raw is not None:
            return self.raw
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(_format_params(self.params))
        if self.headers is not None:
            out.append("?" + self.headers)
        return "".join(out)

    def _headers_key(self) -> frozenset[tuple[str, str]]:
        if not self.headers:
            return frozenset()
        items = []
        for part in self.headers.split("&"):
            name, _, value = part.partition("=")
            items.append((unescape(name).lower(), unescape(value)))
        return frozenset(items)

    def __eq__(self, other: object) -> bool:
        """RFC 3261 §19.1.4 URI comparison."""
        if not isinstance(other, SipURI):
            return NotImplemented
        if self.scheme != other.scheme or self.port != other.port:
            return False
        if _host_key(self.host) != _host_key(other.host):
            return False
        su = unescape(self.user) if self.user is not None else None
        ou = unescape(other.user) if other.user is not None else None
        if su != ou:
            return False
        sp = unescape(self.password) if self.password is not None else None
        op = unescape(other.password) if other.password is not None else None
        if sp != op:
            return False
        for name in _STRICT_PARAMS:
            a, b = self.params.get(name), other.params.get(name)
            if (name in self.params) != (name in other.params):
                return False
            if (a or "").lower() != (b or "").lower():
                return False
        for name, value in self.params.items():
            if name in other.params and name not in _STRICT_PARAMS:
                ov = other.params[name]
                if (value or "").lower() != (ov or "").lower():
                    return False
        return self._headers_key() == other._headers_key()

    def __hash__(self) -> int:
        return hash((self.scheme, _host_key(self.host), self.port, unescape(self.user or "")))


@dataclass(slots=True, eq=False)
class TelURI:
    """A tel: URI (RFC 3966 §3)."""

    number: str
    params: Mapping[str, str | None] = field(default_factory=dict)
    raw: str | None = field(default=None, repr=False)

    @property
    def scheme(self) -> str:
        return "tel"

    @classmethod
    def parse(cls, text: str, rest: str) -> TelURI:
        number, _, params_s = rest.partition(";")
        params: dict[str, str | None] = {}
        if params_s:
            for item in params_s.split(";"):
                if not _TEL_PARAM_RE.fullmatch(item):
                    raise ParseError("Bad tel URI parameter", line=text)
                name, eq, value = item.partition("=")
                params[name.lower()] = unescape(value, text) if eq else None
        if number.startswith("+"):
            if not _TEL_GLOBAL_RE.fullmatch(number):
                raise ParseError("Bad global number in tel URI", line=text)
        elif not _TEL_LOCAL_RE.fullmatch(number):
            raise ParseError("Bad tel URI number", line=text)
        elif "phone-context" not in params:
            raise ParseError("Local tel URI without phone-context", line=text)
        return cls(number=number, params=params, raw=text)

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1)."""
        return self.number.translate(_VISUAL_SEPARATORS).upper()

    def replace(self, **changes: Any) -> TelURI:
        values: dict[str, Any] = {"number": self.number, "params": dict(self.params)}
        values.update(changes)
        return TelURI(**values)

    def param(self, name: str) -> str | None:
        return self.params.get(name)

    def __str__(self) -> str:
        if self.raw is not None:
            return self.raw
        return f"tel:{self.number}{_format_params(self.params)}"

    def __eq__(self, other: object) -> bool:
        """RFC 3966 §4: separators ignored, parameters compared as a set."""
        if not isinstance(other, TelURI):
            return NotImplemented
        return self.digits == other.digits and _tel_params_key(self.params) == _tel_params_key(other.params)

    def __hash__(self) -> int:
        return hash(("tel", self.digits))


def _tel_params_key(params: Mapping[str, str | None]) -> dict[str, str]:
    """Parameters compared as a set, case-insensitively; a global-number phone-context
    without its visual separators (RFC 3966 §4)."""
    out: dict[str, str] = {}
    for name, value in params.items():
        text = (value or "").lower()
        if name == "phone-context" and text.startswith("+"):
            text = text.translate(_VISUAL_SEPARATORS)
        out[name] = text
    return out


@dataclass(frozen=True)
class AbsoluteURI:
    """A URI of another scheme, kept opaque (RFC 3261 §25.1 absoluteURI); ``scheme``
    lower-cased, ``str()`` the text as received."""

    scheme: str
    opaque: str
    raw: str | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return self.raw if self.raw is not None else f"{self.scheme}:{self.opaque}"

    def param(self, name: str) -> str | None:
        return None


URI = SipURI | TelURI | AbsoluteURI

def parse_valid_sip_uri(text: str) -> URI:
    """:func:`parse_uri` of a text the fast pattern of the header parsers already accepted
    (``headers.FAST_SIP_URI_RE``: sip/sips, valid host and port, no escapes, no headers):
    the same object, without checking again what that pattern checked."""
    scheme, _, rest = text.partition(":")
    lower = scheme.lower()
    m = _SIP_RE.fullmatch(rest) if lower in ("sip", "sips") else None
    if m is None:  # not a text of the fast pattern
        return parse_uri(text)
    user, password, host, port_s, params_s, headers = m.groups()
    if headers is not None or "%" in text:  # pragma: no cover - idem
        return parse_uri(text)
    port = int(port_s) if port_s is not None else None
    params = _parse_params(params_s, text) if params_s else {}
    return SipURI(host, user, port, params, None, password, lower, text)


def parse_uri(text: str) -> URI:
    """Parse a URI; sip/sips/tel are structured, other schemes kept opaque."""
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.fullmatch(scheme):
        raise ParseError("Bad URI", line=text)
    lower = scheme.lower()
    uri: URI
    if lower in ("sip", "sips"):
        uri = SipURI.parse(text, lower, rest)
    elif lower == "tel":
        uri = TelURI.parse(text, rest)
    else:
        if not rest or any(c.isspace() or c in '<>"' for c in rest):
            raise ParseError("Bad URI", line=text)
        uri = AbsoluteURI(lower, rest, text)
    return uri
