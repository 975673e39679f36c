"""The identity a verified token or web session stands for, and destination rules.

Seeds 004 §6.X.2.2.3 step 6 / §6.X.2.2.5 step 6 and 000 §6.2.2.4.2 step 1: the
gateway (Web Signalling Translator / eP-CSCF) verifies the token or session and
maps the web identity onto IMS identities (IMPI, IMPUs, or one IMPU of a pool).
:class:`Identity` is that mapping, whatever produced it (a local JWT, an external
OIDC token, introspection, or a session cookie).

Scopes (what the token allows): ``register`` (REGISTER), ``call`` (INVITE),
``message`` (MESSAGE). Destination rules travel in the ``dest`` claim::

    "dest": {"allow": ["tel:+1*", "sip:*@ims.test"], "deny": ["tel:+1900*", "international"],
             "cc": "1"}

:func:`check_destination` applies them: a matching ``deny`` refuses; then, if
``allow`` is not empty, the target must match one of them. Patterns are globs
(``*``, ``?``) over the normalised target: ``tel:+<digits>`` for telephone numbers
(tel URIs without visual separators, RFC 3966 §5.1.1; SIP URIs with ``user=phone``
or a ``+digits`` user part, RFC 3261 §19.1.6), else ``sip:user@host`` in lower case.
The keyword ``international`` matches a global number whose country code is not
``cc`` (every global number when ``cc`` is empty: fail closed) and numbers dialled
with the ``00`` international prefix.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

__all__ = [
    "NO_RULES",
    "SCOPES",
    "DestinationDecision",
    "DestinationRules",
    "Identity",
    "check_destination",
    "normalize_target",
]

SCOPES = ("register", "call", "message")
"""Scopes a token may carry for IMS services (plus ``pool`` for server clients)."""

INTERNATIONAL = "international"
_SEPARATORS = re.compile(r"[-.()\s]")
_DIGITS = re.compile(r"\+?[0-9*#]+")
_PATTERN_OK = re.compile(r"[A-Za-z0-9+*?@.:;=_~!$&'%/-]+")

Source = Literal["token", "session", "introspection", "external"]


def normalize_target(uri: str) -> str | None:
    """The form destination rules are matched against (module docstring); None if unusable."""
    text = uri.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    scheme, sep, rest = text.partition(":")
    if not sep or not rest:
        return None
    scheme = scheme.lower()
    if scheme == "tel":
        number = _SEPARATORS.sub("", rest.split(";", 1)[0])
        return f"tel:{number}" if _DIGITS.fullmatch(number) else None
    if scheme not in ("sip", "sips"):
        return None
    rest = rest.split("?", 1)[0]
    userinfo, at, hostpart = rest.rpartition("@")
    params = hostpart.split(";")
    host = params[0].lower()
    host = host.split("]", 1)[0] + "]" if host.startswith("[") else host.split(":", 1)[0]
    if not host:
        return None
    if not at:
        return f"sip:{host}"
    user_params = userinfo.split(";")
    user = user_params[0].split(":", 1)[0]  # drop a password
    phone = any(p.lower() == "user=phone" for p in params[1:])
    digits = _SEPARATORS.sub("", user)
    if (phone or digits.startswith("+")) and _DIGITS.fullmatch(digits):
        return f"tel:{digits}"
    return f"sip:{user}@{host}"


def _is_international(target: str, cc: str) -> bool:
    if not target.startswith("tel:"):
        return False
    number = target[4:]
    if number.startswith("00"):
        return True
    if not number.startswith("+"):
        return False  # a local number (RFC 3966 phone-context)
    return not cc or not number[1:].startswith(cc)


@dataclass(frozen=True)
class DestinationDecision:
    """Outcome of :func:`check_destination`; truthy when allowed."""

    allowed: bool
    reason: str
    rule: str | None = None

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class DestinationRules:
    """Allow/deny patterns (module docstring) and the home country code for ``international``."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    cc: str = ""

    def __post_init__(self) -> None:
        for pattern in (*self.allow, *self.deny):
            if pattern != INTERNATIONAL and not (":" in pattern and _PATTERN_OK.fullmatch(pattern)):
                raise ValueError(
                    f"bad destination pattern {pattern!r}: expected 'international' or a URI glob "
                    "such as 'tel:+1900*' or 'sip:*@ims.test'"
                )
        if self.cc and not self.cc.isdigit():
            raise ValueError(f"bad country code {self.cc!r}: digits only, e.g. '1' or '33'")

    @property
    def empty(self) -> bool:
        return not self.allow and not self.deny

    def to_claim(self) -> dict[str, Any] | None:
        if self.empty:
            return None
        claim: dict[str, Any] = {}
        if self.allow:
            claim["allow"] = list(self.allow)
        if self.deny:
            claim["deny"] = list(self.deny)
        if self.cc:
            claim["cc"] = self.cc
        return claim

    @classmethod
    def from_claim(cls, claim: object) -> DestinationRules:
        """Parse a ``dest`` claim; raises ValueError if malformed."""
        if claim is None:
            return NO_RULES if cls is DestinationRules else cls()
        if not isinstance(claim, Mapping):
            raise ValueError("dest claim is not an object")

        def strings(name: str) -> tuple[str, ...]:
            value = claim.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"dest.{name} is not a list of strings")
            return tuple(value)

        cc = claim.get("cc", "")
        if not isinstance(cc, str):
            raise ValueError("dest.cc is not a string")
        return cls(strings("allow"), strings("deny"), cc)

    def _matches(self, pattern: str, target: str) -> bool:
        if pattern == INTERNATIONAL:
            return _is_international(target, self.cc)
        norm = pattern
        if pattern.lower().startswith("tel:"):
            norm = "tel:" + _SEPARATORS.sub("", pattern[4:])
        elif pattern.lower().startswith(("sip:", "sips:")):
            norm = "sip:" + pattern.split(":", 1)[1].lower()
        return fnmatch.fnmatchcase(target if target.startswith("tel:") else target.lower(), norm)

    def check(self, target_uri: str) -> DestinationDecision:
        target = normalize_target(target_uri)
        if target is None:
            return DestinationDecision(False, f"destination {target_uri!r} is not a sip:, sips: or tel: URI")
        for pattern in self.deny:
            if self._matches(pattern, target):
                what = "international numbers" if pattern == INTERNATIONAL else repr(pattern)
                return DestinationDecision(False, f"destination {target} is denied by rule {what}", pattern)
        if self.allow:
            for pattern in self.allow:
                if self._matches(pattern, target):
                    return DestinationDecision(True, f"destination {target} allowed by {pattern!r}", pattern)
            return DestinationDecision(False, f"destination {target} matches no allowed pattern")
        return DestinationDecision(True, f"destination {target} allowed")


_NO_CLAIMS: Mapping[str, Any] = MappingProxyType({})

#: No destination rules (frozen: one shared instance).
NO_RULES = DestinationRules()


def _strings(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return tuple(map(str, value))
    return (str(value),)


@functools.lru_cache(maxsize=256)
def _scope_set(scope: str) -> frozenset[str]:
    """The scopes of a ``scope`` claim (RFC 9068 §2.2.3: space-separated): the same few strings."""
    return frozenset(scope.split())


@dataclass(slots=True, init=False, unsafe_hash=True)
class Identity:
    """Who a verified token / session is, in IMS terms (TS 23.228 IMPI/IMPU)."""

    sub: Final[str]
    issuer: Final[str]
    expires_at: Final[float]
    scopes: Final[frozenset[str]]
    client_id: Final[str | None]
    impi: Final[str | None]
    impus: Final[tuple[str, ...]]
    pool: Final[str | None]
    allocation: Final[str | None]  # pool allocation (lease) id; release/renew it via PoolManager
    jti: Final[str | None]
    dest: Final[DestinationRules]
    source: Final[Source]
    claims: Final[Mapping[str, Any]]

    def __init__(
        self, sub: str, issuer: str, expires_at: float, scopes: frozenset[str] = frozenset(),
        client_id: str | None = None, impi: str | None = None, impus: tuple[str, ...] = (),
        pool: str | None = None, allocation: str | None = None, jti: str | None = None,
        dest: DestinationRules = NO_RULES, source: Source = "token",
        claims: Mapping[str, Any] | None = None
    ) -> None:
        self.sub = sub
        self.issuer = issuer
        self.expires_at = expires_at
        self.scopes = scopes
        self.client_id = client_id
        self.impi = impi
        self.impus = impus
        self.pool = pool
        self.allocation = allocation
        self.jti = jti
        self.dest = dest
        self.source = source
        self.claims = _NO_CLAIMS if claims is None else claims

    @property
    def impu(self) -> str | None:
        """The default IMPU (the first one), e.g. for P-Asserted-Identity."""
        return self.impus[0] if self.impus else None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @classmethod
    def from_claims(
        cls, claims: Mapping[str, Any], source: Source = "token", *, keep_claims: bool = True
    ) -> Identity:
        """Build from RFC 9068 claims plus the webims IMS claims (impi, impu, pool, alc, dest);
        ``keep_claims=False``: without a copy of the raw claims (``claims`` left empty)."""
        get = claims.get
        scope = get("scope", "")
        scopes = _scope_set(scope) if isinstance(scope, str) else frozenset(_strings(scope))
        impi, client_id, pool, alc, jti = get("impi"), get("client_id"), get("pool"), get("alc"), get("jti")
        return cls(
            sub=str(get("sub", "")),
            issuer=str(get("iss", "")),
            expires_at=float(get("exp", 0)),
            scopes=scopes,
            client_id=str(client_id) if client_id is not None else None,
            impi=str(impi) if impi is not None else None,
            impus=_strings(get("impu")),
            pool=str(pool) if pool is not None else None,
            allocation=str(alc) if alc is not None else None,
            jti=str(jti) if jti is not None else None,
            dest=DestinationRules.from_claim(get("dest")),
            source=source,
            claims=MappingProxyType(dict(claims)) if keep_claims else _NO_CLAIMS,
        )


def check_destination(
    identity: Identity | Mapping[str, Any], target_uri: str, *, scope: str | None = None
) -> DestinationDecision:
    """May this identity (or raw token claims) reach ``target_uri``?

    The gateway calls it for each out-of-dialog request: ``scope="call"`` for
    INVITE, ``scope="message"`` for MESSAGE (the token must then carry that scope),
    then the ``dest`` rules decide. Returns a truthy/falsy decision with a reason.
    """
    ident = identity if isinstance(identity, Identity) else Identity.from_claims(identity)
    if scope is not None and scope not in ident.scopes:
        return DestinationDecision(False, f"token does not grant scope {scope!r}")
    return ident.dest.check(target_uri)
