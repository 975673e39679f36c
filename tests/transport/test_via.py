"""Transport-layer Via rules and error replies, on real message bytes
(RFC 3261 §18.2.1/§18.2.2, RFC 3581 §4, RFC 5118 §4.5, RFC 7118 §5.2)."""

from __future__ import annotations

import pytest
from sipwire import bad_cseq, options

from webims.sip import ParseError, Request, Response, parse
from webims.sip.headers import parse_via
from webims.transport import (
    Source,
    error_reply,
    fill_received,
    host_key,
    is_invalid_host,
    is_ip_address,
    random_invalid_host,
    response_destination,
    uri_transport_param,
    via_transport,
)


def _request(data: bytes) -> Request:
    msg = parse(data)
    assert isinstance(msg, Request)
    return msg


def _source(host: str = "192.0.2.4", port: int = 40112, transport: str = "UDP") -> Source:
    return Source(transport, host, port, "192.0.2.1", 5060, 1)


# RFC 3261 §18.2.1 example: sent-by "bobspc.biloxi.com", packet from 192.0.2.4.
BOB = (
    b"INVITE sip:alice@atlanta.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bK74bf9\r\n"
    b"Via: SIP/2.0/UDP relay.example.net;branch=z9hG4bKnashds8;received=192.0.2.9\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:bob@biloxi.com>;tag=9fxced76sl\r\nTo: <sip:alice@atlanta.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)


def test_received_added_when_sent_by_differs_rfc3261_18_2_1() -> None:
    request = _request(BOB)
    via = fill_received(request, _source())
    assert via.received == "192.0.2.4" and via.rport is None
    again = parse(request.serialize())
    assert str(again.top_via) == "SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bK74bf9;received=192.0.2.4"
    assert again.via[1].branch == "z9hG4bKnashds8"  # the other Via is untouched
    assert len(again.via) == 2


def test_nothing_changes_when_sent_by_is_the_source() -> None:
    data = BOB.replace(b"bobspc.biloxi.com:5060", b"192.0.2.4:5060")
    request = _request(data)
    fill_received(request, _source())
    assert request.serialize() == data  # byte-exact: not modified


def test_rport_filled_and_received_added_rfc3581_4() -> None:
    # RFC 3581 §4 example: the request came from 192.0.2.1:9988 behind a NAT.
    data = BOB.replace(b"bobspc.biloxi.com:5060;branch=z9hG4bK74bf9",
                       b"10.1.1.1:4540;rport;branch=z9hG4bK74bf9")
    request = _request(data)
    via = fill_received(request, _source("192.0.2.1", 9988))
    assert (via.received, via.rport) == ("192.0.2.1", 9988)
    assert response_destination(via) == ("192.0.2.1", 9988)
    # Even with the same host, rport demands received (§4: "MUST add received").
    same = _request(data.replace(b"10.1.1.1", b"192.0.2.1"))
    assert fill_received(same, _source("192.0.2.1", 9988)).received == "192.0.2.1"


def test_ipv6_received_without_brackets_rfc5118_4_5() -> None:
    data = BOB.replace(b"bobspc.biloxi.com:5060", b"[2001:db8::9:1]")
    request = _request(data)
    via = fill_received(request, _source("2001:db8::9:255", 5060))
    assert via.received == "2001:db8::9:255"
    again = parse(request.serialize())
    assert again.top_via.received == "2001:db8::9:255"
    assert response_destination(again.top_via) == ("2001:db8::9:255", 5060)
    same = _request(data)
    fill_received(same, _source("2001:DB8:0::9:1", 5060))  # same address, other spelling
    assert same.top_via.received is None


@pytest.mark.parametrize(("via", "transport", "expected"), [
    ("SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK1;received=192.0.2.1", None, ("192.0.2.1", 5060)),
    ("SIP/2.0/UDP pc33.atlanta.com:5070;branch=z9hG4bK1", None, ("pc33.atlanta.com", 5070)),
    ("SIP/2.0/UDP h;branch=z9hG4bK1;received=192.0.2.1;rport=9988", None, ("192.0.2.1", 9988)),
    ("SIP/2.0/UDP h:5062;branch=z9hG4bK1;maddr=239.255.255.1;ttl=1", None, ("239.255.255.1", 5062)),
    # Reliable transports: received (or host) and the sent-by port, never rport.
    ("SIP/2.0/TCP h:5070;branch=z9hG4bK1;received=192.0.2.1;rport=9988", None, ("192.0.2.1", 5070)),
    ("SIP/2.0/TLS h;branch=z9hG4bK1;received=192.0.2.1", None, ("192.0.2.1", 5061)),
    ("SIP/2.0/UDP h;branch=z9hG4bK1", "TLS", ("h", 5061)),
])
def test_response_destination_rfc3261_18_2_2(via: str, transport: str | None,
                                             expected: tuple[str, int]) -> None:
    assert response_destination(parse_via(via), transport) == expected


def test_websocket_helpers_rfc7118() -> None:
    assert via_transport("ws") == "WS" and via_transport("Wss") == "WSS"
    assert uri_transport_param("WSS") == "wss"
    with pytest.raises(ValueError):
        via_transport("SCTP-bogus")
    host = random_invalid_host()
    assert is_invalid_host(host) and host != random_invalid_host()
    assert is_invalid_host("df7jal23ls0d.invalid") and is_invalid_host("INVALID.")
    assert not is_invalid_host("invalid.example.com") and not is_invalid_host("ims.test")
    assert is_ip_address("[::1]") and is_ip_address("127.0.0.1") and not is_ip_address("localhost")
    assert host_key("[2001:DB8::0:1]") == "2001:db8::1" and host_key("Example.COM.") == "example.com"


def test_error_reply_copies_headers_and_fixes_cseq() -> None:
    reply = error_reply(bad_cseq(), 400, "Bad CSeq number")
    assert reply is not None
    response = parse(reply)
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (400, "Bad CSeq number")
    assert response.top_via.branch == "z9hG4bK-bad-cseq"
    assert response.call_id == "a84b4c76e66710"
    assert response.from_.tag == "1928301774"
    assert response.to.tag == "webims-err"
    assert (response.cseq.seq, response.cseq.method) == (0, "OPTIONS")
    assert response.body == b""


def test_error_reply_keeps_existing_to_tag_and_status() -> None:
    data = options().replace(b"To: <sip:carol@chicago.com>", b"To: <sip:carol@chicago.com>;tag=abc")
    reply = error_reply(data, 513, "Message Too Large")
    response = parse(reply or b"")
    assert isinstance(response, Response) and response.status == 513
    assert response.to.tag == "abc" and response.cseq.seq == 63104


@pytest.mark.parametrize("data", [
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",  # a response: discarded
    options(method="ACK"),  # ACK is never answered
    b"hello world\r\n\r\n",  # no Request-Line
    b"OPTIONS sip:carol@chicago.com SIP/2.0\r\nTo: <sip:carol@chicago.com>\r\n\r\n",  # no Via
    b"OPTIONS sip:carol@chicago.com SIP/2.0\r\nVia: SIP/2.0/UDP ;;;\r\n\r\n",  # unusable Via
    b"",
])
def test_error_reply_refuses(data: bytes) -> None:
    assert error_reply(data, 400, "Bad Request") is None


def test_error_reply_never_echoes_control_characters_or_parser_text() -> None:
    data = options().replace(b"Call-ID: a84b4c76e66710", b"Call-ID: a84b\x00c76")
    try:
        parse(data)
    except ParseError as exc:
        reply = error_reply(data, exc.status, exc.reason + "\r\nInjected: yes")
    else:  # pragma: no cover - the fixture must be malformed
        pytest.fail("fixture parsed")
    assert reply is not None
    status_line, rest = reply.split(b"\r\n", 1)
    assert status_line == b"SIP/2.0 400 NUL byte in header sectionInjected: yes"  # CR LF dropped
    assert b"\x00" not in reply and b"Injected" not in rest and b"Call-ID" not in rest
