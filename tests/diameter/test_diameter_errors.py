"""The error table: each malformed input -> Result-Code, Failed-AVP, close or not (RFC 6733 §7)."""

from __future__ import annotations

from typing import TypedDict

import pytest
from diameter_fixtures import KAMAILIO_MAR

from webims.diameter import (
    CX_APPLICATION_ID,
    VENDOR_3GPP,
    Avp,
    CommandCode,
    DiameterError,
    ExperimentalResultCode,
    Message,
    ResultCode,
    build_cer,
    build_uaa,
    build_uar,
    check_message,
    decode_avps,
    error_answer,
    make_avp,
)
from webims.diameter.base import Capabilities


class Origin(TypedDict):
    origin_host: str
    origin_realm: str


HSS: Origin = {"origin_host": "hss.ims.test", "origin_realm": "ims.test"}


def mar() -> Message:
    return Message.decode(KAMAILIO_MAR)


def replace_avp(m: Message, name: str, new: list[Avp]) -> Message:
    """``m`` with AVP ``name`` replaced by ``new`` (deleted when empty)."""
    target = m.require(name)
    avps: list[Avp] = []
    for a in m.avps:
        avps += new if a is target else [a]
    return Message(m.command_code, m.application_id, m.flags, m.hop_by_hop, m.end_to_end, tuple(avps))


def rejected(m: Message) -> DiameterError:
    with pytest.raises(DiameterError) as info:
        check_message(Message.decode(m.encode()))
    err = info.value
    assert err.request is not None and err.header is not None
    return err


def undecodable(data: bytes) -> DiameterError:
    with pytest.raises(DiameterError) as info:
        Message.decode(data)
    return info.value


# --- header-level (protocol errors, 'E' bit) --------------------------------------------------------


def test_e_bit_in_request_is_3008() -> None:
    err = rejected(mar().with_flags(0xE0))
    assert err.result_code == ResultCode.DIAMETER_INVALID_HDR_BITS and err.is_protocol_error
    assert err.failed_avp is None and not err.close_connection


def test_p_bit_must_match_the_command() -> None:
    assert rejected(mar().with_flags(0x80)).result_code == ResultCode.DIAMETER_INVALID_HDR_BITS
    caps = Capabilities("a.test", "test", (__import__("ipaddress").ip_address("127.0.0.1"),))
    assert rejected(build_cer(caps).with_flags(0xC0)).result_code == ResultCode.DIAMETER_INVALID_HDR_BITS


def test_unknown_application_is_3007_and_unknown_command_is_3001() -> None:
    m = mar()
    other_app = Message(m.command_code, 16777217, m.flags, 1, 2, m.avps)
    assert rejected(other_app).result_code == ResultCode.DIAMETER_APPLICATION_UNSUPPORTED
    other_cmd = Message(999, CX_APPLICATION_ID, m.flags, 1, 2, m.avps)
    assert rejected(other_cmd).result_code == ResultCode.DIAMETER_COMMAND_UNSUPPORTED
    with pytest.raises(DiameterError) as info:
        check_message(m, applications={0})  # Cx not negotiated on this connection
    assert info.value.result_code == ResultCode.DIAMETER_APPLICATION_UNSUPPORTED


def test_reserved_avp_flag_bit_is_3009_with_failed_avp() -> None:
    bad = Avp(1, 0x41, 0, b"alice@ims.test")
    err = rejected(replace_avp(mar(), "User-Name", [bad]))
    assert err.result_code == ResultCode.DIAMETER_INVALID_AVP_BITS
    assert err.failed_avp == bad.encode()


# --- AVP-level (permanent failures) ------------------------------------------------------------------


def test_unknown_avp_with_m_bit_is_5001_and_without_is_ignored() -> None:
    unknown_m = Avp(4242, 0xC0, 99, b"\x01")
    err = rejected(replace_avp(mar(), "User-Name", [make_avp("User-Name", "a@b"), unknown_m]))
    assert err.result_code == ResultCode.DIAMETER_AVP_UNSUPPORTED
    assert err.failed_avp == unknown_m.encode()
    check_message(
        replace_avp(mar(), "User-Name", [make_avp("User-Name", "a@b"), Avp(4242, 0x80, 99, b"\x01")])
    )


def test_unknown_m_avp_inside_a_group_comes_back_wrapped_in_its_parent() -> None:
    m = mar()
    item = m.require("SIP-Auth-Data-Item")
    unknown_m = Avp(4242, 0x40, 0, b"xy")
    new_item = Avp(item.code, item.flags, item.vendor_id, item.data + unknown_m.encode())
    err = rejected(replace_avp(m, "SIP-Auth-Data-Item", [new_item]))
    assert err.result_code == ResultCode.DIAMETER_AVP_UNSUPPORTED
    # RFC 6733 §7.5: the Grouped AVP containing only the offending AVP.
    assert err.failed_avp == Avp(item.code, item.flags, item.vendor_id, unknown_m.encode()).encode()


def test_wrong_fixed_length_is_5014() -> None:
    bad = Avp(277, 0x40, 0, b"\x00\x00\x01")  # Auth-Session-State (Enumerated) in 3 bytes
    err = rejected(replace_avp(mar(), "Auth-Session-State", [bad]))
    assert err.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert err.failed_avp == bad.encode()


def test_bad_address_length_is_5014() -> None:
    caps = Capabilities("a.test", "test", (__import__("ipaddress").ip_address("127.0.0.1"),))
    cer = build_cer(caps)
    bad = Avp(257, 0x40, 0, b"\x00\x01\x7f\x00\x00")  # IPv4 family, 3 address bytes
    err = rejected(replace_avp(cer, "Host-IP-Address", [bad]).with_ids(1, 1))
    assert (err.result_code, err.failed_avp) == (ResultCode.DIAMETER_INVALID_AVP_LENGTH, bad.encode())


def test_invalid_utf8_is_5004() -> None:
    bad = Avp(1, 0x40, 0, b"al\xffce")
    err = rejected(replace_avp(mar(), "User-Name", [bad]))
    assert (err.result_code, err.failed_avp) == (ResultCode.DIAMETER_INVALID_AVP_VALUE, bad.encode())


@pytest.mark.parametrize(
    ("name", "example_hex"),
    [
        ("User-Name", "0000000140000008"),
        ("SIP-Number-Auth-Items", "0000025fc0000010000028af00000000"),
        ("Session-Id", "0000010740000008"),
        ("Destination-Realm", "0000011b40000008"),
        ("Vendor-Specific-Application-Id", "0000010440000008"),
    ],
)
def test_missing_avp_is_5005_with_a_zero_filled_example(name: str, example_hex: str) -> None:
    err = rejected(replace_avp(mar(), name, []))
    assert err.result_code == ResultCode.DIAMETER_MISSING_AVP
    assert err.failed_avp is not None and err.failed_avp.hex() == example_hex


def test_missing_avp_inside_a_group_is_wrapped() -> None:
    vsai = make_avp("Vendor-Specific-Application-Id", [make_avp("Auth-Application-Id", CX_APPLICATION_ID)])
    err = rejected(replace_avp(mar(), "Vendor-Specific-Application-Id", [vsai]))
    assert err.result_code == ResultCode.DIAMETER_MISSING_AVP
    inner = "0000010a4000000c00000000"  # Vendor-Id, zero-filled
    assert err.failed_avp is not None and err.failed_avp.hex() == "0000010440000014" + inner


def test_too_many_is_5009_with_the_first_extra_instance() -> None:
    second = make_avp("User-Name", "mallory@ims.test")
    err = rejected(replace_avp(mar(), "User-Name", [make_avp("User-Name", "alice@ims.test"), second]))
    assert (err.result_code, err.failed_avp) == (
        ResultCode.DIAMETER_AVP_OCCURS_TOO_MANY_TIMES,
        second.encode(),
    )


def test_cx_answer_needs_a_result() -> None:
    uar = build_uar(
        session_id="s",
        destination_realm="r",
        user_name="u",
        public_identity="sip:u@r",
        visited_network_identifier=b"r",
        origin_host="i",
        origin_realm="r",
    ).with_ids(1, 2)
    uaa = build_uaa(uar, result=ResultCode.DIAMETER_SUCCESS, **HSS)
    err = rejected(replace_avp(uaa, "Result-Code", []))
    assert err.result_code == ResultCode.DIAMETER_MISSING_AVP
    assert err.failed_avp == bytes.fromhex("0000010c4000000c00000000")
    half = make_avp("Experimental-Result", [make_avp("Vendor-Id", VENDOR_3GPP)])
    err = rejected(replace_avp(uaa, "Result-Code", [half]))
    assert (
        err.failed_avp is not None and err.failed_avp.hex() == "000001294000001400000" + "12a4000000c00000000"
    )


# --- framing-level (decode) ---------------------------------------------------------------------------


def broken_server_name() -> bytes:
    """KAMAILIO_MAR whose last AVP (Server-Name, 35 bytes + 1 pad) claims 0x7fff bytes."""
    data = bytearray(KAMAILIO_MAR)
    start = len(data) - 36
    data[start + 5 : start + 8] = (0x7FFF).to_bytes(3, "big")
    return bytes(data)


def test_avp_length_beyond_the_message_is_5014() -> None:
    err = undecodable(broken_server_name())
    assert err.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH and not err.close_connection
    # RFC 6733 §7.1.5: header of the offending AVP with a minimal zero payload.
    assert err.failed_avp == bytes.fromhex("0000025ac000000c000028af")
    assert err.header is not None and err.header.hop_by_hop == 0x1C2D3E4F
    assert err.session_id == "scscf.ims.test;1700000000;7"


def test_avp_length_below_its_header_is_5014() -> None:
    err = undecodable(bytes.fromhex("0100001c800001180000000000000001000000020000011140000004"))
    assert err.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert err.failed_avp == bytes.fromhex("000001114000000c00000000")  # Disconnect-Cause, zero-filled


def test_truncated_avp_header_is_5014() -> None:
    with pytest.raises(DiameterError) as info:
        decode_avps(bytes.fromhex("000001"))
    assert info.value.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH


def test_message_length_not_multiple_of_four_is_5015_without_closing() -> None:
    m = make_avp("Origin-Host", "abc")  # 11 bytes, sent without its padding byte
    data = bytes.fromhex("0100001f80000118000000000000000100000002") + m.encode()[:11]
    err = undecodable(data)
    assert (err.result_code, err.close_connection) == (ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH, False)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x01\x00\x00", ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH),
        (
            bytes.fromhex("0100001080000118000000000000000100000002"),
            ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
        ),
        (
            bytes.fromhex("0100001880000118000000000000000100000002"),
            ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
        ),
        (bytes.fromhex("0200001480000118000000000000000100000002"), ResultCode.DIAMETER_UNSUPPORTED_VERSION),
    ],
)
def test_header_errors_close_the_connection(data: bytes, code: int) -> None:
    err = undecodable(data)
    assert (err.result_code, err.close_connection) == (code, True)


# --- answering errors -----------------------------------------------------------------------------------


def test_protocol_error_answer_has_e_bit_and_answer_message_format() -> None:
    err = rejected(mar().with_flags(0xE0))
    ans = error_answer(err, **HSS)
    assert ans is not None
    assert ans.is_error and not ans.is_request
    assert (ans.hop_by_hop, ans.end_to_end) == (0x1C2D3E4F, 0x5A000001)
    assert [a.name for a in ans.avps] == [
        "Session-Id",
        "Origin-Host",
        "Origin-Realm",
        "Result-Code",
        "Error-Message",
    ]
    assert ans.result_code == ResultCode.DIAMETER_INVALID_HDR_BITS
    assert Message.decode(ans.encode()) == ans


def test_permanent_failure_answer_is_a_cx_answer_with_failed_avp() -> None:
    err = rejected(replace_avp(mar(), "User-Name", []))
    ans = error_answer(err, **HSS)
    assert ans is not None and not ans.is_error and ans.is_proxiable
    check_message(ans)  # a valid MAA
    assert ans.result_code == ResultCode.DIAMETER_MISSING_AVP
    assert ans.require_group("Failed-AVP").avps == (Avp(1, 0x40, 0, b""),)
    assert ans.session_id == "scscf.ims.test;1700000000;7"


def test_decode_error_answer_uses_the_header_and_salvaged_session_id() -> None:
    ans = error_answer(undecodable(broken_server_name()), **HSS)
    assert ans is not None and ans.command_code == CommandCode.MULTIMEDIA_AUTH
    assert ans.session_id == "scscf.ims.test;1700000000;7"
    assert ans.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert ans.require("Failed-AVP").data == bytes.fromhex("0000025ac000000c000028af")


def test_no_answer_to_an_answer() -> None:
    uar = build_uar(
        session_id="s",
        destination_realm="r",
        user_name="u",
        public_identity="sip:u@r",
        visited_network_identifier=b"r",
        origin_host="i",
        origin_realm="r",
    ).with_ids(1, 2)
    uaa = build_uaa(uar, result=ExperimentalResultCode.DIAMETER_FIRST_REGISTRATION, **HSS)
    with pytest.raises(DiameterError) as info:
        check_message(replace_avp(uaa, "Origin-Host", []))
    assert error_answer(info.value, **HSS) is None


def test_typed_getters_raise_wire_errors() -> None:
    m = replace_avp(mar(), "User-Name", [Avp(1, 0x40, 0, b"\xff")])
    with pytest.raises(DiameterError) as info:
        m.require_str("User-Name")
    assert info.value.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE
    with pytest.raises(DiameterError) as info:
        m.require_group("SIP-Auth-Data-Item").require_str("SIP-Item-Number")
    item = m.require("SIP-Auth-Data-Item")
    assert (
        info.value.failed_avp
        == Avp(
            item.code, item.flags, item.vendor_id, bytes.fromhex("00000265c0000010000028af00000000")
        ).encode()
    )
