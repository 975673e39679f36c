"""Codec: header, AVP flags, padding, data formats, Grouped AVPs, dictionary, framing (RFC 6733 §3-§4)."""

from __future__ import annotations

import math
from ipaddress import IPv4Address, IPv6Address

import pytest
from diameter_fixtures import KAMAILIO_MAR, REAL_CERS, SIP_AUTH_DATA_ITEM_AKA

from webims.diameter import (
    CX_APPLICATION_ID,
    VENDOR_3GPP,
    VENDOR_ETSI,
    Avp,
    AvpType,
    CommandCode,
    DiameterError,
    Message,
    MRule,
    RawAddress,
    ResultCode,
    SipAuthDataItem,
    StreamDecoder,
    advertised_applications,
    avp_def,
    build_dwr,
    check_message,
    decode_avps,
    lookup,
    make_avp,
    ntp_to_unix,
    unix_to_ntp,
)
from webims.diameter.datatypes import NTP_UNIX_OFFSET

# --- header (RFC 6733 §3) ------------------------------------------------------------------------


def test_header_fields_of_a_real_cer() -> None:
    m = Message.decode(REAL_CERS["zte-pcscf"])
    assert m.version == 1
    assert m.header.length == 208
    assert m.command_code == CommandCode.CAPABILITIES_EXCHANGE
    assert m.application_id == 0
    assert (m.is_request, m.is_proxiable, m.is_error, m.is_retransmitted) == (True, False, False, False)
    assert m.hop_by_hop == 0x069BE694
    assert m.end_to_end == 0x413864D5


def test_header_flag_bits_encode_where_rfc6733_puts_them() -> None:
    m = Message(
        CommandCode.MULTIMEDIA_AUTH, CX_APPLICATION_ID, 0x80 | 0x40 | 0x10, 0x01020304, 0xA0B0C0D0, ()
    )
    wire = m.encode()
    assert wire.hex() == "01000014" + "d000012f" + "01000000" + "01020304" + "a0b0c0d0"
    back = Message.decode(wire)
    assert back.is_request and back.is_proxiable and back.is_retransmitted and not back.is_error
    assert Message(280, 0, 0x20, 1, 2, ()).is_error


@pytest.mark.parametrize("name", sorted(REAL_CERS))
def test_real_cer_round_trip_is_byte_exact(name: str) -> None:
    wire = REAL_CERS[name]
    m = Message.decode(wire)
    assert m.encode() == wire
    assert m.length == len(wire)
    check_message(m)


def test_huawei_hss_cer_content() -> None:
    m = Message.decode(REAL_CERS["huawei-hss"])
    assert m.origin_host == "hss.embratel.com"
    assert m.origin_realm == "embratel.com"
    assert m.get_address("Host-IP-Address") == IPv4Address("172.26.0.134")
    assert m.get_int("Vendor-Id") == 2011
    # Product-Name is sent without the M bit, as RFC 6733 §4.5 requires.
    product = m.require("Product-Name")
    assert product.as_str() == "HSS9860" and not product.is_mandatory
    assert m.get_int("Inband-Security-Id") == 0  # 299: NO_INBAND_SECURITY
    assert m.find("Origin-State-Id") is None
    assert m.get_int("Firmware-Revision") == 0
    assert CX_APPLICATION_ID in advertised_applications(m)
    vsai = m.get_all_group("Vendor-Specific-Application-Id")[0]
    assert vsai.require_int("Vendor-Id") == VENDOR_3GPP
    assert vsai.require_int("Auth-Application-Id") == CX_APPLICATION_ID


def test_kamailio_style_mar_is_accepted_and_byte_exact() -> None:
    m = Message.decode(KAMAILIO_MAR)
    assert m.encode() == KAMAILIO_MAR
    check_message(m)  # Origin-Host without M, ETSI AVPs with M: both accepted
    assert not m.require("Origin-Host").is_mandatory
    item = m.require_group("SIP-Auth-Data-Item")
    etsi = item.require_group("ETSI-SIP-Authorization")
    assert etsi.require_str("ETSI-Digest-Username") == "alice@ims.test"
    assert etsi.require_str("ETSI-Digest-Method") == "REGISTER"


# --- AVPs (RFC 6733 §4.1) ---------------------------------------------------------------------------


def test_avp_header_without_vendor_and_padding() -> None:
    a = make_avp("Origin-Host", "hss.ims.test")
    assert (a.code, a.flags, a.vendor_id) == (264, 0x40, 0)
    assert a.encode().hex() == "00000108" + "40" + "000014" + b"hss.ims.test".hex()
    b = make_avp("Origin-Realm", "ims.test1")  # 17 bytes: 3 bytes of zero padding
    assert b.length == 17
    assert b.encode() == bytes.fromhex("0000012840000011") + b"ims.test1" + b"\0\0\0"


def test_avp_header_with_vendor_id() -> None:
    a = make_avp("Public-Identity", "sip:a@b")
    assert (a.code, a.vendor_id, a.is_vendor_specific, a.is_mandatory) == (601, VENDOR_3GPP, True, True)
    assert a.encode().hex() == "00000259" + "c0" + "000013" + "000028af" + b"sip:a@b".hex() + "00"


def test_avp_flags_follow_the_dictionary_m_rule() -> None:
    assert not make_avp("Product-Name", "x").is_mandatory  # RFC 6733 §4.5: must not
    assert not make_avp("Wildcarded-Public-Identity", "x").is_mandatory  # TS 29.229: V only
    assert make_avp("Server-Name", "x").flags == 0xC0
    assert make_avp("Digest-HA1", "x").flags == 0x40  # RFC 4590 AVP: M, no V
    assert make_avp("Product-Name", "x", mandatory=True).is_mandatory


def test_avp_rejects_vendor_id_without_v_bit() -> None:
    with pytest.raises(ValueError):
        Avp(601, 0x40, VENDOR_3GPP, b"")


def test_unknown_avp_keeps_its_raw_bytes() -> None:
    raw = bytes.fromhex("0000fffe800000100000abcd01020304")  # unknown vendor AVP, no M
    (a,) = decode_avps(raw)
    assert (a.code, a.vendor_id, a.data) == (0xFFFE, 0xABCD, b"\x01\x02\x03\x04")
    assert a.definition is None and a.name == "AVP-65534/43981"
    assert a.encode() == raw


# --- data formats (RFC 6733 §4.2, §4.3) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("avp_type", "value", "hexdata"),
    [
        (AvpType.INTEGER32, -2, "fffffffe"),
        (AvpType.INTEGER64, -1, "ffffffffffffffff"),
        (AvpType.UNSIGNED32, 0xDEADBEEF, "deadbeef"),
        (AvpType.UNSIGNED64, 1 << 40, "0000010000000000"),
        (AvpType.ENUMERATED, 3, "00000003"),
        (AvpType.TIME, 0xE0000000, "e0000000"),
        (AvpType.FLOAT32, 1.5, "3fc00000"),
        (AvpType.FLOAT64, -2.0, "c000000000000000"),
        (AvpType.UTF8_STRING, "zoë", "7a6fc3ab"),
        (AvpType.OCTET_STRING, b"\x00\xff", "00ff"),
        (AvpType.DIAMETER_IDENTITY, "hss.ims.test", b"hss.ims.test".hex()),
        (AvpType.DIAMETER_URI, "aaa://hss.ims.test:3868", b"aaa://hss.ims.test:3868".hex()),
        (AvpType.ADDRESS, IPv4Address("192.0.2.1"), "0001c0000201"),
        (AvpType.ADDRESS, IPv6Address("2001:db8::1"), "0002" + "20010db8000000000000000000000001"),
        (AvpType.ADDRESS, RawAddress(8, b"\x12\x34"), "00081234"),
    ],
)
def test_data_formats(avp_type: AvpType, value: object, hexdata: str) -> None:
    from webims.diameter.datatypes import decode_value, encode_value

    data = encode_value(avp_type, value)
    assert data.hex() == hexdata
    decoded = decode_value(avp_type, data)
    if isinstance(value, float):
        assert isinstance(decoded, float) and math.isclose(decoded, value)
    else:
        assert decoded == value


def test_encode_rejects_wrong_python_values() -> None:
    with pytest.raises(ValueError):
        make_avp("Vendor-Id", -1)
    with pytest.raises(TypeError):
        make_avp("Vendor-Id", "10415")
    with pytest.raises(TypeError):
        make_avp("Experimental-Result", "not a list")
    with pytest.raises(TypeError):
        make_avp("User-Name", [make_avp("Vendor-Id", 1)])


def test_time_uses_ntp_epoch_and_rfc4330_rollover() -> None:
    assert unix_to_ntp(0) == NTP_UNIX_OFFSET
    assert ntp_to_unix(unix_to_ntp(1_700_000_000)) == 1_700_000_000
    after_2036 = 2_100_000_000 + 1_000_000_000  # a date in the 2060s
    assert unix_to_ntp(after_2036) < 0x80000000
    assert ntp_to_unix(unix_to_ntp(after_2036)) == after_2036
    a = make_avp("Event-Timestamp", unix_to_ntp(1_700_000_000))
    assert ntp_to_unix(a.as_int()) == 1_700_000_000


# --- Grouped AVPs (RFC 6733 §4.4) -----------------------------------------------------------------


def test_grouped_avp_round_trip_and_nested_access() -> None:
    (item,) = decode_avps(SIP_AUTH_DATA_ITEM_AKA)
    assert item.encode() == SIP_AUTH_DATA_ITEM_AKA
    g = item.as_group()
    assert g.require_str("SIP-Authentication-Scheme") == "EAP-AKA"
    parsed = SipAuthDataItem.from_group(g)
    assert parsed.authenticate is not None and len(parsed.authenticate) == 32
    assert parsed.authorization == bytes.fromhex("b8cfc7056c4891ce")
    assert parsed.confidentiality_key == bytes.fromhex("d0916caa8f6008195cbff313d8411369")
    assert parsed.integrity_key == bytes.fromhex("1d9f3aadeef31e24f3ebd7c52eee4d26")
    assert parsed.to_avp().encode() == SIP_AUTH_DATA_ITEM_AKA


def test_grouped_avp_built_from_avps() -> None:
    er = make_avp(
        "Experimental-Result",
        [make_avp("Vendor-Id", VENDOR_3GPP), make_avp("Experimental-Result-Code", 2001)],
    )
    assert er.encode().hex() == ("00000129400000200000010a4000000c000028af0000012a4000000c000007d1")


# --- dictionary: codes cross-checked against TS 29.229 Table 6.3.1 and Kamailio ---------------------

CX_CODES = {
    "Visited-Network-Identifier": 600,
    "Public-Identity": 601,
    "Server-Name": 602,
    "Server-Capabilities": 603,
    "Mandatory-Capability": 604,
    "Optional-Capability": 605,
    "User-Data": 606,
    "SIP-Number-Auth-Items": 607,
    "SIP-Authentication-Scheme": 608,
    "SIP-Authenticate": 609,
    "SIP-Authorization": 610,
    "SIP-Authentication-Context": 611,
    "SIP-Auth-Data-Item": 612,
    "SIP-Item-Number": 613,
    "Server-Assignment-Type": 614,
    "Deregistration-Reason": 615,
    "Reason-Code": 616,
    "Reason-Info": 617,
    "Charging-Information": 618,
    "Primary-Event-Charging-Function-Name": 619,
    "Secondary-Event-Charging-Function-Name": 620,
    "Primary-Charging-Collection-Function-Name": 621,
    "Secondary-Charging-Collection-Function-Name": 622,
    "User-Authorization-Type": 623,
    "User-Data-Already-Available": 624,
    "Confidentiality-Key": 625,
    "Integrity-Key": 626,
    "Supported-Features": 628,
    "Feature-List-ID": 629,
    "Feature-List": 630,
    "Supported-Applications": 631,
    "Associated-Identities": 632,
    "Originating-Request": 633,
    "Wildcarded-Public-Identity": 634,
    "SIP-Digest-Authenticate": 635,
    "Wildcarded-IMPU": 636,
    "UAR-Flags": 637,
    "Loose-Route-Indication": 638,
    "SCSCF-Restoration-Info": 639,
    "Path": 640,
    "Contact": 641,
    "Subscription-Info": 642,
    "Call-ID-SIP-Header": 643,
    "From-SIP-Header": 644,
    "To-SIP-Header": 645,
    "Record-Route": 646,
    "Associated-Registered-Identities": 647,
    "Multiple-Registration-Indication": 648,
    "Restoration-Info": 649,
    "Session-Priority": 650,
    "Identity-with-Emergency-Registration": 651,
    "Priviledged-Sender-Indication": 652,
    "LIA-Flags": 653,
}
BASE_CODES = {
    "User-Name": 1,
    "Host-IP-Address": 257,
    "Auth-Application-Id": 258,
    "Vendor-Specific-Application-Id": 260,
    "Session-Id": 263,
    "Origin-Host": 264,
    "Supported-Vendor-Id": 265,
    "Vendor-Id": 266,
    "Firmware-Revision": 267,
    "Result-Code": 268,
    "Product-Name": 269,
    "Disconnect-Cause": 273,
    "Auth-Session-State": 277,
    "Origin-State-Id": 278,
    "Failed-AVP": 279,
    "Error-Message": 281,
    "Route-Record": 282,
    "Destination-Realm": 283,
    "Proxy-Info": 284,
    "Destination-Host": 293,
    "Error-Reporting-Host": 294,
    "Origin-Realm": 296,
    "Experimental-Result": 297,
    "Experimental-Result-Code": 298,
    "Digest-Realm": 104,
    "Digest-QoP": 110,
    "Digest-Algorithm": 111,
    "Digest-HA1": 121,
}


@pytest.mark.parametrize(("name", "code"), sorted(CX_CODES.items()))
def test_cx_avp_codes(name: str, code: int) -> None:
    d = avp_def(name)
    assert (d.code, d.vendor_id) == (code, VENDOR_3GPP)
    assert lookup(code, VENDOR_3GPP) is d


@pytest.mark.parametrize(("name", "code"), sorted(BASE_CODES.items()))
def test_base_avp_codes(name: str, code: int) -> None:
    d = avp_def(name)
    assert (d.code, d.vendor_id) == (code, 0)


def test_dictionary_types_and_m_rules() -> None:
    assert avp_def("Server-Assignment-Type").type is AvpType.ENUMERATED
    assert avp_def("Primary-Charging-Collection-Function-Name").type is AvpType.DIAMETER_URI
    assert avp_def("Visited-Network-Identifier").type is AvpType.OCTET_STRING
    assert avp_def("Host-IP-Address").type is AvpType.ADDRESS
    assert avp_def("SIP-Digest-Authenticate").mandatory is MRule.MUST_NOT
    assert avp_def("Error-Reporting-Host").mandatory is MRule.MUST_NOT
    assert avp_def("ETSI-SIP-Authorization").key == (502, VENDOR_ETSI)
    assert lookup(638, VENDOR_3GPP) is avp_def("Loose-Route-Indication")


# --- stream framing ---------------------------------------------------------------------------------


def test_stream_decoder_reassembles_split_and_coalesced_messages() -> None:
    wire = REAL_CERS["easydiameter"] + KAMAILIO_MAR + REAL_CERS["landslide-hsgw"]
    for chunk in (1, 7, 20, 64, len(wire)):
        dec = StreamDecoder()
        out: list[object] = []
        for i in range(0, len(wire), chunk):
            out += dec.feed(wire[i : i + chunk])
        assert [m.encode() for m in out if isinstance(m, Message)] == [
            REAL_CERS["easydiameter"],
            KAMAILIO_MAR,
            REAL_CERS["landslide-hsgw"],
        ]
        assert dec.buffered == 0


def test_stream_decoder_reports_a_bad_message_and_continues() -> None:
    good = build_dwr("a.test", "test").with_ids(1, 2).encode()
    bad = bytearray(good)
    bad[20 + 5 : 20 + 8] = (0xFFFF).to_bytes(3, "big")  # first AVP length beyond the message
    items = StreamDecoder().feed(bytes(bad) + good)
    assert isinstance(items[0], DiameterError)
    assert items[0].result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH and not items[0].close_connection
    assert isinstance(items[1], Message)


def test_stream_decoder_stops_on_an_unframeable_stream() -> None:
    dec = StreamDecoder(max_message_size=1024)
    big = bytes.fromhex("0100080080000118000000000000000100000002")  # declares 2048 bytes
    items = dec.feed(build_dwr("a", "b").encode() + big)
    assert isinstance(items[0], Message)
    err = items[1]
    assert isinstance(err, DiameterError) and err.close_connection
    assert err.header is not None and err.header.hop_by_hop == 1
    assert dec.broken and dec.feed(build_dwr("a", "b").encode()) == []


def test_stream_decoder_rejects_other_versions() -> None:
    items = StreamDecoder().feed(bytes.fromhex("0200001480000118000000000000000100000002"))
    assert len(items) == 1 and isinstance(items[0], DiameterError)
    assert items[0].result_code == ResultCode.DIAMETER_UNSUPPORTED_VERSION and items[0].close_connection
