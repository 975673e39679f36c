"""N concurrent calls through the embedded media IWF: DTLS-SRTP (WebRTC) <-> RTP/AVP (IMS), on loopback.

Three processes (uvloop each), talking JSON lines over socketpairs:

* the IWF (``--backend embedded``), driven with the real API
  (``offer_from_webrtc``, ``answer_from_ims``, ``confirm``, ``release``); its
  own CPU time (``getrusage`` of its process, user + system) over the
  measured window is what "IWF CPU" reports;
* this process: one synthetic WebRTC peer per call (real ICE with aioice and a
  real DTLS handshake, then SRTP);
* a child with one plain RTP peer per call (the IMS side).

After set-up each peer process hands its calls' sockets to
:class:`~webims.testing.media_peers.PacedStreams`: every packet of the run is
made beforehand (SRTP-protected, consecutive sequence numbers), then one tight
loop (the event loop blocked) sends each call's packet every 20 ms at the
call's own offset, on a 1 ms tick, and counts what arrives (RFC 3550 A.1
sequence, A.8 jitter; SRTP headers are in clear, so nothing is decrypted).
The IWF's consent checks (RFC 7675) are still answered by the peers' aioice.
Loss is counted as RFC 3550 A.3 does (sequence gaps in what arrives from the
IWF) and also as packets sent but never received.  The peers' CPU and the
rest of the machine's (``/proc/stat``: other processes on a shared host) are
reported beside the IWF's, over the same window.

Runs: ``relay`` — PCMU both sides, relayed without decoding, at N = 100, 300,
500, 1000; a run that cannot keep up (IWF above ``--max-cpu`` of one core, loss
above 0.1 %, or peers that could not send 90 % of the packets) is repeated at
70 % of N until it can, and says so.  ``transcode`` — Opus (WebRTC) <-> PCMU
(IMS), decoded and encoded both ways, reported as calls per core.  Printed:
IWF CPU per call (% of one core), loss, jitter; the last line is JSON.

    .venv/bin/python benchmarks/media_relay.py [--relay 100,300,500,1000] [--transcode 40] [--duration 10]
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
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from webims.media import EmbeddedConfig, EmbeddedMediaIWF, MediaIWF, MediaSession
from webims.media.dtls import DtlsCertificate
from webims.media.ports import PortAllocator
from webims.media.transcode import AudioEncoder
from webims.sdp import OPUS, PCMU, TELEPHONE_EVENT_8000, TELEPHONE_EVENT_48000, Codec, parse
from webims.testing.media_peers import PacedResult, PacedStreams, RtpPeer, WebRtcPeer, sine_pcm

PTIME = 0.020
SETUP_CONCURRENCY = 20
WARMUP = 2.0  # seconds of media before the measured window
MAX_BACKLOG_MS = 100.0  # packets queued at the end of the window, as time: more is falling behind

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
            elif op == "window":  # CPU at two monotonic times (the peers' measured window)
                loop = asyncio.get_running_loop()
                marks: list[tuple[float, float, float]] = []
                done = loop.create_future()

                def mark() -> None:
                    ru = resource.getrusage(resource.RUSAGE_SELF)
                    marks.append((time.monotonic(), backend.cpu_seconds(), ru.ru_stime))
                    if len(marks) == 2:
                        done.set_result(None)

                for at in msg["at"]:
                    loop.call_later(max(0.0, at - time.monotonic()), mark)
                await done
                (t1, c1, s1), (t2, c2, s2) = marks
                loop_name = type(loop).__module__ + "." + type(loop).__name__
                await reply(rid, {"wall": t2 - t1, "cpu": c2 - c1, "sys": s2 - s1, "loop": loop_name})
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

    def send(self, op: str, **kw: Any) -> asyncio.Future[dict[str, Any]]:
        """Write the request now; the future is its answer (a RuntimeError if it failed)."""
        self.next_id += 1
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.waiting[self.next_id] = fut
        self.writer.write(json.dumps({"id": self.next_id, "op": op, **kw}).encode() + b"\n")

        async def answer() -> dict[str, Any]:
            msg = await fut
            if "error" in msg:
                raise RuntimeError(f"{op}: {msg['error']}")
            return msg

        return asyncio.ensure_future(answer())

    async def call(self, op: str, **kw: Any) -> dict[str, Any]:
        return await self.send(op, **kw)


# --------------------------------------------------------------------------------------------
# The peers: WebRTC peers in this process, plain RTP peers in a second child process.  Both are
# set up with the event loop (ICE, DTLS, SDP), then driven by PacedStreams (media_peers.py):
# one tight loop per process, every packet made beforehand, the event loop blocked meanwhile.
# --------------------------------------------------------------------------------------------


def frames_for(codec: Codec) -> list[tuple[bytes, int]]:
    rate = 48000 if codec.name == "opus" else 8000
    enc = AudioEncoder(codec, rate, 20)
    return [(f, enc.rtp_step) for f in enc.encode(sine_pcm(rate, 1.0, 440.0))]


def train_length(start: float, stop: float) -> int:
    return int((stop - start) / PTIME) + 10


def paced_summary(r: PacedResult) -> dict[str, Any]:
    return {
        "sent": r.sent,
        "window_sent": r.window_sent,
        "sent_at_end": r.sent_at_end,
        "received_at_end": r.received_at_end,
        "mark_late": r.mark_late,
        "received": r.received,
        "expected": r.expected,
        "jitters": r.jitters_ms,
        "late": r.late,
        "skipped": r.skipped,
        "cpu": r.cpu,
        "wall": r.wall,
        "busy": r.machine_busy,
        "stun": r.other,
    }


async def _rtp_server(sock: socket.socket) -> None:
    """The plain RTP peers (IMS side) of every call, in their own process."""
    ports = PortAllocator(25000, 29999)
    peers: list[RtpPeer] = []
    streams: PacedStreams | None = None
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
            peers.append(peer)
            reply(rid, {"sdp": answer.to_text()})
        elif op == "prepare":
            frames = frames_for(PCMU)
            count = msg["count"]
            streams = PacedStreams(
                [p.media_socket() for p in peers], [p.packet_train(frames, count) for p in peers], 8000, PTIME
            )
            reply(rid, {})
        elif op == "run":  # blocks this process's loop for the whole run
            assert streams is not None
            result = streams.run(msg["start"], (msg["window"][0], msg["window"][1]), msg["stop"])
            reply(rid, paced_summary(result))
        elif op == "release":
            if streams is not None:
                streams.close()
                streams = None
            for peer in peers:
                peer.close()
            peers.clear()
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

    async def one(i: int) -> WebRtcPeer:
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
            return web

    calls = await asyncio.gather(*(one(i) for i in range(n)))
    setup_s = time.monotonic() - t0
    # The schedule: start, WARMUP seconds (latching done, jitter settled), the measured window.
    prep = time.monotonic()
    lead = 1.0 + n * 0.004  # time to make the packets (SRTP-protected here) before the start
    start = prep + lead
    window = (start + WARMUP, start + WARMUP + duration)
    stop = window[1] + 0.2
    count = train_length(start, stop)
    web_codec = OPUS if transcode else PCMU
    frames = frames_for(web_codec)
    rtp_ready = rtp.send("prepare", count=count)
    streams = PacedStreams(
        [w.media_socket() for w in calls],
        [w.packet_train(frames, count) for w in calls],
        web_codec.clock_rate,
        PTIME,
    )
    await rtp_ready
    if time.monotonic() > start - 0.2:
        raise RuntimeError(f"making {count} packets x {n} calls took longer than {lead:.1f} s")
    iwf_window = iwf.send("window", at=list(window))
    rtp_result = rtp.send("run", start=start, window=list(window), stop=stop)
    await asyncio.sleep(0.05)  # both requests on their way before this loop blocks
    web = streams.run(start, window, stop)  # blocks this process until stop + drain
    streams.close()
    ims = await rtp_result
    cpu = await iwf_window
    wall = cpu["wall"]
    iwf_cpu = cpu["cpu"] / wall
    iwf_sys = cpu["sys"] / wall
    peer_cpu = web.cpu / web.wall + ims["cpu"] / ims["wall"]
    # The rest of the machine (other processes, including other work on a shared host).
    others = None
    if web.machine_busy is not None:
        others = max(0.0, web.machine_busy / web.wall - iwf_cpu - peer_cpu)
    sent = web.sent + ims["sent"]
    received = web.received + ims["received"]
    # Loss as RFC 3550 A.3 counts it at the receivers: sequence gaps in what the IWF sent.
    expected = web.expected + ims["expected"]
    jitters = web.jitters_ms + ims["jitters"]
    nominal = n * 2 * (window[1] - window[0]) / PTIME
    # Packets in flight (queued in the IWF or the peers) at the end of the window, as time:
    # a relay that keeps up holds about a tick's worth; one that falls behind, seconds.
    rate = n / PTIME  # packets per second in each direction
    # Each process took its end mark a little late: count back to the same instant.
    web_late, ims_late = web.mark_late * rate, ims["mark_late"] * rate
    backlog_ms = [
        max(0.0, (web.sent_at_end - web_late) - (ims["received_at_end"] - ims_late)) / rate * 1000,
        max(0.0, (ims["sent_at_end"] - ims_late) - (web.received_at_end - web_late)) / rate * 1000,
    ]
    offered = (web.window_sent + ims["window_sent"]) / nominal
    released = await iwf.call("release")
    await rtp.call("release")
    for w in calls:
        await w.close()
    return {
        "calls": n,
        "setup_s": round(setup_s, 1),
        "iwf_cpu_pct": round(iwf_cpu * 100, 1),
        "cpu_per_call_pct": round(iwf_cpu * 100 / n, 3),
        "iwf_kernel_pct": round(iwf_sys * 100, 1),
        "us_per_packet": round(iwf_cpu * 1e6 / (n * 2 / PTIME), 2),
        "peer_cpu_pct": round(peer_cpu * 100, 1),
        "others_cpu_pct": None if others is None else round(others * 100, 1),
        "window_s": round(web.wall, 2),
        "duration_s": duration,
        "sent": sent,
        "received": received,
        "loss_pct": round(max(0, expected - received) * 100 / expected, 4) if expected else 100.0,
        "unreceived_pct": round(max(0, sent - received) * 100 / sent, 4) if sent else 100.0,
        "jitter_ms_mean": round(sum(jitters) / len(jitters), 2),
        "jitter_ms_max": round(max(jitters), 2),
        "backlog_ms": round(max(backlog_ms), 1),
        "peer_late_ms": round(max(web.late, ims["late"]) * 1000, 1),
        "peer_skipped": web.skipped + ims["skipped"],
        "offered_pct": round(offered * 100, 1),
        # The calls the IWF really carried: N scaled by the packet rate the peers achieved.
        "effective_calls": round(n * min(1.0, offered)),
        "iwf_events": len(released["events"]),  # ICE/DTLS failures, media timeouts
        "iwf_loop": cpu["loop"],
        "stun_answered": web.other,
        # Per direction: what the WebRTC peers sent and the RTP peers received, and back.
        "to_ims": [web.sent, ims["received"], ims["expected"]],
        "to_webrtc": [ims["sent"], web.received, web.expected],
    }


def keeps_up(r: dict[str, Any], max_cpu: float) -> tuple[bool, str]:
    if r["iwf_events"]:
        return False, f"{r['iwf_events']} IWF failure events (ICE/DTLS/consent/timeouts)"
    if r["loss_pct"] >= 0.1:
        return False, f"loss {r['loss_pct']}% >= 0.1%"
    if r["unreceived_pct"] >= 0.1:
        return False, f"{r['unreceived_pct']}% of the packets sent never arrived (queued or lost)"
    if r["backlog_ms"] > MAX_BACKLOG_MS:
        return False, f"{r['backlog_ms']} ms of packets queued at the end of the window (falling behind)"
    if r["iwf_cpu_pct"] > max_cpu:
        return False, f"IWF at {r['iwf_cpu_pct']}% of one core (> {max_cpu}%)"
    if r["offered_pct"] < 90:
        return False, f"the peers sent only {r['offered_pct']}% of the nominal packet rate: peer-limited"
    return True, ""


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    parent, child = socket.socketpair()
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
                    f"= {r['cpu_per_call_pct']:.3f}%/call ({r['us_per_packet']} us/packet), "
                    f"loss {r['loss_pct']:.4f}% (unreceived {r['unreceived_pct']:.4f}%), "
                    f"jitter {r['jitter_ms_mean']:.2f} ms (max {r['jitter_ms_max']:.2f}), "
                    f"backlog {r['backlog_ms']} ms, "
                    f"set-up {r['setup_s']} s, peers {r['peer_cpu_pct']}% CPU sent {r['offered_pct']}%, "
                    f"others {r['others_cpu_pct']}% CPU" + ("" if ok else f"  -- cannot keep up: {why}"),
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
                f"loss {r['loss_pct']:.4f}% (unreceived {r['unreceived_pct']:.4f}%), "
                f"jitter {r['jitter_ms_mean']:.2f} ms, backlog {r['backlog_ms']} ms, "
                f"others {r['others_cpu_pct']}% CPU" + ("" if ok else f"  -- {why}"),
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
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    sustained = [r["effective_calls"] for r in out["relay"] if r["kept_up"]]
    out["max_sustained_relay_calls"] = max(sustained) if sustained else 0
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("embedded", "rtpengine"), default="embedded")
    p.add_argument("--relay", default="100,300,500,1000", help="comma-separated call counts")
    p.add_argument("--transcode", type=int, default=40, help="transcoded calls to measure (0: none)")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
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
