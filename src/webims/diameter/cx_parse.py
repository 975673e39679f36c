"""Typed views of received Cx messages (TS 29.229 §6.1), field by field.

``XxxRequest.from_message(m)`` / ``XxxAnswer.from_message(m)`` read a message
that :func:`~webims.diameter.validate.check_message` accepted; a missing required
AVP or a malformed value still raises :class:`DiameterError` (5005 / 5004 / 5014)
with the right Failed-AVP, so a handler can answer it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from .constants import UserAuthorizationType
from .cx_avps import (
    ChargingInformation,
    DeregistrationReason,
    ServerCapabilities,
    SipAuthDataItem,
    SupportedFeatures,
)
from .message import Message


@dataclass(frozen=True, slots=True)
class Routing:
    """The AVPs every Cx request carries (TS 29.229 §6.1)."""

    session_id: str
    origin_host: str
    origin_realm: str
    destination_realm: str
    destination_host: str | None
    supported_features: tuple[SupportedFeatures, ...]

    @classmethod
    def from_message(cls, m: Message) -> Routing:
        return cls(
            session_id=m.require_str("Session-Id"),
            origin_host=m.require_str("Origin-Host"),
            origin_realm=m.require_str("Origin-Realm"),
            destination_realm=m.require_str("Destination-Realm"),
            destination_host=m.get_str("Destination-Host"),
            supported_features=tuple(
                SupportedFeatures.from_group(g) for g in m.get_all_group("Supported-Features")
            ),
        )


@dataclass(frozen=True, slots=True)
class Result:
    """Result-Code or Experimental-Result of an answer (RFC 6733 §7.1, §7.6)."""

    result_code: int | None
    experimental_result_code: int | None
    experimental_vendor_id: int | None

    @property
    def code(self) -> int | None:
        return self.result_code if self.result_code is not None else self.experimental_result_code

    @property
    def is_success(self) -> bool:
        return self.code is not None and 2000 <= self.code < 3000

    @classmethod
    def from_message(cls, m: Message) -> Result:
        er = m.experimental_result
        return cls(m.result_code, er[1] if er else None, er[0] if er else None)


def _answer_common(m: Message) -> tuple[str, str, str, Result]:
    return (
        m.require_str("Session-Id"),
        m.require_str("Origin-Host"),
        m.require_str("Origin-Realm"),
        Result.from_message(m),
    )


def _auth_items(m: Message) -> tuple[SipAuthDataItem, ...]:
    return tuple(SipAuthDataItem.from_group(g) for g in m.get_all_group("SIP-Auth-Data-Item"))


def _capabilities(m: Message) -> ServerCapabilities | None:
    g = m.get_group("Server-Capabilities")
    return ServerCapabilities.from_group(g) if g is not None else None


def _user_names(m: Message, name: str) -> tuple[str, ...]:
    g = m.get_group(name)
    return tuple(g.get_all_str("User-Name")) if g is not None else ()


# --- requests ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserAuthorizationRequest:
    routing: Routing
    user_name: str
    public_identity: str
    visited_network_identifier: bytes
    user_authorization_type: int
    uar_flags: int

    @classmethod
    def from_message(cls, m: Message) -> UserAuthorizationRequest:
        uat = m.get_int("User-Authorization-Type")
        return cls(
            routing=Routing.from_message(m),
            user_name=m.require_str("User-Name"),
            public_identity=m.require_str("Public-Identity"),
            visited_network_identifier=m.require_bytes("Visited-Network-Identifier"),
            # TS 29.228 §6.1.1.1: absent means REGISTRATION.
            user_authorization_type=UserAuthorizationType.REGISTRATION if uat is None else uat,
            uar_flags=m.get_int("UAR-Flags") or 0,
        )


@dataclass(frozen=True, slots=True)
class ServerAssignmentRequest:
    routing: Routing
    user_name: str | None
    public_identities: tuple[str, ...]
    wildcarded_public_identity: str | None
    server_name: str
    server_assignment_type: int
    user_data_already_available: int
    multiple_registration_indication: int | None
    session_priority: int | None
    sar_flags: int

    @classmethod
    def from_message(cls, m: Message) -> ServerAssignmentRequest:
        return cls(
            routing=Routing.from_message(m),
            user_name=m.get_str("User-Name"),
            public_identities=tuple(m.get_all_str("Public-Identity")),
            wildcarded_public_identity=m.get_str("Wildcarded-Public-Identity"),
            server_name=m.require_str("Server-Name"),
            server_assignment_type=m.require_int("Server-Assignment-Type"),
            user_data_already_available=m.require_int("User-Data-Already-Available"),
            multiple_registration_indication=m.get_int("Multiple-Registration-Indication"),
            session_priority=m.get_int("Session-Priority"),
            sar_flags=m.get_int("SAR-Flags") or 0,
        )


@dataclass(frozen=True, slots=True)
class LocationInfoRequest:
    routing: Routing
    public_identity: str
    originating_request: bool
    user_authorization_type: int | None
    session_priority: int | None

    @classmethod
    def from_message(cls, m: Message) -> LocationInfoRequest:
        return cls(
            routing=Routing.from_message(m),
            public_identity=m.require_str("Public-Identity"),
            originating_request=m.get_int("Originating-Request") == 0,
            user_authorization_type=m.get_int("User-Authorization-Type"),
            session_priority=m.get_int("Session-Priority"),
        )


@dataclass(frozen=True, slots=True)
class MultimediaAuthRequest:
    routing: Routing
    user_name: str
    public_identity: str
    server_name: str
    sip_number_auth_items: int
    sip_auth_data_item: SipAuthDataItem

    @classmethod
    def from_message(cls, m: Message) -> MultimediaAuthRequest:
        return cls(
            routing=Routing.from_message(m),
            user_name=m.require_str("User-Name"),
            public_identity=m.require_str("Public-Identity"),
            server_name=m.require_str("Server-Name"),
            sip_number_auth_items=m.require_int("SIP-Number-Auth-Items"),
            sip_auth_data_item=SipAuthDataItem.from_group(m.require_group("SIP-Auth-Data-Item")),
        )


@dataclass(frozen=True, slots=True)
class RegistrationTerminationRequest:
    routing: Routing
    user_name: str
    public_identities: tuple[str, ...]
    associated_identities: tuple[str, ...]
    deregistration_reason: DeregistrationReason
    rtr_flags: int

    @classmethod
    def from_message(cls, m: Message) -> RegistrationTerminationRequest:
        return cls(
            routing=Routing.from_message(m),
            user_name=m.require_str("User-Name"),
            public_identities=tuple(m.get_all_str("Public-Identity")),
            associated_identities=_user_names(m, "Associated-Identities"),
            deregistration_reason=DeregistrationReason.from_group(m.require_group("Deregistration-Reason")),
            rtr_flags=m.get_int("RTR-Flags") or 0,
        )


@dataclass(frozen=True, slots=True)
class PushProfileRequest:
    routing: Routing
    user_name: str
    user_data: bytes | None
    charging_information: ChargingInformation | None
    sip_auth_data_item: SipAuthDataItem | None

    @classmethod
    def from_message(cls, m: Message) -> PushProfileRequest:
        ci = m.get_group("Charging-Information")
        item = m.get_group("SIP-Auth-Data-Item")
        return cls(
            routing=Routing.from_message(m),
            user_name=m.require_str("User-Name"),
            user_data=m.get_bytes("User-Data"),
            charging_information=ChargingInformation.from_group(ci) if ci is not None else None,
            sip_auth_data_item=SipAuthDataItem.from_group(item) if item is not None else None,
        )


# --- answers -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserAuthorizationAnswer:
    session_id: str
    origin_host: str
    origin_realm: str
    result: Result
    server_name: str | None
    server_capabilities: ServerCapabilities | None

    @classmethod
    def from_message(cls, m: Message) -> UserAuthorizationAnswer:
        return cls(*_answer_common(m), m.get_str("Server-Name"), _capabilities(m))


@dataclass(frozen=True, slots=True)
class ServerAssignmentAnswer:
    session_id: str
    origin_host: str
    origin_realm: str
    result: Result
    user_name: str | None
    user_data: bytes | None
    charging_information: ChargingInformation | None
    associated_identities: tuple[str, ...]
    loose_route_indication: int | None
    associated_registered_identities: tuple[str, ...]
    server_name: str | None
    wildcarded_public_identity: str | None
    priviledged_sender_indication: int | None

    @classmethod
    def from_message(cls, m: Message) -> ServerAssignmentAnswer:
        ci = m.get_group("Charging-Information")
        return cls(
            *_answer_common(m),
            user_name=m.get_str("User-Name"),
            user_data=m.get_bytes("User-Data"),
            charging_information=ChargingInformation.from_group(ci) if ci is not None else None,
            associated_identities=_user_names(m, "Associated-Identities"),
            loose_route_indication=m.get_int("Loose-Route-Indication"),
            associated_registered_identities=_user_names(m, "Associated-Registered-Identities"),
            server_name=m.get_str("Server-Name"),
            wildcarded_public_identity=m.get_str("Wildcarded-Public-Identity"),
            priviledged_sender_indication=m.get_int("Priviledged-Sender-Indication"),
        )


@dataclass(frozen=True, slots=True)
class LocationInfoAnswer:
    session_id: str
    origin_host: str
    origin_realm: str
    result: Result
    server_name: str | None
    server_capabilities: ServerCapabilities | None
    wildcarded_public_identity: str | None
    lia_flags: int

    @classmethod
    def from_message(cls, m: Message) -> LocationInfoAnswer:
        return cls(
            *_answer_common(m),
            server_name=m.get_str("Server-Name"),
            server_capabilities=_capabilities(m),
            wildcarded_public_identity=m.get_str("Wildcarded-Public-Identity"),
            lia_flags=m.get_int("LIA-Flags") or 0,
        )


@dataclass(frozen=True, slots=True)
class MultimediaAuthAnswer:
    session_id: str
    origin_host: str
    origin_realm: str
    result: Result
    user_name: str | None
    public_identity: str | None
    sip_number_auth_items: int | None
    sip_auth_data_items: tuple[SipAuthDataItem, ...]

    @classmethod
    def from_message(cls, m: Message) -> MultimediaAuthAnswer:
        return cls(
            *_answer_common(m),
            user_name=m.get_str("User-Name"),
            public_identity=m.get_str("Public-Identity"),
            sip_number_auth_items=m.get_int("SIP-Number-Auth-Items"),
            sip_auth_data_items=_auth_items(m),
        )


@dataclass(frozen=True, slots=True)
class RegistrationTerminationAnswer:
    session_id: str
    origin_host: str
    origin_realm: str
    result: Result
    associated_identities: tuple[str, ...]

    @classmethod
    def from_message(cls, m: Message) -> RegistrationTerminationAnswer:
        return cls(*_answer_common(m), _user_names(m, "Associated-Identities"))


@dataclass(frozen=True, slots=True)
class PushProfileAnswer:
    session_id: str
    origin_host: str
    origin_realm: str
    result: Result

    @classmethod
    def from_message(cls, m: Message) -> PushProfileAnswer:
        return cls(*_answer_common(m))
