"""Delayed offer through the B2BUA (RFC 3261 §13.2.1, RFC 3264 §4-5): INVITEs without SDP.

A scripted WIC on WSS and a scripted IMS phone, through the gateway and the lab
core. Each test checks the offer in the 2xx and the answer in the ACK on both legs,
and that the 2xx is not ACKed toward its sender before the other side's answer is
in; with ``media = "external"`` the embedded IWF is driven at those steps (WebRTC
SDP on the WIC side, plain RTP on the IMS side, media flowing both ways). Also:
an ACK without an answer ends the call (§13.2.2.4), and re-INVITEs without SDP
(an AS refreshing the session) are answered with the leg's current SDP as the
offer, the other leg untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

from conftest import PASSWORDS, Lab, LabFactory
from ims_phone import ImsPhone, rtp_sdp
from session_lab import eventually, session_lab, wics
from session_wic import Dialog as WicDialog
from session_wic import SessionWic, chrome_answer, chrome_offer, closing

from webims.endpoint import SipEndpoint, Target
from webims.media.embedded import EmbeddedConfig, EmbeddedMediaIWF
from webims.media.ports import PortAllocator
from webims.sdp import PCMU, TELEPHONE_EVENT_8000, parse
from webims.sip import Dialog, Request, Response, new_tag, parse_uri
from webims.testing.media_peers import RtpPeer, WebRtcPeer

SDP = [("Content-Type", "application/sdp")]


@contextlib.asynccontextmanager
async def phone(lab: Lab, user: str = "bob") -> AsyncIterator[ImsPhone]:
    p = ImsPhone(lab.core, user, PASSWORDS[user])
    await p.start()
    assert (await p.register()).status == 200
    try:
        yield p
    finally:
        await p.close()


def offerless_invite(bob: ImsPhone, target: str) -> tuple[Request, asyncio.Future[Response], list[Response]]:
    """The phone's INVITE without SDP (no body, no Content-Type) on its Service-Route."""
    provisional: list[Response] = []
    request = Request("INVITE", target, [
        ("Max-Forwards", "70"), ("From", f"<{bob.aor}>;tag={new_tag()}"), ("To", f"<{target}>"),
        ("Call-ID", f"{secrets.token_hex(8)}@phone"), ("CSeq", "1 INVITE"), ("Contact", bob.contact),
        *[("Route", r) for r in bob.service_route], ("P-Asserted-Identity", f"<{bob.aor}>"),
        ("Allow", "INVITE, ACK, CANCEL, BYE, UPDATE, PRACK, INFO"),
    ])  # fmt: skip
    route = parse_uri(bob.service_route[0].strip("<>").split(">")[0].split(";")[0])
    hop = Target("UDP", route.host, route.port or 5060)  # type: ignore[union-attr]
    final = asyncio.ensure_future(bob.endpoint.request(request, hop, on_provisional=provisional.append))
    return request, final, provisional


async def ack_with(bob: ImsPhone, dialog: Dialog, invite: Request, body: bytes) -> None:
    """The phone's ACK for a 2xx to ``invite``, carrying ``body`` (its answer) when given."""
    ack = dialog.create_ack(invite, headers=SDP if body else [], body=body)
    conn = await bob._connect(ack)
    SipEndpoint.add_via(ack, conn)  # (send_stateless sends the message as it is)
    bob.endpoint.send_stateless(ack, conn)


async def wic_ack(wic: SessionWic, dialog: WicDialog, body: bytes) -> None:
    """The WIC's ACK carrying its SDP answer (RFC 3264 §5), as JsSIP sends it after a late offer."""
    lines = [
        f"ACK {dialog.target} SIP/2.0",
        f"Via: SIP/2.0/WSS {wic.host};branch=z9hG4bK{secrets.token_hex(6)}",
        "Max-Forwards: 70",
        f"From: {dialog.local}",
        f"To: {dialog.remote}",
        f"Call-ID: {dialog.call_id}",
        f"CSeq: {dialog.cseq} ACK",
        *[f"Route: {r}" for r in dialog.routes],
        "Content-Type: application/sdp",
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    await wic.send("\r\n".join(lines).encode() + body)


async def test_ims_calls_the_wic_without_sdp(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                request, final, provisional = offerless_invite(bob, "sip:alice@ims.test")
                incoming = await alice.next_request("INVITE")
                # the WIC's INVITE has no offer either: the WIC makes it (RFC 3261 §13.2.1)
                assert incoming.body == b"" and incoming.headers.get("Content-Type") is None
                await alice.answer(incoming, 180)
                await alice.answer(incoming, 200, body=chrome_offer())
                response = await asyncio.wait_for(final, 10)
                assert response.status == 200
                assert [r.status for r in provisional if r.status > 100] == [180]
                # the WIC's offer, as it is (media interworking in the IMS), is the 2xx's offer
                assert b"UDP/TLS/RTP/SAVPF" in response.body and response.content_type == "application/sdp"
                await asyncio.sleep(0.3)
                assert not alice.got("ACK")  # not before the IMS's answer is in
                bob_dialog = Dialog.from_uac(request, response)
                await ack_with(bob, bob_dialog, request, rtp_sdp())
                await eventually(lambda: alice.got("ACK"))
                (ack,) = alice.got("ACK")
                assert ack.call_id == incoming.call_id and ack.content_type == "application/sdp"
                assert b"m=audio 30000 RTP/AVP 0 101" in ack.body  # the phone's answer, in the WIC's ACK
                (call,) = mgr.calls.values()
                assert call.answered and call.ims.sdp.last_received is not None
                assert (await bob.send_in(bob_dialog, "BYE")).status == 200
                await alice.next_request("BYE")
                await eventually(lambda: not mgr.calls)
            finally:
                await closing(alice)


async def test_wic_calls_without_sdp(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                sent = await alice.invite("sip:bob@ims.test", b"")
                got = await bob.next_request("INVITE")
                assert got.request.body == b"" and got.request.headers.get("Content-Type") is None
                # no 100rel nor preconditions offered: the gateway has no SDP to put them in
                tags = got.request.option_tags("supported") | got.request.option_tags("require")
                assert not tags & {"100rel", "precondition"}
                # an unreliable 183 with SDP is no offer (RFC 3261 §13.2.1): the WIC gets it without SDP
                bob.respond(got, 183, to_tag="ph1", body=rtp_sdp())
                await eventually(lambda: any(r.status == 183 for r in sent.provisional))
                assert all(not r.body for r in sent.provisional)
                bob.respond(got, 200, to_tag="ph1", body=rtp_sdp(30004))
                ok = await alice.final(sent)
                assert ok.status == 200 and b"m=audio 30004 RTP/AVP" in ok.body  # the IMS's offer
                await asyncio.sleep(0.3)
                assert not bob.acks  # the IMS's 2xx waits for the WIC's answer
                dialog = alice.dialog_from(sent, ok)
                await wic_ack(alice, dialog, chrome_answer())
                await eventually(lambda: bob.acks)
                (ack,) = bob.acks
                assert ack.call_id == got.request.call_id and ack.content_type == "application/sdp"
                assert b"a=setup:active" in ack.body  # the WIC's answer in the IMS's ACK
                bye = await alice.in_dialog(dialog, "BYE")
                assert (await alice.final(bye)).status == 200
                await bob.next_request("BYE")
                await eventually(lambda: not mgr.calls)
            finally:
                await closing(alice)


async def test_ack_without_answer_ends_the_call(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                sent = await alice.invite("sip:bob@ims.test", b"")
                got = await bob.next_request("INVITE")
                bob.respond(got, 200, to_tag="ph1", body=rtp_sdp())
                ok = await alice.final(sent)
                dialog = alice.dialog_from(sent, ok)
                await alice.ack(dialog)  # no answer (RFC 3264 §5 says it must carry one)
                # the IMS's 2xx is still ACKed (§13.2.2.4), then both legs end
                bye = await bob.next_request("BYE")
                await eventually(lambda: bool(bob.acks))  # (ACK and BYE may cross on UDP)
                assert not bob.acks[0].body
                assert "cause=488" in (bye.request.headers.get("Reason") or "")
                await alice.next_request("BYE")
                await eventually(lambda: not mgr.calls)
            finally:
                await closing(alice)


async def test_reinvite_without_sdp_is_answered_on_its_leg(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                sent = await alice.invite("sip:bob@ims.test")
                got = await bob.next_request("INVITE")
                ok = bob.respond(got, 200, to_tag="ph1", body=rtp_sdp())
                final = await alice.final(sent)
                dialog = alice.dialog_from(sent, final)
                await alice.ack(dialog)
                bob_dialog = bob.uas_dialog(got, ok)
                # the IMS side (an AS refreshing the session): the gateway's SDP is the offer again,
                # the same version (RFC 3264 §8: nothing changed), and the answer comes in the ACK
                reinvite = bob_dialog.create_request("INVITE", headers=[("Contact", bob.contact)])
                response = await bob.endpoint.request(reinvite, await bob._connect(reinvite))
                assert response.status == 200 and response.content_type == "application/sdp"
                first, again = parse(got.request.body), parse(response.body)
                assert again.origin.sess_version == first.origin.sess_version
                assert again.media[0].port == first.media[0].port
                await ack_with(bob, bob_dialog, reinvite, rtp_sdp())
                # the WIC side: the same, on its own leg
                alice_sent = await alice.in_dialog(dialog, "INVITE")
                alice_ok = await alice.final(alice_sent)
                assert alice_ok.status == 200 and parse(alice_ok.body).origin == parse(final.body).origin
                saved = dialog.cseq
                await wic_ack(alice, dialog, chrome_answer())
                dialog.cseq = saved
                await asyncio.sleep(0.3)
                assert not alice.got("INVITE") and not bob.inbox  # the other legs saw nothing
                (call,) = mgr.calls.values()
                assert not call.ended and call.wic.ack_wait is None
                bye = await alice.in_dialog(dialog, "BYE")
                assert (await alice.final(bye)).status == 200
                await bob.next_request("BYE")
            finally:
                await closing(alice)


async def test_external_iwf_ims_calls_the_wic_without_sdp(make_lab: LabFactory) -> None:
    """media=external: the WIC's WebRTC offer (in its 200) -> offer_from_webrtc -> RTP offer in the
    IMS 200; the phone's RTP answer (in its ACK) -> answer_from_ims -> WebRTC answer in the WIC's ACK."""
    iwf = EmbeddedMediaIWF(
        EmbeddedConfig(port_min=46400, port_max=46499, ice_timeout=5.0, dtls_timeout=5.0, timer_interval=0.1)
    )
    await iwf.start()
    peers = PortAllocator(46500, 46599)
    web, rtp = WebRtcPeer(peers), RtpPeer(peers)
    await rtp.open()
    try:
        async with session_lab(make_lab, media="external", iwf=iwf) as (lab, mgr):
            (alice,) = await wics(lab, "alice")
            async with phone(lab) as bob:
                try:
                    request, final, _ = offerless_invite(bob, "sip:alice@ims.test")
                    incoming = await alice.next_request("INVITE")
                    assert incoming.body == b""
                    offer = await web.offer([PCMU, TELEPHONE_EVENT_8000])
                    await alice.answer(incoming, 200, body=offer.to_bytes())
                    response = await asyncio.wait_for(final, 10)
                    ims_offer = parse(response.body)
                    assert [m.proto for m in ims_offer.media] == ["RTP/AVP"]  # the IWF's plain RTP offer
                    assert len(iwf.sessions()) == 1
                    answer = rtp.answer(ims_offer, [PCMU, TELEPHONE_EVENT_8000])
                    bob_dialog = Dialog.from_uac(request, response)
                    await ack_with(bob, bob_dialog, request, answer.to_bytes())
                    await eventually(lambda: alice.got("ACK"))
                    webrtc_answer = parse(alice.got("ACK")[0].body)
                    assert webrtc_answer.media[0].proto == "UDP/TLS/RTP/SAVPF"
                    await web.accept(webrtc_answer)
                    assert await web.connected()
                    await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0))
                    await eventually(lambda: rtp.recorder.count >= 45 and web.recorder.count >= 45)
                    assert (await bob.send_in(bob_dialog, "BYE")).status == 200
                    await alice.next_request("BYE")
                    await eventually(lambda: not iwf.sessions() and not mgr.calls)
                finally:
                    await closing(alice)
    finally:
        await web.close()
        rtp.close()
        await iwf.close()


async def test_external_iwf_wic_calls_without_sdp(make_lab: LabFactory) -> None:
    """media=external, the mirror image: the phone's RTP offer (in its 200) -> offer_from_ims ->
    WebRTC offer in the WIC's 200; the WIC's answer (in its ACK) -> answer_from_webrtc -> the ACK."""
    iwf = EmbeddedMediaIWF(
        EmbeddedConfig(port_min=46600, port_max=46699, ice_timeout=5.0, dtls_timeout=5.0, timer_interval=0.1)
    )
    await iwf.start()
    peers = PortAllocator(46700, 46799)
    web, rtp = WebRtcPeer(peers), RtpPeer(peers)
    await rtp.open()
    try:
        async with session_lab(make_lab, media="external", iwf=iwf) as (lab, mgr):
            (alice,) = await wics(lab, "alice")
            async with phone(lab) as bob:
                try:
                    sent = await alice.invite("sip:bob@ims.test", b"")
                    got = await bob.next_request("INVITE")
                    assert got.request.body == b""
                    bob.respond(
                        got, 200, to_tag="ph1", body=rtp.offer([PCMU, TELEPHONE_EVENT_8000]).to_bytes()
                    )
                    ok = await alice.final(sent)
                    webrtc_offer = parse(ok.body)
                    assert webrtc_offer.media[0].proto == "UDP/TLS/RTP/SAVPF"
                    webrtc_answer = await web.answer(webrtc_offer, [PCMU, TELEPHONE_EVENT_8000])
                    dialog = alice.dialog_from(sent, ok)
                    await wic_ack(alice, dialog, webrtc_answer.to_bytes())
                    await eventually(lambda: bob.acks)
                    ims_answer = parse(bob.acks[0].body)
                    assert [m.proto for m in ims_answer.media] == ["RTP/AVP"]
                    rtp.take(ims_answer)
                    assert await web.connected()
                    await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0))
                    await eventually(lambda: rtp.recorder.count >= 45 and web.recorder.count >= 45)
                    bye = await alice.in_dialog(dialog, "BYE")
                    assert (await alice.final(bye)).status == 200
                    await eventually(lambda: not iwf.sessions() and not mgr.calls)
                finally:
                    await closing(alice)
    finally:
        await web.close()
        rtp.close()
        await iwf.close()


async def test_offer_in_a_reliable_18x_answered_in_prack(make_lab: LabFactory) -> None:
    """A WIC that supports 100rel calls without SDP; the IMS offers in a reliable 183 (RFC 3262 §5):
    the WIC gets it reliably, its PRACK's answer goes on in the gateway's PRACK; the 2xx has no SDP."""
    async with session_lab(make_lab) as (lab, mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                sent = await alice.invite("sip:bob@ims.test", b"", [("Supported", "100rel")])
                got = await bob.next_request("INVITE")
                assert "100rel" in got.request.option_tags("supported")
                bob.respond(got, 183, to_tag="ph1", body=rtp_sdp(30006),
                            headers=[("Require", "100rel"), ("RSeq", "7")])  # fmt: skip
                await eventually(lambda: any(r.status == 183 for r in sent.provisional))
                early = next(r for r in sent.provisional if r.status == 183)
                assert "100rel" in early.option_tags("require") and early.headers.get("RSeq")
                assert b"m=audio 30006 RTP/AVP" in early.body  # the IMS's offer
                dialog = alice.dialog_from(sent, early)
                rack = f"{early.headers.get('RSeq')} {sent.request.cseq.seq} INVITE"
                prack = await alice.in_dialog(dialog, "PRACK", [("RAck", rack), *SDP], chrome_answer())
                seen = await bob.next_request("PRACK")
                assert seen.request.headers.get("RAck") == f"7 {got.request.cseq.seq} INVITE"
                assert seen.request.content_type == "application/sdp"
                assert b"a=setup:active" in seen.request.body  # the WIC's answer, in the gateway's PRACK
                bob.respond(seen, 200)
                assert (await alice.final(prack)).status == 200
                bob.respond(got, 200, to_tag="ph1")
                ok = await alice.final(sent)
                assert ok.status == 200 and not ok.body  # the exchange is complete (RFC 3264 §4)
                await eventually(lambda: bob.acks)
                assert not bob.acks[0].body
                await alice.ack(alice.dialog_from(sent, ok))
                (call,) = mgr.calls.values()
                assert call.answered and call.ims.sdp.last_received is not None
            finally:
                await closing(alice)
