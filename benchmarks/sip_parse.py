"""SIP parser throughput (issue 2): messages per second on one core.

Prints parse and parse+serialize rates for an 870-byte INVITE with SDP and for a
REGISTER; the last line is ``parse+serialize INVITE: <N> msg/s``.  Before it, the
SIP-core cost of one relayed registration (issue 5): what a gateway does with the
core API for a WIC REGISTER relayed to the IMS (parse, server transaction, typed
views, a new REGISTER in a client transaction, the IMS 200 parsed and matched, the
200 to the WIC built and sent, the transactions ended), in microseconds of CPU; and a
registration relayed through :class:`webims.endpoint.SipEndpoint` with in-memory
connections (the event pump, futures and the handler's task on top; its handler reads
fewer headers than the core flow does): the gateway's SIP side without kernel and TLS.
Then one REGISTER's parse in a loop and with the caches cold (24 MiB written between
parses): in a busy gateway a message's parse is nearer the second.

Rates are per CPU-second of the benchmark process (one core), best of five rounds.
Each iteration parses a distinct message (Call-ID, branch, tags and user parts
vary) so that no cache sees the same header twice in a row.

    .venv/bin/python benchmarks/sip_parse.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from webims.endpoint import IncomingRequest, SipEndpoint
from webims.sip import (
    Message,
    Request,
    RequestReceived,
    Response,
    ResponseReceived,
    SendMessage,
    TransactionLayer,
    Via,
    parse,
)
from webims.transport import Connection
from webims.transport.base import Source
from webims.transport.loop import loop_factory

SDP = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.101\r\n"
    "t=0 0\r\n"
    "m=audio 49172 RTP/AVP 0 8 96 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:96 AMR-WB/16000\r\n"
    "a=fmtp:96 mode-change-capability=2;max-red=0\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
)


def invite(i: int) -> bytes:
    head = (
        f"INVITE sip:bob{i % 1000}@biloxi.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK{i:010d}x;rport\r\n"
        "Max-Forwards: 70\r\n"
        f'To: "Bob" <sip:bob{i % 1000}@biloxi.example.com>\r\n'
        f'From: "Alice" <sip:alice@atlanta.example.com>;tag={i:08d}\r\n'
        f"Call-ID: {i:012d}a84b4c76e66710@pc33.atlanta.example.com\r\n"
        "CSeq: 314159 INVITE\r\n"
        f"Contact: <sip:alice@192.0.2.101:5060;transport=udp>\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO\r\n"
        "Supported: 100rel, timer\r\n"
        "User-Agent: webims-benchmark/0.1\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP)}\r\n\r\n"
    )
    return (head + SDP).encode()


def register(i: int) -> bytes:
    return (
        "REGISTER sip:ims.test SIP/2.0\r\n"
        f"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK{i:010d};rport\r\n"
        "Max-Forwards: 69\r\n"
        f'To: <sip:web-{i % 1000:03d}@ims.test>\r\n'
        f'From: <sip:web-{i % 1000:03d}@ims.test>;tag={i:08d}\r\n'
        f"Call-ID: {i:012d}ekpkc8a1mtdv\r\n"
        "CSeq: 2 REGISTER\r\n"
        f'Contact: <sip:{i:08x}@df7jal23ls0d.invalid;transport=ws>;+sip.ice;reg-id=1;'
        f'+sip.instance="<urn:uuid:{i:08d}-7d61-4ddd-9a2d-6ad54f4e4b9a>";expires=600\r\n'
        "Expires: 600\r\n"
        "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n"
        "Supported: path,gruu,outbound\r\n"
        "User-Agent: JsSIP 3.10.1\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def wic_register(i: int) -> bytes:
    """A WIC's REGISTER as the registration benchmark's clients send it (RFC 7118)."""
    return (
        "REGISTER sip:ims.test SIP/2.0\r\n"
        f"Via: SIP/2.0/WSS b{i}.invalid;branch=z9hG4bK{i:012x}\r\nMax-Forwards: 70\r\n"
        f"From: <sip:b{i}@ims.test>;tag={i:08x}\r\nTo: <sip:b{i}@ims.test>\r\n"
        f"Call-ID: {i:016x}\r\nCSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{i:08x}@{i:010x}.invalid;transport=ws>;reg-id=1;"
        f'+sip.instance="<urn:uuid:00000000-0000-4000-8000-{i:012d}>"\r\n'
        "Expires: 3600\r\nSupported: path, outbound\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def ims_ok(request: bytes) -> bytes:
    """The 200 a registrar answers at once (the registration benchmark's IMS stub)."""
    head = request.partition(b"\r\n\r\n")[0].split(b"\r\n")
    copied = (b"via", b"from", b"call-id", b"cseq")
    keep = [line for line in head[1:] if line.split(b":", 1)[0].lower() in copied]
    to = next(line for line in head if line.startswith(b"To:"))
    contact = next(line for line in head if line.startswith(b"Contact:"))
    aor = to.split(b":", 1)[1].strip()
    return (b"SIP/2.0 200 OK\r\n" + b"\r\n".join(keep) + b"\r\n" + to + b";tag=stub\r\n" + contact
            + b"\r\nService-Route: <sip:orig@127.0.0.1:5070;lr>\r\nP-Associated-URI: " + aor
            + b"\r\nContent-Length: 0\r\n\r\n")  # fmt: skip


def relay_flow(count: int) -> float:
    """CPU seconds per relayed registration through the SIP core (module docstring)."""
    wic = TransactionLayer(send_trying=False)
    ims = TransactionLayer(uas_core=False)
    incoming = [wic_register(i) for i in range(count)]
    now = 0.0
    sent: list[bytes] = []
    cpu = 0.0
    for start in range(0, count, 500):
        t0 = time.process_time()
        for data in incoming[start : start + 500]:
            now += 0.002
            request = parse(data)
            assert isinstance(request, Request)
            wic.receive(request, now, source="ws", reliable=True)
            key = None
            while (event := wic.next_event()) is not None:
                if isinstance(event, RequestReceived):
                    key = event.key
            assert key is not None
            # what the registrar reads (RFC 3261 §10.3, RFC 5626 §6)
            to = request.to
            contact = request.contact[0]
            _ = (to.uri_text, request.via, request.contact_star, request.expires, contact.sip_instance,
                 contact.reg_id, contact.expires, request.call_id, request.cseq, request.from_.tag,
                 request.headers.get_all("Authorization"), request.headers.get("Cookie"))  # fmt: skip
            top = request.top_via
            request.replace_top_via(top.replace(params={**top.params, "received": "127.0.0.9"}))
            # the IMS-side REGISTER (RFC 3261 §10.2), in a client transaction over UDP
            out = Request("REGISTER", "sip:ims.test", [
                ("Max-Forwards", "70"), ("From", f"<{to.uri_text}>;tag=g{start}"), ("To", f"<{to.uri_text}>"),
                ("Call-ID", f"gw-{request.call_id}"), ("CSeq", "1 REGISTER"),
                ("Contact", "<sip:gw@127.0.0.1:5070;ob>;expires=3600"), ("Expires", "3600"),
                ("Supported", "outbound, path"), ("Path", "<sip:gw@127.0.0.1:5070;lr;ob>"),
            ]).copy()  # fmt: skip
            branch = f"z9hG4bK{id(out):x}{now}"
            out.push_via(Via("UDP", "127.0.0.1", 5070, {"branch": branch, "rport": None}, "SIP/2.0",
                             f"SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport"))  # fmt: skip
            ims.send_request(out, now, destination="udp", reliable=False)
            while (event := ims.next_event()) is not None:
                if isinstance(event, SendMessage):
                    sent.append(event.message.serialize())
            answer = parse(ims_ok(sent[-1]))
            ims.receive(answer, now, source="udp")
            final = None
            while (event := ims.next_event()) is not None:
                if isinstance(event, ResponseReceived):
                    final = event.response
            assert final is not None and final.status == 200
            _ = ([c.expires for c in final.contact], final.contact[0].uri_text, final.expires,
                 [str(r) for r in final.service_route], final.headers.get_all("P-Associated-URI"),
                 final.to.tag, final.headers.get_all("Authentication-Info"), final.headers.get_all("Warning"),
                 final.headers.get_all("Date"))  # fmt: skip
            # the 200 to the WIC (RFC 3261 §10.3 step 8)
            ok = request.response(200, "OK", to_tag=final.to.tag, headers=[
                ("Contact", f"{contact};expires=3600"), ("Expires", "3600"),
                ("P-Associated-URI", f"<{to.uri_text}>"), ("Require", "outbound"),
                ("Supported", "outbound, path"),
            ])  # fmt: skip
            wic.send_response(key, ok, now)
            while (event := wic.next_event()) is not None:
                if isinstance(event, SendMessage):
                    sent.append(event.message.serialize())
            wic.handle_timer(now)
            ims.handle_timer(now)
            while wic.next_event() is not None or ims.next_event() is not None:
                pass
            sent.clear()
        cpu += time.process_time() - t0
    return cpu / count


class _MemoryConnection(Connection):
    """A connection that keeps what is sent (the endpoint benchmark: no sockets)."""

    __slots__ = ("sent",)  # source, outgoing: declared by Connection

    def __init__(self, transport: str, n: int) -> None:
        self.source = Source(transport, f"127.0.0.{n}", 5000 + n, "127.0.0.1", 5070, n)
        self.outgoing = False
        self.sent: list[bytes] = []

    @property
    def closed(self) -> bool:
        return False

    def send(self, data: Message | bytes) -> None:
        self.sent.append(data if isinstance(data, bytes) else data.serialize())

    def send_response(self, response: Response) -> None:
        self.sent.append(response.serialize())

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


async def _endpoint_flow(count: int) -> float:
    """CPU seconds per relayed registration through :class:`SipEndpoint` (WIC side: server
    transaction over a reliable connection, the handler coroutine; IMS side: the REGISTER in
    a client transaction over UDP, its 200), with in-memory connections: the SIP core plus
    the endpoint's event pump, futures and tasks, without the kernel."""
    done: list[int] = []
    udp = _MemoryConnection("UDP", 3)
    wss = _MemoryConnection("WSS", 2)

    async def on_request(incoming: IncomingRequest) -> None:
        request = incoming.request
        to = request.to
        out = Request("REGISTER", "sip:ims.test", [
            ("Max-Forwards", "70"), ("From", f"<{to.uri_text}>;tag=gw"), ("To", f"<{to.uri_text}>"),
            ("Call-ID", f"gw-{request.call_id}"), ("CSeq", "1 REGISTER"),
            ("Contact", "<sip:gw@127.0.0.1:5070;ob>;expires=3600"), ("Expires", "3600"),
            ("Supported", "outbound, path"), ("Path", "<sip:gw@127.0.0.1:5070;lr;ob>"),
        ])  # fmt: skip
        answer = ims.start_request(out, udp)
        ims.message_received(parse(ims_ok(udp.sent[-1])), udp)
        final = await answer
        incoming.respond(200, "OK", to_tag=final.to.tag, headers=[
            ("Contact", f"{request.contact[0]};expires=3600"), ("Expires", "3600"),
            ("P-Associated-URI", f"<{to.uri_text}>"), ("Require", "outbound"),
        ])  # fmt: skip
        done.append(1)

    wic = SipEndpoint(on_request, send_trying=False)
    ims = SipEndpoint(uas_core=False)
    incoming = [wic_register(i) for i in range(count)]
    cpu = 0.0
    for start in range(0, count, 500):
        t0 = time.process_time()
        for data in incoming[start : start + 500]:
            wic.message_received(parse(data), wss)
            await asyncio.sleep(0)  # the handler runs to its await
            await asyncio.sleep(0)  # and on, once the 200 has set its future
        cpu += time.process_time() - t0
        wss.sent.clear()
        udp.sent.clear()
    assert len(done) == count
    await wic.close()
    await ims.close()
    return cpu / count


def endpoint_flow(count: int) -> float:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_endpoint_flow(count))


def rate(make: object, serialize: bool, seconds: float) -> float:
    """Messages per CPU-second of this process (so other load on the machine does not
    count against it), best of five rounds."""
    assert callable(make)
    messages = [make(i) for i in range(20_000)]
    best = 0.0
    for _ in range(5):
        count = 0
        start = time.process_time()
        deadline = time.perf_counter() + seconds / 5
        while True:
            for data in messages[count % 20_000 : count % 20_000 + 1000]:
                msg = parse(data)
                if serialize:
                    msg.serialize()
            count += 1000
            if time.perf_counter() >= deadline:
                break
        best = max(best, count / max(time.process_time() - start, 1e-9))
    return best


def cold_parse(make: object, count: int = 200) -> tuple[float, float]:
    """Microseconds per parse (wall clock, median) in a loop and with the caches cold: 24 MiB
    written between two parses, as in a gateway where each message meets other work and
    other connections' state between its parses."""
    assert callable(make)
    messages = [make(i) for i in range(count)]
    junk = [bytearray(1 << 20) for _ in range(24)]
    hot: list[float] = []
    cold: list[float] = []
    for data in messages:
        t0 = time.perf_counter()
        parse(data)
        hot.append(time.perf_counter() - t0)
    for i, data in enumerate(messages):
        for block in junk:
            block[::64] = bytes([i & 0xFF]) * len(block[::64])
        t0 = time.perf_counter()
        parse(data)
        cold.append(time.perf_counter() - t0)
    return sorted(hot)[count // 2] * 1e6, sorted(cold)[count // 2] * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    print(f"INVITE size: {len(invite(0))} bytes, REGISTER size: {len(register(0))} bytes")
    flow = min(relay_flow(max(500, int(2500 * args.seconds))) for _ in range(3))
    print(f"relayed registration (SIP core): {flow * 1e6:.1f} us CPU")
    flow = min(endpoint_flow(max(500, int(1500 * args.seconds))) for _ in range(3))
    print(f"relayed registration (SipEndpoint, in-memory connections): {flow * 1e6:.1f} us CPU")
    hot, cold = cold_parse(register)
    print(f"parse REGISTER: {hot:.1f} us in a loop, {cold:.1f} us with the caches cold")
    results = {}
    for name, make in (("REGISTER", register), ("INVITE", invite)):
        for ser in (False, True):
            label = ("parse+serialize " if ser else "parse ") + name
            results[label] = rate(make, ser, args.seconds)
    for label in ("parse REGISTER", "parse+serialize REGISTER", "parse INVITE", "parse+serialize INVITE"):
        print(f"{label}: {results[label]:.0f} msg/s")


if __name__ == "__main__":
    main()
