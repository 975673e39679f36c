"""Cutting messages out of byte streams (RFC 3261 §18.3) with CRLF keep-alives
(RFC 5626 §3.5.1), and message-per-frame transports (UDP, RFC 7118 WebSocket)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webims.sip import Limits, ParseError, Request, Response
from webims.sip.framing import (
    PING_BYTES,
    PONG_BYTES,
    FramingError,
    Ping,
    Pong,
    StreamFramer,
    parse_frame,
)

FIXTURES = Path(__file__).parent / "fixtures"
INVITE = (FIXTURES / "rfc3665/call_f1_invite.sip").read_bytes()
RINGING = (FIXTURES / "rfc3665/call_f2_180.sip").read_bytes()
OK = (FIXTURES / "rfc3665/call_f3_200.sip").read_bytes()
ACK = (FIXTURES / "rfc3665/call_f4_ack.sip").read_bytes()
WS_REGISTER = (FIXTURES / "rfc7118/f1_register.sip").read_bytes()  # no Content-Length


def kinds(events: list[object]) -> list[str]:
    out = []
    for e in events:
        if isinstance(e, Request):
            out.append(e.method)
        elif isinstance(e, Response):
            out.append(str(e.status))
        else:
            out.append(type(e).__name__)
    return out


def test_byte_by_byte() -> None:
    stream = INVITE + PING_BYTES + OK + b"\r\n" + ACK
    framer = StreamFramer()
    events: list[object] = []
    for i in range(len(stream)):
        framer.feed(stream[i : i + 1])
        events.extend(framer.events())
    assert kinds(events) == ["INVITE", "Ping", "200", "ACK"]
    assert framer.buffered == 0
    assert events[0].serialize() == INVITE  # type: ignore[attr-defined]
    assert events[2].body == OK.split(b"\r\n\r\n", 1)[1]  # type: ignore[attr-defined]


def test_several_messages_in_one_chunk_and_split_anywhere() -> None:
    stream = b"\r\n" + INVITE + RINGING + OK + ACK + PING_BYTES + PING_BYTES
    for cut in (1, 7, 100, len(INVITE) - 1, len(INVITE) + 2, len(stream) - 3):
        framer = StreamFramer()
        framer.feed(stream[:cut])
        first = framer.events()
        framer.feed(stream[cut:])
        assert kinds(first + framer.events()) == ["INVITE", "180", "200", "ACK", "Ping", "Ping"], cut
    framer = StreamFramer()
    framer.feed(stream)
    got = []
    while (event := framer.next_event()) is not None:
        got.append(event)
    assert kinds(got) == ["INVITE", "180", "200", "ACK", "Ping", "Ping"]
    assert framer.next_event() is None


def test_keepalives_server_role() -> None:
    framer = StreamFramer(role="server")
    framer.feed(PING_BYTES)
    assert framer.events() == [Ping()]
    framer.feed(b"\r\n")  # half a ping: wait for the rest
    assert framer.events() == [] and framer.buffered == 2
    framer.feed(b"\r\n")
    assert framer.events() == [Ping()]
    for byte in PING_BYTES:  # a ping fed one byte at a time
        framer.feed(bytes([byte]))
        events = framer.events()
    assert events == [Ping()]
    framer.feed(b"\r\n" + INVITE)  # a stray CRLF before a message is ignored (§7.5)
    assert kinds(framer.events()) == ["INVITE"]


def test_keepalives_client_role() -> None:
    framer = StreamFramer(role="client")
    framer.feed(PONG_BYTES)
    assert framer.events() == [Pong()]
    framer.feed(PONG_BYTES + RINGING + PONG_BYTES)
    assert kinds(framer.events()) == ["Pong", "180", "Pong"]
    framer.feed(PING_BYTES)  # a double CRLF arriving at once is still a ping
    assert framer.events() == [Ping()]
    framer.feed(b"\r")
    assert framer.events() == [] and framer.buffered == 1
    framer.feed(b"\n")
    assert framer.events() == [Pong()]
    with pytest.raises(ValueError):
        StreamFramer(role="proxy")


def test_missing_content_length_loses_framing() -> None:
    framer = StreamFramer()
    framer.feed(WS_REGISTER + INVITE)
    with pytest.raises(FramingError) as info:
        framer.events()
    assert info.value.status == 400 and "Missing Content-Length" in info.value.reason
    assert isinstance(info.value, ParseError)
    framer.feed(INVITE)
    with pytest.raises(FramingError, match="framing lost"):
        framer.next_event()


@pytest.mark.parametrize(
    ("length", "reason"),
    [(b"-1", "Bad Content-Length"), (b"abc", "Bad Content-Length"), (b"1" * 12, "Bad Content-Length")],
)
def test_bad_content_length_loses_framing(length: bytes, reason: str) -> None:
    framer = StreamFramer()
    framer.feed(INVITE.replace(b"Content-Length: 151", b"Content-Length: " + length))
    with pytest.raises(FramingError) as info:
        framer.next_event()
    assert reason in info.value.reason and info.value.line == length.decode()


def test_conflicting_content_lengths_lose_framing() -> None:
    framer = StreamFramer()
    framer.feed(INVITE.replace(b"Content-Length: 151", b"Content-Length: 151\r\nl: 150"))
    with pytest.raises(FramingError, match="Bad Content-Length"):
        framer.next_event()


def test_bad_message_with_good_framing_then_next_parses() -> None:
    bad = OK.replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE")
    twice = ACK.replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 0")  # same value twice
    framer = StreamFramer()
    framer.feed(bad + twice + RINGING)
    with pytest.raises(ParseError) as info:
        framer.next_event()
    assert not isinstance(info.value, FramingError) and "CSeq" in info.value.reason
    with pytest.raises(ParseError) as info:
        framer.next_event()
    assert not isinstance(info.value, FramingError) and "Multiple Content-Length" in info.value.reason
    assert kinds(framer.events()) == ["180"]


def test_folded_content_length_frames() -> None:
    framer = StreamFramer()
    framer.feed(INVITE.replace(b"Content-Length: 151", b"Content-Length:\r\n 151") + ACK)
    events = framer.events()
    assert kinds(events) == ["INVITE", "ACK"] and len(events[0].body) == 151  # type: ignore[union-attr]


def test_max_size() -> None:
    limits = Limits(max_message_bytes=len(INVITE))
    framer = StreamFramer(limits)
    framer.feed(INVITE)
    assert kinds(framer.events()) == ["INVITE"]
    framer = StreamFramer(limits)  # Content-Length says 152: one byte over the limit
    framer.feed(INVITE.replace(b"Content-Length: 151", b"Content-Length: 152"))
    with pytest.raises(FramingError) as info:
        framer.next_event()
    assert info.value.status == 513
    # a header section that never ends
    framer = StreamFramer(Limits(max_message_bytes=1000))
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 200)
    with pytest.raises(FramingError) as info:
        framer.next_event()
    assert info.value.status == 513
    # a body bigger than max_body_bytes but inside the message limit: one bad message
    framer = StreamFramer(Limits(max_body_bytes=100))
    framer.feed(INVITE + ACK)
    with pytest.raises(ParseError) as info:
        framer.next_event()
    assert info.value.status == 413 and not isinstance(info.value, FramingError)
    assert kinds(framer.events()) == ["ACK"]


def test_parse_frame() -> None:
    assert parse_frame(PING_BYTES) == Ping()
    assert parse_frame(PONG_BYTES) == Pong()
    m = parse_frame(WS_REGISTER)  # Content-Length optional in a WebSocket message
    assert isinstance(m, Request) and m.method == "REGISTER" and m.serialize() == WS_REGISTER
    with pytest.raises(ParseError):
        parse_frame(b"\r\n\r\n\r\n")
    with pytest.raises(ParseError) as info:
        parse_frame(INVITE, Limits(max_message_bytes=100))
    assert info.value.status == 513
