"""N concurrent calls relayed by rtpengine, set up through webims' rtpengine backend.

What is measured (the rtpengine counterpart of benchmarks/media_relay.py):

* ``relay``: N calls of plain RTP/AVP PCMU <-> RTP/AVP PCMU (pass-through, no
  decoding), 50 packets/s each way per call, for ``--duration`` seconds;
* ``transcode``: N calls of Opus (the "WebRTC" peer; pre-encoded 20 ms frames of
  a tone) <-> PCMU (the "IMS" peer): rtpengine decodes and encodes both ways.

Both peers of every call are synthetic Python sockets on loopback, driven by one
thread with epoll (no DTLS-SRTP: the WebRTC-side peer speaks plain RTP, so the
figures are rtpengine's relay/transcode cost without SRTP).  The call set-up
(ng offer + answer per call through :class:`RtpengineIWF`) is timed too.

Printed per run: set-up rate, rtpengine CPU (from /proc, all its threads) as % of
one core in total and per call, the peers' own CPU, loss (packets not received /
sent, both directions) and RFC 3550 interarrival jitter at the receivers (which
includes the Python peers' own scheduling delay: an upper bound).

    .venv/bin/python benchmarks/media_relay_rtpengine.py                      # defaults
    .venv/bin/python benchmarks/media_relay_rtpengine.py --relay 100,300,1000 --transcode 10,25,50 \
        --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import select
import socket
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from webims.media.rtpengine import CodecPolicy, RtpengineIWF, RtpengineSession
from webims.sdp import OPUS, PCMU, Codec, Connection, MediaDescription, Origin, SessionDescription
from webims.testing.rtpengine import Rtpengine, rtp_target

PTIME = 0.020


@dataclass
class Peer:
    sock: socket.socket
    payload_type: int
    samples_per_packet: int
    clock_rate: int
    target: tuple[str, int] = ("", 0)
    ssrc: int = 0
    seq: int = 0
    sent: int = 0
    received: int = 0
    jitter: float = 0.0  # RFC 3550 §6.4.1, in timestamp units
    _transit: float | None = None
    payloads: list[bytes] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def describe(self, codec: Codec) -> SessionDescription:
        sdp = SessionDescription.create(
            Origin("-", str(self.port), 1, "IN", "IP4", "127.0.0.1"), "-", Connection("127.0.0.1")
        )
        media = MediaDescription.create("audio", self.port, "RTP/AVP")
        media.set_codecs([codec])
        media.direction = "sendrecv"
        sdp.media.append(media)
        return sdp

    def send(self, tick: int) -> None:
        header = struct.pack(
            "!BBHII", 0x80, self.payload_type, self.seq & 0xFFFF,
            (tick * self.samples_per_packet) & 0xFFFFFFFF, self.ssrc,
        )  # fmt: skip
        payload = self.payloads[tick % len(self.payloads)]
        try:
            self.sock.sendto(header + payload, self.target)
            self.sent += 1
        except BlockingIOError:
            pass
        self.seq += 1

    def drain(self, now: float) -> None:
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return
            if len(data) < 12 or 64 <= data[1] & 0x7F <= 95:
                continue  # RTCP
            self.received += 1
            timestamp = struct.unpack_from("!I", data, 4)[0]
            transit = now * self.clock_rate - timestamp
            if self._transit is not None:
                d = abs(transit - self._transit)
                self.jitter += (d - self.jitter) / 16
            self._transit = transit


def new_peer(payload_type: int, samples: int, clock_rate: int, payloads: list[bytes], ssrc: int) -> Peer:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return Peer(sock, payload_type, samples, clock_rate, payloads=payloads, ssrc=ssrc)


def opus_payloads(count: int = 50) -> list[bytes]:
    """20 ms Opus frames of a 440 Hz tone (PyAV's libopus), cycled by the WebRTC-side peers."""
    import math

    import av

    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    encoder.time_base = Fraction(1, 48000)
    out: list[bytes] = []
    for n in range(count + 5):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.sample_rate, frame.pts = 48000, n * 960
        pcm = [int(8000 * math.sin(2 * math.pi * 440 * (n * 960 + i) / 48000)) for i in range(960)]
        frame.planes[0].update(struct.pack("<960h", *pcm))
        out += [bytes(p) for p in encoder.encode(frame)]
    return out[:count]


def pcmu_payloads() -> list[bytes]:
    return [bytes((0xFF if (n + i) % 2 else 0x7F) for i in range(160)) for n in range(50)]


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(calls: int, duration: float, transcode: bool, workdir: Path) -> dict[str, float]:
    with Rtpengine(workdir, rtp_ports=4 * calls + 200, log_level=4, threads=2) as daemon:
        policy = CodecPolicy(ims_transcode=("PCMU",), ims_mask=("opus",))
        iwf = RtpengineIWF(daemon.ng_address, codecs=policy, final_stats=False)
        await iwf.start()
        pairs: list[tuple[Peer, Peer]] = []
        sessions: list[RtpengineSession] = []
        opus = opus_payloads() if transcode else []
        started = time.perf_counter()
        for n in range(calls):
            if transcode:
                webrtc = new_peer(111, 960, 48000, opus, 0x10000 + n)
                codec = OPUS
            else:
                webrtc = new_peer(0, 160, 8000, pcmu_payloads(), 0x10000 + n)
                codec = PCMU
            ims = new_peer(0, 160, 8000, pcmu_payloads(), 0x20000 + n)
            session = await iwf.create_session(f"bench-{n}")
            ims_offer = await session.offer_from_webrtc(webrtc.describe(codec))
            webrtc_answer = await session.answer_from_ims(ims.describe(PCMU))
            await session.confirm()
            sessions.append(session)
            webrtc.target, ims.target = rtp_target(webrtc_answer), rtp_target(ims_offer)
            pairs.append((webrtc, ims))
        setup_s = time.perf_counter() - started

        peers = [p for pair in pairs for p in pair]
        by_fd = {p.sock.fileno(): p for p in peers}
        poller = select.epoll()
        for fd in by_fd:
            poller.register(fd, select.EPOLLIN)
        rtpe_cpu0, self_cpu0 = daemon.cpu_seconds(), cpu_self()
        t0 = time.perf_counter()
        ticks = int(duration / PTIME)
        late_ticks = 0
        for tick in range(ticks):
            due = t0 + tick * PTIME
            for peer in peers:
                peer.send(tick)
            while True:  # receive until the next tick is due (at least one pass when late)
                wait = due + PTIME - time.perf_counter()
                events = poller.poll(max(0.0, wait))
                arrival = time.perf_counter()
                for fd, _ in events:
                    by_fd[fd].drain(arrival)
                if wait <= 0:
                    late_ticks += wait < -PTIME
                    break
        wall = time.perf_counter() - t0
        rtpe_cpu = daemon.cpu_seconds() - rtpe_cpu0
        self_cpu = cpu_self() - self_cpu0
        end = time.perf_counter() + 0.5  # let the last packets arrive
        while (now := time.perf_counter()) < end:
            events = poller.poll(end - now)
            arrival = time.perf_counter()
            for fd, _ in events:
                by_fd[fd].drain(arrival)
        poller.close()

        sent_up = sum(w.sent for w, _ in pairs)
        sent_down = sum(i.sent for _, i in pairs)
        # Transcoding may change the packet count (frame size): compare per direction.
        got_up = sum(i.received for _, i in pairs)
        got_down = sum(w.received for w, _ in pairs)
        jitter_ms = [i.jitter / 8000 * 1000 for _, i in pairs] + [
            w.jitter / w.clock_rate * 1000 for w, _ in pairs
        ]
        # What rtpengine itself received (ng query counters), to tell where packets were lost.
        rtpe_in = 0
        for session in sessions:
            rtpe_in += sum(leg.packets_received for leg in await session.refresh_stats())
        await iwf.close()
        for peer in peers:
            peer.sock.close()
        return {
            "calls": calls,
            "setup_calls_per_s": calls / setup_s,
            "rtpengine_cpu_pct": 100 * rtpe_cpu / wall,
            "rtpengine_cpu_pct_per_call": 100 * rtpe_cpu / wall / calls,
            "peers_cpu_pct": 100 * self_cpu / wall,
            "loss_up_pct": 100 * max(0, sent_up - got_up) / max(1, sent_up),
            "loss_down_pct": 100 * max(0, sent_down - got_down) / max(1, sent_down),
            "jitter_ms_mean": sum(jitter_ms) / len(jitter_ms),
            "jitter_ms_max": max(jitter_ms),
            "late_ticks": late_ticks,
            "pps_total": (sent_up + sent_down) / wall,
            "lost_before_rtpengine_pct": 100
            * max(0, sent_up + sent_down - rtpe_in)
            / max(1, sent_up + sent_down),
        }


def report(kind: str, r: dict[str, float]) -> None:
    print(
        f"{kind:9} N={int(r['calls']):5d}  setup {r['setup_calls_per_s']:6.0f} calls/s  "
        f"rtpengine CPU {r['rtpengine_cpu_pct']:6.1f}% ({r['rtpengine_cpu_pct_per_call']:.3f}%/call)  "
        f"peers CPU {r['peers_cpu_pct']:5.1f}%  {r['pps_total']:7.0f} pkt/s sent  "
        f"loss up {r['loss_up_pct']:.3f}% down {r['loss_down_pct']:.3f}% "
        f"(before rtpengine {r['lost_before_rtpengine_pct']:.3f}%)  "
        f"jitter mean {r['jitter_ms_mean']:.2f} ms max {r['jitter_ms_max']:.2f} ms  "
        f"late ticks {int(r['late_ticks'])}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relay", default="100,300,1000", help="call counts for PCMU pass-through")
    parser.add_argument("--transcode", default="10,25,50", help="call counts for Opus <-> PCMU")
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args(argv)
    print(f"rtpengine relay benchmark, {os.cpu_count()} CPUs, {args.duration:.0f} s per run", flush=True)
    with tempfile.TemporaryDirectory(prefix="rtpe-bench-") as tmp:
        for n in [int(x) for x in args.relay.split(",") if x]:
            report("relay", asyncio.run(run(n, args.duration, False, Path(tmp))))
        for n in [int(x) for x in args.transcode.split(",") if x]:
            report("transcode", asyncio.run(run(n, args.duration, True, Path(tmp))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
