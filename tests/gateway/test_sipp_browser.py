"""Headless Chromium (the WIC) calls a SIPp phone on the IMS side and is called back by it.

The body is tests/gateway/sipp_browser_worker.py, run in a loopback-only network
namespace with the whole system as ``webims demo`` starts it. SIPp registers to the
lab core as sip:phone@ims.test with an MD5 digest through the I-CSCF; the tab logs in
as alice through the login page (web-token). Alice calls the phone: busy (486, shown
on the page); answered with SIPp echoing the RTP (the browser hears its own tone
back through the gateway's media IWF); then SIPp calls alice offering PCMA and plays
a G.711 recording, and hangs up. Screenshots in test-artifacts/gateway/sipp-*.png.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from webims.testing.netns import netns_unavailable, run_python_in_netns

WORKER = Path(__file__).with_name("sipp_browser_worker.py")
PCAP = Path("/usr/share/sip-tester/g711a.pcap")

pytestmark = pytest.mark.browser


def require_tools() -> None:
    """Fail (never skip) with what is missing."""
    missing = [f"{tool} ({package})" for tool, package in (("sipp", "sip-tester"), ("chromium", "chromium"))
               if shutil.which(tool) is None]  # fmt: skip
    if not PCAP.exists():
        missing.append(f"{PCAP} (sip-tester)")
    if missing:
        pytest.fail(f"missing: {', '.join(missing)}; run scripts/setup.sh", pytrace=False)
    reason = netns_unavailable()
    if reason is not None:
        pytest.fail(f"a loopback-only network namespace is needed: {reason}", pytrace=False)


def test_wic_calls_a_sipp_phone_busy_and_echo_and_is_called_back() -> None:
    require_tools()
    r = run_python_in_netns(WORKER, [], timeout=240)
    assert r["service_route"].startswith("<sip:") and r["register_challenge"], r
    assert r["identity"] == "sip:alice@ims.test"
    # (a) busy: the reason is on the page, visibly
    assert r["busy_error_visible"] and "486" in r["busy_error"] and "Busy" in r["busy_error"], r["busy_error"]
    # (b) SIPp echoes: the browser's own tone comes back through the gateway's IWF as G.711
    assert r["echo_received"] >= 100 and r["echo_sent"] >= 100, r
    assert r["echo_energy"] > 0.01, r
    assert r["echo_codec"].startswith(("PCMU", "PCMA", "opus")), r["echo_codec"]
    # (c) SIPp calls back with PCMA and a recording; it hangs up
    assert r["incoming_from"] == "sip:phone@ims.test"
    assert r["callback_received"] >= 100 and r["callback_sent"] >= 100, r
    assert r["callback_energy"] > 0.01, r
    assert r["callback_sipp_sent_bye"] and "hung up" in r["callback_end_status"], r
    assert r["csp"] == [] and r["page_errors"] == []
