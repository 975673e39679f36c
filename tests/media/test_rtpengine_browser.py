"""Real media: headless Chromium (fake microphone) <-> rtpengine (via RtpengineIWF) <-> plain RTP peer.

The body (rtpengine_browser_worker.py) runs in a loopback-only network namespace
(webims.testing.netns) with rtpengine, the backend, the RTP peer and the page
server, so Chromium can use no other interface.  Browser side: ICE + DTLS-SRTP
with rtpengine, at least 100 packets with getStats ``totalAudioEnergy`` > 0.01
(a silent source measures ~5e-9); RTP side: the browser's audio in PCMU with real
energy; no call left on rtpengine afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from webims.testing.browser import assert_browser_audio, netns_browser_unavailable
from webims.testing.netns import run_python_in_netns

WORKER = Path(__file__).with_name("rtpengine_browser_worker.py")

pytestmark = pytest.mark.browser


def _run(codec: str) -> dict[str, Any]:
    reason = netns_browser_unavailable()
    if reason is not None:
        pytest.fail(reason, pytrace=False)
    return run_python_in_netns(WORKER, ["--codec", codec, "--seconds", "4"], timeout=150)


def _check(result: dict[str, Any], webrtc_codec: str) -> None:
    assert_browser_audio(result, webrtc_codec)  # >= 100 packets with energy, codec negotiated
    peer = result["rtp_peer"]
    assert peer["packets_received"] >= 100, peer
    assert peer["payload_types"] == [0], peer  # PCMU toward the IMS side
    assert peer["rms"] > 300, peer  # the fake microphone beeps; silence decodes to ~0
    webrtc, ims = result["iwf"]
    assert (webrtc["side"], ims["side"]) == ("webrtc", "ims")
    assert webrtc["codec"].lower() == webrtc_codec and ims["codec"] == "PCMU"
    assert webrtc["packets_received"] >= 100 and ims["packets_received"] >= 100
    assert result["events"] == []
    assert result["sessions_left"] == [] and result["calls_left"] == []
    # The IMS side saw plain RTP/AVP without ICE or DTLS.
    ims_offer = result["ims_offer"]
    assert " RTP/AVP " in ims_offer and "a=candidate" not in ims_offer and "a=fingerprint" not in ims_offer


def test_chromium_pcmu_through_rtpengine() -> None:
    result = _run("pcmu")
    _check(result, "pcmu")
    assert "PCMU/8000" in result["answer"] and "opus" not in result["answer"]


def test_chromium_opus_to_pcmu_through_rtpengine() -> None:
    result = _run("opus")
    _check(result, "opus")
    assert "opus/48000/2" in result["answer"] and "PCMU" not in result["answer"]
    assert "opus" not in result["ims_offer"]
