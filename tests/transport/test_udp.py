"""SIP over UDP on loopback sockets (RFC 3261 §18.2.1, §18.2.2; RFC 3581)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sipwire import Responder, UdpClient, bad_cseq, options, register

from webims.sip import Request, Response, parse
from webims.transport import Connection, TransportLayer, UdpConnection, UdpListener


@pytest.fixture
async def server() -> AsyncIterator[tuple[TransportLayer, UdpListener, Responder]]:
    responder = Responder()
    async with TransportLayer(responder) as layer:
        listener = await layer.listen_udp("127.0.0.1", 0)
        yield layer, listener, responder


async def test_options_answered_to_source_with_received_and_rport(
        server: tuple[TransportLayer, UdpListener, Responder]) -> None:
    _, listener, responder = server
    client = await UdpClient.open()
    client.send(options(transport="UDP", via_port=5999, rport=True), listener.local)
    response = parse(await client.datagram())
    assert isinstance(response, Response) and response.status == 200
    # RFC 3581 §4: rport filled with the source port, received added; the answer
    # went to the source port although sent-by says 5999.
    assert response.top_via.rport == client.port
    assert response.top_via.received == "127.0.0.1"
    _, conn = responder.requests[0]
    assert isinstance(conn, UdpConnection)
    assert conn.source.transport == "UDP" and conn.remote == ("127.0.0.1", client.port)
    assert conn.local == listener.local
    client.close()


async def test_response_follows_via_without_rport(
        server: tuple[TransportLayer, UdpListener, Responder]) -> None:
    """§18.2.2: no rport: send to the received (or sent-by) address and the sent-by port,
    not to the source port."""
    _, listener, _ = server
    sender, receiver = await UdpClient.open(), await UdpClient.open()
    sender.send(register(via_host="127.0.0.1", via_port=receiver.port, transport="UDP", rport=False),
                listener.local)
    response = parse(await receiver.datagram())
    assert isinstance(response, Response) and response.status == 200
    assert response.top_via.received is None  # sent-by host equals the source address
    assert sender.received.empty()
    sender.close()
    receiver.close()


async def test_received_added_when_sent_by_is_a_name(
        server: tuple[TransportLayer, UdpListener, Responder]) -> None:
    _, listener, responder = server
    client = await UdpClient.open()
    client.send(options(via_host="pc33.atlanta.com", via_port=client.port, transport="UDP", rport=False),
                listener.local)
    response = parse(await client.datagram())
    assert response.top_via.received == "127.0.0.1"
    assert response.top_via.rport is None
    assert responder.requests[0][0].top_via.received == "127.0.0.1"
    client.close()


async def test_malformed_request_gets_400_malformed_response_is_dropped(
        server: tuple[TransportLayer, UdpListener, Responder]) -> None:
    _, listener, responder = server
    client = await UdpClient.open()
    client.send(bad_cseq(transport="UDP"), listener.local)
    bad = parse(await client.datagram())
    assert isinstance(bad, Response) and bad.status == 400
    assert bad.top_via.branch == "z9hG4bK-bad-cseq"
    # A malformed response is discarded silently (§18.1.2); the next datagram we
    # get is the answer to the good OPTIONS sent after it.
    client.send(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\nCSeq: x\r\n\r\n", listener.local)
    client.send(b"garbage\r\n\r\n", listener.local)
    client.send(options(transport="UDP", cseq=9), listener.local)
    good = parse(await client.datagram())
    assert isinstance(good, Response) and (good.status, good.cseq.seq) == (200, 9)
    assert len(responder.requests) == 1
    client.close()


async def test_oversize_datagram_gets_513() -> None:
    from webims.sip import Limits

    responder = Responder()
    async with TransportLayer(responder, limits=Limits(max_message_bytes=1024)) as layer:
        listener = await layer.listen_udp("127.0.0.1", 0)
        client = await UdpClient.open()
        client.send(options(transport="UDP", extra="X-Pad: " + "a" * 2000 + "\r\n"), listener.local)
        reply = parse(await client.datagram())
        assert isinstance(reply, Response) and reply.status == 513
        assert responder.requests == []
        client.close()


async def test_connect_udp_sends_from_listening_port(
        server: tuple[TransportLayer, UdpListener, Responder]) -> None:
    """A request sent through layer.connect("UDP") leaves from the listener, so the
    answer comes back to the listener and reaches the handler."""
    _, listener, _ = server
    uac_responder = Responder()
    async with TransportLayer(uac_responder) as uac:
        uac_listener = await uac.listen_udp("127.0.0.1", 0)
        flow = await uac.connect("UDP", "127.0.0.1", listener.local[1])
        assert flow.local == uac_listener.local
        assert await uac.connect("UDP", "127.0.0.1", listener.local[1]) is flow
        flow.send(Request("OPTIONS", "sip:carol@chicago.com", [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{uac_listener.local[1]};branch=z9hG4bK-udp-out;rport"),
            ("Max-Forwards", "70"), ("From", "<sip:alice@atlanta.com>;tag=u1"),
            ("To", "<sip:carol@chicago.com>"), ("Call-ID", "udp-out"), ("CSeq", "1 OPTIONS"),
        ]))
        response, conn = await asyncio.wait_for(uac_responder.responses.get(), 10)
        assert response.status == 200 and conn is flow


async def test_coroutine_callback_handler(caplog: pytest.LogCaptureFixture) -> None:
    """A plain callback may return a coroutine: it runs as a task; its exception is
    logged and the socket keeps working."""
    seen: list[str] = []

    async def on_message(message: Request | Response, conn: Connection) -> None:
        assert isinstance(message, Request)
        await asyncio.sleep(0)
        seen.append(message.method)
        if message.method == "BOOM":
            raise RuntimeError("async handler bug")
        conn.send_response(message.response(202))

    async with TransportLayer(on_message) as layer:
        listener = await layer.listen_udp("127.0.0.1", 0)
        client = await UdpClient.open()
        client.send(options(transport="UDP", method="BOOM", cseq=1), listener.local)
        client.send(options(transport="UDP", cseq=2), listener.local)
        reply = parse(await client.datagram())
        assert isinstance(reply, Response) and (reply.status, reply.cseq.seq) == (202, 2)
        assert seen == ["BOOM", "OPTIONS"]
        assert any("handler failed on BOOM" in r.getMessage() for r in caplog.records)
        client.close()
