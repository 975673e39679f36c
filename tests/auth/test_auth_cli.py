"""CLI: webims user|pool|client|token (webims.auth.cli), against a real SQLite file."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from auth_helpers import Browser, Tls, settings, start

from webims.auth.cli import main, register
from webims.auth.service import AuthService
from webims.store import Store


def cli(db: Path, *args: str, stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> int:
    if stdin is not None and monkeypatch is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main([*args[:2], "--db", str(db), *args[2:]])


def test_user_pool_token_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "cli.sqlite3"
    monkeypatch.delenv("WEBIMS_CONFIG", raising=False)
    assert (
        cli(db, "user", "add", "alice", "--password-stdin", stdin="pw-alice-1\n", monkeypatch=monkeypatch)
        == 0
    )
    assert cli(db, "user", "add", "bob", "--password", "pw-bob-1", "--scope", "register") == 0
    assert cli(db, "user", "add", "bob", "--password", "x") == 1
    assert "exists already" in capsys.readouterr().err
    assert (
        cli(db, "pool", "add", "web", "--member", "sip:web-{00..09}@ims.test", "--impi", "pool@ims.test") == 0
    )
    assert "10 IMPUs, capacity 10" in capsys.readouterr().out
    assert cli(db, "pool", "add", "wild", "--wildcard", "sip:w-!.*!@ims.test", "--capacity", "50") == 0
    assert (
        cli(
            db,
            "user",
            "map",
            "alice",
            "--impi",
            "alice@ims.test",
            "--impu",
            "sip:alice@ims.test",
            "--deny",
            "tel:+1900*",
            "--cc",
            "1",
        )
        == 0
    )
    assert cli(db, "user", "map", "bob", "--pool", "web") == 0
    assert cli(db, "user", "map", "bob", "--pool", "nope") == 1
    assert "no pool 'nope'" in capsys.readouterr().err
    capsys.readouterr()
    assert cli(db, "user", "list", "--json") == 0
    users = {u["username"]: u for u in json.loads(capsys.readouterr().out)}
    assert users["alice"]["impus"] == ["sip:alice@ims.test"] and users["alice"]["dest"]["deny"] == [
        "tel:+1900*"
    ]
    assert users["bob"]["pool"] == "web" and users["bob"]["scopes"] == ["register"]

    assert cli(db, "token", "issue", "bob", "--json") == 0
    issued = json.loads(capsys.readouterr().out)
    assert issued["impu"] == ["sip:web-00@ims.test"] and issued["scope"] == "register"
    with Store(db) as store:
        service = AuthService(store, settings(8443))
        ident = service.verifier().verify_cached(issued["access_token"])
        assert ident.sub == "bob" and ident.allocation == issued["allocation"]
    assert cli(db, "token", "issue", "alice") == 0
    assert capsys.readouterr().out.count(".") == 2  # one JWT

    assert cli(db, "pool", "show", "web") == 0
    out = capsys.readouterr().out
    assert "1/10 allocated" in out and "sip:web-00@ims.test" in out and "bob" in out
    assert cli(db, "pool", "list") == 0
    assert "wild" in capsys.readouterr().out
    assert cli(db, "pool", "release", "web", "--impu", "sip:web-00@ims.test") == 0
    assert "released sip:web-00@ims.test (held by bob)" in capsys.readouterr().out
    assert cli(db, "pool", "release", "web", "--all") == 1  # nothing left
    assert cli(db, "pool", "remove", "wild") == 0
    assert cli(db, "user", "remove", "alice") == 0
    assert cli(db, "user", "remove", "alice") == 1
    assert "no user 'alice'" in capsys.readouterr().err


def test_client_commands_and_rotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEBIMS_CONFIG", raising=False)
    db = tmp_path / "cli.sqlite3"
    assert cli(db, "client", "add", "gw", "--confidential", "--scope", "pool") == 0
    out = capsys.readouterr().out
    assert "confidential: client_credentials" in out and "secret: " in out
    assert cli(db, "client", "add", "spa", "--redirect-uri", "http://evil.example/") == 1
    assert "https://" in capsys.readouterr().err
    assert cli(db, "client", "list", "--json") == 0
    ids = [c["client_id"] for c in json.loads(capsys.readouterr().out)]
    assert ids == ["gw", "wic"]
    assert cli(db, "token", "rotate-keys") == 0
    assert "new signing key" in capsys.readouterr().out


def test_bad_config_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text('[auth]\nplain_http = true\nhost = "0.0.0.0"\n')
    assert main(["user", "list", "-c", str(conf), "--db", str(tmp_path / "x.sqlite3")]) == 2
    err = capsys.readouterr().err
    assert "auth.plain_http" in err and "non-loopback" in err


def test_register_into_another_parser() -> None:
    parser = argparse.ArgumentParser(prog="webims")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["pool", "release", "web", "--all"])
    assert args.command == "pool" and args.action == "release" and args.all and callable(args._run)
    with pytest.raises(SystemExit):
        parser.parse_args(["pool", "release", "web"])  # one of --impu/--allocation/--all


async def test_cli_process_beside_a_running_server(tmp_path: Path, tls: Tls) -> None:
    """`python -m webims.auth.cli` writes to the database a running server uses (WAL)."""
    db = tmp_path / "shared.sqlite3"
    srv = await start(db, tls)
    env = {k: v for k, v in os.environ.items() if k != "WEBIMS_CONFIG"}
    try:
        for args in (
            ["user", "add", "zoe", "--db", str(db), "--password-stdin"],
            ["user", "map", "zoe", "--db", str(db), "--impi", "zoe@ims.test", "--impu", "sip:zoe@ims.test"],
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "webims.auth.cli", *args],
                input="zoe-password-1\n",
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stderr
        b = Browser(srv)
        try:
            tokens = await b.full_login("zoe", "zoe-password-1")
            assert srv.service.verifier().verify_cached(tokens["access_token"]).impus == ("sip:zoe@ims.test",)
        finally:
            await b.close()
    finally:
        await srv.stop()
