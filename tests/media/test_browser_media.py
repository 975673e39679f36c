"""Real media: headless Chromium (fake microphone) <-> embedded IWF <-> plain RTP peer.

The body (browser_worker.py) runs in a loopback-only network namespace
(webims.testing.netns) with the IWF, the RTP peer and the page server, so
Chromium can use no other interface.  On the browser side at least 100
packets must arrive with getStats ``totalAudioEnergy`` > 0.01 (a silent
source measures ~5e-9); on the RTP side the browser's audio must arrive with
real energy in PCMU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from webims.testing.browser import assert_browser_audio, netns_browser_unavailable
from webims.testing.netns import run_python_in_netns

WORKER = Path(__file__).with_name("browser_worker.py")

pytestmark = pytest.mark.browser


def _require() -> None:
    reason = netns_browser_unavailable()
    if reason is not None:
        pytest.fail(reason, pytrace=False)


def _run(codec: str) -> dict[str, Any]:
    _require()
    return run_python_in_netns(WORKER, ["--codec", codec, "--seconds", "5"], timeout=150)


def _check(result: dict[str, Any], webrtc_codec: str, transcode: bool) -> None:
    assert_browser_audio(result, webrtc_codec)  # >= 100 packets with energy, codec negotiated
    peer = result["rtp_peer"]
    assert peer["packets_received"] >= 100, peer
    assert peer["payload_types"] == [0], peer  # PCMU toward the IMS side
    assert peer["rms"] > 300, peer  # the browser's fake microphone beeps; silence decodes to ~0
    kind = "transcode" if transcode else "relay"
    assert result["plan"].endswith(f"({kind})"), result["plan"]
    webrtc, ims = result["iwf"]
    assert webrtc["side"] == "webrtc" and ims["side"] == "ims"
    assert webrtc["packets_received"] >= 100 and ims["packets_received"] >= 100
    assert webrtc["mos"] > 3.5 and ims["mos"] > 3.5
    assert result["sessions_left"] == [] and result["ports_left"] == []
    assert result["events"] == []


def test_chromium_pcmu_passthrough() -> None:
    result = _run("pcmu")
    _check(result, "pcmu", transcode=False)
    assert "a=rtpmap:0 PCMU/8000" in result["answer"]


def test_chromium_opus_to_pcmu_transcoding() -> None:
    result = _run("opus")
    _check(result, "opus", transcode=True)
    assert "opus/48000/2" in result["answer"]
    assert "PCMU" not in result["answer"]
    assert "transport-cc" not in result["answer"]
