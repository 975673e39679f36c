"""Headless Chromium (the WIC web app on JsSIP) calling through the gateway and the lab core.

The body is tests/gateway/browser_call_worker.py, run in a loopback-only network
namespace; it starts the system as ``webims demo`` does. Tab A logs in with a web
account (web-token), tab B with its IMS password (ims-digest); a Python IMS phone
speaks plain RTP. Audio is checked at the browsers (>= 100 packets, totalAudioEnergy
> 0.01) for A<->B (the gateway's IWF and the lab MRF both in the path), A->phone (the
gateway's external embedded IWF) and phone->A (the lab MRF). Screenshots of each
state are in test-artifacts/gateway/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from webims.testing.netns import netns_unavailable, run_python_in_netns

WORKER = Path(__file__).with_name("browser_call_worker.py")

pytestmark = pytest.mark.browser


def test_two_tabs_and_an_ims_phone_call_through_the_gateway() -> None:
    reason = netns_unavailable()
    if reason is not None:
        pytest.fail(f"a loopback-only network namespace is needed: {reason}", pytrace=False)
    r = run_python_in_netns(WORKER, [], timeout=300)
    assert r["a_identity"] == "sip:alice@ims.test" and r["b_identity"] == "sip:bob@ims.test"
    assert "480" in r["unregistered"] or "Temporarily" in r["unregistered"], r["unregistered"]
    assert r["incoming_from"] == "sip:alice@ims.test"
    assert "603" in r["declined"], r["declined"]
    assert "sip:alice@ims.test" in r["cancelled_callee"]
    for side in ("a", "b", "a_phone", "a_from_phone"):
        assert r[f"{side}_received"] >= 100 and r[f"{side}_sent"] >= 100, (side, r)
        assert r[f"{side}_energy"] > 0.01, (side, r)
    assert r["dtmf_sent"] == "1#5" and r["dtmf_received"] == "1#"
    assert "hold" in r["b_sees_hold"] and r["resumed_packets"] >= 50
    assert "hung up" in r["hangup_seen"]
    assert r["phone_offer_proto"] == "RTP/AVP" and r["phone_received"] >= 100
    assert r["phone_call_status"] == 200 and r["phone2_received"] >= 100 and r["phone_bye"] == 200
    assert r["csp"] == [] and r["page_errors"] == []
