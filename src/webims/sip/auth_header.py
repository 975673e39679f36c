"""Authentication header values: challenges and credentials (RFC 3261 §22, §25.1;
RFC 7235 §2.1 auth-param / token68; RFC 7616 Digest; RFC 6750 §2.1, §3 and
RFC 8898 Bearer).

Malformed values raise :class:`DigestError`, a :class:`~webims.sip.errors.ParseError`
(status 400, the offending value as ``line``); nothing else escapes the parsers.
``format()`` of a parsed value reproduces it byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Self

from .errors import ParseError

__all__ = [
    "AuthParam",
    "Challenge",
    "Credentials",
    "DigestError",
    "parse_challenge",
    "parse_challenges",
    "parse_credentials",
]


class DigestError(ParseError):
    """A malformed challenge or credentials value, or a challenge that cannot be answered.

    A subclass of :class:`ParseError`: ``status`` is 400 and ``line`` the value.
    """

    def __init__(self, reason: str, line: str | None = None) -> None:
        super().__init__(reason, 400, line)


# --- lexical layer (RFC 7230 §3.2.6, RFC 3261 §25.1, RFC 7235 §2.1) -----------------------------

_WS = re.compile(r"(?:[ \t]|\r\n[ \t])*")  # LWS, folded lines included
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_NC = re.compile(r"[0-9A-Fa-f]{8}")


def _skip_ws(s: str, i: int) -> int:
    m = _WS.match(s, i)
    return m.end() if m else i


_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\r\n])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _quoted(s: str, i: int) -> tuple[str, int]:
    """quoted-string at ``s[i] == '"'`` (RFC 3261 §25.1): (unescaped value, index after it)."""
    m = _QUOTED.match(s, i)
    if m is None:
        raise DigestError("unterminated quoted-string, or a control character in it", s)
    return _QUOTED_PAIR.sub(r"\1", m.group(1)), m.end()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True, slots=True)
class AuthParam:
    """One auth-param; ``quoted`` records the form it had (or should have) on the wire."""

    name: str
    value: str
    quoted: bool = True

    def format(self) -> str:
        if not self.quoted and _TOKEN.fullmatch(self.value):
            return f"{self.name}={self.value}"
        return f'{self.name}="{_escape(self.value)}"'


def _opt(*items: tuple[str, str | None, bool]) -> list[AuthParam]:
    """AuthParams for the (name, value, quoted) items whose value is not None."""
    return [AuthParam(n, v, q) for n, v, q in items if v is not None]


@dataclass(frozen=True, slots=True)
class _AuthValue:
    """A challenge or credentials: an auth-scheme with auth-params or a token68."""

    scheme: str
    params: tuple[AuthParam, ...] = ()
    token68: str | None = None

    @property
    def realm(self) -> str | None:
        return self.param("realm")

    @property
    def nonce(self) -> str | None:
        return self.param("nonce")

    @property
    def opaque(self) -> str | None:
        return self.param("opaque")

    @property
    def algorithm(self) -> str | None:
        return self.param("algorithm")

    def param(self, name: str) -> str | None:
        """The value of parameter ``name`` (case-insensitive), or None."""
        lname = name.lower()
        return next((p.value for p in self.params if p.name.lower() == lname), None)

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"

    @property
    def is_bearer(self) -> bool:
        return self.scheme.lower() == "bearer"

    def without(self, *names: str) -> Self:
        """A copy without the named parameters (e.g. the eP-CSCF dropping ``ck``/``ik``)."""
        drop = {n.lower() for n in names}
        return replace(self, params=tuple(p for p in self.params if p.name.lower() not in drop))

    def with_param(self, name: str, value: str, quoted: bool = True) -> Self:
        """A copy with ``name`` set to ``value``, in place if present, else appended."""
        new = AuthParam(name, value, quoted)
        if self.param(name) is None:
            return replace(self, params=(*self.params, new))
        lname = name.lower()
        return replace(self, params=tuple(new if p.name.lower() == lname else p for p in self.params))

    def format(self) -> str:
        """The header value; ``parse_*(x.format()).format() == x.format()``."""
        if self.token68 is not None:
            return f"{self.scheme} {self.token68}"
        if not self.params:
            return self.scheme
        return self.scheme + " " + ", ".join(p.format() for p in self.params)


@dataclass(frozen=True, slots=True)
class Challenge(_AuthValue):
    """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` value (RFC 3261 §20.44, §20.27).

    ``ck`` and ``ik`` are the IMS keys the S-CSCF gives the P-CSCF (TS 24.229 §7.2A.1).
    """

    @property
    def ck(self) -> str | None:
        return self.param("ck")

    @property
    def ik(self) -> str | None:
        return self.param("ik")

    @property
    def scope(self) -> str | None:
        return self.param("scope")

    @property
    def qop_options(self) -> tuple[str, ...]:
        """The qop values offered (RFC 7616 §3.3), lower-cased."""
        return tuple(q.strip().lower() for q in (self.param("qop") or "").split(",") if q.strip())

    @property
    def stale(self) -> bool:
        return (self.param("stale") or "").lower() == "true"

    @property
    def domain(self) -> tuple[str, ...]:
        return tuple((self.param("domain") or "").split())

    @classmethod
    def digest(
        cls,
        realm: str,
        nonce: str,
        *,
        algorithm: str | None = None,
        qop: Iterable[str] = ("auth",),
        opaque: str | None = None,
        stale: bool = False,
        domain: Iterable[str] = (),
        extra: Iterable[AuthParam] = (),
    ) -> Challenge:
        """A Digest challenge (RFC 7616 §3.3); ``extra`` e.g. the IMS ``ck``/``ik``."""
        params = _opt(
            ("realm", realm, True),
            ("nonce", nonce, True),
            ("algorithm", algorithm, False),
            ("qop", ",".join(qop) or None, True),
            ("opaque", opaque, True),
            ("stale", "true" if stale else None, False),
            ("domain", " ".join(domain) or None, True),
        )
        return cls("Digest", (*params, *extra))

    @classmethod
    def bearer(
        cls,
        realm: str | None = None,
        *,
        scope: str | None = None,
        error: str | None = None,
        error_description: str | None = None,
        extra: Iterable[AuthParam] = (),
    ) -> Challenge:
        """A Bearer challenge (RFC 6750 §3, RFC 8898 §2.1)."""
        params = _opt(
            ("realm", realm, True),
            ("scope", scope, True),
            ("error", error, True),
            ("error_description", error_description, True),
        )
        return cls("Bearer", (*params, *extra))


@dataclass(frozen=True, slots=True)
class Credentials(_AuthValue):
    """An ``Authorization`` / ``Proxy-Authorization`` value (RFC 3261 §20.7, §20.28).

    ``auts`` is the base64 AUTS of an AKA resynchronisation (RFC 3310 §3.4);
    ``integrity_protected`` the P-CSCF's mark (TS 24.229 §7.2A.2, ``auth-done``
    for trusted-node authentication); ``token`` the Bearer token (RFC 6750 §2.1).
    """

    @property
    def username(self) -> str | None:
        return self.param("username")

    @property
    def uri(self) -> str | None:
        return self.param("uri")

    @property
    def response(self) -> str | None:
        return self.param("response")

    @property
    def cnonce(self) -> str | None:
        return self.param("cnonce")

    @property
    def auts(self) -> str | None:
        return self.param("auts")

    @property
    def integrity_protected(self) -> str | None:
        return self.param("integrity-protected")

    @property
    def qop(self) -> str | None:
        qop = self.param("qop")
        return qop.lower() if qop is not None else None

    @property
    def nc(self) -> int | None:
        """The nonce count, or None if absent or not 8 hex digits."""
        value = self.param("nc")
        return int(value, 16) if value is not None and _NC.fullmatch(value) else None

    @property
    def token(self) -> str | None:
        return self.token68 if self.is_bearer else None

    @classmethod
    def digest(
        cls,
        username: str,
        realm: str,
        nonce: str,
        uri: str,
        response: str,
        *,
        algorithm: str | None = None,
        cnonce: str | None = None,
        opaque: str | None = None,
        qop: str | None = None,
        nc: int | None = None,
        auts: str | None = None,
        integrity_protected: str | None = None,
        extra: Iterable[AuthParam] = (),
    ) -> Credentials:
        """Digest credentials (RFC 7616 §3.4) in a fixed directive order."""
        params = _opt(
            ("username", username, True),
            ("realm", realm, True),
            ("nonce", nonce, True),
            ("uri", uri, True),
            ("response", response, True),
            ("algorithm", algorithm, False),
            ("cnonce", cnonce, True),
            ("opaque", opaque, True),
            ("qop", qop, False),
            ("nc", f"{nc:08x}" if nc is not None else None, False),
            ("auts", auts, True),
            ("integrity-protected", integrity_protected, True),
        )
        return cls("Digest", (*params, *extra))

    @classmethod
    def bearer(cls, token: str) -> Credentials:
        """``Bearer <token>`` (RFC 6750 §2.1); ``token`` must be a b64token."""
        if not _TOKEN68.fullmatch(token):
            raise DigestError("bearer token is not a b64token", token)
        return cls("Bearer", (), token)


# --- parser -----------------------------------------------------------------------------------------


def _parse_params(s: str, i: int, many: bool) -> tuple[list[AuthParam], int]:
    """auth-params from ``i``; stops at the end, or (``many``) where the next challenge starts."""
    params: list[AuthParam] = []
    seen: set[str] = set()
    n = len(s)
    need_comma = after_comma = False
    while True:
        i = _skip_ws(s, i)
        if i >= n:
            return params, i
        if s[i] == ",":  # empty list elements are allowed (RFC 7230 §7)
            i += 1
            need_comma, after_comma = False, True
            continue
        if need_comma:
            raise DigestError("expected ',' between auth-params", s)
        m = _TOKEN.match(s, i)
        if m is None:
            raise DigestError(f"unexpected character {s[i]!r}", s)
        j = _skip_ws(s, m.end())
        if j >= n or s[j] != "=":
            if many and after_comma:
                return params, i  # a new auth-scheme begins here
            raise DigestError(f"missing '=' after {m.group()!r}", s)
        j = _skip_ws(s, j + 1)
        if j < n and s[j] == '"':
            value, i = _quoted(s, j)
            quoted = True
        else:
            v = _TOKEN.match(s, j)
            if v is None:
                raise DigestError(f"missing value for {m.group()!r}", s)
            value, i, quoted = v.group(), v.end(), False
        name = m.group()
        if name.lower() in seen:  # RFC 7235 §2.1: each parameter name only once
            raise DigestError(f"duplicate parameter {name!r}", s)
        seen.add(name.lower())
        params.append(AuthParam(name, value, quoted))
        need_comma = True


_LWS = r"(?:[ \t]|\r\n[ \t])*"
_PARAM = re.compile(
    rf"{_LWS}({_TOKEN.pattern}){_LWS}={_LWS}"
    rf"(?:{_QUOTED.pattern}|({_TOKEN.pattern})){_LWS}(,|\Z)"
)


def _parse_params_fast(s: str, i: int) -> list[AuthParam] | None:
    """The common case of :func:`_parse_params` for one value: ``name=value`` pairs separated by
    single commas, each name once. One regular expression per parameter; ``None`` when the text
    is anything else (empty list elements, errors), for :func:`_parse_params` to parse or reject
    with its precise reason."""
    params: list[AuthParam] = []
    match = _PARAM.match
    while True:
        m = match(s, i)
        if m is None:
            return None
        name, quoted, token, comma = m.groups()
        if quoted is None:
            params.append(AuthParam(name, token, False))
        else:
            value = _QUOTED_PAIR.sub(r"\1", quoted) if "\\" in quoted else quoted
            params.append(AuthParam(name, value, True))
        i = m.end()
        if not comma:
            break
    if len({p.name.lower() for p in params}) != len(params):
        return None  # a duplicate: the general parser names it
    return params


def _parse_values(value: str, many: bool) -> list[tuple[str, tuple[AuthParam, ...], str | None]]:
    s = value
    n = len(s)
    out: list[tuple[str, tuple[AuthParam, ...], str | None]] = []
    i = _skip_ws(s, 0)
    while True:
        m = _TOKEN.match(s, i)
        if m is None:
            raise DigestError("expected an auth-scheme", s)
        scheme, i = m.group(), m.end()
        j = _skip_ws(s, i)
        if j == i and j < n and not (many and s[j] == ","):
            raise DigestError(f"expected whitespace after {scheme!r}", s)
        i = j
        t = _TOKEN68.match(s, i)
        after = _skip_ws(s, t.end()) if t else i
        if t is not None and (after >= n or s[after] == ","):
            if scheme.lower() == "digest":
                raise DigestError("Digest takes auth-params, not a token68 (missing '=')", s)
            out.append((scheme, (), t.group()))
            i = after + 1 if after < n else after
            if i < n and not many:
                raise DigestError("more than one value", s)
        else:
            fast = None if many else _parse_params_fast(s, i)
            if fast is None:
                params, i = _parse_params(s, i, many)
            else:
                params, i = fast, n
            out.append((scheme, tuple(params), None))
        i = _skip_ws(s, i)
        while i < n and s[i] == ",":
            i = _skip_ws(s, i + 1)
        if i >= n:
            return out


def _check_digest_credentials(c: Credentials, value: str) -> None:
    nc = c.param("nc")
    if nc is not None and not _NC.fullmatch(nc):
        raise DigestError("nc must be 8 hex digits (RFC 2617 §3.2.2)", value)


def parse_challenge(value: str) -> Challenge:
    """One challenge, as SIP carries in each WWW-/Proxy-Authenticate header field."""
    (scheme, params, token68), *rest = _parse_values(value, many=False)
    if rest:
        raise DigestError("more than one challenge", value)
    return Challenge(scheme, params, token68)


def parse_challenges(value: str) -> list[Challenge]:
    """Every challenge of a comma-separated HTTP ``WWW-Authenticate`` value (RFC 7235 §4.1)."""
    return [Challenge(s, p, t) for s, p, t in _parse_values(value, many=True)]


def parse_credentials(value: str) -> Credentials:
    """An Authorization / Proxy-Authorization value (Digest, Bearer or another scheme)."""
    (scheme, params, token68), *rest = _parse_values(value, many=False)
    if rest:
        raise DigestError("more than one credentials value", value)
    creds = Credentials(scheme, params, token68)
    if creds.is_digest:
        _check_digest_credentials(creds, value)
    return creds
