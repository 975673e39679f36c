"""Delayed offer through the B2BUA (RFC 3261 §13.2.1, RFC 3264 §4-5): INVITEs without SDP.

A scripted WIC on WSS and a scripted IMS phone, through the gateway and the lab
core. Each test checks the offer in the 2xx and the answer in the ACK on both legs,
and that the 2xx is not ACKed toward its sender before the other side's answer is
in; with ``media = "external"`` the embedded IWF is driven at those steps (WebRTC
SDP on the WIC side, plain RTP on the IMS side, media flowing both ways). Also:
an ACK without an answer ends the call (§13.2.2.4), and re-INVITEs without SDP
(an AS refreshing the session) are answered with the leg's current SDP as the
offer, the other leg untouched — unless the answer in the ACK changes the media
(hold, a new address), which then reaches the other leg in an offer of its own,
translated by the IWF with ``media = "external"``. And the IMS calling without SDP
while requiring 100rel (RFC 3262 §3, §5): the IWF's own offer in a reliable 183
(external), or no 18x before the 200 (media in the IMS).
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from pathlib import Path

from conftest import LabFactory
from ims_phone import ImsPhone, rtp_sdp
from session_lab import answered_call, eventually, phone, session_lab, wic_and_phone, wics
from session_wic import Dialog as WicDialog
from session_wic import SessionWic, chrome_answer, chrome_offer, closing

from webims.endpoint import SipEndpoint, Target
from webims.media.embedded import EmbeddedConfig, EmbeddedMediaIWF
from webims.media.ports import PortAllocator
from webims.sdp import PCMU, TELEPHONE_EVENT_8000, parse
from webims.sip import Dialog, Request, Response, new_tag, parse_uri
from webims.testing.media_peers import RtpPeer, WebRtcPeer

SDP = [("Content-Type", "application/sdp")]


def offerless_invite(
    bob: ImsPhone, target: str, headers: list[tuple[str, str]] | None = None
) -> tuple[Request, asyncio.Future[Response], list[Response]]:
    """The phone's INVITE without SDP (no body, no Content-Type) on its Service-Route."""
    provisional: list[Response] = []
    request = Request("INVITE", target, [
        ("Max-Forwards", "70"), ("From", f"<{bob.aor}>;tag={new_tag()}"), ("To", f"<{target}>"),
        ("Call-ID", f"{secrets.token_hex(8)}@phone"), ("CSeq", "1 INVITE"), ("Contact", bob.contact),
        *[("Route", r) for r in bob.service_route], ("P-Asserted-Identity", f"<{bob.aor}>"),
        ("Allow", "INVITE, ACK, CANCEL, BYE, UPDATE, PRACK, INFO"), *(headers or []),
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
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
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


async def test_wic_calls_without_sdp(make_lab: LabFactory) -> None:
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
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


async def test_ack_without_answer_ends_the_call(make_lab: LabFactory) -> None:
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
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


async def test_reinvite_without_sdp_is_answered_on_its_leg(make_lab: LabFactory) -> None:
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        dialog, bob_dialog, invite, final = await answered_call(alice, bob)
        # the IMS side (an AS refreshing the session): the gateway's SDP is the offer again,
        # the same version (RFC 3264 §8: nothing changed), and the answer comes in the ACK
        reinvite = bob_dialog.create_request("INVITE", headers=[("Contact", bob.contact)])
        response = await bob.endpoint.request(reinvite, await bob._connect(reinvite))
        assert response.status == 200 and response.content_type == "application/sdp"
        first, again = parse(invite.body), parse(response.body)
        assert again.origin.sess_version == first.origin.sess_version
        assert again.media[0].port == first.media[0].port
        await ack_with(bob, bob_dialog, reinvite, rtp_sdp())
        # the WIC side: the same, on its own leg
        alice_sent = await alice.in_dialog(dialog, "INVITE")
        alice_ok = await alice.final(alice_sent)
        assert alice_ok.status == 200 and parse(alice_ok.body).origin == parse(final.body).origin
        saved = dialog.cseq
        # the browser's media as they were (its answer's a=setup names its role, RFC 8842 §5.1)
        await wic_ack(alice, dialog, chrome_offer().replace(b"actpass", b"active"))
        dialog.cseq = saved
        await asyncio.sleep(0.3)
        assert not alice.got("INVITE") and not bob.inbox  # the other legs saw nothing
        (call,) = mgr.calls.values()
        assert not call.ended and call.wic.ack_wait is None
        bye = await alice.in_dialog(dialog, "BYE")
        assert (await alice.final(bye)).status == 200
        await bob.next_request("BYE")


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
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
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


async def test_hold_in_the_ack_answer_is_passed_to_the_wic(make_lab: LabFactory) -> None:
    """The IMS side re-INVITEs without SDP and puts the call on hold in its ACK's answer (RFC 3264
    §8, §6.1: sendonly to our sendrecv offer): the WIC hears of it in an offer of its own (UPDATE,
    which it allows, RFC 3311), one version up on the WIC leg; its answer is recorded; the IMS side,
    whose exchange is complete, gets nothing more. Resuming the same way goes through again."""
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        dialog, bob_dialog, _, final = await answered_call(alice, bob)
        version = parse(final.body).origin.sess_version
        (call,) = mgr.calls.values()

        def answered(want: str) -> bool:
            got = call.wic.sdp.last_received
            return got is not None and got.media[0].direction == want and not call.ims.in_offer

        for n, (theirs, mine) in enumerate((("sendonly", "recvonly"), ("sendrecv", "sendrecv"))):
            reinvite = bob_dialog.create_request("INVITE", headers=[("Contact", bob.contact)])
            response = await bob.endpoint.request(reinvite, await bob._connect(reinvite))
            assert response.status == 200 and b"a=sendrecv" in response.body  # our offer (§8)
            await ack_with(bob, bob_dialog, reinvite, rtp_sdp(direction=theirs, version=2 + n))
            update = await alice.next_request("UPDATE")
            assert update.call_id == dialog.call_id and update.content_type == "application/sdp"
            offer = parse(update.body)
            assert offer.media[0].direction == theirs  # the far end's new direction
            assert offer.media[0].port == 30000
            # the WIC leg's session, its version one up per change (RFC 3264 §8)
            assert offer.origin.sess_id == parse(final.body).origin.sess_id
            assert offer.origin.sess_version == version + 1 + n
            # the browser's answer from where its media already are (the same transport)
            same_place = chrome_offer(mine, version=3 + n).replace(b"actpass", b"active")
            await alice.answer(update, 200, body=same_place)
            await eventually(functools.partial(answered, mine))
            assert call.ims.sdp.last_received is not None
            assert call.ims.sdp.last_received.media[0].direction == theirs
        await asyncio.sleep(0.3)
        assert not bob.inbox and not alice.inbox  # nothing else on either leg
        bye = await alice.in_dialog(dialog, "BYE")
        assert (await alice.final(bye)).status == 200
        await bob.next_request("BYE")


async def test_new_address_in_the_wic_ack_answer_is_passed_to_the_ims(make_lab: LabFactory) -> None:
    """The mirror image: the WIC re-INVITEs without SDP and answers our offer (its leg's SDP) in its
    ACK from a new address; the IMS side gets it in a re-INVITE when it does not allow UPDATE."""
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        sent = await alice.invite("sip:bob@ims.test")
        got = await bob.next_request("INVITE")
        bob.respond(got, 200, to_tag="ph1", body=rtp_sdp(),
                    headers=[("Allow", "INVITE, ACK, CANCEL, BYE, PRACK, INFO")])  # fmt: skip
        final = await alice.final(sent)
        dialog = alice.dialog_from(sent, final)
        await alice.ack(dialog)
        await eventually(lambda: bob.acks)
        (call,) = mgr.calls.values()
        assert not call.ims.peer_allows_update  # the phone's 200 did not allow UPDATE
        sent_offer = call.ims.sdp.last_sent
        assert sent_offer is not None
        reinvite = await alice.in_dialog(dialog, "INVITE")
        answered = await alice.final(reinvite)
        assert answered.status == 200 and answered.content_type == "application/sdp"
        saved = dialog.cseq
        moved = chrome_answer().replace(b" 61527 typ host", b" 61600 typ host")
        await wic_ack(alice, dialog, moved)
        dialog.cseq = saved
        got2 = await bob.next_request("INVITE")
        assert got2.request.call_id == got.request.call_id  # the IMS leg's own dialog
        offer = parse(got2.request.body)
        assert b" 61600 typ host" in got2.request.body  # as it is (media in the IMS)
        assert offer.origin.sess_id == sent_offer.origin.sess_id
        assert offer.origin.sess_version == sent_offer.origin.sess_version + 1
        bob.respond(got2, 200, to_tag="ph1", body=rtp_sdp(version=2))
        await eventually(lambda: len(bob.acks) == 2)
        assert call.wic.sdp.last_received is not None
        assert b" 61600 typ host" in call.wic.sdp.last_received.to_bytes()
        await asyncio.sleep(0.2)
        assert not alice.inbox  # the WIC's exchange was complete: nothing more for it
        bye = await alice.in_dialog(dialog, "BYE")
        assert (await alice.final(bye)).status == 200
        await bob.next_request("BYE")


REQUIRE_100REL = [("Supported", "100rel, timer"), ("Require", "100rel")]


async def prack(bob: ImsPhone, dialog: Dialog, reliable: Response, body: bytes = b"") -> Response:
    """The phone's PRACK for a reliable 1xx (RFC 3262 §7.2 RAck), with ``body`` (its answer) when given."""
    rack = f"{reliable.headers.get('RSeq')} {reliable.cseq.seq} {reliable.cseq.method}"
    return await bob.send_in(dialog, "PRACK", [("RAck", rack)], body)


async def test_offerless_invite_requiring_100rel_media_in_the_ims(make_lab: LabFactory) -> None:
    """The IMS calls without SDP and requires 100rel; media in the IMS: the gateway has no offer before
    the WIC's 200, so it sends no 18x at all (RFC 3262 §3: none unreliably; §5: a reliable one would
    carry the offer) and no 420 (it supports 100rel): the WIC's ringing is withheld, its offer goes in
    the 200 (RFC 3261 §13.2.1) and the answer in the ACK."""
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        request, final, provisional = offerless_invite(bob, "sip:alice@ims.test", REQUIRE_100REL)
        incoming = await alice.next_request("INVITE")
        assert incoming.body == b""
        await alice.answer(incoming, 180)
        await asyncio.sleep(0.3)
        await alice.answer(incoming, 200, body=chrome_offer())
        response = await asyncio.wait_for(final, 10)
        assert response.status == 200 and b"UDP/TLS/RTP/SAVPF" in response.body
        assert [r.status for r in provisional if r.status > 100] == []
        bob_dialog = Dialog.from_uac(request, response)
        await ack_with(bob, bob_dialog, request, rtp_sdp())
        await eventually(lambda: alice.got("ACK"))
        assert b"m=audio 30000 RTP/AVP" in alice.got("ACK")[0].body
        assert (await bob.send_in(bob_dialog, "BYE")).status == 200
        await eventually(lambda: not mgr.calls)


async def test_offerless_invite_requiring_100rel_external_iwf_offers_in_a_reliable_183(
    make_lab: LabFactory,
) -> None:
    """The IMS calls without SDP and requires 100rel; media through the external IWF: the IWF's own
    plain-RTP offer goes in a reliable 183 (RFC 3262 §5), the phone answers in its PRACK; the WIC gets
    an INVITE with the IWF's WebRTC offer, its ringing reaches the phone reliably, its answer stays
    with the IWF and the 200 to the phone has no SDP (RFC 3264 §4). Both offer/answer exchanges are
    complete at the WIC's 183: early media flows both ways before the 200, and after it."""
    iwf = EmbeddedMediaIWF(
        EmbeddedConfig(port_min=46800, port_max=46899, ice_timeout=5.0, dtls_timeout=5.0, timer_interval=0.1)
    )
    await iwf.start()
    peers = PortAllocator(46900, 46999)
    web, rtp = WebRtcPeer(peers), RtpPeer(peers)
    await rtp.open()
    try:
        async with session_lab(make_lab, media="external", iwf=iwf) as (lab, mgr):
            (alice,) = await wics(lab, "alice")
            async with phone(lab) as bob:
                try:
                    request, final, provisional = offerless_invite(bob, "sip:alice@ims.test", REQUIRE_100REL)
                    await eventually(lambda: any(r.status == 183 for r in provisional))
                    early = next(r for r in provisional if r.status == 183)
                    assert "100rel" in early.option_tags("require") and early.headers.get("RSeq")
                    ims_offer = parse(early.body)
                    assert [m.proto for m in ims_offer.media] == ["RTP/AVP"]  # the IWF's own offer
                    assert {"PCMU", "PCMA"} <= {c.name for c in ims_offer.media[0].codecs}
                    assert not alice.got("INVITE")  # the WIC's INVITE waits for the phone's answer
                    bob_dialog = Dialog.from_uac(request, early)
                    answer = rtp.answer(ims_offer, [PCMU, TELEPHONE_EVENT_8000])
                    assert (await prack(bob, bob_dialog, early, answer.to_bytes())).status == 200
                    incoming = await alice.next_request("INVITE")
                    webrtc_offer = parse(incoming.body)  # the IWF's WebRTC offer, from the phone's answer
                    assert webrtc_offer.media[0].proto == "UDP/TLS/RTP/SAVPF"
                    webrtc_answer = await web.answer(webrtc_offer, [PCMU, TELEPHONE_EVENT_8000])
                    await alice.answer(incoming, 183, body=webrtc_answer.to_bytes())  # early media
                    assert await web.connected()
                    await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0))
                    await eventually(lambda: rtp.recorder.count >= 45 and web.recorder.count >= 45)
                    assert not final.done()  # both ways before the 200
                    heard = rtp.recorder.count, web.recorder.count
                    await alice.answer(incoming, 180)
                    await eventually(lambda: any(r.status == 180 for r in provisional))
                    ringing = next(r for r in provisional if r.status == 180)
                    assert "100rel" in ringing.option_tags("require") and not ringing.body
                    assert (await prack(bob, bob_dialog, ringing)).status == 200
                    await alice.answer(incoming, 200, body=webrtc_answer.to_bytes())
                    response = await asyncio.wait_for(final, 10)
                    assert response.status == 200 and not response.body  # the exchange was complete
                    bob_dialog.receive_response(response)
                    await ack_with(bob, bob_dialog, request, b"")
                    await eventually(lambda: alice.got("ACK"))
                    await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0))
                    await eventually(lambda: rtp.recorder.count >= heard[0] + 45
                                     and web.recorder.count >= heard[1] + 45)  # fmt: skip
                    assert (await bob.send_in(bob_dialog, "BYE")).status == 200
                    await alice.next_request("BYE")
                    await eventually(lambda: not iwf.sessions() and not mgr.calls)
                finally:
                    await closing(alice)
    finally:
        await web.close()
        rtp.close()
        await iwf.close()


async def test_external_iwf_hold_in_the_ack_answer_reaches_the_wic_translated(make_lab: LabFactory) -> None:
    """media=external: the phone re-INVITEs without SDP and holds the call in its ACK's answer; the IWF
    takes that answer as the IMS side's new media (``offer_from_ims``) and the WIC gets a WebRTC offer
    (sendonly, the established DTLS roles kept) in an UPDATE; the WIC's answer goes through the IWF
    (``answer_from_webrtc``), whose IMS side has not moved: the phone gets nothing more."""
    iwf = EmbeddedMediaIWF(
        EmbeddedConfig(port_min=47000, port_max=47099, ice_timeout=5.0, dtls_timeout=5.0, timer_interval=0.1)
    )
    await iwf.start()
    peers = PortAllocator(47100, 47199)
    web, rtp = WebRtcPeer(peers), RtpPeer(peers)
    await rtp.open()
    try:
        async with session_lab(make_lab, media="external", iwf=iwf) as (lab, mgr):
            (alice,) = await wics(lab, "alice")
            async with phone(lab) as bob:
                try:
                    offer = await web.offer([PCMU, TELEPHONE_EVENT_8000])
                    sent = await alice.invite("sip:bob@ims.test", offer.to_bytes())
                    got = await bob.next_request("INVITE")
                    ims_offer = parse(got.request.body)
                    answer1 = rtp.answer(ims_offer, [PCMU, TELEPHONE_EVENT_8000])
                    ok = bob.respond(got, 200, to_tag="ph1", body=answer1.to_bytes())
                    final = await alice.final(sent)
                    dialog = alice.dialog_from(sent, final)
                    await alice.ack(dialog)
                    await web.accept(parse(final.body))
                    assert await web.connected()
                    bob_dialog = bob.uas_dialog(got, ok)
                    (call,) = mgr.calls.values()
                    wic_version = parse(final.body).origin.sess_version
                    reinvite = bob_dialog.create_request("INVITE", headers=[("Contact", bob.contact)])
                    response = await bob.endpoint.request(reinvite, await bob._connect(reinvite))
                    assert response.status == 200
                    ours = parse(response.body)
                    assert ours.media[0].port == ims_offer.media[0].port  # the IWF's IMS side, again (§8)
                    held = rtp.answer(ours, [PCMU, TELEPHONE_EVENT_8000])
                    held.media[0].direction = "sendonly"
                    await ack_with(bob, bob_dialog, reinvite, held.to_bytes())
                    update = await alice.next_request("UPDATE")
                    reoffer = parse(update.body)
                    assert reoffer.media[0].proto == "UDP/TLS/RTP/SAVPF"  # translated by the IWF
                    assert reoffer.media[0].direction == "sendonly"
                    assert reoffer.origin.sess_version == wic_version + 1
                    setup = reoffer.media[0].setup
                    assert setup in ("active", "passive")  # the established DTLS roles (RFC 8842 §5.5)
                    answer = offer.copy()  # the browser's media as they are, on hold, in the other DTLS role
                    answer.media[0].direction = "recvonly"
                    role = b"a=setup:passive" if setup == "active" else b"a=setup:active"
                    body = answer.to_bytes().replace(b"a=setup:actpass", role)
                    await alice.answer(update, 200, body=body)
                    await eventually(lambda: call.wic.sdp.last_received is not None
                                     and call.wic.sdp.last_received.media[0].direction == "recvonly"
                                     and not call.ims.in_offer)  # fmt: skip
                    await asyncio.sleep(0.3)
                    assert not bob.inbox  # the IWF's IMS side did not move: no new offer to the phone
                    assert not call.ended and len(iwf.sessions()) == 1
                    heard = web.recorder.count  # the held party still hears the phone (sendonly)
                    await rtp.send_tone(1.0)
                    await eventually(lambda: web.recorder.count >= heard + 45)
                    bye = await alice.in_dialog(dialog, "BYE")
                    assert (await alice.final(bye)).status == 200
                    await bob.next_request("BYE")
                    await eventually(lambda: not iwf.sessions() and not mgr.calls)
                finally:
                    await closing(alice)
    finally:
        await web.close()
        rtp.close()
        await iwf.close()


async def test_wic_answering_from_elsewhere_is_offered_back_to_the_ims(make_lab: LabFactory) -> None:
    """Media in the IMS: the phone holds the call in its ACK's answer, the WIC's UPDATE is answered
    from a new transport (another port and address): what the gateway told the phone about its side
    (the WIC's media, as they were) no longer holds, so the phone gets a new offer with the WIC's
    answer, one version up on the IMS leg (RFC 3264 §8), in an UPDATE (the phone allows it)."""
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        dialog, bob_dialog, invite, _ = await answered_call(alice, bob)
        first = parse(invite.body)
        reinvite = bob_dialog.create_request("INVITE", headers=[("Contact", bob.contact)])
        response = await bob.endpoint.request(reinvite, await bob._connect(reinvite))
        assert response.status == 200
        await ack_with(bob, bob_dialog, reinvite, rtp_sdp(direction="sendonly", version=2))
        update = await alice.next_request("UPDATE")
        assert parse(update.body).media[0].direction == "sendonly"
        await alice.answer(update, 200, body=chrome_answer("recvonly"))  # port 9, c=0.0.0.0
        again = await bob.next_request("UPDATE")
        offer = parse(again.request.body)
        assert again.request.call_id == invite.call_id
        assert offer.origin.sess_id == first.origin.sess_id
        assert offer.origin.sess_version == first.origin.sess_version + 1
        assert offer.media[0].port == 9 and offer.media[0].direction == "recvonly"
        bob.respond(again, 200, to_tag="ph1", body=rtp_sdp(direction="sendonly", version=3))
        (call,) = mgr.calls.values()
        await eventually(lambda: not call.ims.out_offer and not call.ims.in_offer)
        assert call.ims.sdp.last_received is not None
        assert call.ims.sdp.last_received.origin.sess_version == 3
        await asyncio.sleep(0.2)
        assert not alice.inbox and not bob.inbox  # and no more
        bye = await alice.in_dialog(dialog, "BYE")
        assert (await alice.final(bye)).status == 200
        await bob.next_request("BYE")


async def test_offerless_invite_requiring_100rel_rtpengine_offers_in_the_200(
    make_lab: LabFactory, tmp_path: Path
) -> None:
    """The same with rtpengine as the external IWF: its ng protocol only rewrites an SDP it is
    given, so it cannot offer before the WIC has (MediaError 488); the gateway goes on as with
    media in the IMS — no 18x, the WIC's offer translated to RTP/AVP in the 200, the phone's answer
    in its ACK translated back into the WIC's ACK — instead of failing the call."""
    from webims.media.rtpengine import RtpengineIWF
    from webims.testing.rtpengine import Rtpengine

    peers = PortAllocator(45600, 45699)
    with Rtpengine(tmp_path / "rtpengine") as daemon:
        iwf = RtpengineIWF(daemon.ng_address)
        await iwf.start()
        web = WebRtcPeer(peers)
        try:
            async with session_lab(make_lab, media="external", iwf=iwf) as (lab, mgr):
                (alice,) = await wics(lab, "alice")
                async with phone(lab) as bob:
                    try:
                        request, final, provisional = offerless_invite(
                            bob, "sip:alice@ims.test", REQUIRE_100REL
                        )
                        incoming = await alice.next_request("INVITE")
                        assert incoming.body == b""
                        await alice.answer(incoming, 180)
                        offer = await web.offer([PCMU, TELEPHONE_EVENT_8000])
                        await alice.answer(incoming, 200, body=offer.to_bytes())
                        response = await asyncio.wait_for(final, 10)
                        assert response.status == 200 and daemon.calls()
                        assert parse(response.body).media[0].proto == "RTP/AVP"
                        assert [r.status for r in provisional if r.status > 100] == []
                        bob_dialog = Dialog.from_uac(request, response)
                        await ack_with(bob, bob_dialog, request, rtp_sdp())
                        await eventually(lambda: alice.got("ACK"))
                        assert parse(alice.got("ACK")[0].body).media[0].proto == "UDP/TLS/RTP/SAVPF"
                        assert (await bob.send_in(bob_dialog, "BYE")).status == 200
                        await eventually(lambda: not mgr.calls)
                        await eventually(lambda: not daemon.calls())  # released on BYE
                    finally:
                        await closing(alice)
        finally:
            await web.close()
            await iwf.close()
