"""Requests within a call relayed across the B2BUA (REFER, NOTIFY, SUBSCRIBE, MESSAGE, INFO).

A scripted WIC on WSS calls a scripted IMS phone through the gateway and the lab
core; once the call is up, each side sends requests in its own dialog and the test
checks what the other side gets: its own dialog's Call-ID, tags and CSeq numbers
(RFC 3261 §12.2.1.1), Refer-To and Referred-By passed on (RFC 3515 §2.4.2, RFC 3892),
the refer NOTIFY with its sipfrag coming back (RFC 3515 §2.4.5), the identity
asserted toward the IMS and translated for pool WICs (seed 004 §6.X.2.2.5), and the
answer's status brought back on the transaction.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from conftest import ORIGIN, POOL_PASSWORD, LabFactory, token_for
from session_lab import answered_call, eventually, phone, session_lab, wic_and_phone, wics
from session_wic import SessionWic, closing
from wicclient import bearer

SIPFRAG = [("Content-Type", "message/sipfrag;version=2.0")]


async def test_refer_from_the_wic_and_its_notify_back(make_lab: LabFactory) -> None:
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        dialog, bob_dialog, invite, _ = await answered_call(alice, bob)
        dialog.cseq += 5  # CSeq numbers only go up (§12.2.1.1): the two legs' numbers differ
        refer = await alice.in_dialog(dialog, "REFER", [
            ("Refer-To", "<sip:carol@ims.test>"), ("Referred-By", "<sip:alice@ims.test>"),
            ("P-Asserted-Identity", "<sip:someone-else@ims.test>"),
        ])  # fmt: skip
        got = await bob.next_request("REFER")
        req = got.request
        # on the phone's own dialog: its Call-ID and tags, the next CSeq of the gateway's side
        assert (req.call_id, req.to.tag, req.from_.tag) == (invite.call_id, "ph1", invite.from_.tag)
        assert req.cseq.seq > invite.cseq.seq
        assert req.headers.get("Refer-To") == "<sip:carol@ims.test>"
        assert req.headers.get("Referred-By") == "<sip:alice@ims.test>"
        # the WIC's own assertion never passes; the gateway asserts the caller (RFC 3325 §5)
        assert req.headers.get_all("P-Asserted-Identity") == ["<sip:alice@ims.test>"]
        bob.respond(got, 202)
        accepted = await alice.final(refer)
        assert (accepted.status, accepted.call_id) == (202, dialog.call_id)
        assert req.headers.get("Contact")  # the subscription's target (RFC 3515 §2.4.1)
        # the implicit subscription's NOTIFYs come back on the WIC's dialog (RFC 3515 §2.4.4)
        for state, frag in (("active;expires=60", b"SIP/2.0 100 Trying\r\n"),
                            ("terminated;reason=noresource", b"SIP/2.0 200 OK\r\n")):  # fmt: skip
            # the id is the REFER's CSeq number: the phone's and the WIC's differ (RFC 3515 §2.4.6)
            event = f"refer;id={req.cseq.seq}"
            notify = asyncio.ensure_future(bob.send_in(bob_dialog, "NOTIFY", [
                ("Event", event), ("Subscription-State", state), *SIPFRAG], frag))  # fmt: skip
            back = await alice.next_request("NOTIFY")
            assert back.call_id == dialog.call_id and back.to.tag == alice.tag
            assert back.headers.get("Event") == f"refer;id={refer.request.cseq.seq}" != event
            assert back.headers.get("Subscription-State") == state
            assert back.content_type == "message/sipfrag" and back.body == frag
            await alice.answer(back, 200)
            assert (await asyncio.wait_for(notify, 10)).status == 200
        # the call is still up; the transferor hangs up as usual
        bye = await alice.in_dialog(dialog, "BYE")
        assert (await alice.final(bye)).status == 200
        await eventually(lambda: not mgr.calls)


async def test_refer_from_the_ims_reaches_the_wic(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, _mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                dialog, bob_dialog, _, _ = await answered_call(alice, bob)
                refer = asyncio.ensure_future(bob.send_in(bob_dialog, "REFER", [
                    ("Refer-To", "<sip:erin@ims.test?Subject=transfer>"),
                    ("Referred-By", '"Bob" <sip:bob@ims.test>'),
                ]))  # fmt: skip
                got = await alice.next_request("REFER")
                assert got.call_id == dialog.call_id and got.to.tag == alice.tag
                assert got.headers.get("Refer-To") == "<sip:erin@ims.test?Subject=transfer>"
                assert got.headers.get("Referred-By") == '"Bob" <sip:bob@ims.test>'
                await alice.answer(got, 202)
                response = await asyncio.wait_for(refer, 10)
                assert response.status == 202
                # the WIC (transferee) reports with NOTIFY: it reaches the phone on its dialog
                notify = await alice.in_dialog(dialog, "NOTIFY", [
                    ("Event", "refer"), ("Subscription-State", "terminated;reason=noresource"), *SIPFRAG,
                ], b"SIP/2.0 486 Busy Here\r\n")  # fmt: skip
                seen = await bob.next_request("NOTIFY")
                assert seen.request.call_id == bob_dialog.id.call_id
                assert seen.request.body == b"SIP/2.0 486 Busy Here\r\n"
                assert seen.request.headers.get_all("P-Asserted-Identity") == ["<sip:alice@ims.test>"]
                bob.respond(seen, 200)
                assert (await alice.final(notify)).status == 200
            finally:
                await closing(alice)


async def test_message_subscribe_and_info_package_in_the_dialog(make_lab: LabFactory) -> None:
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        dialog, bob_dialog, invite, _ = await answered_call(alice, bob)
        # MESSAGE within the dialog (RFC 3428 §4), WIC -> IMS, answered by the phone
        sent = await alice.in_dialog(dialog, "MESSAGE", [("Content-Type", "text/plain")], b"hello")
        got = await bob.next_request("MESSAGE")
        assert got.request.call_id == invite.call_id and got.request.body == b"hello"
        assert (await alice.final(sent)).status == 200
        # SUBSCRIBE within the dialog (RFC 6665 §4.1.2.1): the phone's answer comes back as it is
        subscribe = [("Event", "dialog"), ("Expires", "0"), ("Accept", "application/dialog-info+xml")]
        sent = await alice.in_dialog(dialog, "SUBSCRIBE", subscribe)
        got = await bob.next_request("SUBSCRIBE")
        assert got.request.headers.get("Event") == "dialog"
        assert got.request.headers.get("Expires") == "0"
        bob.respond(got, 489)  # Bad Event (RFC 6665 §8.3.2)
        assert (await alice.final(sent)).status == 489
        # INFO with an Info-Package other than DTMF (RFC 6086), IMS -> WIC, and the WIC's 469 back
        alice.auto.pop("INFO")
        info = asyncio.ensure_future(bob.send_in(bob_dialog, "INFO", [
            ("Info-Package", "foo"), ("Content-Disposition", "Info-Package"),
            ("Content-Type", "application/foo+xml")], b"<foo/>"))  # fmt: skip
        back = await alice.next_request("INFO")
        assert back.headers.get("Info-Package") == "foo" and back.body == b"<foo/>"
        await alice.answer(back, 469)  # Bad Info Package (RFC 6086 §4.2.2)
        assert (await asyncio.wait_for(info, 10)).status == 469
        # OPTIONS within the dialog probes the far end (RFC 3261 §11): the WIC answers it
        probe = await bob.send_in(bob_dialog, "OPTIONS")
        assert probe.status == 200 and "REFER" in (probe.headers.get("Allow") or "")
        assert alice.got("OPTIONS")[-1].call_id == dialog.call_id
        assert len(mgr.calls) == 1


async def test_refer_from_a_pool_wic_names_its_impu(make_lab: LabFactory) -> None:
    gateway = {"pools": ("web",), "pool_passwords": (f"web={POOL_PASSWORD}",)}
    async with session_lab(make_lab, gateway=gateway) as (lab, _mgr):
        pat = SessionWic(lab.url, origin=ORIGIN, user="pat-web", domain="web.example")
        await pat.connect()
        try:
            assert (await pat.register(headers=[bearer(token_for(lab.auth, "pat"))])).status == 200
            (binding,) = list(lab.gateway.bindings)
            async with phone(lab) as bob:
                dialog, _, invite, _ = await answered_call(pat, bob)
                refer = await pat.in_dialog(
                    dialog,
                    "REFER",
                    [
                        ("Refer-To", "<sip:carol@ims.test>"),
                        ("Referred-By", '"Pat" <sip:pat-web@web.example>'),
                    ],
                )
                got = await bob.next_request("REFER")
                # seed 004 §6.X.2.2.5: the IMS never sees the web address, in From or Referred-By
                assert str(got.request.from_.uri) == binding.impu == str(invite.from_.uri)
                assert got.request.headers.get("Referred-By") == f'"Pat" <{binding.impu}>'
                assert got.request.headers.get_all("P-Asserted-Identity") == [f"<{binding.impu}>"]
                bob.respond(got, 403)
                assert (await pat.final(refer)).status == 403
        finally:
            await closing(pat)


async def test_refer_with_replaces_names_the_far_side_dialog(make_lab: LabFactory) -> None:
    """Attended transfer (RFC 5589 §7): alice's REFER names her other call by its WIC-side dialog;
    the phone gets the same call's IMS-side dialog in Replaces (RFC 3891 §3)."""
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        first, _, _, _ = await answered_call(alice, bob)
        second, _, second_invite, _ = await answered_call(alice, bob)
        other = next(c for c in mgr.calls.values() if c.wic.call_id == second.call_id)
        assert other.ims.dialog is not None
        wic_tag = second.remote.split("tag=")[1]
        replaces = f"{second.call_id}%3Bto-tag%3D{wic_tag}%3Bfrom-tag%3D{alice.tag}"
        await alice.in_dialog(first, "REFER", [
            ("Refer-To", f"<sip:bob@ims.test?Replaces={replaces}>")])  # fmt: skip
        got = await bob.next_request("REFER")
        far = other.ims.dialog.id
        assert far.call_id == second_invite.call_id
        expected = quote(f"{far.call_id};to-tag={far.remote_tag};from-tag={far.local_tag}", safe="")
        assert got.request.headers.get("Refer-To") == f"<sip:bob@ims.test?Replaces={expected}>"
        bob.respond(got, 202)
