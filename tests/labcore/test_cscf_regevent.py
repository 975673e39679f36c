"""The reg event package at the S-CSCF (RFC 3680, TS 24.229 §5.4.2.1) and network-initiated
de-registration (RTR from the HSS, administrative), with reginfo documents checked field by field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from labcore_harness import REALM, Ue, eventually, reginfo_of_notify, running_core

from webims.diameter import ReasonCode
from webims.endpoint import IncomingRequest
from webims.labcore import LabCore
from webims.labcore.hss import RegState, SubscriberChanges
from webims.labcore.regevent import (
    ContactInfo,
    Reginfo,
    ReginfoError,
    RegistrationInfo,
    build_reginfo,
    parse_reginfo,
    reginfo_of,
    reginfo_xml,
)
from webims.labcore.registrations import Binding, Registration
from webims.sip import Dialog, Request, Response, parse_name_addr

# RFC 3680 §6 example (first NOTIFY body), as published
RFC3680_EXAMPLE = b"""<?xml version="1.0"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo"
         version="0" state="full">
  <registration aor="sip:user@example.com" id="as9"
                state="active">
    <contact id="76" state="active" event="registered"
             duration-registered="7322"
             q="0.8">
             <uri>sip:user@pc887.example.com</uri>
    </contact>
    <contact id="77" state="terminated" event="expired"
             duration-registered="3600"
             q="0.5">
             <uri>sip:user@university.edu</uri>
    </contact>
  </registration>
</reginfo>
"""


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[LabCore]:
    async with running_core(tmp_path) as lab:
        yield lab


def test_parse_the_rfc3680_example() -> None:
    info = parse_reginfo(RFC3680_EXAMPLE)
    assert info.version == 0 and info.state == "full"
    (reg,) = info.registrations
    assert (reg.aor, reg.id, reg.state) == ("sip:user@example.com", "as9", "active")
    assert [(c.id, c.state, c.event, c.uri) for c in reg.contacts] == [
        ("76", "active", "registered", "sip:user@pc887.example.com"),
        ("77", "terminated", "expired", "sip:user@university.edu"),
    ]


def test_build_and_parse_round_trip() -> None:
    info = Reginfo(
        3,
        "full",
        (
            RegistrationInfo(
                "sip:a@ims.test",
                "r1",
                "active",
                (
                    ContactInfo(
                        "c1",
                        "active",
                        "refreshed",
                        "sip:a@10.0.0.1;transport=tcp",
                        300,
                        (("+sip.instance", '"<urn:uuid:1>"'),),
                    ),
                ),
            ),
            RegistrationInfo("tel:+1555", "r2", "terminated"),
        ),
    )
    assert parse_reginfo(build_reginfo(info)) == info


def test_notify_body_fast_path_equals_the_general_builder() -> None:
    """reginfo_xml (what the S-CSCF sends) is build_reginfo(reginfo_of(...)) byte for byte:
    escaped identities and URIs, unknown parameters, active and terminated contacts."""
    reg = Registration("sip:a&b@ims.test", {"a@ims.test"})
    reg.identities = ("sip:a&b@ims.test", "tel:+15551234", "sip:o'q\"r@ims.test")
    contacts = [
        parse_name_addr(
            '<sip:a@10.0.0.1:5060;transport=tcp;x=a&b>;+sip.instance="<urn:uuid:1>";reg-id=1;q=0.5'
        ),
        parse_name_addr("<sip:a@[2001:db8::1];ob>;expires=60;audio"),
    ]
    reg.bindings = {
        "one": Binding(contacts[0], 1000.0, "a@ims.test", "c1", 1, id="b1", event="refreshed"),
        "two": Binding(contacts[1], 1100.4, "a@ims.test", "c2", 2, id="b2"),
    }
    gone = Binding(parse_name_addr("<sip:a@192.0.2.9>"), 900.0, "a@ims.test", "c3", 3, id="b3")
    gone.state, gone.event = "terminated", "unregistered"
    reg.terminated = [gone]
    for now in (100.0, 1050.0):
        assert reginfo_xml(reg, 7, now) == build_reginfo(reginfo_of(reg, 7, now))
        assert reginfo_xml(reg, 7, now) == reginfo_xml(reg, 7, now)  # the cached contact ends
    reg.bindings = {}
    assert reginfo_xml(reg, 8, 0.0) == build_reginfo(reginfo_of(reg, 8, 0.0))
    reg.identities = ()
    assert reginfo_xml(reg, 9, 0.0) == build_reginfo(reginfo_of(reg, 9, 0.0))


@pytest.mark.parametrize("bad", [b"<reginfo", b"<other version='1'/>", b"<reginfo/>", b"x" * 300_000])
def test_malformed_reginfo_raises_reginfo_error(bad: bytes) -> None:
    with pytest.raises(ReginfoError):
        parse_reginfo(bad)


def subscribe(ue: Ue, *, expires: int = 600, who: str | None = None) -> Request:
    request = ue.request(
        "SUBSCRIBE",
        ue.impu,
        headers=[("Event", "reg"), ("Accept", "application/reginfo+xml"), ("Expires", str(expires))],
    )
    if who is not None:
        request.headers.set("P-Asserted-Identity", f"<{who}>")
    return request


async def test_subscribe_gets_200_and_a_full_state_notify(core: LabCore) -> None:
    async with Ue(core, "alice") as ue:
        assert (await ue.register()).status == 200
        response = await ue.send(subscribe(ue))
        assert response.status == 200
        assert response.headers.get("expires") == "600" and response.to.tag
        await eventually(lambda: ue.notifies)
        notify = ue.notifies[0]
        assert notify.headers.get("event") == "reg"
        assert notify.headers.get("subscription-state", "").startswith("active;expires=")
        assert notify.call_id == response.call_id and notify.from_.tag == response.to.tag
        info = reginfo_of_notify(notify)
        assert info.version == 0 and info.state == "full"
        # one <registration> per identity of the implicit set (TS 24.229 §5.4.2.1.2)
        assert [r.aor for r in info.registrations] == ["sip:alice@ims.test", "tel:+15551000"]
        reg = info.registration("sip:alice@ims.test")
        assert reg is not None and reg.state == "active"
        (contact,) = reg.contacts
        assert (contact.state, contact.event, contact.uri) == ("active", "registered", ue.contact_uri)
        assert contact.expires is not None and 590 <= contact.expires <= 600


async def test_every_change_brings_a_notify_and_deregistration_terminates(core: LabCore) -> None:
    async with Ue(core, "bob") as ue, Ue(core, "bob") as other:
        assert (await ue.register()).status == 200
        assert (await ue.send(subscribe(ue))).status == 200
        await eventually(lambda: len(ue.notifies) == 1)
        assert (await other.register()).status == 200  # a second contact appears
        await eventually(lambda: len(ue.notifies) == 2)
        info = reginfo_of_notify(ue.notifies[1])
        assert info.version == 1
        reg = info.registration("sip:bob@ims.test")
        assert reg is not None and {c.uri for c in reg.contacts} == {ue.contact_uri, other.contact_uri}
        assert (await other.register(0)).status == 200  # that contact goes away
        await eventually(lambda: len(ue.notifies) == 3)
        reg = reginfo_of_notify(ue.notifies[2]).registration("sip:bob@ims.test")
        assert reg is not None
        gone = [c for c in reg.contacts if c.uri == other.contact_uri]
        assert [(c.state, c.event) for c in gone] == [("terminated", "unregistered")]
        assert (await ue.register(0)).status == 200  # the last one: the registration ends
        await eventually(lambda: len(ue.notifies) == 4)
        last = ue.notifies[3]
        assert last.headers.get("subscription-state", "").startswith("terminated")
        reg = reginfo_of_notify(last).registration("sip:bob@ims.test")
        assert reg is not None and reg.state == "terminated"


async def test_subscription_refresh_and_unsubscribe(core: LabCore) -> None:
    async with Ue(core, "dave") as ue:
        assert (await ue.register()).status == 200
        initial = subscribe(ue)
        response = await ue.send(initial)
        assert response.status == 200
        await eventually(lambda: ue.notifies)
        dialog = Dialog.from_uac(initial, response)
        refresh = dialog.create_request("SUBSCRIBE", headers=[("Event", "reg"), ("Expires", "300")])
        refreshed = await ue.send_in_dialog(refresh)
        assert refreshed is not None and refreshed.status == 200 and refreshed.headers.get("expires") == "300"
        await eventually(lambda: len(ue.notifies) == 2)
        unsubscribe = dialog.create_request("SUBSCRIBE", headers=[("Event", "reg"), ("Expires", "0")])
        done = await ue.send_in_dialog(unsubscribe)
        assert done is not None and done.status == 200
        await eventually(lambda: len(ue.notifies) == 3)
        assert ue.notifies[2].headers.get("subscription-state") == "terminated;reason=timeout"
        assert not core.scscf.regevent.subscriptions


async def test_a_stranger_may_not_subscribe(core: LabCore) -> None:
    async with Ue(core, "erin") as erin, Ue(core, "frank") as frank:
        assert (await erin.register()).status == 200
        assert (await frank.register()).status == 200
        spy = subscribe(frank)
        spy.uri = erin.impu
        spy.headers.set("To", f"<{erin.impu}>")
        assert (await frank.send(spy)).status == 403


async def test_the_pcscf_on_the_path_may_subscribe(core: LabCore) -> None:
    async with Ue(core, "gina", path="sip:pcscf@127.0.0.9:5999;lr") as gina, Ue(core, "hank") as pcscf:
        assert (await gina.register()).status == 200
        assert (await pcscf.register()).status == 200
        request = subscribe(pcscf, who="sip:pcscf@127.0.0.9")
        request.uri = gina.impu
        request.headers.set("To", f"<{gina.impu}>")
        assert (await pcscf.send(request)).status == 200
        await eventually(lambda: pcscf.notifies)


async def _registered_and_subscribed(core: LabCore, ue: Ue) -> None:
    assert (await ue.register()).status == 200
    assert (await ue.send(subscribe(ue))).status == 200
    await eventually(lambda: ue.notifies)


async def test_rtr_from_the_hss_deregisters_and_notifies_rejected(core: LabCore) -> None:
    assert core.hss is not None
    async with Ue(core, "ivan") as ue:
        await _registered_and_subscribed(core, ue)
        result = await core.hss.deregister(f"ivan@{REALM}", reason_code=ReasonCode.PERMANENT_TERMINATION)
        assert result.success and result.destination_host == core.scscf_cx.origin_host
        await eventually(lambda: len(ue.notifies) == 2)
        last = ue.notifies[1]
        assert last.headers.get("subscription-state") == "terminated;reason=rejected"
        reg = reginfo_of_notify(last).registration("sip:ivan@ims.test")
        assert reg is not None and reg.state == "terminated"
        assert [(c.state, c.event) for c in reg.contacts] == [("terminated", "rejected")]
    assert core.scscf.registration("sip:ivan@ims.test") is None
    assert core.subscribers is not None
    rec = core.subscribers.impu("sip:ivan@ims.test")
    assert rec is not None and rec.reg_state is RegState.NOT_REGISTERED


async def test_rtr_with_new_server_assigned_notifies_deactivated(core: LabCore) -> None:
    assert core.hss is not None
    async with Ue(core, "judy") as ue:
        await _registered_and_subscribed(core, ue)
        result = await core.hss.deregister(f"judy@{REALM}", reason_code=ReasonCode.NEW_SERVER_ASSIGNED)
        assert result.success
        await eventually(lambda: len(ue.notifies) == 2)
        reg = reginfo_of_notify(ue.notifies[1]).registration("sip:judy@ims.test")
        assert reg is not None and [c.event for c in reg.contacts] == ["deactivated"]


async def test_administrative_deregistration_at_the_scscf(core: LabCore) -> None:
    async with Ue(core, "kim") as ue:
        await _registered_and_subscribed(core, ue)
        assert await core.scscf.deregister("sip:kim@ims.test")
        await eventually(lambda: len(ue.notifies) == 2)
        assert ue.notifies[1].headers.get("subscription-state") == "terminated;reason=rejected"
    assert core.scscf.registration("sip:kim@ims.test") is None
    assert core.subscribers is not None
    rec = core.subscribers.impu("sip:kim@ims.test")
    assert rec is not None and rec.reg_state is RegState.NOT_REGISTERED  # SAR ADMINISTRATIVE_DEREGISTRATION
    assert not await core.scscf.deregister("sip:kim@ims.test")


async def test_ppr_updates_the_implicit_set(core: LabCore) -> None:
    assert core.hss is not None and core.subscribers is not None
    async with Ue(core, "lee") as ue:
        await _registered_and_subscribed(core, ue)
        core.subscribers.update(
            f"lee@{REALM}",
            SubscriberChanges(
                add_impus=("tel:+15557000",), implicit_sets=(("sip:lee@ims.test", "tel:+15557000"),)
            ),
        )
        result = await core.hss.push_profile(f"lee@{REALM}")
        assert result.success
        await eventually(lambda: len(ue.notifies) == 2)
        aors = [r.aor for r in reginfo_of_notify(ue.notifies[1]).registrations]
        assert "tel:+15557000" in aors
    reg = core.scscf.registration("tel:+15557000")
    assert reg is not None and reg.impu == "sip:lee@ims.test"


async def test_a_failed_notify_ends_the_subscription(core: LabCore) -> None:
    async with Ue(core, "alice") as ue:
        assert (await ue.register()).status == 200

        async def refuse(incoming: IncomingRequest) -> None:
            incoming.respond(481)

        ue.endpoint.on_request = refuse
        response: Response = await ue.send(subscribe(ue))
        assert response.status == 200
        await eventually(lambda: not core.scscf.regevent.subscriptions)


async def test_an_unrefreshed_subscription_expires(core: LabCore) -> None:
    async with Ue(core, "hank") as ue:
        assert (await ue.register()).status == 200
        response = await ue.send(subscribe(ue, expires=1))
        assert response.status == 200 and response.headers.get("expires") == "1"
        await eventually(lambda: len(ue.notifies) == 2)
        assert ue.notifies[1].headers.get("subscription-state") == "terminated;reason=timeout"
        assert not core.scscf.regevent.subscriptions
