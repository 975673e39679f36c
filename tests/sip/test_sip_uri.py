"""URIs: parsing (RFC 3261 §19.1, §25.1; RFC 3966; RFC 5118) and comparison
(RFC 3261 §19.1.4 with its own example table, RFC 5954 §4, RFC 3966 §4)."""

from __future__ import annotations

import pytest

from webims.sip import AbsoluteURI, ParseError, SipURI, TelURI, parse_uri
from webims.sip.uri import escape, unescape

# RFC 3261 §19.1.4: "The URIs within each of the following sets are equivalent"
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    # the non-transitivity note: each is equivalent to the bare URI
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=off"),
    # scheme names are case-insensitive (§19.1.4), escaped password equals plain
    ("SIP:alice@atlanta.com", "sip:alice@atlanta.com"),
    ("sip:alice:pa%73s@atlanta.com", "sip:alice:pass@atlanta.com"),
    # RFC 5954 §4: IP addresses compare by value, not text
    ("sip:[2001:db8::9:1]", "sip:[2001:DB8:0:0:0:0:9:1]"),
    ("sip:bob@[::ffff:192.0.2.2]:5060", "sip:bob@[::FFFF:C000:0202]:5060"),
    # user=phone matched case-insensitively; maddr present on both sides
    ("sip:+1555@example.com;user=PHONE", "sip:+1555@example.com;user=phone"),
    ("sip:a@example.com;maddr=239.255.255.1;ttl=15", "sip:a@example.com;ttl=15;maddr=239.255.255.1"),
]

# "The URIs within each of the following sets are not equivalent"
NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),  # usernames
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),  # different ports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),  # different transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),  # port and transport
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),  # header component
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),  # no DNS in comparisons
    # "equality is not transitive"
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    # more of the rules of §19.1.4
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),  # scheme
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;maddr=192.0.2.1"),  # maddr in one only
    ("sip:alice@atlanta.com;user=phone", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com;method=INVITE", "sip:alice@atlanta.com;method=BYE"),
    ("sip:alice@atlanta.com;ttl=1", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com;transport", "sip:alice@atlanta.com;transport=tcp"),
    ("sip:alice:secret@atlanta.com", "sip:alice@atlanta.com"),  # password
    ("sip:alice:Secret@atlanta.com", "sip:alice:secret@atlanta.com"),  # userinfo case-sensitive
    ("sip:alice@atlanta.com?subject=x", "sip:alice@atlanta.com?subject=y"),
    ("sip:[2001:db8::10:5070]", "sip:[2001:db8::10]:5070"),  # RFC 5118 §4.3 / §4.4
    ("sip:%00@host5.example.com", "sip:%00%00@host5.example.com"),  # RFC 4475 §3.1.1.4
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_rfc3261_equivalent_uris(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert ua == ub and ub == ua
    assert hash(ua) == hash(ub)
    assert (ua != ub) is False


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_rfc3261_not_equivalent_uris(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert ua != ub and ub != ua


# RFC 3966 §4: separators ignored, parameters compared as a set, case-insensitively;
# phone-context compared as a domain name, or as digits without separators.
TEL_EQUAL = [
    ("tel:+1-201-555-0123", "tel:+12015550123"),
    ("tel:+1(201)555.0123", "tel:+1-201-555-0123"),
    ("tel:7042;phone-context=example.com", "tel:7042;phone-context=EXAMPLE.COM"),
    ("tel:863-1234;phone-context=+1-914-555", "tel:8631234;phone-context=+1914555"),
    ("tel:+1-201-555-0123;ext=1234;isub=A1", "tel:+12015550123;isub=a1;ext=1234"),
    ("tel:*21#;phone-context=example.net", "tel:*21#;phone-context=example.net"),
    ("TEL:+15551234567", "tel:+15551234567"),
    ("tel:abc1;phone-context=ims.test", "tel:ABC1;phone-context=ims.test"),
]
TEL_NOT_EQUAL = [
    ("tel:+12015550123", "tel:+12015550124"),
    ("tel:+12015550123", "tel:12015550123;phone-context=+1"),  # global vs local
    ("tel:7042;phone-context=example.com", "tel:7042;phone-context=example.net"),
    ("tel:+12015550123;ext=1234", "tel:+12015550123"),  # parameter in one only
    ("tel:+12015550123;ext=1234", "tel:+12015550123;ext=1235"),
    ("tel:+15551234567", "sip:+15551234567@ims.test;user=phone"),  # other scheme
]


@pytest.mark.parametrize(("a", "b"), TEL_EQUAL)
def test_rfc3966_equal(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert isinstance(ua, TelURI)
    assert ua == ub and hash(ua) == hash(ub)


@pytest.mark.parametrize(("a", "b"), TEL_NOT_EQUAL)
def test_rfc3966_not_equal(a: str, b: str) -> None:
    assert parse_uri(a) != parse_uri(b)


def test_sip_uri_parts() -> None:
    text = "sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr;maddr=192.0.2.1?subject=x&priority=urgent"
    u = parse_uri(text)
    assert isinstance(u, SipURI)
    assert (u.scheme, u.user, u.password, u.host, u.port) == ("sips", "alice", "pw", "[2001:db8::1]", 5061)
    assert dict(u.params) == {"transport": "tcp", "lr": None, "maddr": "192.0.2.1"}
    assert u.headers == "subject=x&priority=urgent"
    assert u.host_port == "[2001:db8::1]:5061"
    assert u.aor == "sips:alice@[2001:db8::1]"
    assert str(u) == text


def test_parsed_uri_keeps_its_text_and_replace_serializes_canonically() -> None:
    text = "SIP:Alice@Atlanta.COM;Transport=TCP"
    u = parse_uri(text)
    assert str(u) == text  # exact input text
    assert isinstance(u, SipURI)
    assert u.scheme == "sip" and u.param("transport") == "TCP"
    v = u.replace(port=5080)
    assert str(v) == "sip:Alice@Atlanta.COM:5080;transport=TCP" and v != u
    assert str(u.replace(params={"lr": None, "transport": "ws"})) == "sip:Alice@Atlanta.COM;lr;transport=ws"
    # parameter values are unescaped once when parsed and escaped again on output
    w = parse_uri("sip:h.example.com;n%61me=v%61lue%25%34%31")
    assert isinstance(w, SipURI) and w.param("name") == "value%41"
    again = parse_uri(str(w.replace(port=1)))
    assert isinstance(again, SipURI) and again.param("name") == "value%41"


def test_escapes() -> None:
    assert unescape("I%20have%20spaces") == "I have spaces"
    assert unescape("%C3%A9t%C3%A9") == "été"  # UTF-8 octets
    assert unescape("%00%FF") == "\x00\xff"  # not UTF-8: one character per octet
    assert escape("I have spaces") == "I%20have%20spaces"
    assert escape("été") == "%C3%A9t%C3%A9"
    assert unescape(escape("a b;c?d@e")) == "a b;c?d@e"
    for bad in ("100%", "%G1", "%2", "a%%20"):
        with pytest.raises(ParseError, match="Bad escape"):
            unescape(bad)


def test_tel_uri_parts() -> None:
    t = parse_uri("tel:+1-201-555-0123;ext=1234;isub=A1")
    assert isinstance(t, TelURI)
    assert t.is_global and t.digits == "+12015550123" and t.param("ext") == "1234"
    local = parse_uri("tel:863-1234;phone-context=+1-914-555")
    assert isinstance(local, TelURI) and not local.is_global and local.digits == "8631234"
    assert str(t.replace(params={"ext": "1"})) == "tel:+1-201-555-0123;ext=1"


def test_absolute_uri() -> None:
    u = parse_uri("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    assert u == AbsoluteURI("urn", "uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    assert u.param("x") is None and str(u) == "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    assert parse_uri("HTTP://www.example.com").scheme == "http"


BAD_URIS = [
    ("", "Bad URI"),
    ("sip", "Bad URI"),
    ("1sip:alice@example.com", "Bad URI"),
    ("sip:", "Bad SIP URI"),
    ("sip:@example.com", "Bad SIP URI"),  # user = 1*(...)
    ("sip:alice@", "Bad SIP URI"),
    ("sip:alice@example.com:", "Bad SIP URI"),
    ("sip:alice@example.com:65536", "Bad port"),
    ("sip:alice@example.com:123456", "Bad SIP URI"),
    ("sip:alice@exa mple.com", "Bad SIP URI"),
    ("sip:alice@example.com;", "Bad SIP URI"),
    ("sip:alice@example.com;transport=", "Bad SIP URI"),  # pvalue = 1*paramchar
    ("sip:alice@example.com;lr;=x", "Bad SIP URI"),
    ("sip:alice@example.com?", "Bad SIP URI"),
    ("sip:alice@example.com?subject", "Bad SIP URI"),  # header = hname "=" hvalue
    ("sip:alice@example.com?a=b,c", "Bad SIP URI"),
    ("sip:al%ZZice@example.com", "Bad escape"),
    ("sip:alice@example.com;x=%4", "Bad escape"),
    ("sip:alice@example.com?subject=%zz", "Bad escape"),
    ("sip:alice@2001:db8::1", "Bad SIP URI"),  # RFC 5118 §4.2: no brackets
    ("sip:alice@[2001:db8:::1]", "Bad IPv6"),  # RFC 5118 §4.10
    ("sip:alice@[2001:db8::1%eth0]", "Bad SIP URI"),
    ("sip:alice@[192.0.2.1]", "Bad IPv6"),
    ("sip:alice@[]", "Bad SIP URI"),
    ("sip:alice@256.0.0.1", "Bad IPv4"),
    ("sip:alice@192.0.2", "Bad IPv4"),
    ("sip:alice@192.0.2.1.", "Bad IPv4"),
    ("sip:alice@host..example.com", "Bad host"),
    ("sip:alice@-host.example.com", "Bad host"),
    ("sip:alice@host-.example.com", "Bad host"),
    ("sip:alice@example.123", "Bad host"),  # toplabel starts with a letter
    ("sip:alice@.example.com", "Bad host"),
    ("sip:alice@ex\u00e4mple.com", "Bad SIP URI"),
    ("sip:alice@example.com>", "Bad SIP URI"),
    ("sip:<alice@example.com>", "Bad SIP URI"),
    ("tel:", "Bad tel URI number"),
    ("tel:+", "Bad global number"),
    ("tel:+-()", "Bad global number"),
    ("tel:5551234", "Local tel URI without phone-context"),
    ("tel:+1555;=x", "Bad tel URI parameter"),
    ("tel:+1555;ext=%G0", "Bad escape"),
    ("tel:+1555;ext=a b", "Bad tel URI parameter"),
    ("tel:+1555;ext=%20%2", "Bad escape"),
    ("tel:+1555 1234", "Bad global number"),
    ("mailto:a b@example.com", "Bad URI"),
    ("urn:", "Bad URI"),
    ('urn:"x"', "Bad URI"),
]


@pytest.mark.parametrize(("text", "reason"), BAD_URIS)
def test_bad_uris(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_uri(text)
    assert reason in info.value.reason, info.value.reason
    assert info.value.status == 400
    assert info.value.line == text


def test_hosts_that_are_fine() -> None:
    for host in ("a", "a.b", "xn--bcher-kva.example", "host_1.example.com", "example.com.", "1e100.net",
                 "df7jal23ls0d.invalid", "192.0.2.255", "0.0.0.0", "[::1]", "[::ffff:192.0.2.2]",
                 "[2001:db8::192.0.2.1]", "[2001:db8::10:5070]"):
        u = parse_uri(f"sip:alice@{host}")
        assert isinstance(u, SipURI) and u.host == host
