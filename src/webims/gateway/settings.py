"""The ``[gateway]`` config section: the Web Signalling Translator / eP-CSCF.

Discovered automatically (:meth:`webims.config.SectionRegistry.discover`). The WIC
side listens where ``[transport]`` says (WSS on ``wss_port``, path ``ws_path``,
``allowed_origins``); this section is about the IMS side, the registration modes
and their policy. Example::

    [gateway]
    topology = "p-cscf"                   # or "behind-p-cscf" (seed 004: a UE toward an operator P-CSCF)
    domain = "ims.test"
    icscf = "sip:icscf.ims.test"          # NAPTR/SRV/A when a name; "sip:127.0.0.1:5070" for a fixed one
    mw_host = "127.0.0.1"
    mw_port = 5064
    modes = ["ims-aka", "ims-digest", "ims-digest-on-behalf", "web-token", "web-login", "pool"]
    mode_rules = ["origin=https://partner.example => pool", "impu=sip:*@lab.ims.test => ims-aka"]
    pools = ["web"]
    pool_passwords = ["web=secret"]

Every key can be overridden from the environment, e.g. ``WEBIMS_GATEWAY__GRACE_PERIOD=10``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from webims.config import Invalid, between, each, hostname, one_of, predicate, section, setting

__all__ = ["MODES", "GatewayConfig", "Mode", "parse_assignments"]

Mode = Literal["ims-aka", "ims-digest", "ims-digest-on-behalf", "web-token", "web-login", "pool"]
#: The registration modes of DESIGN.md §2, as the config and the logs name them.
MODES: tuple[Mode, ...] = (
    "ims-aka", "ims-digest", "ims-digest-on-behalf", "web-token", "web-login", "pool",
)  # fmt: skip


def _is_sip_uri(value: str) -> bool:
    return value.startswith(("sip:", "sips:")) and len(value) > 5


def _is_assignment(value: str) -> bool:
    name, sep, rest = value.partition("=")
    return bool(sep and name.strip() and rest)


def _is_server(value: str) -> bool:
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return not port or port.isdigit()


def parse_assignments(values: tuple[str, ...]) -> dict[str, str]:
    """``("web=secret", "b=x")`` -> ``{"web": "secret", "b": "x"}`` (first ``=`` splits)."""
    out: dict[str, str] = {}
    for value in values:
        name, _, rest = value.partition("=")
        out[name.strip()] = rest
    return out


@section("gateway")
@dataclass(frozen=True)
class GatewayConfig:
    """The eP-CSCF (seed 000) or the translator in front of a P-CSCF (seed 004)."""

    topology: Literal["p-cscf", "behind-p-cscf"] = setting(
        "p-cscf", doc="p-cscf: Mw to the I-CSCF with Path etc.; behind-p-cscf: act as a UE toward pcscf"
    )
    domain: str = setting("ims.test", check=hostname(), doc="home network domain (TNA Request-URI, realm)")
    icscf: str = setting(
        "sip:127.0.0.1:5070", check=predicate("a SIP URI", _is_sip_uri),
        doc="I-CSCF (p-cscf topology); a host name is resolved with NAPTR/SRV/A (RFC 3263)",
    )  # fmt: skip
    pcscf: str = setting(
        "", doc="operator P-CSCF SIP URI (behind-p-cscf topology)",
    )  # fmt: skip
    dns_servers: tuple[str, ...] = setting(
        (), check=each(predicate("an IP address with optional :port", _is_server)),
        doc="DNS servers for RFC 3263 lookups; empty = the system's",
    )  # fmt: skip
    mw_host: str = setting("127.0.0.1", check=hostname(), doc="listen address of the IMS side (Mw)")
    mw_port: int = setting(5064, check=between(0, 65535), doc="IMS side SIP port (UDP and TCP); 0 = any")
    mw_advertised_host: str | None = setting(
        None, check=hostname(), doc="host in our Path/Contact; empty = mw_host"
    )
    mw_transport: Literal["udp", "tcp"] = setting("udp", doc="toward the next hop when its URI names none")
    visited_network_id: str = setting("", doc="P-Visited-Network-ID; empty = domain")
    access_network_info: str = setting(
        "", doc="P-Access-Network-Info added for WICs ({ip} = the WIC's address); empty = none",
    )  # fmt: skip
    modes: tuple[str, ...] = setting(MODES, check=each(one_of(*MODES)), doc="registration modes offered")
    mode_rules: tuple[str, ...] = setting(
        (), doc="'SELECTORS => MODES' (origin=URL, impu=GLOB, source=CIDR, *); first match wins",
    )  # fmt: skip
    bearer_realm: str = setting("", doc="realm of our Bearer challenges; empty = domain")
    authz_server: str = setting("", doc="authz_server of Bearer challenges (RFC 8898 §2.1); empty = issuer")
    token_auth: Literal["embedded", "remote", "off"] = setting(
        "embedded", doc="embedded: the [auth] store in this process; remote: issuer/jwks_url/audience",
    )  # fmt: skip
    issuer: str = setting("", doc="remote token issuer (token_auth = remote)")
    jwks_url: str = setting("", doc="remote issuer's JWKS (token_auth = remote)")
    audience: str = setting("webims", doc="audience our tokens carry")
    require_bearer: bool = setting(
        False, doc="later requests of web-token WICs must carry their Bearer token"
    )
    min_expires: int = setting(60, check=between(1, 86_400), doc="WIC registrations shorter get 423")
    max_expires: int = setting(3600, check=between(60, 604_800), doc="WIC registrations are cut to this")
    default_expires: int = setting(600, check=between(60, 604_800))
    ims_expires: int = setting(
        3600, check=between(60, 604_800), doc="asked of the IMS for gateway-made registrations"
    )
    ims_timeout: float = setting(
        8.0, check=between(0.5, 120), doc="IMS unreachable -> 503 to the WIC after this"
    )
    retry_after: int = setting(30, check=between(1, 86_400), doc="Retry-After of our 503s")
    grace_period: float = setting(30.0, check=between(0, 86_400), doc="after a WIC's WebSocket closes")
    restart_grace: float = setting(
        120.0, check=between(0, 86_400), doc="for WICs to reconnect after a restart"
    )
    keep_on_close: tuple[str, ...] = setting(
        (), check=each(one_of(*MODES)), doc="modes whose registration outlives the WebSocket (until expiry)",
    )  # fmt: skip
    subscribe_reg_event: bool = setting(True, doc="SUBSCRIBE to each registered user's reg event (p-cscf)")
    reg_event_expires: int = setting(600_000, check=between(60, 2**31 - 1), doc="TS 24.229 §5.2.3")
    flow_retry_base: float = setting(
        30.0, check=between(0.01, 1800),
        doc="behind-p-cscf over TCP: a UE flow whose connection closed reconnects at once, then after "
        "this base-time doubled per failure (RFC 5626 §4.5)",
    )  # fmt: skip
    flow_recovery_rate: float = setting(
        500.0, check=between(0.1, 1e6),
        doc="behind-p-cscf over TCP: UE flows lost together (a P-CSCF restart) reconnect and "
        "register again at most this many per second",
    )  # fmt: skip
    flow_timer: int = setting(120, check=between(0, 86_400), doc="Flow-Timer (RFC 5626 §11.5); 0 = none")
    register_rate: float = setting(2.0, check=between(0.01, 1e6), doc="REGISTERs per second per connection")
    register_burst: int = setting(10, check=between(1, 1_000_000))
    source_register_rate: float = setting(200.0, check=between(0.01, 1e9), doc="REGISTERs/s per source IP")
    source_register_burst: int = setting(400, check=between(1, 1_000_000_000))
    request_rate: float = setting(
        20.0, check=between(0.01, 1e6), doc="other requests per second per connection"
    )
    request_burst: int = setting(50, check=between(1, 1_000_000))
    max_violations: int = setting(5, check=between(1, 1000), doc="rate-limited answers before we close")
    pools: tuple[str, ...] = setting((), doc="IMPU pools (of [auth]) the gateway registers")
    pool_passwords: tuple[str, ...] = setting(
        (), secret=True, check=each(predicate("POOL=PASSWORD", _is_assignment)), doc="password per pool",
    )  # fmt: skip
    pool_impis: tuple[str, ...] = setting(
        (), check=each(predicate("POOL=IMPI", _is_assignment)), doc="IMPI per pool; default: the pool's",
    )  # fmt: skip
    pool_members: tuple[str, ...] = setting(
        (), check=each(predicate("POOL=IMPU-PATTERN", _is_assignment)),
        doc="members when the pools live in a remote WAF, e.g. web=sip:web-{000..099}@ims.test",
    )  # fmt: skip
    pool_auth: Literal["digest", "tna"] = setting("digest", doc="how the gateway registers pool IMPUs")
    pool_registration: Literal["startup", "on-demand"] = setting("startup")
    pool_concurrency: int = setting(16, check=between(1, 10_000), doc="pool REGISTERs in flight at start-up")
    pool_lease: int = setting(900, check=between(60, 86_400), doc="pool lease renewed on each WIC REGISTER")
    state_backend: Literal["sqlite", "memory"] = setting("sqlite", doc="registration state store")
    flush_interval: float = setting(0.05, check=between(0, 10), doc="write-behind delay of the state store")

    def validate(self) -> None:
        if not self.modes:
            raise Invalid("modes", "expected at least one mode")
        if self.topology == "behind-p-cscf" and not _is_sip_uri(self.pcscf):
            raise Invalid("pcscf", "behind-p-cscf needs the operator P-CSCF's SIP URI")
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise Invalid("default_expires", "must lie between min_expires and max_expires")
        from .policy import parse_rule

        for i, rule in enumerate(self.mode_rules):
            try:
                parse_rule(rule)
            except ValueError as exc:
                raise Invalid("mode_rules", f"rule {i + 1} {rule!r}: {exc}") from None
        passwords = parse_assignments(self.pool_passwords)
        for name in passwords:
            if name not in self.pools:
                raise Invalid("pool_passwords", f"pool {name!r} is not in gateway.pools")
        if self.pool_auth == "digest":
            for name in self.pools:
                if name not in passwords:
                    raise Invalid("pool_passwords", f"pool {name!r} needs a password (or pool_auth = 'tna')")

    @property
    def uri_host(self) -> str:
        return self.mw_advertised_host or self.mw_host

    @property
    def pvni(self) -> str:
        return self.visited_network_id or self.domain


import webims.gateway.session_settings  # noqa: E402, F401  (registers [sessions], issue 7)
