"""The message model: modifying a parsed message changes only what was modified and
keeps Content-Length right (RFC 3261 §20.14); the Headers API; building responses
(§8.2.6.2); messages built from scratch."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from webims.sip import Headers, ParseError, Request, Response, SipURI, parse, parse_uri
from webims.sip.headers import Via

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def changed_lines(before: bytes, after: bytes) -> list[str]:
    a = before.decode().split("\r\n")
    b = after.decode().split("\r\n")
    return [d for d in difflib.ndiff(a, b) if d[:1] in "+-"]


def test_setting_a_header_changes_only_its_line() -> None:
    data = load("rfc3665/call_f1_invite.sip")
    m = parse(data)
    m.headers.set("Max-Forwards", "69")
    assert m.modified
    out = m.serialize()
    assert changed_lines(data, out) == ["- Max-Forwards: 70", "+ Max-Forwards: 69"]
    assert parse(out).max_forwards == 69


def test_new_body_fixes_content_length_only() -> None:
    data = load("rfc3665/call_f1_invite.sip")
    m = parse(data)
    m.body = b"v=0\r\n"
    out = m.serialize()
    assert changed_lines(data.split(b"\r\n\r\n")[0], out.split(b"\r\n\r\n")[0]) == [
        "- Content-Length: 151", "+ Content-Length: 5",
    ]
    assert out.endswith(b"\r\n\r\nv=0\r\n")
    again = parse(out)
    assert again.body == b"v=0\r\n" and again.headers.get("Content-Length") == "5"


def test_compact_content_length_is_replaced_in_place() -> None:
    data = load("rfc4475/escnull.sip")  # "L:0" last
    m = parse(data)
    m.body = b"hello"
    out = m.serialize()
    assert out == data.replace(b"L:0\r\n\r\n", b"Content-Length: 5\r\n\r\nhello")
    assert parse(out).body == b"hello"


def test_missing_content_length_is_added_when_modified() -> None:
    data = load("rfc7118/f1_register.sip")  # no Content-Length (WebSocket)
    m = parse(data)
    assert m.serialize() == data
    m.headers.add("User-Agent", "webims")
    out = m.serialize()
    assert out.endswith(b"User-Agent: webims\r\nContent-Length: 0\r\n\r\n")
    assert parse(out, stream=True).headers.get("user-agent") == "webims"


def test_folded_lines_survive_a_modification_elsewhere() -> None:
    data = load("rfc4475/wsinv.sip")
    m = parse(data)
    m.headers.set("Subject", "hi")
    out = m.serialize()
    assert changed_lines(data, out) == ["- s :", "+ Subject: hi"]
    assert b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n" in out


def test_top_via_pop_and_add_like_a_proxy() -> None:
    data = load("rfc5118/mult-ip-in-header.sip")
    m = parse(data)
    top = m.headers.pop_first("Via")
    assert top == "SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111"
    assert [v.host for v in m.via] == ["192.0.2.1", "[2001:db8::9:255]"]  # cache invalidated
    m.headers.add("Via", "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKnew", first=True)
    assert [v.host for v in m.via] == ["proxy.example.com", "192.0.2.1", "[2001:db8::9:255]"]
    out = m.serialize()
    assert sorted(changed_lines(data, out)) == [
        "+ Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKnew",
        "- Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111",
    ]
    assert out.index(b"proxy.example.com") < out.index(b"192.0.2.1")


def test_pop_first_of_a_comma_list() -> None:
    m = parse(load("ims/scscf_401.sip"))
    assert m.headers.pop_first("via") == "SIP/2.0/UDP icscf.ims.test;branch=z9hG4bK351g45.1"
    assert [v.host for v in m.via] == ["pcscf.ims.test", "[2001:db8:0:1::7]"]
    assert b"Via: SIP/2.0/UDP pcscf.ims.test;branch=z9hG4bK240f34.1\r\n" in m.serialize()
    assert m.headers.pop_first("x-none") is None


def test_request_uri_and_start_line_changes() -> None:
    data = load("rfc3665/call_f1_invite.sip")
    m = parse(data)
    assert isinstance(m, Request)
    m.uri = "sip:bob@192.0.2.4:5060;transport=tcp"
    out = m.serialize()
    assert changed_lines(data, out) == [
        "- INVITE sip:bob@biloxi.example.com SIP/2.0",
        "+ INVITE sip:bob@192.0.2.4:5060;transport=tcp SIP/2.0",
    ]
    m = parse(data)
    assert isinstance(m, Request)
    uri = m.uri
    assert isinstance(uri, SipURI)
    m.uri = uri.replace(params={"lr": None})
    assert m.serialize().startswith(b"INVITE sip:bob@biloxi.example.com;lr SIP/2.0\r\n")
    m = parse(data)
    assert isinstance(m, Request)
    m.method = "OPTIONS"
    assert m.modified and m.serialize().startswith(b"OPTIONS sip:bob@biloxi.example.com SIP/2.0\r\n")
    r = parse(load("rfc3665/call_f2_180.sip"))
    assert isinstance(r, Response)
    r.status, r.reason = 183, "Session Progress"
    assert r.serialize().startswith(b"SIP/2.0 183 Session Progress\r\n")


def test_typed_views_are_cached_and_invalidated() -> None:
    m = parse(load("rfc3665/call_f1_invite.sip"))
    assert m.via is m.via and m.from_ is m.from_
    m.headers.set("From", "Carol <sip:carol@chicago.com>;tag=z")
    assert m.from_.tag == "z" and m.from_.display == "Carol"
    m.headers.set("Via", Via("TCP", "h.example.com", 5070, {"branch": "z9hG4bKq"}).__str__())
    assert m.top_via.sent_by == "h.example.com:5070"
    assert parse(m.serialize()).top_via.branch == "z9hG4bKq"


def test_headers_api() -> None:
    h = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"),
                 ("v", "SIP/2.0/UDP b;branch=z9hG4bK2, SIP/2.0/UDP c"),
                 ("Supported", "path, gruu"), ("X-A", "1")])
    assert len(h) == 4 and "VIA" in h and "v" in h and "x-b" not in h and 3 not in h
    assert h.get("via") == "SIP/2.0/UDP a;branch=z9hG4bK1" and h.get("x-b") is None
    assert h.get("x-b", "dflt") == "dflt"
    assert h.get_all("Via") == ["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/UDP b;branch=z9hG4bK2",
                                "SIP/2.0/UDP c"]
    assert h.get_all("k") == ["path", "gruu"]
    assert h.get_all("X-A") == ["1"]
    assert h.remove("via") == 2 and "via" not in h and h.remove("via") == 0
    h.set("x-a", "2")
    h.add("X-A", "3")
    h.add("X-A", "0", first=True)
    assert h.get_all("x-a") == ["0", "2", "3"]
    h.set("X-A", "only")
    assert h.get_all("x-a") == ["only"] and list(h)[-1] == ("X-A", "only")
    copy = h.copy()
    copy.set("X-A", "changed")
    assert h.get("x-a") == "only"
    assert [f.key for f in h.fields] == ["supported", "x-a"]
    for bad in ("a\r\nVia: evil", "a\nb", "a\rb"):  # no header injection
        with pytest.raises(ValueError):
            h.set("Subject", bad)
        with pytest.raises(ValueError):
            h.add("Subject", bad)
        with pytest.raises(ValueError):
            Headers([("Subject", bad)])


def test_response_from_request() -> None:
    m = parse(load("rfc7118/f2_invite.sip"))
    assert isinstance(m, Request)
    r = m.response(180, to_tag="b0b")
    assert (r.status, r.reason) == (180, "Ringing")
    assert [v.branch for v in r.via] == [v.branch for v in m.via]
    assert r.to.tag == "b0b" and r.from_.tag == m.from_.tag and r.call_id == m.call_id
    assert r.cseq == m.cseq
    assert [str(x.uri) for x in r.record_route] == [str(x.uri) for x in m.record_route]  # §12.1.1
    again = parse(r.serialize())
    assert isinstance(again, Response) and again.to.tag == "b0b"
    assert again.headers.get("Content-Length") == "0"

    r = m.response(486, headers=[("Retry-After", "30")])
    assert r.reason == "Busy Here" and r.to.tag is None
    assert "Record-Route" not in r.headers and r.headers.get("retry-after") == "30"
    assert m.response(299).reason == "" and m.response(603, "Nope").reason == "Nope"
    # an existing To tag is kept
    bye = parse(load("rfc3665/call_f5_bye.sip"))
    assert isinstance(bye, Request)
    assert bye.response(200, to_tag="other").to.tag == "9fxced76sl"


def test_message_from_scratch() -> None:
    req = Request(
        "OPTIONS", "sip:carol@chicago.com",
        [("Via", "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877"),
         ("Max-Forwards", "70"), ("To", "<sip:carol@chicago.com>"),
         ("From", "Alice <sip:alice@atlanta.example.com>;tag=1928301774"),
         ("Call-ID", "a84b4c76e66710"), ("CSeq", "63104 OPTIONS"), ("Accept", "application/sdp")],
    )
    assert req.modified
    out = req.serialize()
    assert out.startswith(b"OPTIONS sip:carol@chicago.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33")
    assert out.endswith(b"Accept: application/sdp\r\nContent-Length: 0\r\n\r\n")
    back = parse(out, stream=True)
    assert isinstance(back, Request) and back.uri == parse_uri("sip:carol@chicago.com")
    assert back.serialize() == out
    with pytest.raises(ParseError):
        Request("OPTIONS", "sip:")
    resp = Response(200, headers=[("Content-Type", "text/plain")], body=b"hi")
    assert resp.reason == "OK" and resp.serialize() == (
        b"SIP/2.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    )


def test_lazy_views_raise_parse_error_on_values_set_later() -> None:
    m = parse(load("rfc3665/call_f1_invite.sip"))
    m.headers.set("CSeq", "x INVITE")
    with pytest.raises(ParseError):
        m.cseq  # noqa: B018
    m.headers.set("Contact", "<sip:a@b")
    with pytest.raises(ParseError):
        m.contact  # noqa: B018
    m.headers.remove("Call-ID")
    with pytest.raises(ParseError):
        m.call_id  # noqa: B018
    m.headers.set("Max-Forwards", "\u0661")  # an Arabic-Indic digit is not a DIGIT
    with pytest.raises(ParseError):
        m.max_forwards  # noqa: B018
    m.headers.set("Expires", "9" * 11)
    with pytest.raises(ParseError):
        m.expires  # noqa: B018


# --------------------------------------------------------------------------- parse-time shortcuts


REGISTER = (
    b"REGISTER sip:ims.test SIP/2.0\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:alice@ims.test>\r\n"
    b"From: \"Alice\" <sip:alice@ims.test>;tag=65bnmj.34asd\r\n"
    b"Call-ID: asidkj3ss\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:a8ksk2@df7jal23ls0d.invalid;transport=ws>;reg-id=1;"
    b"+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";expires=600\r\n"
    b"Expires: 600\r\n"
    b"Content-Length: 0\r\n\r\n"
)  # RFC 7118 §8.1 F1, with an Expires


def test_views_made_from_the_validating_match_equal_the_full_parsers() -> None:
    from webims.sip.headers import _parse_name_addr_full, _parse_via_full

    m = parse(REGISTER)
    assert isinstance(m, Request)
    assert m.top_via == _parse_via_full(m.headers.get("via"), m.headers.get("via"))
    assert m.top_via.branch == "z9hG4bK56sdasks" and m.top_via.transport == "WSS"
    for view, name in ((m.from_, "from"), (m.to, "to"), (m.contact[0], "contact")):
        value = m.headers.get(name)
        full = _parse_name_addr_full(value, value)
        assert (view.uri, view.display, dict(view.params), view.raw) == (
            full.uri, full.display, dict(full.params), full.raw)
    assert m.from_.display == "Alice" and m.from_.tag == "65bnmj.34asd"
    assert m.contact[0].sip_instance == "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    assert (m.contact[0].reg_id, m.contact[0].expires) == (1, 600)
    assert m.cseq == (1, "REGISTER") and type(m.cseq).__name__ == "CSeq"
    assert not m.contact_star
    # a copy shares the views; a change to a header forgets only its own
    copy = m.copy()
    assert copy.headers.view("via") == m.via and copy.to is m.to
    copy.headers.set("To", "<sip:bob@ims.test>;tag=x")
    assert copy.to.tag == "x" and m.to.tag is None and copy.from_ is m.from_


def test_header_lines_shared_between_messages_stay_independent() -> None:
    """Recurring lines (Max-Forwards, Expires...) are split once and their Header objects
    shared: changing one message changes no other."""
    first = parse(REGISTER)
    second = parse(REGISTER.replace(b"asidkj3ss", b"other-call"))
    assert first.headers.fields[1] is second.headers.fields[1]  # "Max-Forwards: 70", shared
    first.headers.set("Max-Forwards", "69")
    first.headers.set("Expires", "0")
    assert second.max_forwards == 70 and second.expires == 600
    assert second.serialize() == REGISTER.replace(b"asidkj3ss", b"other-call")
    assert parse(first.serialize()).max_forwards == 69
    # a repeated recurring line is still refused (RFC 4475 §3.3.8)
    twice = REGISTER.replace(b"Expires: 600\r\n", b"Expires: 600\r\nExpires: 600\r\n")
    with pytest.raises(ParseError, match="Multiple Expires"):
        parse(twice)


def test_replace_top_via_rewrites_its_own_line() -> None:
    m = parse(REGISTER)
    top = m.top_via
    m.replace_top_via(top.with_param("received", "192.0.2.7"))
    out = m.serialize()
    assert changed_lines(REGISTER, out) == [
        "- Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks",
        "+ Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks;received=192.0.2.7",
    ]
    assert parse(out).top_via.received == "192.0.2.7" and m.top_via.received == "192.0.2.7"
    # two Via values on one line: the top one is split off, the other kept
    two = parse(REGISTER.replace(b"z9hG4bK56sdasks", b"z9hG4bK1, SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2"))
    two.replace_top_via(two.top_via.with_param("received", "192.0.2.7"))
    again = parse(two.serialize())
    assert [v.branch for v in again.via] == ["z9hG4bK1", "z9hG4bK2"]
    assert again.top_via.received == "192.0.2.7"
