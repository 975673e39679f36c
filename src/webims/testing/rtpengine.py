"""Start and stop Debian's rtpengine (``rtpengine-daemon``) in userspace on loopback, for tests.

Synchronous and subprocess-based, so it suits pytest fixtures whether or not the
test is async::

    with Rtpengine(workdir=tmp_path) as rtpe:      # own ng port, own RTP port range
        iwf = RtpengineIWF(rtpe.ng_address)
        ...
        assert rtpe.calls() == []                  # ng "list": no leaked call
    # on failure: rtpe.log_tail() holds its log

What it runs: ``rtpengine --config-file=none --table=-1 --foreground --log-stderr
--interface=IP --listen-ng=IP:PORT --port-min=.. --port-max=..`` — no kernel module
(``--table=-1``: userspace forwarding only), no system config file, no syslog, no
recording, ``--delete-delay=0`` so that a deleted call is gone at once (leak checks).
Ready when the ng port answers ``ping`` with ``pong``.  Stopped with SIGTERM
(SIGKILL to its process group after a grace period).

Port ranges: each instance takes a block of ``rtp_ports`` UDP ports below Linux's
ephemeral range (10000-32767), chosen at random among blocks whose ports are all
free at start time, so parallel tests (and the embedded IWF's OS-assigned ports) do
not collide; rtpengine skips a port that is taken later anyway.

AMR and AMR-WB encoding needs Debian's ``libavcodec-extra`` (``rtpengine --codecs``
says "supported for decoding only" without it, and rtpengine then silently passes
the original codec instead of transcoding); :func:`codec_support` reads that list.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ..media.ng import NgDecodeError, NgError, NgErrorReply, decode_message, encode_message
from ..sdp import Codec, Connection, MediaDescription, Origin, SessionDescription
from .ports import free_port, free_port_block
from .process import ManagedProcess, cpu_seconds

__all__ = [
    "DEBIAN_PACKAGES",
    "RtpPacket",
    "RtpPeer",
    "Rtpengine",
    "RtpengineError",
    "codec_support",
    "free_udp_port",
    "free_udp_port_block",
    "ng_request",
    "rtp_target",
]

#: Debian packages: the daemon, and the AMR/AMR-WB encoders it loads through libavcodec.
DEBIAN_PACKAGES = ("rtpengine-daemon", "libavcodec-extra")
_LOG_TAIL = 20_000


class RtpengineError(RuntimeError):
    """rtpengine is missing, did not start, or did not answer; the message has its log tail."""


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port free on ``host`` now (racy by nature; fine on loopback)."""
    return free_port(host, tcp=False)


def free_udp_port_block(
    count: int, host: str = "127.0.0.1", rng: random.Random | None = None
) -> tuple[int, int]:
    """``(first, last)`` of ``count`` consecutive UDP ports in 10000-32767, all free on ``host`` now."""
    try:
        return free_port_block(count, host, rng)
    except OSError as exc:
        raise RtpengineError(str(exc)) from None


def ng_request(
    address: tuple[str, int], command: str, params: Mapping[str, Any] | None = None, timeout: float = 1.0
) -> dict[str, Any]:
    """One blocking ng request (no retransmission), for harness checks; raises NgError."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    cookie = f"t{os.getpid()}x{random.getrandbits(32):08x}"
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.send(encode_message(cookie, {"command": command, **(params or {})}))
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65_535)
            except (TimeoutError, ConnectionRefusedError) as exc:
                raise NgError(f"no answer from {host}:{port}: {exc or 'timeout'}", command) from None
            try:
                got_cookie, body = decode_message(data)
            except NgDecodeError:
                continue
            if got_cookie != cookie:
                continue
            if body.get("result") in ("ok", "pong"):
                return body
            raise NgErrorReply(
                str(body.get("error-reason") or body.get("result")), str(body.get("result")), command
            )


def codec_support(binary: str = "rtpengine") -> dict[str, str]:
    """``rtpengine --codecs`` as {codec: support}, e.g. {"AMR-WB": "fully supported"}."""
    out = subprocess.run([binary, "--codecs"], capture_output=True, text=True, timeout=30, check=False).stdout
    result: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, support = line.strip().partition(": ")
        if sep:
            result[name] = support
    return result


class Rtpengine(ManagedProcess):
    """One rtpengine daemon on loopback, in the foreground, with its own ng port and RTP ports."""

    error = RtpengineError
    probe = "ng ping"
    poll_interval = 0.05
    log_limit = _LOG_TAIL

    def __init__(
        self,
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        interfaces: Sequence[str] | None = None,
        ng_port: int | None = None,
        rtp_ports: int = 400,
        port_range: tuple[int, int] | None = None,
        binary: str = "rtpengine",
        log_level: int = 6,
        threads: int = 2,
        media_timeout: int = 60,
        extra_args: Sequence[str] = (),
    ) -> None:
        workdir = Path(workdir)
        self.host = host
        #: ``--interface`` values: "IP" or "NAME/IP" (names select sides with the ng ``direction`` key).
        self.interfaces = list(interfaces) if interfaces else [host]
        self.ng_port = ng_port or free_udp_port(host)
        self.port_min, self.port_max = port_range or free_udp_port_block(rtp_ports, host)
        self.binary = binary
        self.log_level = log_level
        self.threads = threads
        self.media_timeout = media_timeout
        self.extra_args = list(extra_args)
        super().__init__("rtpengine", workdir, workdir / f"rtpengine-{self.ng_port}.log")

    @property
    def ng_address(self) -> tuple[str, int]:
        return (self.host, self.ng_port)

    @property
    def command(self) -> list[str]:
        ng_host = f"[{self.host}]" if ":" in self.host else self.host
        return [
            self.binary, "--config-file=none", "--table=-1", "--foreground", "--log-stderr",
            f"--log-level={self.log_level}", *(f"--interface={i}" for i in self.interfaces),
            f"--listen-ng={ng_host}:{self.ng_port}", f"--port-min={self.port_min}",
            f"--port-max={self.port_max}", f"--num-threads={self.threads}",
            f"--timeout={self.media_timeout}", "--delete-delay=0",
            f"--pidfile={self.workdir / f'rtpengine-{self.ng_port}.pid'}", *self.extra_args,
        ]  # fmt: skip

    def check_installed(self) -> None:
        if shutil.which(self.binary) is None and not os.access(self.binary, os.X_OK):
            raise RtpengineError(f"{self.binary} not found: apt-get install {' '.join(DEBIAN_PACKAGES)}")

    def ready(self) -> bool:
        try:
            ng_request(self.ng_address, "ping", timeout=0.2)
        except NgError:
            return False
        return True

    def start(self, timeout: float = 20.0) -> None:
        """Start in the foreground and wait until the ng port answers ``ping``."""
        if self.process is None:
            self.check_installed()
        super().start(timeout)

    def ng(
        self, command: str, params: Mapping[str, Any] | None = None, timeout: float = 1.0
    ) -> dict[str, Any]:
        """A blocking ng request to this instance."""
        return ng_request(self.ng_address, command, params, timeout)

    def calls(self) -> list[str]:
        """Call-IDs rtpengine holds now (ng ``list``)."""
        return [str(c) for c in self.ng("list", {"limit": 100_000}).get("calls", [])]

    def cpu_seconds(self) -> float:
        """User + system CPU time the daemon (all threads) has used so far (from /proc)."""
        return 0.0 if self.process is None else cpu_seconds(self.process.pid)


# -- synthetic plain-RTP peers (RFC 3550) for media tests and the benchmark ----------------------


@dataclass(frozen=True)
class RtpPacket:
    """An RTP packet without CSRCs or extensions (RFC 3550 §5.1), enough for test peers."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def to_bytes(self) -> bytes:
        return struct.pack(
            "!BBHII", 0x80, (0x80 if self.marker else 0) | self.payload_type, self.sequence & 0xFFFF,
            self.timestamp & 0xFFFFFFFF, self.ssrc,
        ) + self.payload  # fmt: skip

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket | None:
        """The packet, or None for RTCP (RFC 5761 §4: PT 64-95 after the marker bit) and non-RTP."""
        if len(data) < 12 or data[0] >> 6 != 2 or 64 <= data[1] & 0x7F <= 95:
            return None
        first, second, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
        start = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # header extension (RFC 3550 §5.3.1)
            if len(data) < start + 4:
                return None
            start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
        end = len(data) - (data[-1] if first & 0x20 and data else 0)
        return cls(second & 0x7F, seq, ts, ssrc, data[start:end], bool(second & 0x80))


class RtpPeer(asyncio.DatagramProtocol):
    """A plain RTP/AVP endpoint on loopback: describes itself in SDP, sends and records packets."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[RtpPacket] = []
        self.sources: set[tuple[str, int]] = set()
        self.rtcp_datagrams = 0
        self._event = asyncio.Event()

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> RtpPeer:
        peer = cls(host)
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: peer, local_addr=(host, 0))
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (asyncio's selector datagram transport is not a DatagramTransport subclass)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        packet = RtpPacket.parse(data)
        if packet is None:
            self.rtcp_datagrams += 1
            return
        self.received.append(packet)
        self.sources.add((str(addr[0]), int(str(addr[1]))))
        self._event.set()

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def describe(self, codecs: Sequence[Codec], session_id: int = 1) -> SessionDescription:
        """An RTP/AVP audio description of this peer (one m-line, RFC 8866 §5)."""
        origin = Origin("-", str(session_id), 1, "IN", "IP4", self.host)
        sdp = SessionDescription.create(origin, "-", Connection.for_address(self.host))
        media = MediaDescription.create("audio", self.port, "RTP/AVP")
        media.set_codecs(codecs)
        media.direction = "sendrecv"
        sdp.media.append(media)
        return sdp

    def send(self, packet: RtpPacket, address: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(packet.to_bytes(), address)

    async def wait_packets(self, count: int, timeout: float) -> bool:
        """Until ``count`` RTP packets arrived (True) or ``timeout`` seconds passed (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received) < count:
            self._event.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), remaining)
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def rtp_target(sdp: SessionDescription, index: int = 0) -> tuple[str, int]:
    """Where to send RTP for media description ``index`` of ``sdp`` (its c= address and m= port)."""
    media = sdp.media[index]
    connection = sdp.connection_for(media)
    if connection is None:
        raise ValueError("no c= line for the media description")
    return connection.address, media.port
