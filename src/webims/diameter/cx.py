"""Cx (TS 29.228 procedures, TS 29.229 protocol): grouped structures and message builders.

Builders return :class:`Message` objects with identifiers 0; the peer layer
(:meth:`webims.diameter.peer.DiameterPeer.send_request`) stamps Hop-by-Hop and
End-to-End identifiers. Answers copy them from the request. Every Cx message
carries Vendor-Specific-Application-Id (10415, 16777216) and
Auth-Session-State NO_STATE_MAINTAINED (TS 29.229 §6.1, §7.2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, cast

from .avp import Avp, make_avp
from .base import (
    identity_avp,
    make_answer,
    make_request,
    origin_avps,
    result_avp,
    vendor_specific_application_id,
)
from .constants import (
    CX_APPLICATION_ID,
    VENDOR_3GPP,
    AuthSessionState,
    CommandCode,
    UserDataAlreadyAvailable,
)
from .cx_avps import (
    ChargingInformation,
    DeregistrationReason,
    ServerCapabilities,
    SipAuthDataItem,
    SupportedFeatures,
    identities_avp,
)
from .message import Message

# --- common parts ---------------------------------------------------------------------------------------


_CX_VSAI = vendor_specific_application_id(VENDOR_3GPP, CX_APPLICATION_ID)
_NO_STATE_MAINTAINED = make_avp("Auth-Session-State", AuthSessionState.NO_STATE_MAINTAINED)


def _cx_head(session_id: str) -> list[Avp]:
    return [make_avp("Session-Id", session_id), _CX_VSAI, _NO_STATE_MAINTAINED]


class _Grouped(Protocol):
    """A grouped structure of :mod:`.cx_avps` (Server-Capabilities, SIP-Auth-Data-Item...)."""

    def to_avp(self) -> Avp: ...


#: The value of an optional AVP: None (or an empty identity list) leaves the AVP out.
_Optional = str | bytes | int | Sequence[str] | _Grouped | None


def _optional_avps(*fields: tuple[str, _Optional]) -> list[Avp]:
    """The optional AVPs ``[ AVP ]`` of a command's ABNF (TS 29.229 §6.1), in the order given.

    Each field is (AVP name, value). A value of None is left out; an integer (an
    enumerated value too) is encoded as Unsigned32/Enumerated; a sequence of
    identities becomes the grouped ``*[ User-Name ]`` list (left out when empty);
    a grouped structure encodes itself (its own name).
    """
    avps: list[Avp] = []
    for name, value in fields:
        if value is None:
            continue
        if isinstance(value, (str, bytes)):
            avps.append(make_avp(name, value))
        elif isinstance(value, int):
            avps.append(make_avp(name, int(value)))
        elif isinstance(value, Sequence):
            if value:  # (mypy keeps bytes here: its bytes promotion)
                avps.append(identities_avp(name, cast("Sequence[str]", value)))
        else:
            avps.append(value.to_avp())
    return avps


def cx_request(
    command: CommandCode,
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    destination_host: str | None,
    avps: Iterable[Avp],
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    """A Cx request with the common header AVPs of TS 29.229 §6.1 ('R' and 'P' bits)."""
    head = [*_cx_head(session_id), *origin_avps(origin_host, origin_realm)]
    if destination_host is not None:
        head.append(identity_avp("Destination-Host", destination_host))
    head.append(identity_avp("Destination-Realm", destination_realm))
    body = [*avps, *(f.to_avp() for f in supported_features), *extra]
    return make_request(command, CX_APPLICATION_ID, [*head, *body], proxiable=True)


def cx_answer(
    request: Message,
    *,
    result: int,
    origin_host: str,
    origin_realm: str,
    avps: Iterable[Avp] = (),
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    """A Cx answer: Session-Id copied, Result-Code or Experimental-Result, Origin-*.

    ``result``: an :class:`~webims.diameter.constants.ExperimentalResultCode` becomes
    Experimental-Result with Vendor-Id 10415; any other value a Result-Code.
    """
    session_id = request.require_str("Session-Id")
    head = _cx_head(session_id)
    head.insert(2, result_avp(result))
    head += origin_avps(origin_host, origin_realm)
    return make_answer(request, [*head, *avps, *(f.to_avp() for f in supported_features), *extra])


# --- UAR / UAA (TS 29.229 §6.1.1-6.1.2) -----------------------------------------------------------------


def build_uar(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    user_name: str,
    public_identity: str,
    visited_network_identifier: str | bytes,
    user_authorization_type: int | None = None,
    uar_flags: int | None = None,
    destination_host: str | None = None,
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    avps = _optional_avps(
        ("User-Name", user_name),
        ("Public-Identity", public_identity),
        ("Visited-Network-Identifier", visited_network_identifier),
        ("User-Authorization-Type", user_authorization_type),
        ("UAR-Flags", uar_flags),
    )
    return cx_request(
        CommandCode.USER_AUTHORIZATION,
        session_id=session_id,
        origin_host=origin_host,
        origin_realm=origin_realm,
        destination_realm=destination_realm,
        destination_host=destination_host,
        avps=avps,
        supported_features=supported_features,
        extra=extra,
    )


def build_uaa(
    request: Message,
    *,
    result: int,
    origin_host: str,
    origin_realm: str,
    server_name: str | None = None,
    server_capabilities: ServerCapabilities | None = None,
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    avps = _optional_avps(("Server-Name", server_name), ("Server-Capabilities", server_capabilities))
    return cx_answer(
        request,
        result=result,
        origin_host=origin_host,
        origin_realm=origin_realm,
        avps=avps,
        supported_features=supported_features,
        extra=extra,
    )


# --- SAR / SAA (TS 29.229 §6.1.3-6.1.4) -----------------------------------------------------------------


def build_sar(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    server_name: str,
    server_assignment_type: int,
    user_data_already_available: int = UserDataAlreadyAvailable.USER_DATA_NOT_AVAILABLE,
    user_name: str | None = None,
    public_identities: Sequence[str] = (),
    wildcarded_public_identity: str | None = None,
    multiple_registration_indication: int | None = None,
    session_priority: int | None = None,
    sar_flags: int | None = None,
    destination_host: str | None = None,
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    avps = [
        *_optional_avps(("User-Name", user_name)),
        *(make_avp("Public-Identity", p) for p in public_identities),
        *_optional_avps(("Wildcarded-Public-Identity", wildcarded_public_identity)),
        identity_avp("Server-Name", server_name),
        *_optional_avps(
            ("Server-Assignment-Type", server_assignment_type),
            ("User-Data-Already-Available", user_data_already_available),
            ("Multiple-Registration-Indication", multiple_registration_indication),
            ("Session-Priority", session_priority),
            ("SAR-Flags", sar_flags),
        ),
    ]
    return cx_request(
        CommandCode.SERVER_ASSIGNMENT,
        session_id=session_id,
        origin_host=origin_host,
        origin_realm=origin_realm,
        destination_realm=destination_realm,
        destination_host=destination_host,
        avps=avps,
        supported_features=supported_features,
        extra=extra,
    )


def build_saa(
    request: Message,
    *,
    result: int,
    origin_host: str,
    origin_realm: str,
    user_name: str | None = None,
    user_data: str | bytes | None = None,
    charging_information: ChargingInformation | None = None,
    associated_identities: Sequence[str] = (),
    loose_route_indication: int | None = None,
    associated_registered_identities: Sequence[str] = (),
    server_name: str | None = None,
    wildcarded_public_identity: str | None = None,
    priviledged_sender_indication: int | None = None,
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    """SAA. ``user_data`` is the IMS subscription XML of TS 29.228 Annex E."""
    avps = _optional_avps(
        ("User-Name", user_name),
        ("User-Data", user_data),
        ("Charging-Information", charging_information),
        ("Associated-Identities", associated_identities),
        ("Loose-Route-Indication", loose_route_indication),
        ("Associated-Registered-Identities", associated_registered_identities),
        ("Server-Name", server_name),
        ("Wildcarded-Public-Identity", wildcarded_public_identity),
        ("Priviledged-Sender-Indication", priviledged_sender_indication),
    )
    return cx_answer(
        request,
        result=result,
        origin_host=origin_host,
        origin_realm=origin_realm,
        avps=avps,
        supported_features=supported_features,
        extra=extra,
    )


# --- LIR / LIA (TS 29.229 §6.1.5-6.1.6) -----------------------------------------------------------------


def build_lir(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    public_identity: str,
    originating_request: bool = False,
    user_authorization_type: int | None = None,
    session_priority: int | None = None,
    destination_host: str | None = None,
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    avps = _optional_avps(
        ("Originating-Request", 0 if originating_request else None),  # ORIGINATING (0)
        ("Public-Identity", public_identity),
        ("User-Authorization-Type", user_authorization_type),
        ("Session-Priority", session_priority),
    )
    return cx_request(
        CommandCode.LOCATION_INFO,
        session_id=session_id,
        origin_host=origin_host,
        origin_realm=origin_realm,
        destination_realm=destination_realm,
        destination_host=destination_host,
        avps=avps,
        supported_features=supported_features,
        extra=extra,
    )


def build_lia(
    request: Message,
    *,
    result: int,
    origin_host: str,
    origin_realm: str,
    server_name: str | None = None,
    server_capabilities: ServerCapabilities | None = None,
    wildcarded_public_identity: str | None = None,
    lia_flags: int | None = None,
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    avps = _optional_avps(
        ("Server-Name", server_name),
        ("Server-Capabilities", server_capabilities),
        ("Wildcarded-Public-Identity", wildcarded_public_identity),
        ("LIA-Flags", lia_flags),
    )
    return cx_answer(
        request,
        result=result,
        origin_host=origin_host,
        origin_realm=origin_realm,
        avps=avps,
        supported_features=supported_features,
        extra=extra,
    )


# --- MAR / MAA (TS 29.229 §6.1.7-6.1.8) -----------------------------------------------------------------


def build_mar(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_realm: str,
    user_name: str,
    public_identity: str,
    server_name: str,
    sip_auth_data_item: SipAuthDataItem,
    sip_number_auth_items: int = 1,
    destination_host: str | None = None,
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    avps = [
        *_optional_avps(
            ("User-Name", user_name),
            ("Public-Identity", public_identity),
            ("SIP-Auth-Data-Item", sip_auth_data_item),
            ("SIP-Number-Auth-Items", sip_number_auth_items),
        ),
        identity_avp("Server-Name", server_name),
    ]
    return cx_request(
        CommandCode.MULTIMEDIA_AUTH,
        session_id=session_id,
        origin_host=origin_host,
        origin_realm=origin_realm,
        destination_realm=destination_realm,
        destination_host=destination_host,
        avps=avps,
        supported_features=supported_features,
        extra=extra,
    )


def build_maa(
    request: Message,
    *,
    result: int,
    origin_host: str,
    origin_realm: str,
    user_name: str | None = None,
    public_identity: str | None = None,
    sip_auth_data_items: Sequence[SipAuthDataItem] = (),
    sip_number_auth_items: int | None = None,
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    """MAA. SIP-Number-Auth-Items defaults to the number of items when there are any."""
    count = sip_number_auth_items if sip_number_auth_items is not None else len(sip_auth_data_items) or None
    avps = _optional_avps(
        ("User-Name", user_name),
        ("Public-Identity", public_identity),
        ("SIP-Number-Auth-Items", count),
        *(("SIP-Auth-Data-Item", item) for item in sip_auth_data_items),
    )
    return cx_answer(
        request,
        result=result,
        origin_host=origin_host,
        origin_realm=origin_realm,
        avps=avps,
        supported_features=supported_features,
        extra=extra,
    )


# --- RTR / RTA (TS 29.229 §6.1.9-6.1.10) ----------------------------------------------------------------


def build_rtr(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_host: str,
    destination_realm: str,
    user_name: str,
    deregistration_reason: DeregistrationReason,
    public_identities: Sequence[str] = (),
    associated_identities: Sequence[str] = (),
    rtr_flags: int | None = None,
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    avps = _optional_avps(
        ("User-Name", user_name),
        ("Associated-Identities", associated_identities),
        *(("Public-Identity", p) for p in public_identities),
        ("Deregistration-Reason", deregistration_reason),
        ("RTR-Flags", rtr_flags),
    )
    return cx_request(
        CommandCode.REGISTRATION_TERMINATION,
        session_id=session_id,
        origin_host=origin_host,
        origin_realm=origin_realm,
        destination_realm=destination_realm,
        destination_host=destination_host,
        avps=avps,
        supported_features=supported_features,
        extra=extra,
    )


def build_rta(
    request: Message,
    *,
    result: int,
    origin_host: str,
    origin_realm: str,
    associated_identities: Sequence[str] = (),
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    avps = _optional_avps(("Associated-Identities", associated_identities))
    return cx_answer(
        request,
        result=result,
        origin_host=origin_host,
        origin_realm=origin_realm,
        avps=avps,
        supported_features=supported_features,
        extra=extra,
    )


# --- PPR / PPA (TS 29.229 §6.1.11-6.1.12) ---------------------------------------------------------------


def build_ppr(
    *,
    session_id: str,
    origin_host: str,
    origin_realm: str,
    destination_host: str,
    destination_realm: str,
    user_name: str,
    user_data: str | bytes | None = None,
    charging_information: ChargingInformation | None = None,
    sip_auth_data_item: SipAuthDataItem | None = None,
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    avps = _optional_avps(
        ("User-Name", user_name),
        ("User-Data", user_data),
        ("Charging-Information", charging_information),
        ("SIP-Auth-Data-Item", sip_auth_data_item),
    )
    return cx_request(
        CommandCode.PUSH_PROFILE,
        session_id=session_id,
        origin_host=origin_host,
        origin_realm=origin_realm,
        destination_realm=destination_realm,
        destination_host=destination_host,
        avps=avps,
        supported_features=supported_features,
        extra=extra,
    )


def build_ppa(
    request: Message,
    *,
    result: int,
    origin_host: str,
    origin_realm: str,
    supported_features: Sequence[SupportedFeatures] = (),
    extra: Iterable[Avp] = (),
) -> Message:
    return cx_answer(
        request,
        result=result,
        origin_host=origin_host,
        origin_realm=origin_realm,
        supported_features=supported_features,
        extra=extra,
    )
