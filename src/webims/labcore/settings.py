"""The ``[labcore]`` config section: the lab I-CSCF and S-CSCF (and which HSS they use).

Discovered automatically (:meth:`webims.config.SectionRegistry.discover`); importing
it also registers the HSS's ``[hss]`` section. Every key can be overridden from the
environment, e.g. ``WEBIMS_LABCORE__SCSCF_PORT=6070``. Example::

    [labcore]
    domain = "ims.test"
    host = "127.0.0.1"
    icscf_port = 5070
    scscf_port = 6060
    trusted_nodes = ["127.0.0.2"]        # P-CSCFs: Trusted Node Authentication, P-Asserted-Identity
    hss = "embedded"                     # or "remote" with hss_host / hss_port
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

import webims.labcore.hss.settings  # noqa: F401  (registers [hss])
from webims.config import Invalid, between, each, hostname, one_of, predicate, section, setting

__all__ = ["LabCoreConfig", "ScscfEntry", "parse_scscf_entry"]

AuthScheme = Literal["Unknown", "SIP Digest", "Digest-AKAv1-MD5", "Digest-AKAv2-MD5"]


def _is_network(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ScscfEntry:
    """One S-CSCF the I-CSCF may select (TS 23.228 §5.3.1.2, TS 29.228 Annex A.2 capabilities)."""

    uri: str
    capabilities: frozenset[int]


def parse_scscf_entry(value: str) -> ScscfEntry:
    """``"sip:scscf2.ims.test:6060"`` or ``"sip:scscf2.ims.test:6060 1,2,5"`` (its capabilities)."""
    uri, _, caps = value.strip().partition(" ")
    if not uri.startswith(("sip:", "sips:")):
        raise ValueError(f"not a SIP URI: {uri!r}")
    numbers = frozenset(int(c) for c in caps.replace(" ", "").split(",") if c)
    return ScscfEntry(uri, numbers)


def _is_scscf_entry(value: str) -> bool:
    try:
        parse_scscf_entry(value)
    except ValueError:
        return False
    return True


@section("labcore")
@dataclass(frozen=True)
class LabCoreConfig:
    """The lab IMS core: I-CSCF and S-CSCF (TS 24.229 §5.3, §5.4) on UDP and TCP."""

    domain: str = setting("ims.test", check=hostname(), doc="home network domain and digest realm")
    host: str = setting("127.0.0.1", check=hostname(), doc="listen address of both CSCFs")
    advertised_host: str | None = setting(
        None, check=hostname(), doc="host put in our URIs (Service-Route, Record-Route); empty = host"
    )
    transports: tuple[str, ...] = setting(("udp", "tcp"), check=each(one_of("udp", "tcp")))
    icscf_port: int = setting(5070, check=between(0, 65535), doc="I-CSCF SIP port (UDP and TCP); 0 = any")
    scscf_port: int = setting(6060, check=between(0, 65535), doc="S-CSCF SIP port (UDP and TCP); 0 = any")
    scscf_name: str | None = setting(
        None, doc="our S-CSCF's SIP URI (Cx Server-Name); empty = sip:<advertised host>:<scscf_port>"
    )
    scscf_capabilities: tuple[str, ...] = setting(
        ("0",),
        check=each(predicate("an unsigned integer", str.isdigit)),
        doc="capabilities of our S-CSCF, matched against the HSS's Server-Capabilities",
    )
    other_scscfs: tuple[str, ...] = setting(
        (),
        check=each(predicate("'sip:URI [cap,cap...]'", _is_scscf_entry)),
        doc="further S-CSCFs the I-CSCF may select: 'sip:host:port 1,2'",
    )
    hss: Literal["embedded", "remote"] = setting(
        "embedded", doc="embedded: start the [hss] in this process; remote: connect to hss_host:hss_port"
    )
    hss_host: str = setting("127.0.0.1", check=hostname(), doc="remote HSS address (Diameter over TCP)")
    hss_port: int = setting(3868, check=between(1, 65535))
    hss_realm: str = setting("ims.test", check=hostname(), doc="Destination-Realm of our Cx requests")
    hss_identity: str | None = setting(None, check=hostname(), doc="Destination-Host; empty = none")
    icscf_origin_host: str = setting("icscf.ims.test", check=hostname(), doc="I-CSCF Diameter identity")
    scscf_origin_host: str = setting("scscf.ims.test", check=hostname(), doc="S-CSCF Diameter identity")
    origin_realm: str = setting("ims.test", check=hostname())
    cx_timeout: float = setting(5.0, check=between(0.1, 60), doc="seconds to wait for a Cx answer")
    trusted_nodes: tuple[str, ...] = setting(
        (),
        check=each(predicate("an IP address or network", _is_network)),
        doc="addresses in the trust domain: their REGISTER may use Trusted Node Authentication "
        "(integrity-protected=auth-done) and their P-Asserted-Identity is believed (RFC 3325)",
    )
    min_expires: int = setting(60, check=between(1, 86_400), doc="shorter registrations get 423")
    max_expires: int = setting(7200, check=between(1, 2**31 - 1), doc="longer registrations are cut")
    default_expires: int = setting(3600, check=between(1, 2**31 - 1))
    auth_timeout: float = setting(60.0, check=between(1, 3600), doc="reg-await-auth: life of a challenge")
    auth_scheme: AuthScheme = setting(
        "Unknown", doc="SIP-Authentication-Scheme asked in MAR when the REGISTER names no algorithm"
    )
    max_subscription_expires: int = setting(7200, check=between(60, 2**31 - 1), doc="reg event subscriptions")
    media_interworking: Literal["auto", "off"] = setting(
        "auto", doc="insert the media IWF (as MRF) when caller and callee cannot share media"
    )

    def validate(self) -> None:
        if not self.transports:
            raise Invalid("transports", "expected at least one of 'udp', 'tcp'")
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise Invalid("default_expires", "must lie between min_expires and max_expires")
        if self.icscf_port and self.icscf_port == self.scscf_port:
            raise Invalid("scscf_port", f"port {self.scscf_port} is also the I-CSCF's")
        if self.scscf_name is not None and not self.scscf_name.startswith(("sip:", "sips:")):
            raise Invalid("scscf_name", "expected a SIP URI such as 'sip:scscf.ims.test:6060'")

    @property
    def uri_host(self) -> str:
        return self.advertised_host or self.host

    @property
    def transport_param(self) -> str:
        """The URI parameter our URIs need: none with UDP (the default), else ``;transport=tcp``."""
        return "" if "udp" in self.transports else ";transport=tcp"

    @property
    def scscf_entries(self) -> tuple[ScscfEntry, ...]:
        return tuple(parse_scscf_entry(v) for v in self.other_scscfs)

    @property
    def capabilities(self) -> frozenset[int]:
        return frozenset(int(c) for c in self.scscf_capabilities)
