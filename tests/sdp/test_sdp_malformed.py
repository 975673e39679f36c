"""Malformed and unacceptable input: SdpError with the right status and line, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webims.sdp import SdpError, SdpLimits, parse

FIXTURES = Path(__file__).parent / "fixtures"

BASE = [
    "v=0",
    "o=- 1 1 IN IP4 192.0.2.1",
    "s=-",
    "c=IN IP4 192.0.2.1",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0 96",
    "a=rtpmap:96 opus/48000/2",
    "a=mid:a",
]


def sdp(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def replaced(old: str, new: str | None) -> bytes:
    """BASE with one line replaced (None: removed)."""
    assert old in BASE
    if new is None:
        return sdp([line for line in BASE if line != old])
    return sdp([new if line == old else line for line in BASE])


def added(line: str, after: str = "a=mid:a") -> bytes:
    i = BASE.index(after) + 1
    return sdp([*BASE[:i], line, *BASE[i:]])


def test_base_is_valid() -> None:
    assert parse(sdp(BASE)).to_bytes() == sdp(BASE)


# (id, input, status, offending line or None)
CASES: list[tuple[str, bytes, int, str | None]] = [
    ("empty", b"", 400, None),
    ("only blank lines", b"\r\n\r\n", 400, None),
    ("no v= first", sdp(BASE[1:]), 400, "o=- 1 1 IN IP4 192.0.2.1"),
    ("version 1", replaced("v=0", "v=1"), 488, "v=1"),
    ("version not a number", replaced("v=0", "v=x"), 400, "v=x"),
    ("missing s=", replaced("s=-", None), 400, "c=IN IP4 192.0.2.1"),
    ("missing t=", replaced("t=0 0", None), 400, "m=audio 49170 RTP/AVP 0 96"),
    ("two v= lines", added("v=0", after="t=0 0"), 400, "v=0"),
    ("origin with 5 fields", replaced("o=- 1 1 IN IP4 192.0.2.1", "o=- 1 IN IP4 192.0.2.1"), 400, None),
    (
        "origin sess-id not digits",
        replaced("o=- 1 1 IN IP4 192.0.2.1", "o=- x1 1 IN IP4 192.0.2.1"),
        400,
        None,
    ),
    ("connection missing address", replaced("c=IN IP4 192.0.2.1", "c=IN IP4"), 400, "c=IN IP4"),
    ("connection bad ttl", replaced("c=IN IP4 192.0.2.1", "c=IN IP4 233.252.0.1/999"), 400, None),
    ("bandwidth not a number", added("b=AS:x", after="c=IN IP4 192.0.2.1"), 400, "b=AS:x"),
    ("timing one field", replaced("t=0 0", "t=0"), 400, "t=0"),
    ("r= not after t=", added("r=7d 1h 0", after="s=-"), 400, "r=7d 1h 0"),
    ("port out of range", replaced("m=audio 49170 RTP/AVP 0 96", "m=audio 70000 RTP/AVP 0 96"), 400, None),
    (
        "port of 25 digits",
        replaced("m=audio 49170 RTP/AVP 0 96", "m=audio 1234567890123456789012345 RTP/AVP 0"),
        400,
        None,
    ),
    (
        "port in Arabic-Indic digits",
        replaced("m=audio 49170 RTP/AVP 0 96", "m=audio \u0663 RTP/AVP 0"),
        400,
        None,
    ),
    (
        "RTP payload type 128",
        replaced("m=audio 49170 RTP/AVP 0 96", "m=audio 49170 RTP/AVP 0 128"),
        400,
        None,
    ),
    (
        "RTP payload type not a number",
        replaced("m=audio 49170 RTP/AVP 0 96", "m=audio 49170 RTP/AVP PCMU"),
        400,
        None,
    ),
    ("m= without formats", replaced("m=audio 49170 RTP/AVP 0 96", "m=audio 49170 RTP/AVP"), 400, None),
    ("line without =", added("hello"), 400, "hello"),
    ("upper-case type letter", added("A=sendrecv"), 400, "A=sendrecv"),
    ("space before =", added("a =sendrecv"), 400, "a =sendrecv"),
    ("unknown type letter", added("x=whatever"), 488, "x=whatever"),
    ("bare CR inside a line", sdp(BASE).replace(b"a=mid:a", b"a=mid:a\rb"), 400, None),
    ("empty line in the middle", sdp([*BASE[:4], "", *BASE[4:]]), 400, ""),
    ("not UTF-8", sdp(BASE).replace(b"s=-", b"s=\xff\xfe"), 400, None),
    ("NUL in a line", sdp(BASE).replace(b"s=-", b"s=a\x00b"), 400, None),
    ("o= inside a media description", added("o=- 1 1 IN IP4 192.0.2.1"), 400, "o=- 1 1 IN IP4 192.0.2.1"),
    ("attribute name with a space", added("a=foo bar:1"), 400, "a=foo bar:1"),
    ("rtpmap without clock rate", replaced("a=rtpmap:96 opus/48000/2", "a=rtpmap:96 opus"), 400, None),
    ("rtpmap payload type 200", replaced("a=rtpmap:96 opus/48000/2", "a=rtpmap:200 opus/48000/2"), 400, None),
    ("payload type mapped twice", added("a=rtpmap:96 PCMU/8000"), 400, "a=rtpmap:96 PCMU/8000"),
    ("candidate without typ", added("a=candidate:1 1 udp 2130706431 192.0.2.1 5000 host"), 400, None),
    ("candidate component 0", added("a=candidate:1 0 udp 2130706431 192.0.2.1 5000 typ host"), 400, None),
    ("candidate odd extension", added("a=candidate:1 1 udp 1 192.0.2.1 5000 typ host generation"), 400, None),
    (
        "candidate priority too big",
        added("a=candidate:1 1 udp 4294967296 192.0.2.1 5000 typ host"),
        400,
        None,
    ),
    (
        "candidate at session level",
        added("a=candidate:1 1 udp 1 192.0.2.1 5000 typ host", after="t=0 0"),
        400,
        None,
    ),
    ("ice-pwd too short", added("a=ice-pwd:short"), 400, "a=ice-pwd:short"),
    ("ice-ufrag bad character", added("a=ice-ufrag:ab_cd"), 400, None),
    (
        "fingerprint wrong length",
        added("a=fingerprint:sha-256 AB:CD:EF"),
        400,
        "a=fingerprint:sha-256 AB:CD:EF",
    ),
    ("fingerprint not hex", added("a=fingerprint:sha-1 " + ":".join(["ZZ"] * 20)), 400, None),
    ("setup unknown", added("a=setup:both"), 400, "a=setup:both"),
    ("two setup lines", added("a=setup:active\r\na=setup:passive"), 400, "a=setup:passive"),
    ("two direction attributes", added("a=sendrecv\r\na=recvonly"), 400, "a=recvonly"),
    ("rtcp-mux with a value", added("a=rtcp-mux:1"), 400, "a=rtcp-mux:1"),
    ("mid without value", replaced("a=mid:a", "a=mid"), 400, "a=mid"),
    ("duplicate mid", sdp([*BASE, "m=audio 49172 RTP/AVP 0", "a=mid:a"]), 400, "a=mid:a"),
    ("group names an unknown mid", added("a=group:BUNDLE a b", after="t=0 0"), 400, "a=group:BUNDLE a b"),
    ("group in a media description", added("a=group:BUNDLE a"), 400, None),
    (
        "media without any c=",
        sdp([line for line in BASE if not line.startswith("c=")]),
        400,
        "m=audio 49170 RTP/AVP 0 96",
    ),
    ("extmap id 0", added("a=extmap:0 urn:ietf:params:rtp-hdrext:sdes:mid"), 400, None),
    ("extmap bad direction", added("a=extmap:1/both urn:x"), 400, None),
    ("ssrc out of range", added("a=ssrc:4294967296 cname:x"), 400, None),
    ("rtcp bad port", added("a=rtcp:99999"), 400, "a=rtcp:99999"),
    ("ptime not a number", added("a=ptime:twenty"), 400, "a=ptime:twenty"),
    ("crypto without key", added("a=crypto:1 AES_CM_128_HMAC_SHA1_80"), 400, None),
    ("des with bad strength", added("a=des:qos urgent local sendrecv"), 400, None),
    ("curr with bad status type", added("a=curr:qos both none"), 400, None),
    ("curr at session level", added("a=curr:qos local none", after="t=0 0"), 400, None),
]


@pytest.mark.parametrize(("data", "status", "line"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed(data: bytes, status: int, line: str | None) -> None:
    with pytest.raises(SdpError) as info:
        parse(data)
    assert info.value.status == status
    if line is not None:
        assert info.value.line == line
    assert str(status) in str(info.value)


def test_malformed_lines_are_named() -> None:
    with pytest.raises(SdpError) as info:
        parse(added("a=candidate:1 0 udp 2130706431 192.0.2.1 5000 typ host"))
    assert info.value.line == "a=candidate:1 0 udp 2130706431 192.0.2.1 5000 typ host"
    assert info.value.reason == "bad candidate component"


def test_limits_are_parameters() -> None:
    data = (FIXTURES / "chrome_offer_audio_video.sdp").read_bytes()
    lines = data.count(b"\r\n")
    assert parse(data, SdpLimits(max_size=len(data), max_lines=lines, max_media=2)).to_bytes() == data
    cases = [
        SdpLimits(max_size=len(data) - 1),
        SdpLimits(max_lines=lines - 1),
        SdpLimits(max_media=1),
        SdpLimits(max_line_length=80),
    ]
    for limits in cases:
        with pytest.raises(SdpError) as info:
            parse(data, limits)
        assert info.value.status == 488, limits
    with pytest.raises(SdpError) as info:
        parse(data.decode(), SdpLimits(max_size=100))
    assert info.value.status == 488


def test_str_with_lone_surrogate() -> None:
    with pytest.raises(SdpError):
        parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=\udc80\r\nt=0 0\r\n")


def test_lenient_where_the_rfc_allows() -> None:
    # No final line end, trailing blank lines, trailing space in a group, unknown attributes.
    text = sdp(BASE).decode().rstrip("\r\n")
    assert parse(text).to_text() == sdp(BASE).decode()
    assert parse(sdp(BASE) + b"\r\n\r\n").to_bytes() == sdp(BASE)
    odd = parse(added("a=group:BUNDLE a ", after="t=0 0") + b"a=x-custom:anything goes\r\n")
    assert odd.bundle_groups[0].mids == ("a",)
    assert odd.media[0].attribute_value("x-custom") == "anything goes"
    # a=ptime at session level, as some IMS nodes write it.
    assert parse(added("a=ptime:20", after="t=0 0")).attribute_value("ptime") == "20"
    # A rejected stream may leave out c= and a dynamic rtpmap.
    assert (
        parse(sdp([*BASE[:3], *BASE[4:], "m=video 0 RTP/AVP 96"]).replace(b"49170", b"0")).media[1].port == 0
    )


# --- nothing but SdpError escapes the parser ---------------------------------------------

_FIXTURE_BYTES = [p.read_bytes() for p in sorted(FIXTURES.glob("*.sdp"))]
_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse_or_error(data: bytes | str) -> None:
    try:
        parsed = parse(data)
    except SdpError as exc:
        assert exc.status in (400, 488)
        return
    # Whatever parses serializes and parses again to the same thing.
    again = parse(parsed.to_bytes())
    assert again == parsed


@_SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    _parse_or_error(data)


_VALUE = st.text(alphabet="0123456789 :/.-abcdIPNUDTLSRAVFmt=*;,", max_size=40)
_LINE = st.tuples(st.sampled_from("vosiuepcbtrzkamx"), _VALUE).map(lambda t: f"{t[0]}={t[1]}")


@_SETTINGS
@given(st.lists(_LINE, max_size=25), st.sampled_from(["\r\n", "\n"]))
def test_random_sdp_like_lines(lines: list[str], eol: str) -> None:
    _parse_or_error(eol.join(["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", *lines]) + eol)


_ATTR_NAMES = st.sampled_from(
    [
        "candidate",
        "rtpmap",
        "fmtp",
        "rtcp-fb",
        "fingerprint",
        "setup",
        "mid",
        "group",
        "extmap",
        "ssrc",
        "ssrc-group",
        "msid",
        "rtcp",
        "ptime",
        "crypto",
        "curr",
        "des",
        "conf",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "tls-id",
        "rtcp-mux",
        "sendrecv",
    ]
)


@_SETTINGS
@given(st.lists(st.tuples(_ATTR_NAMES, _VALUE), max_size=12))
def test_random_attributes(attrs: list[tuple[str, str]]) -> None:
    _parse_or_error(sdp([*BASE, *(f"a={name}:{value}" for name, value in attrs)]))


@_SETTINGS
@given(
    st.sampled_from(_FIXTURE_BYTES),
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.sampled_from(["set", "insert", "delete"])),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_fixtures(data: bytes, edits: list[tuple[int, int, str]]) -> None:
    buf = bytearray(data)
    for pos, byte, op in edits:
        pos %= len(buf) or 1
        if op == "set" and buf:
            buf[pos] = byte
        elif op == "insert":
            buf.insert(pos, byte)
        elif buf:
            del buf[pos]
    _parse_or_error(bytes(buf))
