"""Session features between a scripted WIC and a scripted IMS phone, through the gateway and the lab core.

DTMF by INFO both ways, MESSAGE both ways, forking (two early dialogs, two 2xx),
session timers (refresh, expiry, 422), glare (491 and the §14.1 retry), error
answers with their reasons, scope and destination checks, identity assertion,
hidden ringing, pool identities, an IMS that does not answer, a WIC gone offline.
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import ORIGIN, PASSWORDS, POOL_PASSWORD, WEB_PASSWORD, LabFactory, token_for
from ims_phone import rtp_sdp
from session_lab import answered_call, eventually, phone, session_lab, wic_and_phone, wics
from session_wic import SessionWic, chrome_offer, closing, direction_of
from wicclient import bearer

from webims.auth.identity import DestinationRules
from webims.gateway.sessions import SessionManager

DTMF = b"Signal=5\r\nDuration=160\r\n"


async def test_info_dtmf_relayed_both_ways(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, _mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                dialog, bob_dialog, _, _ = await answered_call(alice, bob)
                sent = await alice.in_dialog(
                    dialog, "INFO", [("Content-Type", "application/dtmf-relay")], DTMF
                )
                assert (await alice.final(sent)).status == 200
                info = await bob.next_request("INFO")
                assert info.request.body == DTMF and info.request.content_type == "application/dtmf-relay"
                response = await bob.send_in(bob_dialog, "INFO", [("Content-Type", "application/dtmf-relay")],
                                             b"Signal=#\r\nDuration=100\r\n")  # fmt: skip
                assert response.status == 200
                back = await alice.next_request("INFO")
                assert back.body == b"Signal=#\r\nDuration=100\r\n"
            finally:
                await closing(alice)


async def test_message_both_ways(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, _mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                text = [("Content-Type", "text/plain")]
                response = await alice.request("MESSAGE", "sip:bob@ims.test", text,
                                               b"hi bob", to="sip:bob@ims.test")  # fmt: skip
                assert response.status == 200
                got = await bob.next_request("MESSAGE")
                assert got.request.body == b"hi bob"
                assert got.request.headers.get("P-Asserted-Identity") == "<sip:alice@ims.test>"
                from webims.sip import Request, new_tag

                message = Request("MESSAGE", "sip:alice@ims.test", [
                    ("Max-Forwards", "70"), ("From", f"<{bob.aor}>;tag={new_tag()}"),
                    ("To", "<sip:alice@ims.test>"), ("Call-ID", "m1@phone"), ("CSeq", "1 MESSAGE"),
                    *[("Route", r) for r in bob.service_route], ("Content-Type", "text/plain"),
                ], b"hi alice")  # fmt: skip
                from webims.endpoint import Target

                host, port = lab.core.scscf_address
                answer = await bob.endpoint.request(message, Target("UDP", host, port))
                assert answer.status == 200, answer
                assert (await alice.next_request("MESSAGE")).body == b"hi alice"
            finally:
                await closing(alice)


async def test_forking_two_early_dialogs_and_two_2xx(make_lab: LabFactory) -> None:
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        sent = await alice.invite("sip:bob@ims.test")
        got = await bob.next_request("INVITE")
        bob.respond(got, 180, to_tag="fork1")
        bob.respond(got, 180, to_tag="fork2")
        await eventually(lambda: len([r for r in sent.provisional if r.status == 180]) == 2)
        tags = {r.to.tag for r in sent.provisional if r.status == 180}
        assert len(tags) == 1  # one WIC dialog for both forks
        bob.respond(got, 200, to_tag="fork2", body=rtp_sdp())
        final = await alice.final(sent)
        assert final.status == 200 and final.to.tag in tags
        bob.respond(
            got, 200, to_tag="fork1", body=rtp_sdp(30002)
        )  # a second 2xx (RFC 3261 §13.2.2.4)
        bye = await bob.next_request("BYE")
        assert bye.request.to.tag == "fork1"
        await eventually(lambda: {a.to.tag for a in bob.acks} == {"fork1", "fork2"})
        (call,) = [c for c in mgr.calls.values()]
        assert call.ims.dialog is not None and call.ims.dialog.id.remote_tag == "fork2"


async def test_session_timer_refresh_by_update(make_lab: LabFactory) -> None:
    async with wic_and_phone(make_lab, session_expires=4, min_se=2) as (mgr, alice, bob):
        sent = await alice.invite("sip:bob@ims.test")
        got = await bob.next_request("INVITE")
        assert got.request.headers.get("Session-Expires") == "4;refresher=uac"
        assert "timer" in got.request.option_tags("supported")
        bob.respond(got, 200, body=rtp_sdp(), headers=[("Session-Expires", "4;refresher=uac"),
                                                       ("Require", "timer")])  # fmt: skip
        await alice.ack(alice.dialog_from(sent, await alice.final(sent)))
        for _ in range(2):  # the gateway refreshes every interval/2 (RFC 4028 §10)
            update = await bob.next_request("UPDATE", timeout=10)
            assert update.request.headers.get("Session-Expires") == "4;refresher=uac"
            assert not update.request.body
            bob.respond(update, 200, headers=[("Session-Expires", "4;refresher=uac")])
        assert len(mgr.calls) == 1


async def test_session_expires_without_refresh_ends_the_call(make_lab: LabFactory) -> None:
    async with wic_and_phone(make_lab, session_expires=3, min_se=2) as (mgr, alice, bob):
        await answered_call(alice, bob, answer_headers=(("Session-Expires", "3;refresher=uas"),))
        # the phone was to refresh and does not: the gateway ends both legs (RFC 4028 §10)
        bye = await bob.next_request("BYE", timeout=10)
        assert "408" in (bye.request.headers.get("Reason") or "")
        await alice.next_request("BYE", timeout=5)
        await eventually(lambda: not mgr.calls)


async def test_session_interval_too_small_is_retried(make_lab: LabFactory) -> None:
    async with session_lab(make_lab, session_expires=90, min_se=90) as (lab, _mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                sent = await alice.invite("sip:bob@ims.test")
                first = await bob.next_request("INVITE")
                bob.respond(first, 422, headers=[("Min-SE", "600")])
                second = await bob.next_request("INVITE")
                assert second.request.headers.get("Session-Expires") == "600;refresher=uac"
                assert second.request.headers.get("Min-SE") == "600"
                assert second.request.cseq.seq == first.request.cseq.seq + 1
                assert second.request.call_id == first.request.call_id
                bob.respond(second, 200, body=rtp_sdp())
                assert (await alice.final(sent)).status == 200
            finally:
                await closing(alice)


async def test_glare_491_and_retry(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, _mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                dialog, bob_dialog, _, _ = await answered_call(alice, bob)
                hold = asyncio.ensure_future(alice.reinvite(dialog, chrome_offer("sendonly", version=3)))
                theirs = await bob.next_request("INVITE")  # the gateway's re-INVITE, pending
                # the phone's own re-INVITE crosses it: 491 (RFC 3261 §14.2)
                crossing = await bob.send_in(
                    bob_dialog, "INVITE", body=rtp_sdp(direction="sendonly", version=2)
                )
                assert crossing.status == 491
                bob.respond(theirs, 491)
                # the gateway waits (§14.1: 2.1-4 s, it owns the Call-ID) and tries again, unseen by the WIC
                again = await bob.next_request("INVITE", timeout=10)
                assert direction_of(again.request.body) == "sendonly"
                bob.respond(again, 200, body=rtp_sdp(direction="recvonly", version=3))
                response = await hold
                assert response.status == 200 and direction_of(response.body) == "recvonly"
            finally:
                await closing(alice)


@pytest.mark.parametrize("status", [486, 408, 480, 500, 603])  # 503 becomes 500 at a proxy (§16.7)
async def test_error_answers_reach_the_wic_with_reasons(make_lab: LabFactory, status: int) -> None:
    async with wic_and_phone(make_lab) as (mgr, alice, bob):
        sent = await alice.invite("sip:bob@ims.test")
        got = await bob.next_request("INVITE")
        bob.respond(got, status, headers=[("Reason", f'Q.850;cause=17;text="user busy {status}"')]
                    if status == 486 else [])  # fmt: skip
        final = await alice.final(sent)
        assert final.status == status
        assert final.reason == got.request.response(status).reason
        reasons = final.headers.get_all("Reason")
        assert reasons and (f"cause={status}" in reasons[0] or "Q.850" in reasons[0])
        await eventually(lambda: not mgr.calls)


async def test_scope_and_destination_rules(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        lab.auth.users.add("rita", WEB_PASSWORD, dest=DestinationRules(deny=("sip:bob@*",)))
        lab.auth.users.map("rita", impi="u39@ims.test", impus=["sip:u39@ims.test"])
        rita = SessionWic(lab.url, origin=ORIGIN, user="u39")
        dave = SessionWic(lab.url, origin=ORIGIN, user="dave")
        await rita.connect()
        await dave.connect()
        try:
            assert (await rita.register(headers=[bearer(token_for(lab.auth, "rita"))])).status == 200
            denied = await rita.final(await rita.invite("sip:bob@ims.test"))
            assert denied.status == 403 and "destination" in (denied.reason or "")
            assert denied.headers.get("Warning")
            token = token_for(lab.auth, "dave")
            assert (await dave.register(headers=[bearer(token)])).status == 200
            no_call = token_for(lab.auth, "dave", scope="register")
            refused = await dave.final(await dave.invite("sip:bob@ims.test", headers=[bearer(no_call)]))
            assert refused.status == 403 and "scope" in (refused.reason or "")
            assert not mgr.calls
        finally:
            await closing(rita, dave)


async def test_identity_asserted_preferred_honoured_and_forgery_dropped(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, _mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                sent = await alice.invite("sip:bob@ims.test", headers=[
                    ("P-Asserted-Identity", "<sip:ceo@ims.test>"),
                    ("P-Preferred-Identity", "<tel:+15551000>"),
                ])  # fmt: skip
                got = await bob.next_request("INVITE")
                assert got.request.headers.get_all("P-Asserted-Identity") == ["<tel:+15551000>"]
                bob.respond(got, 486)
                await alice.final(sent)
                sent = await alice.invite(
                    "sip:bob@ims.test", headers=[("P-Preferred-Identity", "<sip:ceo@ims.test>")]
                )
                got = await bob.next_request("INVITE")
                assert got.request.headers.get_all("P-Asserted-Identity") == ["<sip:alice@ims.test>"]
                bob.respond(got, 486)
                await alice.final(sent)
            finally:
                await closing(alice)


async def test_ringing_hidden_from_wics_that_do_not_want_it(make_lab: LabFactory) -> None:
    async with session_lab(make_lab, hide_ringing_for=("ua=NoRing",)) as (lab, _mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                for ua, expected in (("NoRing/1.0", []), ("JsSIP 3.10", [180])):
                    sent = await alice.invite("sip:bob@ims.test", headers=[("User-Agent", ua)])
                    got = await bob.next_request("INVITE")
                    bob.respond(got, 180, to_tag="r1")
                    bob.respond(got, 486, to_tag="r1")
                    assert (await alice.final(sent)).status == 486
                    assert [r.status for r in sent.provisional if r.status > 100] == expected
            finally:
                await closing(alice)


async def test_ims_not_answering_gives_503_in_bounded_time(make_lab: LabFactory) -> None:
    async with session_lab(make_lab, ims_invite_timeout=1.0) as (lab, _mgr):
        (alice,) = await wics(lab, "alice")
        import socket

        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        try:
            (binding,) = [b for b in lab.gateway.bindings if b.impu == "sip:alice@ims.test"]
            binding.service_route = [f"<sip:orig@127.0.0.1:{silent.getsockname()[1]};lr>"]
            final = await alice.final(await alice.invite("sip:bob@ims.test"))
            assert final.status == 503 and final.headers.get("Retry-After")
        finally:
            silent.close()
            await closing(alice)


async def test_wic_gone_offline(make_lab: LabFactory) -> None:
    async with session_lab(make_lab, gateway={"grace_period": 60.0}) as (lab, mgr):
        (bob,) = await wics(lab, "bob")
        legacy = SessionWic(lab.url, origin=ORIGIN, user="erin", reg_id=None)  # no RFC 5626 outbound
        await legacy.connect()
        _, ok = await legacy.register_digest(PASSWORDS["erin"])
        assert ok.status == 200
        await bob.close()
        await legacy.close()
        async with phone(lab, "alice") as caller:
            for callee, status in (("bob", 430), ("erin", 480)):
                _, final, _ = await caller.invite(f"sip:{callee}@ims.test", rtp_sdp())
                response = await asyncio.wait_for(final, 10)
                assert response.status == status, response
        assert isinstance(mgr, SessionManager) and not mgr.calls


async def test_options_to_the_gateway_to_a_wic_and_from_a_wic(make_lab: LabFactory) -> None:
    from webims.endpoint import Target
    from webims.sip import Request, new_tag

    async with session_lab(make_lab) as (lab, _mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                gw = lab.gateway

                def options(uri: str, route: list[str]) -> Request:
                    return Request("OPTIONS", uri, [
                        ("Max-Forwards", "70"), ("From", f"<{bob.aor}>;tag={new_tag()}"), ("To", f"<{uri}>"),
                        ("Call-ID", f"{new_tag()}@phone"), ("CSeq", "1 OPTIONS"),
                        *[("Route", r) for r in route],
                    ])  # fmt: skip

                # to the gateway itself (a keep-alive ping of its next hop): its capabilities
                ping = await bob.endpoint.request(
                    options(gw.ims.uri(), []), Target("UDP", "127.0.0.2", gw.ims.port)
                )
                assert ping.status == 200
                assert "PRACK" in (ping.headers.get("Allow") or "") and "100rel" in ping.option_tags(
                    "supported"
                )
                # to a user: the WIC answers (through the S-CSCF and our Path)
                host, port = lab.core.scscf_address
                to_wic = await bob.endpoint.request(options("sip:alice@ims.test", bob.service_route),
                                                    Target("UDP", host, port))  # fmt: skip
                assert to_wic.status == 200
                assert any(r.method == "OPTIONS" for r in alice.seen)
                # from the WIC to an IMS user
                from_wic = await alice.request("OPTIONS", "sip:bob@ims.test", to="sip:bob@ims.test")
                assert from_wic.status == 200
                await bob.next_request("OPTIONS")
            finally:
                await closing(alice)


async def test_a_call_whose_wic_is_gone_for_good_is_ended(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            await answered_call(alice, bob)
            await alice.close()  # the browser tab is closed: no BYE, no more refreshes
            bye = await bob.next_request("BYE", timeout=15)  # grace period (1 s here) + the sweep
            assert "480" in (bye.request.headers.get("Reason") or "")
            await eventually(lambda: not mgr.calls)


async def test_pool_wic_calls_and_is_called_as_its_allocated_impu(make_lab: LabFactory) -> None:

    gateway = {"pools": ("web",), "pool_passwords": (f"web={POOL_PASSWORD}",)}
    async with session_lab(make_lab, gateway=gateway) as (lab, _mgr):
        pat = SessionWic(lab.url, origin=ORIGIN, user="pat-web", domain="web.example")
        await pat.connect()
        try:
            assert (await pat.register(headers=[bearer(token_for(lab.auth, "pat"))])).status == 200
            (binding,) = list(lab.gateway.bindings)
            async with phone(lab) as bob:
                sent = await pat.invite("sip:bob@ims.test")
                got = await bob.next_request("INVITE")
                # seed 004 §6.X.2.2.5: the IMS sees the allocated IMPU, never the web address
                assert str(got.request.from_.uri) == binding.impu
                assert got.request.headers.get_all("P-Asserted-Identity") == [f"<{binding.impu}>"]
                bob.respond(got, 486)
                assert (await pat.final(sent)).status == 486
                # the pool IMPU is called: the WIC gets the call, addressed to its own address
                _, final, _ = await bob.invite(binding.impu, rtp_sdp())
                incoming = await pat.next_request("INVITE")
                assert str(incoming.to.uri) == "sip:pat-web@web.example"
                await pat.answer(incoming, 486)
                assert (await asyncio.wait_for(final, 10)).status == 486
        finally:
            await closing(pat)


async def test_calls_reach_a_wic_on_its_new_websocket_after_flow_recovery(make_lab: LabFactory) -> None:
    async with session_lab(make_lab, gateway={"grace_period": 30.0}) as (lab, _mgr):
        (bob,) = await wics(lab, "bob")
        (binding,) = list(lab.gateway.bindings)
        await bob.close()
        await eventually(lambda: binding.connection is None)
        await bob.connect()  # the same +sip.instance and reg-id on a new WebSocket (RFC 5626)
        _, ok = await bob.register_digest(PASSWORDS["bob"])
        assert ok.status == 200 and list(lab.gateway.bindings) == [binding]
        async with phone(lab, "alice") as caller:
            try:
                _, final, _ = await caller.invite("sip:bob@ims.test", rtp_sdp())
                incoming = await bob.next_request("INVITE")
                await bob.answer(incoming, 603)
                assert (await asyncio.wait_for(final, 10)).status == 603
            finally:
                await closing(bob)


async def test_wic_requiring_an_extension_the_wic_leg_lacks_gets_420(make_lab: LabFactory) -> None:
    async with session_lab(make_lab) as (lab, mgr):
        (alice,) = await wics(lab, "alice")
        try:
            final = await alice.final(await alice.invite("sip:bob@ims.test", headers=[("Require", "100rel")]))
            assert final.status == 420 and final.headers.get("Unsupported") == "100rel"
            assert not mgr.calls
        finally:
            await closing(alice)
