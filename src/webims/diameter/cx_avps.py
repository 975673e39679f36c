"""Cx grouped AVPs as frozen dataclasses (TS 29.229 §6.3), each with ``to_avp()`` / ``from_group()``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .avp import Avp, Group, make_avp
from .constants import VENDOR_3GPP
from .dictionary import avp_def

# SIP-Authentication-Scheme values (TS 29.229 §6.3, TS 33.203; Kamailio ims_auth names).
AUTH_SCHEME_AKAV1_MD5 = "Digest-AKAv1-MD5"
AUTH_SCHEME_AKAV2_MD5 = "Digest-AKAv2-MD5"
AUTH_SCHEME_SIP_DIGEST = "SIP Digest"
AUTH_SCHEME_DIGEST_MD5 = "Digest-MD5"
AUTH_SCHEME_NASS_BUNDLED = "NASS-Bundled"
AUTH_SCHEME_EARLY_IMS = "Early-IMS-Security"
AUTH_SCHEME_UNKNOWN = "Unknown"


# --- Grouped structures (TS 29.229 §6.3) ------------------------------------------------------------

#: The AVPs :class:`SipAuthDataItem` models (others go to its ``extra``), as (code, vendor).
_AUTH_ITEM_KNOWN = frozenset(
    avp_def(name).key
    for name in (
        "SIP-Item-Number",
        "SIP-Authentication-Scheme",
        "SIP-Authenticate",
        "SIP-Authorization",
        "SIP-Authentication-Context",
        "Confidentiality-Key",
        "Integrity-Key",
        "SIP-Digest-Authenticate",
    )
)


@dataclass(frozen=True, slots=True)
class SipDigestAuthenticate:
    """SIP-Digest-Authenticate ::= {Digest-Realm} [Digest-Algorithm] {Digest-QoP} {Digest-HA1}."""

    realm: str
    qop: str
    ha1: str
    algorithm: str | None = None

    def to_avp(self) -> Avp:
        avps = [make_avp("Digest-Realm", self.realm)]
        if self.algorithm is not None:
            avps.append(make_avp("Digest-Algorithm", self.algorithm))
        avps += [make_avp("Digest-QoP", self.qop), make_avp("Digest-HA1", self.ha1)]
        return make_avp("SIP-Digest-Authenticate", avps)

    @classmethod
    def from_group(cls, g: Group) -> SipDigestAuthenticate:
        return cls(
            realm=g.require_str("Digest-Realm"),
            qop=g.require_str("Digest-QoP"),
            ha1=g.require_str("Digest-HA1"),
            algorithm=g.get_str("Digest-Algorithm"),
        )


@dataclass(frozen=True, slots=True)
class SipAuthDataItem:
    """SIP-Auth-Data-Item (TS 29.229 §6.3): one authentication vector, or the MAR's request item.

    AKA: ``authenticate`` = RAND||AUTN, ``authorization`` = XRES, plus CK and IK.
    Resynchronisation (MAR): ``authorization`` = RAND||AUTS. SIP Digest: ``digest``.
    ``extra`` keeps AVPs not modelled here (e.g. Kamailio's ETSI-SIP-Authorization).
    """

    authentication_scheme: str | None = None
    item_number: int | None = None
    authenticate: bytes | None = None
    authorization: bytes | None = None
    authentication_context: bytes | None = None
    confidentiality_key: bytes | None = None
    integrity_key: bytes | None = None
    digest: SipDigestAuthenticate | None = None
    extra: tuple[Avp, ...] = ()

    def to_avp(self) -> Avp:
        avps: list[Avp] = []
        if self.item_number is not None:
            avps.append(make_avp("SIP-Item-Number", self.item_number))
        if self.authentication_scheme is not None:
            avps.append(make_avp("SIP-Authentication-Scheme", self.authentication_scheme))
        for name, value in (
            ("SIP-Authenticate", self.authenticate),
            ("SIP-Authorization", self.authorization),
            ("SIP-Authentication-Context", self.authentication_context),
            ("Confidentiality-Key", self.confidentiality_key),
            ("Integrity-Key", self.integrity_key),
        ):
            if value is not None:
                avps.append(make_avp(name, value))
        if self.digest is not None:
            avps.append(self.digest.to_avp())
        avps += self.extra
        return make_avp("SIP-Auth-Data-Item", avps)

    @classmethod
    def from_group(cls, g: Group) -> SipAuthDataItem:
        known = _AUTH_ITEM_KNOWN
        digest = g.get_group("SIP-Digest-Authenticate")
        return cls(
            authentication_scheme=g.get_str("SIP-Authentication-Scheme"),
            item_number=g.get_int("SIP-Item-Number"),
            authenticate=g.get_bytes("SIP-Authenticate"),
            authorization=g.get_bytes("SIP-Authorization"),
            authentication_context=g.get_bytes("SIP-Authentication-Context"),
            confidentiality_key=g.get_bytes("Confidentiality-Key"),
            integrity_key=g.get_bytes("Integrity-Key"),
            digest=SipDigestAuthenticate.from_group(digest) if digest is not None else None,
            extra=tuple(a for a in g.avps if (a[0], a[2]) not in known),
        )


@dataclass(frozen=True, slots=True)
class ServerCapabilities:
    """Server-Capabilities ::= *[Mandatory-Capability] *[Optional-Capability] *[Server-Name].

    Kamailio's I-CSCF drops a UAA/LIA whose Server-Capabilities is empty: an empty
    value cannot be encoded here (omit the AVP instead).
    """

    mandatory: tuple[int, ...] = ()
    optional: tuple[int, ...] = ()
    server_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (self.mandatory or self.optional or self.server_names):
            raise ValueError("empty Server-Capabilities: omit the AVP instead")

    def to_avp(self) -> Avp:
        avps = [make_avp("Mandatory-Capability", c) for c in self.mandatory]
        avps += [make_avp("Optional-Capability", c) for c in self.optional]
        avps += [make_avp("Server-Name", s) for s in self.server_names]
        return make_avp("Server-Capabilities", avps)

    @classmethod
    def from_group(cls, g: Group) -> ServerCapabilities | None:
        """None for an empty group (which :meth:`__post_init__` refuses to build)."""
        mandatory = tuple(g.get_all_int("Mandatory-Capability"))
        optional = tuple(g.get_all_int("Optional-Capability"))
        names = tuple(g.get_all_str("Server-Name"))
        if not (mandatory or optional or names):
            return None
        return cls(mandatory, optional, names)


@dataclass(frozen=True, slots=True)
class ChargingInformation:
    """Charging-Information (TS 29.229 §6.3): the four charging function names (DiameterURI)."""

    primary_event_charging_function_name: str | None = None
    secondary_event_charging_function_name: str | None = None
    primary_charging_collection_function_name: str | None = None
    secondary_charging_collection_function_name: str | None = None

    _NAMES = (
        "Primary-Event-Charging-Function-Name",
        "Secondary-Event-Charging-Function-Name",
        "Primary-Charging-Collection-Function-Name",
        "Secondary-Charging-Collection-Function-Name",
    )

    def to_avp(self) -> Avp:
        values = (
            self.primary_event_charging_function_name,
            self.secondary_event_charging_function_name,
            self.primary_charging_collection_function_name,
            self.secondary_charging_collection_function_name,
        )
        return make_avp(
            "Charging-Information", [make_avp(n, v) for n, v in zip(self._NAMES, values, strict=True) if v]
        )

    @classmethod
    def from_group(cls, g: Group) -> ChargingInformation:
        return cls(*(g.get_str(n) for n in cls._NAMES))


@dataclass(frozen=True, slots=True)
class DeregistrationReason:
    """Deregistration-Reason ::= {Reason-Code} [Reason-Info] (TS 29.229 §6.3)."""

    reason_code: int
    reason_info: str | None = None

    def to_avp(self) -> Avp:
        avps = [make_avp("Reason-Code", int(self.reason_code))]
        if self.reason_info is not None:
            avps.append(make_avp("Reason-Info", self.reason_info))
        return make_avp("Deregistration-Reason", avps)

    @classmethod
    def from_group(cls, g: Group) -> DeregistrationReason:
        return cls(g.require_int("Reason-Code"), g.get_str("Reason-Info"))


@dataclass(frozen=True, slots=True)
class SupportedFeatures:
    """Supported-Features ::= {Vendor-Id} {Feature-List-ID} {Feature-List} (TS 29.229 §6.3)."""

    feature_list_id: int
    feature_list: int
    vendor_id: int = VENDOR_3GPP

    def to_avp(self) -> Avp:
        return make_avp(
            "Supported-Features",
            [
                make_avp("Vendor-Id", self.vendor_id),
                make_avp("Feature-List-ID", self.feature_list_id),
                make_avp("Feature-List", self.feature_list),
            ],
        )

    @classmethod
    def from_group(cls, g: Group) -> SupportedFeatures:
        return cls(
            g.require_int("Feature-List-ID"), g.require_int("Feature-List"), g.require_int("Vendor-Id")
        )


def identities_avp(name: str, user_names: Iterable[str]) -> Avp:
    """Associated-Identities / Associated-Registered-Identities ::= *[User-Name]."""
    return make_avp(name, [make_avp("User-Name", u) for u in user_names])
