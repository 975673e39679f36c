"""``webims demo`` run as a user runs it: a subprocess that starts the lab IMS core,
the authorization function, the web client server and the gateway on one HTTPS
port.  The page is served with its CSP, and the demo users it prints can register
through the gateway: bob with IMS digest (relayed to the lab S-CSCF) and alice with
a token from the authorization function (Trusted Node Authentication)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from webims.testing.ports import free_port

sys.path.insert(0, str(Path(__file__).parent / "gateway"))
from wicclient import Wic, bearer

WEBIMS = Path(sys.executable).with_name("webims")


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    port = free_port()
    env = dict(
        os.environ,
        WEBIMS_STATE__DIR=str(tmp_path),
        WEBIMS_TRANSPORT__WSS_PORT=str(port),
        WEBIMS_TRANSPORT__ALLOWED_ORIGINS=f"https://127.0.0.1:{port}",
        WEBIMS_WEB__PUBLIC_URL=f"https://127.0.0.1:{port}",
        WEBIMS_AUTH__WIC_REDIRECT_URIS=f"https://127.0.0.1:{port}/",
        WEBIMS_HSS__LISTEN_PORT=str(free_port()),
        WEBIMS_HSS__ADMIN_PORT=str(free_port()),
        WEBIMS_LABCORE__ICSCF_PORT=str(free_port()),
        WEBIMS_LABCORE__SCSCF_PORT=str(free_port()),
        WEBIMS_GATEWAY__MW_PORT=str(free_port()),
    )
    proc = subprocess.Popen([str(WEBIMS), "demo"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while not any("Press Ctrl-C" in line for line in lines):
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
            assert line, f"demo exited early: {''.join(lines)}"
            lines.append(line)
        text = "".join(lines)
        assert f"https://127.0.0.1:{port}/" in text and f"wss://127.0.0.1:{port}/sip" in text
        assert "alice" in text and "bob" in text
        yield f"127.0.0.1:{port}", tmp_path
    finally:
        proc.terminate()
        try:
            assert proc.wait(20) == 0, "".join(lines)
        finally:
            if proc.poll() is None:
                proc.kill()


async def test_demo_page_and_registrations(demo: tuple[str, Path]) -> None:
    hostport, state = demo
    ctx = ssl.create_default_context(cafile=str(state / "tls" / "cert.pem"))
    origin = f"https://{hostport}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{origin}/", ssl=ctx) as resp:
            assert resp.status == 200
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
            assert "<html" in await resp.text()
        async with http.get(f"{origin}/config.json", ssl=ctx) as resp:
            config = json.loads(await resp.text())
            assert config["wss_url"] == f"wss://{hostport}/sip"
            assert config["auth"]["token_endpoint"] == f"{origin}/token"
    # bob: IMS digest relayed to the lab core
    bob = Wic(f"wss://{hostport}/sip", origin=origin, user="bob")
    await bob.connect()
    try:
        first, second = await bob.register_digest("bob-secret")
        assert first.status == 401 and second.status == 200, second
        assert "sip:bob@ims.test" in (second.headers.get("P-Associated-URI") or "")
    finally:
        await bob.close()
    # alice: a token from the demo's authorization function (TNA toward the core)
    result = await asyncio.to_thread(
        subprocess.run, [str(WEBIMS), "token", "issue", "alice", "--json"],
        env=dict(os.environ, WEBIMS_STATE__DIR=str(state), WEBIMS_AUTH__PORT=hostport.rsplit(":", 1)[1]),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    token = json.loads(result.stdout)["access_token"]
    alice = Wic(f"wss://{hostport}/sip", origin=origin, user="alice")
    await alice.connect()
    try:
        answer = await alice.register(headers=[bearer(token)])
        assert answer.status == 200, answer
        assert "sip:alice@ims.test" in (answer.headers.get("P-Associated-URI") or "")
    finally:
        await alice.close()


def test_demo_config_keeps_the_callers_environment(tmp_path: Path) -> None:
    """Demo defaults are added to the environment the config was loaded with, not to
    the process's: a caller's state directory must survive (it did not once, and
    test runs shared the user's ~/.local/share/webims database)."""
    from webims.config import StateConfig, load_config
    from webims.demo import demo_config
    from webims.labcore.settings import LabCoreConfig

    config = demo_config(load_config(None, environ={"WEBIMS_STATE__DIR": str(tmp_path)}))
    assert config.get(StateConfig).dir == tmp_path
    assert config.get(LabCoreConfig).trusted_nodes == ("127.0.0.2",)
