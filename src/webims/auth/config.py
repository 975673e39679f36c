"""Configuration section ``[auth]`` of the web authorization function.

Every key can be overridden from the environment (``WEBIMS_AUTH__ADMIN_TOKEN``,
``WEBIMS_AUTH__LOGIN__MAX_FAILURES_PER_USER``...). The database is the shared
store of ``[state]`` (``state.db``). Example::

    [auth]
    host = "0.0.0.0"
    port = 8443
    issuer = "https://waf.example.com"
    audience = "webims"
    admin_token = "change-me"
    wic_redirect_uris = ["https://www.example.com/"]
    home_country_code = "33"
    providers_file = "providers.toml"     # external OIDC issuers (webims.auth.oidc)

    [auth.login]
    max_failures_per_user = 5
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from webims.config import (
    Invalid,
    between,
    check_tls_files,
    each,
    hostname,
    is_loopback,
    non_empty,
    port,
    predicate,
    section,
    setting,
)

from .users import check_redirect_uri

__all__ = ["AuthConfig", "LoginLimits", "PasswordParams"]


def _redirect_ok(value: str) -> bool:
    try:
        check_redirect_uri(value)
    except ValueError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class LoginLimits:
    """Brute-force throttling of the login form and HTTP Digest (sliding window)."""

    max_failures_per_user: int = setting(5, check=between(1, 10_000))
    max_failures_per_ip: int = setting(20, check=between(1, 1_000_000))
    window: float = setting(300.0, check=between(1, 86_400), doc="seconds")


@dataclasses.dataclass(frozen=True)
class PasswordParams:
    """argon2id cost (RFC 9106); applies to new hashes."""

    time_cost: int = setting(2, check=between(1, 20))
    memory_kib: int = setting(19_456, check=between(1024, 4 * 1024 * 1024))
    parallelism: int = setting(1, check=between(1, 16))


@section("auth")
@dataclasses.dataclass(frozen=True)
class AuthConfig:
    """OAuth 2.0 authorization server, identity mapping and IMPU pools (``webims serve auth``)."""

    host: str = setting("127.0.0.1", check=hostname())
    port: int = setting(8443, check=port())
    issuer: str = setting("", doc="public base URL of the server; empty = https://<host>:<port>")
    audience: str = setting("webims", check=non_empty(), doc="aud of access tokens (the gateway)")
    plain_http: bool = setting(False, doc="serve plain HTTP instead of HTTPS: only on a loopback host")
    tls_cert: Path | None = setting(None, doc="PEM; empty = self-signed into the state dir")
    tls_key: Path | None = setting(None)
    access_token_ttl: int = setting(600, check=between(30, 86_400), doc="seconds")
    refresh_token_ttl: int = setting(86_400, check=between(60, 90 * 86_400), doc="seconds")
    code_ttl: int = setting(60, check=between(5, 600), doc="authorization code lifetime, seconds")
    session_ttl: int = setting(43_200, check=between(60, 30 * 86_400), doc="web session lifetime, seconds")
    leeway: int = setting(30, check=between(0, 300), doc="clock skew allowed on exp/nbf/iat, seconds")
    key_rotation_interval: int = setting(7 * 86_400, check=between(60, 3650 * 86_400), doc="seconds")
    admin_token: str = setting("", secret=True, doc="Bearer token of the admin API; empty = admin API off")
    wic_client_id: str = setting("wic", check=non_empty(), doc="the public client of the web client (PKCE)")
    wic_redirect_uris: tuple[str, ...] = setting(
        ("https://127.0.0.1:8443/", "https://localhost:8443/"),
        check=each(predicate("an https:// URI without fragment (http:// only on loopback)", _redirect_ok)),
    )
    home_country_code: str = setting(
        "", check=predicate("digits, e.g. '1' or '33' (or empty)", lambda v: v == "" or v.isdigit())
    )
    digest_realm: str = setting("webims", check=non_empty(), doc="HTTP Digest realm (RFC 7616)")
    digest_algorithms: tuple[str, ...] = setting(
        ("SHA-256", "MD5"), check=each(predicate("'SHA-256' or 'MD5'", lambda v: v in ("SHA-256", "MD5")))
    )
    providers_file: Path | None = setting(None, doc="TOML file of external OIDC providers")
    login: LoginLimits = setting(factory=LoginLimits)
    password: PasswordParams = setting(factory=PasswordParams)

    def validate(self) -> None:
        if self.plain_http and not is_loopback(self.host):
            raise Invalid(
                "plain_http", f"plain HTTP on non-loopback host {self.host!r} is refused: use HTTPS"
            )
        check_tls_files(self, "providers_file")
        if self.issuer and not (self.issuer.startswith("https://") or self.plain_http):
            raise Invalid("issuer", f"expected an https:// URL, got {self.issuer!r}")
        if self.issuer.endswith("/") or "?" in self.issuer or "#" in self.issuer:
            raise Invalid("issuer", "no trailing slash, query or fragment (RFC 8414 §2)")
        if self.providers_file is not None:
            from .oidc import load_providers

            try:
                load_providers(self.providers_file)
            except ValueError as exc:
                raise Invalid("providers_file", str(exc)) from None

    @property
    def issuer_url(self) -> str:
        if self.issuer:
            return self.issuer
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "http" if self.plain_http else "https"
        return f"{scheme}://{host}:{self.port}"
