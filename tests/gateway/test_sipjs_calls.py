"""SIP.js (npm ``sip.js`` 0.21) in headless Chromium makes and takes calls with audio
through the gateway, with a Python IMS phone speaking plain RTP.

The body is tests/gateway/sipjs_call_worker.py, run in a loopback-only network
namespace (Chromium's ICE candidates on 127.0.0.1 only) with the system as
``webims demo`` runs it: the lab IMS core, the authorization function, the gateway
with its session B2BUA and external embedded media IWF. SIP.js registers as alice
with a web token (``Authorization: Bearer`` in the Registerer's and the Inviter's
``extraHeaders``, RFC 8898 §2.2); the phone (sip:phone@ims.test) registers with
digest and speaks RTP/AVP PCMU.

- SIP.js calls the phone: its DTLS-SRTP/ICE offer (RFC 8829) reaches the phone as
  plain RTP/AVP; audio both ways (SIP.js's RTCPeerConnection stats: >= 100 packets
  each way, totalAudioEnergy > 0.01; the phone: >= 100 PCMU packets that decode to
  sound); SIP.js hangs up (BYE) and the gateway holds no call, dialog or IWF session;
- the phone calls SIP.js: ``delegate.onInvite`` accepts the gateway's WebRTC offer;
  audio both ways; the phone hangs up and SIP.js's session is Terminated;
- SIP.js cancels (``Inviter.cancel()``, RFC 3261 §9.1) while the phone rings: the
  CANCEL reaches the phone, SIP.js gets the 487, nothing is left in the gateway;
- SIP.js and the WIC web app (JsSIP, bob with his IMS password, in a second tab) call
  each other both ways, with audio (both WebRTC legs through the gateway's IWF and
  the lab IMS core); each side hangs up once.

The sip.js bundle is made here with the checkout's esbuild (as in
test_gateway_sipjs.py) and handed to the worker. The tests fail, never skip, when
Chromium, playwright, esbuild, sip.js or network namespaces are missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_gateway_sipjs import sipjs_bundle

from webims.sdp import MediaDescription, SessionDescription
from webims.sdp import parse as parse_sdp
from webims.sip import Request, Response, parse
from webims.testing.browser import netns_browser_unavailable
from webims.testing.netns import run_python_in_netns

WORKER = Path(__file__).with_name("sipjs_call_worker.py")
WEBRTC = "UDP/TLS/RTP/SAVPF"  # RFC 5764 §8, as WebRTC offers it (RFC 8829 §5.2.1)

pytestmark = pytest.mark.browser


def run_scenario(name: str, tmp_path: Path) -> dict[str, Any]:
    why = netns_browser_unavailable()
    if why is not None:
        pytest.fail(why, pytrace=False)
    bundle = tmp_path / "sip.js"
    bundle.write_text(sipjs_bundle())
    result = run_python_in_netns(WORKER, ["--bundle", str(bundle), "--scenario", name], timeout=240)
    assert result["register"] == {"status": 200, "state": "Registered"}, result["register"]
    assert result["page_errors"] == [], result["page_errors"]
    return result


def messages(texts: list[str], start: str) -> list[Request | Response]:
    """The messages of a page's trace whose first line starts with ``start``, parsed by webims."""
    return [parse(t.encode()) for t in texts if t.startswith(start)]


def only_request(texts: list[str], method: str) -> Request:
    (request,) = messages(texts, f"{method} ")
    assert isinstance(request, Request)
    return request


def invite_answer(texts: list[str], status: int) -> Response:
    """The ``status`` response to an INVITE in a page's trace."""
    found = [
        m for m in messages(texts, f"SIP/2.0 {status} ")
        if isinstance(m, Response) and (m.headers.get("CSeq") or "").endswith(" INVITE")
    ]  # fmt: skip
    assert len(found) == 1, found
    return found[0]


def audio(sdp: SessionDescription) -> MediaDescription:
    (m,) = sdp.media
    assert m.media == "audio"
    return m


def webrtc_audio(body: bytes) -> MediaDescription:
    """The one audio stream of a WebRTC description: ICE, DTLS-SRTP, rtcp-mux."""
    sdp = parse_sdp(body)
    m = audio(sdp)
    assert m.proto == WEBRTC, m.proto
    assert sdp.fingerprints_for(m), "no a=fingerprint (RFC 8122)"
    assert m.ice_credentials is not None and m.candidates, "no ICE (RFC 8839)"
    assert all(c.address == "127.0.0.1" for c in m.candidates if c.component == 1), m.candidates
    assert m.rtcp_mux
    return m


def plain_audio(body: bytes) -> MediaDescription:
    """The one audio stream of a plain RTP description (what an IMS phone speaks)."""
    sdp = parse_sdp(body)
    m = audio(sdp)
    assert m.proto == "RTP/AVP", m.proto
    assert not sdp.fingerprints_for(m) and not m.candidates and m.ice_credentials is None
    assert not m.crypto
    return m


def names(m: MediaDescription) -> list[str]:
    return [c.name.upper() for c in m.codecs]


def sipjs_audio(stats: dict[str, Any]) -> None:
    """SIP.js's peer connection sent and got >= 100 packets, and what it got was sound."""
    assert stats["connection"] == "connected", stats
    assert stats["packetsReceived"] >= 100 and stats["packetsSent"] >= 100, stats
    assert stats["totalAudioEnergy"] > 0.01, stats  # the other end's tone, not silence
    assert stats["codecs"], stats


def audio_both_ways(result: dict[str, Any]) -> None:
    """SIP.js's peer connection and the phone both got >= 100 packets of sound."""
    sipjs_audio(result["sipjs_audio"])
    phone = result["phone_audio"]
    assert phone["packets"] >= 100 and phone["payload_types"] == [0], phone
    # Chromium's fake microphone (a beep) decoded from PCMU; silence decodes to 0.
    assert phone["rms"] > 100, phone


def nothing_left(result: dict[str, Any]) -> None:
    assert result["left"] == {"calls": 0, "dialogs": 0, "invites": 0, "iwf_sessions": 0}, result["left"]


def test_sipjs_calls_the_ims_phone_with_audio_and_hangs_up(tmp_path: Path) -> None:
    r = run_scenario("outgoing", tmp_path)
    invite = only_request(r["sent"], "INVITE")
    assert invite.headers.get("Authorization") == f"Bearer {r['token']}"  # the Inviter's extraHeaders
    assert (invite.headers.get("User-Agent") or "").startswith("SIP.js/")
    offered = webrtc_audio(invite.body)
    assert "OPUS" in names(offered) and "PCMU" in names(offered)
    # What the gateway sent toward the IMS: plain RTP/AVP from its IWF, the token kept back.
    at_phone = r["at_phone"]
    toward_ims = plain_audio(at_phone["sdp"].encode())
    assert "PCMU" in names(toward_ims) and "OPUS" not in names(toward_ims)
    assert at_phone["authorization"] is None
    assert at_phone["pai"] == "<sip:alice@ims.test>"
    # The phone's 180 and 200 reach SIP.js; the 200's answer is WebRTC again, in PCMU.
    assert r["responses"][-2:] == [180, 200], r["responses"]
    answered = webrtc_audio(invite_answer(r["received"], 200).body)
    assert set(names(answered)) <= set(names(offered)), names(answered)
    assert r["phone_acks"] == 1
    audio_both_ways(r)
    # SIP.js's BYE ends both legs.
    bye = only_request(r["sent"], "BYE")
    assert bye.headers.get("Call-ID") == invite.headers.get("Call-ID")
    assert r["bye_at_phone"]["call_id"] == r["bye_at_phone"]["invite_call_id"]
    assert r["hangup"] in ("Terminating", "Terminated")
    assert r["states"] == ["Initial", "Establishing", "Established", "Terminated"], r["states"]
    nothing_left(r)


def test_ims_phone_calls_sipjs_which_accepts_with_audio(tmp_path: Path) -> None:
    r = run_scenario("incoming", tmp_path)
    assert r["phone_final"] == 200 and 180 in r["phone_provisional"], r
    assert r["incoming_from"] == "sip:phone@ims.test"
    # The gateway's offer to SIP.js: WebRTC, for the phone's RTP/AVP PCMU offer.
    invite = only_request(r["received"], "INVITE")
    assert invite.headers.get("P-Asserted-Identity") == "<sip:phone@ims.test>"
    assert "PCMU" in names(webrtc_audio(invite.body))
    plain_audio(r["phone_offer"].encode())
    # SIP.js's answer (delegate.onInvite's accept()) is WebRTC; the phone gets RTP/AVP PCMU.
    answer = invite_answer(r["sent"], 200)
    assert "PCMU" in names(webrtc_audio(answer.body))
    assert names(plain_audio(r["phone_answer_sdp"].encode()))[0] == "PCMU"
    audio_both_ways(r)
    # The phone's BYE: SIP.js answers 200 and its session is Terminated.
    assert r["phone_bye"] == 200
    bye = only_request(r["received"], "BYE")
    assert bye.headers.get("Call-ID") == invite.headers.get("Call-ID")
    assert r["states"] == ["Initial", "Establishing", "Established", "Terminated"], r["states"]
    nothing_left(r)


def test_sipjs_cancels_while_the_phone_rings(tmp_path: Path) -> None:
    r = run_scenario("cancel", tmp_path)
    invite = only_request(r["sent"], "INVITE")
    assert invite.headers.get("Authorization") == f"Bearer {r['token']}"
    plain_audio(r["at_phone"]["sdp"].encode())
    cancel = only_request(r["sent"], "CANCEL")  # RFC 3261 §9.1: same Call-ID, CSeq number, branch
    assert cancel.headers.get("Call-ID") == invite.headers.get("Call-ID")
    assert cancel.headers.get("CSeq") == "1 CANCEL" and invite.headers.get("CSeq") == "1 INVITE"
    assert cancel.headers.get("Via") == invite.headers.get("Via")
    assert r["phone_cancelled"] is True  # the phone's INVITE transaction was cancelled
    assert r["responses"][-2:] == [180, 487], r["responses"]
    invite_answer(r["received"], 487)
    assert "Established" not in r["states"] and r["states"][-1] == "Terminated", r["states"]
    nothing_left(r)


def test_sipjs_and_the_jssip_web_client_call_each_other(tmp_path: Path) -> None:
    r = run_scenario("jssip", tmp_path)
    assert r["wic_identity"] == "sip:bob@ims.test"
    # SIP.js calls bob: the WIC rings, answers; audio both ways; bob hangs up.
    assert r["wic_incoming_from"] == "sip:alice@ims.test"
    invites = [m for m in messages(r["sent"], "INVITE ") if isinstance(m, Request)]
    assert len(invites) == 1 and invites[0].headers.get("Authorization") == f"Bearer {r['token']}"
    assert r["responses"][-2:] == [180, 200], r["responses"]
    sipjs_audio(r["sipjs_audio"])
    for side in ("wic", "wic2"):
        assert r[f"{side}_received"] >= 100 and r[f"{side}_sent"] >= 100, (side, r)
        assert r[f"{side}_energy"] > 0.01, (side, r)
    # In the call, the gateway holds both halves: alice's originating and bob's terminating.
    assert r["left_in_call"]["calls"] == 2 and r["left_in_call"]["iwf_sessions"] == 2, r["left_in_call"]
    assert r["states"] == ["Initial", "Establishing", "Established", "Terminated"], r["states"]
    bye = only_request(r["received"], "BYE")  # bob's, relayed to SIP.js
    assert bye.headers.get("Call-ID") == invites[0].headers.get("Call-ID")
    assert r["left_after_first"] == {"calls": 0, "dialogs": 0, "invites": 0, "iwf_sessions": 0}
    # bob calls SIP.js: delegate.onInvite accepts; audio both ways; SIP.js hangs up.
    assert r["incoming_from"] == "sip:bob@ims.test"
    incoming = only_request(r["received"], "INVITE")
    webrtc_audio(incoming.body)
    sipjs_audio(r["sipjs_audio2"])
    assert r["states2"] == ["Initial", "Establishing", "Established", "Terminated"], r["states2"]
    (sipjs_bye,) = [m for m in messages(r["sent"], "BYE ") if isinstance(m, Request)]
    assert sipjs_bye.headers.get("Call-ID") == incoming.headers.get("Call-ID")
    assert "hung up" in r["wic_status"], r["wic_status"]
    nothing_left(r)
