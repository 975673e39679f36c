"""The ``[hss]`` config section: the lab HSS's Diameter identity, listener, AKA and Cx policy.

Discovered automatically (:meth:`webims.config.SectionRegistry.discover`). Every key can
be overridden from the environment, e.g. ``WEBIMS_HSS__LISTEN_PORT=3869``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from webims.config import Invalid, between, each, hostname, is_loopback, predicate, section, setting

#: SIP-Authentication-Scheme the HSS picks when the S-CSCF asks for "Unknown" (TS 29.228 §6.3.1).
SchemeChoice = Literal["Digest-AKAv1-MD5", "Digest-AKAv2-MD5", "SIP Digest"]


def _is_capability(value: str) -> bool:
    return value.isdigit() and int(value) <= 0xFFFFFFFF


@section("hss")
@dataclass(frozen=True)
class HssConfig:
    """The lab HSS (TS 29.228 / TS 29.229 Cx server, RFC 6733 Diameter over TCP)."""

    listen_host: str = setting("127.0.0.1", check=hostname(), doc="Diameter (TCP) listen address")
    listen_port: int = setting(3868, check=between(0, 65535), doc="Diameter port (RFC 6733 §2.1); 0 = any")
    origin_host: str = setting("hss.ims.test", check=hostname(), doc="our Origin-Host (DiameterIdentity)")
    origin_realm: str = setting("ims.test", check=hostname(), doc="our Origin-Realm")
    realm: str = setting(
        "ims.test", check=hostname(), doc="default SIP digest realm (HA1) for IMPIs without '@domain'"
    )
    scscf_capabilities: tuple[str, ...] = setting(
        ("0",),
        check=each(predicate("an unsigned 32-bit integer", _is_capability)),
        doc="Mandatory-Capability values in Server-Capabilities (never empty: Kamailio drops empty ones)",
    )
    scscf_names: tuple[str, ...] = setting(
        (), doc="preferred S-CSCF SIP URIs sent as Server-Name inside Server-Capabilities"
    )
    allowed_visited_networks: tuple[str, ...] = setting(
        ("*",),
        doc="Visited-Network-Identifier values a UAR may carry ('*' = any); others: 5004 ROAMING_NOT_ALLOWED",
    )
    unknown_scheme: SchemeChoice = setting(
        "Digest-AKAv1-MD5", doc="scheme chosen for MAR 'Unknown' when the user has both AKA and digest"
    )
    digest_qop: str = setting("auth", doc="Digest-QoP sent in SIP-Digest-Authenticate")
    sqn_ind_bits: int = setting(5, check=between(0, 16), doc="IND bits of SQN (TS 33.102 Annex C.3)")
    max_auth_items: int = setting(
        5, check=between(1, 64), doc="most SIP-Auth-Data-Items one MAA returns (SIP-Number-Auth-Items)"
    )
    keep_server_name: bool = setting(
        True, doc="keep the S-CSCF name on *_DEREGISTRATION_STORE_SERVER_NAME (else answer 2004)"
    )
    watchdog_interval: float = setting(30.0, check=between(6, 3600), doc="Tw, RFC 3539 §3.4.1")
    max_connections: int = setting(64, check=between(1, 100_000), doc="simultaneous Diameter peers")
    admin_host: str = setting("127.0.0.1", check=hostname(), doc="admin HTTP endpoint (RTR/PPR commands)")
    admin_port: int = setting(3870, check=between(0, 65535), doc="admin HTTP port; 0 = disabled")
    admin_token: str | None = setting(
        None, secret=True, doc="Bearer token for the admin endpoint (required when not on loopback)"
    )

    def validate(self) -> None:
        if self.admin_port and not is_loopback(self.admin_host) and not self.admin_token:
            raise Invalid("admin_token", "required when admin_host is not a loopback address")
        if not self.scscf_capabilities:
            raise Invalid(
                "scscf_capabilities", "must not be empty (Kamailio drops empty Server-Capabilities)"
            )

    @property
    def mandatory_capabilities(self) -> tuple[int, ...]:
        return tuple(int(c) for c in self.scscf_capabilities)
