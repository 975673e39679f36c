"""Registration benchmark: ``webims bench register`` (also ``benchmarks/register.py``).

Three processes on loopback, so that the gateway's own cost can be measured:

- the lab IMS core (HSS + I-CSCF + S-CSCF, :func:`webims.labcore.start_labcore`);
- the gateway (WSS with a self-signed certificate, SQLite registration state,
  tokens verified against the authorization function's keys in its SQLite store);
- this process: N WSS clients (a minimal RFC 6455 client on asyncio streams, each
  from its own 127.x.y.z source address) that connect, then register at the target
  rate in ``web-token`` (``Authorization: Bearer``, TNA toward the IMS) or
  ``ims-digest`` mode (REGISTER, 401, REGISTER with the answer: relayed both ways).

Reported: registrations per second (completed over the registration phase),
latency p50/p95/p99 (client side, REGISTER sent -> final 200), failures, gateway
CPU milliseconds per registration (utime+stime of the gateway process over the
registration phase, from /proc), and gateway memory per connected idle registered
WIC ((RSS after - RSS before the clients) / N). The last line is JSON.

    webims bench register --clients 2000 --rate 500 --mode web-token

The gateway runs with :class:`webims.transport.loop.GcPolicy`, as ``webims serve``
should. ``--ims stub`` answers REGISTER and SUBSCRIBE at once (its Service-Route names
itself, so the reg-event SUBSCRIBE is answered too): the gateway's own cost.

Diagnostics (environment variables; each costs CPU, so not for the figures):

- ``WEBIMS_BENCH_PROFILE=file``: cProfile of the gateway over the registration phase;
- ``WEBIMS_BENCH_CALLTREE=file``: Python calls by call path over the registration phase;
- ``WEBIMS_BENCH_PYSPY=prefix`` / ``WEBIMS_BENCH_PERF=prefix``: py-spy (GIL holder) or
  ``perf record`` (cpu-clock) samples of the gateway over the registration phase
  (``WEBIMS_BENCH_PYSPY_RATE``: py-spy samples per second, 250 by default;
  ``WEBIMS_BENCH_PYSPY_NATIVE=1``: with native frames, which names the compiled functions;
  ``WEBIMS_BENCH_PERF_CALLGRAPH=dwarf``: perf call stacks unwound from DWARF, which names the
  callers inside libpython and the compiled modules; frame pointers by default;
  ``WEBIMS_BENCH_PERF_ARGS``: other ``perf record`` event options than
  ``-e cpu-clock -F 2000``, e.g. ``-e raw_syscalls:sys_enter -c 1`` to count system calls);
- ``WEBIMS_BENCH_OBJECTS=1`` (``=garbage``): gc-tracked objects, pymalloc and malloc
  statistics at start, connected and registered (and the cyclic garbage made meanwhile);
- ``WEBIMS_BENCH_TRACEMALLOC=1`` (``=connect``): allocation sites of registering (connecting);
- ``WEBIMS_BENCH_GC=1``: time spent in each GC generation, logged every second;
- ``WEBIMS_BENCH_GC_DEFAULT=1`` / ``WEBIMS_BENCH_MMAP=0``: CPython's own collector settings /
  glibc's own mmap threshold, to measure what :class:`GcPolicy` changes.
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
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webims.native import compiled

__all__ = ["add_arguments", "main", "run"]

REALM = "ims.test"
ISSUER = "https://127.0.0.1:9443"
ORIGIN = "https://bench.example"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=1000, help="WSS clients (WICs), each registering once")
    parser.add_argument("--rate", type=float, default=1000.0, help="target registrations per second")
    parser.add_argument("--mode", choices=("web-token", "ims-digest", "both"), default="both")
    parser.add_argument("--connect-rate", type=float, default=1000.0, help="new WSS connections per second")
    parser.add_argument(
        "--no-reg-event", action="store_true", help="gateway does not SUBSCRIBE to reg events"
    )
    parser.add_argument(
        "--ims", choices=("labcore", "stub"), default="labcore",
        help="labcore: the lab IMS core; stub: a registrar answering 200 at once (the gateway's own limit)",
    )  # fmt: skip
    parser.add_argument(
        "--topology", choices=("p-cscf", "behind-p-cscf"), default="p-cscf",
        help="p-cscf: the gateway is the P-CSCF (Mw to the I-CSCF); behind-p-cscf: seed 004, it "
        "registers each WIC as a UE with its own Mw flow (the I-CSCF, or the stub, stands in for the P-CSCF)",
    )
    parser.add_argument("--idle", type=float, default=6.0, help="seconds idle before measuring memory")
    parser.add_argument("--workdir", type=Path, default=None, help="keep databases and logs here")


# --------------------------------------------------------------------------- /proc measurements


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def threads_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process's threads other than its main one (e.g. the SQLite writer)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        if task.name == str(pid):
            continue
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP (the IMS side listens on both)."""
    from webims.testing.ports import free_port as free

    return free(host)


# --------------------------------------------------------------------------- a small WebSocket client



def client_frame(data: bytes, opcode: int = 0x1) -> bytes:
    """One masked client frame (RFC 6455 §5.2); a zero masking key leaves the payload as it is."""
    n = len(data)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + b"\0\0\0\0" + data

class WsClient:
    """One WIC: TLS + RFC 6455 client framing (zero masking key) + just enough SIP."""

    def __init__(self, index: int, host: str, port: int, context: ssl.SSLContext) -> None:
        self.index = index
        self.host = host
        self.port = port
        self.context = context
        self.user = f"b{index}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.waiter: asyncio.Future[bytes] | None = None
        self.task: asyncio.Task[None] | None = None
        self.local = f"127.{1 + index // 60000}.{(index // 240) % 250}.{index % 240 + 1}"
        self.cseq = 0
        self.call_id = secrets.token_hex(8)
        self.tag = secrets.token_hex(4)
        self.contact = (
            f"<sip:{secrets.token_hex(4)}@{secrets.token_hex(5)}.invalid;transport=ws>;reg-id=1;"
            f'+sip.instance="<urn:uuid:00000000-0000-4000-8000-{index:012d}>"'
        )

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.context, local_addr=(self.local, 0), server_hostname="localhost",
            limit=16384)  # fmt: skip
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.writer.write(
            f"GET /sip HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n"
            f"Origin: {ORIGIN}\r\n\r\n".encode())  # fmt: skip
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.reader is not None
        reader = self.reader
        try:
            while True:
                b0, b1 = await reader.readexactly(2)
                length = b1 & 0x7F
                if length == 126:
                    length = int.from_bytes(await reader.readexactly(2), "big")
                elif length == 127:
                    length = int.from_bytes(await reader.readexactly(8), "big")
                payload = await reader.readexactly(length)
                opcode = b0 & 0x0F
                if opcode == 0x8:
                    break
                if opcode == 0x9:  # ping -> pong
                    self._send(payload, 0xA)
                    continue
                if opcode in (0x1, 0x2) and payload.startswith(b"SIP/2.0 "):
                    if payload[8:9] == b"1":
                        continue
                    waiter = self.waiter
                    if waiter is not None and not waiter.done():
                        waiter.set_result(payload)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(ConnectionError("closed"))

    def _send(self, data: bytes, opcode: int = 0x1) -> None:
        assert self.writer is not None
        self.writer.write(client_frame(data, opcode))

    async def request(self, headers: str) -> bytes:
        self.cseq += 1
        host = f"{self.user}.invalid"
        message = (
            f"REGISTER sip:{REALM} SIP/2.0\r\n"
            f"Via: SIP/2.0/WSS {host};branch=z9hG4bK{secrets.token_hex(6)}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:{self.user}@{REALM}>;tag={self.tag}\r\nTo: <sip:{self.user}@{REALM}>\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {self.cseq} REGISTER\r\nContact: {self.contact}\r\n"
            "Expires: 3600\r\n"
            f"Supported: path, outbound\r\n{headers}Content-Length: 0\r\n\r\n"
        ).encode()  # fmt: skip
        self.waiter = asyncio.get_running_loop().create_future()
        self._send(message)
        return await self.waiter

    async def register(self, mode: str, secret: str) -> int:
        if mode == "web-token":
            answer = await self.request(f"Authorization: Bearer {secret}\r\n")
            return int(answer[8:11])
        first = await self.request("")
        if first[8:11] != b"401":
            return int(first[8:11])
        from webims.sip.digest import compute_ha1, compute_response

        text = first.decode()
        nonce = text.split('nonce="', 1)[1].split('"', 1)[0]
        uri = f"sip:{REALM}"
        impi = f"{self.user}@{REALM}"
        response = compute_response(
            ha1=compute_ha1(impi, REALM, secret),
            nonce=nonce,
            method="REGISTER",
            uri=uri,
            qop="auth",
            nc=1,
            cnonce="0a1b2c3d",
        )
        auth = (
            f'Authorization: Digest username="{impi}", realm="{REALM}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, cnonce="0a1b2c3d", qop=auth, nc=00000001\r\n'
        )
        second = await self.request(auth)
        return int(second[8:11])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.task is not None:
            self.task.cancel()


# --------------------------------------------------------------------------- child processes


def _provision_hss(path: Path, n: int) -> None:
    """HSS subscribers b0..b(n-1) with digest passwords pw0..pw(n-1), in one transaction."""
    from webims.labcore.hss import SubscriberSpec, SubscriberStore
    from webims.store import Store

    hss_store = Store(path)
    subs = SubscriberStore(hss_store, default_realm=REALM)

    def add_all(db: Any) -> None:
        for i in range(n):
            subs.add(SubscriberSpec(f"b{i}@{REALM}", (f"sip:b{i}@{REALM}",), password=f"pw{i}"))

    hss_store.write(add_all)
    hss_store.close()


def _provision(workdir: Path, n: int) -> list[str]:
    """One access token per subscriber (ES256, signed with the authorization function's key)."""
    from joserfc import jwt

    from webims.auth.service import AuthService, ServiceSettings
    from webims.store import Store

    state = Store(workdir / "webims.sqlite3")
    auth = AuthService(state, ServiceSettings(issuer=ISSUER), register_wic=False)
    key = auth.keys.signing_key()
    now = int(time.time())
    tokens = []
    for i in range(n):
        claims = {"iss": ISSUER, "sub": f"web{i}", "aud": "webims", "exp": now + 7200, "iat": now,
                  "jti": secrets.token_urlsafe(12), "scope": "register call message", "client_id": "wic",
                  "impi": f"b{i}@{REALM}", "impu": [f"sip:b{i}@{REALM}"]}  # fmt: skip
        tokens.append(
            jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, claims, key, algorithms=["ES256"])
        )
    state.close()
    return tokens


def _child_labcore(workdir: Path, hss_db: str, icscf_port: int, scscf_port: int) -> None:
    from webims.config import load_config
    from webims.labcore import start_labcore
    from webims.labcore.hss import SubscriberStore
    from webims.store import Store
    from webims.transport.loop import GcPolicy
    from webims.transport.loop import run as run_loop

    env = {
        "WEBIMS_STATE__DIR": str(workdir), "WEBIMS_HSS__LISTEN_PORT": "0", "WEBIMS_HSS__ADMIN_PORT": "0",
        "WEBIMS_LABCORE__ICSCF_PORT": str(icscf_port), "WEBIMS_LABCORE__SCSCF_PORT": str(scscf_port),
        "WEBIMS_LABCORE__MEDIA_INTERWORKING": "off", "WEBIMS_LABCORE__TRUSTED_NODES": "127.0.0.1",
    }  # fmt: skip

    async def main() -> None:
        store = Store(workdir / hss_db)
        core = await start_labcore(
            load_config(None, environ=env), subscribers=SubscriberStore(store), iwf=None
        )
        print("READY", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await core.stop()

    run_loop(main(), gc_policy=GcPolicy())  # as ``webims serve labcore`` runs it


_STUB_SEEN: list[bytes] = []


class _StubRegistrar(asyncio.DatagramProtocol):
    """Answers REGISTER and SUBSCRIBE with 200 at once (no HSS, no authentication): the gateway's own cost."""

    transport: asyncio.DatagramTransport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        _STUB_SEEN.append(data[:9])
        head, _, _ = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        method = lines[0].split(b" ", 1)[0]
        if method not in (b"REGISTER", b"SUBSCRIBE"):
            return
        keep = []
        contact = b""
        for line in lines[1:]:
            name = line.split(b":", 1)[0].strip().lower()
            if name in (b"via", b"from", b"call-id", b"cseq"):
                keep.append(line)
            elif name == b"to":
                keep.append(line + b";tag=stub")
            elif name == b"contact":
                contact = line
        extra = b""
        if method == b"REGISTER":
            aor = next(line for line in lines if line.lower().startswith(b"to:")).split(b":", 1)[1].strip()
            port = str(self.transport.get_extra_info("sockname")[1]).encode()
            # the Service-Route names this stub, so that the reg-event SUBSCRIBE along it is answered
            extra = (contact + b"\r\nService-Route: <sip:orig@127.0.0.1:" + port
                     + b";lr>\r\nP-Associated-URI: " + aor + b"\r\n")  # fmt: skip
        else:
            extra = b"Expires: 600000\r\nContact: <sip:stub@127.0.0.1>\r\n"
        reply = b"SIP/2.0 200 OK\r\n" + b"\r\n".join(keep) + b"\r\n" + extra + b"Content-Length: 0\r\n\r\n"
        self.transport.sendto(reply, addr)


def _child_stub(port: int) -> None:
    from webims.transport.loop import run as run_loop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(_StubRegistrar, local_addr=("127.0.0.1", port))
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print("READY", flush=True)
        await stop.wait()
        from collections import Counter

        print(f"stub saw {len(_STUB_SEEN)} datagrams: {Counter(_STUB_SEEN).most_common(5)}", file=sys.stderr)

    run_loop(main())


def _child_gateway(
    workdir: Path, wss_port: int, mw_port: int, icscf_port: int, clients: int, reg_event: bool,
    topology: str = "p-cscf",
) -> None:
    from webims.auth.service import AuthService, ServiceSettings
    from webims.store import Store
    from webims.transport import ConnectionLimits, ensure_self_signed, server_context
    from webims.transport.loop import run as run_loop

    from .core import Gateway
    from .run import connections_that_fit, descriptors_needed, raise_nofile, running_gateway
    from .settings import GatewayConfig
    from .state import SqliteRegistrationStore

    behind = topology == "behind-p-cscf"

    async def main() -> None:
        config = GatewayConfig(
            icscf=f"sip:127.0.0.1:{icscf_port}", mw_port=mw_port, subscribe_reg_event=reg_event,
            topology="behind-p-cscf" if behind else "p-cscf",
            pcscf=f"sip:127.0.0.1:{icscf_port}" if behind else "",
            register_rate=100.0, register_burst=100,
            source_register_rate=1e6, source_register_burst=1_000_000,
            ims_timeout=30.0, grace_period=600.0,
        )  # fmt: skip
        auth = AuthService(
            Store(workdir / "webims.sqlite3"), ServiceSettings(issuer=ISSUER), register_wic=False
        )
        # as build_gateway: behind a P-CSCF a Mw socket per WIC too; no more WICs than fit
        need = descriptors_needed(config, clients + 100)
        have = raise_nofile(need)
        max_connections = clients + 100 if have >= need else connections_that_fit(config, have)
        gateway = Gateway(
            config, store=SqliteRegistrationStore(Store(workdir / "gateway.sqlite3")), auth=auth,
            connection_limits=ConnectionLimits(
                max_connections=max_connections, max_connections_per_source=1000, idle_timeout=None
            ),
        )  # fmt: skip
        cert, key = ensure_self_signed(workdir / "tls")
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        snapshots: list[Any] = []
        if os.environ.get("WEBIMS_BENCH_OBJECTS"):
            from collections import Counter

            def count() -> Counter[str]:
                gc.collect()
                sys._debugmallocstats()  # pymalloc arenas and blocks, on stderr
                print(f"RSS now {rss_bytes(os.getpid()) >> 10} KiB", file=sys.stderr)
                import ctypes

                class _Mallinfo2(ctypes.Structure):
                    _fields_ = [(n, ctypes.c_size_t) for n in (
                        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                        "fordblks", "keepcost")]  # fmt: skip

                libc = ctypes.CDLL("libc.so.6")
                libc.mallinfo2.restype = _Mallinfo2
                mi = libc.mallinfo2()
                print(f"malloc: heap {mi.arena >> 10} KiB (in use {mi.uordblks >> 10}, "
                      f"free {mi.fordblks >> 10}), mmapped {mi.hblks} chunks {mi.hblkhd >> 10} KiB",
                      file=sys.stderr)  # fmt: skip
                return Counter(type(o).__qualname__ for o in gc.get_objects())

            def objects_diff() -> None:
                import ctypes

                rss0 = rss_bytes(os.getpid())
                gc.collect()
                rss1 = rss_bytes(os.getpid())
                ctypes.CDLL("libc.so.6").malloc_trim(0)
                rss2 = rss_bytes(os.getpid())
                print(f"RSS {rss0 >> 10} KiB, after gc.collect {rss1 >> 10}, after malloc_trim {rss2 >> 10}",
                      file=sys.stderr)  # fmt: skip
                now = count()
                print(f"gc-tracked objects: {sum(now.values())} (at start {sum(snapshots[0].values())}, "
                      f"connected {sum(snapshots[-1].values())})", file=sys.stderr)  # fmt: skip
                if gc.garbage:
                    kinds = Counter(type(o).__qualname__ for o in gc.garbage)
                    print(f"cyclic garbage since connected: {len(gc.garbage)} objects", file=sys.stderr)
                    for name, n in kinds.most_common(30):
                        print(f"{n:9d} {name}", file=sys.stderr)
                    frames = Counter(
                        f"{o.f_code.co_filename.rsplit('/', 2)[-1]}:{o.f_code.co_name}"
                        for o in gc.garbage
                        if type(o).__name__ == "frame"
                    )
                    for name, n in frames.most_common(20):
                        print(f"   frame {n:7d} {name}", file=sys.stderr)
                for label, base in (("connected", snapshots[0]), ("registered", snapshots[-1])):
                    diff = (now if label == "registered" else snapshots[-1]) - base
                    print(f"-- {label}: +{sum(diff.values())}", file=sys.stderr)
                    for name, n in diff.most_common(25):
                        print(f"{n:9d} {name}", file=sys.stderr)

            snapshots.append(count())

            def connected() -> None:
                snapshots.append(count())
                if os.environ.get("WEBIMS_BENCH_OBJECTS") == "garbage":
                    gc.set_debug(gc.DEBUG_SAVEALL)  # cyclic garbage of the registrations lands in gc.garbage

            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, connected)
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, objects_diff)
        if os.environ.get("WEBIMS_BENCH_TRACEMALLOC"):
            import tracemalloc

            # =connect: what connecting costs (start -> connected); else what registering costs
            by_connect = os.environ["WEBIMS_BENCH_TRACEMALLOC"] == "connect"

            def diff() -> None:
                stats = tracemalloc.take_snapshot().compare_to(snapshots[0], "lineno")
                for stat in stats[:45]:
                    print(stat, file=sys.stderr)

            if by_connect:
                snapshots.append(tracemalloc.take_snapshot())
                asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, diff)
            else:
                asyncio.get_running_loop().add_signal_handler(
                    signal.SIGUSR1, lambda: snapshots.append(tracemalloc.take_snapshot())
                )
                asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, diff)
        if os.environ.get("WEBIMS_BENCH_CALLTREE"):
            _call_tree(os.environ["WEBIMS_BENCH_CALLTREE"])
        profile = os.environ.get("WEBIMS_BENCH_PROFILE")
        if profile:  # cProfile over the registration phase only (the driver signals its start and end)
            import cProfile

            prof = cProfile.Profile(time.process_time)

            def stop_profile() -> None:
                prof.disable()
                prof.dump_stats(profile)

            asyncio.get_running_loop().add_signal_handler(signal.SIGRTMIN, prof.enable)
            asyncio.get_running_loop().add_signal_handler(signal.SIGRTMIN + 1, stop_profile)
        async with running_gateway(
            gateway, port=wss_port, ssl_context=server_context(cert, key), origins=[ORIGIN]
        ):
            print("READY", flush=True)
            await stop.wait()

    if os.environ.get("WEBIMS_BENCH_TRACEMALLOC"):
        import tracemalloc

        tracemalloc.start()
    if os.environ.get("WEBIMS_BENCH_GC"):
        _gc_stats()
    if os.environ.get("WEBIMS_BENCH_GC_DEFAULT"):  # CPython's own collector settings
        run_loop(main())
        return
    from webims.transport.loop import GcPolicy

    # WEBIMS_BENCH_MMAP=0: leave glibc's mmap threshold alone (to measure what it saves and costs)
    policy = GcPolicy(mmap_threshold=None) if os.environ.get("WEBIMS_BENCH_MMAP") == "0" else GcPolicy()
    run_loop(main(), gc_policy=policy)


def _call_tree(path: str) -> None:
    """``WEBIMS_BENCH_CALLTREE=file``: count Python calls over the registration phase by call path
    (three levels below each callback the loop runs), written to ``file`` at the end."""
    from collections import Counter

    counts: Counter[tuple[str, ...]] = Counter()
    depth_stack: list[str] = []

    def name(frame: Any) -> str:
        code = frame.f_code
        return f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}"

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            label = name(frame) if event == "call" else f"C:{getattr(arg, '__qualname__', arg)}"
            depth_stack.append(label)
            counts[tuple(depth_stack[:8])] += 1
        elif event in ("return", "c_return", "c_exception") and depth_stack:
            depth_stack.pop()

    def start() -> None:
        depth_stack.clear()
        sys.setprofile(tracer)

    def stop() -> None:
        sys.setprofile(None)
        totals: Counter[tuple[str, ...]] = Counter()
        for key, n in counts.items():
            for i in range(1, len(key) + 1):
                totals[key[:i]] += n
        children: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for key in totals:
            children.setdefault(key[:-1], []).append(key)
        with open(path, "w") as out:

            def walk(parent: tuple[str, ...]) -> None:
                for key in sorted(children.get(parent, ()), key=lambda k: -totals[k]):
                    out.write(f"{totals[key]:9d} {'  ' * (len(key) - 1)}{key[-1]}\n")
                    walk(key)

            walk(())

    asyncio.get_running_loop().add_signal_handler(signal.SIGRTMIN + 2, start)
    asyncio.get_running_loop().add_signal_handler(signal.SIGRTMIN + 3, stop)


def _gc_stats() -> None:
    """``WEBIMS_BENCH_GC=1``: log the time the gateway spends in each GC generation (stderr, per second)."""
    import threading

    spent = [0.0, 0.0, 0.0]
    count = [0, 0, 0]
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            gen = info["generation"]
            spent[gen] += time.perf_counter() - started[0]
            count[gen] += 1

    gc.callbacks.append(callback)

    def report() -> None:
        while True:
            time.sleep(1.0)
            print(f"gc ms {[round(1000 * s, 1) for s in spent]} count {count}", file=sys.stderr, flush=True)

    threading.Thread(target=report, daemon=True).start()


def _spawn(*args: str, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "webims.gateway.bench", *args], stdout=subprocess.PIPE,
                            stderr=out)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if b"READY" not in line:
        proc.kill()
        raise RuntimeError(f"{args[0]} did not start; see {log}:\n{log.read_text()[-3000:]}")
    return proc


# --------------------------------------------------------------------------- the run


@dataclass
class Result:
    mode: str
    clients: int
    target_rate: float
    registrations: int = 0
    failures: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    system_seconds: float = 0.0  # of cpu_seconds, in the kernel (loopback delivery to the peers too)
    threads_seconds: float = 0.0  # of cpu_seconds, in threads other than the event loop's
    rss_before: int = 0
    rss_after: int = 0
    rss_connected: int = 0
    ims_cpu_seconds: float = 0.0
    driver_cpu_seconds: float = 0.0
    connect_failures: int = 0
    topology: str = "p-cscf"

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else 0.0

        return {
            "mode": self.mode, "topology": self.topology, "clients": self.clients,
            "target_rate": self.target_rate,
            "registrations": self.registrations, "failures": self.failures + self.connect_failures,
            "registrations_per_s": round(self.registrations / self.seconds, 1) if self.seconds else 0.0,
            "latency_ms_p50": pct(0.50), "latency_ms_p95": pct(0.95), "latency_ms_p99": pct(0.99),
            "gateway_cpu_ms_per_registration": round(1000 * self.cpu_seconds / max(1, self.registrations), 3),
            "gateway_system_cpu_ms_per_registration": round(
                1000 * self.system_seconds / max(1, self.registrations), 3),
            "gateway_threads_cpu_ms_per_registration": round(
                1000 * self.threads_seconds / max(1, self.registrations), 3),
            "ims_cpu_ms_per_registration": round(1000 * self.ims_cpu_seconds / max(1, self.registrations), 3),
            "clients_cpu_ms_per_registration": round(
                1000 * self.driver_cpu_seconds / max(1, self.registrations), 3),
            "gateway_kib_per_wic": round((self.rss_after - self.rss_before) / 1024 / max(1, self.clients), 1),
            "gateway_kib_per_connection_unregistered": round(
                (self.rss_connected - self.rss_before) / 1024 / max(1, self.clients), 1),
            "compiled": compiled(),  # webims.native: the mypyc build, or pure Python
        }  # fmt: skip


async def _drive(
    mode: str, secrets_: Sequence[str], options: argparse.Namespace, wss_port: int, gw_pid: int, ims_pid: int
) -> Result:
    n = options.clients
    result = Result(mode, n, options.rate, topology=options.topology)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    clients = [WsClient(i, "127.0.0.1", wss_port, context) for i in range(n)]
    gc.collect()
    await asyncio.sleep(0.5)
    result.rss_before = rss_bytes(gw_pid)
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(200)

    async def connect(c: WsClient) -> bool:
        async with sem:
            try:
                await c.connect()
                return True
            except (OSError, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
                return False

    start = loop.time()
    tasks = []
    for i, c in enumerate(clients):
        delay = start + i / options.connect_rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(connect(c)))
    connected = await asyncio.gather(*tasks)
    result.connect_failures = connected.count(False)
    await asyncio.sleep(1.0)
    result.rss_connected = rss_bytes(gw_pid)
    if os.environ.get("WEBIMS_BENCH_TRACEMALLOC") or os.environ.get("WEBIMS_BENCH_OBJECTS"):
        os.kill(gw_pid, signal.SIGUSR1)
        await asyncio.sleep(2.0)
    live = [c for c, ok in zip(clients, connected, strict=True) if ok]

    async def register(c: WsClient) -> None:
        t0 = loop.time()
        try:
            status = await asyncio.wait_for(c.register(mode, secrets_[c.index]), 60)
        except (TimeoutError, ConnectionError):
            result.failures += 1
            return
        if status == 200:
            result.latencies.append(loop.time() - t0)
            result.registrations += 1
        else:
            result.failures += 1

    spy = _start_py_spy(gw_pid, mode) or _start_perf(gw_pid, mode)
    if os.environ.get("WEBIMS_BENCH_PROFILE"):
        os.kill(gw_pid, signal.SIGRTMIN)
    if os.environ.get("WEBIMS_BENCH_CALLTREE"):
        os.kill(gw_pid, signal.SIGRTMIN + 2)
    cpu0 = cpu_seconds(gw_pid)
    sys0 = cpu_split(gw_pid)[1]
    threads0 = threads_cpu_seconds(gw_pid)
    ims0 = cpu_seconds(ims_pid)
    own0 = cpu_seconds(os.getpid())
    start = loop.time()
    registering: list[asyncio.Future[None]] = []
    for i, c in enumerate(live):
        delay = start + i / options.rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        registering.append(asyncio.ensure_future(register(c)))
    await asyncio.gather(*registering)
    result.seconds = loop.time() - start
    result.cpu_seconds = cpu_seconds(gw_pid) - cpu0
    result.system_seconds = cpu_split(gw_pid)[1] - sys0
    result.threads_seconds = threads_cpu_seconds(gw_pid) - threads0
    result.ims_cpu_seconds = cpu_seconds(ims_pid) - ims0
    result.driver_cpu_seconds = cpu_seconds(os.getpid()) - own0
    _stop_py_spy(spy)
    if os.environ.get("WEBIMS_BENCH_PROFILE"):
        os.kill(gw_pid, signal.SIGRTMIN + 1)
    if os.environ.get("WEBIMS_BENCH_CALLTREE"):
        os.kill(gw_pid, signal.SIGRTMIN + 3)
        await asyncio.sleep(1.0)
    await asyncio.sleep(options.idle)
    result.rss_after = rss_bytes(gw_pid)
    if os.environ.get("WEBIMS_BENCH_TRACEMALLOC") or os.environ.get("WEBIMS_BENCH_OBJECTS"):
        os.kill(gw_pid, signal.SIGUSR2)
        await asyncio.sleep(3.0)
    for c in clients:
        c.close()
    return result


def _start_py_spy(pid: int, mode: str) -> subprocess.Popen[bytes] | None:
    """``WEBIMS_BENCH_PYSPY=prefix``: sample the gateway with py-spy over the registration phase
    only (raw folded stacks in ``prefix-<mode>.txt``; py-spy from the dev dependencies)."""
    prefix = os.environ.get("WEBIMS_BENCH_PYSPY")
    if not prefix:
        return None
    exe = Path(sys.executable).with_name("py-spy")
    proc = subprocess.Popen(
        [str(exe), "record", "-p", str(pid), "-r", os.environ.get("WEBIMS_BENCH_PYSPY_RATE", "250"), "--gil",
         "-f", "raw", "-o", f"{prefix}-{mode}.txt",
         *(["--native"] if os.environ.get("WEBIMS_BENCH_PYSPY_NATIVE") else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)  # attached before the first REGISTER
    return proc


def _start_perf(pid: int, mode: str) -> subprocess.Popen[bytes] | None:
    """``WEBIMS_BENCH_PERF=prefix``: ``perf record`` (cpu-clock) of the gateway over the registration
    phase, in ``prefix-<mode>.data``."""
    prefix = os.environ.get("WEBIMS_BENCH_PERF")
    if not prefix:
        return None
    proc = subprocess.Popen(
        ["perf", "record", *(os.environ.get("WEBIMS_BENCH_PERF_ARGS") or "-e cpu-clock -F 2000").split(),
         "--call-graph", os.environ.get("WEBIMS_BENCH_PERF_CALLGRAPH", "fp"), "-p", str(pid),
         "-o", f"{prefix}-{mode}.data"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    return proc


def _stop_py_spy(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def run(options: argparse.Namespace) -> list[dict[str, Any]]:
    from webims.transport.loop import run as run_loop

    from .run import raise_nofile

    raise_nofile(options.clients + 1000)
    modes = ["web-token", "ims-digest"] if options.mode == "both" else [options.mode]
    workdir_ctx: Any = (contextlib.nullcontext(options.workdir) if options.workdir is not None
                        else tempfile.TemporaryDirectory(prefix="webims-bench-"))  # fmt: skip
    summaries = []
    with workdir_ctx as wd:
        workdir = Path(wd)
        workdir.mkdir(parents=True, exist_ok=True)
        tokens = _provision(workdir, options.clients)
        passwords = [f"pw{i}" for i in range(options.clients)]
        for mode in modes:
            icscf, scscf, wss, mw = free_port(), free_port(), free_port(), free_port()
            for name in ("gateway.sqlite3", "gateway.sqlite3-wal", "gateway.sqlite3-shm"):
                (workdir / name).unlink(missing_ok=True)
            hss_db = f"hss-{mode}.sqlite3"  # fresh registration state in the HSS for each run
            for suffix in ("", "-wal", "-shm"):
                (workdir / (hss_db + suffix)).unlink(missing_ok=True)
            if options.ims == "stub":
                core = _spawn("child-stub", str(icscf), log=workdir / f"stub-{mode}.log")
            else:
                _provision_hss(workdir / hss_db, options.clients)
                core = _spawn("child-labcore", str(workdir), hss_db, str(icscf), str(scscf),
                              log=workdir / f"labcore-{mode}.log")  # fmt: skip
            try:
                gateway = _spawn(
                    "child-gateway",
                    str(workdir),
                    str(wss),
                    str(mw),
                    str(icscf),
                    str(options.clients),
                    "0" if options.no_reg_event else "1",
                    options.topology,
                    log=workdir / f"gateway-{mode}.log",
                )
                try:
                    secrets_ = tokens if mode == "web-token" else passwords
                    result = run_loop(_drive(mode, secrets_, options, wss, gateway.pid, core.pid))
                finally:
                    gateway.terminate()
                    gateway.wait(10)
            finally:
                core.terminate()
                core.wait(10)
            summary = result.summary()
            summary["ims"] = options.ims
            summaries.append(summary)
            print(
                f"[{mode}] {summary['registrations']} registrations of {options.clients} WICs in "
                f"{result.seconds:.2f} s: {summary['registrations_per_s']} reg/s (target {options.rate}), "
                f"failures {summary['failures']}"
            )
            print(
                f"[{mode}] latency ms p50 {summary['latency_ms_p50']} p95 {summary['latency_ms_p95']} "
                f"p99 {summary['latency_ms_p99']}"
            )
            print(
                f"[{mode}] gateway CPU {summary['gateway_cpu_ms_per_registration']} ms/registration, "
                f"memory {summary['gateway_kib_per_wic']} KiB per connected idle WIC"
            )
    return summaries


def main(options: argparse.Namespace) -> int:
    summaries = run(options)
    print(json.dumps(summaries[0] if len(summaries) == 1 else {"runs": summaries}))
    return 0 if all(s["failures"] == 0 for s in summaries) else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child-stub":
        _child_stub(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "child-labcore":
        _child_labcore(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "child-gateway":
        _child_gateway(
            Path(sys.argv[2]),
            int(sys.argv[3]),
            int(sys.argv[4]),
            int(sys.argv[5]),
            int(sys.argv[6]),
            sys.argv[7] == "1",
            sys.argv[8] if len(sys.argv) > 8 else "p-cscf",
        )
    else:
        parser = argparse.ArgumentParser(
            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        add_arguments(parser)
        sys.exit(main(parser.parse_args()))
