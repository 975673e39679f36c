"""External identity providers (any OIDC / OAuth 2.0 issuer) and claim mapping rules.

Seed 004 §6.X.2.2.3: "web based authentication (e.g. oAUTH, SAML, etc) using
non-IMS identity". A provider is trusted by issuer, JWKS URL, audience and
algorithms; a :class:`ClaimMapping` turns its token's claims into an IMS identity.
Providers are configured in a TOML file (``auth.providers_file``)::

    [[provider]]
    issuer = "https://login.example.com"
    jwks_uri = "https://login.example.com/.well-known/jwks.json"
    audience = ["webims"]
    algorithms = ["RS256", "ES256"]       # never none, never HS*
    typ = ["at+jwt", "JWT", ""]           # accepted JWS typ values; "" = no typ header

    [provider.mapping]
    subject = "sub"                        # the web identity
    impi = "{sub}@ims.test"                # templates over claims; {email:local} = before '@'
    impus = ["sip:{preferred_username}@ims.test"]
    # or: user_claim = "email"   -> the local webims user of that name decides
    # or: pool = "web"           -> the gateway allocates one IMPU of pool "web"
    scopes = ["register", "call", "message"]
    scope_claim = "scope"                  # if set: granted = scopes ∩ the token's scopes
    required = { email_verified = "true" } # claim (as text) must equal the value
    deny = ["tel:+1900*", "international"]
    cc = "1"

Template values may only contain ``A-Z a-z 0-9 . _ ~ + -`` (a claim that would
inject other URI syntax makes the token invalid).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .identity import SCOPES, DestinationRules

__all__ = ["ClaimMapping", "MappingError", "ProviderConfig", "load_providers"]

_TEMPLATE = re.compile(r"\{([A-Za-z0-9_.-]+)(?::(local|domain))?\}")
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._~+-]+")


class MappingError(ValueError):
    """The claims cannot be mapped to an IMS identity (the token is then invalid)."""


def _claim_text(claims: Mapping[str, Any], name: str) -> str | None:
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    return None


def render(template: str, claims: Mapping[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        value = _claim_text(claims, m.group(1))
        if value is None:
            raise MappingError(f"claim {m.group(1)!r} needed by {template!r} is missing")
        if m.group(2) == "local":
            value = value.split("@", 1)[0]
        elif m.group(2) == "domain":
            value = value.rpartition("@")[2]
        if not _SAFE_VALUE.fullmatch(value):
            raise MappingError(f"claim {m.group(1)!r} has characters not allowed in an IMS identity")
        return value

    return _TEMPLATE.sub(sub, template)


@dataclass(frozen=True)
class ClaimMapping:
    """How an external token's claims become an IMS identity (module docstring)."""

    subject: str = "sub"
    impi: str | None = None
    impus: tuple[str, ...] = ()
    user_claim: str | None = None
    pool: str | None = None
    scopes: tuple[str, ...] = SCOPES
    scope_claim: str | None = None
    required: Mapping[str, str] = field(default_factory=dict)
    dest: DestinationRules = field(default_factory=DestinationRules)

    def __post_init__(self) -> None:
        kinds = sum(x for x in (bool(self.impus), self.user_claim is not None, self.pool is not None))
        if kinds > 1:
            raise ValueError("mapping: use one of impus, user_claim or pool")
        if self.impi is not None and not self.impus:
            raise ValueError("mapping: impi needs impus")

    def granted_scopes(self, claims: Mapping[str, Any]) -> frozenset[str]:
        granted = set(self.scopes)
        if self.scope_claim is not None:
            raw = claims.get(self.scope_claim)
            offered = raw.split() if isinstance(raw, str) else [str(s) for s in raw or ()]
            granted &= set(offered)
        return frozenset(granted)

    def check_required(self, claims: Mapping[str, Any]) -> None:
        for name, want in self.required.items():
            if _claim_text(claims, name) != want:
                raise MappingError(f"claim {name!r} must be {want!r}")

    def subject_of(self, claims: Mapping[str, Any]) -> str:
        value = _claim_text(claims, self.subject)
        if not value:
            raise MappingError(f"subject claim {self.subject!r} is missing")
        return value


@dataclass(frozen=True)
class ProviderConfig:
    """One trusted external issuer."""

    issuer: str
    jwks_uri: str
    audience: tuple[str, ...]
    algorithms: tuple[str, ...] = ("ES256", "RS256")
    typ: tuple[str, ...] = ("at+jwt", "JWT", "")
    mapping: ClaimMapping = ClaimMapping()


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{where}: expected a string or a list of strings, got {value!r}")


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _url(value: Any, where: str) -> str:
    text = _str(value, where)
    parts = urlsplit(text)
    loopback = (parts.hostname or "") in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError(f"{where}: expected an https:// URL (http:// only on loopback), got {text!r}")
    return text


def _mapping(raw: Any, where: str) -> ClaimMapping:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a table")
    known = {
        "subject",
        "impi",
        "impus",
        "user_claim",
        "pool",
        "scopes",
        "scope_claim",
        "required",
        "allow",
        "deny",
        "cc",
    }
    for key in raw:
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key (expected one of {', '.join(sorted(known))})")
    required = raw.get("required", {})
    if not isinstance(required, Mapping):
        raise ValueError(f"{where}.required: expected a table of claim = value")
    scopes = _strs(raw.get("scopes", list(SCOPES)), f"{where}.scopes")
    for s in scopes:
        if s not in SCOPES:
            raise ValueError(f"{where}.scopes: unknown scope {s!r}")
    try:
        dest = DestinationRules(
            _strs(raw.get("allow", []), f"{where}.allow"),
            _strs(raw.get("deny", []), f"{where}.deny"),
            str(raw.get("cc", "")),
        )
        return ClaimMapping(
            subject=_str(raw.get("subject", "sub"), f"{where}.subject"),
            impi=_str(raw["impi"], f"{where}.impi") if "impi" in raw else None,
            impus=_strs(raw.get("impus", []), f"{where}.impus"),
            user_claim=_str(raw["user_claim"], f"{where}.user_claim") if "user_claim" in raw else None,
            pool=_str(raw["pool"], f"{where}.pool") if "pool" in raw else None,
            scopes=scopes,
            scope_claim=_str(raw["scope_claim"], f"{where}.scope_claim") if "scope_claim" in raw else None,
            required={str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in required.items()},
            dest=dest,
        )
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def parse_providers(doc: Mapping[str, Any]) -> list[ProviderConfig]:
    """Providers from a parsed TOML document; ValueError names the bad key."""
    items = doc.get("provider", [])
    if not isinstance(items, list):
        raise ValueError("provider: expected an array of tables ([[provider]])")
    out = []
    for i, raw in enumerate(items):
        where = f"provider[{i}]"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: expected a table")
        for key in raw:
            if key not in ("issuer", "jwks_uri", "audience", "algorithms", "typ", "mapping"):
                raise ValueError(f"{where}.{key}: unknown key")
        for key in ("issuer", "jwks_uri", "audience"):
            if key not in raw:
                raise ValueError(f"{where}.{key}: missing")
        algorithms = _strs(raw.get("algorithms", ["ES256", "RS256"]), f"{where}.algorithms")
        for alg in algorithms:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise ValueError(f"{where}.algorithms: {alg!r} is not accepted (asymmetric algorithms only)")
        out.append(
            ProviderConfig(
                issuer=_str(raw["issuer"], f"{where}.issuer"),
                jwks_uri=_url(raw["jwks_uri"], f"{where}.jwks_uri"),
                audience=_strs(raw["audience"], f"{where}.audience"),
                algorithms=algorithms,
                typ=_strs(raw.get("typ", ["at+jwt", "JWT", ""]), f"{where}.typ"),
                mapping=_mapping(raw.get("mapping", {}), f"{where}.mapping"),
            )
        )
    return out


def load_providers(path: str | Path) -> list[ProviderConfig]:
    """Read a providers TOML file; ValueError (naming the key) if invalid."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return parse_providers(doc)
