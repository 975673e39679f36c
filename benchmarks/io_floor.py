"""The I/O floor of a web-token registration on this machine (issue 5).

What would a gateway that does no SIP work at all still spend per registration, with the
messages of ``webims bench register --ims labcore --mode web-token`` on the same
transports? Per registration, in the "gateway" process (uvloop, one thread, as the
gateway runs):

- one WebSocket frame in over TLS (the WIC's REGISTER, 640 octets, masked: RFC 6455 §5.3),
- ES256 verification of the WIC's JWT (``cryptography``, as ``webims.auth.verify``),
- UDP to and from the "core": REGISTER out (770 octets), 200 in (575), SUBSCRIBE out
  (544), 200 in (323), NOTIFY in (918), 200 out (276): the sizes captured from the lab
  core,
- one WebSocket frame out over TLS (the 200 OK, 600 octets).

No SIP parsing, no transactions, no state: bytes are only moved (and unmasked). The
"core" answers at once from its own process; the clients (``--clients`` TLS connections,
one registration each, at ``--rate``) run in a third. It prints the gateway's CPU
milliseconds per registration (user and system, from ``/proc``), the last line as JSON.
The difference to ``webims bench register``'s figure is what webims' SIP work costs.

    .venv/bin/python benchmarks/io_floor.py --clients 4000 --rate 1000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import ssl
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from webims.transport import ensure_self_signed, server_context

SIZES = {"register": 770, "ok_register": 575, "subscribe": 544, "ok_subscribe": 323, "notify": 918,
         "ok_notify": 276, "wic_register": 640, "wic_ok": 600}  # fmt: skip


def _pad(head: bytes, size: int) -> bytes:
    return head + b"x" * (size - len(head))


def _frame(payload: bytes, mask: bytes | None) -> bytes:
    """An RFC 6455 text frame (FIN), masked when ``mask`` is given (client to server)."""
    n = len(payload)
    masked = 0x80 if mask else 0
    head = bytes([0x81, n | masked]) if n < 126 else bytes([0x81, 126 | masked]) + struct.pack("!H", n)
    return head + payload if mask is None else head + mask + _xor(payload, mask)


def _xor(data: bytes, mask: bytes) -> bytes:
    """RFC 6455 §5.3 masking (its own inverse), one big-integer XOR."""
    key = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(len(data), "big")


def _unmask(data: bytes) -> bytes:
    n = data[1] & 0x7F
    offset = 2
    if n == 126:
        n, offset = struct.unpack_from("!H", data, 2)[0], 4
    mask = data[offset : offset + 4]
    return _xor(data[offset + 4 : offset + 4 + n], mask)


def _gateway(cert: str, key: str, public_pem: bytes, ready: multiprocessing.connection.Connection,
             core_port: int) -> None:  # fmt: skip
    import uvloop

    loaded = serialization.load_pem_public_key(public_pem)
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
    public: ec.EllipticCurvePublicKey = loaded
    algorithm = ec.ECDSA(hashes.SHA256())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        waiting: dict[bytes, asyncio.Transport] = {}
        core = ("127.0.0.1", core_port)
        udp: list[asyncio.DatagramTransport] = []

        class Ims(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                kind, ident = data[:2], data[2:14]
                if kind == b"OR":  # 200 to REGISTER: the WIC's 200, then the reg-event SUBSCRIBE
                    wic = waiting.pop(ident, None)
                    if wic is not None:
                        wic.write(_frame(_pad(b"SIP/2.0 200 OK " + ident, SIZES["wic_ok"]), None))
                    udp[0].sendto(_pad(b"SU" + ident, SIZES["subscribe"]), core)
                elif kind == b"NO":  # NOTIFY: its 200
                    udp[0].sendto(_pad(b"ON" + ident, SIZES["ok_notify"]), core)

        class Wic(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass

            def data_received(self, data: bytes) -> None:
                payload = _unmask(data)
                ident, token = payload[:12], payload[12:].split(b" ", 1)[0]
                signing_input, _, signature = token.rpartition(b".")
                raw = base64.urlsafe_b64decode(signature + b"=" * (-len(signature) % 4))
                der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
                public.verify(der, signing_input, algorithm)  # raises on a bad token
                waiting[ident] = self.transport
                udp[0].sendto(_pad(b"RE" + ident, SIZES["register"]), core)

        transport, _ = await loop.create_datagram_endpoint(Ims, local_addr=("127.0.0.1", 0))
        udp.append(transport)
        server = await loop.create_server(Wic, "127.0.0.1", 0, ssl=server_context(cert, key))
        ready.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    uvloop.run(main())


def _core(ready: multiprocessing.connection.Connection) -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        out: list[asyncio.DatagramTransport] = []

        class Core(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                kind, ident = data[:2], data[2:14]
                if kind == b"RE":
                    out[0].sendto(_pad(b"OR" + ident, SIZES["ok_register"]), addr)
                elif kind == b"SU":
                    out[0].sendto(_pad(b"OS" + ident, SIZES["ok_subscribe"]), addr)
                    out[0].sendto(_pad(b"NO" + ident, SIZES["notify"]), addr)

        transport, _ = await loop.create_datagram_endpoint(Core, local_addr=("127.0.0.1", 0))
        out.append(transport)
        ready.send(transport.get_extra_info("sockname")[1])
        await asyncio.Event().wait()

    uvloop.run(main())


def _tokens(n: int) -> tuple[bytes, list[bytes]]:
    """A key pair's public key and ``n`` ES256 JWS compact tokens of JWT size (RFC 7515 §7.1)."""
    private = ec.generate_private_key(ec.SECP256R1())

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(b'{"alg":"ES256","typ":"at+jwt","kid":"k1"}')
    tokens = []
    for i in range(n):
        claims = b64(json.dumps({"sub": f"user{i}", "aud": "webims", "exp": 4_000_000_000,
                                 "scope": "register call message", "pad": "p" * 200}).encode())  # fmt: skip
        signing_input = header + b"." + claims
        r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        tokens.append(signing_input + b"." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big")))
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public, tokens


async def _connect(port: int, n: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``n`` TLS connections to the gateway (200 handshakes at a time)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    while len(conns) < n:
        batch = min(200, n - len(conns))
        conns += await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port, ssl=context)
                                        for _ in range(batch)))  # fmt: skip
    return conns


async def _register(
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], tokens: list[bytes], rate: float
) -> tuple[float, list[float]]:
    """Each connection registers once, at ``rate``; (the phase's seconds, latencies)."""
    latencies: list[float] = []

    async def one(i: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ident = b"%012d" % i
        payload = _pad(ident + tokens[i] + b" ", max(SIZES["wic_register"], len(tokens[i]) + 13))
        t0 = time.perf_counter()
        writer.write(_frame(payload, os.urandom(4)))
        await reader.readexactly(4 + SIZES["wic_ok"])
        latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    tasks = []
    for i, (reader, writer) in enumerate(conns):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, reader, writer)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - start, latencies


def _cpu(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    public, tokens = _tokens(args.clients)
    with tempfile.TemporaryDirectory(prefix="webims-io-floor-") as tmp:
        cert, key = ensure_self_signed(tmp)
        ctx = multiprocessing.get_context("spawn")
        core_end, core_ready = ctx.Pipe()
        core = ctx.Process(target=_core, args=(core_ready,), daemon=True)
        core.start()
        core_port = core_end.recv()
        gw_end, gw_ready = ctx.Pipe()
        gateway = ctx.Process(
            target=_gateway, args=(str(cert), str(key), public, gw_ready, core_port), daemon=True
        )
        gateway.start()
        port = gw_end.recv()
        assert gateway.pid is not None and core.pid is not None

        async def run() -> tuple[float, list[float], tuple[float, float], tuple[float, float]]:
            conns = await _connect(port, len(tokens))  # TLS handshakes are not registrations
            await asyncio.sleep(1.0)
            before = _cpu(gateway_pid)
            seconds, latencies = await _register(conns, tokens, args.rate)
            after = _cpu(gateway_pid)
            for _, writer in conns:
                writer.close()
            return seconds, latencies, before, after

        import uvloop

        gateway_pid = gateway.pid
        seconds, latencies, before, after = uvloop.run(run())
        gateway.kill()
        core.kill()
    n = len(latencies)
    latencies.sort()
    user, system = after[0] - before[0], after[1] - before[1]
    result = {
        "registrations": n,
        "registrations_per_s": round(n / seconds, 1),
        "latency_ms_p50": round(1000 * latencies[n // 2], 2),
        "latency_ms_p99": round(1000 * latencies[int(n * 0.99)], 2),
        "gateway_cpu_ms_per_registration": round(1000 * (user + system) / n, 3),
        "gateway_system_cpu_ms_per_registration": round(1000 * system / n, 3),
    }
    print(f"I/O floor: {result['gateway_cpu_ms_per_registration']} ms gateway CPU per registration "
          f"({result['gateway_system_cpu_ms_per_registration']} ms system), "
          f"{result['registrations_per_s']}/s", file=sys.stderr)  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
