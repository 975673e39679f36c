"""Session routing through the lab core (TS 24.229 §5.3.2, §5.4.3): originating on the
Service-Route, terminating by registration (Path, tel: through the implicit set,
wildcarded ranges), forking, CANCEL, MESSAGE, 403/404/480."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from labcore_harness import SDP_PCMU, Ue, eventually, registered, running_core

from webims.diameter import Message
from webims.labcore import LabCore
from webims.sip import Request, Response


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[LabCore]:
    async with running_core(tmp_path) as lab:
        yield lab


def message(ue: Ue, uri: str, text: bytes = b"hello") -> Request:
    return ue.request("MESSAGE", uri, body=text, content_type="text/plain")


async def test_message_follows_the_callee_path_with_p_called_party_id(core: LabCore) -> None:
    alice = await registered(core, "alice")
    bob = Ue(core, "bob")
    await bob.__aenter__()
    bob.path = f"sip:pcscf@127.0.0.1:{bob.port};lr"  # our own "P-CSCF" address: requests come back to us
    try:
        assert (await bob.register()).status == 200
        response = await alice.send(message(alice, "sip:bob@ims.test", b"hello bob"))
        assert response.status == 200
        (got,) = [r for r in bob.received if r.method == "MESSAGE"]
        assert str(got.uri) == bob.contact_uri  # Request-URI = the registered contact
        assert got.headers.get_all("route") == [f"<{bob.path}>"]  # RFC 3327 §5.4
        assert got.headers.get("p-called-party-id") == "<sip:bob@ims.test>"
        assert got.headers.get("p-asserted-identity") == "<sip:alice@ims.test>"
        assert got.body == b"hello bob"
        assert "record-route" not in got.headers  # MESSAGE creates no dialog
    finally:
        await alice.__aexit__()
        await bob.__aexit__()


async def test_tel_uri_reaches_the_user_through_the_implicit_set(core: LabCore) -> None:
    alice, bob = await registered(core, "alice"), await registered(core, "bob")
    try:
        assert (await alice.send(message(alice, "tel:+15552000"))).status == 200
        (got,) = [r for r in bob.received if r.method == "MESSAGE"]
        assert got.headers.get("p-called-party-id") == "<tel:+15552000>"
        # a sip: URI with user=phone is the same identity
        assert (await alice.send(message(alice, "sip:+15552000@ims.test;user=phone"))).status == 200
    finally:
        await alice.__aexit__()
        await bob.__aexit__()


async def test_known_unregistered_user_gets_480_and_unknown_user_404(core: LabCore) -> None:
    alice = await registered(core, "alice")
    try:
        assert (await alice.send(message(alice, "sip:olga@ims.test"))).status == 480
        assert (await alice.send(message(alice, "sip:nobody@ims.test"))).status == 404
        assert (await alice.send(message(alice, "tel:+19999999"))).status == 404
    finally:
        await alice.__aexit__()


async def test_terminating_request_at_the_icscf_for_an_unknown_or_unregistered_user(core: LabCore) -> None:
    async with Ue(core, "alice") as outsider:  # a request from another network, straight to the I-CSCF
        req = outsider.request(
            "MESSAGE", "sip:nobody@ims.test", body=b"x", content_type="text/plain", route=False
        )
        assert (await outsider.send(req, outsider.icscf())).status == 404
        req = outsider.request(
            "MESSAGE", "sip:olga@ims.test", body=b"x", content_type="text/plain", route=False
        )
        assert (await outsider.send(req, outsider.icscf())).status == 480


async def test_originating_request_from_an_unregistered_user_gets_403(core: LabCore) -> None:
    bob = await registered(core, "bob")
    try:
        async with Ue(core, "alice") as alice:  # never registered
            alice.service_route = [f"<{core.scscf.service_route}>"]
            assert (await alice.send(message(alice, "sip:bob@ims.test"))).status == 403
    finally:
        await bob.__aexit__()


async def test_call_with_180_200_ack_and_bye_through_the_scscf(core: LabCore) -> None:
    alice, bob = await registered(core, "alice"), await registered(core, "bob")
    try:
        call = await alice.call("sip:bob@ims.test")
        assert call.final is not None and call.final.status == 200
        assert [r.status for r in call.provisional if r.status > 100] == [180]
        assert call.final.body == SDP_PCMU
        rr = call.final.headers.get_all("record-route")
        assert f"<{core.scscf.record_route}>" in rr  # the S-CSCF stays in the dialog
        await eventually(lambda: bob.acks)
        (ack,) = bob.acks
        assert ack.cseq.method == "ACK" and ack.call_id == call.invite.call_id
        assert call.dialog is not None
        bye = await alice.send_in_dialog(call.dialog.create_request("BYE"))
        assert bye is not None and bye.status == 200
        (got_bye,) = [r for r in bob.received if r.method == "BYE"]
        assert got_bye.call_id == call.invite.call_id
    finally:
        await alice.__aexit__()
        await bob.__aexit__()


async def test_forking_to_two_contacts_first_200_wins_and_the_other_is_cancelled(core: LabCore) -> None:
    alice = await registered(core, "alice")
    slow = await registered(core, "bob", answer=[(180, b"")])  # rings forever
    fast = await registered(core, "bob")
    try:
        reg = core.scscf.registration("sip:bob@ims.test")
        assert reg is not None and len(reg.bindings) == 2
        call = await alice.call("sip:bob@ims.test")
        assert call.final is not None and call.final.status == 200
        assert call.final.headers.get("contact") == f"<{fast.contact_uri}>"
        await eventually(lambda: slow.invites and slow.invites[0].cancelled.is_set())
        assert fast.invites and slow.invites
    finally:
        for ue in (alice, slow, fast):
            await ue.__aexit__()


async def test_caller_cancel_reaches_the_callee_and_ends_with_487(core: LabCore) -> None:
    alice = await registered(core, "alice")
    bob = await registered(core, "bob", answer=[(180, b"")])
    try:
        invite = alice.request("INVITE", "sip:bob@ims.test", body=SDP_PCMU, content_type="application/sdp")
        ringing = asyncio.Event()

        def provisional(response: Response) -> None:
            if response.status == 180:
                ringing.set()

        task = asyncio.ensure_future(alice.send(invite, on_provisional=provisional))
        await asyncio.wait_for(ringing.wait(), 10)
        alice.endpoint.cancel(invite)
        final = await task
        assert final.status == 487
        await eventually(lambda: bob.invites[0].cancelled.is_set())
    finally:
        await alice.__aexit__()
        await bob.__aexit__()


async def test_callee_busy_is_relayed(core: LabCore) -> None:
    alice = await registered(core, "alice")
    bob = await registered(core, "bob", answer=[(486, b"")])
    try:
        call = await alice.call("sip:bob@ims.test")
        assert call.final is not None and call.final.status == 486
    finally:
        await alice.__aexit__()
        await bob.__aexit__()


async def test_wildcarded_range_reaches_the_registered_pool(core: LabCore) -> None:
    """TS 23.003 §13.5: sip:pool-<digits>@ims.test belongs to the pool's implicit set."""
    alice = await registered(core, "alice")
    pool = await registered(core, "pool", password="pool-secret")
    try:
        assert (await alice.send(message(alice, "sip:pool-42@ims.test"))).status == 200
        (got,) = [r for r in pool.received if r.method == "MESSAGE"]
        assert got.headers.get("p-called-party-id") == "<sip:pool-42@ims.test>"
        # from outside, through the I-CSCF: the LIA's Wildcarded-Public-Identity becomes P-Profile-Key
        async with Ue(core, "alice") as outsider:
            req = outsider.request(
                "MESSAGE", "sip:pool-7@ims.test", body=b"x", content_type="text/plain", route=False
            )
            assert (await outsider.send(req, outsider.icscf())).status == 200
        last = [r for r in pool.received if r.method == "MESSAGE"][-1]
        assert last.headers.get("p-called-party-id") == "<sip:pool-7@ims.test>"
        assert last.headers.get("p-profile-key") == "<sip:pool-!\\d+!@ims.test>"
        assert (await alice.send(message(alice, "sip:pool-x@ims.test"))).status == 404  # outside the range
    finally:
        await alice.__aexit__()
        await pool.__aexit__()


async def test_max_forwards_zero_gets_483(core: LabCore) -> None:
    alice = await registered(core, "alice")
    try:
        req = message(alice, "sip:bob@ims.test")
        req.headers.set("Max-Forwards", "0")
        assert (await alice.send(req)).status == 483
    finally:
        await alice.__aexit__()


async def test_options_to_the_cscfs_themselves(core: LabCore) -> None:
    async with Ue(core, "alice") as ue:
        req = ue.request("OPTIONS", core.scscf_uri, route=False)
        assert (await ue.send(req)).status == 200
        req = ue.request("OPTIONS", core.icscf_uri, route=False)
        assert (await ue.send(req, ue.icscf())).status == 200


async def test_tcp_ue_registers_and_receives_a_call(core: LabCore) -> None:
    alice = await registered(core, "alice")
    bob = await registered(core, "bob", transport="TCP")
    try:
        call = await alice.call("sip:bob@ims.test")
        assert call.final is not None and call.final.status == 200
        assert bob.invites and bob.invites[0].connection.transport == "TCP"
    finally:
        await alice.__aexit__()
        await bob.__aexit__()


async def test_a_tcp_only_core(tmp_path: Path) -> None:
    async with running_core(tmp_path, transports=("tcp",)) as core:
        assert core.scscf.service_route.endswith(";transport=tcp;lr")
        alice = await registered(core, "alice", transport="TCP")
        bob = await registered(core, "bob", transport="TCP")
        try:
            # Over TCP a UE registered without a P-CSCF is known by the connection its REGISTER
            # came on (its flow, RFC 5626 §3): it calls through the I-CSCF on that connection,
            # which sends the INVITE to the S-CSCF's originating part (webims.labcore.attached).
            call = await alice.call("sip:bob@ims.test", target=alice.icscf(), route=False)
            assert call.final is not None and call.final.status == 200
            assert call.dialog is not None
            bye = await alice.send_in_dialog(call.dialog.create_request("BYE"))
            assert bye is not None and bye.status == 200
        finally:
            await alice.__aexit__()
            await bob.__aexit__()


async def test_cancel_while_the_icscf_waits_for_the_hss(core: LabCore) -> None:
    """RFC 3261 §16.10: a CANCEL that arrives before the INVITE is forwarded ends it with 487."""
    bob = await registered(core, "bob")
    asked, release = asyncio.Event(), asyncio.Event()
    real = core.icscf.cx.request

    async def slow_request(message: Message, timeout: float | None = None) -> Message:
        asked.set()
        await release.wait()  # the HSS answers late
        return await real(message, timeout)

    core.icscf.cx.request = slow_request  # type: ignore[method-assign]
    try:
        async with Ue(core, "alice") as outsider:
            invite = outsider.request("INVITE", "sip:bob@ims.test", body=SDP_PCMU,
                                      content_type="application/sdp", route=False)  # fmt: skip
            task = asyncio.ensure_future(outsider.send(invite, outsider.icscf()))
            await asyncio.wait_for(asked.wait(), 10)
            outsider.endpoint.cancel(invite)  # sent once the 100 Trying is in
            await asyncio.sleep(0.2)
            release.set()
            assert (await task).status == 487
        assert bob.invites == []
    finally:
        core.icscf.cx.request = real  # type: ignore[method-assign]
        await bob.__aexit__()
