"""Property-based tests (hypothesis, bounded: a few seconds in all).

Nothing but ParseError may escape the parsers (DESIGN.md §6.4), whatever the bytes:
mutated fixtures, random octets, random text, chunked streams.  And the fast
validators used at parse time accept nothing the full parsers refuse, so a message
that parsed never fails later when its typed views are built.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webims.sip import (
    NameAddr,
    ParseError,
    Request,
    SipURI,
    parse,
    parse_cseq,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from webims.sip import headers as sip_headers
from webims.sip.framing import StreamFramer, parse_frame
from webims.sip.headers import parse_params, split_list
from webims.sip.uri import parse_valid_sip_uri

FIXTURES = sorted((Path(__file__).parent / "fixtures").rglob("*.sip"))
SAMPLES = [p.read_bytes() for p in FIXTURES]
SPECIAL = [b'"', b"<", b">", b";", b",", b"%", b"\r\n", b"\r\n ", b"\n", b"\r", b"\x00", b":", b"[", b"]",
           b"@", b"\xff", b"\\", b" ", b"\t", b"=", b"?", b"\xc3\xa9", b"0", b"9" * 12, b"-", b"\r\n\r\n"]
FUZZ = settings(max_examples=1500, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(max_examples=600, deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Generating from the big patterns costs ~25 ms an example: fewer, different ones each run.
REGEX = settings(max_examples=80, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 5))
        pos = draw(st.integers(0, len(data)))
        if op == 0:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == 1:
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == 2:
            data[pos : pos + 1] = draw(st.sampled_from(SPECIAL))
        elif op == 3:
            data[pos:pos] = draw(st.sampled_from(SPECIAL))
        elif op == 4:
            end = data.find(b"\r\n", pos)
            if end >= 0:  # duplicate a line
                start = data.rfind(b"\r\n", 0, pos) + 2
                data[end + 2 : end + 2] = data[start : end + 2]
        else:
            del data[pos:]
    return bytes(data)


def check_message(data: bytes) -> None:
    """parse() either refuses with ParseError or returns a message whose validated
    views work and whose re-serialization after a change parses again."""
    try:
        m = parse(data)
    except ParseError:
        return
    # validated at parse time: these may not fail now
    m.via, m.from_, m.to, m.cseq, m.call_id, m.contact, m.max_forwards, m.expires  # noqa: B018
    if isinstance(m, Request):
        assert m.cseq.method == m.method
        m.uri  # noqa: B018
    for view in ("route", "record_route", "path", "service_route"):
        with contextlib.suppress(ParseError):
            getattr(m, view)
    assert parse(m.serialize()).serialize() == m.serialize()
    m.headers.add("X-Fuzz", "1")
    again = parse(m.serialize())
    assert again.headers.get("x-fuzz") == "1" and again.body == m.body


@FUZZ
@given(mutated())
def test_mutated_fixtures(data: bytes) -> None:
    check_message(data)


@FEW
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    check_message(data)
    with contextlib.suppress(ParseError):
        parse_frame(data)


SIPISH = st.text(alphabet=st.sampled_from(list("SIP/2.0 INVITE sip:a@b;<>\",%:\r\n\t=?[]\\xyz*1")),
                 max_size=200)


@FEW
@given(SIPISH)
def test_random_sip_like_text(text: str) -> None:
    check_message(("INVITE sip:a@b SIP/2.0\r\n" + text).encode())
    check_message(text.encode())


@FEW
@given(st.lists(st.sampled_from(SAMPLES) | mutated(), min_size=1, max_size=4), st.integers(1, 300),
       st.sampled_from(["server", "client"]))
def test_stream_framer(chunks: list[bytes], size: int, role: str) -> None:
    stream = b"\r\n\r\n".join(chunks)
    framer = StreamFramer(role=role)
    for i in range(0, len(stream), size):
        framer.feed(stream[i : i + size])
        while True:
            try:
                event = framer.next_event()
            except ParseError as exc:
                if type(exc).__name__ == "FramingError":
                    return
                continue
            if event is None:
                break


URI_ALPHABET = list("sipstel:+-_.!~*'()&=$,;?/%[]@0123456789abcdefABCDEF<> \"#")


@FUZZ
@given(st.sampled_from(["sip:", "sips:", "tel:", "urn:", "SIP:", ""]),
       st.text(alphabet=URI_ALPHABET, max_size=60))
def test_parse_uri(prefix: str, rest: str) -> None:
    text = prefix + rest
    try:
        uri = parse_uri(text)
    except ParseError:
        return
    assert str(uri) == text and uri == uri
    hash(uri)
    if isinstance(uri, SipURI):
        copy = parse_uri(str(uri.replace()))  # the canonical form parses back equal
        assert copy == uri
        uri.aor  # noqa: B018


HEADER_PIECES = [*"\"<>;,=:@ \t\\%sip:a.b+x1[]?*'~\x00", "sip:alice@example.com", "SIP/2.0/UDP ", "tag=",
                 "expires=", "q=", "reg-id=", "+sip.instance=", "received=", "rport", "branch=", "[::1]",
                 "\\\""]
HEADER_TEXT = st.lists(st.sampled_from(HEADER_PIECES), max_size=30).map("".join)


def _name_addr_views(na: NameAddr) -> None:
    for attr in ("tag", "expires", "q", "sip_instance", "reg_id"):
        with contextlib.suppress(ParseError):
            getattr(na, attr)


@FUZZ
@given(HEADER_TEXT)
def test_header_parsers(text: str) -> None:
    for parser in (parse_name_addr, parse_via, parse_cseq, split_list):
        try:
            result = parser(text)
        except ParseError:
            continue
        if isinstance(result, NameAddr):
            _name_addr_views(result)
            str(result)
    with contextlib.suppress(ParseError):
        parse_params(text, text)


# The fast patterns accept a subset of what the full parsers accept.


@REGEX
@given(st.from_regex(sip_headers.FAST_NAME_ADDR_RE, fullmatch=True))
def test_fast_name_addr_is_a_subset(value: str) -> None:
    na = parse_name_addr(value)
    assert isinstance(na.uri, SipURI)


@REGEX
@given(st.from_regex(sip_headers.FAST_VIA_RE, fullmatch=True))
def test_fast_via_is_a_subset(value: str) -> None:
    via = parse_via(value)
    assert via.protocol == "SIP/2.0"


# parse_name_addr / parse_via take the common shapes apart with one match of the grouped
# fast patterns: the objects must be those the full parsers build.


def _name_addr_fields(na: NameAddr) -> tuple[object, ...]:
    return (na.uri, na.uri_text, na.display, dict(na.params), na.raw, str(na))


@REGEX
@given(st.from_regex(sip_headers.FAST_NAME_ADDR_RE, fullmatch=True))
def test_fast_name_addr_equals_the_full_parser(value: str) -> None:
    fast = parse_name_addr(value)
    full = sip_headers._parse_name_addr_full(value, value.strip(" \t"))
    assert _name_addr_fields(fast) == _name_addr_fields(full)
    assert sip_headers.NAME_ADDR_PARTS_RE.fullmatch(value.strip(" \t")) is not None


@REGEX
@given(st.from_regex(sip_headers.FAST_VIA_RE, fullmatch=True))
def test_fast_via_equals_the_full_parser(value: str) -> None:
    fast = parse_via(value)
    full = sip_headers._parse_via_full(value, value.strip(" \t"))
    assert fast == full and fast.raw == full.raw and dict(fast.params) == dict(full.params)
    assert sip_headers.VIA_PARTS_RE.fullmatch(value.strip(" \t")) is not None


# What real peers send (the lab core, Kamailio, UAs behind NAT): five-digit rport values and
# ports from 60000 (Linux gives ephemeral ports up to 60999) take the one-match path too.
_REAL_VIAS = [
    "SIP/2.0/UDP 127.0.0.1:50139;branch=z9hG4bK06cea01f5247ee68;rport=50139;received=127.0.0.1",
    "SIP/2.0/UDP 127.0.0.1:60595;branch=z9hG4bKe1b05545c5d1ed12;rport",
    "SIP/2.0/UDP 192.0.2.7:65535;rport=65535;branch=z9hG4bK1",
    "SIP/2.0/TCP pcscf.ims.test:05060;branch=z9hG4bK2;rport=9",
]
_REAL_NAME_ADDRS = ["<sip:127.0.0.1:60595>", "<sip:orig@127.0.0.1:60595;lr>", "<sip:b1@10.0.0.1:65000>;tag=x"]


@pytest.mark.parametrize("value", _REAL_VIAS)
def test_real_vias_take_the_fast_path(value: str) -> None:
    assert sip_headers.VIA_PARTS_RE.fullmatch(value) is not None
    fast, full = parse_via(value), sip_headers._parse_via_full(value, value)
    assert fast == full and dict(fast.params) == dict(full.params)


@pytest.mark.parametrize("value", _REAL_NAME_ADDRS)
def test_real_name_addrs_take_the_fast_path(value: str) -> None:
    assert sip_headers.NAME_ADDR_PARTS_RE.fullmatch(value) is not None
    full = sip_headers._parse_name_addr_full(value, value)
    assert _name_addr_fields(parse_name_addr(value)) == _name_addr_fields(full)


@pytest.mark.parametrize(
    "value",
    ["SIP/2.0/UDP h.test:65536;branch=z9hG4bK1", "SIP/2.0/UDP h.test;rport=65536", "<sip:a@h.test:99999>"],
)
def test_fast_patterns_refuse_ports_above_65535(value: str) -> None:
    assert sip_headers.VIA_PARTS_RE.fullmatch(value) is None
    assert sip_headers.NAME_ADDR_PARTS_RE.fullmatch(value) is None
    with pytest.raises(ParseError):
        (parse_name_addr if value.startswith("<") else parse_via)(value)


_SPACE = st.sampled_from(["", " ", "\t", "  "])
_TOKEN = st.text(alphabet=list("aZ09-.!%*_+`'~"), min_size=1, max_size=6)
_QUOTED = st.text(alphabet=list('a ;=,<>:\\"\t'), max_size=8).map(
    lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"')
_PARAM = st.tuples(_SPACE, _SPACE, _TOKEN, st.none() | st.tuples(_SPACE, _SPACE, _TOKEN | _QUOTED)).map(
    lambda p: f"{p[0]};{p[1]}{p[2]}" + ("" if p[3] is None else f"{p[3][0]}={p[3][1]}{p[3][2]}"))


@FUZZ
@given(st.lists(_PARAM, min_size=1, max_size=5).map("".join) | HEADER_TEXT.map(lambda t: ";" + t))
def test_valid_params_split_like_the_pattern(rest: str) -> None:
    """The str-method split of validated generic-params gives what the pattern gives."""
    if re.fullmatch(sip_headers._GEN_PARAMS, rest) is None:
        return
    assert sip_headers._valid_params(rest) == parse_params(rest, rest)


@REGEX
@given(st.from_regex(sip_headers.FAST_SIP_URI_RE, fullmatch=True))
def test_fast_sip_uri_is_a_subset(value: str) -> None:
    full = parse_uri(value)
    assert isinstance(full, SipURI)
    fast = parse_valid_sip_uri(value)  # what NameAddr.uri and Request.uri build from such a text
    assert isinstance(fast, SipURI) and fast == full
    fields = ("host", "user", "port", "params", "headers", "password", "scheme", "raw")
    assert [getattr(fast, f) for f in fields] == [getattr(full, f) for f in fields]
