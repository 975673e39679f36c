"""Media interworking by an external IWF the gateway drives (seed 004 §6.X.2.3.3-4), with real media.

The WIC side is a WebRTC stand-in (ICE, DTLS-SRTP, rtcp-mux: webims.testing's
WebRtcPeer) behind a scripted WIC on WSS; the IMS side a plain RTP/AVP phone
registered to the lab core. The gateway drives the embedded IWF: offer_from_webrtc
on the WIC's INVITE, answer_from_ims on the answer, confirm on the 200, release on
BYE; offer_from_ims / answer_from_webrtc when the phone calls the WIC. Audio and
RFC 4733 events cross it both ways; the IWF's sessions are gone after each call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from conftest import PASSWORDS, Lab, LabFactory
from ims_phone import ImsPhone
from session_lab import eventually, session_lab, wics
from session_wic import direction_of

from webims.gateway.sessions import SessionManager
from webims.media.embedded import EmbeddedConfig, EmbeddedMediaIWF
from webims.media.ports import PortAllocator
from webims.media.rtp import parse_rtp
from webims.sdp import OPUS, PCMU, TELEPHONE_EVENT_8000, TELEPHONE_EVENT_48000, parse
from webims.testing.media_peers import RtpPeer, WebRtcPeer


@contextlib.asynccontextmanager
async def external(make_lab: LabFactory) -> AsyncIterator[tuple[Lab, SessionManager, EmbeddedMediaIWF]]:
    iwf = EmbeddedMediaIWF(
        EmbeddedConfig(port_min=44000, port_max=44199, ice_timeout=5.0, dtls_timeout=5.0, timer_interval=0.1)
    )
    await iwf.start()
    try:
        async with session_lab(make_lab, media="external", iwf=iwf) as (lab, mgr):
            yield lab, mgr, iwf
    finally:
        await iwf.close()


async def test_wic_calls_an_rtp_phone_through_the_iwf(make_lab: LabFactory) -> None:
    peers = PortAllocator(45000, 45099)
    async with external(make_lab) as (lab, _mgr, iwf):
        (alice,) = await wics(lab, "alice")
        bob = ImsPhone(lab.core, "bob", PASSWORDS["bob"])
        await bob.start()
        assert (await bob.register()).status == 200
        web, rtp = WebRtcPeer(peers), RtpPeer(peers)
        await rtp.open()
        try:
            offer = await web.offer([OPUS, PCMU, TELEPHONE_EVENT_48000, TELEPHONE_EVENT_8000])
            sent = await alice.invite("sip:bob@ims.test", offer.to_bytes())
            got = await bob.next_request("INVITE")
            ims_offer = parse(got.request.body)
            # steps 2-4: the IMS sees the IWF's plain RTP offer, not the browser's
            assert [m.proto for m in ims_offer.media] == ["RTP/AVP"]
            assert b"fingerprint" not in got.request.body and b"ice-ufrag" not in got.request.body
            assert len(iwf.sessions()) == 1
            answer = rtp.answer(ims_offer, [PCMU, TELEPHONE_EVENT_8000])
            bob.respond(got, 180)
            bob.respond(got, 200, body=answer.to_bytes())
            ok = await alice.final(sent)
            assert ok.status == 200
            webrtc_answer = parse(ok.body)
            assert webrtc_answer.media[0].proto == "UDP/TLS/RTP/SAVPF"
            dialog = alice.dialog_from(sent, ok)
            await alice.ack(dialog)
            await web.accept(webrtc_answer)
            assert await web.connected()
            sent_packets = await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0, freq=1000))
            await eventually(lambda: rtp.recorder.count >= 45 and web.recorder.count >= 45)
            assert min(sent_packets) >= 45
            # RFC 4733: a key press on the browser reaches the phone as telephone-event
            web.send_event(5, 101 if web.codec.clock_rate == 8000 else 110, web.codec.clock_rate, packets=4)
            await eventually(lambda: any(parse_rtp(p).payload_type == 101 for p in rtp.received))
            # hold: the phone is asked for recvonly... by a re-INVITE through the IWF
            hold = await web.offer([OPUS, PCMU, TELEPHONE_EVENT_48000, TELEPHONE_EVENT_8000])
            hold.media[0].direction = "sendonly"
            pending = asyncio.ensure_future(alice.reinvite(dialog, hold.to_bytes()))
            reinvite = await bob.next_request("INVITE")
            assert direction_of(reinvite.request.body) == "sendonly"
            held = rtp.answer(parse(reinvite.request.body), [PCMU, TELEPHONE_EVENT_8000])
            held.media[0].direction = "recvonly"
            bob.respond(reinvite, 200, body=held.to_bytes())
            response = await pending
            assert response.status == 200 and direction_of(response.body) == "recvonly"
            bye = await alice.in_dialog(dialog, "BYE")
            assert (await alice.final(bye)).status == 200
            await bob.next_request("BYE")
            await eventually(lambda: not iwf.sessions())  # release on BYE
        finally:
            await web.close()
            rtp.close()
            await bob.close()
            await alice.close()


async def test_rtp_phone_calls_the_wic_through_the_iwf(make_lab: LabFactory) -> None:
    peers = PortAllocator(45100, 45199)
    async with external(make_lab) as (lab, _mgr, iwf):
        (alice,) = await wics(lab, "alice")
        bob = ImsPhone(lab.core, "bob", PASSWORDS["bob"])
        await bob.start()
        assert (await bob.register()).status == 200
        web, rtp = WebRtcPeer(peers), RtpPeer(peers)
        await rtp.open()
        try:
            request, final, provisional = await bob.invite(
                "sip:alice@ims.test", rtp.offer([PCMU, TELEPHONE_EVENT_8000]).to_bytes()
            )
            incoming = await alice.next_request("INVITE")
            webrtc_offer = parse(incoming.body)  # step 5: the IWF's WebRTC offer
            assert webrtc_offer.media[0].proto == "UDP/TLS/RTP/SAVPF"
            assert incoming.headers.get("P-Asserted-Identity") == "<sip:bob@ims.test>"
            webrtc_answer = await web.answer(webrtc_offer, [PCMU, TELEPHONE_EVENT_8000])
            await alice.answer(incoming, 180)
            await alice.answer(incoming, 200, body=webrtc_answer.to_bytes())
            response = await asyncio.wait_for(final, 10)
            assert response.status == 200
            assert [r.status for r in provisional if r.status > 100] == [180]
            ims_answer = parse(response.body)
            assert ims_answer.media[0].proto == "RTP/AVP"
            rtp.take(ims_answer)
            bob_dialog = await bob.ack_and_dialog(request, response)
            assert await web.connected()
            await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0))
            await eventually(lambda: rtp.recorder.count >= 45 and web.recorder.count >= 45)
            assert (await bob.send_in(bob_dialog, "BYE")).status == 200
            await alice.next_request("BYE")
            await eventually(lambda: not iwf.sessions())
        finally:
            await web.close()
            rtp.close()
            await bob.close()
            await alice.close()


async def test_iwf_refusal_reaches_the_wic_as_its_sip_status(make_lab: LabFactory) -> None:
    async with external(make_lab) as (lab, mgr, iwf):
        (alice,) = await wics(lab, "alice")
        try:
            plain = (
                b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            )
            final = await alice.final(await alice.invite("sip:bob@ims.test", plain))
            assert final.status == 488 and final.headers.get("Warning")  # MediaError(488) from the IWF
            assert not iwf.sessions() and not mgr.calls
        finally:
            await alice.close()


async def test_early_media_before_the_answer(make_lab: LabFactory) -> None:
    """A 183 with SDP: the IWF takes the answer (answer_from_ims), the WIC gets it in its 183, and the
    callee's announcement reaches the browser before the 200 (seed 004 §6.X.2.3.3 steps 8-11)."""
    peers = PortAllocator(45200, 45299)
    async with external(make_lab) as (lab, _mgr, iwf):
        (alice,) = await wics(lab, "alice")
        bob = ImsPhone(lab.core, "bob", PASSWORDS["bob"])
        await bob.start()
        assert (await bob.register()).status == 200
        web, rtp = WebRtcPeer(peers), RtpPeer(peers)
        await rtp.open()
        try:
            sent = await alice.invite(
                "sip:bob@ims.test", (await web.offer([PCMU, TELEPHONE_EVENT_8000])).to_bytes()
            )
            got = await bob.next_request("INVITE")
            answer = rtp.answer(parse(got.request.body), [PCMU, TELEPHONE_EVENT_8000])
            bob.respond(got, 183, to_tag="em", body=answer.to_bytes())
            await eventually(lambda: any(r.status == 183 and r.body for r in sent.provisional))
            early = next(r for r in sent.provisional if r.status == 183 and r.body)
            await web.accept(parse(early.body))
            assert await web.connected()
            await rtp.send_tone(1.0)  # the announcement
            await eventually(lambda: web.recorder.count >= 45)
            assert not sent.final.done()  # all of it before the answer
            bob.respond(got, 200, to_tag="em", body=answer.to_bytes())
            ok = await alice.final(sent)
            assert ok.status == 200 and parse(ok.body).media[0].proto == "UDP/TLS/RTP/SAVPF"
            dialog = alice.dialog_from(sent, ok)
            await alice.ack(dialog)
            assert (await alice.final(await alice.in_dialog(dialog, "BYE"))).status == 200
            await eventually(lambda: not iwf.sessions())
        finally:
            await web.close()
            rtp.close()
            await bob.close()
            await alice.close()


async def test_forked_early_answers_media_follows_the_fork_that_answers(make_lab: LabFactory) -> None:
    peers = PortAllocator(45300, 45399)
    async with external(make_lab) as (lab, _mgr, _iwf):
        (alice,) = await wics(lab, "alice")
        bob = ImsPhone(lab.core, "bob", PASSWORDS["bob"])
        await bob.start()
        assert (await bob.register()).status == 200
        web, first, second = WebRtcPeer(peers), RtpPeer(peers), RtpPeer(peers)
        await first.open()
        await second.open()
        try:
            sent = await alice.invite(
                "sip:bob@ims.test", (await web.offer([PCMU, TELEPHONE_EVENT_8000])).to_bytes()
            )
            got = await bob.next_request("INVITE")
            offer = parse(got.request.body)
            one, two = first.answer(offer, [PCMU]), second.answer(offer, [PCMU])
            bob.respond(got, 183, to_tag="fork1", body=one.to_bytes())
            bob.respond(got, 183, to_tag="fork2", body=two.to_bytes())  # the IWF now sends to fork 2
            await eventually(lambda: len([r for r in sent.provisional if r.status == 183]) == 2)
            bob.respond(got, 200, to_tag="fork1", body=one.to_bytes())  # ... but fork 1 answers
            ok = await alice.final(sent)
            await alice.ack(alice.dialog_from(sent, ok))
            await web.accept(parse(ok.body))
            assert await web.connected()
            await web.send_tone(1.0)
            await eventually(lambda: first.recorder.count >= 45)
            assert second.recorder.count < 5
        finally:
            await web.close()
            first.close()
            second.close()
            await bob.close()
            await alice.close()


async def test_rtpengine_as_the_external_iwf(make_lab: LabFactory, tmp_path: Path) -> None:
    """The same call with rtpengine (Debian ``rtpengine-daemon``) as the IWF the gateway drives."""
    from webims.media.rtpengine import RtpengineIWF
    from webims.testing.rtpengine import Rtpengine

    peers = PortAllocator(45400, 45499)
    with Rtpengine(tmp_path / "rtpengine") as daemon:
        iwf = RtpengineIWF(daemon.ng_address)
        await iwf.start()
        try:
            async with session_lab(make_lab, media="external", iwf=iwf) as (lab, _mgr):
                (alice,) = await wics(lab, "alice")
                bob = ImsPhone(lab.core, "bob", PASSWORDS["bob"])
                await bob.start()
                assert (await bob.register()).status == 200
                web, rtp = WebRtcPeer(peers), RtpPeer(peers)
                await rtp.open()
                try:
                    offer = await web.offer([PCMU, TELEPHONE_EVENT_8000])
                    sent = await alice.invite("sip:bob@ims.test", offer.to_bytes())
                    got = await bob.next_request("INVITE")
                    ims_offer = parse(got.request.body)
                    assert ims_offer.media[0].proto == "RTP/AVP" and daemon.calls()
                    bob.respond(got, 200, to_tag="re", body=rtp.answer(ims_offer, [PCMU]).to_bytes())
                    ok = await alice.final(sent)
                    dialog = alice.dialog_from(sent, ok)
                    await alice.ack(dialog)
                    await web.accept(parse(ok.body))
                    assert await web.connected()
                    await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0))
                    await eventually(lambda: rtp.recorder.count >= 45 and web.recorder.count >= 45)
                    assert (await alice.final(await alice.in_dialog(dialog, "BYE"))).status == 200
                    await eventually(lambda: not daemon.calls())  # released on BYE
                finally:
                    await web.close()
                    rtp.close()
                    await bob.close()
                    await alice.close()
        finally:
            await iwf.close()
