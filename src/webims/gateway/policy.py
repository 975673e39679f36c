"""Which registration modes a WIC may use: the ``modes`` and ``mode_rules`` settings.

The mode of one registration follows from what the WIC presents (see
:func:`presented_mode`), and policy decides whether that mode is allowed for
this WIC and this user:

- ``gateway.modes``: the modes offered at all;
- ``gateway.mode_rules``: ``"SELECTORS => MODES"``, first match wins; the modes of
  the matching rule (intersected with ``modes``) are the ones allowed. Selectors,
  all of which must match (comma-separated):

  - ``origin=https://partner.example`` — the WIC's web origin (the page it came from);
  - ``impu=sip:*@lab.ims.test`` — a glob over the address-of-record the WIC registers
    (the To URI of its REGISTER);
  - ``source=10.0.0.0/8`` — the WIC's IP address;
  - ``*`` — anything (a catch-all last rule).

  No rule matching: ``modes`` applies. Example: ``["origin=https://kiosk.example => pool",
  "impu=sip:*@corp.ims.test => ims-aka", "* => web-token web-login"]``.

What the WIC presents (:func:`presented_mode`):

- ``Authorization: Bearer <token>`` (RFC 8898): ``web-token`` (``pool`` when the token
  maps to a pool);
- ``Authorization: WebIMS-Password username="<IMPI>", password="<password>"`` over
  WSS: ``ims-digest-on-behalf`` (seed 004 §6.X.2.2.2);
- a ``webims_session`` cookie on the WebSocket upgrade (or a ``Cookie`` header in the
  REGISTER): ``web-login`` (``pool`` when the user is pooled);
- nothing, or ``Authorization: Digest`` (e.g. TS 24.229's initial ``response=""``): the
  IMS authenticates: ``ims-aka`` when the algorithm is AKAv1/AKAv2-MD5, ``ims-digest``
  otherwise (decided from the IMS challenge when the WIC names no algorithm).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from webims.config_checks import is_hostname  # noqa: F401  (kept for rule checks)
from webims.sip.auth_header import Credentials
from webims.transport import normalize_origin

from .settings import MODES

__all__ = ["PASSWORD_SCHEME", "Policy", "Presented", "Rule", "parse_rule"]

#: Our auth-scheme for handing the IMS password to the gateway (on-behalf digest mode).
PASSWORD_SCHEME = "WebIMS-Password"


@dataclass(frozen=True)
class Rule:
    origins: tuple[str, ...] = ()
    impus: tuple[str, ...] = ()
    sources: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    modes: tuple[str, ...] = ()

    def matches(self, origin: str | None, aor: str, source: str) -> bool:
        if self.origins:
            key = normalize_origin(origin) if origin else None
            if key is None or all(normalize_origin(o) != key for o in self.origins):
                return False
        if self.impus and not any(fnmatch.fnmatchcase(aor.lower(), p.lower()) for p in self.impus):
            return False
        if self.sources:
            try:
                addr = ipaddress.ip_address(source)
            except ValueError:
                return False
            if not any(addr in net for net in self.sources):
                return False
        return True


def parse_rule(text: str) -> Rule:
    """``"origin=https://a.example, impu=sip:*@x => web-token pool"``; raises ValueError."""
    left, arrow, right = text.partition("=>")
    if not arrow:
        raise ValueError("expected 'SELECTORS => MODES'")
    modes = tuple(right.split())
    if not modes:
        raise ValueError("no mode after '=>'")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (modes: {', '.join(MODES)})")
    origins: list[str] = []
    impus: list[str] = []
    sources: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for part in (p.strip() for p in left.split(",")):
        if part == "*":
            continue
        name, eq, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if not eq or not value:
            raise ValueError(f"bad selector {part!r}: origin=..., impu=..., source=... or *")
        if name == "origin":
            if normalize_origin(value) is None:
                raise ValueError(f"bad origin {value!r}")
            origins.append(value)
        elif name == "impu":
            impus.append(value)
        elif name == "source":
            sources.append(ipaddress.ip_network(value, strict=False))
        else:
            raise ValueError(f"unknown selector {name!r}: origin, impu, source or *")
    return Rule(tuple(origins), tuple(impus), tuple(sources), modes)


class Policy:
    """``allowed(origin, aor, source)`` -> the modes this WIC may register with."""

    def __init__(self, modes: Iterable[str], rules: Iterable[str] = ()) -> None:
        self.modes = tuple(modes)
        self.rules = [parse_rule(r) for r in rules]

    def allowed(self, origin: str | None, aor: str, source: str) -> tuple[str, ...]:
        for rule in self.rules:
            if rule.matches(origin, aor, source):
                return tuple(m for m in rule.modes if m in self.modes)
        return self.modes


@dataclass(slots=True, init=False, unsafe_hash=True)
class Presented:
    """What a WIC's request offers as credentials (its ``kind`` picks the mode, :mod:`.modes`)."""

    kind: Final[str]  # "bearer" | "password" | "session" | "digest" | "none"
    token: Final[str | None]
    username: Final[str | None]
    password: Final[str | None]
    credentials: Final[Credentials | None]
    raw: Final[str | None]  # the Authorization value ``credentials`` was parsed from

    def __init__(
        self,
        kind: str,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        credentials: Credentials | None = None,
        raw: str | None = None,
    ) -> None:
        self.kind = kind
        self.token = token
        self.username = username
        self.password = password
        self.credentials = credentials
        self.raw = raw
