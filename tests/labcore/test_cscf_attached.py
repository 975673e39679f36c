"""P-CSCF duties of the lab core for SIP phones registered without a P-CSCF
(webims.labcore.attached; TS 24.229 §5.2.6.3, RFC 3325 §5, RFC 3608).

Every UE here is a scripted UA on real UDP sockets that registers with Digest at the
lab I-CSCF *without* Path (a SIP phone such as baresip), unless it plays a P-CSCF
(``path``). Requests are sent as the phone sends them: to the I-CSCF without Route
(it ignores its Service-Route), or on the Service-Route to the S-CSCF. The raw-socket
tests write the bytes themselves to claim someone else's address in Via.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from labcore_harness import TRUSTED, Ue, registered, running_core

from webims.labcore import LabCore
from webims.labcore.flows import Flow
from webims.sip import Request, Response, parse


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[LabCore]:
    async with running_core(tmp_path) as lab:
        yield lab


def message(
    ue: Ue,
    uri: str,
    *,
    from_: str | None = None,
    route: bool = False,
    headers: list[tuple[str, str]] | None = None,
) -> Request:
    """A MESSAGE as a phone sends it: no P-Asserted-Identity (unless in ``headers``), no Route
    unless ``route`` (the Service-Route)."""
    request = ue.request("MESSAGE", uri, body=b"hi", content_type="text/plain", route=route)
    request.headers.remove("p-asserted-identity")
    if from_ is not None:
        request.headers.set("From", f"{from_};tag=spoof1")
    for name, value in headers or []:
        request.headers.add(name, value)
    return request


def got(ue: Ue, method: str = "MESSAGE") -> Request:
    requests = [r for r in ue.received if r.method == method]
    assert requests, f"{ue.user} got no {method}"
    return requests[-1]


async def test_a_phone_calls_through_the_icscf_and_the_callee_gets_its_asserted_identity(
    core: LabCore,
) -> None:
    alice, bob = await registered(core, "alice"), await registered(core, "bob")
    try:
        # MESSAGE to the I-CSCF, no Route, no P-Asserted-Identity: served as originating
        assert (await alice.send(message(alice, "sip:bob@ims.test"), alice.icscf())).status == 200
        assert got(bob).headers.get_all("p-asserted-identity") == ["<sip:alice@ims.test>"]
        # INVITE: the same, and the S-CSCF stays in the dialog; the BYE follows the route set
        call = await alice.call("sip:bob@ims.test", target=alice.icscf(), route=False)
        assert call.final is not None and call.final.status == 200
        invite = got(bob, "INVITE")
        assert invite.headers.get_all("p-asserted-identity") == ["<sip:alice@ims.test>"]
        assert f"<{core.scscf.record_route}>" in invite.headers.get_all("record-route")
        assert call.dialog is not None
        bye = await alice.send_in_dialog(call.dialog.create_request("BYE"))
        assert bye is not None and bye.status == 200
        assert got(bob, "BYE").call_id == call.invite.call_id
        # tel: callee in the home network, through the implicit set: originating too
        assert (await alice.send(message(alice, "tel:+15552000"), alice.icscf())).status == 200
        assert got(bob).headers.get_all("p-asserted-identity") == ["<sip:alice@ims.test>"]
    finally:
        await alice.__aexit__()
        await bob.__aexit__()


async def test_a_spoofed_from_gets_403_at_the_icscf_and_on_the_service_route(core: LabCore) -> None:
    alice, bob = await registered(core, "alice"), await registered(core, "bob")
    try:
        spoof = message(alice, "sip:bob@ims.test", from_="<sip:dave@ims.test>")
        response = await alice.send(spoof, alice.icscf())
        assert (response.status, response.reason) == (
            403,
            "Forbidden (From is not a registered identity of this UE)",
        )
        # on the Service-Route, with a P-Asserted-Identity to match the From: the same
        spoof = message(
            alice, "sip:bob@ims.test", from_="<sip:dave@ims.test>", route=True,
            headers=[("P-Asserted-Identity", "<sip:dave@ims.test>")],
        )  # fmt: skip
        response = await alice.send(spoof)
        assert (response.status, response.reason) == (
            403,
            "Forbidden (From is not a registered identity of this UE)",
        )
        assert [r for r in bob.received if r.method == "MESSAGE"] == []
        # another identity of its own implicit set is fine in From (tel:+15551000 is alice's)
        own = message(alice, "sip:bob@ims.test", from_="<tel:+15551000>")
        assert (await alice.send(own, alice.icscf())).status == 200
        assert got(bob).headers.get_all("p-asserted-identity") == ["<sip:alice@ims.test>"]
    finally:
        await alice.__aexit__()
        await bob.__aexit__()


async def test_a_p_asserted_identity_from_the_phone_is_replaced(core: LabCore) -> None:
    alice, dave = await registered(core, "alice"), await registered(core, "dave")
    try:
        forged = [("P-Asserted-Identity", "<sip:bob@ims.test>"), ("P-Asserted-Identity", "<tel:+15552000>")]
        assert (
            await alice.send(message(alice, "sip:dave@ims.test", headers=forged), alice.icscf())
        ).status == 200
        assert got(dave).headers.get_all("p-asserted-identity") == ["<sip:alice@ims.test>"]
        # on the Service-Route too: the S-CSCF serves alice, not the bob she claims
        on_route = message(alice, "sip:dave@ims.test", route=True, headers=forged)
        assert (await alice.send(on_route)).status == 200
        assert got(dave).headers.get_all("p-asserted-identity") == ["<sip:alice@ims.test>"]
    finally:
        await alice.__aexit__()
        await dave.__aexit__()


async def test_p_preferred_identity_is_honoured_only_for_the_phones_own_identities(core: LabCore) -> None:
    alice, dave = await registered(core, "alice"), await registered(core, "dave")
    try:
        mine = message(alice, "sip:dave@ims.test", headers=[("P-Preferred-Identity", "<tel:+15551000>")])
        assert (await alice.send(mine, alice.icscf())).status == 200
        received = got(dave)
        assert received.headers.get_all("p-asserted-identity") == ["<tel:+15551000>"]
        assert received.headers.get("p-preferred-identity") is None  # RFC 3325 §9.2: removed
        theirs = message(alice, "sip:dave@ims.test", headers=[("P-Preferred-Identity", "<sip:bob@ims.test>")])
        assert (await alice.send(theirs, alice.icscf())).status == 200
        received = got(dave)
        assert received.headers.get_all("p-asserted-identity") == ["<sip:alice@ims.test>"]  # the default
        assert received.headers.get("p-preferred-identity") is None
    finally:
        await alice.__aexit__()
        await dave.__aexit__()


async def test_an_anonymous_from_is_allowed_and_the_identity_still_asserted(core: LabCore) -> None:
    alice, dave = await registered(core, "alice"), await registered(core, "dave")
    try:
        anonymous = message(
            alice, "sip:dave@ims.test", from_='"Anonymous" <sip:anonymous@anonymous.invalid>',
            headers=[("Privacy", "id")],
        )  # fmt: skip
        assert (await alice.send(anonymous, alice.icscf())).status == 200
        received = got(dave)
        assert received.headers.get_all("p-asserted-identity") == ["<sip:alice@ims.test>"]
        assert received.headers.get("privacy") == "id"  # for the callee's P-CSCF (RFC 3325 §7)
    finally:
        await alice.__aexit__()
        await dave.__aexit__()


async def test_a_source_that_is_neither_a_ue_nor_a_pcscf_gets_403_on_the_service_route(core: LabCore) -> None:
    alice, bob = await registered(core, "alice"), await registered(core, "bob")
    try:
        async with Ue(core, "alice") as outsider:  # never registered, its own socket
            outsider.service_route = alice.service_route
            claimed = outsider.request("MESSAGE", "sip:bob@ims.test", body=b"x", content_type="text/plain")
            assert claimed.headers.get("p-asserted-identity") == "<sip:alice@ims.test>"
            response = await outsider.send(claimed)
            assert (response.status, response.reason) == (
                403,
                "Forbidden (not from a P-CSCF or a registered UE)",
            )
            # the same through the I-CSCF, Route and all
            claimed = outsider.request("MESSAGE", "sip:bob@ims.test", body=b"x", content_type="text/plain")
            assert (await outsider.send(claimed, outsider.icscf())).status == 403
            # terminating at the I-CSCF (no Route): delivered, but the claimed identity is gone
            claimed = outsider.request(
                "MESSAGE", "sip:bob@ims.test", body=b"x", content_type="text/plain", route=False
            )
            assert (await outsider.send(claimed, outsider.icscf())).status == 200
            assert got(bob).call_id == claimed.call_id
            assert got(bob).headers.get("p-asserted-identity") is None
        assert [r for r in bob.received if r.method == "MESSAGE"][:-1] == []
    finally:
        await alice.__aexit__()
        await bob.__aexit__()


async def test_a_pcscf_with_path_is_trusted_and_its_users_stay_reachable(core: LabCore) -> None:
    """The gateway's way: REGISTER with Path, then requests with P-Asserted-Identity from the
    same address on the Service-Route. Another address claiming the same gets 403."""
    pcscf = Ue(core, "alice")
    await pcscf.__aenter__()
    pcscf.path = f"sip:term@127.0.0.1:{pcscf.port};lr"
    bob = await registered(core, "bob")
    try:
        assert (await pcscf.register()).status == 200
        request = pcscf.request("MESSAGE", "sip:bob@ims.test", body=b"x", content_type="text/plain")
        assert (await pcscf.send(request)).status == 200
        assert got(bob).headers.get_all("p-asserted-identity") == ["<sip:alice@ims.test>"]
        # a P-CSCF known only by its Path asserts only the users it registered: anyone who can
        # authenticate can send a Path (RFC 3325 §2.3: the trust domain is configured)
        other = pcscf.request("MESSAGE", "sip:alice@ims.test", body=b"x", content_type="text/plain")
        other.headers.set("P-Asserted-Identity", "<sip:bob@ims.test>")
        refused = await pcscf.send(other)
        assert refused.status == 403 and "not registered through this P-CSCF" in refused.reason
        # its own user is reachable (alice's contact is behind it: the request comes back on the Path)
        own = pcscf.request("MESSAGE", "sip:alice@ims.test", body=b"x", content_type="text/plain")
        assert (await pcscf.send(own)).status == 200
        to_alice = [r for r in pcscf.received if r.method == "MESSAGE"]
        assert to_alice and to_alice[-1].headers.get_all("p-asserted-identity") == ["<sip:alice@ims.test>"]
        assert to_alice[-1].headers.get_all("route") == [f"<{pcscf.path}>"]
        async with Ue(core, "alice") as elsewhere:  # the same request from another address
            elsewhere.service_route = pcscf.service_route
            request = elsewhere.request("MESSAGE", "sip:bob@ims.test", body=b"x", content_type="text/plain")
            assert (await elsewhere.send(request)).status == 403
    finally:
        await pcscf.__aexit__()
        await bob.__aexit__()


async def test_after_de_registration_the_phones_flow_is_forgotten(core: LabCore) -> None:
    alice, bob = await registered(core, "alice"), await registered(core, "bob")
    try:
        assert core.scscf.registrar.flows.registrations(_flow(alice)) != []
        assert (await alice.register(0)).status == 200
        assert core.scscf.registrar.flows.registrations(_flow(alice)) == []
        # now an outsider to the core: terminating, nothing asserted
        assert (await alice.send(message(alice, "sip:bob@ims.test"), alice.icscf())).status == 200
        assert got(bob).headers.get("p-asserted-identity") is None
    finally:
        await alice.__aexit__()
        await bob.__aexit__()


def _flow(ue: Ue) -> Flow:
    return Flow("UDP", "127.0.0.1", ue.port)


# ---------------------------------------------------------------------------- raw bytes
class RawUdp:
    """A UDP socket that sends bytes as written and reads what comes back."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    async def exchange(self, data: bytes, to: tuple[str, int], timeout: float = 10.0) -> Response:
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(self.sock, data, to)
        while True:
            raw = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), timeout)
            message = parse(raw)
            assert isinstance(message, Response)
            if message.status >= 200:
                return message

    def close(self) -> None:
        self.sock.close()


def raw_message(
    vias: list[str], sender: str, callee: str, route: str | None = None, pai: str | None = None
) -> bytes:
    lines = [f"MESSAGE {callee} SIP/2.0", *[f"Via: {v}" for v in vias]]
    if route is not None:
        lines.append(f"Route: {route}")
    lines += [
        "Max-Forwards: 70",
        f"From: <{sender}>;tag=raw1",
        f"To: <{callee}>",
        f"Call-ID: raw-{len(vias)}-{route is not None}@127.0.0.1",
        "CSeq: 1 MESSAGE",
    ]
    if pai is not None:
        lines.append(f"P-Asserted-Identity: <{pai}>")
    lines += ["Content-Type: text/plain", "Content-Length: 2", "", "hi"]
    return "\r\n".join(lines).encode()


async def test_a_via_claiming_the_phones_address_does_not_make_one_the_phone(core: LabCore) -> None:
    """On loopback every sender is 127.0.0.1: the I-CSCF stamps the real port on the Via
    (received, rport) whatever the sender claims, and the S-CSCF believes a second Via only
    from its own I-CSCF's port."""
    alice, bob = await registered(core, "alice"), await registered(core, "bob")
    raw = RawUdp()
    try:
        icscf, scscf = core.icscf_address, core.scscf_address
        # to the I-CSCF, Via sent-by = alice's address without rport, and alice's identity claimed
        claimed = f"SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-raw-1"
        response = await raw.exchange(
            raw_message([claimed], alice.impu, "sip:bob@ims.test", pai=alice.impu), icscf
        )
        assert response.status == 200  # it came back here, to the real port (rport)
        assert f"rport={raw.port}" in (response.headers.get("via") or "")
        assert got(bob).headers.get("p-asserted-identity") is None  # not asserted, not believed
        # to the S-CSCF's Service-Route, posing as its I-CSCF (Via sent-by) with alice's Via below
        # as that I-CSCF would have stamped it (rport: the answer still comes here)
        vias = [
            f"SIP/2.0/UDP 127.0.0.1:{icscf[1]};branch=z9hG4bK-raw-2;rport",
            f"SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-raw-3;received=127.0.0.1;rport={alice.port}",
        ]
        route = f"<{core.scscf.service_route}>"
        data = raw_message(vias, alice.impu, "sip:bob@ims.test", route=route, pai=alice.impu)
        response = await raw.exchange(data, scscf)
        assert (response.status, response.reason) == (403, "Forbidden (not from a P-CSCF or a registered UE)")
        assert len([r for r in bob.received if r.method == "MESSAGE"]) == 1  # only the first one
    finally:
        raw.close()
        await alice.__aexit__()
        await bob.__aexit__()


async def test_over_tcp_the_phone_is_known_by_the_connection_it_registered_on(tmp_path: Path) -> None:
    """A TCP flow is a connection (RFC 5626 §3): the phone's requests on the connection of its
    REGISTER are its own, through the I-CSCF (which reaches the S-CSCF over TCP here); a new
    connection straight to the Service-Route is nobody's."""
    async with running_core(tmp_path, transports=("tcp",)) as core:
        alice = await registered(core, "alice", transport="TCP")
        bob = await registered(core, "bob", transport="TCP")
        try:
            forged = [("P-Asserted-Identity", "<sip:bob@ims.test>")]
            request = message(alice, "sip:bob@ims.test", headers=forged)
            assert (await alice.send(request, alice.icscf())).status == 200
            assert got(bob).headers.get_all("p-asserted-identity") == ["<sip:alice@ims.test>"]
            spoof = message(alice, "sip:bob@ims.test", from_="<sip:dave@ims.test>")
            assert (await alice.send(spoof, alice.icscf())).status == 403
            direct = message(
                alice, "sip:bob@ims.test", route=True, headers=[("P-Asserted-Identity", f"<{alice.impu}>")]
            )
            response = await alice.send(direct)  # a new TCP connection to the S-CSCF
            assert (response.status, response.reason) == (
                403,
                "Forbidden (not from a P-CSCF or a registered UE)",
            )
        finally:
            await alice.__aexit__()
            await bob.__aexit__()


async def test_a_configured_trusted_node_may_assert_any_registered_user(core: LabCore) -> None:
    """``[labcore] trusted_nodes`` (here 127.0.0.2) is the configured trust domain: its
    P-Asserted-Identity is believed for any registered user, one it registered or not."""
    bob = await registered(core, "bob")
    try:
        async with Ue(core, "alice", host=TRUSTED) as node:
            node.service_route = bob.service_route
            request = node.request("MESSAGE", "sip:bob@ims.test", body=b"x", content_type="text/plain")
            request.headers.set("P-Asserted-Identity", "<sip:bob@ims.test>")
            assert (await node.send(request)).status == 200
            assert got(bob).headers.get_all("p-asserted-identity") == ["<sip:bob@ims.test>"]
    finally:
        await bob.__aexit__()
