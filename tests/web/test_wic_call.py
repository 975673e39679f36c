"""Two WIC tabs call each other with audio (headless Chromium, loopback-only namespace).

The body is tests/web/call_worker.py: the client script server with a test
registrar and a minimal proxy on its SIP WebSocket route, and two tabs of one
Chromium.  What the gateway's sessions add later (IMS peers, media IWF) is
tested with them; this checks the WIC's side of every call state.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from webims.testing.netns import netns_unavailable, run_python_in_netns

WORKER = Path(__file__).with_name("call_worker.py")

pytestmark = pytest.mark.browser


def test_two_tabs_decline_cancel_call_hold_dtmf_and_hang_up() -> None:
    reason = netns_unavailable()
    if reason is not None:
        pytest.fail(f"a loopback-only network namespace is needed: {reason}", pytrace=False)
    r = run_python_in_netns(WORKER, [], timeout=240)
    # incoming call notice: focus on Answer, the caller's identity shown
    assert r["incoming_focus"] == "answer" and r["incoming_from"] == "sip:alice@ims.test"
    # errors and their reasons reach the UI
    assert r["declined"] == "Call failed: 603 Decline"
    assert r["cancelled_caller"] == "Call cancelled"
    assert r["cancelled_callee"] == "Missed call from sip:alice@ims.test"
    # audio both ways, Opus, with audio energy (Chromium's fake microphone beeps)
    for side in ("alice", "bob"):
        assert r[f"{side}_received"] >= 100 and r[f"{side}_sent"] >= 100
        assert r[f"{side}_energy"] > 0.01
        assert r[f"{side}_codec"] == "opus/48000"
    # DTMF: INFO shown at the far end; RFC 4733 sent through RTCDTMFSender
    assert r["dtmf_sent"] == "1#5" and r["dtmf_received"] == "1#"
    assert r["muted"] == "true" and r["held_pressed"] == "true"
    assert r["bob_sees_hold"] == "sip:alice@ims.test put the call on hold"
    assert r["hangup_seen"] == "sip:bob@ims.test hung up"
    assert r["last_call"].startswith("sip:bob@ims.test hung up, ")
    assert r["focus_after"] == "target"
    assert r["csp"] == [] and r["console_csp"] == [] and r["page_errors"] == []
    proxied = r["proxied"]
    # decline, cancel, call; INFO x2; hold and resume re-INVITEs with their ACKs; BYE
    assert proxied.count("INVITE") == 5 and proxied.count("CANCEL") == 1
    assert proxied.count("INFO") == 2 and proxied[-1] == "BYE"
