"""SIP over TCP and TLS on loopback sockets (RFC 3261 §18, RFC 5626 §4.4.1)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sipwire import Responder, StreamClient, bad_cseq, options, register

from webims.sip import Limits, Request, Response
from webims.sip.framing import Pong
from webims.transport import (
    ConnectionLimits,
    StreamConnection,
    TransportClosed,
    TransportLayer,
    client_context,
    server_context,
)


@dataclass
class Server:
    layer: TransportLayer
    responder: Responder
    transport: str
    port: int
    client_ssl: ssl.SSLContext | None

    async def client(self, local_host: str = "127.0.0.1") -> StreamClient:
        kwargs: dict[str, object] = {"local_addr": (local_host, 0)}
        if self.client_ssl is not None:
            kwargs.update(ssl=self.client_ssl, server_hostname="127.0.0.1")
        return await StreamClient.open("127.0.0.1", self.port, **kwargs)


MakeServer = Callable[..., Awaitable[Server]]


@pytest.fixture(params=["TCP", "TLS"])
async def make_server(request: pytest.FixtureRequest, certs: tuple[Path, Path]) -> AsyncIterator[MakeServer]:
    transport: str = request.param
    layers: list[TransportLayer] = []

    async def make(limits: Limits | None = None, connection_limits: ConnectionLimits | None = None,
                   reuse_alias: bool = False) -> Server:
        responder = Responder()
        layer = TransportLayer(responder, limits=limits or Limits(), connection_limits=connection_limits,
                               tls_client_context=client_context(certs[0]), reuse_alias=reuse_alias)
        layers.append(layer)
        if transport == "TLS":
            listener = await layer.listen_tls("127.0.0.1", 0, server_context(*certs))
        else:
            listener = await layer.listen_tcp("127.0.0.1", 0)
        return Server(layer, responder, transport, listener.local[1],
                      client_context(certs[0]) if transport == "TLS" else None)

    yield make
    for layer in layers:
        await layer.close()


async def test_register_answered_on_same_connection_with_received_and_rport(make_server: MakeServer) -> None:
    server = await make_server()
    client = await server.client()
    await client.send(register(transport=server.transport))
    response = await client.response()
    assert response.status == 200
    assert response.cseq.method == "REGISTER"
    via = response.top_via
    client_port = client.writer.get_extra_info("sockname")[1]
    # §18.2.1: sent-by "client.invalid" differs from 127.0.0.1; RFC 3581: rport filled.
    assert via.received == "127.0.0.1"
    assert via.rport == client_port
    transport, host, port, conn_id, origin, path = response.headers.get("X-Source", "").split()
    assert (transport, host, int(port)) == (server.transport, "127.0.0.1", client_port)
    assert (origin, path) == ("None", "None")
    assert server.layer.connection(int(conn_id)) is server.responder.requests[0][1]
    await client.close()


async def test_fragmented_writes_and_two_messages_in_one_write(make_server: MakeServer) -> None:
    server = await make_server()
    client = await server.client()
    data = options(transport=server.transport, cseq=1)
    for i in range(0, len(data), 7):  # 7-byte pieces, each its own TCP segment
        await client.send(data[i : i + 7])
        await asyncio.sleep(0)
    first = await client.response()
    assert (first.status, first.cseq.seq) == (200, 1)
    await client.send(options(transport=server.transport, cseq=2) + register(transport=server.transport))
    second, third = await client.response(), await client.response()
    assert (second.cseq.seq, second.cseq.method) == (2, "OPTIONS")
    assert third.cseq.method == "REGISTER"
    assert len(server.responder.requests) == 3
    await client.close()


async def test_crlf_ping_gets_pong(make_server: MakeServer) -> None:
    server = await make_server()
    client = await server.client()
    await client.send(b"\r\n\r\n")
    assert isinstance(await client.event(), Pong)
    await client.send(options(transport=server.transport))  # the connection still carries SIP
    assert (await client.response()).status == 200
    await client.close()


async def test_malformed_request_gets_400_and_connection_survives(make_server: MakeServer) -> None:
    server = await make_server()
    client = await server.client()
    await client.send(bad_cseq(transport=server.transport))
    bad = await client.response()
    assert bad.status == 400
    assert bad.top_via.branch == "z9hG4bK-bad-cseq"
    assert bad.call_id == "a84b4c76e66710"
    assert bad.to.tag  # a stateless final response carries a To tag
    assert b"Traceback" not in bad.serialize()
    await client.send(options(transport=server.transport, cseq=7))
    good = await client.response()
    assert (good.status, good.cseq.seq) == (200, 7)
    assert [r.method for r, _ in server.responder.requests] == ["OPTIONS"]
    await client.close()


async def test_oversize_message_answered_513_then_closed(make_server: MakeServer) -> None:
    server = await make_server(limits=Limits(max_message_bytes=2048, max_body_bytes=1024))
    client = await server.client()
    head = options(transport=server.transport).replace(b"Content-Length: 0", b"Content-Length: 100000")
    await client.send(head)
    reply = await client.response()
    assert reply.status == 513
    assert await client.closed_by_peer()
    await client.close()


async def test_missing_content_length_is_a_framing_error(make_server: MakeServer) -> None:
    server = await make_server()
    client = await server.client()
    await client.send(options(transport=server.transport).replace(b"Content-Length: 0\r\n", b""))
    reply = await client.response()
    assert reply.status == 400
    assert await client.closed_by_peer()
    await client.close()


async def test_idle_connection_is_closed(make_server: MakeServer) -> None:
    server = await make_server(connection_limits=ConnectionLimits(idle_timeout=0.3))
    client = await server.client()
    await client.send(options(transport=server.transport))
    assert (await client.response()).status == 200
    assert await client.closed_by_peer()
    lost = await asyncio.wait_for(server.responder.lost.get(), 10)
    assert lost is server.responder.requests[0][1]
    await client.close()


async def _accepted(client: StreamClient, transport: str) -> bool:
    """Whether the server kept this connection (it answers) or dropped it."""
    try:
        await client.send(options(transport=transport))
        event = await client.event()
    except (EOFError, ConnectionError, OSError, ssl.SSLError):
        return False
    return isinstance(event, Response)


async def test_total_connection_limit(make_server: MakeServer) -> None:
    server = await make_server(connection_limits=ConnectionLimits(max_connections=2))
    a, b = await server.client(), await server.client()
    assert await _accepted(a, server.transport) and await _accepted(b, server.transport)
    try:
        c = await server.client()
    except (ConnectionError, ssl.SSLError):
        pass  # refused during the TLS handshake: also a refusal
    else:
        assert not await _accepted(c, server.transport)
        await c.close()
    await a.close()
    await asyncio.wait_for(server.responder.lost.get(), 10)  # the slot is released...
    d = await server.client()
    assert await _accepted(d, server.transport)  # ...and reused
    await b.close()
    await d.close()


async def test_per_source_connection_limit(make_server: MakeServer) -> None:
    server = await make_server(connection_limits=ConnectionLimits(max_connections_per_source=1))
    a = await server.client("127.0.0.1")
    assert await _accepted(a, server.transport)
    try:
        b = await server.client("127.0.0.1")
    except (ConnectionError, ssl.SSLError):
        pass
    else:
        assert not await _accepted(b, server.transport)
        await b.close()
    other = await server.client("127.0.0.2")  # another source address is still welcome
    assert await _accepted(other, server.transport)
    await a.close()
    await other.close()


async def test_handler_exception_is_logged_not_sent(make_server: MakeServer,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    server = await make_server()
    client = await server.client()
    with caplog.at_level(logging.ERROR, logger="webims.transport"):
        await client.send(options(transport=server.transport, method="BOOM", cseq=1))
        await client.send(options(transport=server.transport, cseq=2))
        reply = await client.response()
    assert (reply.status, reply.cseq.seq) == (200, 2)  # nothing was sent for BOOM
    assert any("handler failed on BOOM" in r.getMessage() for r in caplog.records)
    await client.close()


async def test_outgoing_connection_is_reused_and_answers_come_back(make_server: MakeServer) -> None:
    server = await make_server()
    uac = await make_server()  # a second layer that connects out
    conn = await uac.layer.connect(server.transport, "127.0.0.1", server.port, server_hostname="127.0.0.1")
    again = await uac.layer.connect(server.transport, "127.0.0.1", server.port)
    assert again is conn and isinstance(conn, StreamConnection) and conn.outgoing
    request = Request("OPTIONS", "sip:carol@chicago.com", [
        ("Via", f"SIP/2.0/{server.transport} 127.0.0.1:{uac.port};branch=z9hG4bK-out-1"),
        ("Max-Forwards", "70"), ("From", "<sip:alice@atlanta.com>;tag=x1"),
        ("To", "<sip:carol@chicago.com>"), ("Call-ID", "reuse-1"), ("CSeq", "1 OPTIONS"),
    ])
    conn.send(request)
    response, on = await asyncio.wait_for(uac.responder.responses.get(), 10)
    assert response.status == 200 and on is conn
    # The server can find the incoming connection by the client's address (§18.2.2).
    incoming = server.responder.requests[0][1]
    assert server.layer.find(server.transport, *conn.local) is incoming
    assert uac.layer.find(server.transport, "127.0.0.1", server.port) is conn


async def test_response_reopens_connection_when_the_original_is_gone(make_server: MakeServer) -> None:
    """§18.2.2: the connection closed before the response was sent: open a new one
    to the received address and the sent-by port."""
    server = await make_server()
    uac = await make_server()
    conn = await uac.layer.connect(server.transport, "127.0.0.1", server.port)
    conn.send(register(via_host="localhost", via_port=uac.port, transport=server.transport, br="z9hG4bK-re"))
    # The responder answers at once; take that answer, then drop the connection.
    await asyncio.wait_for(uac.responder.responses.get(), 10)
    request, incoming = server.responder.requests[0]
    assert request.top_via.received == "127.0.0.1"  # "localhost" is not the source address
    incoming.close()
    await incoming.wait_closed()
    with pytest.raises(TransportClosed):
        incoming.send_response(request.response(200))
    await server.layer.send_response(request.response(202), incoming)
    response, on = await asyncio.wait_for(uac.responder.responses.get(), 10)
    assert response.status == 202
    assert on is not conn and not on.outgoing  # arrived on a new, incoming connection of the UAC


async def test_layer_close_closes_connections(make_server: MakeServer) -> None:
    server = await make_server()
    client = await server.client()
    await client.send(options(transport=server.transport))
    assert (await client.response()).status == 200
    await server.layer.close()
    assert await client.closed_by_peer()
    assert server.layer.connections == []
    await client.close()


@pytest.mark.parametrize("reuse_alias", [True, False])
async def test_via_alias_rfc5923(make_server: MakeServer, reuse_alias: bool) -> None:
    """With reuse_alias, a request whose Via carries ``alias`` makes its connection
    the one to use for the sent-by address (RFC 5923 §5)."""
    server = await make_server(reuse_alias=reuse_alias)
    client = await server.client()
    await client.send(options(via_host="192.0.2.77", via_port=5070, transport=server.transport)
                      .replace(b";rport", b";alias"))
    assert (await client.response()).status == 200
    incoming = server.responder.requests[0][1]
    found = server.layer.find(server.transport, "192.0.2.77", 5070)
    assert found is (incoming if reuse_alias else None)
    conn = await server.layer.connect(server.transport, "192.0.2.77", 5070) if reuse_alias else None
    assert conn is found
    await client.close()
