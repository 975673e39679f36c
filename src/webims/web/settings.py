"""Configuration section ``[web]`` of the client script server (WWSF, ``webims serve web``).

Every key can be overridden from the environment (``WEBIMS_WEB__PORT``,
``WEBIMS_WEB__TURN_SECRET``...). Example::

    [web]
    host = "0.0.0.0"
    port = 443
    public_url = "https://wic.example.com"
    wss_url = "wss://wic.example.com/sip"
    ims_domain = "ims.example.com"
    login_modes = ["web-token", "ims-digest", "ims-aka"]
    auth_issuer = "https://waf.example.com"
    stun_urls = ["stun:turn.example.com:3478"]
    turn_urls = ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"]
    turn_secret = "the static-auth-secret of coturn (use-auth-secret)"
    turn_ttl = 3600
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import urlsplit

from webims.config import (
    Check,
    Invalid,
    between,
    check_tls_files,
    each,
    hostname,
    is_loopback,
    non_empty,
    one_of,
    port,
    predicate,
    section,
    setting,
)

__all__ = ["LOGIN_MODES", "WebConfig"]

#: Login modes the WIC can offer (DESIGN.md §2): OAuth 2.0 + PKCE -> Bearer token on
#: REGISTER (RFC 8898), IMS digest answered by the WIC, IMS AKA from a software USIM.
LOGIN_MODES = ("web-token", "ims-digest", "ims-aka")


def _url(schemes: tuple[str, ...]) -> Check:
    text = " or ".join(f"a {s}:// URL" for s in schemes) + " (or empty)"

    def test(value: str) -> bool:
        if value == "":
            return True
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            return False
        return parts.scheme in schemes and bool(parts.hostname) and not parts.fragment
    return predicate(text, test)


def _ice_url(value: str) -> bool:
    """RFC 7064 (stun:, stuns:) and RFC 7065 (turn:, turns:) URIs."""
    scheme, sep, rest = value.partition(":")
    schemes = ("stun", "stuns", "turn", "turns")
    return bool(sep) and scheme in schemes and bool(rest) and not rest.startswith("/")


@section("web")
@dataclasses.dataclass(frozen=True)
class WebConfig:
    """Client script server: serves the WIC over HTTPS and hands it its configuration."""

    host: str = setting("127.0.0.1", check=hostname())
    port: int = setting(8443, check=port())
    public_url: str = setting(
        "", check=_url(("https",)), doc="origin the WIC is served from; empty = https://<host>:<port>"
    )
    tls_cert: Path | None = setting(None, doc="PEM; empty = the self-signed pair in the state dir")
    tls_key: Path | None = setting(None)
    wss_url: str = setting(
        "", check=_url(("wss", "ws")), doc="SIP over WebSocket URL; empty = wss://<public host>/sip"
    )
    ims_domain: str = setting("ims.test", check=hostname(), doc="home domain: registrar sip:<domain>")
    login_modes: tuple[str, ...] = setting(LOGIN_MODES, check=each(one_of(*LOGIN_MODES)))
    auth_issuer: str = setting(
        "", check=_url(("https", "http")), doc="authorization function; empty = [auth] issuer"
    )
    auth_client_id: str = setting("wic", check=non_empty(), doc="the WIC's public OAuth client id")
    auth_scope: str = setting("register call message", doc="scope asked for at /authorize")
    register_expires: int = setting(600, check=between(60, 86_400), doc="seconds")
    stun_urls: tuple[str, ...] = setting((), check=each(predicate("a stun:/stuns: URI", _ice_url)))
    turn_urls: tuple[str, ...] = setting((), check=each(predicate("a turn:/turns: URI", _ice_url)))
    turn_secret: str = setting("", secret=True, doc="coturn static-auth-secret (TURN REST credentials)")
    turn_ttl: int = setting(3600, check=between(60, 86_400), doc="lifetime of TURN credentials, seconds")
    metrics: bool = setting(True, doc="serve Prometheus metrics at /metrics")
    metrics_token: str = setting("", secret=True, doc="Bearer token required at /metrics; empty = none")
    hsts_max_age: int = setting(31_536_000, check=between(0, 2 * 31_536_000), doc="seconds")
    webclient_dir: Path | None = setting(None, doc="the WIC sources; empty = webclient/ of the checkout")
    bundle: Path | None = setting(None, doc="a prebuilt wic.js to serve; empty = build with esbuild at start")
    minify: bool = setting(True, doc="minify the bundle built at start")

    def validate(self) -> None:
        check_tls_files(self, "bundle")
        if self.webclient_dir is not None and not (self.webclient_dir / "index.html").is_file():
            raise Invalid("webclient_dir", f"no index.html in '{self.webclient_dir}'")
        for url in self.turn_urls:
            if not url.startswith(("turn:", "turns:")):
                raise Invalid("turn_urls", f"expected turn: or turns: URIs, got {url!r}")
        for url in self.stun_urls:
            if not url.startswith(("stun:", "stuns:")):
                raise Invalid("stun_urls", f"expected stun: or stuns: URIs, got {url!r}")
        if self.turn_urls and not self.turn_secret:
            raise Invalid("turn_secret", "turn_urls need the TURN server's shared secret")
        if not self.login_modes:
            raise Invalid("login_modes", "expected at least one of " + ", ".join(LOGIN_MODES))
        if self.wss_url.startswith("ws:") and not is_loopback(urlsplit(self.wss_url).hostname or ""):
            raise Invalid("wss_url", "plain ws:// is only allowed on a loopback host: use wss://")
        issuer_host = urlsplit(self.auth_issuer).hostname or ""
        if self.auth_issuer.startswith("http:") and not is_loopback(issuer_host):
            raise Invalid("auth_issuer", "plain http:// is only allowed on a loopback host: use https://")
        if self.auth_issuer.endswith("/") or "?" in self.auth_issuer:
            raise Invalid("auth_issuer", "no trailing slash or query (RFC 8414 §2 issuer)")

    @property
    def origin(self) -> str:
        """The WIC's origin (RFC 6454): ``public_url`` or https://<host>:<port>."""
        if self.public_url:
            parts = urlsplit(self.public_url)
            return f"{parts.scheme}://{parts.netloc}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"https://{host}" + ("" if self.port == 443 else f":{self.port}")
