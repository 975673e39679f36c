"""The WIC's JavaScript crypto (webclient/src: MD5, MILENAGE on WebCrypto, Digest-AKA)
against published test data and against webims.aka, run by Node.js.

``webclient/test/crypto.test.mjs`` (node's test runner) holds the TS 35.208 §4.3
sets 1-20, the RFC 1321 MD5 suite, RFC 2104 HMAC-MD5 and RFC 2617 vectors; here
random keys and challenges are fed to both implementations: the JS soft USIM's
answers must be accepted by webims' digest server, including AUTS resynchronisation.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from wictest import ROOT

from webims.aka import (
    Milenage,
    build_aka_nonce,
    generate_vector,
    join_sqn,
    resync_sqn,
    verify_auts,
)
from webims.aka.digest_aka import akav2_password, decode_auts
from webims.sip.digest import DigestServer, VerifyStatus, parse_credentials

NODE_SCRIPT = Path(__file__).with_name("aka_node.mjs")


def node() -> str:
    exe = shutil.which("node")
    if exe is None:
        pytest.fail("node is missing: run scripts/setup.sh (Debian nodejs)", pytrace=False)
    return exe


def run_node(cases: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([node(), str(NODE_SCRIPT)], input=json.dumps(cases), capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_node_unit_tests_pass() -> None:
    """TS 35.208 sets 1-20, MD5/HMAC-MD5/digest vectors, the soft USIM (node --test)."""
    proc = subprocess.run([node(), "--test", str(ROOT / "webclient" / "test" / "crypto.test.mjs")],
                          capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout and "# pass 8" in proc.stdout, proc.stdout[-2000:]


def test_node_failure_text_tests_pass() -> None:
    """describeFailure shows Reason/Warning texts once, never repeating the phrase."""
    proc = subprocess.run([node(), "--test", str(ROOT / "webclient" / "test" / "phone.test.mjs")],
                          capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout and "# pass 3" in proc.stdout, proc.stdout[-2000:]


def test_js_milenage_matches_webims_aka_on_random_inputs() -> None:
    rng = random.Random(35_206)
    cases = []
    for _ in range(40):
        cases.append({name: rng.randbytes(n).hex() for name, n in
                      (("k", 16), ("opc", 16), ("rand", 16), ("sqn", 6), ("amf", 2))})
    got = run_node({"milenage": cases, "challenges": []})["milenage"]
    for case, js in zip(cases, got, strict=True):
        m = Milenage(bytes.fromhex(case["k"]), bytes.fromhex(case["opc"]))
        rand, sqn, amf = (bytes.fromhex(case[x]) for x in ("rand", "sqn", "amf"))
        res, ck, ik, ak = m.f2345(rand)
        expected = {"f1": m.f1(rand, sqn, amf).hex(), "f1star": m.f1star(rand, sqn, amf).hex(),
                    "res": res.hex(), "ck": ck.hex(), "ik": ik.hex(), "ak": ak.hex(),
                    "akstar": m.f5star(rand).hex()}
        assert js == expected, case


def test_js_aka_answers_are_accepted_by_webims_digest_server() -> None:
    rng = random.Random(3310)
    subscribers = [(rng.randbytes(16), rng.randbytes(16)) for _ in range(6)]
    amf = bytes.fromhex("8000")
    cases: list[dict[str, Any]] = []
    expected = []
    for i, (k, opc) in enumerate(subscribers):
        algorithm = "AKAv1-MD5" if i % 2 == 0 else "AKAv2-MD5"
        vector = generate_vector(k, opc, amf, join_sqn(1 + i, i % 32), rand=rng.randbytes(16))
        nonce = build_aka_nonce(vector.rand, vector.autn)
        cases.append({"k": k.hex(), "opc": opc.hex(), "username": f"user{i}@ims.test", "uri": "sip:ims.test",
                      "challenge": {"realm": "ims.test", "nonce": nonce, "algorithm": algorithm,
                                    "qop": ["auth"], "opaque": f"o{i}"}})
        expected.append((algorithm, vector))
    # a USIM that already accepted SEQ 900: the vector at SEQ 5 is stale -> AUTS
    k, opc = subscribers[0]
    stale = generate_vector(k, opc, amf, join_sqn(5, 0), rand=rng.randbytes(16))
    cases.append({"k": k.hex(), "opc": opc.hex(), "username": "sync@ims.test", "uri": "sip:ims.test",
                  "seq_array": [900] + [0] * 31,
                  "challenge": {"realm": "ims.test", "nonce": build_aka_nonce(stale.rand, stale.autn),
                                "algorithm": "AKAv1-MD5", "qop": ["auth"]}})
    # a challenge forged without K: MAC failure, empty response
    forged = generate_vector(rng.randbytes(16), opc, amf, join_sqn(3, 0))
    cases.append({"k": k.hex(), "opc": opc.hex(), "username": "mac@ims.test", "uri": "sip:ims.test",
                  "challenge": {"realm": "ims.test", "nonce": build_aka_nonce(forged.rand, forged.autn),
                                "algorithm": "AKAv1-MD5", "qop": ["auth"]}})
    answers = run_node({"milenage": [], "challenges": cases})["answers"]

    for (algorithm, vector), answer in zip(expected, answers, strict=False):
        assert answer["outcome"] == "ok"
        creds = parse_credentials(answer["header"])
        assert creds.algorithm == algorithm and creds.qop == "auth" and creds.nc == 1
        password = (vector.xres if algorithm == "AKAv1-MD5"
                    else akav2_password(vector.xres, vector.ik, vector.ck))
        scscf = DigestServer("ims.test", b"k", algorithms=(algorithm,))
        verdict = scscf.verify(creds, method="REGISTER", now=0, password=password, check_nonce=False)
        assert verdict.ok, (answer, verdict)
        wrong = scscf.verify(creds, method="REGISTER", now=0, password=b"\x00" * 8, check_nonce=False)
        assert wrong.status is VerifyStatus.WRONG_PASSWORD

    sync = answers[len(expected)]
    assert sync["outcome"] == "sync"
    creds = parse_credentials(sync["header"])
    assert creds.auts is not None
    sqn_ms = verify_auts(k, opc, stale.rand, decode_auts(creds.auts))
    assert sqn_ms == join_sqn(900, 0)
    assert resync_sqn(join_sqn(5, 0), sqn_ms) == sqn_ms
    # RFC 3310 §3.4: the response of a resynchronisation is computed with an empty password
    scscf = DigestServer("ims.test", b"k", algorithms=("AKAv1-MD5",))
    assert scscf.verify(creds, method="REGISTER", now=0, password=b"", check_nonce=False).ok

    mac = answers[len(expected) + 1]
    assert mac["outcome"] == "mac" and 'response=""' in mac["header"] and "auts=" not in mac["header"]
