"""SIP over WebSocket, WS and WSS, on loopback (RFC 7118, RFC 6455 §10.2)."""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from sipwire import Responder, bad_cseq, options, register

from webims.sip import Limits, Request, Response, parse
from webims.transport import (
    ConnectionLimits,
    OriginPolicy,
    TransportLayer,
    WebSocketConnection,
    client_context,
    mount_websocket,
    normalize_origin,
    serve_websocket,
    server_context,
)


@dataclass
class WsServer:
    layer: TransportLayer
    responder: Responder
    url: str
    origin: str
    ssl: ssl.SSLContext | None
    session: aiohttp.ClientSession
    transport: str
    sessions: list[aiohttp.ClientSession]

    async def connect(
        self,
        *,
        origin: str | None = "default",
        protocols: tuple[str, ...] = ("sip",),
        local_host: str | None = None,
    ) -> aiohttp.ClientWebSocketResponse:
        session = self.session
        if local_host is not None:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(local_host, 0)))
            self.sessions.append(session)
        return await session.ws_connect(
            self.url,
            protocols=protocols,
            origin=self.origin if origin == "default" else origin,
            ssl=self.ssl if self.ssl is not None else True,
            autoping=True,
        )


MakeWs = Callable[..., Awaitable[WsServer]]


@pytest.fixture(params=["WS", "WSS"])
async def make_ws(request: pytest.FixtureRequest, certs: tuple[Path, Path]) -> AsyncIterator[MakeWs]:
    transport: str = request.param
    cleanup: list[Any] = []
    session = aiohttp.ClientSession()
    sessions = [session]

    async def make(
        limits: Limits | None = None, connection_limits: ConnectionLimits | None = None, **options: Any
    ) -> WsServer:
        responder = Responder()
        layer = TransportLayer(responder, limits=limits or Limits(), connection_limits=connection_limits)
        server = await serve_websocket(
            layer,
            "127.0.0.1",
            0,
            ssl_context=server_context(*certs) if transport == "WSS" else None,
            **options,
        )
        cleanup.extend([server, layer])
        scheme = "https" if transport == "WSS" else "http"
        return WsServer(
            layer,
            responder,
            server.url,
            f"{scheme}://127.0.0.1:{server.local[1]}",
            client_context(certs[0]) if transport == "WSS" else None,
            session,
            transport,
            sessions,
        )

    yield make
    for each in sessions:
        await each.close()
    for item in cleanup:
        await item.close()


async def _message(ws: aiohttp.ClientWebSocketResponse) -> Response | Request:
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.type in (WSMsgType.TEXT, WSMsgType.BINARY), msg
    data = msg.data.encode() if isinstance(msg.data, str) else msg.data
    return parse(data)


async def test_register_answered_on_same_websocket(make_ws: MakeWs) -> None:
    server = await make_ws()
    ws = await server.connect()
    assert ws.protocol == "sip"
    await ws.send_str(register("df7jal23ls0d.invalid", None, transport=server.transport).decode())
    response = await _message(ws)
    assert isinstance(response, Response) and response.status == 200
    assert response.cseq.method == "REGISTER"
    # §18.2.1: an RFC 7118 .invalid sent-by always differs from the source address.
    assert response.top_via.received == "127.0.0.1"
    transport, host, _, conn_id, origin, path = response.headers.get("X-Source", "").split()
    assert (transport, host, origin, path) == (server.transport, "127.0.0.1", server.origin, "/sip")
    conn = server.layer.connection(int(conn_id))
    assert isinstance(conn, WebSocketConnection)
    assert conn.source.origin == server.origin and conn.source.path == "/sip"
    await ws.close()


async def test_binary_frames_and_keepalive(make_ws: MakeWs) -> None:
    server = await make_ws()
    ws = await server.connect()
    await ws.send_bytes(options(transport=server.transport, cseq=5))
    response = await _message(ws)
    assert isinstance(response, Response) and (response.status, response.cseq.seq) == (200, 5)
    await ws.send_str("\r\n\r\n")  # CRLF keep-alive: answered with CRLF
    pong = await asyncio.wait_for(ws.receive(), 10)
    assert pong.type == WSMsgType.TEXT and pong.data == "\r\n"
    await ws.close()


async def test_malformed_request_gets_400_and_websocket_survives(make_ws: MakeWs) -> None:
    server = await make_ws()
    ws = await server.connect()
    await ws.send_str(bad_cseq(transport=server.transport).decode())
    bad = await _message(ws)
    assert isinstance(bad, Response) and bad.status == 400
    assert bad.top_via.branch == "z9hG4bK-bad-cseq"
    await ws.send_str("NOT SIP AT ALL\r\n\r\n")  # no Request-Line: no answer
    await ws.send_str(options(transport=server.transport, cseq=8).decode())
    good = await _message(ws)
    assert isinstance(good, Response) and (good.status, good.cseq.seq) == (200, 8)
    assert not ws.closed
    await ws.close()


async def test_oversize_message_answered_513_and_closed_with_1009(make_ws: MakeWs) -> None:
    server = await make_ws(limits=Limits(max_message_bytes=2048))
    ws = await server.connect()
    await ws.send_str(options(transport=server.transport, extra="X-Pad: " + "a" * 3000 + "\r\n").decode())
    reply = await _message(ws)
    assert isinstance(reply, Response) and reply.status == 513
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert (msg.type, msg.data) == (WSMsgType.CLOSE, aiohttp.WSCloseCode.MESSAGE_TOO_BIG)
    assert server.responder.requests == []


async def test_huge_message_drops_the_websocket(make_ws: MakeWs) -> None:
    server = await make_ws(limits=Limits(max_message_bytes=2048))
    ws = await server.connect()
    await ws.send_bytes(b"x" * 100_000)
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR)
    # 1009 when the close frame gets through; 1006 when the unread rest of the
    # message made the kernel reset the connection first.
    assert ws.close_code in (aiohttp.WSCloseCode.MESSAGE_TOO_BIG, aiohttp.WSCloseCode.ABNORMAL_CLOSURE)
    await asyncio.wait_for(server.responder.lost.get(), 10)
    assert server.responder.requests == []


async def test_foreign_origin_refused_with_403(make_ws: MakeWs) -> None:
    server = await make_ws(origins=["https://wic.example.com"])
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await server.connect(origin="https://evil.example.net")
    assert refused.value.status == 403
    ws = await server.connect(origin="https://wic.example.com")  # listed: accepted
    await ws.send_str(options(transport=server.transport).decode())
    assert (await _message(ws)).status == 200  # type: ignore[union-attr]
    await ws.close()
    ws = await server.connect()  # the server's own origin (allow_same_origin default)
    await ws.close()
    assert server.responder.requests[0][1].source.origin == "https://wic.example.com"


async def test_same_origin_can_be_switched_off(make_ws: MakeWs) -> None:
    server = await make_ws(origins=["https://wic.example.com:443"], allow_same_origin=False)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await server.connect()
    assert refused.value.status == 403
    ws = await server.connect(origin="https://WIC.example.com")  # default port, case-insensitive host
    await ws.close()


async def test_missing_origin_refused_unless_allowed(make_ws: MakeWs) -> None:
    strict = await make_ws()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await strict.connect(origin=None)
    assert refused.value.status == 403
    lenient = await make_ws(allow_missing_origin=True)
    ws = await lenient.connect(origin=None)
    await ws.send_str(options(transport=lenient.transport).decode())
    assert (await _message(ws)).status == 200  # type: ignore[union-attr]
    assert lenient.responder.requests[0][1].source.origin is None
    await ws.close()


async def test_upgrade_without_sip_subprotocol_refused(make_ws: MakeWs) -> None:
    server = await make_ws()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await server.connect(protocols=())
    assert refused.value.status == 400
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await server.connect(protocols=("msrp", "xmpp"))
    assert refused.value.status == 400
    ws = await server.connect(protocols=("msrp", "sip"))
    assert ws.protocol == "sip"
    await ws.close()


async def test_per_source_and_total_limits(make_ws: MakeWs) -> None:
    server = await make_ws(
        connection_limits=ConnectionLimits(max_connections=2, max_connections_per_source=1)
    )
    first = await server.connect(local_host="127.0.0.1")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await server.connect(local_host="127.0.0.1")
    assert refused.value.status == 503
    second = await server.connect(local_host="127.0.0.2")  # another source
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await server.connect(local_host="127.0.0.3")  # total reached
    assert refused.value.status == 503
    await first.close()
    await asyncio.wait_for(server.responder.lost.get(), 10)
    third = await server.connect(local_host="127.0.0.1")  # the slot came back
    await third.close()
    await second.close()


async def test_idle_websocket_is_closed(make_ws: MakeWs) -> None:
    server = await make_ws(connection_limits=ConnectionLimits(idle_timeout=0.3))
    ws = await server.connect()
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert (msg.type, msg.data) == (WSMsgType.CLOSE, aiohttp.WSCloseCode.GOING_AWAY)


async def test_server_sends_request_to_websocket_client(make_ws: MakeWs) -> None:
    """The gateway reaches a registered WIC through its WebSocket (RFC 7118 §5)."""
    server = await make_ws()
    ws = await server.connect()
    await ws.send_str(register("a1b2.invalid", None, transport=server.transport).decode())
    assert (await _message(ws)).status == 200  # type: ignore[union-attr]
    conn = server.responder.requests[0][1]
    conn.send(
        Request(
            "MESSAGE",
            "sip:bob@a1b2.invalid;transport=ws",
            [
                ("Via", f"SIP/2.0/{server.transport} gw.ims.test;branch=z9hG4bK-to-wic"),
                ("Max-Forwards", "70"),
                ("From", "<sip:alice@ims.test>;tag=m1"),
                ("To", "<sip:bob@ims.test>"),
                ("Call-ID", "to-wic-1"),
                ("CSeq", "1 MESSAGE"),
                ("Content-Type", "text/plain"),
            ],
            body="héllo".encode(),
        )
    )
    request = await _message(ws)
    assert isinstance(request, Request) and request.method == "MESSAGE"
    assert request.body == "héllo".encode()
    await ws.send_str(request.response(200, to_tag="wic").serialize().decode())
    response, on = await asyncio.wait_for(server.responder.responses.get(), 10)
    assert response.status == 200 and on is conn
    await ws.close()
    assert await asyncio.wait_for(server.responder.lost.get(), 10) is conn
    assert conn.closed and server.layer.connection(conn.id) is None


async def test_mount_on_existing_application(certs: tuple[Path, Path]) -> None:
    """The gateway shares the web server's port: other routes keep working."""
    responder = Responder()
    async with TransportLayer(responder) as layer:
        app = web.Application()

        async def index(request: web.Request) -> web.Response:
            return web.Response(text="WWSF page")

        app.router.add_get("/", index)
        mount_websocket(app, layer, path="/ws-sip", origins=["https://wic.example.com"])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/") as page:
                    assert await page.text() == "WWSF page"
                ws = await session.ws_connect(
                    f"http://127.0.0.1:{port}/ws-sip", protocols=("sip",), origin="https://wic.example.com"
                )
                await ws.send_str(options(transport="WS").decode())
                assert (await _message(ws)).status == 200  # type: ignore[union-attr]
                assert responder.requests[0][1].source.path == "/ws-sip"
                await runner.cleanup()  # app shutdown closes the SIP WebSockets (1001)
                msg = await asyncio.wait_for(ws.receive(), 10)
                assert (msg.type, msg.data) == (WSMsgType.CLOSE, aiohttp.WSCloseCode.GOING_AWAY)
        finally:
            await runner.cleanup()


@pytest.mark.parametrize(
    ("origin", "key"),
    [
        ("https://wic.example.com", ("https", "wic.example.com", 443)),
        ("HTTPS://WIC.Example.com:443", ("https", "wic.example.com", 443)),
        ("http://127.0.0.1:8080", ("http", "127.0.0.1", 8080)),
        ("https://[::1]:8443", ("https", "::1", 8443)),
        ("null", None),  # opaque origin (sandboxed frame, file:)
        ("https://wic.example.com/path", None),
        ("https://user@wic.example.com", None),
        ("ftp://wic.example.com", None),
        ("https://wic.example.com:99999", None),
    ],
)
def test_normalize_origin_rfc6454(origin: str, key: tuple[str, str, int] | None) -> None:
    assert normalize_origin(origin) == key


def test_origin_policy_rejects_malformed_configuration() -> None:
    with pytest.raises(ValueError, match="not an origin"):
        OriginPolicy(["wic.example.com"])


async def test_closed_websocket_is_freed_by_reference_counting(make_ws: MakeWs) -> None:
    """A connection the peer closed leaves no reference cycle (no WebSocketConnection waits
    for the cyclic collector), for the server's GcPolicy collects the old generation rarely."""

    def alive() -> int:
        return sum(isinstance(o, WebSocketConnection) for o in gc.get_objects())

    server = await make_ws()
    responder = server.responder
    gc.collect()
    before = alive()
    gc.disable()
    try:
        for _ in range(5):
            ws = await server.connect()
            await ws.send_bytes(options(transport=server.transport, cseq=1))
            assert isinstance(await _message(ws), Response)
            await ws.close()
        for _ in range(5):  # the layer hears of each close (connection_lost)
            await asyncio.wait_for(responder.lost.get(), 10)
        responder.requests.clear()  # the test's own references
        responder.made.clear()
        await asyncio.sleep(0.05)
        assert alive() == before, "closed WebSocket connections kept by a reference cycle"
    finally:
        gc.enable()
