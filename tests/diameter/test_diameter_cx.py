"""Cx commands (TS 29.229 §6.1): build each one, put it on the wire, parse it back field by field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, TypedDict

import pytest
from diameter_fixtures import KAMAILIO_MAR

from webims.diameter import (
    AUTH_SCHEME_AKAV1_MD5,
    AUTH_SCHEME_SIP_DIGEST,
    CX_APPLICATION_ID,
    VENDOR_3GPP,
    ChargingInformation,
    CommandCode,
    DeregistrationReason,
    ExperimentalResultCode,
    LocationInfoAnswer,
    LocationInfoRequest,
    Message,
    MultimediaAuthAnswer,
    MultimediaAuthRequest,
    PushProfileAnswer,
    PushProfileRequest,
    ReasonCode,
    RegistrationTerminationAnswer,
    RegistrationTerminationRequest,
    ResultCode,
    ServerAssignmentAnswer,
    ServerAssignmentRequest,
    ServerAssignmentType,
    ServerCapabilities,
    SipAuthDataItem,
    SipDigestAuthenticate,
    SupportedFeatures,
    UserAuthorizationAnswer,
    UserAuthorizationRequest,
    UserAuthorizationType,
    UserDataAlreadyAvailable,
    build_lia,
    build_lir,
    build_maa,
    build_mar,
    build_ppa,
    build_ppr,
    build_rta,
    build_rtr,
    build_saa,
    build_sar,
    build_uaa,
    build_uar,
    check_message,
    make_avp,
)


class Origin(TypedDict):
    origin_host: str
    origin_realm: str


ICSCF: Origin = {"origin_host": "icscf.ims.test", "origin_realm": "ims.test"}
SCSCF: Origin = {"origin_host": "scscf.ims.test", "origin_realm": "ims.test"}
HSS: Origin = {"origin_host": "hss.ims.test", "origin_realm": "ims.test"}
USER_DATA = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<IMSSubscription><PrivateID>alice@ims.test</PrivateID></IMSSubscription>"
)


def wire(m: Message, hop_by_hop: int = 0x11223344, end_to_end: int = 0x55667788) -> Message:
    """Stamp identifiers as the peer would, encode, decode, check against the CCF."""
    if m.is_request:
        m = m.with_ids(hop_by_hop, end_to_end)
    data = m.encode()
    back = Message.decode(data)
    assert back == m and back.encode() == data
    check_message(back)
    return back


def assert_cx_header(m: Message, code: CommandCode, request: bool) -> None:
    assert m.command_code == code and m.application_id == CX_APPLICATION_ID
    assert m.is_request is request and m.is_proxiable
    vsai = m.require_group("Vendor-Specific-Application-Id")
    assert (vsai.require_int("Vendor-Id"), vsai.require_int("Auth-Application-Id")) == (
        VENDOR_3GPP,
        CX_APPLICATION_ID,
    )
    assert m.require_int("Auth-Session-State") == 1
    # Session-Id first (TS 29.229 §6.1 "< Session-Id >").
    assert m.avps[0].name == "Session-Id"


def assert_answer_to(a: Message, r: Message) -> None:
    assert (a.hop_by_hop, a.end_to_end, a.command_code) == (r.hop_by_hop, r.end_to_end, r.command_code)
    assert not a.is_request and not a.is_error
    assert a.session_id == r.session_id


RAND_AUTN = bytes(range(32))
CAPS = ServerCapabilities(mandatory=(1, 2), optional=(3,), server_names=("sip:scscf.ims.test:6060",))
CHARGING = ChargingInformation(
    primary_event_charging_function_name="aaa://ecf.ims.test",
    primary_charging_collection_function_name="aaa://ccf.ims.test",
)
VECTORS = [
    SipAuthDataItem(
        authentication_scheme=AUTH_SCHEME_AKAV1_MD5,
        item_number=i,
        authenticate=RAND_AUTN,
        authorization=bytes([i]) * 8,
        confidentiality_key=bytes([0xC0 + i]) * 16,
        integrity_key=bytes([0x10 + i]) * 16,
    )
    for i in (1, 2)
]


@dataclass(frozen=True)
class Exchange:
    """One Cx request and its answer: the builders' arguments, and the fields parsed back
    (dotted names into the parsed :mod:`webims.diameter.cx_parse` structure)."""

    code: CommandCode
    build_request: Callable[..., Message]
    request_args: dict[str, Any]
    request_class: Any
    request_fields: dict[str, Any]
    build_answer: Callable[..., Message]
    answer_args: dict[str, Any]
    answer_class: Any
    answer_fields: dict[str, Any]


EXCHANGES = [
    pytest.param(
        Exchange(
            CommandCode.USER_AUTHORIZATION,
            build_uar,
            dict(
                session_id="icscf.ims.test;1;1",
                destination_realm="ims.test",
                user_name="alice@ims.test",
                public_identity="sip:alice@ims.test",
                visited_network_identifier="ims.test",
                user_authorization_type=UserAuthorizationType.REGISTRATION_AND_CAPABILITIES,
                uar_flags=1,
                supported_features=[SupportedFeatures(1, 0b101)],
                **ICSCF,
            ),
            UserAuthorizationRequest,
            {
                "routing.session_id": "icscf.ims.test;1;1",
                "routing.origin_host": "icscf.ims.test",
                "routing.origin_realm": "ims.test",
                "routing.destination_realm": "ims.test",
                "routing.destination_host": None,
                "routing.supported_features": (SupportedFeatures(1, 0b101, VENDOR_3GPP),),
                "user_name": "alice@ims.test",
                "public_identity": "sip:alice@ims.test",
                "visited_network_identifier": b"ims.test",
                "user_authorization_type": 2,
                "uar_flags": 1,
            },
            build_uaa,
            dict(result=ExperimentalResultCode.DIAMETER_FIRST_REGISTRATION, server_capabilities=CAPS, **HSS),
            UserAuthorizationAnswer,
            {
                "result.result_code": None,
                "result.experimental_vendor_id": VENDOR_3GPP,
                "result.experimental_result_code": 2001,
                "result.is_success": True,
                "result.code": 2001,
                "server_name": None,
                "server_capabilities": CAPS,
                "origin_host": "hss.ims.test",
            },
        ),
        id="UAR-UAA",
    ),
    pytest.param(
        Exchange(
            CommandCode.SERVER_ASSIGNMENT,
            build_sar,
            dict(
                session_id="scscf.ims.test;1;2",
                destination_realm="ims.test",
                destination_host="hss.ims.test",
                user_name="alice@ims.test",
                public_identities=["sip:alice@ims.test", "tel:+15550100"],
                server_name="sip:scscf.ims.test:6060",
                server_assignment_type=ServerAssignmentType.REGISTRATION,
                user_data_already_available=UserDataAlreadyAvailable.USER_DATA_NOT_AVAILABLE,
                multiple_registration_indication=1,
                session_priority=2,
                sar_flags=1,
                **SCSCF,
            ),
            ServerAssignmentRequest,
            {
                "routing.destination_host": "hss.ims.test",
                "user_name": "alice@ims.test",
                "public_identities": ("sip:alice@ims.test", "tel:+15550100"),
                "server_name": "sip:scscf.ims.test:6060",
                "server_assignment_type": 1,
                "user_data_already_available": 0,
                "multiple_registration_indication": 1,
                "session_priority": 2,
                "sar_flags": 1,
                "wildcarded_public_identity": None,
            },
            build_saa,
            dict(
                result=ResultCode.DIAMETER_SUCCESS,
                user_name="alice@ims.test",
                user_data=USER_DATA,
                charging_information=CHARGING,
                associated_identities=["alice@ims.test", "alice2@ims.test"],
                loose_route_indication=1,
                associated_registered_identities=["alice@ims.test"],
                server_name="sip:scscf.ims.test:6060",
                wildcarded_public_identity="sip:!.*!@ims.test",
                priviledged_sender_indication=0,
                **HSS,
            ),
            ServerAssignmentAnswer,
            {
                "result.result_code": 2001,
                "result.experimental_result_code": None,
                "user_name": "alice@ims.test",
                "user_data": USER_DATA,
                "charging_information": CHARGING,
                "associated_identities": ("alice@ims.test", "alice2@ims.test"),
                "associated_registered_identities": ("alice@ims.test",),
                "loose_route_indication": 1,
                "priviledged_sender_indication": 0,
                "server_name": "sip:scscf.ims.test:6060",
                "wildcarded_public_identity": "sip:!.*!@ims.test",
            },
        ),
        id="SAR-SAA",
    ),
    pytest.param(
        Exchange(
            CommandCode.LOCATION_INFO,
            build_lir,
            dict(
                session_id="icscf.ims.test;1;3",
                destination_realm="ims.test",
                public_identity="sip:bob@ims.test",
                originating_request=True,
                user_authorization_type=2,
                session_priority=0,
                **ICSCF,
            ),
            LocationInfoRequest,
            {
                "public_identity": "sip:bob@ims.test",
                "originating_request": True,
                "user_authorization_type": 2,
                "session_priority": 0,
            },
            build_lia,
            dict(
                result=ResultCode.DIAMETER_SUCCESS,
                server_name="sip:scscf.ims.test:6060",
                wildcarded_public_identity="sip:!.*!@ims.test",
                lia_flags=1,
                **HSS,
            ),
            LocationInfoAnswer,
            {
                "server_name": "sip:scscf.ims.test:6060",
                "server_capabilities": None,
                "wildcarded_public_identity": "sip:!.*!@ims.test",
                "lia_flags": 1,
            },
        ),
        id="LIR-LIA",
    ),
    pytest.param(
        Exchange(
            CommandCode.MULTIMEDIA_AUTH,
            build_mar,
            dict(
                session_id="scscf.ims.test;1;4",
                destination_realm="ims.test",
                user_name="alice@ims.test",
                public_identity="sip:alice@ims.test",
                server_name="sip:scscf.ims.test:6060",
                sip_auth_data_item=SipAuthDataItem(
                    authentication_scheme=AUTH_SCHEME_AKAV1_MD5, authorization=RAND_AUTN[:16] + bytes(14)
                ),
                sip_number_auth_items=2,
                **SCSCF,
            ),
            MultimediaAuthRequest,
            {
                "user_name": "alice@ims.test",
                "public_identity": "sip:alice@ims.test",
                "server_name": "sip:scscf.ims.test:6060",
                "sip_number_auth_items": 2,
                "sip_auth_data_item.authentication_scheme": AUTH_SCHEME_AKAV1_MD5,
                "sip_auth_data_item.authorization": RAND_AUTN[:16] + bytes(14),  # RAND || AUTS (resync)
            },
            build_maa,
            dict(
                result=ResultCode.DIAMETER_SUCCESS,
                user_name="alice@ims.test",
                public_identity="sip:alice@ims.test",
                sip_auth_data_items=VECTORS,
                **HSS,
            ),
            MultimediaAuthAnswer,
            {
                "user_name": "alice@ims.test",
                "public_identity": "sip:alice@ims.test",
                "sip_number_auth_items": 2,
                "sip_auth_data_items": tuple(VECTORS),
            },
        ),
        id="MAR-MAA-AKA",
    ),
    pytest.param(
        Exchange(
            CommandCode.REGISTRATION_TERMINATION,
            build_rtr,
            dict(
                session_id="hss.ims.test;1;5",
                destination_host="scscf.ims.test",
                destination_realm="ims.test",
                user_name="alice@ims.test",
                public_identities=["sip:alice@ims.test"],
                associated_identities=["alice2@ims.test"],
                deregistration_reason=DeregistrationReason(
                    ReasonCode.PERMANENT_TERMINATION, "subscription removed"
                ),
                rtr_flags=0,
                **HSS,
            ),
            RegistrationTerminationRequest,
            {
                "routing.destination_host": "scscf.ims.test",
                "user_name": "alice@ims.test",
                "public_identities": ("sip:alice@ims.test",),
                "associated_identities": ("alice2@ims.test",),
                "rtr_flags": 0,
                "deregistration_reason": DeregistrationReason(0, "subscription removed"),
            },
            build_rta,
            dict(result=ResultCode.DIAMETER_SUCCESS, associated_identities=["alice2@ims.test"], **SCSCF),
            RegistrationTerminationAnswer,
            {"result.code": 2001, "associated_identities": ("alice2@ims.test",)},
        ),
        id="RTR-RTA",
    ),
    pytest.param(
        Exchange(
            CommandCode.PUSH_PROFILE,
            build_ppr,
            dict(
                session_id="hss.ims.test;1;6",
                destination_host="scscf.ims.test",
                destination_realm="ims.test",
                user_name="alice@ims.test",
                user_data=USER_DATA,
                charging_information=ChargingInformation(
                    primary_charging_collection_function_name="aaa://ccf.ims.test"
                ),
                **HSS,
            ),
            PushProfileRequest,
            {
                "user_name": "alice@ims.test",
                "user_data": USER_DATA,
                "sip_auth_data_item": None,
                "charging_information": ChargingInformation(
                    primary_charging_collection_function_name="aaa://ccf.ims.test"
                ),
            },
            build_ppa,
            dict(result=ExperimentalResultCode.DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA, **SCSCF),
            PushProfileAnswer,
            {"result.code": 5009},
        ),
        id="PPR-PPA",
    ),
]


def assert_fields(parsed_class: Any, message: Message, expected: dict[str, Any]) -> None:
    """The (dotted) fields named in ``expected`` have its values in the parsed ``message``."""
    parsed = parsed_class.from_message(message)
    assert {name: attrgetter(name)(parsed) for name in expected} == expected


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_request_and_answer_fields(exchange: Exchange) -> None:
    """Build, put on the wire, parse back: every field the builder was given comes back."""
    request = wire(exchange.build_request(**exchange.request_args))
    assert_cx_header(request, exchange.code, True)
    assert_fields(exchange.request_class, request, exchange.request_fields)
    answer = wire(exchange.build_answer(request, **exchange.answer_args))
    assert_cx_header(answer, exchange.code, False)
    assert_answer_to(answer, request)
    assert_fields(exchange.answer_class, answer, exchange.answer_fields)


def test_uar_defaults_to_registration() -> None:
    uar = wire(
        build_uar(
            session_id="s",
            destination_realm="r",
            user_name="u",
            public_identity="sip:u@r",
            visited_network_identifier=b"r",
            **ICSCF,
        )
    )
    r = UserAuthorizationRequest.from_message(uar)
    assert (r.user_authorization_type, r.uar_flags) == (UserAuthorizationType.REGISTRATION, 0)


def test_empty_server_capabilities_cannot_be_built() -> None:
    # Kamailio's I-CSCF drops answers whose Server-Capabilities is empty.
    with pytest.raises(ValueError):
        ServerCapabilities()


def test_lir_is_terminating_by_default_and_lia_may_carry_capabilities() -> None:
    lir = wire(build_lir(session_id="s", destination_realm="r", public_identity="sip:b@r", **ICSCF))
    assert not LocationInfoRequest.from_message(lir).originating_request
    unregistered = wire(
        build_lia(
            lir,
            result=ExperimentalResultCode.DIAMETER_UNREGISTERED_SERVICE,
            server_capabilities=ServerCapabilities(mandatory=(0,)),
            **HSS,
        )
    )
    b = LocationInfoAnswer.from_message(unregistered)
    assert b.result.code == 2003 and b.server_capabilities == ServerCapabilities(mandatory=(0,))


def test_maa_sip_digest() -> None:
    mar = wire(Message.decode(KAMAILIO_MAR))
    digest = SipDigestAuthenticate(
        realm="ims.test", qop="auth", ha1="0123456789abcdef0123456789abcdef", algorithm="MD5"
    )
    maa = wire(
        build_maa(
            mar,
            result=ResultCode.DIAMETER_SUCCESS,
            user_name="alice@ims.test",
            public_identity="sip:alice@ims.test",
            sip_auth_data_items=[
                SipAuthDataItem(authentication_scheme=AUTH_SCHEME_SIP_DIGEST, digest=digest)
            ],
            **HSS,
        )
    )
    assert_answer_to(maa, mar)
    (item,) = MultimediaAuthAnswer.from_message(maa).sip_auth_data_items
    assert item.digest == digest
    # The RFC 4590 Digest AVPs travel with vendor 0 and the M bit (TS 29.229 Table 6.3.1).
    inner = maa.require_group("SIP-Auth-Data-Item").require_group("SIP-Digest-Authenticate")
    ha1 = inner.require("Digest-HA1")
    assert (ha1.code, ha1.vendor_id, ha1.flags) == (121, 0, 0x40)
    assert not maa.require_group("SIP-Auth-Data-Item").require("SIP-Digest-Authenticate").is_mandatory


def test_maa_with_experimental_error_has_no_items() -> None:
    mar = wire(Message.decode(KAMAILIO_MAR))
    maa = wire(build_maa(mar, result=ExperimentalResultCode.DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED, **HSS))
    a = MultimediaAuthAnswer.from_message(maa)
    assert a.result.code == 5006 and not a.result.is_success
    assert a.result.result_code is None and maa.result_code is None
    assert maa.experimental_result == (VENDOR_3GPP, 5006)
    assert (a.sip_number_auth_items, a.sip_auth_data_items) == (None, ())


def test_answer_copies_proxy_info_in_order() -> None:
    proxy = [
        make_avp("Proxy-Info", [make_avp("Proxy-Host", f"dra{i}.test"), make_avp("Proxy-State", bytes([i]))])
        for i in (1, 2)
    ]
    uar = build_uar(
        session_id="s",
        destination_realm="r",
        user_name="u",
        public_identity="sip:u@r",
        visited_network_identifier=b"r",
        extra=proxy,
        **ICSCF,
    ).with_ids(7, 8)
    uaa = wire(build_uaa(uar, result=ResultCode.DIAMETER_SUCCESS, server_name="sip:s", **HSS))
    assert uaa.find_all("Proxy-Info") == proxy  # RFC 6733 §6.2
