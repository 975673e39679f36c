"""The README's main-job command, ``make demo``, run as a new user would: a page that registers and calls.

The body is tests/demo_browser_worker.py, run in a loopback-only network namespace
(ports cannot collide with anything outside it, and Chromium's ICE stays on
127.0.0.1): ``make demo`` from the repository root with a fresh HOME and state
directory, then two Chromium profiles open the URL it printed — alice logs in through
the login page (web-token), bob with his IMS password (ims-digest) — alice calls
bob, bob answers, audio flows both ways, alice hangs up; Ctrl-C (SIGINT) stops the
demo, which must exit with status 0 and print no traceback. Screenshots in
test-artifacts/demo/.

scripts/setup.sh (run by ``make demo``) cannot download inside the namespace: it
must have nothing left to do, as after ``make setup`` or within ``make test``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from webims.testing.netns import netns_unavailable, run_python_in_netns

WORKER = Path(__file__).with_name("demo_browser_worker.py")

pytestmark = pytest.mark.browser

#: What a clean stop never prints.
UNCLEAN = ("Traceback", "exception was never retrieved", "Unclosed", "unclosed", " ERROR ", "CRITICAL")


def test_make_demo_serves_a_page_that_registers_and_calls() -> None:
    missing = [tool for tool in ("make", "chromium") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing: {', '.join(missing)}; run scripts/setup.sh", pytrace=False)
    reason = netns_unavailable()
    if reason is not None:
        pytest.fail(f"a loopback-only network namespace is needed: {reason}", pytrace=False)
    r = run_python_in_netns(WORKER, [], timeout=280)
    output = r["output"]
    assert r["url"] == "https://127.0.0.1:8443/" and r["page_status"] == 200, r["url"]
    assert {"alice", "bob"} <= set(r["users"]), output
    assert "tls" in r["state_files"], r["state_files"]  # the certificate made on first run, in the state dir
    assert r["a_identity"] == "sip:alice@ims.test" and r["b_identity"] == "sip:bob@ims.test"
    assert r["b_incoming_from"] == "sip:alice@ims.test"
    for side in ("a", "b"):
        assert r[f"{side}_received"] >= 100 and r[f"{side}_sent"] >= 100, (side, r)
        assert r[f"{side}_energy"] > 0.01, (side, r)
    assert "hung up" in r["b_after_hangup"], r["b_after_hangup"]
    assert r["csp"] == [] and r["page_errors"] == []
    assert r["exit_status"] == 0, output
    assert not [word for word in UNCLEAN if word in output], output
