"""Call set-up benchmark: ``webims bench call`` (also ``benchmarks/call_setup.py``).

Two processes on loopback, so that the gateway's own cost is what is measured:

- the gateway (WSS with a self-signed certificate, the session B2BUA, the embedded
  media IWF — ``--media external``, the default: every call gets an IWF session with
  its ports, ICE agent, DTLS and SRTP contexts — or ``--media ims``: SDP passed on);
- this process: WICs on a minimal RFC 6455 client (TLS, one WebSocket each) and a
  stub IMS on UDP that plays registrar (200 at once, Service-Route to itself) and
  callee (180 and 200 with an RTP/AVP answer at once, 200 to BYE).

Each call: the WIC sends INVITE (a browser offer whose ICE candidate is a silent UDP
socket here, so the IWF's ICE agent keeps checking, as with a real browser that has
not answered yet), the gateway forms the IMS INVITE, the stub answers, the gateway
ACKs and sends the WIC its 200, the WIC ACKs, holds ``--hold`` seconds, sends BYE.

Rates are offered open loop (``--rates``), ``--seconds`` each; the maximum rate is the
highest whose calls all set up (failures < 1 %, achieved >= 95 % of offered, set-up
p99 < 1 s); then one more run at half of it gives the latency figures. Reported:
set-ups per second, set-up time (WIC INVITE -> WIC 200) p50/p95/p99, the gateway's
added latency p50/p95/p99 — measured inside the gateway (message delivered to the
B2BUA -> the message it causes handed to the transport, per kind) and from outside
(one way, WIC -> stub for the INVITE and BYE and stub -> WIC for the 200: both ends
in this process, one clock; this includes both transports and this process's own
delays, so it bounds the gateway's share from above) — the gateway's CPU
milliseconds per call, and the time its cyclic garbage collector stopped the loop
(collections, total and longest pause, wall and CPU time). The last line is JSON.

The gateway runs with :class:`~webims.transport.loop.GcPolicy` as ``webims serve`` does
(``WEBIMS_BENCH_GC_POLICY``: its fields as JSON; ``WEBIMS_BENCH_GC_DEFAULT=1``: CPython's
collector settings). ``WEBIMS_BENCH_GARBAGE=1``: after each step the gateway counts the
cyclic garbage its calls left, by type (``gc.DEBUG_SAVEALL``; zero expected: a finished
call is freed by reference counting). ``WEBIMS_BENCH_PROFILE=FILE``: a cProfile of it.

    webims bench call --rates 100,200,300,400 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webims.native import compiled

from .bench import client_frame, cpu_seconds

__all__ = ["add_arguments", "main"]

REALM = "ims.test"
ORIGIN = "https://bench.example"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rates", default="50,100,200,300,400,500,600", help="offered calls/s, in turn")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each rate step")
    parser.add_argument("--hold", type=float, default=1.0, help="seconds between the WIC's ACK and BYE")
    parser.add_argument("--clients", type=int, default=50, help="WICs (calls are spread over them)")
    parser.add_argument("--media", choices=("external", "ims"), default="external")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
        t.bind(("127.0.0.1", 0))
        port = int(t.getsockname()[1])
        u.bind(("127.0.0.1", port))
        return port


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    data = sorted(values)

    def pct(p: float) -> float:
        return round(data[min(len(data) - 1, int(p / 100 * len(data)))] * 1000, 3)

    return {"p50": pct(50), "p95": pct(95), "p99": pct(99)}


OFFER = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "a=msid-semantic: WMS\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126\r\nc=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\na=candidate:1 1 udp 2122260223 127.0.0.1 {port} typ host generation 0\r\n"
    "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\na=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 C1:74:6F:4D:DB:1C:C0:0F:A8:CF:B9:30:D4:E1:A9:1E:3B:5C:1F:94:A6:6A:05:AB:08:79"
    ":7F:B8"
    ":BE:DA:17:4A\r\na=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:126 telephone-event/8000\r\n"
)
ANSWER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=ptime:20\r\na=sendrecv\r\n"
)


# --------------------------------------------------------------------------- measurements


@dataclass
class Call:
    n: int
    sent: float = 0.0  # WIC INVITE out
    ims_invite: float = 0.0  # stub got the INVITE
    ims_ok: float = 0.0  # stub sent the 200
    answered: float = 0.0  # WIC got the 200
    bye_sent: float = 0.0
    ims_bye: float = 0.0
    status: int = 0
    done: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Stats:
    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}  # by correlation id (Subject)
        self.by_ims_call_id: dict[bytes, Call] = {}


# --------------------------------------------------------------------------- the stub IMS


def _header(lines: list[bytes], name: bytes) -> bytes:
    for line in lines:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return b""


class StubIms(asyncio.DatagramProtocol):
    """Registrar and callee (module docstring)."""

    transport: asyncio.DatagramTransport

    def __init__(self, stats: Stats, port: int) -> None:
        self.stats = stats
        self.port = port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _reply(self, lines: list[bytes], status: bytes, addr: tuple[str, int], extra: bytes = b"",
               body: bytes = b"", tag: bool = True) -> None:  # fmt: skip
        keep = []
        for line in lines[1:]:
            key = line.split(b":", 1)[0].strip().lower()
            if key in (b"via", b"from", b"call-id", b"cseq", b"v", b"f", b"i"):
                keep.append(line)
            elif key in (b"to", b"t"):
                keep.append(line + b";tag=stub" if tag and b"tag=" not in line else line)
        head = b"SIP/2.0 " + status + b"\r\n" + b"\r\n".join(keep) + b"\r\n" + extra
        self.transport.sendto(head + b"Content-Length: %d\r\n\r\n" % len(body) + body, addr)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.perf_counter()
        head, _, _ = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        method = lines[0].split(b" ", 1)[0]
        contact = b"Contact: <sip:stub@127.0.0.1:%d>\r\n" % self.port
        if method == b"REGISTER":
            aor = _header(lines, b"to")
            extra = (
                b"Contact: " + _header(lines, b"contact") + b";expires=3600\r\n"
                b"Service-Route: <sip:orig@127.0.0.1:%d;lr>\r\nP-Associated-URI: " % self.port + aor + b"\r\n"
            )
            self._reply(lines, b"200 OK", addr, extra)  # fmt: skip
        elif method == b"INVITE":
            call = self.stats.calls.get(_header(lines, b"subject").decode())
            if call is not None:
                call.ims_invite = now
                self.stats.by_ims_call_id[_header(lines, b"call-id")] = call
            self._reply(lines, b"180 Ringing", addr, contact)
            self._reply(lines, b"200 OK", addr, contact + b"Content-Type: application/sdp\r\n", ANSWER)
            if call is not None:
                call.ims_ok = time.perf_counter()
        elif method == b"BYE":
            call = self.stats.by_ims_call_id.pop(_header(lines, b"call-id"), None)
            if call is not None:
                call.ims_bye = now
            self._reply(lines, b"200 OK", addr, tag=False)
        elif method not in (b"ACK", b"SIP/2.0"):
            self._reply(lines, b"200 OK", addr, tag=False)


# --------------------------------------------------------------------------- the WICs


class Wic:
    """A WIC on one WebSocket: registers, then makes calls (each its own Call-ID)."""

    def __init__(self, index: int, port: int, context: ssl.SSLContext, stats: Stats, sink: int) -> None:
        self.index = index
        self.port = port
        self.context = context
        self.stats = stats
        self.sink = sink
        self.user = f"w{index}"
        self.host = f"{secrets.token_hex(5)}.invalid"
        self.writer: asyncio.StreamWriter | None = None
        self.waiting: dict[bytes, asyncio.Future[tuple[float, bytes]]] = {}  # Call-ID+method -> final
        self.task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.context, server_hostname="localhost"
        )
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.writer.write(
            f"GET /sip HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n"
            f"Origin: {ORIGIN}\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head[:80].decode(errors="replace"))
        self.task = asyncio.ensure_future(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                b0, b1 = await reader.readexactly(2)
                length = b1 & 0x7F
                if length == 126:
                    length = int.from_bytes(await reader.readexactly(2), "big")
                elif length == 127:
                    length = int.from_bytes(await reader.readexactly(8), "big")
                payload = await reader.readexactly(length)
                now = time.perf_counter()
                if b0 & 0x0F == 0x8:
                    break
                if b0 & 0x0F == 0x9:
                    self._send(payload, 0xA)
                    continue
                head = payload.partition(b"\r\n\r\n")[0]
                lines = head.split(b"\r\n")
                if not payload.startswith(b"SIP/2.0 "):
                    if not payload.startswith(b"ACK "):  # a request from the gateway: 200
                        self._send(b"SIP/2.0 200 OK\r\n" + b"\r\n".join(
                            ln for ln in lines[1:] if ln.split(b":", 1)[0].lower() in (b"via", b"from", b"to",
                                                                                     b"call-id", b"cseq")
                        ) + b"\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
                    continue
                if payload[8:9] == b"1":
                    continue
                key = _header(lines, b"call-id") + b" " + _header(lines, b"cseq").split(b" ")[-1]
                waiter = self.waiting.pop(key, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result((now, payload))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            for waiter in self.waiting.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError("closed"))

    def _send(self, data: bytes, opcode: int = 0x1) -> None:
        assert self.writer is not None
        self.writer.write(client_frame(data, opcode))

    def _request(self, method: str, uri: str, call_id: str, cseq: int, from_tag: str, to: str,
                 extra: str = "", body: bytes = b"") -> asyncio.Future[tuple[float, bytes]]:  # fmt: skip
        message = (
            f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/WSS {self.host};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{self.user}@{REALM}>;tag={from_tag}\r\nTo: {to}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        future: asyncio.Future[tuple[float, bytes]] = asyncio.get_running_loop().create_future()
        if method != "ACK":
            self.waiting[f"{call_id} {method}".encode()] = future
        self._send(message)
        return future

    async def register(self) -> int:
        instance = f"urn:uuid:{secrets.token_hex(4)}"
        contact = f'<sip:{self.user}@{self.host};transport=ws>;reg-id=1;+sip.instance="<{instance}>"'
        _, answer = await self._request(
            "REGISTER", f"sip:{REALM}", secrets.token_hex(8), 1, secrets.token_hex(4),
            f"<sip:{self.user}@{REALM}>",
            f"Contact: {contact}\r\nExpires: 3600\r\nSupported: path, outbound\r\n",
        )  # fmt: skip
        return int(answer[8:11])

    async def call(self, call: Call, hold: float) -> None:
        call_id, tag = secrets.token_hex(10), secrets.token_hex(4)
        uri = f"sip:callee{call.n}@{REALM}"
        offer = OFFER.format(port=self.sink, ufrag=secrets.token_hex(2), pwd=secrets.token_hex(12)).encode()
        extra = (f"Contact: <sip:{self.user}@{self.host};transport=ws;ob>\r\nSubject: {call.n}\r\n"
                 "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,INFO,OPTIONS\r\n"
                 "Content-Type: application/sdp\r\n")  # fmt: skip
        call.sent = time.perf_counter()
        try:
            call.answered, answer = await asyncio.wait_for(
                self._request("INVITE", uri, call_id, 1, tag, f"<{uri}>", extra, offer), 10
            )
        except (TimeoutError, ConnectionError):
            call.status = 408
            call.done.set_result(408)
            return
        call.status = int(answer[8:11])
        call.done.set_result(call.status)
        if call.status != 200:
            return
        lines = answer.partition(b"\r\n\r\n")[0].split(b"\r\n")
        to = _header(lines, b"to").decode()
        target = _header(lines, b"contact").decode().strip("<>").split(">")[0]
        self._request("ACK", target, call_id, 1, tag, to)
        await asyncio.sleep(hold)
        call.bye_sent = time.perf_counter()
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(self._request("BYE", target, call_id, 2, tag, to), 10)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.task is not None:
            self.task.cancel()


# --------------------------------------------------------------------------- the gateway child


class GcLog:
    """Pauses of the cyclic garbage collector (``gc.callbacks``), per generation."""

    def __init__(self) -> None:
        self.started = self.started_cpu = 0.0
        self.clear()

    def clear(self) -> None:
        self.count = [0, 0, 0]
        self.total = self.total_cpu = 0.0
        self.longest = self.longest_cpu = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started, self.started_cpu = time.perf_counter(), time.thread_time()
            return
        pause, cpu = time.perf_counter() - self.started, time.thread_time() - self.started_cpu
        self.count[info["generation"]] += 1
        self.total += pause
        self.total_cpu += cpu
        self.longest = max(self.longest, pause)
        self.longest_cpu = max(self.longest_cpu, cpu)

    def report(self) -> dict[str, Any]:
        # wall time (what the loop lost) and CPU time (what the collector did: less load dependent)
        return {"collections": list(self.count), "total_ms": round(self.total * 1000, 3),
                "longest_ms": round(self.longest * 1000, 3), "cpu_total_ms": round(self.total_cpu * 1000, 3),
                "cpu_longest_ms": round(self.longest_cpu * 1000, 3), "frozen": gc.get_freeze_count(),
                "young": list(gc.get_count())}  # fmt: skip


def garbage_census(limit: int = 40) -> dict[str, Any]:
    """With ``gc.DEBUG_SAVEALL`` set: collect, count what was cyclic garbage by type, forget it.
    (A call that leaves none frees all its objects by reference counting alone.) Frozen objects
    (GcPolicy) are included: unfrozen, collected, frozen again."""
    gc.unfreeze()
    gc.collect()
    counts: dict[str, int] = {}
    for obj in gc.garbage:
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        counts[name] = counts.get(name, 0) + 1
    total = len(gc.garbage)
    gc.garbage.clear()
    gc.set_debug(0)  # free what was found (saved, its cycles would be found again next time)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.freeze()
    top = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:limit])
    return {"objects": total, "by_type": top}


def _child_gateway(workdir: Path, wss_port: int, ims_port: int, media: str) -> None:
    from webims.transport import ConnectionLimits, ensure_self_signed, server_context
    from webims.transport.loop import GcPolicy
    from webims.transport.loop import run as run_loop

    from .core import Gateway
    from .run import running_gateway
    from .session_settings import SessionConfig
    from .sessions import LatencyLog, SessionManager
    from .settings import GatewayConfig
    from .state import MemoryRegistrationStore

    census = bool(os.environ.get("WEBIMS_BENCH_GARBAGE"))  # cyclic garbage by type, per step

    async def main() -> None:
        config = GatewayConfig(
            icscf=f"sip:127.0.0.1:{ims_port}", mw_port=0, subscribe_reg_event=False, token_auth="off",
            register_rate=1e6, register_burst=1_000_000, source_register_rate=1e6,
            source_register_burst=1_000_000, request_rate=1e6, request_burst=1_000_000, grace_period=600.0,
        )  # fmt: skip
        gateway = Gateway(config, store=MemoryRegistrationStore(),
                          connection_limits=ConnectionLimits(max_connections=10_000,
                                                             idle_timeout=None))  # fmt: skip
        latency = LatencyLog()
        collector = GcLog()
        gc.callbacks.append(collector)
        if census:
            gc.set_debug(gc.DEBUG_SAVEALL)
        SessionManager(gateway, SessionConfig(media=media),  # type: ignore[arg-type]
                       latency=latency)  # fmt: skip
        cert, key = ensure_self_signed(workdir / "tls")
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)

        def report() -> None:
            out = {kind: {"n": len(v), **percentiles(v)} for kind, v in latency.samples.items()}
            out["all"] = {"n": len(latency.all()), **percentiles(latency.all())}
            result: dict[str, Any] = {"latency": out, "gc": collector.report()}
            if census:
                result["garbage"] = garbage_census()
            print(json.dumps(result), flush=True)
            latency.clear()
            collector.clear()

        loop.add_signal_handler(signal.SIGUSR1, report)
        async with running_gateway(
            gateway, port=wss_port, ssl_context=server_context(cert, key), origins=[ORIGIN]
        ):
            print("READY", flush=True)
            await stop.wait()

    # the collector settings of a long-running server (as ``webims serve`` runs): GcPolicy
    # (WEBIMS_BENCH_GC_DEFAULT: CPython's settings; WEBIMS_BENCH_GC_POLICY: GcPolicy fields as JSON)
    policy = (
        None
        if os.environ.get("WEBIMS_BENCH_GC_DEFAULT")
        else GcPolicy(**json.loads(os.environ.get("WEBIMS_BENCH_GC_POLICY") or "{}"))
    )
    profile = os.environ.get("WEBIMS_BENCH_PROFILE")  # a cProfile of the gateway, CPU time
    if profile:
        import cProfile

        with cProfile.Profile(time.process_time) as prof:
            run_loop(main(), gc_policy=policy)
        prof.dump_stats(profile)
    else:
        run_loop(main(), gc_policy=policy)


# --------------------------------------------------------------------------- the run


async def _step(wics: list[Wic], stats: Stats, rate: float, seconds: float, hold: float,
                gateway: subprocess.Popen[bytes], first: int) -> dict[str, Any]:  # fmt: skip
    loop = asyncio.get_running_loop()
    cpu0 = cpu_seconds(gateway.pid)
    own0 = time.process_time()
    load0 = os.getloadavg()[0]
    start = loop.time()
    total = int(rate * seconds)
    calls: list[Call] = []
    tasks = []
    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        call = Call(first + i)
        stats.calls[str(call.n)] = call
        calls.append(call)
        tasks.append(asyncio.ensure_future(wics[i % len(wics)].call(call, hold)))
    await asyncio.gather(*(c.done for c in calls))
    elapsed = max(loop.time() - start, 1e-9)
    await asyncio.gather(*tasks)
    cpu = cpu_seconds(gateway.pid) - cpu0
    own = time.process_time() - own0
    assert gateway.stdout is not None
    gateway.send_signal(signal.SIGUSR1)
    report = json.loads(await loop.run_in_executor(None, gateway.stdout.readline))
    inside, collector = report["latency"], report["gc"]
    garbage = report.get("garbage")
    ok = [c for c in calls if c.status == 200]
    setup = [c.answered - c.sent for c in ok]
    return {
        "offered_rate": rate,
        "calls": total,
        "answered": len(ok),
        "failures": total - len(ok),
        "setups_per_s": round(len(ok) / elapsed, 1),
        "setup_ms": percentiles(setup),
        "gateway_latency_ms": inside.get("all", {}),
        "gateway_latency_by_kind_ms": {k: v for k, v in inside.items() if k != "all"},
        "outside_one_way_ms": {
            "INVITE": percentiles([c.ims_invite - c.sent for c in ok if c.ims_invite]),
            "200": percentiles([c.answered - c.ims_ok for c in ok if c.ims_ok]),
            "BYE": percentiles([c.ims_bye - c.bye_sent for c in ok if c.ims_bye and c.bye_sent]),
        },
        "gateway_cpu_ms_per_call": round(cpu * 1000 / max(1, len(ok)), 3),
        "gateway_gc": {**collector, "ms_per_call": round(collector["total_ms"] / max(1, len(ok)), 3)},
        **(
            {"gateway_garbage": {**garbage, "objects_per_call": round(garbage["objects"] / max(1, total), 1)}}
            if garbage is not None
            else {}
        ),
        "generator_cpu_ms_per_call": round(own * 1000 / max(1, len(ok)), 3),
        "load_average_1min": round(max(load0, os.getloadavg()[0]), 2),
    }


def _good(step: dict[str, Any]) -> bool:
    return bool(
        step["failures"] <= 0.01 * step["calls"]
        and step["setups_per_s"] >= 0.95 * step["offered_rate"]
        and step["setup_ms"]["p99"] < 1000
    )


async def _run(options: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    wss_port, ims_port = _free_port(), _free_port()
    log = (workdir / "gateway.log").open("wb")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "webims.gateway.bench_call", "gateway", str(workdir), str(wss_port),
         str(ims_port),
         options.media], stdout=subprocess.PIPE, stderr=log,
    )  # fmt: skip
    assert gateway.stdout is not None
    loop = asyncio.get_running_loop()
    stats = Stats()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the browsers' ICE candidate: it never answers
    sink.bind(("127.0.0.1", 0))
    wics: list[Wic] = []
    try:
        line = await loop.run_in_executor(None, gateway.stdout.readline)
        if b"READY" not in line:
            raise RuntimeError(f"the gateway did not start; see {workdir / 'gateway.log'}")
        await loop.create_datagram_endpoint(
            lambda: StubIms(stats, ims_port), local_addr=("127.0.0.1", ims_port)
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        for i in range(options.clients):
            wic = Wic(i, wss_port, context, stats, sink.getsockname()[1])
            await wic.connect()
            status = await wic.register()
            if status != 200:
                raise RuntimeError(f"registration failed: {status}")
            wics.append(wic)
        print(f"{len(wics)} WICs registered; media {options.media}; hold {options.hold:g} s", flush=True)
        steps: list[dict[str, Any]] = []
        n = 0
        best: dict[str, Any] | None = None
        for rate in (float(r) for r in options.rates.split(",")):
            step = await _step(wics, stats, rate, options.seconds, options.hold, gateway, n)
            n += step["calls"]
            steps.append(step)
            _print_step(step)
            if not _good(step):
                break
            best = step
            await asyncio.sleep(options.hold + 1)
        half = None
        if best is not None:
            await asyncio.sleep(options.hold + 1)
            half = await _step(
                wics, stats, best["setups_per_s"] / 2, options.seconds, options.hold, gateway, n
            )
            print("at half the maximum rate:")
            _print_step(half)
        return {
            "benchmark": "call", "media": options.media, "hold_s": options.hold, "clients": options.clients,
            "max_setups_per_s": best["setups_per_s"] if best else 0.0,
            "half_rate": half["offered_rate"] if half else None,
            "gateway_latency_ms_at_half_rate": half["gateway_latency_ms"] if half else None,
            "outside_one_way_ms_at_half_rate": half["outside_one_way_ms"] if half else None,
            "setup_ms_at_half_rate": half["setup_ms"] if half else None,
            "gateway_cpu_ms_per_call": half["gateway_cpu_ms_per_call"] if half else None,
            "gateway_gc_at_half_rate": half["gateway_gc"] if half else None,
            "steps": steps,
        }  # fmt: skip
    finally:
        for wic in wics:
            wic.close()
        sink.close()
        gateway.send_signal(signal.SIGTERM)
        try:
            gateway.wait(15)
        except subprocess.TimeoutExpired:
            gateway.kill()


def _print_step(step: dict[str, Any]) -> None:
    inside, setup = step["gateway_latency_ms"], step["setup_ms"]
    out = step["outside_one_way_ms"]
    print(
        f"offered {step['offered_rate']:7.1f}/s: {step['setups_per_s']:7.1f} set-ups/s, "
        f"{step['failures']} failed of {step['calls']}; set-up p50/p95/p99 "
        f"{setup['p50']}/{setup['p95']}/{setup['p99']} ms; gateway latency inside p50/p95/p99 "
        f"{inside.get('p50')}/{inside.get('p95')}/{inside.get('p99')} ms; outside one-way INVITE p99 "
        f"{out['INVITE']['p99']} ms, 200 p99 {out['200']['p99']} ms; CPU ms/call gateway "
        f"{step['gateway_cpu_ms_per_call']} (GC {step['gateway_gc']['ms_per_call']}, longest pause "
        f"{step['gateway_gc']['longest_ms']} ms), load generator {step['generator_cpu_ms_per_call']}; "
        f"load average {step['load_average_1min']}",
        flush=True,
    )


def main(options: argparse.Namespace) -> int:
    from webims.transport.loop import run as run_loop

    with tempfile.TemporaryDirectory(prefix="webims-bench-call-") as tmp:
        result = run_loop(_run(options, Path(tmp)))
    result["compiled"] = compiled()  # webims.native: the mypyc build, or pure Python
    print(json.dumps(result))
    return 0


if __name__ == "__main__":  # the gateway child: python -m webims.gateway.bench_call gateway DIR WSS IMS MEDIA
    if len(sys.argv) == 6 and sys.argv[1] == "gateway":
        _child_gateway(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        parser = argparse.ArgumentParser(prog="call_setup")
        add_arguments(parser)
        sys.exit(main(parser.parse_args()))
