"""N concurrent calls through the embedded media IWF: DTLS-SRTP (WebRTC) <-> RTP/AVP (IMS), on loopback.

Three processes (uvloop each), talking JSON lines over socketpairs:

* the IWF (``--backend embedded``), driven with the real API
  (``offer_from_webrtc``, ``answer_from_ims``, ``confirm``, ``release``); its
  CPU time is what "IWF CPU" reports;
* this process: one synthetic WebRTC peer per call (real ICE with aioice and a
  real DTLS handshake, then SRTP);
* a child with one plain RTP peer per call (the IMS side).

After set-up the peers' hot path only sends (every 20 ms, never in bursts:
a late peer skips ahead) and counts (RFC 3550 A.1 sequence, A.8 jitter at
the receiver; SRTP headers are in clear, so nothing is decrypted).  Loss is
counted as RFC 3550 A.3 does: sequence gaps in what arrives from the IWF.

Runs: ``relay`` — PCMU both sides, relayed without decoding, at N = 100, 300,
1000; a run that cannot keep up (IWF above ``--max-cpu`` of one core, loss
above 0.1 %, or peers that could not send 90 % of the packets) is repeated at
70 % of N until it can, and says so.  ``transcode`` — Opus (WebRTC) <-> PCMU
(IMS), decoded and encoded both ways, reported as calls per core.  Printed:
IWF CPU per call (% of one core), loss, jitter; the last line is JSON.

    .venv/bin/python benchmarks/media_relay.py [--relay 100,300,1000] [--transcode 40] [--duration 10]
    .venv/bin/python benchmarks/media_relay.py --backend rtpengine ...   # benchmarks/media_relay_rtpengine.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webims.media import EmbeddedConfig, EmbeddedMediaIWF, MediaIWF, MediaSession
from webims.media.dtls import DtlsCertificate
from webims.media.ports import PortAllocator
from webims.media.transcode import AudioEncoder
from webims.sdp import OPUS, PCMU, TELEPHONE_EVENT_8000, TELEPHONE_EVENT_48000, Codec, parse
from webims.testing.media_peers import RtpPeer, WebRtcPeer, sine_pcm

PTIME = 0.020
SETUP_CONCURRENCY = 20

# --------------------------------------------------------------------------------------------
# The IWF side (child process).  A backend makes the MediaIWF and says how much CPU the media
# plane used.  ``--backend rtpengine`` is benchmarks/media_relay_rtpengine.py (see main()).
# --------------------------------------------------------------------------------------------


class EmbeddedBackend:
    name = "embedded"

    def create(self) -> MediaIWF:
        cfg = EmbeddedConfig(
            port_min=30000, port_max=39999, media_timeout=3600, ice_timeout=60, dtls_timeout=60
        )
        return EmbeddedMediaIWF(cfg)

    def cpu_seconds(self) -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime


BACKENDS: dict[str, Callable[[], EmbeddedBackend]] = {"embedded": EmbeddedBackend}


async def _iwf_server(sock: socket.socket, backend_name: str) -> None:
    backend = BACKENDS[backend_name]()
    iwf = backend.create()
    await iwf.start()
    sessions: dict[str, MediaSession] = {}
    events: list[str] = []
    reader, writer = await asyncio.open_connection(sock=sock)
    lock = asyncio.Lock()

    async def reply(rid: int, body: dict[str, Any]) -> None:
        async with lock:
            writer.write(json.dumps({"id": rid, **body}).encode() + b"\n")
            await writer.drain()

    async def handle(msg: dict[str, Any]) -> None:
        rid, op = msg["id"], msg["op"]
        try:
            if op == "offer":
                session = await iwf.create_session(msg["call"], lambda e: events.append(e.kind.value))
                sessions[msg["call"]] = session
                out = await session.offer_from_webrtc(parse(msg["sdp"].encode()))
                await reply(rid, {"sdp": out.to_text()})
            elif op == "answer":
                session = sessions[msg["call"]]
                out = await session.answer_from_ims(parse(msg["sdp"].encode()))
                await session.confirm()
                await reply(rid, {"sdp": out.to_text()})
            elif op == "cpu":
                ru = resource.getrusage(resource.RUSAGE_SELF)
                await reply(rid, {"cpu": backend.cpu_seconds(), "wall": time.monotonic(), "sys": ru.ru_stime})
            elif op == "stats":
                legs = [s for session in sessions.values() for s in session.stats()]
                await reply(
                    rid,
                    {
                        "legs": len(legs),
                        "lost": sum(s.packets_lost for s in legs),
                        "received": sum(s.packets_received for s in legs),
                    },
                )
            elif op == "release":
                for session in sessions.values():
                    await session.release("benchmark over")
                sessions.clear()
                failures = [e for e in events if e != "dtmf"]
                events.clear()
                await reply(rid, {"left": len(iwf.sessions()), "events": failures})
        except Exception as exc:  # reported to the driver, which stops
            await reply(rid, {"error": f"{type(exc).__name__}: {exc}"})

    tasks: set[asyncio.Task[None]] = set()
    while line := await reader.readline():
        msg = json.loads(line)
        if msg["op"] == "quit":
            break
        task = asyncio.create_task(handle(msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await iwf.close()
    writer.close()


def _quiet() -> None:
    import logging

    logging.getLogger("asyncio").setLevel(logging.ERROR)  # no warning per send on a dead transport


def iwf_process(sock: socket.socket, backend_name: str) -> None:
    _quiet()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass
    profile = os.environ.get("WEBIMS_BENCH_PROFILE")  # a path: cProfile the IWF process into it
    if profile:
        import cProfile

        cProfile.runctx("asyncio.run(_iwf_server(sock, backend_name))", globals(), locals(), profile)
    else:
        asyncio.run(_iwf_server(sock, backend_name))


class Client:
    """The driver's end of the socketpair: one request, one JSON answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.next_id = 0
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while line := await self.reader.readline():
            msg = json.loads(line)
            fut = self.waiting.pop(msg["id"])
            fut.set_result(msg)

    async def call(self, op: str, **kw: Any) -> dict[str, Any]:
        self.next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = fut
        self.writer.write(json.dumps({"id": self.next_id, "op": op, **kw}).encode() + b"\n")
        msg = await fut
        if "error" in msg:
            raise RuntimeError(f"{op}: {msg['error']}")
        return msg


# --------------------------------------------------------------------------------------------
# The peers: WebRTC peers in this process, plain RTP peers in a second child process.
# --------------------------------------------------------------------------------------------


@dataclass
class Stream:
    """One direction of one call, counted at the receiver (RFC 3550 A.8 jitter, A.1 sequence)."""

    clock: int
    sent: int = 0
    received: int = 0
    jitter: float = 0.0
    transit: float | None = None
    first_seq: int | None = None
    max_seq: int = 0  # extended, without A.1's probation

    @property
    def expected(self) -> int:
        return 0 if self.first_seq is None else self.max_seq - self.first_seq + 1


def _counter(stream: Stream) -> Callable[[bytes], None]:
    unpack = struct.Struct("!HI").unpack_from
    clock = stream.clock
    monotonic = time.monotonic

    def count(data: bytes) -> None:
        if len(data) < 12 or 191 < data[1] < 224:
            return  # RTCP
        stream.received += 1
        seq, ts = unpack(data, 2)
        if stream.first_seq is None:
            stream.first_seq = stream.max_seq = seq
        else:
            ext = stream.max_seq + ((seq - stream.max_seq) & 0xFFFF)
            if ext - stream.max_seq < 3000:
                stream.max_seq = ext
        transit = monotonic() * clock - ts
        if stream.transit is not None:
            d = abs(transit - stream.transit)
            if d < 1 << 30:
                stream.jitter += (d - stream.jitter) / 16.0
        stream.transit = transit

    return count


def _fast_path(protocol: Any, count: Callable[[bytes], None], stun: bool) -> None:
    """Replace a protocol's datagram_received: RTP is only counted; STUN still reaches aioice."""
    slow = protocol.datagram_received

    def received(data: bytes, addr: Any) -> None:
        if data and data[0] > 127:
            count(data)
        elif stun:
            slow(data, addr)

    protocol.datagram_received = received


def frames_for(codec: Codec) -> list[tuple[bytes, int]]:
    rate = 48000 if codec.name == "opus" else 8000
    enc = AudioEncoder(codec, rate, 20)
    return [(f, enc.rtp_step) for f in enc.encode(sine_pcm(rate, 1.0, 440.0))]


@dataclass
class Sender:
    """One peer's outgoing stream: ``protect`` is SRTP (WebRTC side) or None (plain RTP)."""

    protect: Callable[[bytes], bytes] | None
    transport: Any
    addr: Any
    ssrc: int
    stream: Stream  # the direction it sends (its ``sent`` is counted here)
    n: int = 0


class Traffic:
    """Every 20 ms each sender sends one packet, spread over 4 slots of 5 ms; never in bursts."""

    SLOTS = 4

    def __init__(self, senders: list[Sender], payload_type: int, frames: list[tuple[bytes, int]]) -> None:
        self.slots: list[list[Sender]] = [senders[i :: self.SLOTS] for i in range(self.SLOTS)]
        self.payload_type = payload_type
        self.frames = frames
        self.running = False
        self.late = 0.0
        self.skipped = 0
        self.dead: set[int] = set()
        self.start_time = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._header = struct.Struct("!BBHII")

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.running = True
        self.start_time = loop.time()
        self._schedule(loop, 0)

    def _schedule(self, loop: asyncio.AbstractEventLoop, tick: int) -> None:
        self._handle = loop.call_at(self.start_time + tick * PTIME / self.SLOTS, self._tick, loop, tick)

    def _tick(self, loop: asyncio.AbstractEventLoop, tick: int) -> None:
        if not self.running:
            return
        slot_time = PTIME / self.SLOTS
        lag = loop.time() - (self.start_time + tick * slot_time)
        self.late = max(self.late, lag)
        if lag > PTIME:  # behind by a whole packet time: skip ahead rather than send a burst
            self.skipped += int(lag / slot_time)
            tick += int(lag / slot_time)
        pack, frames, pt = self._header.pack, self.frames, self.payload_type
        count = len(frames)
        for snd in self.slots[tick % self.SLOTS]:
            if snd.transport.is_closing():  # ICE consent expired (RFC 7675): that call is gone
                self.dead.add(id(snd))
                continue
            n = snd.n
            payload, step = frames[n % count]
            packet = pack(0x80, pt, n & 0xFFFF, (n * step) & 0xFFFFFFFF, snd.ssrc) + payload
            snd.transport.sendto(packet if snd.protect is None else snd.protect(packet), snd.addr)
            snd.stream.sent += 1
            snd.n = n + 1
        self._schedule(loop, tick + 1)

    def stop(self) -> None:
        self.running = False
        if self._handle is not None:
            self._handle.cancel()


def cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _jitter_ms(stream: Stream) -> float:
    return stream.jitter / stream.clock * 1000


async def _rtp_server(sock: socket.socket) -> None:
    """The plain RTP peers (IMS side) of every call, in their own process."""
    ports = PortAllocator(25000, 29999)
    peers: list[RtpPeer] = []
    streams: list[tuple[Stream, Stream]] = []  # (received from the IWF, sent to it)
    traffic: Traffic | None = None
    sent_mark = 0
    reader, writer = await asyncio.open_connection(sock=sock)

    def reply(rid: int, body: dict[str, Any]) -> None:
        writer.write(json.dumps({"id": rid, **body}).encode() + b"\n")

    while line := await reader.readline():
        msg = json.loads(line)
        rid, op = msg["id"], msg["op"]
        if op == "answer":
            peer = RtpPeer(ports, keep=False)
            await peer.open()
            answer = peer.answer(parse(msg["sdp"].encode()), [PCMU, TELEPHONE_EVENT_8000])
            rx, tx = Stream(8000), Stream(8000)
            assert peer.leg._rtp is not None
            _fast_path(peer.leg._rtp, _counter(rx), stun=False)
            peers.append(peer)
            streams.append((rx, tx))
            reply(rid, {"sdp": answer.to_text()})
        elif op == "start":
            senders = []
            for peer, (_, tx) in zip(peers, streams, strict=True):
                assert peer.leg._rtp is not None
                senders.append(Sender(None, peer.leg._rtp.transport, peer.leg.remote, peer.leg.out.ssrc, tx))
            traffic = Traffic(senders, PCMU.payload_type, frames_for(PCMU))
            traffic.start()
            reply(rid, {})
        elif op == "mark":  # the start of the measured window
            sent_mark = sum(tx.sent for _, tx in streams)
            if traffic is not None:
                traffic.late = 0.0
            reply(rid, {"cpu": cpu_self(), "wall": time.monotonic()})
        elif op == "window":
            sent = sum(tx.sent for _, tx in streams) - sent_mark
            reply(rid, {"cpu": cpu_self(), "wall": time.monotonic(), "sent": sent})
        elif op == "stop":
            if traffic is not None:
                traffic.stop()
            reply(rid, {})
        elif op == "counters":
            reply(
                rid,
                {
                    "received": sum(rx.received for rx, _ in streams),
                    "expected": sum(rx.expected for rx, _ in streams),
                    "sent": sum(tx.sent for _, tx in streams),
                    "jitters": [_jitter_ms(rx) for rx, _ in streams],
                    "late": traffic.late if traffic is not None else 0.0,
                },
            )
        elif op == "release":
            for peer in peers:
                peer.close()
            peers.clear()
            streams.clear()
            ports = PortAllocator(25000, 29999)
            reply(rid, {})
        elif op == "quit":
            break
    writer.close()


def rtp_process(sock: socket.socket) -> None:
    _quiet()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(_rtp_server(sock))


async def run(
    n: int, duration: float, transcode: bool, iwf: Client, rtp: Client, run_id: str
) -> dict[str, Any]:
    ports = PortAllocator(20000, 24999)
    cert = DtlsCertificate.generate()
    sem = asyncio.Semaphore(SETUP_CONCURRENCY)
    t0 = time.monotonic()
    browser = [OPUS, TELEPHONE_EVENT_48000] if transcode else [PCMU, TELEPHONE_EVENT_8000]

    async def one(i: int) -> tuple[WebRtcPeer, Stream, Stream]:
        async with sem:
            web = WebRtcPeer(ports, certificate=cert, keep=False)
            offer = await web.offer(browser)
            call_id = f"{run_id}-{i}"
            ims_offer = (await iwf.call("offer", call=call_id, sdp=offer.to_text()))["sdp"]
            ims_answer = (await rtp.call("answer", sdp=ims_offer))["sdp"]
            answer = parse((await iwf.call("answer", call=call_id, sdp=ims_answer))["sdp"].encode())
            await web.accept(answer)
            if not await web.connected(60):
                raise RuntimeError(f"call {i}: {web.leg.failed}")
            while web.leg.ice.selected is None:  # DTLS may finish before our ICE check does
                await asyncio.sleep(0.01)
            rx, tx = Stream(web.codec.clock_rate), Stream(web.codec.clock_rate)
            for protocol in web.leg.ice._protocols:  # after set-up: count RTP, STUN still to aioice
                _fast_path(protocol, _counter(rx), stun=True)
            return web, rx, tx

    calls = await asyncio.gather(*(one(i) for i in range(n)))
    setup_s = time.monotonic() - t0
    senders = []
    for web, _, tx in calls:
        pair = web.leg.ice.selected
        assert web.leg._tx is not None and pair is not None
        transport, addr = web.leg._send_to or (pair.protocol.transport, pair.remote_addr)
        senders.append(Sender(web.leg._tx.protect, transport, addr, web.leg.out.ssrc, tx))
    web_codec = OPUS if transcode else PCMU
    traffic = Traffic(senders, web_codec.payload_type, frames_for(web_codec))
    await rtp.call("start")
    traffic.start()
    await asyncio.sleep(2.0)  # warm-up: latching done, jitter settled
    traffic.late = 0.0
    mark_web = sum(tx.sent for _, _, tx in calls)
    mark_rtp = await rtp.call("mark")
    before = await iwf.call("cpu")
    peer_before, wall_before = cpu_self(), time.monotonic()
    await asyncio.sleep(duration)
    after = await iwf.call("cpu")
    peer_cpu, web_wall = cpu_self() - peer_before, time.monotonic() - wall_before
    web_sent = sum(tx.sent for _, _, tx in calls) - mark_web
    window_rtp = await rtp.call("window")
    rtp_wall = window_rtp["wall"] - mark_rtp["wall"]
    # Packet rates each side achieved over its own measured window (a stalled loop shows here).
    offered = (web_sent / web_wall + window_rtp["sent"] / rtp_wall) / (n * 2 / PTIME)
    traffic.stop()
    await rtp.call("stop")
    await asyncio.sleep(0.5)  # drain
    ims = await rtp.call("counters")
    wall = after["wall"] - before["wall"]
    iwf_cpu = (after["cpu"] - before["cpu"]) / wall
    iwf_sys = (after["sys"] - before["sys"]) / wall
    sent = sum(tx.sent for _, _, tx in calls) + ims["sent"]
    received = sum(rx.received for _, rx, _ in calls) + ims["received"]
    # Loss as RFC 3550 A.3 counts it at the receivers: sequence gaps in what the IWF sent.
    expected = sum(rx.expected for _, rx, _ in calls) + ims["expected"]
    jitters = [_jitter_ms(rx) for _, rx, _ in calls] + ims["jitters"]
    released = await iwf.call("release")
    await rtp.call("release")
    for web, _, _ in calls:
        await web.close()
    return {
        "calls": n,
        "setup_s": round(setup_s, 1),
        "iwf_cpu_pct": round(iwf_cpu * 100, 1),
        "cpu_per_call_pct": round(iwf_cpu * 100 / n, 3),
        "iwf_kernel_pct": round(iwf_sys * 100, 1),
        "peer_cpu_pct": round(
            (peer_cpu / web_wall + (window_rtp["cpu"] - mark_rtp["cpu"]) / rtp_wall) * 100, 1
        ),
        "window_s": round(web_wall, 1),
        "duration_s": duration,
        "sent": sent,
        "received": received,
        "loss_pct": round(max(0, expected - received) * 100 / expected, 4) if expected else 100.0,
        "jitter_ms_mean": round(sum(jitters) / len(jitters), 2),
        "jitter_ms_max": round(max(jitters), 2),
        "peer_late_ms": round(max(traffic.late, ims["late"]) * 1000, 1),
        "offered_pct": round(offered * 100, 1),
        # The calls the IWF really carried: N scaled by the packet rate the peers achieved.
        "effective_calls": round(n * min(1.0, offered)),
        "iwf_events": len(released["events"]),  # ICE/DTLS failures, media timeouts
        "dead_calls": len(traffic.dead),
    }


def keeps_up(r: dict[str, Any], max_cpu: float) -> tuple[bool, str]:
    if r["iwf_events"]:
        return (
            False,
            f"{r['iwf_events']} IWF failure events (ICE/DTLS/timeouts), {r['dead_calls']} calls dead",
        )
    if r["dead_calls"]:
        return False, f"{r['dead_calls']} WebRTC peers fell behind and lost ICE consent: peer-limited"
    if r["loss_pct"] >= 0.1:
        return False, f"loss {r['loss_pct']}% >= 0.1%"
    if r["iwf_cpu_pct"] > max_cpu:
        return False, f"IWF at {r['iwf_cpu_pct']}% of one core (> {max_cpu}%)"
    if r["window_s"] > 1.5 * r["duration_s"]:
        return (
            False,
            f"the driver's loop stalled ({r['window_s']} s for a {r['duration_s']} s window): peer-limited",
        )
    if r["offered_pct"] < 90:
        return False, f"the peers sent only {r['offered_pct']}% of the nominal packet rate: peer-limited"
    return True, ""


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    parent, child = socket.socketpair()
    proc: Any = None
    if args.same_process:  # diagnostic: IWF and peers share one process (CPU figures are their sum)
        server = asyncio.create_task(_iwf_server(child, args.backend))
    else:
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=iwf_process, args=(child, args.backend), daemon=True)
        proc.start()
        child.close()
    reader, writer = await asyncio.open_connection(sock=parent)
    iwf = Client(reader, writer)
    rtp_parent, rtp_child = socket.socketpair()
    rtp_proc = multiprocessing.get_context("spawn").Process(
        target=rtp_process, args=(rtp_child,), daemon=True
    )
    rtp_proc.start()
    rtp_child.close()
    rtp_reader, rtp_writer = await asyncio.open_connection(sock=rtp_parent)
    rtp = Client(rtp_reader, rtp_writer)
    out: dict[str, Any] = {"backend": args.backend, "cores": os.cpu_count(), "relay": [], "transcode": None}
    try:
        for n in args.relay:
            target = n
            while True:
                r = await run(target, args.duration, False, iwf, rtp, f"r{target}")
                ok, why = keeps_up(r, args.max_cpu)
                r["kept_up"], r["note"] = ok, why
                r["asked"] = n
                out["relay"].append(r)
                print(
                    f"relay  N={target:5d}: IWF CPU {r['iwf_cpu_pct']:5.1f}% "
                    f"= {r['cpu_per_call_pct']:.3f}%/call, loss {r['loss_pct']:.4f}%, "
                    f"jitter {r['jitter_ms_mean']:.2f} ms (max {r['jitter_ms_max']:.2f}), "
                    f"set-up {r['setup_s']} s, peers {r['peer_cpu_pct']}% CPU sent {r['offered_pct']}%"
                    + ("" if ok else f"  -- cannot keep up: {why}"),
                    flush=True,
                )
                if ok or target <= 50:
                    break
                target = int(target * 0.7)
                print(f"         scaling down to N={target}", flush=True)
        if args.transcode:
            m = args.transcode
            r = await run(m, args.duration, True, iwf, rtp, "t")
            ok, why = keeps_up(r, args.max_cpu)
            r["kept_up"], r["note"] = ok, why
            r["calls_per_core"] = round(m / (r["iwf_cpu_pct"] / 100), 1) if r["iwf_cpu_pct"] else None
            out["transcode"] = r
            print(
                f"transcode N={m}: IWF CPU {r['iwf_cpu_pct']}% -> {r['calls_per_core']} "
                "Opus<->PCMU calls per core, "
                f"loss {r['loss_pct']:.4f}%, jitter {r['jitter_ms_mean']:.2f} ms"
                + ("" if ok else f"  -- {why}"),
                flush=True,
            )
    finally:
        writer.write(b'{"id": 0, "op": "quit"}\n')
        await writer.drain()
        rtp_writer.write(b'{"id": 0, "op": "quit"}\n')
        await rtp_writer.drain()
        rtp_proc.join(10)
        if rtp_proc.is_alive():
            rtp_proc.kill()
        if proc is None:
            await server
        else:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    sustained = [r["effective_calls"] for r in out["relay"] if r["kept_up"]]
    out["max_sustained_relay_calls"] = max(sustained) if sustained else 0
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("embedded", "rtpengine"), default="embedded")
    p.add_argument("--relay", default="100,300,1000", help="comma-separated call counts")
    p.add_argument("--transcode", type=int, default=40, help="transcoded calls to measure (0: none)")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--same-process", action="store_true", help="diagnostic: run the IWF in this process")
    p.add_argument(
        "--max-cpu", type=float, default=90.0, help="IWF CPU (%% of one core) counted as keeping up"
    )
    args, rest = p.parse_known_args(argv)
    if args.backend == "rtpengine":
        # The rtpengine backend's runs live in their own script (rtpengine daemon, ng client).
        script = Path(__file__).with_name("media_relay_rtpengine.py")
        os.execv(sys.executable, [sys.executable, str(script), *rest])
    args.relay = [int(x) for x in args.relay.split(",") if x]
    _quiet()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    out = asyncio.run(drive(args))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
