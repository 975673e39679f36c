"""The provisioning subcommands of the main ``webims`` program, run as a user runs
them (subprocesses sharing one state directory): users, pools, tokens survive
between invocations and bad input gets a one-line error, no traceback."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

WEBIMS = str(Path(sys.executable).with_name("webims"))


def run(state: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, WEBIMS_STATE__DIR=str(state))
    return subprocess.run([WEBIMS, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)


def test_user_pool_token_round_trip(tmp_path: Path) -> None:
    assert run(tmp_path, "pool", "add", "web", "--member", "sip:web-{00..02}@ims.test").returncode == 0
    added = run(tmp_path, "user", "add", "alice", "--password-stdin", stdin="correct horse\n")
    assert added.returncode == 0, added.stderr
    assert "correct horse" not in added.stdout + added.stderr
    assert run(tmp_path, "user", "map", "alice", "--pool", "web").returncode == 0
    listed = run(tmp_path, "pool", "show", "web")
    assert listed.returncode == 0
    assert "0/3 allocated, 3 free" in listed.stdout
    issued = run(tmp_path, "token", "issue", "alice", "--scope", "register call", "--json")
    assert issued.returncode == 0, issued.stderr
    token = json.loads(issued.stdout)["access_token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == "alice"
    assert set(claims["scope"].split()) == {"register", "call"}
    # the token leased one IMPU of the pool to alice, visible to the next invocation
    assert claims.get("impu") or claims.get("impus")
    assert "1/3 allocated" in run(tmp_path, "pool", "show", "web").stdout


def test_unknown_user_is_a_clear_error(tmp_path: Path) -> None:
    result = run(tmp_path, "token", "issue", "nobody")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "nobody" in result.stderr
