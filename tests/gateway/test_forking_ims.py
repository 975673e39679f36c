"""Forking in the IMS with media interworking in the IMS (``media = "ims"``): one WIC early dialog per fork.

A scripted IMS phone answers the gateway's INVITE several times with different To
tags, as a forking proxy below it would (RFC 3261 §16.7). Each fork's early answer
(183 with SDP) must reach the WIC in an early dialog of its own (RFC 3261 §12.1,
§13.2.2.4; JsSIP keeps one per To tag), with that fork's SDP; ringing of a fork
goes in that fork's dialog; the 2xx picks its fork's WIC dialog; a later 2xx of
another fork is ACKed and ended with BYE; the gateway keeps no stale early dialog.
With delayed offer each later 2xx carries an offer, which its ACK answers (every
stream rejected, RFC 3264 §6) before the BYE.
"""

from __future__ import annotations

from conftest import LabFactory
from ims_phone import rtp_sdp
from session_lab import eventually, phone, session_lab, wic_and_phone, wics
from session_wic import chrome_answer, closing

from webims.sdp import parse
from webims.sip import Response


def early(provisional: list[Response]) -> dict[str, Response]:
    """The WIC's 18x with SDP, by To tag."""
    return {r.to.tag or "": r for r in provisional if r.status > 100 and r.body}


async def test_each_fork_gets_its_own_wic_early_dialog(make_lab: LabFactory) -> None:
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        sent = await alice.invite("sip:bob@ims.test")
        got = await bob.next_request("INVITE")
        bob.respond(got, 183, to_tag="fork1", body=rtp_sdp(30002))
        bob.respond(got, 183, to_tag="fork2", body=rtp_sdp(30004))
        await eventually(lambda: len(early(sent.provisional)) == 2)
        by_tag = early(sent.provisional)
        ports = {tag: parse(r.body).media[0].port for tag, r in by_tag.items()}
        assert sorted(ports.values()) == [30002, 30004]  # each fork's own early answer
        tag1 = next(t for t, p in ports.items() if p == 30002)
        tag2 = next(t for t, p in ports.items() if p == 30004)
        origins = {parse(r.body).origin.sess_id for r in by_tag.values()}
        assert len(origins) == 2  # two early dialogs, two SDP sessions (RFC 3264 §5)
        # ringing of fork1 goes in fork1's WIC dialog
        bob.respond(got, 180, to_tag="fork1")
        await eventually(lambda: any(r.status == 180 for r in sent.provisional))
        assert [r.to.tag for r in sent.provisional if r.status == 180] == [tag1]
        # fork2 answers: the 200 confirms fork2's WIC dialog, with its SDP session
        bob.respond(got, 200, to_tag="fork2", body=rtp_sdp(30004, version=2))
        ok = await alice.final(sent)
        assert ok.status == 200 and ok.to.tag == tag2
        answer, before = parse(ok.body), parse(by_tag[tag2].body)
        assert answer.media[0].port == 30004
        assert answer.origin.sess_id == before.origin.sess_id
        assert answer.origin.sess_version >= before.origin.sess_version
        # a 2xx of the other fork: ACK and BYE (RFC 3261 §13.2.2.4)
        bob.respond(got, 200, to_tag="fork1", body=rtp_sdp(30002, version=2))
        bye = await bob.next_request("BYE")
        assert bye.request.to.tag == "fork1"
        await eventually(lambda: {a.to.tag for a in bob.acks} >= {"fork1"})
        dialog = alice.dialog_from(sent, ok)
        await alice.ack(dialog)
        await eventually(lambda: {a.to.tag for a in bob.acks} == {"fork1", "fork2"})
        (call,) = mgr.calls.values()
        assert call.wic.tag == tag2 and call.wic.dialog is not None and call.wic.dialog.confirmed
        assert call.ims.dialog is not None and call.ims.dialog.id.remote_tag == "fork2"
        # only the two confirmed dialogs are left in the gateway's table
        assert {leg.side.value for _, leg, _ in mgr.dialogs.values()} == {"wic", "ims"}
        assert len(mgr.dialogs) == 2
        # the call works in the chosen dialogs: BYE from the WIC reaches fork2
        assert (await alice.final(await alice.in_dialog(dialog, "BYE"))).status == 200
        bye = await bob.next_request("BYE")
        assert bye.request.to.tag == "fork2"
        await eventually(lambda: not mgr.calls and not mgr.dialogs)


async def test_first_fork_answers_in_the_first_wic_dialog(make_lab: LabFactory) -> None:
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        sent = await alice.invite("sip:bob@ims.test")
        got = await bob.next_request("INVITE")
        bob.respond(got, 183, to_tag="fork1", body=rtp_sdp(30002))
        bob.respond(got, 183, to_tag="fork2", body=rtp_sdp(30004))
        await eventually(lambda: len(early(sent.provisional)) == 2)
        tag1 = next(t for t, r in early(sent.provisional).items() if b" 30002 " in r.body)
        bob.respond(got, 200, to_tag="fork1", body=rtp_sdp(30002))
        ok = await alice.final(sent)
        assert ok.to.tag == tag1 and parse(ok.body).media[0].port == 30002
        await alice.ack(alice.dialog_from(sent, ok))
        await eventually(lambda: bob.acks)
        assert len(mgr.dialogs) == 2  # fork2's WIC early dialog is gone with the 200


async def test_forks_without_early_answers_share_one_wic_dialog(make_lab: LabFactory) -> None:
    """Ringing without SDP from two forks: nothing to keep apart, one WIC dialog (as before)."""
    async with session_lab(make_lab) as (lab, _mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                sent = await alice.invite("sip:bob@ims.test")
                got = await bob.next_request("INVITE")
                bob.respond(got, 180, to_tag="fork1")
                bob.respond(got, 183, to_tag="fork2", body=rtp_sdp(30004))
                bob.respond(got, 180, to_tag="fork3")
                await eventually(lambda: len([r for r in sent.provisional if r.status > 100]) == 3)
                # fork2's early answer is the first one: it takes the WIC leg's dialog
                assert len({r.to.tag for r in sent.provisional if r.status > 100}) == 1
                bob.respond(got, 486, to_tag="fork1")
            finally:
                await closing(alice)


async def test_delayed_offer_forked_later_2xx_acked_with_an_answer_then_bye(make_lab: LabFactory) -> None:
    """A WIC calls without SDP; the IMS forks and two forks answer, each 2xx with an offer of its
    own (RFC 3261 §13.2.1). The first is the call: its offer reaches the WIC in our 200, the WIC's
    answer in its ACK goes on in that fork's ACK. The second is ACKed at once (§13.2.2.4) with a
    valid answer — each stream rejected at port 0 (RFC 3264 §6) — and ended with BYE."""
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        sent = await alice.invite("sip:bob@ims.test", b"")
        got = await bob.next_request("INVITE")
        assert not got.request.body
        bob.respond(got, 200, to_tag="fork1", body=rtp_sdp(30002))
        bob.respond(got, 200, to_tag="fork2", body=rtp_sdp(30004))
        ok = await alice.final(sent)
        assert ok.status == 200 and parse(ok.body).media[0].port == 30002  # fork1's offer
        # fork2: ACK with an answer rejecting its stream, then BYE
        bye = await bob.next_request("BYE")
        assert bye.request.to.tag == "fork2"
        await eventually(lambda: any(a.to.tag == "fork2" for a in bob.acks))
        ack2 = next(a for a in bob.acks if a.to.tag == "fork2")
        assert ack2.content_type == "application/sdp"
        answer2, offer2 = parse(ack2.body), parse(rtp_sdp(30004))
        assert len(answer2.media) == len(offer2.media)
        assert all(m.port == 0 and m.media == o.media and m.proto == o.proto
                   and set(m.fmts) <= set(o.fmts) and m.fmts
                   for m, o in zip(answer2.media, offer2.media, strict=True))  # fmt: skip
        assert not any(a.to.tag == "fork1" for a in bob.acks)  # fork1 waits for the WIC's answer
        # fork1: the WIC's answer in its ACK goes on in the gateway's ACK
        await alice.ack(alice.dialog_from(sent, ok), chrome_answer())
        await eventually(lambda: any(a.to.tag == "fork1" for a in bob.acks))
        ack1 = next(a for a in bob.acks if a.to.tag == "fork1")
        assert b"a=setup:active" in ack1.body
        (call,) = mgr.calls.values()
        assert call.ims.dialog is not None and call.ims.dialog.id.remote_tag == "fork1"
        assert not call.ended and len(mgr.dialogs) == 2
