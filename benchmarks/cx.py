"""Cx throughput of the lab HSS (issue 3): answers per second over TCP, many requests in flight.

The HSS runs alone in a child process (one Python process, uvloop, one thread doing
the work; SQLite file in WAL mode, as ``webims serve labcore`` runs it) with
``--subscribers`` provisioned users. The parent process is a lean pipelined client:
``--connections`` Diameter connections (CER/CEA first), each keeping ``--window``
requests in flight, cycling over the subscribers. Every answer is framed and its
Result-Code checked (2001 expected); errors are counted and reported.

Workloads (each measured for ``--seconds`` after a short warm-up):

* ``mar-digest``  MAR, SIP Digest (HA1 read, no write);
* ``mar-aka``     MAR, Digest-AKAv1-MD5, one vector (Milenage + an SQN write per request);
* ``sar``         SAR REGISTRATION with User-Data (the XML profile built per answer);
* ``mar+sar``     alternating MAR (digest) and SAR, the HSS half of a registration.

Figures: answers/s seen by the client (wall clock) and the HSS process's CPU time over
the same interval, i.e. answers per CPU-second of the one core the HSS uses. Both
processes share this machine's cores, so the wall-clock rate is a lower bound.

    .venv/bin/python benchmarks/cx.py [--seconds 5] [--connections 2] [--window 64]

Complete registrations through the lab I-CSCF/S-CSCF (REGISTER, 401, REGISTER, 200)
per second: ``--registrations`` runs ``benchmarks/labcore_register.py`` afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any, cast

from webims.diameter import (
    Capabilities,
    Message,
    ServerAssignmentType,
    SipAuthDataItem,
    build_cer,
    build_dwa,
    build_mar,
    build_sar,
)

REALM = "ims.test"
SCSCF = "sip:scscf.ims.test:6060"
CAPS = Capabilities("bench-scscf.ims.test", REALM, (ip_address("127.0.0.1"),), product_name="cx-bench")
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OP = bytes.fromhex("cdc202d5123e20f62b6d676ac72cb318")
_IDS = struct.Struct(">II")


# --- the HSS, in its own process -----------------------------------------------------------------


def provision(db: Path, count: int) -> None:
    from webims.labcore.hss import SubscriberSpec, SubscriberStore
    from webims.store import Store

    with Store(db) as store:
        subs = SubscriberStore(store)
        for i in range(count):
            subs.add(
                SubscriberSpec(
                    impi=f"user{i}@{REALM}",
                    impus=(f"sip:user{i}@{REALM}", f"tel:+1555{i:07d}"),
                    password=f"pw{i}",
                    k=K,
                    op=OP,
                )
            )


def server_main(db: str, pipe: multiprocessing.connection.Connection) -> None:
    import uvloop

    from webims.labcore.hss import HssConfig, HssServer, SubscriberStore
    from webims.store import Store

    async def main() -> None:
        store = Store(db)
        hss = HssServer(HssConfig(listen_port=0, admin_port=0), SubscriberStore(store))
        await hss.start()
        pipe.send(hss.port)
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command == "cpu":
                pipe.send((time.process_time(), hss.requests_answered))
            else:
                break
        await hss.stop()
        store.close()

    uvloop.run(main())


# --- the client ------------------------------------------------------------------------------------


def result_code(frame: bytes) -> int | None:
    """Result-Code, or the Experimental-Result-Code, of an answer (top-level AVP scan)."""
    pos, end = 20, len(frame)
    while pos + 8 <= end:
        code = int.from_bytes(frame[pos : pos + 4], "big")
        flags = frame[pos + 4]
        length = int.from_bytes(frame[pos + 5 : pos + 8], "big")
        if length < 8:
            return None
        if code == 268 and not flags & 0x80:
            return int.from_bytes(frame[pos + length - 4 : pos + length], "big")
        if code == 297:
            inner = frame[pos + 8 : pos + length]
            i = 0
            while i + 12 <= len(inner):
                c = int.from_bytes(inner[i : i + 4], "big")
                ln = int.from_bytes(inner[i + 5 : i + 8], "big")
                if c == 298:
                    return int.from_bytes(inner[i + ln - 4 : i + ln], "big")
                i += (ln + 3) & ~3
        pos += (length + 3) & ~3
    return None


@dataclass
class Counters:
    answers: int = 0
    errors: int = 0


class PipelinedClient(asyncio.Protocol):
    """Keeps ``window`` requests in flight on one Diameter connection."""

    def __init__(self, templates: list[bytes], window: int, counters: Counters, offset: int) -> None:
        self.templates = templates
        self.window = window
        self.counters = counters
        self.next = offset
        self.hbh = 1000
        self.buffer = bytearray()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.running = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass it
        self.transport.write(build_cer(CAPS).with_ids(1, 1).encode())

    def start(self) -> None:
        self.running = True
        self.send(self.window)

    def stop(self) -> None:
        self.running = False

    def send(self, n: int) -> None:
        assert self.transport is not None
        out = bytearray()
        for _ in range(n):
            frame = bytearray(self.templates[self.next % len(self.templates)])
            self.next += 1
            self.hbh += 1
            _IDS.pack_into(frame, 12, self.hbh, self.hbh)
            out += frame
        self.transport.write(out)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos = 0
        answered = 0
        while len(buf) - pos >= 20:
            length = int.from_bytes(buf[pos + 1 : pos + 4], "big")
            if len(buf) - pos < length:
                break
            frame = bytes(buf[pos : pos + length])
            pos += length
            command = int.from_bytes(frame[5:8], "big")
            if frame[4] & 0x80:  # a request from the HSS: DWR
                if command == 280 and self.transport is not None:
                    self.transport.write(build_dwa(Message.decode(frame), CAPS.origin_host, REALM).encode())
                continue
            if command == 257:
                if not self.opened.done():
                    if result_code(frame) == 2001:
                        self.opened.set_result(None)
                    else:
                        self.opened.set_exception(ConnectionError("CER refused"))
                continue
            answered += 1
            if result_code(frame) != 2001:
                self.counters.errors += 1
        del buf[:pos]
        self.counters.answers += answered
        if self.running and answered:
            self.send(answered)


def templates(kind: str, count: int) -> list[bytes]:
    out: list[bytes] = []
    routing: dict[str, Any] = {
        "origin_host": CAPS.origin_host,
        "origin_realm": REALM,
        "destination_realm": REALM,
    }
    for i in range(count):
        impi, impu = f"user{i}@{REALM}", f"sip:user{i}@{REALM}"
        sid = f"{CAPS.origin_host};1;{i}"

        def mar(scheme: str, sid: str = sid, impi: str = impi, impu: str = impu) -> bytes:
            item = SipAuthDataItem(authentication_scheme=scheme)
            return build_mar(
                session_id=sid,
                user_name=impi,
                public_identity=impu,
                server_name=SCSCF,
                sip_auth_data_item=item,
                **routing,
            ).encode()

        sar = build_sar(
            session_id=sid,
            user_name=impi,
            public_identities=[impu],
            server_name=SCSCF,
            server_assignment_type=ServerAssignmentType.REGISTRATION,
            **routing,
        ).encode()
        if kind == "mar-digest":
            out.append(mar("SIP Digest"))
        elif kind == "mar-aka":
            out.append(mar("Digest-AKAv1-MD5"))
        elif kind == "sar":
            out.append(sar)
        else:
            out += [mar("SIP Digest"), sar]
    return out


async def measure(
    kind: str, port: int, args: argparse.Namespace, cpu: Callable[[], tuple[float, int]]
) -> tuple[float, float, Counters]:
    loop = asyncio.get_running_loop()
    counters = Counters()
    reqs = templates(kind, args.subscribers)
    clients: list[PipelinedClient] = []
    for c in range(args.connections):
        offset = c * 7919

        def factory(offset: int = offset) -> PipelinedClient:
            return PipelinedClient(reqs, args.window, counters, offset)

        _, proto = await loop.create_connection(factory, "127.0.0.1", port)
        await asyncio.wait_for(proto.opened, 5)
        clients.append(proto)
    for client in clients:
        client.start()
    await asyncio.sleep(args.warmup)
    cpu0, _ = cpu()
    n0, e0, t0 = counters.answers, counters.errors, time.perf_counter()
    await asyncio.sleep(args.seconds)
    cpu1, _ = cpu()
    n1, e1, t1 = counters.answers, counters.errors, time.perf_counter()
    for client in clients:
        client.stop()
    await asyncio.sleep(0.2)
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    return (n1 - n0) / (t1 - t0), (cpu1 - cpu0) / (t1 - t0), Counters(n1 - n0, e1 - e0)


def bench_registrations(args: argparse.Namespace) -> None:
    """Complete registrations per second through the lab I-CSCF/S-CSCF (issue 3 benchmark):
    ``benchmarks/labcore_register.py`` (SIPp against the whole lab core), MD5 and TNA."""
    script = Path(__file__).with_name("labcore_register.py")
    for mode in ("md5", "tna"):
        command = [sys.executable, str(script), "--mode", mode, "--subscribers", str(args.subscribers)]
        subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--window", type=int, default=64, help="requests in flight per connection")
    parser.add_argument(
        "--workloads", default="mar-digest,mar-aka,sar,mar+sar", help="comma-separated (see the docstring)"
    )
    parser.add_argument(
        "--registrations", action="store_true", help="then run benchmarks/labcore_register.py (needs SIPp)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "hss.sqlite3"
        provision(db, args.subscribers)
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=server_main, args=(str(db), child), daemon=True)
        proc.start()
        port = parent.recv()

        def cpu() -> tuple[float, int]:
            parent.send("cpu")
            value: tuple[float, int] = parent.recv()
            return value

        async def run_all() -> None:
            in_flight = args.connections * args.window
            print(
                f"HSS pid {proc.pid}, {args.subscribers} subscribers, {args.connections} connections x "
                f"{args.window} in flight = {in_flight}, {args.seconds:g} s per workload"
            )
            for kind in args.workloads.split(","):
                rate, cpu_share, counts = await measure(kind, port, args, cpu)
                per_core = rate / cpu_share if cpu_share else float("nan")
                print(
                    f"{kind:>10}: {rate:9,.0f} answers/s  HSS CPU {cpu_share:4.2f} core  "
                    f"-> {per_core:9,.0f} answers per HSS CPU-second  errors {counts.errors}"
                )

        try:
            import uvloop

            uvloop.run(run_all())
        finally:
            parent.send("stop")
            proc.join(10)
    if args.registrations:
        bench_registrations(args)


if __name__ == "__main__":
    main()
