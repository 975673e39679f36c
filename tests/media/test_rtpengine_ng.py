"""webims.media.ng: bencode, ng framing, cookies, retransmission and timeouts, on a fake clock."""

from __future__ import annotations

import pytest

from webims.media.ng import (
    NgConnection,
    NgDecodeError,
    NgErrorReply,
    NgFailure,
    NgReply,
    NgTimeout,
    RetransmitPolicy,
    bdecode,
    bencode,
    decode_message,
    encode_message,
)

# The ping/pong and offer examples of rtpengine's docs/ng_control_protocol.md.
PING = b"5323_1 d7:command4:pinge"
PONG = b"5323_1 d6:result4:ponge"
OFFER = (
    b"5323_2 d7:command5:offer7:call-id9:abcdefghi8:from-tag3:abc"
    b"3:sdp36:v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
    b"5:flagsl13:trust-addresse7:replacel6:origin18:session-connectionee"
)
# rtpengine writes keys in its own order ("sdp" before "result"), not sorted.
UNSORTED_ANSWER = b"c1 d3:sdp3:v=06:result2:ok7:warning4:oops3:numi-42ee"


def test_decode_rtpengine_examples() -> None:
    assert decode_message(PING) == ("5323_1", {"command": "ping"})
    assert decode_message(PONG) == ("5323_1", {"result": "pong"})
    cookie, body = decode_message(OFFER)
    assert cookie == "5323_2"
    assert body["command"] == "offer"
    assert body["flags"] == ["trust-address"]
    assert body["replace"] == ["origin", "session-connection"]
    assert body["sdp"].startswith("v=0\r\n")


def test_unsorted_keys_are_accepted() -> None:
    # fastbencode refuses this ("dict keys disordered"); rtpengine sends it.
    assert decode_message(UNSORTED_ANSWER) == (
        "c1",
        {"sdp": "v=0", "result": "ok", "warning": "oops", "num": -42},
    )


def test_encode_is_canonical_and_round_trips() -> None:
    # Keys sorted (BEP 3), so rtpengine's own example comes out byte for byte.
    body = {
        "sdp": "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n",
        "replace": ["origin", "session-connection"],
        "command": "offer",
        "from-tag": "abc",
        "call-id": "abcdefghi",
        "flags": ["trust-address"],
    }
    datagram = encode_message("5323_2", body)
    assert datagram == b"5323_2 " + bencode(dict(sorted(body.items())))
    assert decode_message(datagram) == ("5323_2", body)
    assert bencode({"a": {"z": [1, -2, b"\xff"], "b": 0}}) == b"d1:ad1:bi0e1:zli1ei-2e1:\xffeee"
    assert bdecode(b"1:\xff") == "\udcff"  # undecodable bytes survive (surrogateescape)
    assert bencode(bdecode(b"1:\xff")) == b"1:\xff"
    assert bencode("é") == b"2:\xc3\xa9"


@pytest.mark.parametrize("value", [True, 1.5, None, {1: 2}, object()])
def test_encode_refuses_what_bencode_cannot_carry(value: object) -> None:
    with pytest.raises(TypeError):
        bencode(value)


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"", 0),
        (b"i12", 1),
        (b"i-0e", 1),
        (b"i03e", 1),
        (b"ie", 1),
        (b"i1x2e", 1),
        (b"5:abc", 0),
        (b"l1:a", 4),
        (b"d1:a", 4),
        (b"di1ei2ee", 1),
        (b"x", 0),
        (b"i1ei2e", 3),
        (b"01:a", 0),
        (b"l" * 100 + b"e" * 100, 64),
    ],
)
def test_decode_errors_are_typed_with_offset(data: bytes, offset: int) -> None:
    with pytest.raises(NgDecodeError) as info:
        bdecode(data)
    assert info.value.offset == offset


@pytest.mark.parametrize(
    "data", [b"nospace", b" d6:result2:oke", b"c1 le", b"c1 d6:result2:ok", b"\xff d1:ai1ee"]
)
def test_bad_messages(data: bytes) -> None:
    with pytest.raises(NgDecodeError):
        decode_message(data)


def test_cookie_rules() -> None:
    with pytest.raises(ValueError):
        encode_message("has space", {})
    with pytest.raises(ValueError):
        encode_message("", {})


def test_request_reply_matching() -> None:
    ng = NgConnection(cookie_prefix="p")
    c1 = ng.send("ping", {}, now=0.0)
    c2 = ng.send("query", {"call-id": "x"}, now=0.0)
    assert c1 != c2
    assert ng.datagrams_to_send() == [b"p1 d7:command4:pinge", b"p2 d7:call-id1:x7:command5:querye"]
    assert ng.datagrams_to_send() == []
    # Answers in any order; unknown cookies are strays.
    assert ng.receive_datagram(b"zz d6:result4:ponge", 0.1) == []
    [reply2] = ng.receive_datagram(b"p2 d6:result2:ok7:warning3:hume", 0.1)
    assert isinstance(reply2, NgReply) and reply2.command == "query" and reply2.warning == "hum"
    [reply1] = ng.receive_datagram(b"p1 d6:result4:ponge", 0.2)
    assert isinstance(reply1, NgReply) and reply1.result == "pong" and reply1.attempts == 1
    # A late duplicate (answer to a retransmission) is a stray too.
    assert ng.receive_datagram(b"p1 d6:result4:ponge", 0.3) == []
    assert ng.stray_datagrams == 2
    assert ng.pending == 0 and ng.get_timer() is None


def test_error_replies_are_typed() -> None:
    ng = NgConnection(cookie_prefix="p")
    ng.send("answer", {}, 0.0)
    ng.send("offer", {}, 0.0)
    ng.send("offer", {}, 0.0)
    ng.send("delete", {}, 0.0)
    [e1] = ng.receive_datagram(
        b"p1 d12:error-reason38:Call-ID not found or tags didn't match6:result5:errore", 0
    )
    [e2] = ng.receive_datagram(b"p2 d6:result10:load limit7:message19:Load limit exceedede", 0)
    [e3] = ng.receive_datagram(b"p3 d6:result", 0)
    [e4] = ng.receive_datagram(b"p4 d3:foo3:bare", 0)
    assert isinstance(e1, NgFailure) and isinstance(e2, NgFailure)
    assert isinstance(e3, NgFailure) and isinstance(e4, NgFailure)
    assert isinstance(e1.error, NgErrorReply)
    assert (e1.command, e1.error.result, e1.error.reason) == (
        "answer",
        "error",
        "Call-ID not found or tags didn't match",
    )
    assert isinstance(e2.error, NgErrorReply) and e2.error.reason == "Load limit exceeded"
    assert e2.error.result == "load limit"
    assert isinstance(e3.error, NgDecodeError) and e3.error.command == "offer"
    assert isinstance(e4.error, NgErrorReply) and e4.error.reason == "answer without a result"


def test_retransmission_schedule_and_timeout() -> None:
    policy = RetransmitPolicy(initial_interval=0.5, max_interval=2.0, timeout=4.0)
    assert policy.send_times() == [0.0, 0.5, 1.5, 3.5]
    ng = NgConnection(policy, cookie_prefix="r")
    ng.send("offer", {"call-id": "c"}, now=10.0)
    first = ng.datagrams_to_send()
    sent_at = [10.0]
    now = 10.0
    events = []
    while (timer := ng.get_timer()) is not None:
        assert timer > now
        now = timer
        events += ng.handle_timer(now)
        for datagram in ng.datagrams_to_send():
            assert datagram == first[0]  # same cookie, same bytes: rtpengine answers from its cache
            sent_at.append(now)
    assert sent_at == [10.0, 10.5, 11.5, 13.5]
    [failure] = events
    assert isinstance(failure, NgFailure) and isinstance(failure.error, NgTimeout)
    assert failure.error.attempts == 4 and failure.error.elapsed == pytest.approx(4.0)
    assert "4 transmissions" in failure.error.reason
    # The answer arriving after the timeout is dropped.
    assert ng.receive_datagram(b"r1 d6:result2:oke", now + 1) == []


def test_answer_after_retransmission_counts_attempts() -> None:
    ng = NgConnection(RetransmitPolicy(0.1, 0.4, 2.0), cookie_prefix="a")
    ng.send("ping", {}, 0.0)
    ng.datagrams_to_send()
    for _ in range(2):
        timer = ng.get_timer()
        assert timer is not None
        assert ng.handle_timer(timer) == []
    assert len(ng.datagrams_to_send()) == 2
    [reply] = ng.receive_datagram(b"a1 d6:result4:ponge", 0.35)
    assert isinstance(reply, NgReply) and reply.attempts == 3
    assert ng.get_timer() is None


def test_cancel_and_fail_all() -> None:
    ng = NgConnection(cookie_prefix="k")
    c1 = ng.send("ping", {}, 0.0)
    ng.send("query", {}, 0.0)
    ng.cancel(c1)
    assert ng.pending_cookies() == ["k2"]
    [failure] = ng.fail_all(lambda command: NgTimeout("closed", 0, 0.0, command))
    assert isinstance(failure, NgFailure) and failure.command == "query"
    assert ng.pending == 0
    with pytest.raises(ValueError):
        ng.send("ping", {"command": "x"}, 0.0)


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetransmitPolicy(initial_interval=0)
    with pytest.raises(ValueError):
        RetransmitPolicy(initial_interval=3, max_interval=2)
    assert RetransmitPolicy(0.2, 0.2, 0.5).send_times() == [0.0, 0.2, 0.4]
