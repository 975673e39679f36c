"""Malformed input in the spirit of RFC 4475: each message must raise ParseError (and
nothing else) with the right status, a meaningful reason and, where there is one, the
offending line.  Then messages that look strange but are valid and must parse."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from webims.sip import DEFAULT_LIMITS, Limits, ParseError, Request, Response, SipURI, TelURI, parse

BODY = "v=0\r\n"
BASE = (
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 5\r\n"
    "\r\n" + BODY
)
RESPONSE = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def sub(old: str, new: str, base: str = BASE) -> bytes:
    assert base.count(old) == 1, old
    return base.replace(old, new).encode()


def header(name: str, value: str) -> bytes:
    """BASE with the ``name`` header's line replaced (``value`` None-like "" keeps the name)."""
    lines = BASE.split("\r\n")
    for i, line in enumerate(lines):
        if line.split(":", 1)[0] == name:
            lines[i] = f"{name}: {value}"
            return "\r\n".join(lines).encode()
    raise AssertionError(name)


def without(name: str) -> bytes:
    return "\r\n".join(x for x in BASE.split("\r\n") if x.split(":", 1)[0] != name).encode()


def add(line: str) -> bytes:
    return BASE.replace("Content-Type:", f"{line}\r\nContent-Type:").encode()


@dataclass(frozen=True)
class Bad:
    id: str
    data: bytes
    status: int
    reason: str
    line: str | None = None
    limits: Limits = DEFAULT_LIMITS


MALFORMED = [
    # ---- Content-Length (RFC 4475 §3.1.2.2, §3.1.2.3, §3.3.9)
    Bad("cl-negative", header("Content-Length", "-5"), 400, "Bad Content-Length", "-5"),
    Bad("cl-larger-than-body", header("Content-Length", "50"), 400, "larger than body", "50"),
    Bad("cl-conflicting", add("Content-Length: 4"), 400, "Multiple Content-Length", "5"),
    Bad("cl-duplicate-equal", add("l: 5"), 400, "Multiple Content-Length headers", "5"),
    Bad("cl-not-a-number", header("Content-Length", "five"), 400, "Bad Content-Length", "five"),
    Bad("cl-fullwidth-digits", header("Content-Length", "\uff15"), 400, "Bad Content-Length", "\uff15"),
    Bad("cl-overflow", header("Content-Length", "99999999999999999999"), 400, "Bad Content-Length"),
    Bad("cl-over-body-limit", header("Content-Length", "200"), 413, "Request Entity Too Large", "200",
        Limits(max_body_bytes=100)),
    Bad("body-over-limit-no-cl", without("Content-Length")[:-5] + b"x" * 150, 413,
        "Request Entity Too Large", None, Limits(max_body_bytes=100)),
    # ---- quotes and brackets (§3.1.2.6, §3.1.2.13-15)
    Bad("unterminated-display-quote", header("From", '"Alice <sip:alice@atlanta.example.com>;tag=1'),
        400, "Unterminated quoted string", '"Alice <sip:alice@atlanta.example.com>;tag=1'),
    Bad("unterminated-param-quote", header("From", '<sip:alice@atlanta.example.com>;tag="19283'),
        400, "Unterminated quoted string"),
    Bad("unterminated-angle", header("To", "<sip:bob@biloxi.example.com"), 400, "Unterminated <URI>"),
    Bad("space-in-addr-spec", header("To", "sip:bob @biloxi.example.com"), 400, "must be in <>"),
    Bad("space-inside-brackets", header("To", "< sip:bob@biloxi.example.com>"), 400, "Whitespace inside"),
    Bad("comma-in-display-token", header("To", "Bob, Jr <sip:bob@biloxi.example.com>"), 400,
        "Bad display name"),
    Bad("empty-uri-in-brackets", header("To", "Bob <>"), 400, "Bad URI"),
    Bad("junk-after-name-addr", header("To", "<sip:bob@biloxi.example.com> junk"), 400,
        "Bad parameter syntax"),
    Bad("contact-star-and-uri", add("Contact: *"), 400, "Contact: *"),
    Bad("contact-empty-element", header("Contact", "<sip:a@example.com>, ,<sip:b@example.com>"), 400,
        "Empty list element"),
    # ---- mandatory headers (§8.1.1, RFC 4475 §3.3.1)
    Bad("missing-via", without("Via"), 400, "Missing Via"),
    Bad("missing-from", without("From"), 400, "Missing From"),
    Bad("missing-to", without("To"), 400, "Missing To"),
    Bad("missing-call-id", without("Call-ID"), 400, "Missing Call-ID"),
    Bad("missing-cseq", without("CSeq"), 400, "Missing CSeq"),
    # ---- CSeq (§8.1.1.5, RFC 4475 §3.1.2.4, §3.1.2.17)
    Bad("cseq-not-a-number", header("CSeq", "abc INVITE"), 400, "Bad CSeq number", "abc INVITE"),
    Bad("cseq-negative", header("CSeq", "-1 INVITE"), 400, "Bad CSeq number", "-1 INVITE"),
    Bad("cseq-too-large", header("CSeq", "2147483648 INVITE"), 400, "2**31", "2147483648 INVITE"),
    Bad("cseq-no-method", header("CSeq", "1"), 400, "Bad CSeq header", "1"),
    Bad("cseq-bad-method", header("CSeq", "1 INV@ITE"), 400, "Bad CSeq header", "1 INV@ITE"),
    Bad("cseq-method-mismatch", header("CSeq", "1 BYE"), 400, "CSeq method does not match", "1 BYE"),
    Bad("cseq-twice", add("CSeq: 314160 INVITE"), 400, "Multiple CSeq headers"),
    # ---- other single-valued headers (RFC 4475 §3.3.8)
    Bad("from-twice", add("f: <sip:eve@example.com>;tag=2"), 400, "Multiple From headers"),
    Bad("call-id-twice", add("i: other@example.com"), 400, "Multiple Call-ID headers"),
    Bad("call-id-space", header("Call-ID", "a84b4c76e66710 @host"), 400, "Bad Call-ID"),
    Bad("call-id-empty", header("Call-ID", ""), 400, "Bad Call-ID"),
    Bad("call-id-two-ats", header("Call-ID", "a@b@c"), 400, "Bad Call-ID", "a@b@c"),
    Bad("max-forwards-256", header("Max-Forwards", "256"), 400, "Bad Max-Forwards", "256"),
    Bad("max-forwards-negative", header("Max-Forwards", "-1"), 400, "Bad Max-Forwards", "-1"),
    Bad("expires-not-a-number", add("Expires: soon"), 400, "Bad Expires", "soon"),
    Bad("expires-too-large", add("Expires: 4294967296"), 400, "Bad Expires", "4294967296"),
    Bad("date-not-gmt", add("Date: Sat, 13 Nov 2010 23:29:00 PST"), 400, "Bad Date"),
    Bad("date-bad-month", add("Date: Wed, 11 July 2001 08:49:37 GMT"), 400, "Bad Date"),
    Bad("content-type-no-subtype", header("Content-Type", "sdp"), 400, "Bad Content-Type", "sdp"),
    # ---- limits (DESIGN.md §6.5)
    Bad("huge-header-line", add("Subject: " + "x" * 300), 513, "Message Too Large", None,
        Limits(max_line_bytes=200)),
    Bad("huge-folded-header", add("Subject: a" + "\r\n b" * 150), 513, "Message Too Large", None,
        Limits(max_line_bytes=200)),
    Bad("too-many-headers", add("\r\n".join(f"X-H{i}: {i}" for i in range(40))), 513, "too many headers",
        None, Limits(max_headers=30)),
    Bad("message-too-large", add("Subject: " + "x" * 2000), 513, "Message Too Large", None,
        Limits(max_message_bytes=1000)),
    Bad("no-line-end-at-all", b"INVITE sip:bob@biloxi.example.com SIP/2.0" + b"x" * 9000, 513,
        "Message Too Large"),
    # ---- bytes that never belong in a header section
    Bad("nul-in-header", add("Subject: a\x00b"), 400, "NUL byte", "Subject: a\x00b"),
    Bad("nul-in-request-line", sub("SIP/2.0\r\nVia", "SIP/2.0\x00\r\nVia"), 400, "NUL byte"),
    Bad("control-char-in-header", add("Subject: a\x01b"), 400, "Control character", "Subject: a\x01b"),
    Bad("del-in-header", add("Subject: a\x7fb"), 400, "Control character"),
    Bad("bare-cr-in-header", add("Subject: a\rb"), 400, "Bare CR"),
    Bad("bare-cr-in-start-line", sub("INVITE sip:bob@", "INVITE\rsip:bob@"), 400, "Bare CR in start line"),
    Bad("bare-cr-one-line", b"OPTIONS sip:a@b SIP/2.0\rX\r\n\r\n", 400, "Bare CR in start line"),
    Bad("not-utf8", add("Subject: caf\xe9").replace(b"caf\xc3\xa9", b"caf\xe9"), 400, "not UTF-8"),
    Bad("overlong-utf8", add("Subject: x").replace(b"Subject: x", b"Subject: \xc0\xaf"), 400, "not UTF-8"),
    # ---- Request-URI schemes and escapes (RFC 4475 §3.1.2.11, §3.3.2)
    Bad("unknown-scheme", sub("INVITE sip:bob@biloxi.example.com", "INVITE urn:service:sos"), 416,
        "Unsupported URI Scheme", "INVITE urn:service:sos SIP/2.0"),
    Bad("http-scheme", sub("INVITE sip:bob@biloxi.example.com", "INVITE http://biloxi.example.com/"),
        416, "Unsupported URI Scheme"),
    Bad("bad-escape-ruri", sub("INVITE sip:bob@", "INVITE sip:b%zzob@"), 400, "Bad escape",
        "sip:b%zzob@biloxi.example.com"),
    Bad("truncated-escape-from", header("From", "<sip:al%6@atlanta.example.com>;tag=1"), 400, "Bad escape"),
    Bad("bad-escape-contact-param", header("Contact", "<sip:alice@pc33.atlanta.example.com;x=%g1>"),
        400, "Bad escape"),
    Bad("headers-in-ruri", sub("INVITE sip:bob@biloxi.example.com", "INVITE sip:bob@biloxi.example.com?s=x"),
        400, "Header fields in Request-URI"),
    Bad("quote-in-uri-param", sub("biloxi.example.com SIP/2.0", 'biloxi.example.com;x="y" SIP/2.0'),
        400, "Bad SIP URI"),
    Bad("ipv6-without-brackets", sub("INVITE sip:bob@biloxi.example.com", "INVITE sip:bob@2001:db8::1"),
        400, "Bad SIP URI"),
    Bad("bad-ipv6-contact", header("Contact", "<sip:alice@[2001:db8::1::2]>"), 400, "Bad IPv6"),
    Bad("bad-ipv4-to", header("To", "<sip:bob@192.0.2.256>"), 400, "Bad IPv4"),
    # ---- versions and start lines (RFC 4475 §3.1.2.7-10, §3.1.2.16, §3.1.2.19)
    Bad("version-3", sub("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"), 505, "Version Not Supported"),
    Bad("version-before-headers", sub("SIP/2.0\r\nVia", "SIP/3.0\r\nno colon here\r\nVia"), 505,
        "Version Not Supported"),  # the start line is judged first
    Bad("version-garbage", sub("SIP/2.0\r\nVia", "SIP/2.0x\r\nVia"), 400, "Bad request line"),
    Bad("response-version-1", sub("SIP/2.0 200", "SIP/1.0 200", RESPONSE), 505, "Version Not Supported"),
    Bad("status-two-digits", sub("SIP/2.0 200", "SIP/2.0 99", RESPONSE), 400, "Bad status code",
        "SIP/2.0 99 OK"),
    Bad("status-700", sub("SIP/2.0 200", "SIP/2.0 700", RESPONSE), 400, "Bad status code"),
    Bad("status-letters", sub("SIP/2.0 200", "SIP/2.0 2OO", RESPONSE), 400, "Bad status code"),
    Bad("status-fullwidth", sub("SIP/2.0 200", "SIP/2.0 \uff12\uff10\uff10", RESPONSE), 400,
        "Bad status code"),
    Bad("request-line-tab", sub("INVITE sip:", "INVITE\tsip:"), 400, "Bad request line"),
    Bad("request-line-no-version", sub(" SIP/2.0\r\nVia", "\r\nVia"), 400, "Bad request line"),
    Bad("method-not-token", sub("INVITE sip:", "INV@ITE sip:"), 400, "Bad method"),
    # ---- header lines
    Bad("header-without-colon", add("Subject foo"), 400, "Header line without colon", "Subject foo"),
    Bad("header-name-with-space", add("Sub ject: foo"), 400, "Bad header name", "Sub ject: foo"),
    Bad("header-name-empty", add(": foo"), 400, "Bad header name", ": foo"),
    Bad("continuation-first", sub("SIP/2.0\r\nVia", "SIP/2.0\r\n folded\r\nVia"), 400,
        "Continuation line before any header", " folded"),
    Bad("incomplete-header-section", BASE.split("\r\n\r\n")[0].encode(), 400, "missing empty line"),
    Bad("empty", b"", 400, "Empty message"),
    Bad("only-crlfs", b"\r\n\r\n\r\n", 400, "Empty message"),
    # ---- Via (§20.42, RFC 3581, RFC 5118 §4.5, RFC 4475 §3.1.2.1)
    Bad("via-no-sent-by", header("Via", "SIP/2.0/UDP"), 400, "Bad Via header", "SIP/2.0/UDP"),
    Bad("via-protocol", header("Via", "SIP/3.0/UDP pc33.atlanta.example.com;branch=z9hG4bK1"), 400,
        "Bad Via protocol"),
    Bad("via-bad-host", header("Via", "SIP/2.0/UDP pc33..example.com;branch=z9hG4bK1"), 400, "Bad host"),
    Bad("via-port-too-large", header("Via", "SIP/2.0/UDP pc33.atlanta.example.com:70000;branch=z9hG4bK1"),
        400, "Bad Via port"),
    Bad("via-bad-received", header("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1;received=nowhere"),
        400, "Bad Via received"),
    Bad("via-bad-received-case", header("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1;RECEIVED=x.y"),
        400, "Bad Via received"),
    Bad("via-bad-rport", header("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1;rport=x"), 400,
        "Bad Via rport"),
    Bad("via-bad-ttl", header("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1;ttl=300"), 400,
        "Bad Via ttl"),
    Bad("via-empty-branch", header("Via", "SIP/2.0/UDP a.example.com;branch="), 400, "Bad parameter syntax"),
    Bad("via-bad-ipv6", header("Via", "SIP/2.0/UDP [2001:db8:::1];branch=z9hG4bK1"), 400, "Bad IPv6"),
    Bad("via-trailing-comma", header("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1,"), 400,
        "Empty list element"),
    Bad("via-unterminated-quote", header("Via", 'SIP/2.0/UDP a.example.com;branch=z9hG4bK1;x="y'), 400,
        "Unterminated quoted string"),
]


@pytest.mark.parametrize("case", MALFORMED, ids=[c.id for c in MALFORMED])
def test_malformed(case: Bad) -> None:
    with pytest.raises(ParseError) as info:
        parse(case.data, case.limits)
    err = info.value
    assert type(err) is ParseError
    assert err.status == case.status, err
    assert case.reason in err.reason, err.reason
    if case.line is not None:
        assert err.line == case.line
    assert str(err).startswith(f"{case.status} ")


def test_table_is_large_and_distinct() -> None:
    assert len(MALFORMED) >= 40
    assert len({c.id for c in MALFORMED}) == len(MALFORMED)
    assert len({c.data for c in MALFORMED}) == len(MALFORMED)


def test_base_messages_are_valid() -> None:
    """Each malformed case differs from a message that parses (so each case tests its change)."""
    assert isinstance(parse(BASE.encode()), Request)
    assert isinstance(parse(RESPONSE.encode()), Response)
    assert parse(BASE.encode(), Limits(max_line_bytes=200, max_headers=30, max_message_bytes=1000))


# --------------------------------------------------------------------------- valid but strange


def test_compact_forms_everywhere() -> None:
    data = (
        b"OPTIONS sip:carol@chicago.com SIP/2.0\r\n"
        b"v: SIP/2.0/TCP client.example.com;branch=z9hG4bKx1\r\n"
        b"f: <sip:alice@example.com>;tag=1\r\n"
        b"t: sip:carol@chicago.com\r\n"
        b"i: 1@example.com\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"m: <sip:alice@client.example.com>\r\n"
        b"k: path, gruu\r\n"
        b"s: hello\r\n"
        b"c: text/plain\r\n"
        b"e: gzip\r\n"
        b"o: presence\r\n"
        b"u: dialog\r\n"
        b"l: 2\r\n\r\nhi"
    )
    m = parse(data)
    assert m.call_id == "1@example.com" and m.from_.tag == "1" and str(m.to.uri) == "sip:carol@chicago.com"
    assert m.top_via.transport == "TCP" and m.contact[0].uri == SipURI("client.example.com", "alice")
    assert m.option_tags("supported") == {"path", "gruu"}
    assert m.headers.get("Subject") == "hello" and m.content_type == "text/plain"
    assert m.headers.get("Content-Encoding") == "gzip" and m.headers.get("Event") == "presence"
    assert m.headers.get("Allow-Events") == "dialog" and m.body == b"hi"
    assert "Via" in m.headers and "v" in m.headers and "CONTENT-LENGTH" in m.headers
    assert m.serialize() == data


def test_folding_tabs_lf_only_and_leading_crlfs() -> None:
    text = (
        "\r\n\r\nREGISTER sip:example.com SIP/2.0\n"
        "Via: SIP/2.0/UDP host.example.com\n\t;branch=z9hG4bKf1\n"
        "From:\n  <sip:u@example.com>\n  ;tag=f\n"
        "To: <sip:u@example.com>\n"
        "Call-ID: fold@host\n"
        "CSeq:\t7\t REGISTER\n"
        "Subject:   lots   of   space   \n"
        "Contact: *\n"
        "Expires: 0\n"
        "\n"
    )
    m = parse(text.encode())
    assert isinstance(m, Request) and m.method == "REGISTER"
    assert m.top_via.branch == "z9hG4bKf1" and m.from_.tag == "f"
    assert m.headers.get("From") == "<sip:u@example.com> ;tag=f"
    assert m.cseq.seq == 7 and m.headers.get("Subject") == "lots   of   space"
    assert m.contact_star and m.contact == [] and m.expires == 0
    assert m.serialize() == text.encode()[4:]  # the leading CRLFs are not part of the message
    m.headers.add("X-New", "1")  # once modified, every line ends in CRLF (§7.3.1)
    out = m.serialize()
    assert b"\n" not in out.replace(b"\r\n", b"") and b"\r\n\t;branch=z9hG4bKf1\r\n" in out
    assert parse(out).headers.get("From") == "<sip:u@example.com> ;tag=f"


def test_odd_but_legal_values() -> None:
    data = (
        "FOO sip:%62ob:pa%73s@[2001:db8::1]:5062;transport=tcp SIP/2.0\r\n"
        "VIA  :  SIP / 2.0 / TLS  [2001:db8::9]:5061 ; branch = z9hG4bK-.!%*_+`'~ ; rport ;"
        " received=[2001:db8::2]\r\n"
        'FROM: "Bob \\"the\\" \\\\ Builder, Jr." <sips:bob@example.com>;tag=x\r\n'
        'TO: "Zoë 日本" <tel:+1-555-0100>\r\n'
        "CALL-ID: <weird>:id/with[brackets]{}?@host\r\n"
        "CSEQ: 2147483647 FOO\r\n"
        "MAX-FORWARDS: 0\r\n"
        "CONTACT: <sip:a@example.com>;q=1.000;expires=0, sip:b@example.com;q=0.5\r\n"
        "X-Unicode: Grüße, 世界\r\n"
        "X-Empty:\r\n"
        "X-Tab: a\tb\r\n"
        "Date: sat, 13 nov 2010 23:29:00 gmt\r\n"
        "Content-Type: Application/SDP ; charset = \"utf-8\"\r\n"
        "Content-Length: 0004\r\n"
        "\r\n"
        "abcdEXTRA"
    ).encode()
    m = parse(data)
    assert isinstance(m, Request) and m.method == "FOO"
    uri = m.uri
    assert isinstance(uri, SipURI) and uri.user == "%62ob" and uri.password == "pa%73s" and uri.port == 5062
    assert uri == SipURI("[2001:DB8::1]", "bob", 5062, {"transport": "TCP"}, password="pass")
    via = m.top_via
    assert (via.transport, via.host, via.port) == ("TLS", "[2001:db8::9]", 5061)
    assert via.branch == "z9hG4bK-.!%*_+`'~" and via.received == "[2001:db8::2]" and via.rport is None
    assert m.from_.display == 'Bob "the" \\ Builder, Jr.'
    assert m.to.display == "Zoë 日本" and isinstance(m.to.uri, TelURI)
    assert m.call_id == "<weird>:id/with[brackets]{}?@host"
    assert m.cseq.seq == 2**31 - 1 and m.max_forwards == 0
    assert [c.q for c in m.contact] == [1.0, 0.5] and m.contact[0].expires == 0
    assert m.headers.get("x-unicode") == "Grüße, 世界" and m.headers.get("X-Empty") == ""
    assert m.headers.get("X-Tab") == "a\tb"
    assert m.content_type == "application/sdp" and m.body == b"abcd"
    assert m.serialize() == data[: -len("EXTRA")]


def test_strange_start_lines() -> None:
    m = parse(BASE.replace("SIP/2.0\r\nVia", "sip/2.0\r\nVia").encode())
    assert isinstance(m, Request) and m.version == "sip/2.0"
    m = parse(BASE.replace("INVITE sip:bob@", "INVITE SIPS:bob@").encode())
    assert isinstance(m, Request) and m.uri.scheme == "sips"
    r = parse(RESPONSE.replace("200 OK", "299 Whatever  you say ").encode())
    assert isinstance(r, Response) and (r.status, r.reason) == (299, "Whatever  you say ")
    r = parse(RESPONSE.replace("200 OK", "699").encode())  # no reason phrase, no SP
    assert isinstance(r, Response) and (r.status, r.reason) == (699, "")


def test_datagram_without_final_empty_line_and_without_content_length() -> None:
    text = BASE.split("\r\n\r\n")[0] + "\r\n"
    text = text.replace("Content-Length: 5\r\n", "")
    m = parse(text.encode())
    assert m.body == b"" and m.headers.get("Content-Length") is None
    m = parse(BASE.replace("Content-Length: 5\r\n", "").encode() + b"more")
    assert m.body == BODY.encode() + b"more"
    with pytest.raises(ParseError, match="Missing Content-Length"):
        parse(BASE.replace("Content-Length: 5\r\n", "").encode(), stream=True)


def test_quoted_pairs_and_controls() -> None:
    # RFC 4475 §3.1.1.2: a NUL may appear only as a quoted-pair
    m = parse(add('Subject: "a\\\x00b"'))
    assert m.headers.get("Subject") == '"a\\\x00b"'
    with pytest.raises(ParseError, match="NUL"):
        parse(add('Subject: "a\x00b"'))
    m = parse(header("To", '"\\\x01x" <sip:bob@biloxi.example.com>'))
    assert m.to.display == "\x01x"


def test_lf_only_header_section_before_a_body_with_crlfcrlf() -> None:
    """The empty line ending an LF-only header section comes before a CRLFCRLF in the body
    (RFC 3261 §7.5 asks for CRLF; LF-only is tolerated): the body starts after the first."""
    text = (
        "MESSAGE sip:bob@example.com SIP/2.0\n"
        "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKlf1\n"
        "From: <sip:alice@example.com>;tag=a\n"
        "To: <sip:bob@example.com>\n"
        "Call-ID: lf-only@host\n"
        "CSeq: 1 MESSAGE\n"
        "Content-Type: text/plain\n"
        "Content-Length: 10\n"
        "\n"
        "ab\r\n\r\ncdef"
    )
    m = parse(text.encode())
    assert m.body == b"ab\r\n\r\ncdef" and m.headers.get("Content-Type") == "text/plain"
    assert m.top_via.branch == "z9hG4bKlf1" and m.serialize() == text.encode()
    crlf = text.replace("\n", "\r\n", 9)  # the same with CRLF line ends
    again = parse(crlf.encode())
    assert again.body == b"ab\r\n\r\ncdef" and again.serialize() == crlf.encode()
