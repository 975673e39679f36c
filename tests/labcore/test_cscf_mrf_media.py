"""Media interworking inside the IMS, end to end with real media (seed 004 §6.X.2.3.1-2).

The lab core runs as ``webims serve labcore`` runs it with ``[labcore]
media_interworking = "auto"``: ``start_labcore(config, iwf="auto")`` starts the
embedded media IWF and hands it to the S-CSCF as its MRF.  Two UEs register
through the I-CSCF with SIP Digest: a WIC behind a gateway (WebSocket contact
with ``+sip.ice``, reached through the gateway's Path) whose media is a
:class:`~webims.testing.media_peers.WebRtcPeer` (aioice ICE, DTLS-SRTP,
rtcp-mux), and a plain phone whose media is a
:class:`~webims.testing.media_peers.RtpPeer` (RTP/AVP, PCMU).  Nothing is faked:
SIP, Diameter, ICE, DTLS and RTP all cross loopback sockets.

The seed's steps, checked as they happen:

- §6.X.2.3.1 (WIC calls): the S-CSCF initialises the IWF before the callee sees
  the INVITE, whose offer is the IWF's RTP/AVP (steps 7-9); the caller's 200 OK
  carries the IWF's ICE/DTLS answer; the session is confirmed on the 200 only
  (step 16), not on the 180;
- §6.X.2.3.2 (WIC is called): the WIC gets the IWF's ICE/DTLS offer (steps 1-4
  through the S-CSCF), the caller the IWF's RTP/AVP answer (steps 9-12), the
  session is confirmed on the 200 (steps 18-23);
- then ICE and DTLS complete between the WebRTC peer and the IWF, each side
  sends three seconds of a tone (WebRTC 441 Hz, RTP 1001 Hz), at least 140 of
  150 packets must arrive each way carrying the other side's tone, in order; and
  the BYE releases the IWF session: no session left, every port closed, no
  more media relayed.

Each direction runs with the browser on PCMU (relayed without decoding: the
payload bytes must arrive unchanged and in sequence) and on Opus (transcoded).
The last test does the WIC-originated call with headless Chromium in a
loopback-only network namespace (mrf_media_browser_worker.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from labcore_harness import REALM, Ue, eventually
from mrf_media_helpers import (
    TONE_IMS,
    TONE_WEBRTC,
    decode,
    lab_core_with_iwf,
    port_is_free,
    register_plain,
    register_wic,
    relayed_in_order,
    tone_ratio,
)

from webims.endpoint import IncomingRequest
from webims.labcore import LabCore
from webims.media.dtls import DtlsState
from webims.media.embedded import EmbeddedMediaIWF, EmbeddedSession
from webims.media.negotiate import AudioStream, audio_stream
from webims.media.ports import PortAllocator
from webims.sdp import OPUS, PCMU, TELEPHONE_EVENT_8000, TELEPHONE_EVENT_48000, Codec, parse
from webims.sip import Dialog, Request, Response, new_tag
from webims.testing.browser import assert_browser_audio, netns_browser_unavailable
from webims.testing.media_peers import RtpPeer, WebRtcPeer
from webims.testing.netns import run_python_in_netns

SDP = "application/sdp"
#: The browser's codecs: PCMU (the IWF relays) or Opus only (the IWF transcodes to PCMU).
BROWSER: dict[str, list[Codec]] = {
    "pcmu": [PCMU, TELEPHONE_EVENT_8000],
    "opus": [OPUS, TELEPHONE_EVENT_48000],
}
PHONE = [PCMU, TELEPHONE_EVENT_8000]
SECONDS = 3.0
SENT = int(SECONDS / 0.02)  # packets each side sends
MIN_RECEIVED = 140  # of SENT = 150 (>= 100 asked; a few may be lost on a busy machine)
WORKER = Path(__file__).with_name("mrf_media_browser_worker.py")


@dataclass
class Lab:
    core: LabCore
    iwf: EmbeddedMediaIWF
    peers: PortAllocator  # the test peers' ports (the IWF has 40000-49999)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with lab_core_with_iwf(tmp_path) as (core, iwf):
        yield Lab(core, iwf, PortAllocator(51000, 51499))
        assert iwf.sessions() == [], "IWF sessions left over"
        assert iwf.ports.in_use == frozenset(), f"IWF ports left over: {sorted(iwf.ports.in_use)}"


# -- pieces -------------------------------------------------------------------------------------


def the_session(iwf: EmbeddedMediaIWF) -> EmbeddedSession:
    """The one IWF session the S-CSCF made for this call."""
    ids = iwf.sessions()
    assert len(ids) == 1, f"expected one IWF session, got {ids}"
    session = iwf.session(ids[0])
    assert session is not None and session.webrtc is not None and session.ims is not None
    return session


def check_ims_side(sdp: bytes, session: EmbeddedSession) -> AudioStream:
    """A plain RTP/AVP description at the IWF's IMS leg (no ICE, no DTLS)."""
    assert session.ims is not None
    stream = audio_stream(parse(sdp))
    assert stream.proto == "RTP/AVP", stream.proto
    assert (stream.address, stream.port) == ("127.0.0.1", session.ims.port), (stream.address, stream.port)
    assert stream.ice is None and not stream.fingerprints and not stream.candidates
    assert "PCMU" in [c.name for c in stream.media_codecs]
    return stream


def check_webrtc_side(sdp: bytes, session: EmbeddedSession, iwf: EmbeddedMediaIWF) -> AudioStream:
    """An ICE + DTLS-SRTP description whose candidates and fingerprint are the IWF's."""
    assert session.webrtc is not None
    stream = audio_stream(parse(sdp))
    assert stream.proto == "UDP/TLS/RTP/SAVPF", stream.proto
    assert stream.ice is not None and stream.ice.ufrag == session.webrtc.ice.local_username
    assert list(stream.fingerprints) == [iwf.certificate.fingerprint()]
    assert {(c.address, c.port) for c in stream.candidates} == {("127.0.0.1", session.webrtc.ice.port)}
    return stream


async def check_ice_dtls(web: WebRtcPeer, session: EmbeddedSession) -> None:
    """ICE selected a pair with the IWF's candidate, DTLS is up on both ends, no failure."""
    assert session.webrtc is not None
    assert await web.connected(20.0), f"WebRTC peer failed: {web.leg.failed} {web.failures}"
    pair = web.leg.ice.selected
    assert pair is not None and tuple(pair.remote_addr) == ("127.0.0.1", session.webrtc.ice.port)
    assert web.leg.dtls is not None and web.leg.dtls.state is DtlsState.CONNECTED
    iwf_leg = session.webrtc
    await asyncio.wait_for(iwf_leg.connected.wait(), 20.0)
    assert not iwf_leg.failed, iwf_leg.failed
    assert iwf_leg.dtls is not None and iwf_leg.dtls.state is DtlsState.CONNECTED


async def exchange_media(web: WebRtcPeer, rtp: RtpPeer, session: EmbeddedSession, relay: bool) -> None:
    """Both sides send a tone at once; each must get the other's, in order, through the IWF."""
    await asyncio.gather(web.send_tone(SECONDS, TONE_WEBRTC), rtp.send_tone(SECONDS, TONE_IMS))
    await eventually(
        lambda: rtp.recorder.count >= MIN_RECEIVED and web.recorder.count >= MIN_RECEIVED, timeout=10.0
    )
    plan = session.plan
    assert plan is not None and plan.transcode is not relay, plan
    # Toward the phone: PCMU at the payload type it answered/offered, with the browser's tone.
    assert {p[1] & 0x7F for p in rtp.received} == {rtp.codec.payload_type}
    heard = decode(rtp.codec, rtp.received, 8000)
    assert tone_ratio(heard, 8000, TONE_WEBRTC, TONE_IMS) > 20, "phone did not get the browser's tone"
    # Toward the browser: its codec, with the phone's tone.
    assert {p[1] & 0x7F for p in web.received} == {web.codec.payload_type}
    rate = 16000 if web.codec.name == "opus" else 8000
    heard = decode(web.codec, web.received, rate)
    assert tone_ratio(heard, rate, TONE_IMS, TONE_WEBRTC) > 20, "browser did not get the phone's tone"
    for peer in (rtp, web):
        rx = peer.reception
        assert rx is not None
        assert rx.expected - rx.received <= SENT - MIN_RECEIVED, (rx.expected, rx.received)
    if relay:  # same payload bytes, sequence preserved (only the header rewritten)
        web_frames = [f for f, _ in web.tone_frames(1.0, TONE_WEBRTC)]
        rtp_frames = [f for f, _ in rtp.tone_frames(1.0, TONE_IMS)]
        assert relayed_in_order(rtp.received, web_frames) >= MIN_RECEIVED
        assert relayed_in_order(web.received, rtp_frames) >= MIN_RECEIVED
    webrtc_stats, ims_stats = session.stats()
    assert webrtc_stats.packets_received >= MIN_RECEIVED and ims_stats.packets_sent >= MIN_RECEIVED
    assert ims_stats.packets_received >= MIN_RECEIVED and webrtc_stats.packets_sent >= MIN_RECEIVED


async def check_released(
    lab: Lab, session: EmbeddedSession, ports: Sequence[int], web: WebRtcPeer, rtp: RtpPeer
) -> None:
    """After the BYE: no IWF session, its ports closed, nothing relayed any more."""
    await eventually(lambda: lab.iwf.sessions() == [], timeout=10.0)
    assert session.released and session.release_reason.startswith("BYE"), session.release_reason
    assert lab.iwf.ports.in_use == frozenset(), sorted(lab.iwf.ports.in_use)
    assert all(port_is_free("127.0.0.1", p) for p in ports), ports
    assert lab.core.scscf.mrf.inserted == 1
    before = web.recorder.count
    for payload, step in rtp.tone_frames(0.2, TONE_IMS):
        rtp.send_frame(payload, step=step)
    await asyncio.sleep(0.5)
    assert web.recorder.count == before, "media still relayed after the BYE"


def iwf_ports(session: EmbeddedSession) -> list[int]:
    assert session.ims is not None and session.webrtc is not None
    return [session.ims.port, session.ims.port + 1, session.webrtc.ice.port]


async def next_invite(ue: Ue) -> IncomingRequest:
    incoming = await asyncio.wait_for(ue.incoming.get(), 15.0)
    assert incoming.request.method == "INVITE", incoming.request.method
    return incoming


async def ringing_then_answer(
    callee: Ue,
    incoming: IncomingRequest,
    provisional: list[Response],
    session: EmbeddedSession,
    answer: bytes,
) -> Response:
    """180 (the session stays unconfirmed: step 16 / 18-23 wait for the answer), then 200."""
    tag = new_tag()
    contact = [("Contact", f"<{callee.contact_uri}>")]
    incoming.respond(180, to_tag=tag, headers=contact)
    await eventually(lambda: any(r.status == 180 for r in provisional), timeout=10.0)
    assert not session.confirmed
    return incoming.respond(200, to_tag=tag, headers=[*contact, ("Content-Type", SDP)], body=answer)


async def invite(
    caller: Ue, callee: Ue, body: bytes
) -> tuple[Request, list[Response], asyncio.Task[Response]]:
    request = caller.request("INVITE", f"sip:{callee.user}@{REALM}", body=body, content_type=SDP)
    provisional: list[Response] = []
    task = asyncio.create_task(caller.send(request, on_provisional=provisional.append))
    return request, provisional, task


async def close(web: WebRtcPeer, rtp: RtpPeer, *tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await web.close()
    rtp.close()


# -- §6.X.2.3.1: the WIC calls a plain RTP/AVP phone ----------------------------------------------


@pytest.mark.parametrize("codec", ["pcmu", "opus"])
async def test_webrtc_caller_to_plain_rtp_callee(lab: Lab, codec: str) -> None:
    async with Ue(lab.core, "alice") as alice, Ue(lab.core, "bob", answer=[]) as bob:
        await register_wic(alice)
        await register_plain(bob)
        web, rtp = WebRtcPeer(lab.peers), RtpPeer(lab.peers)
        await rtp.open()
        sending: asyncio.Task[Response] | None = None
        try:
            offer = await web.offer(BROWSER[codec])
            request, provisional, sending = await invite(alice, bob, offer.to_bytes())
            incoming = await next_invite(bob)
            # Steps 7-9: the IWF is initialised before the callee sees the INVITE; the
            # callee gets the IWF's RTP/AVP offer instead of the browser's.
            session = the_session(lab.iwf)
            assert session.originating is True and session.plan is None
            check_ims_side(incoming.request.body, session)
            phone_answer = rtp.answer(parse(incoming.request.body), PHONE)
            ok = await ringing_then_answer(bob, incoming, provisional, session, phone_answer.to_bytes())
            final = await asyncio.wait_for(sending, 15.0)
            assert final.status == 200, final
            assert session.confirmed  # step 16: the S-CSCF confirmed on the 200
            dialog = Dialog.from_uac(request, final)
            await alice.send_in_dialog(dialog.create_ack(request))
            # The caller gets the IWF's ICE/DTLS-SRTP answer (not the phone's RTP/AVP one).
            assert ok.body == phone_answer.to_bytes() and final.body != ok.body
            check_webrtc_side(final.body, session, lab.iwf)
            await web.accept(parse(final.body))
            await check_ice_dtls(web, session)
            await exchange_media(web, rtp, session, relay=codec == "pcmu")
            ports = iwf_ports(session)
            bye = await alice.send_in_dialog(dialog.create_request("BYE"))
            assert bye is not None and bye.status == 200, bye
            assert any(r.method == "BYE" for r in bob.received)
            await check_released(lab, session, ports, web, rtp)
        finally:
            await close(web, rtp, *([sending] if sending is not None else []))


# -- §6.X.2.3.2: a plain RTP/AVP phone calls the WIC ----------------------------------------------


@pytest.mark.parametrize("codec", ["pcmu", "opus"])
async def test_plain_rtp_caller_to_webrtc_callee(lab: Lab, codec: str) -> None:
    async with Ue(lab.core, "alice") as alice, Ue(lab.core, "bob", answer=[]) as bob:
        await register_plain(alice)
        await register_wic(bob)
        web, rtp = WebRtcPeer(lab.peers), RtpPeer(lab.peers)
        await rtp.open()
        sending: asyncio.Task[Response] | None = None
        try:
            request, provisional, sending = await invite(alice, bob, rtp.offer(PHONE).to_bytes())
            incoming = await next_invite(bob)
            # Steps 1-5: the WIC (through the gateway's Path) gets the IWF's WebRTC offer.
            assert "transport=ws" in str(incoming.request.uri)
            session = the_session(lab.iwf)
            assert session.originating is False
            stream = check_webrtc_side(incoming.request.body, session, lab.iwf)
            assert stream.setup == "actpass"
            wic_answer = await web.answer(parse(incoming.request.body), BROWSER[codec])
            ok = await ringing_then_answer(bob, incoming, provisional, session, wic_answer.to_bytes())
            final = await asyncio.wait_for(sending, 15.0)
            assert final.status == 200, final
            assert session.confirmed  # steps 18-23
            dialog = Dialog.from_uac(request, final)
            await alice.send_in_dialog(dialog.create_ack(request))
            # Steps 9-12: the caller gets the IWF's RTP/AVP answer, not the WIC's.
            check_ims_side(final.body, session)
            rtp.take(parse(final.body))
            await check_ice_dtls(web, session)
            await exchange_media(web, rtp, session, relay=codec == "pcmu")
            ports = iwf_ports(session)
            # This time the WIC hangs up (its BYE crosses the S-CSCF on the Record-Route).
            wic_dialog = Dialog.from_uas(incoming.request, ok)
            bye = await bob.send_in_dialog(wic_dialog.create_request("BYE"))
            assert bye is not None and bye.status == 200, bye
            assert any(r.method == "BYE" for r in alice.received)
            await check_released(lab, session, ports, web, rtp)
        finally:
            await close(web, rtp, *([sending] if sending is not None else []))


# -- headless Chromium as the WIC's media ---------------------------------------------------------


def _require_browser() -> None:
    reason = netns_browser_unavailable()
    if reason is not None:
        pytest.fail(reason, pytrace=False)


@pytest.mark.browser
def test_chromium_caller_to_plain_rtp_callee_through_the_scscf() -> None:
    """Chromium (fake microphone) calls the plain phone; the S-CSCF inserts the IWF (Opus <-> PCMU)."""
    _require_browser()
    result = run_python_in_netns(WORKER, ["--seconds", "5"], timeout=180)
    assert "page_error" not in result, result["page_error"]
    assert result["registered"] == [200, 200], result["registered"]
    assert result["invite_status"] == 200, result
    assert result["callee_offer_proto"] == "RTP/AVP" and result["callee_offer_at_iwf"], result
    assert result["answer_from_iwf"], result
    assert_browser_audio(result, "opus")  # >= 100 packets with energy at the browser
    phone = result["rtp_peer"]
    assert phone["packets_received"] >= 100, phone
    assert phone["payload_types"] == [0], phone  # PCMU toward the IMS side
    assert phone["rms"] > 300, phone  # the fake microphone beeps; silence decodes to ~0
    assert result["plan"].endswith("(transcode)"), result["plan"]
    webrtc, ims = result["iwf"]
    assert webrtc["side"] == "webrtc" and ims["side"] == "ims", result["iwf"]
    assert webrtc["packets_received"] >= 100 and ims["packets_received"] >= 100, result["iwf"]
    assert webrtc["packets_sent"] >= 100 and ims["packets_sent"] >= 100, result["iwf"]
    assert result["bye_status"] == 200, result
    assert result["sessions_left"] == [] and result["ports_left"] == [], result
    assert result["inserted"] == 1, result
