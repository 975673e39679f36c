"""``webims serve gateway`` as a process: config from the environment, WSS, the [auth] store, the lab core."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from conftest import GATEWAY_HOST, ORIGIN, provision_auth, token_for
from wicclient import Wic, bearer

from webims.auth.service import AuthService, ServiceSettings
from webims.labcore import LabCore
from webims.store import Store
from webims.testing.kamailio import free_port

ROOT = Path(__file__).resolve().parents[2]


async def test_webims_serve_gateway(core: LabCore, tmp_path: Path) -> None:
    wss, mw = free_port(), free_port(GATEWAY_HOST)
    issuer = f"https://127.0.0.1:{free_port()}"
    db = Store(tmp_path / "webims.sqlite3")
    auth = AuthService(db, ServiceSettings(issuer=issuer, password_time_cost=1, password_memory_kib=1024))
    provision_auth(auth)
    token = token_for(auth, "dave")
    db.close()
    env = {
        **os.environ,
        "WEBIMS_STATE__DIR": str(tmp_path),
        "WEBIMS_TRANSPORT__WSS_PORT": str(wss),
        "WEBIMS_TRANSPORT__ALLOWED_ORIGINS": f'["{ORIGIN}"]',
        "WEBIMS_AUTH__ISSUER": issuer,
        "WEBIMS_GATEWAY__ICSCF": core.icscf_uri,
        "WEBIMS_GATEWAY__MW_HOST": GATEWAY_HOST,
        "WEBIMS_GATEWAY__MW_PORT": str(mw),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webims", "serve", "gateway", env=env, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=(tmp_path / "gateway.log").open("wb"),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("webims gateway: wss://127.0.0.1:") and core.icscf_uri in line, line
        url = f"wss://127.0.0.1:{wss}/sip"
        foreign = Wic(url, origin="https://evil.example", user="dave")
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await foreign.connect()
        await foreign.close()
        wic = Wic(url, origin=ORIGIN, user="dave")
        await wic.connect()
        try:
            ok = await wic.register(headers=[bearer(token)])
            assert ok.status == 200, ok
            assert core.scscf.registration("sip:dave@ims.test") is not None
        finally:
            await wic.close()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
    log = (tmp_path / "gateway.log").read_text()
    assert "WICs on wss://127.0.0.1" in log and token not in log
