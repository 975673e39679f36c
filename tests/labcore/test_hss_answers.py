"""The HSS's cached-AVP answers are byte for byte what webims.diameter's Cx builders produce."""

from __future__ import annotations

from typing import TypedDict

from webims.diameter import (
    AUTH_SCHEME_SIP_DIGEST,
    ExperimentalResultCode,
    Message,
    ResultCode,
    ServerCapabilities,
    SipAuthDataItem,
    SipDigestAuthenticate,
    build_lia,
    build_maa,
    build_mar,
    build_saa,
    build_uaa,
)
from webims.labcore.hss.answers import Answers


class Origin(TypedDict):
    origin_host: str
    origin_realm: str


CAPS = ServerCapabilities(mandatory=(0, 7), server_names=("sip:scscf.ims.test:6060",))
HSS: Origin = {"origin_host": "hss.ims.test", "origin_realm": "ims.test"}
REQUEST = build_mar(
    session_id="scscf.ims.test;1;2",
    origin_host="scscf.ims.test",
    origin_realm="ims.test",
    destination_realm="ims.test",
    user_name="alice@ims.test",
    public_identity="sip:alice@ims.test",
    server_name="sip:scscf.ims.test:6060",
    sip_auth_data_item=SipAuthDataItem(authentication_scheme="SIP Digest"),
).with_ids(0x11223344, 0x55667788)


def same(a: Message, b: Message) -> None:
    assert a.encode() == b.encode()


def test_answers_equal_builders() -> None:
    x = Answers("hss.ims.test", "ims.test", CAPS)
    ok, first = ResultCode.DIAMETER_SUCCESS, ExperimentalResultCode.DIAMETER_FIRST_REGISTRATION
    same(
        x.uaa(REQUEST, result=first, capabilities=True),
        build_uaa(REQUEST, result=first, server_capabilities=CAPS, **HSS),
    )
    same(
        x.uaa(REQUEST, result=ok, server_name="sip:s"),
        build_uaa(REQUEST, result=ok, server_name="sip:s", **HSS),
    )
    same(
        x.lia(REQUEST, result=ok, server_name="sip:s", wildcarded_public_identity="sip:!.*!@x"),
        build_lia(REQUEST, result=ok, server_name="sip:s", wildcarded_public_identity="sip:!.*!@x", **HSS),
    )
    same(
        x.lia(REQUEST, result=first, capabilities=True),
        build_lia(REQUEST, result=first, server_capabilities=CAPS, **HSS),
    )
    digest = SipAuthDataItem(
        authentication_scheme=AUTH_SCHEME_SIP_DIGEST,
        item_number=1,
        digest=SipDigestAuthenticate(realm="ims.test", qop="auth", ha1="00" * 16, algorithm="MD5"),
    )
    item = x.digest_item(AUTH_SCHEME_SIP_DIGEST, "ims.test", "auth", "00" * 16, "MD5")
    assert item is x.digest_item(AUTH_SCHEME_SIP_DIGEST, "ims.test", "auth", "00" * 16, "MD5")  # cached
    same(
        x.maa(
            REQUEST, result=ok, user_name="alice@ims.test", public_identity="sip:alice@ims.test", items=[item]
        ),
        build_maa(
            REQUEST,
            result=ok,
            user_name="alice@ims.test",
            public_identity="sip:alice@ims.test",
            sip_auth_data_items=[digest],
            **HSS,
        ),
    )
    unknown = ExperimentalResultCode.DIAMETER_ERROR_USER_UNKNOWN
    same(x.maa(REQUEST, result=unknown), build_maa(REQUEST, result=unknown, **HSS))
    same(
        x.saa(
            REQUEST,
            result=ok,
            user_name="a",
            user_data="<x/>",
            associated_identities=["a", "b"],
            wildcarded_public_identity="sip:!.*!@x",
        ),
        build_saa(
            REQUEST,
            result=ok,
            user_name="a",
            user_data="<x/>",
            associated_identities=["a", "b"],
            wildcarded_public_identity="sip:!.*!@x",
            **HSS,
        ),
    )
    aka = SipAuthDataItem(
        authentication_scheme="Digest-AKAv2-MD5",
        item_number=3,
        authenticate=bytes(range(32)),
        authorization=b"\x01" * 8,
        confidentiality_key=b"\x02" * 16,
        integrity_key=b"\x03" * 16,
    )
    fast = x.aka_item("Digest-AKAv2-MD5", 3, bytes(range(32)), b"\x01" * 8, b"\x02" * 16, b"\x03" * 16)
    assert fast.encode() == aka.to_avp().encode()
    # Result-Code 2001 and Experimental-Result 2001 share a number but not an AVP.
    assert x.uaa(REQUEST, result=ok).result_code == 2001
    assert x.uaa(REQUEST, result=first).experimental_result == (10415, 2001)
