"""Real messages through webims.sip.parse: RFC 3665, RFC 4475, RFC 5118, RFC 7118,
JsSIP over WSS and IMS registration traces (tests/sip/fixtures/, exact bytes, CRLF).

Every valid fixture must parse and serialize back byte for byte; each family gets
field checks; every invalid one must raise ParseError with the status its RFC asks for.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest

from webims.sip import (
    AbsoluteURI,
    ParseError,
    Request,
    Response,
    SipURI,
    TelURI,
    parse,
    parse_name_addr,
    parse_uri,
)
from webims.sip.headers import unquote
from webims.sip.uri import unescape

FIXTURES = Path(__file__).parent / "fixtures"

# Fixtures that must be refused, with the answer and a word of the reason.
INVALID: dict[str, tuple[int, str]] = {
    # RFC 4475 §3.1.2: invalid messages
    "rfc4475/badinv01.sip": (400, "Empty list element"),  # ";;,;,," in Via (§3.1.2.1)
    "rfc4475/clerr.sip": (400, "Content-Length larger than body"),  # §3.1.2.2 over UDP
    "rfc4475/ncl.sip": (400, "Bad Content-Length"),  # §3.1.2.3
    "rfc4475/scalar02.sip": (400, "CSeq"),  # §3.1.2.4: CSeq >= 2**31
    "rfc4475/scalarlg.sip": (400, "CSeq"),  # §3.1.2.5 (a response: discarded)
    "rfc4475/quotbal.sip": (400, "Unterminated quoted string"),  # §3.1.2.6
    "rfc4475/ltgtruri.sip": (400, "Bad URI"),  # §3.1.2.7
    "rfc4475/lwsruri.sip": (400, "Bad request line"),  # §3.1.2.8
    "rfc4475/lwsstart.sip": (400, "Bad request line"),  # §3.1.2.9
    "rfc4475/trws.sip": (400, "Bad request line"),  # §3.1.2.10
    "rfc4475/escruri.sip": (400, "Header fields in Request-URI"),  # §3.1.2.11 (400 chosen)
    "rfc4475/baddate.sip": (400, "Bad Date"),  # §3.1.2.12 (400 chosen)
    "rfc4475/regbadct.sip": (400, "must be in <>"),  # §3.1.2.13
    "rfc4475/badaspec.sip": (400, "Whitespace inside <URI>"),  # §3.1.2.14 (400 chosen)
    "rfc4475/baddn.sip": (400, "Bad display name"),  # §3.1.2.15
    "rfc4475/badvers.sip": (505, "Version Not Supported"),  # §3.1.2.16
    "rfc4475/mismatch01.sip": (400, "CSeq method"),  # §3.1.2.17
    "rfc4475/mismatch02.sip": (400, "CSeq method"),  # §3.1.2.18
    "rfc4475/bigcode.sip": (400, "Bad status code"),  # §3.1.2.19
    # RFC 4475 §3.3: application-layer answers the parser gives
    "rfc4475/insuf.sip": (400, "Missing"),  # §3.3.1: no Call-ID, From, To
    "rfc4475/unkscm.sip": (416, "Unsupported URI Scheme"),  # §3.3.2
    # §3.3.3: well formed, but webims never accepts soap.beep as a Request-URI, which
    # the RFC says makes 416 the appropriate answer.
    "rfc4475/novelsc.sip": (416, "Unsupported URI Scheme"),
    "rfc4475/multi01.sip": (400, "Multiple"),  # §3.3.8
    "rfc4475/mcl01.sip": (400, "Multiple Content-Length"),  # §3.3.9
    # RFC 5118
    "rfc5118/ipv6-bad.sip": (400, "Bad SIP URI"),  # §4.2: IPv6 without brackets
    "rfc5118/ipv6-bug-abnf-3-colons.sip": (400, "IPv6"),  # §4.10: three colons
}

ALL = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.sip"))
VALID = [name for name in ALL if name not in INVALID]
# RFC 4475 §3.1.1.8: octets after the Content-Length-delimited message are ignored.
NOT_WHOLE = {"rfc4475/dblreq.sip"}


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def msg(name: str) -> Request | Response:
    return parse(load(name))


def req(name: str) -> Request:
    m = msg(name)
    assert isinstance(m, Request)
    return m


def resp(name: str) -> Response:
    m = msg(name)
    assert isinstance(m, Response)
    return m


def sip(uri: object) -> SipURI:
    assert isinstance(uri, SipURI)
    return uri


def test_fixture_inventory() -> None:
    assert len(ALL) >= 85
    assert all(name in ALL for name in INVALID)
    for name in ALL:
        data = load(name)
        head = data.split(b"\r\n\r\n", 1)[0]
        assert b"\r\n" in head and b"\n" not in head.replace(b"\r\n", b""), name  # CRLF only


@pytest.mark.parametrize("name", VALID)
def test_round_trip_byte_exact(name: str) -> None:
    data = load(name)
    m = parse(data)
    # typed views never mark a message modified
    m.via, m.from_, m.to, m.cseq, m.contact, m.route, m.record_route, m.path, m.service_route  # noqa: B018
    if isinstance(m, Request):
        m.uri  # noqa: B018
    assert not m.modified
    if name in NOT_WHOLE:
        assert data.startswith(m.serialize())
    else:
        assert m.serialize() == data
    assert bytes(m) == m.serialize()
    # a second pass over our own output is stable
    assert parse(m.serialize()).serialize() == m.serialize()


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_fixture_refused(name: str) -> None:
    status, reason = INVALID[name]
    with pytest.raises(ParseError) as info:
        parse(load(name))
    assert info.value.status == status
    assert reason in info.value.reason, info.value.reason


def test_invalid_fixtures_name_the_offending_line() -> None:
    lines = {
        "rfc4475/badinv01.sip": "SIP/2.0/UDP 192.0.2.15;;,;,,",
        "rfc4475/ncl.sip": "-999",
        "rfc4475/quotbal.sip": '"Mr. J. User <sip:j.user@example.com>',
        "rfc4475/lwsstart.sip": "INVITE  sip:user@example.com  SIP/2.0",
        "rfc4475/trws.sip": "OPTIONS sip:remote-target@example.com SIP/2.0  ",
        "rfc4475/baddate.sip": "Fri, 01 Jan 2010 16:00:00 EST",
        "rfc4475/badaspec.sip": '"Watson, Thomas" < sip:t.watson@example.org >',
        "rfc4475/badvers.sip": "OPTIONS sip:t.watson@example.org SIP/7.0",
        "rfc4475/mismatch01.sip": "8 INVITE",
        "rfc4475/bigcode.sip": "SIP/2.0 4294967301 better not break the receiver",
        "rfc4475/mcl01.sip": "5",
        "rfc4475/unkscm.sip": "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0",
        "rfc5118/ipv6-bad.sip": "sip:2001:db8::10",
    }
    for name, line in lines.items():
        with pytest.raises(ParseError) as info:
            parse(load(name))
        assert info.value.line == line, name


# --------------------------------------------------------------------------- RFC 3665


def test_rfc3665_registration_flow() -> None:
    f1, f2, f3, f4 = (msg(f"rfc3665/reg_f{i}_{k}.sip") for i, k in ((1, "register"), (2, "401"),
                                                                    (3, "register"), (4, "200")))
    assert isinstance(f1, Request) and f1.method == "REGISTER"
    ruri = sip(f1.uri)
    assert (ruri.scheme, ruri.user, ruri.host, ruri.port) == ("sips", None, "ss2.biloxi.example.com", None)
    via = f1.top_via
    assert (via.transport, via.host, via.port, via.branch) == ("TLS", "client.biloxi.example.com", 5061,
                                                               "z9hG4bKnashds7")
    assert f1.from_.display == "Bob" and f1.from_.tag == "a73kszlfl" and f1.to.tag is None
    assert str(f1.from_.uri) == "sips:bob@biloxi.example.com"
    assert f1.cseq.seq == 1 and f1.cseq.method == "REGISTER"
    assert f1.max_forwards == 70 and f1.call_id == "1j9FpLxk3uxtm8tn@biloxi.example.com"
    assert [str(c.uri) for c in f1.contact] == ["sips:bob@client.biloxi.example.com"]

    assert isinstance(f2, Response) and (f2.status, f2.reason) == (401, "Unauthorized")
    # folded Via: unfolded value, received parameter, raw line kept for output
    assert f2.headers.get("Via") == (
        "SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashds7 ;received=192.0.2.201"
    )
    assert f2.top_via.received == "192.0.2.201" and f2.top_via.branch == "z9hG4bKnashds7"
    assert f2.to.tag == "1410948204"
    assert f2.headers.get("WWW-Authenticate") == (
        'Digest realm="atlanta.example.com", qop="auth", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", '
        'opaque="", stale=FALSE, algorithm=MD5'
    )
    assert isinstance(f3, Request) and f3.cseq.seq == 2
    assert f3.headers.get("authorization") == (
        'Digest username="bob", realm="atlanta.example.com" nonce="ea9c8e88df84f1cec4341ae6cbe5a359", '
        'opaque="", uri="sips:ss2.biloxi.example.com", response="dfe56131d1958046689d83306477ecc"'
    )
    assert isinstance(f4, Response) and f4.status == 200
    assert f4.contact[0].expires == 3600 and f4.to.tag == "37GkEhwl6"
    assert len({m.call_id for m in (f1, f2, f3, f4)}) == 1


def test_rfc3665_session_flow() -> None:
    names = ["call_f1_invite", "call_f2_180", "call_f3_200", "call_f4_ack", "call_f5_bye", "call_f6_200"]
    f1, f2, f3, f4, f5, f6 = (msg(f"rfc3665/{n}.sip") for n in names)
    assert isinstance(f1, Request) and f1.method == "INVITE"
    assert sip(f1.uri).user == "bob" and sip(f1.uri).host == "biloxi.example.com"
    assert f1.content_type == "application/sdp" and len(f1.body) == 151
    assert f1.body.startswith(b"v=0\r\no=alice 2890844526") and f1.body.endswith(b"PCMU/8000\r\n")
    assert f1.contact[0].uri.param("transport") == "tcp"
    assert f1.from_.display == "Alice" and f1.from_.tag == "9fxced76sl"
    assert isinstance(f2, Response) and (f2.status, f2.reason) == (180, "Ringing")
    assert f2.top_via.received == "192.0.2.101" and f2.top_via.port == 5060
    assert f2.to.tag == f3.to.tag == "8321234356"
    assert isinstance(f3, Response) and len(f3.body) == 147 and b"o=bob" in f3.body
    assert isinstance(f4, Request) and f4.method == "ACK" and f4.cseq.method == "ACK"
    assert sip(f4.uri).host == "client.biloxi.example.com"
    assert f4.top_via.branch == "z9hG4bK74bd5" != f1.top_via.branch  # §17.1.1.3: 2xx ACK is new
    assert isinstance(f5, Request) and f5.method == "BYE"
    # Bob's BYE: From/To swapped relative to the INVITE
    assert f5.from_.tag == f1.to.tag or f5.from_.tag == f2.to.tag
    assert f5.to.tag == f1.from_.tag
    assert isinstance(f6, Response) and f6.cseq.method == "BYE" and f6.top_via.received == "192.0.2.201"
    assert len({m.call_id for m in (f1, f2, f3, f4, f5, f6)}) == 1


# --------------------------------------------------------------------------- RFC 4475 valid


def test_wsinv_short_tortuous_invite() -> None:
    m = req("rfc4475/wsinv.sip")
    assert m.method == "INVITE"
    assert dict(sip(m.uri).params) == {"unknownparam": None}
    assert str(m.to.uri) == "sip:vivekg@chair-dnrc.example.com" and m.to.tag == "1918181833n"
    assert m.to.display is None
    assert m.from_.display == 'J Rosenberg \\"' and m.from_.tag == "98asjd8"
    assert m.max_forwards == 68  # leading zeros
    assert m.cseq.seq == 9 and m.cseq.method == "INVITE"
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    vias = [(v.transport, v.host, v.branch) for v in m.via]
    assert vias == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("Subject") == ""  # "s :" compact form, empty value
    assert m.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (route,) = m.route
    assert dict(sip(route.uri).params) == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    (contact,) = m.contact
    assert contact.display == 'Quoted string ""'
    assert contact.param("newparam") == "newvalue" and "secondparam" in contact.params
    assert contact.q == 0.33
    assert m.content_type == "application/sdp" and len(m.body) == 150
    # folded lines keep their exact bytes
    assert b"Via  : SIP  /   2.0\r\n /UDP\r\n\t192.0.2.2;branch=390skdjuw\r\n" in m.serialize()


def test_intmeth_wide_range_of_characters() -> None:
    m = req("rfc4475/intmeth.sip")
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~" == m.cseq.method
    uri = sip(m.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert m.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"  # quoted-pairs, a NUL among them
    assert sip(m.to.uri).user == uri.user
    assert m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.param("fromparam''~+*_!.-%") == "работающий"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.max_forwards == 255
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_escapes() -> None:
    m = req("rfc4475/esc01.sip")
    uri = sip(m.uri)
    assert uri.user == "sips%3Auser%40example.com" and uri.host == "example.net"
    assert unescape(uri.user) == "sips:user@example.com"
    assert sip(m.to.uri).user == "%75se%72"
    assert m.to.uri == parse_uri("sip:user@example.com")  # §19.1.4: escapes compare decoded
    assert unescape(sip(m.from_.uri).user or "") == "I have spaces"
    (contact,) = m.contact
    assert unescape(sip(contact.uri).user or "") == "caller"
    assert dict(sip(contact.uri).params) == {"lr": None, "name": "value%41"}  # unescaped once only
    assert m.content_type == "application/sdp"  # compact "C"
    assert m.call_id == "esc01.239409asdfakjkn23onasd0-3234"  # compact "i"


def test_escnull_escaped_nulls() -> None:
    m = req("rfc4475/escnull.sip")
    assert unescape(sip(m.to.uri).user or "") == "null-\x00-null"
    assert m.from_.uri == m.to.uri
    first, second = m.contact
    assert unescape(sip(first.uri).user or "") == "\x00"
    assert unescape(sip(second.uri).user or "") == "\x00\x00"
    assert first.uri != second.uri  # two distinct contacts
    assert m.headers.get("Content-Length") == "0"  # "L:0"


def test_esc02_percent_is_not_an_escape_there() -> None:
    m = req("rfc4475/esc02.sip")
    assert m.method == "RE%47IST%45R" != "REGISTER"
    assert m.to.display == "%Z%45" == m.from_.display
    assert m.top_via.branch == "z9hG4bK209%fzsnel234"
    assert [sip(c.uri).user for c in m.contact] == ["alias1", "alias3"]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_longreq_semiuri_transports() -> None:
    assert req("rfc4475/lwsdisp.sip").from_.display == "caller"

    m = req("rfc4475/longreq.sip")
    assert m.to.display == "I have a user name of " + "extreme" * 10 + " proportion"
    to_uri = sip(m.to.uri)
    assert to_uri.port == 6000
    assert to_uri.param("unknownparam1") == "very" + "long" * 100 + "value"
    assert to_uri.param("longparam" + "name" * 25) == "shortvalue"
    assert ("very" + "long" * 25 + "parameternamewithnovalue") in to_uri.params
    assert sip(m.from_.uri).user == "amazinglylongcallername" * 5
    assert m.from_.tag == "12" + "982" * 50 + "424"
    assert m.call_id == "longreq.one" + "really" * 20 + "longcallid"
    assert len(m.via) == 34
    assert [v.host for v in m.via[:3]] == ["sip33.example.com", "sip32.example.com", "sip31.example.com"]
    assert m.via[-1].branch == "very" + "long" * 50 + "branchvalue"
    assert m.via[-1].received == "192.0.2.5"
    assert m.headers.get("Unknown-" + "Long" * 20 + "-Name", "").startswith("unknown-" + "long" * 20)

    m = req("rfc4475/semiuri.sip")
    uri = sip(m.uri)
    assert uri.user == "user;par=u%40example.net" and uri.host == "example.com" and not uri.params
    assert m.headers.get_all("Accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed", "multipart/signed",
        "message/sip", "message/sipfrag",
    ]

    m = req("rfc4475/transports.sip")
    assert [v.transport for v in m.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_dblreq_extra_octets_ignored() -> None:
    data = load("rfc4475/dblreq.sip")
    m = req("rfc4475/dblreq.sip")
    assert m.method == "REGISTER" and m.body == b""
    first = data[: data.index(b"INVITE sip:joe")]
    assert m.serialize() == first  # a proxy would forward the REGISTER alone
    assert m.contact[0].uri == parse_uri("sip:j.user@host.example.com")


def test_mpart01_binary_body_and_responses_with_odd_reasons() -> None:
    m = req("rfc4475/mpart01.sip")
    assert m.method == "MESSAGE" and m.content_type == "multipart/mixed"
    assert len(m.body) == int(m.headers.get("Content-Length", "-1"))
    assert bytes(range(256)) in m.body  # NUL, CR, LF and high octets in the body are data
    assert m.headers.get("Date") == "Sat, 15 Oct 2005 04:44:56 GMT"
    assert m.headers.get("y") == m.headers.get("Identity")  # compact form of Identity

    r = resp("rfc4475/unreason.sip")
    assert r.status == 200 and r.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    r = resp("rfc4475/noreason.sip")
    assert r.status == 100 and r.reason == ""


def test_rfc4475_valid_application_layer_cases() -> None:
    assert req("rfc4475/badbranch.sip").top_via.branch == "z9hG4bK"  # §3.2.1: well formed
    m = req("rfc4475/unksm2.sip")  # §3.3.4: unknown schemes in headers parse
    assert m.to.uri == AbsoluteURI("isbn", "2983792873")
    assert isinstance(m.from_.uri, AbsoluteURI) and m.from_.uri.scheme == "http"
    assert str(m.contact[0].uri) == "name:John_Smith"
    m = req("rfc4475/bext01.sip")
    assert m.option_tags("require") == {"nothingsupportsthis", "nothingsupportsthiseither"}
    assert m.option_tags("proxy-require") == {"noproxiessupportthis", "nordoanyproxiessupportthis"}
    m = req("rfc4475/invut.sip")
    assert m.content_type == "application/unknownformat" and len(m.body) == 40
    m = req("rfc4475/regaut01.sip")
    assert m.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"
    r = resp("rfc4475/bcast.sip")
    assert [v.host for v in r.via] == ["192.0.2.198", "255.255.255.255"]
    assert req("rfc4475/zeromf.sip").max_forwards == 0
    m = req("rfc4475/cparam01.sip")  # §3.3.12: unknownparam is a header parameter
    assert "unknownparam" in m.contact[0].params and not sip(m.contact[0].uri).params
    m = req("rfc4475/cparam02.sip")  # §3.3.13: ...and here a URI parameter
    assert not m.contact[0].params and "unknownparam" in sip(m.contact[0].uri).params
    m = req("rfc4475/regescrt.sip")
    assert sip(m.contact[0].uri).headers == "Route=%3Csip:sip.example.com%3E"
    assert req("rfc4475/sdp01.sip").headers.get("Accept") == "text/nobodyKnowsThis"
    m = req("rfc4475/inv2543.sip")  # §3.4.1: RFC 2543 syntax, no Content-Length over UDP
    assert m.top_via.branch is None and m.from_.tag is None
    assert m.headers.get("Content-Length") is None and m.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    assert sip(m.from_.uri).param("user") == "phone"
    assert sip(m.record_route[0].uri).param("maddr") == "ss1.example.com"


# --------------------------------------------------------------------------- RFC 5118


def test_rfc5118_ipv6_references() -> None:
    m = req("rfc5118/ipv6-good.sip")
    assert sip(m.uri).host == "[2001:db8::10]" and sip(m.uri).port is None
    assert m.top_via.host == "[2001:db8::9:1]" and m.top_via.branch == "z9hG4bKas3-111"
    assert sip(m.contact[0].uri).host == "[2001:db8::1]" and m.contact[0].display == "Caller"

    amb = sip(req("rfc5118/port-ambiguous.sip").uri)
    assert amb.host == "[2001:db8::10:5070]" and amb.port is None  # §4.3: no port at all
    unamb = sip(req("rfc5118/port-unambiguous.sip").uri)
    assert unamb.host == "[2001:db8::10]" and unamb.port == 5070
    assert amb != unamb

    assert req("rfc5118/via-received-param-with-delim.sip").top_via.received == "[2001:db8::9:255]"
    assert req("rfc5118/via-received-param-no-delim.sip").top_via.received == "2001:db8::9:255"

    m = req("rfc5118/ipv6-in-sdp.sip")
    assert sip(m.to.uri).host == "[2001:db8::10]" and b"c=IN IP6 2001:db8::20\r\n" in m.body
    m = req("rfc5118/mult-ip-in-header.sip")
    assert [(v.host, v.port) for v in m.via] == [
        ("[2001:db8::9:1]", 6050), ("192.0.2.1", None), ("[2001:db8::9:255]", None)
    ]
    assert m.via[2].received == "192.0.2.200" and m.via[2].transport == "TCP"
    assert b"a=group:ANAT 1 2" in req("rfc5118/mult-ip-in-sdp.sip").body
    m = req("rfc5118/ipv4-mapped-ipv6.sip")
    assert [(v.host, v.port) for v in m.via] == [("[::ffff:192.0.2.10]", 19823), ("[::ffff:192.0.2.2]", None)]
    assert m.contact[0].display == "T. desk phone" and sip(m.contact[0].uri).host == "[::ffff:192.0.2.2]"
    assert sip(req("rfc5118/ipv6-correct-abnf-2-colons.sip").uri).host == "[2001:db8::192.0.2.1]"


# --------------------------------------------------------------------------- RFC 7118 / JsSIP


def test_rfc7118_websocket_examples() -> None:
    m = req("rfc7118/f1_register.sip")
    assert m.top_via.transport == "WSS" and m.top_via.host == "df7jal23ls0d.invalid"
    assert m.headers.get("Content-Length") is None  # optional over WebSocket (§5)
    with pytest.raises(ParseError, match="Missing Content-Length"):
        parse(load("rfc7118/f1_register.sip"), stream=True)
    (c,) = m.contact
    assert c.reg_id == 1 and c.sip_instance == "urn:uuid:f81-7dec-14a06cf1"
    assert sip(c.uri).param("transport") == "ws"
    assert m.option_tags("supported") == {"path", "outbound", "gruu"}

    r = resp("rfc7118/f2_200.sip")
    (c,) = r.contact
    assert c.expires == 3600 and c.param("pub-gruu") == "sip:alice@example.com;gr=urn:uuid:f81-7dec-14a06cf1"
    assert parse_uri(c.param("temp-gruu") or "") == parse_uri("sip:87ash54=3dd.98a@example.com;gr")

    m = req("rfc7118/f1_invite.sip")
    (route,) = m.route
    assert sip(route.uri).port == 443 and sip(route.uri).param("transport") == "ws"
    assert sip(m.contact[0].uri).param("gr") == "urn:uuid:f81-7dec-14a06cf1"
    assert "ob" in sip(m.contact[0].uri).params

    m = req("rfc7118/f2_invite.sip")
    assert [v.transport for v in m.via] == ["UDP", "WSS"]
    assert m.via[1].received == "192.0.2.10" and m.via[1].rport == 52798  # folded after ";"
    assert [str(rr.uri) for rr in m.record_route] == [
        "sip:proxy.example.com;transport=udp;lr", "sip:h7kjh12s@proxy.example.com:443;transport=ws;lr",
    ]
    assert m.max_forwards == 69


def test_jssip_register_and_challenge() -> None:
    m = req("jssip/register.sip")
    via = m.top_via
    assert via.transport == "WSS" and via.host.endswith(".invalid") and via.port is None
    assert via.branch is not None and via.branch.startswith("z9hG4bK")
    assert m.max_forwards == 69 and m.expires == 600
    (c,) = m.contact
    assert "+sip.ice" in c.params and c.params["+sip.ice"] is None
    assert c.reg_id == 1 and c.expires == 600
    assert c.sip_instance == "urn:uuid:5aa0b0f4-3e6b-4fa4-8a41-8fca9e0bd1f7"
    assert sip(c.uri).param("transport") == "ws" and sip(c.uri).host == via.host
    assert m.option_tags("supported") == {"path", "gruu", "outbound"}
    assert m.headers.get_all("Allow")[:3] == ["INVITE", "ACK", "CANCEL"]
    assert m.headers.get("user-agent") == "JsSIP 3.10.1"
    assert m.from_.display == "Alice" and m.from_.uri == m.to.uri

    r = resp("jssip/register_401.sip")
    challenge = r.headers.get("WWW-Authenticate") or ""
    assert challenge.startswith("Digest ") and "algorithm=AKAv1-MD5" in challenge
    nonce = base64.b64decode(re.search(r'nonce="([^"]+)"', challenge).group(1))  # type: ignore[union-attr]
    # RAND || AUTN of TS 35.208 test set 1
    assert nonce[:16].hex() == "23553cbe9637a89d218ae64dae47bf35"
    assert nonce[16:].hex() == "55f328b43577b9b94a9ffac354dfafb3"
    assert r.top_via.rport == 52798 and r.top_via.received == "192.0.2.10"

    m = req("jssip/register_auth.sip")
    auth = m.headers.get("Authorization") or ""
    assert auth.startswith("Digest algorithm=AKAv1-MD5, ") and 'username="alice@ims.test"' in auth
    assert m.cseq.seq == 2 and m.call_id == req("jssip/register.sip").call_id
    assert (req("jssip/register_bearer.sip").headers.get("Authorization") or "").startswith("Bearer eyJ")

    r = resp("jssip/register_200.sip")
    (c,) = r.contact
    assert c.param("pub-gruu") == "sip:alice@ims.test;gr=urn:uuid:5aa0b0f4-3e6b-4fa4-8a41-8fca9e0bd1f7"
    assert [str(p.uri) for p in r.path] == ["sip:term@pcscf.ims.test;lr;ob"]
    assert [sip(s.uri).port for s in r.service_route] == [6060]
    assert r.headers.get_all("P-Associated-URI") == ["<sip:alice@ims.test>", "<tel:+15551234567>"]
    assert r.option_tags("require") == {"outbound"}


def test_jssip_invite_with_webrtc_sdp() -> None:
    m = req("jssip/invite.sip")
    sdp = (FIXTURES.parent.parent / "sdp" / "fixtures" / "chrome_offer_audio.sdp").read_bytes()
    assert m.body == sdp and m.content_type == "application/sdp"
    assert b"a=fingerprint:" in m.body and b"UDP/TLS/RTP/SAVPF" in m.body
    assert "ob" in sip(m.contact[0].uri).params
    assert m.headers.get("Session-Expires") == "90"
    assert m.option_tags("supported") == {"timer", "ice", "replaces", "outbound"}
    assert m.to.tag is None and m.from_.tag == "4n3dga9jcp" and m.cseq.seq == 5521


# --------------------------------------------------------------------------- IMS (TS 24.229 / 24.228)


def _auth_params(value: str) -> dict[str, str]:
    scheme, _, rest = value.partition(" ")
    assert scheme == "Digest"
    return {k.lower(): unquote(v) or "" for k, v in re.findall(r'([\w-]+)=("[^"]*"|[^,\s]+)', rest)}


def test_ims_initial_register_and_its_forwarding() -> None:
    m = req("ims/ue_register.sip")
    assert m.top_via.host == "[2001:db8:0:1::7]" and m.top_via.port == 5060
    auth = _auth_params(m.headers.get("Authorization") or "")
    assert auth["username"] == "alice@private.ims.test" and auth["nonce"] == "" and auth["response"] == ""
    assert m.headers.get_all("Security-Client") == [
        "ipsec-3gpp; alg=hmac-sha-1-96; ealg=null; spi-c=23456789; spi-s=12345678; port-c=2468; port-s=1357"
    ]
    assert m.option_tags("require") == {"sec-agree"} == m.option_tags("proxy-require")
    (c,) = m.contact
    assert c.expires == 600000 and c.sip_instance == "urn:gsma:imei:35490305-191766-0"
    assert c.param("+g.3gpp.icsi-ref") == "urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"
    assert "+g.3gpp.smsip" in c.params and sip(c.uri).host == "[2001:db8:0:1::7]"

    p = req("ims/pcscf_register.sip")
    assert [v.host for v in p.via] == ["pcscf.ims.test", "[2001:db8:0:1::7]"]
    assert p.via[1].received == "2001:db8:0:1::7"
    (path,) = p.path
    assert sip(path.uri).user == "term" and "lr" in sip(path.uri).params
    assert p.headers.get("P-Visited-Network-ID") == '"Visited Network Number 1"'
    assert p.headers.get("P-Charging-Vector", "").startswith('icid-value="AyretyU0dm+6O2IrT5tAFrbHLso=')
    assert _auth_params(p.headers.get("Authorization") or "")["integrity-protected"] == "no"
    assert p.max_forwards == 69 and p.option_tags("require") == {"path"}
    assert "Security-Client" not in p.headers


def test_ims_aka_challenge() -> None:
    r = resp("ims/scscf_401.sip")
    assert len(r.via) == 3 and r.headers.get_all("via")[1].startswith("SIP/2.0/UDP pcscf.ims.test")
    www = _auth_params(r.headers.get("WWW-Authenticate") or "")
    assert www["algorithm"] == "AKAv1-MD5" and www["qop"] == "auth,auth-int"
    assert www["ck"] == "b40ba9a3c58b2a05bbf0d987b21bf8cb" and www["ik"] == "f769bcd751044604127672711c6d3441"
    nonce = base64.b64decode(www["nonce"])
    assert len(nonce) == 32 and nonce[:16].hex() == "23553cbe9637a89d218ae64dae47bf35"

    to_ue = resp("ims/pcscf_401.sip")
    www2 = _auth_params(to_ue.headers.get("WWW-Authenticate") or "")
    assert "ck" not in www2 and "ik" not in www2 and www2["nonce"] == www["nonce"]
    assert (to_ue.headers.get("Security-Server") or "").startswith("ipsec-3gpp; q=0.1;")
    assert len(to_ue.via) == 1


def test_ims_protected_register_and_200() -> None:
    m = req("ims/ue_register_protected.sip")
    auth = _auth_params(m.headers.get("Authorization") or "")
    # Digest-AKAv1-MD5 (RFC 3310): the password is RES (TS 35.208 set 1: a54211d5e3ba50bf)
    res = bytes.fromhex("a54211d5e3ba50bf")
    ha1 = hashlib.md5(f"{auth['username']}:{auth['realm']}:".encode() + res).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{auth['uri']}".encode()).hexdigest()
    expected = hashlib.md5(
        f"{ha1}:{auth['nonce']}:{auth['nc']}:{auth['cnonce']}:{auth['qop']}:{ha2}".encode()
    ).hexdigest()
    assert auth["response"] == expected
    assert "Security-Verify" in m.headers and m.top_via.port == 1357

    p = req("ims/pcscf_register_protected.sip")
    assert _auth_params(p.headers.get("Authorization") or "")["integrity-protected"] == "yes"
    assert p.cseq.seq == 2 and len(p.via) == 2

    r = resp("ims/scscf_200.sip")
    assert [str(x.uri) for x in r.path] == ["sip:term@pcscf.ims.test;lr"]
    assert [str(x.uri) for x in r.service_route] == [
        "sip:orig@scscf.ims.test;lr", "sip:orig2@scscf2.ims.test;lr",
    ]
    pau = [parse_name_addr(v) for v in r.headers.get_all("P-Associated-URI")]
    assert [str(x.uri) for x in pau] == [
        "sip:alice@ims.test", "sip:alice.smith@ims.test", "tel:+15551234567",
        "sip:+15551234567@ims.test;user=phone",
    ]
    tel = pau[2].uri
    assert isinstance(tel, TelURI) and tel.is_global and tel.digits == "+15551234567"
    assert pau[3].uri != tel  # different schemes never compare equal
    assert r.headers.get("P-Charging-Function-Addresses", "").startswith("ccf=[2001:db8::b99:c88:d77:e66];")
    assert r.contact[0].expires == 600000 and r.headers.get("Date") == "Wed, 11 Jul 2001 08:49:37 GMT"

    t = req("ims/tna_register.sip")
    assert _auth_params(t.headers.get("Authorization") or "")["integrity-protected"] == "auth-done"
    assert t.contact[0].reg_id == 1 and t.expires == 600


def test_ims_forwarded_invite() -> None:
    m = req("ims/pcscf_invite.sip")
    uri = m.uri
    assert isinstance(uri, TelURI) and uri.number == "+15559876543"
    assert uri.param("phone-context") == "ims.test"
    assert [str(r.uri) for r in m.route] == ["sip:orig@scscf.ims.test;lr"]
    assert [str(r.uri) for r in m.record_route] == ["sip:pcscf.ims.test;lr"]
    pai = [parse_name_addr(v) for v in m.headers.get_all("P-Asserted-Identity")]
    assert pai[0].display == "Alice" and isinstance(pai[1].uri, TelURI)
    assert isinstance(m.to.uri, TelURI) and m.to.uri == uri
    assert m.via[1].received == "192.0.2.10" and m.via[1].rport == 52798
    assert m.contact[0].param("+g.3gpp.icsi-ref") == "urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"
    assert m.option_tags("supported") == {"100rel", "timer", "precondition"}
