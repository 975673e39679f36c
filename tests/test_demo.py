"""``webims demo`` run as a user runs it: a subprocess that serves HTTPS and SIP over
WSS on its configured port; a WebSocket client registers and gets its binding back."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp

from webims.sip import parse

WEBIMS = Path(sys.executable).with_name("webims")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


REGISTER = (
    "REGISTER sip:ims.test SIP/2.0\r\n"
    "Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKdemo1;rport\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:alice@ims.test>\r\n"
    "From: <sip:alice@ims.test>;tag=abc\r\n"
    "Call-ID: demo-test-1\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Contact: <sip:x1@df7jal23ls0d.invalid;transport=ws>;expires=300\r\n"
    "Content-Length: 0\r\n\r\n"
)


async def test_demo_serves_https_and_registers_over_wss(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, WEBIMS_STATE__DIR=str(tmp_path), WEBIMS_TRANSPORT__WSS_PORT=str(port),
               WEBIMS_TRANSPORT__ALLOWED_ORIGINS=f"https://127.0.0.1:{port}")
    proc = subprocess.Popen([str(WEBIMS), "demo"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        while not any("Press Ctrl-C" in line for line in lines):
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            assert line, f"demo exited early: {''.join(lines)}"
            lines.append(line)
        assert f"wss://127.0.0.1:{port}/sip" in "".join(lines)
        ctx = ssl.create_default_context(cafile=str(tmp_path / "tls" / "cert.pem"))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{port}/", ssl=ctx) as resp:
                assert resp.status == 200
                assert "SIP over WebSocket" in await resp.text()
            async with http.ws_connect(f"wss://127.0.0.1:{port}/sip", protocols=("sip",), ssl=ctx,
                                       origin=f"https://127.0.0.1:{port}") as ws:
                await ws.send_str(REGISTER)
                msg = await asyncio.wait_for(ws.receive(), 10)
                answer = parse(msg.data.encode() if isinstance(msg.data, str) else msg.data)
                assert getattr(answer, "status", None) == 200
                contacts = answer.contact
                assert [str(c.uri) for c in contacts] == ["sip:x1@df7jal23ls0d.invalid;transport=ws"]
                assert contacts[0].expires is not None and 290 <= contacts[0].expires <= 300
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
