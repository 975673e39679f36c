"""Synthetic media peers for tests and benchmarks, on loopback.

* :class:`RtpPeer` — a plain RTP/AVP endpoint (an IMS phone or MRF stand-in):
  sends a G.711 sine tone (or echoes what it receives), counts what arrives
  with RFC 3550 statistics, and writes/answers SDP with :mod:`webims.sdp`.
* :class:`WebRtcPeer` — a WebRTC endpoint (a browser stand-in): ICE with
  aioice, DTLS-SRTP, rtcp-mux, using the IWF's own
  :class:`~webims.media.ice_leg.WebRtcLeg` as transport.

Both send with :meth:`send_tone` / :meth:`send_frame` and keep what they
received in :attr:`received` (plain RTP packets) and :attr:`reception`.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections.abc import Sequence

from ..media.api import MediaEventKind
from ..media.dtls import DtlsCertificate, DtlsRole
from ..media.ice_leg import WebRtcLeg
from ..media.ims_leg import ImsLeg
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

__all__ = ["RtpPeer", "WebRtcPeer", "rms", "sine_pcm"]


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

    async def connected(self, timeout: float = 10.0) -> bool:
        await asyncio.wait_for(self.leg.connected.wait(), timeout)
        return not self.leg.failed

    async def close(self) -> None:
        await self.leg.close()
