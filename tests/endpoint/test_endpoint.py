"""SipEndpoint: two elements over real loopback sockets exchange requests through
their transaction layers (UDP and TCP), with timeouts and unreachable hops mapped to
408/503 as RFC 3261 §8.1.3.1 says."""

from __future__ import annotations

import asyncio

import pytest

from webims.endpoint import IncomingRequest, SipEndpoint, Target
from webims.sip import Request, TimerSettings, new_tag


def options(uri: str) -> Request:
    return Request(
        "OPTIONS",
        uri,
        [
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@127.0.0.1>;tag={new_tag()}"),
            ("To", f"<{uri}>"),
            ("Call-ID", f"{new_tag()}@test"),
            ("CSeq", "1 OPTIONS"),
        ],
    )


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_request_and_answer(transport: str) -> None:
    seen: list[str] = []

    async def answer(incoming: IncomingRequest) -> None:
        seen.append(incoming.request.method)
        incoming.respond(200, headers=[("X-Echo", incoming.request.call_id)], to_tag=new_tag())

    server = SipEndpoint(answer)
    client = SipEndpoint()
    listen = server.transport.listen_udp if transport == "UDP" else server.transport.listen_tcp
    listener = await listen("127.0.0.1", 0)
    port = listener.local[1]
    await client.transport.listen_udp("127.0.0.1", 0)  # UDP requests leave from a listener
    try:
        req = options(f"sip:bob@127.0.0.1:{port};transport={transport.lower()}")
        resp = await asyncio.wait_for(client.request(req), 5)
        assert resp.status == 200
        assert resp.headers.get("X-Echo") == req.call_id
        assert resp.to.tag
        assert seen == ["OPTIONS"]
        # answered: the endpoint lets the request go; over UDP the server transaction
        # stays for Timer J (RFC 3261 §17.2.2) with the request's identity only
        assert not server._incoming and not client._pending
        assert len(server.layer) == (1 if transport == "UDP" else 0)
        # the Via we added carries the transport and rport (RFC 3581)
        assert req.top_via.transport == transport
        assert "rport" in req.top_via.params
    finally:
        await client.close()
        await server.close()


async def test_timeout_becomes_408() -> None:
    """A UDP request to a socket that never answers ends with Timer F -> 408."""
    import socket

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    client = SipEndpoint(timers=TimerSettings(t1=0.01, t2=0.04, t4=0.05, d=0.1))
    await client.transport.listen_udp("127.0.0.1", 0)
    try:
        resp = await asyncio.wait_for(client.request(options(f"sip:x@127.0.0.1:{port}")), 5)
        assert resp.status == 408
        assert sink.recv(65535).startswith(b"OPTIONS ")
    finally:
        sink.close()
        await client.close()


async def test_unreachable_tcp_becomes_503() -> None:
    client = SipEndpoint()
    try:
        resp = await asyncio.wait_for(
            client.request(options("sip:x@127.0.0.1:9"), Target("TCP", "127.0.0.1", 9)), 15
        )
        assert resp.status == 503
    finally:
        await client.close()


async def test_handler_exception_answers_500() -> None:
    async def broken(incoming: IncomingRequest) -> None:
        raise RuntimeError("bug")

    server = SipEndpoint(broken)
    client = SipEndpoint()
    listener = await server.transport.listen_udp("127.0.0.1", 0)
    await client.transport.listen_udp("127.0.0.1", 0)
    try:
        resp = await asyncio.wait_for(client.request(options(f"sip:b@127.0.0.1:{listener.local[1]}")), 5)
        assert resp.status == 500
    finally:
        await client.close()
        await server.close()




async def test_request_now_answers_without_a_task() -> None:
    """``on_request_now``: requests it answers never reach ``on_request`` and make no task;
    the others go on to it; one that raises is answered 500 like a failing ``on_request``."""
    later: list[str] = []

    async def answer(incoming: IncomingRequest) -> None:
        later.append(incoming.request.method)
        incoming.respond(202)

    def now(incoming: IncomingRequest) -> bool:
        method = incoming.request.method
        if method == "OPTIONS":
            assert not server._tasks  # in the call that received it, with no task made
            incoming.respond(200, to_tag=new_tag())
            return True
        if method == "INFO":
            raise RuntimeError("bug")
        return False

    server = SipEndpoint(answer)
    server.on_request_now = now
    client = SipEndpoint()
    listener = await server.transport.listen_udp("127.0.0.1", 0)
    await client.transport.listen_udp("127.0.0.1", 0)
    uri = f"sip:b@127.0.0.1:{listener.local[1]}"
    try:
        statuses = []
        for method in ("OPTIONS", "MESSAGE", "INFO"):
            req = options(uri)
            req.method = method
            req.headers.set("CSeq", f"1 {method}")
            statuses.append((await asyncio.wait_for(client.request(req), 5)).status)
        assert statuses == [200, 202, 500]
        assert later == ["MESSAGE"]
    finally:
        await client.close()
        await server.close()


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_responses_waiting_stop_retransmissions(loop_kind: str) -> None:
    """The loop was blocked past Timer E with the answers already in the socket buffer:
    they are read before the timer fires, so no request goes out twice (the peer would
    answer each copy again)."""
    import socket
    import time

    import uvloop

    from webims.sip import Response, parse

    async def scenario() -> tuple[list[int], int]:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(2)
        port = peer.getsockname()[1]
        client = SipEndpoint(timers=TimerSettings(t1=0.05, t2=0.2, t4=0.25, d=0.5))
        await client.transport.listen_udp("127.0.0.1", 0)
        try:
            uri = f"sip:b@127.0.0.1:{port}"
            tasks = [asyncio.ensure_future(client.request(options(uri))) for _ in range(6)]
            await asyncio.sleep(0.01)  # the requests leave
            for _ in tasks:
                data, addr = peer.recvfrom(65535)
                request = parse(data)
                assert isinstance(request, Request)
                peer.sendto(request.response(200, to_tag="peer").serialize(), addr)
            time.sleep(0.15)  # a busy loop: Timer E (50 ms) due, the 200s waiting
            responses: list[Response] = await asyncio.wait_for(asyncio.gather(*tasks), 5)
            await asyncio.sleep(0.12)  # a retransmission (if any) would be out by now
            peer.settimeout(0.05)
            again = 0
            try:
                while True:
                    peer.recvfrom(65535)
                    again += 1
            except TimeoutError:
                pass
            return [r.status for r in responses], again
        finally:
            peer.close()
            await client.close()

    factory = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        statuses, retransmitted = runner.run(scenario())
    assert statuses == [200] * 6
    assert retransmitted == 0
