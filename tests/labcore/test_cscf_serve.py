"""``webims serve labcore``: the whole lab core (HSS + I-CSCF + S-CSCF) from a config file,
as a separate process, until SIGTERM; a subscriber provisioned in its database registers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from labcore_harness import REALM

from webims.labcore.hss import SubscriberSpec, SubscriberStore
from webims.store import Store
from webims.testing.ports import free_port
from webims.testing.sipp import register_uac, require_sipp


async def test_serve_labcore_runs_until_sigterm(tmp_path: Path) -> None:
    require_sipp()
    icscf, scscf, hss = free_port(), free_port(), free_port()
    config = tmp_path / "webims.toml"
    config.write_text(
        f'[state]\ndir = "{tmp_path}"\n'
        f"[hss]\nlisten_port = {hss}\nadmin_port = 0\n"
        f'[labcore]\nicscf_port = {icscf}\nscscf_port = {scscf}\nmedia_interworking = "off"\n'
    )
    store = Store(tmp_path / "webims.sqlite3")
    SubscriberStore(store).add(
        SubscriberSpec(impi=f"zoe@{REALM}", impus=(f"sip:zoe@{REALM}",), password="zoe-pw")
    )
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBIMS_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webims", "serve", "labcore", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert f"I-CSCF sip:127.0.0.1:{icscf}" in line and f"S-CSCF sip:127.0.0.1:{scscf}" in line, line
        result = await register_uac(tmp_path, ("127.0.0.1", icscf), "zoe", "zoe-pw", realm=REALM).run_async()
        assert result.ok, result.report()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
