"""``webims subscriber add|list|show|set|remove`` as a real subprocess, on a temporary database."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from webims.labcore.hss import RegState, SubscriberStore
from webims.store import Store

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"  # TS 35.208 §4.3.1


def webims(state: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBIMS_")}
    env["WEBIMS_STATE__DIR"] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "webims", "subscriber", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=120,
    )


def test_provisioning_round_trip(tmp_path: Path) -> None:
    state = tmp_path / "state"
    r = webims(
        state,
        "add",
        "--impi",
        "alice@ims.test",
        "--impu",
        "sip:alice@ims.test",
        "--impu",
        "tel:+15551000",
        "--password-stdin",
        "--k",
        K,
        "--op",
        OP,
        "--amf",
        "b9b9",
        "--sqn",
        "0x20",
        "--barred",
        "tel:+15551000",
        "--wildcard",
        "sip:!.*!@pool.ims.test",
        "--implicit-set",
        "sip:!.*!@pool.ims.test",
        "--display-name",
        "sip:alice@ims.test=Alice",
        stdin="top secret\n",
    )
    assert r.returncode == 0, r.stderr
    assert "added alice@ims.test (3 public identities)" in r.stdout
    r = webims(state, "add", "bob@ims.test", "--impu", "sip:bob@ims.test", "--password", "b")
    assert r.returncode == 0, r.stderr

    r = webims(state, "list")
    assert r.returncode == 0
    assert r.stdout.splitlines() == [
        "alice@ims.test\tdigest+aka\tsip:alice@ims.test tel:+15551000 sip:!.*!@pool.ims.test",
        "bob@ims.test\tdigest\tsip:bob@ims.test",
    ]

    r = webims(state, "show", "alice@ims.test", "--json", "--secrets")
    doc = json.loads(r.stdout)
    assert (doc["k"], doc["opc"], doc["amf"], doc["sqn"]) == (K, OPC, "b9b9", 32)
    assert doc["ha1_md5"] == hashlib.md5(b"alice@ims.test:ims.test:top secret").hexdigest()
    assert [(u["impu"], u["implicit_set"], u["barred"], u["wildcard"]) for u in doc["impus"]] == [
        ("sip:alice@ims.test", "sip:alice@ims.test", False, False),
        ("tel:+15551000", "sip:alice@ims.test", True, False),
        ("sip:!.*!@pool.ims.test", "sip:!.*!@pool.ims.test", False, True),
    ]
    r = webims(state, "show", "alice@ims.test")
    assert "k:" not in r.stdout and "ha1" not in r.stdout  # secrets only on request
    assert "impu: tel:+15551000 (set sip:alice@ims.test) NOT_REGISTERED [barred]" in r.stdout

    r = webims(
        state,
        "set",
        "alice@ims.test",
        "--unbarred",
        "tel:+15551000",
        "--sqn",
        "1000",
        "--add-impu",
        "sip:alice2@ims.test",
        "--visited-network",
        "v.net",
    )
    assert r.returncode == 0, r.stderr
    with Store(state / "webims.sqlite3") as store:
        subs = SubscriberStore(store)
        rec = subs.impi("alice@ims.test")
        assert rec is not None and rec.sqn == 1000 and rec.visited_networks == ("v.net",)
        impu = subs.impu("tel:+15551000")
        assert impu is not None and not impu.barred and impu.reg_state is RegState.NOT_REGISTERED
        assert subs.impu("sip:alice2@ims.test") is not None
    assert b"top secret" not in b"".join(p.read_bytes() for p in state.glob("webims.sqlite3*"))

    r = webims(state, "remove", "bob@ims.test")
    assert r.returncode == 0 and "removed bob@ims.test" in r.stdout
    assert webims(state, "list").stdout.count("\n") == 1


def test_usage_errors(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cases = [
        (("add", "a@ims.test", "--impu", "a@ims.test"), "must be a sip:, sips: or tel: URI"),
        (("add", "a@ims.test", "--impu", "sip:a@ims.test", "--k", "1234"), "K must be 16 bytes"),
        (("add", "a@ims.test", "--impu", "sip:a@ims.test", "--k", K), "K needs OP or OPc"),
        (
            ("add", "a@ims.test", "--impu", "sip:a@ims.test", "--wildcard", "sip:x@ims.test"),
            "no '!regex!' part",
        ),
        (("add", "--impu", "sip:a@ims.test"), "give the private identity"),
        (("set", "nobody@ims.test", "--sqn", "1"), "no subscriber nobody@ims.test"),
    ]
    for args, message in cases:
        r = webims(state, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert message in r.stderr, (args, r.stderr)
    r = webims(state, "show", "nobody@ims.test")
    assert r.returncode == 1 and "no subscriber" in r.stderr
