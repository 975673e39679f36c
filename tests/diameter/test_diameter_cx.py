"""Cx commands (TS 29.229 §6.1): build each one, put it on the wire, parse it back field by field."""

from __future__ import annotations

from typing import TypedDict

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


def test_uar_uaa() -> None:
    uar = wire(
        build_uar(
            session_id="icscf.ims.test;1;1",
            destination_realm="ims.test",
            user_name="alice@ims.test",
            public_identity="sip:alice@ims.test",
            visited_network_identifier="ims.test",
            user_authorization_type=UserAuthorizationType.REGISTRATION_AND_CAPABILITIES,
            uar_flags=1,
            supported_features=[SupportedFeatures(1, 0b101)],
            **ICSCF,
        )
    )
    assert_cx_header(uar, CommandCode.USER_AUTHORIZATION, True)
    r = UserAuthorizationRequest.from_message(uar)
    assert r.routing.session_id == "icscf.ims.test;1;1"
    assert (r.routing.origin_host, r.routing.origin_realm) == ("icscf.ims.test", "ims.test")
    assert (r.routing.destination_realm, r.routing.destination_host) == ("ims.test", None)
    assert r.routing.supported_features == (SupportedFeatures(1, 0b101, VENDOR_3GPP),)
    assert (r.user_name, r.public_identity, r.visited_network_identifier) == (
        "alice@ims.test",
        "sip:alice@ims.test",
        b"ims.test",
    )
    assert (r.user_authorization_type, r.uar_flags) == (2, 1)

    caps = ServerCapabilities(mandatory=(1, 2), optional=(3,), server_names=("sip:scscf.ims.test:6060",))
    uaa = wire(
        build_uaa(
            uar, result=ExperimentalResultCode.DIAMETER_FIRST_REGISTRATION, server_capabilities=caps, **HSS
        )
    )
    assert_cx_header(uaa, CommandCode.USER_AUTHORIZATION, False)
    assert_answer_to(uaa, uar)
    a = UserAuthorizationAnswer.from_message(uaa)
    assert a.result.result_code is None
    assert (a.result.experimental_vendor_id, a.result.experimental_result_code) == (VENDOR_3GPP, 2001)
    assert a.result.is_success and a.result.code == 2001
    assert (a.server_name, a.server_capabilities) == (None, caps)
    assert a.origin_host == "hss.ims.test"


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


def test_sar_saa() -> None:
    sar = wire(
        build_sar(
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
        )
    )
    assert_cx_header(sar, CommandCode.SERVER_ASSIGNMENT, True)
    r = ServerAssignmentRequest.from_message(sar)
    assert r.routing.destination_host == "hss.ims.test"
    assert r.user_name == "alice@ims.test"
    assert r.public_identities == ("sip:alice@ims.test", "tel:+15550100")
    assert (r.server_name, r.server_assignment_type, r.user_data_already_available) == (
        "sip:scscf.ims.test:6060",
        1,
        0,
    )
    assert (r.multiple_registration_indication, r.session_priority, r.sar_flags) == (1, 2, 1)
    assert r.wildcarded_public_identity is None

    charging = ChargingInformation(
        primary_event_charging_function_name="aaa://ecf.ims.test",
        primary_charging_collection_function_name="aaa://ccf.ims.test",
    )
    saa = wire(
        build_saa(
            sar,
            result=ResultCode.DIAMETER_SUCCESS,
            user_name="alice@ims.test",
            user_data=USER_DATA,
            charging_information=charging,
            associated_identities=["alice@ims.test", "alice2@ims.test"],
            loose_route_indication=1,
            associated_registered_identities=["alice@ims.test"],
            server_name="sip:scscf.ims.test:6060",
            wildcarded_public_identity="sip:!.*!@ims.test",
            priviledged_sender_indication=0,
            **HSS,
        )
    )
    assert_answer_to(saa, sar)
    a = ServerAssignmentAnswer.from_message(saa)
    assert (a.result.result_code, a.result.experimental_result_code) == (2001, None)
    assert a.user_name == "alice@ims.test" and a.user_data == USER_DATA
    assert a.charging_information == charging
    assert a.associated_identities == ("alice@ims.test", "alice2@ims.test")
    assert a.associated_registered_identities == ("alice@ims.test",)
    assert (a.loose_route_indication, a.priviledged_sender_indication) == (1, 0)
    assert (a.server_name, a.wildcarded_public_identity) == ("sip:scscf.ims.test:6060", "sip:!.*!@ims.test")


def test_lir_lia() -> None:
    lir = wire(
        build_lir(
            session_id="icscf.ims.test;1;3",
            destination_realm="ims.test",
            public_identity="sip:bob@ims.test",
            originating_request=True,
            user_authorization_type=2,
            session_priority=0,
            **ICSCF,
        )
    )
    assert_cx_header(lir, CommandCode.LOCATION_INFO, True)
    r = LocationInfoRequest.from_message(lir)
    assert (r.public_identity, r.originating_request, r.user_authorization_type, r.session_priority) == (
        "sip:bob@ims.test",
        True,
        2,
        0,
    )
    assert not LocationInfoRequest.from_message(
        wire(build_lir(session_id="s", destination_realm="r", public_identity="sip:b@r", **ICSCF))
    ).originating_request

    lia = wire(
        build_lia(
            lir,
            result=ResultCode.DIAMETER_SUCCESS,
            server_name="sip:scscf.ims.test:6060",
            wildcarded_public_identity="sip:!.*!@ims.test",
            lia_flags=1,
            **HSS,
        )
    )
    assert_answer_to(lia, lir)
    a = LocationInfoAnswer.from_message(lia)
    assert (a.server_name, a.server_capabilities, a.wildcarded_public_identity, a.lia_flags) == (
        "sip:scscf.ims.test:6060",
        None,
        "sip:!.*!@ims.test",
        1,
    )
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


def test_mar_maa_aka() -> None:
    rand_autn = bytes(range(32))
    mar = wire(
        build_mar(
            session_id="scscf.ims.test;1;4",
            destination_realm="ims.test",
            user_name="alice@ims.test",
            public_identity="sip:alice@ims.test",
            server_name="sip:scscf.ims.test:6060",
            sip_auth_data_item=SipAuthDataItem(
                authentication_scheme=AUTH_SCHEME_AKAV1_MD5, authorization=rand_autn[:16] + bytes(14)
            ),
            sip_number_auth_items=2,
            **SCSCF,
        )
    )
    assert_cx_header(mar, CommandCode.MULTIMEDIA_AUTH, True)
    r = MultimediaAuthRequest.from_message(mar)
    assert (r.user_name, r.public_identity, r.server_name, r.sip_number_auth_items) == (
        "alice@ims.test",
        "sip:alice@ims.test",
        "sip:scscf.ims.test:6060",
        2,
    )
    assert r.sip_auth_data_item.authentication_scheme == AUTH_SCHEME_AKAV1_MD5
    assert r.sip_auth_data_item.authorization == rand_autn[:16] + bytes(14)  # RAND || AUTS (resync)

    vectors = [
        SipAuthDataItem(
            authentication_scheme=AUTH_SCHEME_AKAV1_MD5,
            item_number=i,
            authenticate=rand_autn,
            authorization=bytes([i]) * 8,
            confidentiality_key=bytes([0xC0 + i]) * 16,
            integrity_key=bytes([0x10 + i]) * 16,
        )
        for i in (1, 2)
    ]
    maa = wire(
        build_maa(
            mar,
            result=ResultCode.DIAMETER_SUCCESS,
            user_name="alice@ims.test",
            public_identity="sip:alice@ims.test",
            sip_auth_data_items=vectors,
            **HSS,
        )
    )
    assert_answer_to(maa, mar)
    a = MultimediaAuthAnswer.from_message(maa)
    assert (a.user_name, a.public_identity, a.sip_number_auth_items) == (
        "alice@ims.test",
        "sip:alice@ims.test",
        2,
    )
    assert a.sip_auth_data_items == tuple(vectors)


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


def test_rtr_rta() -> None:
    rtr = wire(
        build_rtr(
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
        )
    )
    assert_cx_header(rtr, CommandCode.REGISTRATION_TERMINATION, True)
    r = RegistrationTerminationRequest.from_message(rtr)
    assert r.routing.destination_host == "scscf.ims.test"
    assert (r.user_name, r.public_identities, r.associated_identities, r.rtr_flags) == (
        "alice@ims.test",
        ("sip:alice@ims.test",),
        ("alice2@ims.test",),
        0,
    )
    assert r.deregistration_reason == DeregistrationReason(0, "subscription removed")

    rta = wire(
        build_rta(rtr, result=ResultCode.DIAMETER_SUCCESS, associated_identities=["alice2@ims.test"], **SCSCF)
    )
    assert_answer_to(rta, rtr)
    a = RegistrationTerminationAnswer.from_message(rta)
    assert a.result.code == 2001 and a.associated_identities == ("alice2@ims.test",)


def test_ppr_ppa() -> None:
    ppr = wire(
        build_ppr(
            session_id="hss.ims.test;1;6",
            destination_host="scscf.ims.test",
            destination_realm="ims.test",
            user_name="alice@ims.test",
            user_data=USER_DATA,
            charging_information=ChargingInformation(
                primary_charging_collection_function_name="aaa://ccf.ims.test"
            ),
            **HSS,
        )
    )
    assert_cx_header(ppr, CommandCode.PUSH_PROFILE, True)
    r = PushProfileRequest.from_message(ppr)
    assert (r.user_name, r.user_data, r.sip_auth_data_item) == ("alice@ims.test", USER_DATA, None)
    assert r.charging_information == ChargingInformation(
        primary_charging_collection_function_name="aaa://ccf.ims.test"
    )

    ppa = wire(build_ppa(ppr, result=ExperimentalResultCode.DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA, **SCSCF))
    assert_answer_to(ppa, ppr)
    assert PushProfileAnswer.from_message(ppa).result.code == 5009


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
