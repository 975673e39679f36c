"""Calls between scripted WICs over WSS, through the gateway's B2BUA and the lab IMS core.

Media interworking "inside the IMS" here (the gateway passes the WebRTC SDP on; the
lab core's MRF is off, both ends being WebRTC); the external IWF has its own tests.
Each test checks what each WIC saw on the wire and the gateway's call table.
"""

from __future__ import annotations

from conftest import LabFactory
from session_lab import eventually, session_lab, wics
from session_wic import chrome_answer, closing, direction_of


async def test_call_answered_then_bye(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        alice, bob = await wics(lab, "alice", "bob")
        try:
            sent = await alice.invite("sip:bob@ims.test")
            incoming = await bob.next_request("INVITE")
            # the B2BUA made a new dialog toward bob: its own Call-ID, the caller's identity asserted
            assert incoming.call_id != sent.request.call_id
            assert incoming.headers.get_all("P-Asserted-Identity") == ["<sip:alice@ims.test>"]
            assert str(incoming.from_.uri) == "sip:alice@ims.test"
            assert incoming.body.startswith(b"v=0") and b"UDP/TLS/RTP/SAVPF" in incoming.body
            await bob.answer(incoming, 180)
            await bob.answer(incoming, 200, body=chrome_answer())
            ok = await alice.final(sent)
            assert ok.status == 200, ok
            assert [r.status for r in sent.provisional if r.status > 100] == [180]
            assert b"a=setup:active" in ok.body and ok.contact
            dialog = alice.dialog_from(sent, ok)
            await alice.ack(dialog)
            assert len(mgr.calls) == 2  # the originating and the terminating call, one each
            # alice hangs up: bob gets the BYE, both legs end
            bye = await alice.in_dialog(dialog, "BYE")
            assert (await alice.final(bye)).status == 200
            got = await bob.next_request("BYE")
            assert got.call_id == incoming.call_id
            await eventually(lambda: not mgr.calls)
            assert mgr.completed == 2
        finally:
            await closing(alice, bob)


async def test_cancel_before_answer(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        alice, bob = await wics(lab, "alice", "bob")
        try:
            sent = await alice.invite("sip:bob@ims.test")
            incoming = await bob.next_request("INVITE")
            await bob.answer(incoming, 180)
            await eventually(lambda: any(r.status == 180 for r in sent.provisional))
            await alice.cancel(sent)
            final = await alice.final(sent)
            assert final.status == 487
            await eventually(lambda: bob.cancelled)
            await eventually(lambda: not mgr.calls)
        finally:
            await closing(alice, bob)


async def test_busy_reaches_the_caller_with_its_reason(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        alice, bob = await wics(lab, "alice", "bob")
        try:
            sent = await alice.invite("sip:bob@ims.test")
            incoming = await bob.next_request("INVITE")
            await bob.answer(incoming, 486)
            final = await alice.final(sent)
            assert (final.status, final.reason) == (486, "Busy Here")
            assert any("cause=486" in r for r in final.headers.get_all("Reason"))
            await eventually(lambda: not mgr.calls)
        finally:
            await closing(alice, bob)


async def test_unregistered_callee_gets_480(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        (alice,) = await wics(lab, "alice")
        try:
            sent = await alice.invite("sip:frank@ims.test")
            final = await alice.final(sent)
            assert final.status == 480, final
            assert any("cause=480" in r for r in final.headers.get_all("Reason"))
            await eventually(lambda: not mgr.calls)
        finally:
            await closing(alice)


async def test_hold_and_resume_by_reinvite(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, _mgr):
        alice, bob = await wics(lab, "alice", "bob")
        try:
            sent = await alice.invite("sip:bob@ims.test")
            incoming = await bob.next_request("INVITE")
            await bob.answer(incoming, 200, body=chrome_answer())
            ok = await alice.final(sent)
            dialog = alice.dialog_from(sent, ok)
            await alice.ack(dialog)
            for mine, theirs in (("sendonly", "recvonly"), ("sendrecv", "sendrecv")):
                from session_wic import chrome_offer

                task = alice.reinvite(dialog, chrome_offer(mine, version=3 if mine == "sendonly" else 4))
                import asyncio

                pending = asyncio.ensure_future(task)
                reinvite = await bob.next_request("INVITE")
                assert direction_of(reinvite.body) == mine
                await bob.answer(reinvite, 200, body=chrome_answer(theirs, version=3))
                response = await pending
                assert response.status == 200, response
                assert direction_of(response.body) == theirs
            await alice.in_dialog(dialog, "BYE")
            await bob.next_request("BYE")
        finally:
            await closing(alice, bob)
