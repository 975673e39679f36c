"""Synthetic media peers for tests and benchmarks, on loopback.

* :class:`RtpPeer` — a plain RTP/AVP endpoint (an IMS phone or MRF stand-in):
  sends a G.711 sine tone (or echoes what it receives), counts what arrives
  with RFC 3550 statistics, and writes/answers SDP with :mod:`webims.sdp`.
* :class:`WebRtcPeer` — a WebRTC endpoint (a browser stand-in): ICE with
  aioice, DTLS-SRTP, rtcp-mux, using the IWF's own
  :class:`~webims.media.ice_leg.WebRtcLeg` as transport.

Both send with :meth:`send_tone` / :meth:`send_frame` and keep what they
received in :attr:`received` (plain RTP packets) and :attr:`reception`.

For load (benchmarks/media_relay.py), :class:`PacedStreams` drives many
calls' media from one tight loop once the peers are set up: every packet of
the run is made (and SRTP-protected) beforehand, the sockets are taken over
from the event loop (:meth:`WebRtcPeer.media_socket`,
:meth:`RtpPeer.media_socket`), each call sends every 20 ms at its own offset
in the packet time, and what arrives is only counted (RFC 3550 A.1 sequence,
A.8 jitter).  STUN (the IWF's consent checks, RFC 7675) still goes to aioice.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import resource
import select
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..media.api import MediaEventKind
from ..media.dtls import DtlsCertificate, DtlsRole
from ..media.ice_leg import WebRtcLeg
from ..media.ims_leg import ImsLeg, SrtpSession
from ..media.leg import MediaLeg
from ..media.negotiate import audio_stream
from ..media.ports import PortAllocator
from ..media.rtcp import ReceptionStats
from ..media.rtp import TelephoneEvent
from ..media.transcode import AudioEncoder, audio_rate
from ..sdp import (
    Codec,
    Connection,
    MediaAnswer,
    MediaDescription,
    Origin,
    SessionDescription,
    answer_setup,
    create_answer,
    ims_to_webrtc,
)

__all__ = ["MediaSocket", "PacedResult", "PacedStreams", "RtpPeer", "WebRtcPeer", "rms", "sine_pcm"]


def sine_pcm(rate: int, seconds: float, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    """16-bit little-endian mono PCM of a sine wave."""
    n = int(rate * seconds)
    return struct.pack(
        f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    )


def rms(pcm: bytes) -> float:
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) // 2 * 2])
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def plain_sdp(address: str, port: int, codecs: Sequence[Codec], sess_id: int = 1) -> SessionDescription:
    """An RTP/AVP offer with one audio stream."""
    sdp = SessionDescription.create(
        Origin("-", str(sess_id), 1, "IN", "IP4", address), "-", Connection.for_address(address)
    )
    m = MediaDescription.create("audio", port, "RTP/AVP")
    m.set_codecs(list(codecs))
    m.direction = "sendrecv"
    sdp.media.append(m)
    return sdp


class _Recorder:
    """What a peer keeps about received packets."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.received: list[bytes] = []
        self.count = 0
        self.reception: ReceptionStats | None = None
        self.first_arrival: float | None = None

    def record(self, data: bytes, now: float, clock_rate: int) -> None:
        self.count += 1
        if self.keep:
            self.received.append(data)
        seq, ts, ssrc = struct.unpack_from("!HII", data, 2)
        if self.reception is None or self.reception.ssrc != ssrc:
            self.reception = ReceptionStats(ssrc, seq, clock_rate)
            self.first_arrival = now
        self.reception.update(seq, ts, now, len(data))


class _Sender:
    def __init__(self, leg: MediaLeg) -> None:
        self.leg = leg
        self.seq = 1000
        self.ts = 0
        self.ssrc = leg.out.ssrc

    def send_frame(self, payload: bytes, payload_type: int, step: int, marker: bool = False) -> None:
        header = struct.pack(
            "!BBHII",
            0x80,
            (0x80 if marker else 0) | payload_type,
            self.seq & 0xFFFF,
            self.ts & 0xFFFFFFFF,
            self.ssrc,
        )
        self.seq += 1
        self.ts += step
        self.leg.send_rtp(header + payload)

    def send_event(self, event: int, payload_type: int, clock_rate: int, packets: int) -> None:
        """One RFC 4733 event: ``packets`` updates 20 ms apart, the end packet sent three times (§2.5.1.4)."""
        duration = 0
        for i in range(packets):
            duration = (i + 1) * clock_rate // 50
            end = i == packets - 1
            body = TelephoneEvent(event, end, 10, duration).to_bytes()
            for _ in range(3 if end else 1):
                self.send_frame(body, payload_type, 0, marker=i == 0)
        self.ts += duration


class _Peer:
    leg: MediaLeg
    codec: Codec

    def __init__(self, keep: bool) -> None:
        self.recorder = _Recorder(keep)
        self._sender: _Sender | None = None
        self.echo = False

    @property
    def received(self) -> list[bytes]:
        return self.recorder.received

    @property
    def reception(self) -> ReceptionStats | None:
        return self.recorder.reception

    def _on_rtp(self, data: bytes, now: float) -> None:
        self.recorder.record(data, now, self.leg.clock_rate)
        if self.echo:
            self.leg.send_rtp(data[:8] + struct.pack("!I", self.leg.out.ssrc) + data[12:])

    def send_frame(self, payload: bytes, payload_type: int | None = None, step: int = 160) -> None:
        if self._sender is None:
            self._sender = _Sender(self.leg)
        self._sender.send_frame(
            payload, self.codec.payload_type if payload_type is None else payload_type, step
        )

    def send_event(self, event: int, payload_type: int, clock_rate: int, packets: int = 4) -> None:
        """Send one DTMF event (RFC 4733) on this peer's stream."""
        if self._sender is None:
            self._sender = _Sender(self.leg)
        self._sender.send_event(event, payload_type, clock_rate, packets)

    def tone_frames(self, seconds: float = 1.0, freq: float = 440.0) -> list[tuple[bytes, int]]:
        """Encoded 20 ms frames of a sine tone in this peer's codec, with their RTP timestamp step."""
        rate = audio_rate(self.codec)
        encoder = AudioEncoder(self.codec, rate, 20)
        return [(f, encoder.rtp_step) for f in encoder.encode(sine_pcm(rate, seconds, freq))]

    def packet_train(
        self, frames: Sequence[tuple[bytes, int]], count: int, payload_type: int | None = None
    ) -> list[bytes]:
        """``count`` consecutive packets of a new stream (``frames`` cycled), as they go on the wire.

        Sequence numbers and timestamps start at 0 and increase (SRTP replay
        protection, RFC 3711 §3.3.2, needs them increasing); the leg's SRTP
        session, if any, protects them in order.
        """
        header = struct.Struct("!BBHII")
        pt = self.codec.payload_type if payload_type is None else payload_type
        ssrc = self.leg.out.ssrc
        tx: SrtpSession | None = getattr(self.leg, "_tx", None)  # both legs have one (or None)
        protect = tx.protect if tx is not None else None
        out: list[bytes] = []
        ts = 0
        for n in range(count):
            payload, step = frames[n % len(frames)]
            packet = header.pack(0x80, pt, n & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload
            out.append(packet if protect is None else protect(packet))
            ts += step
        return out

    async def send_tone(self, seconds: float, freq: float = 440.0, ptime: float = 0.02) -> int:
        """Send a tone in real time (20 ms frames); returns the number of packets sent."""
        frames = self.tone_frames(1.0, freq)
        count = int(seconds / ptime)
        start = time.monotonic()
        for i in range(count):
            payload, step = frames[i % len(frames)]
            self.send_frame(payload, step=step)
            delay = start + (i + 1) * ptime - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return count


class RtpPeer(_Peer):
    """A plain RTP endpoint on an even/odd port pair."""

    leg: ImsLeg

    def __init__(self, ports: PortAllocator, address: str = "127.0.0.1", keep: bool = True) -> None:
        super().__init__(keep)
        self.leg = ImsLeg(address, ports, "rtp-peer")
        self.address = address
        self.codec = Codec(0, "PCMU", 8000)

    async def open(self) -> None:
        await self.leg.open()
        self.leg.sink = self._on_rtp

    def offer(self, codecs: Sequence[Codec]) -> SessionDescription:
        self.codec = next(c for c in codecs if not c.is_auxiliary)
        self.leg.clock_rate = self.codec.clock_rate
        return plain_sdp(self.address, self.leg.port, codecs)

    def answer(self, offer: SessionDescription, codecs: Sequence[Codec]) -> SessionDescription:
        """Answer an offer with the first of ``codecs`` it has (offer's payload types)."""
        stream = audio_stream(offer)
        self.take(offer)
        attributes = []
        if stream.proto == "RTP/SAVP":  # SDES (RFC 4568): our key, the offered suite and tag
            offered = stream.crypto[0]
            attributes.append(self.leg.make_local_crypto(offered.suite, offered.tag).to_attribute())
        spec = MediaAnswer(
            list(codecs), self.leg.port, max_codecs=1, attributes=attributes, proto=stream.proto
        )
        sdp = create_answer(
            offer,
            [spec if i == stream.index else None for i in range(len(offer.media))],
            origin=Origin("-", "2", 1, "IN", "IP4", self.address),
            connection=Connection.for_address(self.address),
        )
        mine = audio_stream(sdp)
        self.codec = mine.media_codecs[0]
        self.leg.clock_rate = self.codec.clock_rate
        return sdp

    def media_socket(self) -> MediaSocket:
        """The RTP socket (a duplicate), connected to where this peer sends."""
        proto, remote = self.leg._rtp, self.leg.remote
        assert proto is not None and proto.transport is not None and remote is not None
        return MediaSocket.take(proto.transport, remote, None)

    def take(self, sdp: SessionDescription) -> None:
        """The other side's description: where to send."""
        stream = audio_stream(sdp)
        self.leg.set_remote(stream.address, stream.port, stream.rtcp_port)
        if stream.crypto:
            self.leg.set_remote_crypto(stream.crypto[0])

    def close(self) -> None:
        self.leg.close()


class WebRtcPeer(_Peer):
    """A browser stand-in: ICE + DTLS-SRTP with one audio stream."""

    def __init__(
        self,
        ports: PortAllocator,
        address: str = "127.0.0.1",
        certificate: DtlsCertificate | None = None,
        keep: bool = True,
    ) -> None:
        super().__init__(keep)
        self.address = address
        self.failures: list[tuple[MediaEventKind, str]] = []
        self.leg: WebRtcLeg = WebRtcLeg(
            certificate=certificate or DtlsCertificate.generate(),
            addresses=[address],
            ports=ports,
            controlling=True,
            cname="webrtc-peer",
            on_failure=lambda kind, reason: self.failures.append((kind, reason)),
        )
        self.codec = Codec(111, "opus", 48000, 2)

    async def offer(self, codecs: Sequence[Codec]) -> SessionDescription:
        """A browser-like offer (UDP/TLS/RTP/SAVPF, ICE, actpass, rtcp-mux, BUNDLE)."""
        await self.leg.gather()
        self.leg.sink = self._on_rtp
        self.codec = next(c for c in codecs if not c.is_auxiliary)
        template = plain_sdp(self.address, 9, codecs)
        return ims_to_webrtc(template, self.leg.local_endpoint("actpass"))

    async def accept(self, answer: SessionDescription) -> None:
        """The IWF's answer to our offer: start ICE and DTLS."""
        stream = audio_stream(answer)
        assert stream.ice is not None
        self.codec = stream.media_codecs[0]
        self.leg.clock_rate = self.codec.clock_rate
        role: DtlsRole = "server" if stream.setup == "active" else "client"
        await self.leg.set_remote(
            stream.ice.ufrag, stream.ice.pwd, stream.candidates, stream.fingerprints, role, stream.ice_lite
        )
        self.leg.start()

    async def answer(self, offer: SessionDescription, codecs: Sequence[Codec]) -> SessionDescription:
        """Answer the IWF's offer (we take ``a=setup:active``: DTLS client, as browsers do)."""
        self.leg.ice.ice_controlling = False  # the offerer controls (RFC 8445 §6.1.1)
        await self.leg.gather()
        self.leg.sink = self._on_rtp
        stream = audio_stream(offer)
        assert stream.ice is not None
        template = plain_sdp(self.address, 9, codecs)
        setup = answer_setup(stream.setup or "actpass")
        sdp = ims_to_webrtc(template, self.leg.local_endpoint(setup), offer=offer)
        mine = audio_stream(sdp)
        self.codec = mine.media_codecs[0]
        self.leg.clock_rate = self.codec.clock_rate
        role: DtlsRole = "client" if setup == "active" else "server"
        await self.leg.set_remote(
            stream.ice.ufrag, stream.ice.pwd, stream.candidates, stream.fingerprints, role
        )
        self.leg.start()
        return sdp

    def media_socket(self) -> MediaSocket:
        """The socket of the selected ICE pair (a duplicate), connected to the IWF.

        Datagrams that are not RTP/RTCP (STUN: the IWF's consent checks) go on
        to this peer's aioice protocol, which answers them.
        """
        pair = self.leg.ice.selected
        assert pair is not None
        protocol, remote = pair.protocol, pair.remote_addr
        return MediaSocket.take(
            protocol.transport, remote, lambda data: protocol.datagram_received(data, remote)
        )

    async def connected(self, timeout: float = 10.0) -> bool:
        await asyncio.wait_for(self.leg.connected.wait(), timeout)
        return not self.leg.failed

    async def close(self) -> None:
        await self.leg.close()


# -- many calls from one loop (load generation) ---------------------------------------------------


@dataclass
class MediaSocket:
    """A peer's media socket for :class:`PacedStreams`: a duplicate, connected to the IWF."""

    sock: socket.socket
    #: Where datagrams that are not RTP/RTCP go (STUN to aioice); None: dropped.
    other: Callable[[bytes], None] | None

    @classmethod
    def take(
        cls, transport: asyncio.BaseTransport, remote: tuple[str, int], other: Callable[[bytes], None] | None
    ) -> MediaSocket:
        fd = transport.get_extra_info("socket").fileno()
        sock = socket.socket(fileno=os.dup(fd))
        sock.setblocking(False)
        sock.connect(remote)  # only the IWF's datagrams; no address to parse on each send
        return cls(sock, other)


@dataclass
class PacedResult:
    """What :meth:`PacedStreams.run` measured (counts over the whole run, CPU over the window)."""

    sent: int = 0
    #: Packets sent inside the measured window; sent and received by its end (the other
    #: side's ``sent_at_end`` minus this side's ``received_at_end`` is what was in flight).
    window_sent: int = 0
    sent_at_end: int = 0
    received_at_end: int = 0
    #: How late (seconds) the loop took the window's end mark (counts are as of then).
    mark_late: float = 0.0
    received: int = 0
    #: RFC 3550 A.3: packets expected from the sequence numbers seen (first to highest).
    expected: int = 0
    jitters_ms: list[float] = field(default_factory=list)
    #: How far behind its schedule the loop ever was (seconds), and slots it skipped.
    late: float = 0.0
    skipped: int = 0
    #: This process's CPU seconds and the wall time of the measured window.
    cpu: float = 0.0
    wall: float = 0.0
    #: The whole machine's busy CPU seconds in the window (all cores, from /proc/stat).
    machine_busy: float | None = None
    other: int = 0


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy (every core), from /proc/stat (Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    ticks = [int(x) for x in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


#: The send/receive tick of :class:`PacedStreams` (seconds).
TICK = 0.001


class PacedStreams:
    """One RTP stream per call, sent and counted from one tight loop (no event loop, no tasks).

    Call ``i`` of ``n`` sends its packets at ``start + i * ptime / n + k * ptime``:
    sends are spread evenly over the packet time and go out on a 1 ms tick
    (:data:`TICK`), as a NIC's interrupt coalescing would hand them over; a
    loop that falls more than one packet time behind skips ahead and counts
    the slots it skipped (packets keep consecutive sequence numbers).  Between
    ticks the loop sleeps rather than waiting in epoll, so arriving datagrams
    do not wake it one by one; on each tick every ready socket gets one
    ``recv_into`` (up to 8 rounds): the RTP sequence number (A.1, extended)
    and the A.8 jitter (arrival time taken per round, so within ~1 ms) are
    kept per call; RTCP is ignored.
    """

    def __init__(
        self,
        sockets: Sequence[MediaSocket],
        trains: Sequence[Sequence[bytes]],
        clock_rate: int,
        ptime: float = 0.02,
    ) -> None:
        if len(sockets) != len(trains):
            raise ValueError("one packet train per socket")
        self.sockets = list(sockets)
        self.trains = [list(t) for t in trains]
        self.clock_rate = clock_rate
        self.ptime = ptime

    def close(self) -> None:
        for ms in self.sockets:
            ms.sock.close()

    def run(self, start: float, window: tuple[float, float], stop: float, drain: float = 2.0) -> PacedResult:
        """Send from ``start`` to ``stop`` (``time.monotonic()`` times), receive until ``stop + drain``.

        ``window`` is the measured interval (CPU, machine load, packets sent).
        """
        n = len(self.sockets)
        result = PacedResult()
        if n == 0:
            return result
        ptime, clock = self.ptime, float(self.clock_rate)
        dt = ptime / n
        sends = [ms.sock.send for ms in self.sockets]
        recvs = [ms.sock.recv_into for ms in self.sockets]
        others = [ms.other for ms in self.sockets]
        trains = self.trains
        limits = [len(t) for t in trains]
        sent = [0] * n
        received = [0] * n
        first = [-1] * n
        top = [0] * n  # extended highest sequence number
        transit = [0.0] * n
        jitter = [0.0] * n
        index = {ms.sock.fileno(): i for i, ms in enumerate(self.sockets)}
        poller = select.epoll()
        for fd in index:
            poller.register(fd, select.EPOLLIN)
        # No collector pauses in the loop: a full collection walks every peer's ICE/DTLS state
        # (tens of ms with hundreds of calls); the loop itself makes almost no containers.
        gc_was_enabled = gc.isenabled()
        gc.collect()
        gc.disable()
        buf = bytearray(2048)
        view = memoryview(buf)
        seq_ts = struct.Struct("!HI").unpack_from
        monotonic = time.monotonic
        poll = poller.poll
        sleep = time.sleep
        slot = 0  # next send slot: call slot % n, at start + slot * dt
        due = start
        end = stop + drain
        marks: list[tuple[float, float, float | None, int, int]] = []
        mark_at = [window[0], window[1]]
        late = 0.0
        skipped = 0
        other_count = 0
        try:
            while True:
                now = monotonic()
                if mark_at and now >= mark_at[0]:
                    mark_at.pop(0)
                    marks.append((now, cpu_seconds(), machine_busy_seconds(), sum(sent), sum(received)))
                if now >= end:
                    break
                if due <= now and now < stop:
                    behind = now - due
                    if behind > late:
                        late = behind
                    if behind > ptime:  # a whole packet time late: skip ahead, no burst
                        jump = int(behind / dt)
                        skipped += jump
                        slot += jump
                        due = start + slot * dt
                    while due <= now:
                        i = slot % n
                        k = sent[i]
                        if k < limits[i]:
                            try:  # noqa: SIM105 - no context manager on the hot path
                                sends[i](trains[i][k])
                            except OSError:
                                pass  # ICMP unreachable, buffer full: the packet is lost
                            sent[i] = k + 1
                        slot += 1
                        due = start + slot * dt
                # Receive what is there (no blocking in epoll: a datagram does not wake us).
                for _ in range(8):
                    ready = poll(0)
                    if not ready:
                        break
                    clock_now = monotonic() * clock
                    for fd, _ev in ready:
                        i = index[fd]
                        try:
                            size = recvs[i](buf)
                        except OSError:
                            continue
                        if size < 12:
                            continue
                        if not 127 < buf[0] < 192:
                            other = others[i]
                            if other is not None:
                                other_count += 1
                                other(bytes(view[:size]))
                            continue
                        if 191 < buf[1] < 224:
                            continue  # RTCP
                        seq, ts = seq_ts(buf, 2)
                        received[i] += 1
                        arrival = clock_now - ts
                        if first[i] < 0:
                            first[i] = top[i] = seq
                        else:
                            hi = top[i]
                            ext = hi + ((seq - hi) & 0xFFFF)
                            if ext - hi < 3000:  # ahead (not a late duplicate from far behind)
                                top[i] = ext
                            d = arrival - transit[i]
                            if d < 0:
                                d = -d
                            if d < 1 << 30:
                                jitter[i] += (d - jitter[i]) / 16.0
                        transit[i] = arrival
                # Sleep to the next tick: sends go out in 1 ms batches, as a NIC's interrupt
                # coalescing would deliver them; receiving waits for the tick too.
                tick = now + TICK
                if now < stop and due > tick:
                    tick = min(due, stop)
                wait = tick - monotonic()
                if wait > 0:
                    sleep(wait)
        finally:
            poller.close()
            if gc_was_enabled:
                gc.enable()
        result.sent = sum(sent)
        result.received = sum(received)
        result.expected = sum(top[i] - first[i] + 1 for i in range(n) if first[i] >= 0)
        result.jitters_ms = [j / clock * 1000 for j in jitter]
        result.late = late
        result.skipped = skipped
        result.other = other_count
        if len(marks) == 2:
            (t1, c1, b1, s1, _), (t2, c2, b2, s2, r2) = marks
            result.wall = t2 - t1
            result.cpu = c2 - c1
            result.window_sent = s2 - s1
            result.sent_at_end, result.received_at_end = s2, r2
            result.mark_late = t2 - window[1]
            result.machine_busy = b2 - b1 if b1 is not None and b2 is not None else None
        return result
