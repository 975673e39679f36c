"""Interop, seed 004 topology: the gateway behind Kamailio 5.6's P-CSCF, acting toward it as a UE.

``topology = "behind-p-cscf"``: the gateway registers each WIC toward Kamailio's
P-CSCF (ims_registrar_pcscf / ims_usrloc_pcscf, :mod:`webims.testing.kamailio`
``with_pcscf=True``) as a UE would: no Path, no P-Visited-Network-ID, no
P-Asserted-Identity of its own, its flow token in the Contact. The P-CSCF adds its
Path, ``Supported: path`` and P-Visited-Network-ID and goes on to Kamailio's I-CSCF
and S-CSCF, which use the webims HSS. Scripted WICs over real WSS; what Kamailio
really did is read back from it (``ulscscf.showimpu`` and the REGISTER/SUBSCRIBE lines
of the S-CSCF's log, ``ulpcscf.status`` and the P-CSCF's log of the identity it
asserted and the requests it took down a Path) and from the HSS. A missing Kamailio
fails the tests (no skip).

Kamailio's P-CSCF, like TS 24.229 §5.2.6.3.1 without IPsec, tells UEs apart by their
source address and port: the gateway gives each WIC registration its own Mw flow
(:mod:`webims.gateway.ueflow`), so WICs of one gateway are told apart as well as WICs
of two gateways.

These cases run in a network namespace of their own, where Kamailio's P-CSCF may do
what ims_ipsec_pcscf does to IPsec state: tests/gateway/test_gateway_kamailio_pcscf.py
runs this module with pytest under ``unshare --net`` (``KamailioIms`` refuses a P-CSCF
in the machine's own namespace).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GATEWAY_HOST, ORIGIN, PASSWORDS, POOL_PASSWORD, gateway_on, make_auth, token_for, usim
from session_wic import SessionWic, chrome_answer, closing
from test_gateway_kamailio import hss_state, kamailio_ims
from test_gateway_modes import eventually
from wicclient import Wic, bearer, password_header

from webims.auth.service import AuthService
from webims.gateway.run import GatewayServer
from webims.gateway.session_settings import SessionConfig
from webims.gateway.sessions import SessionManager
from webims.gateway.state import Binding, SqliteRegistrationStore
from webims.labcore.hss import RegState
from webims.store import Store
from webims.testing.kamailio import KamailioError, KamailioIms


@pytest.fixture(scope="module")
def ims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioIms]:
    with kamailio_ims(tmp_path_factory, with_pcscf=True) as kamailio:
        yield kamailio


@contextlib.asynccontextmanager
async def behind_pcscf(
    ims: KamailioIms, tmp: Path, certs: tuple[Path, Path], **overrides: Any
) -> AsyncIterator[GatewayServer]:
    """A gateway in the ``behind-p-cscf`` topology with Kamailio's P-CSCF as its next hop."""
    tmp.mkdir(parents=True, exist_ok=True)
    auth: AuthService = make_auth(tmp)
    try:
        async with gateway_on(
            ims.icscf_uri, auth, certs, topology="behind-p-cscf", pcscf=ims.pcscf_uri, ims_timeout=8.0,
            **overrides,
        ) as server:  # fmt: skip
            server.gateway.auth = auth
            yield server
    finally:
        auth.store.close()


@pytest.fixture
async def gateway(ims: KamailioIms, tmp_path: Path, certs: tuple[Path, Path]) -> AsyncIterator[GatewayServer]:
    async with behind_pcscf(ims, tmp_path / "a", certs) as server:
        yield server


@pytest.fixture
async def gateway2(
    ims: KamailioIms, tmp_path: Path, certs: tuple[Path, Path]
) -> AsyncIterator[GatewayServer]:
    """A second gateway (its own Mw port) behind the same P-CSCF."""
    async with behind_pcscf(ims, tmp_path / "b", certs) as server:
        yield server


async def scscf_record(ims: KamailioIms, impu: str) -> str:
    """The S-CSCF's usrloc record of ``impu``; "" when it has none."""
    try:
        return await asyncio.to_thread(ims.registered_contacts, impu)
    except KamailioError:
        return ""


def register_auth_done(pcscf: tuple[str, int], source: str, impu: str, impi: str) -> int | None:
    """One REGISTER claiming ``integrity-protected="auth-done"`` over UDP from ``source``: the status."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        port = sock.getsockname()[1]
        request = (
            "REGISTER sip:ims.test SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {source}:{port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{impu}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <{impu}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}\r\n"
            "CSeq: 1 REGISTER\r\n"
            f"Contact: <sip:ue@{source}:{port}>\r\n"
            "Expires: 600\r\n"
            f'Authorization: Digest username="{impi}", realm="ims.test", nonce="", uri="sip:ims.test", '
            'response="", integrity-protected="auth-done"\r\n'
            "Content-Length: 0\r\n\r\n"
        )
        sock.settimeout(5)
        sock.sendto(request.encode(), pcscf)
        while True:
            match = re.match(rb"SIP/2\.0 (\d{3}) ", sock.recv(65535))
            if match and int(match.group(1)) >= 200:
                return int(match.group(1))


def pcscf_log(ims: KamailioIms) -> str:
    assert ims.pcscf is not None
    return ims.pcscf.log_text()


def asserted_by_pcscf(ims: KamailioIms, method: str) -> list[str]:
    """The identities the P-CSCF asserted for originating ``method`` requests (its log, pcscf.cfg)."""
    return re.findall(rf"originating {method} from \S+ .* asserted=(\S+)", pcscf_log(ims))


async def removed_at_scscf(ims: KamailioIms, impu: str, contact: str, timeout: float = 8.0) -> None:
    """Wait until the S-CSCF's usrloc no longer lists ``contact`` for ``impu`` (a de-registered
    contact is deleted by its usrloc timer: every second in the harness)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    record = await scscf_record(ims, impu)
    while contact in record:
        assert loop.time() < end, f"{contact} still registered at the S-CSCF: {record}"
        await asyncio.sleep(0.2)
        record = await scscf_record(ims, impu)


async def pcscf_records(ims: KamailioIms) -> int:
    return await asyncio.to_thread(ims.pcscf_records)


def binding(gateway: GatewayServer, impu: str) -> Binding:
    (found,) = [b for b in gateway.gateway.bindings if b.impu == impu]
    return found


def ims_contact(gateway: GatewayServer, impu: str) -> str:
    """The Contact the gateway registered for ``impu`` at the IMS (its flow token at our Mw address)."""
    contact = binding(gateway, impu).ims_contact
    return contact[1 : contact.index(">")] if contact.startswith("<") else contact


def registers_at_scscf(ims: KamailioIms, contact: str) -> list[str]:
    """The Path of each REGISTER of ``contact`` that reached the S-CSCF (its log, scscf.cfg)."""
    found = re.findall(r"REGISTER \S+ contact=(\S+) path=(\S*)", ims.scscf.log_text())
    return [path for ct, path in found if contact in ct]


def assert_registered_through_pcscf(ims: KamailioIms, record: str, contact: str) -> None:
    """The S-CSCF holds ``contact``, registered along the P-CSCF's Path only (a UE adds none)."""
    assert contact in record, record
    paths = registers_at_scscf(ims, contact)
    assert paths and all(p == ims.pcscf_path for p in paths), paths


async def test_ims_digest_relay_through_the_pcscf(ims: KamailioIms, gateway: GatewayServer) -> None:
    wic = Wic(gateway.url, origin=ORIGIN, user="bob")
    await wic.connect()
    try:
        first, ok = await wic.register_digest(PASSWORDS["bob"])
        assert first.status == 401 and ok.status == 200, ok
        # the S-CSCF's 200 came back through the P-CSCF: its P-Associated-URI reaches the WIC,
        # its Service-Route stays with the gateway, which routes the WIC's requests on it
        assert ok.headers.get_all("P-Associated-URI") == ["<sip:bob@ims.test>"]
        assert binding(gateway, "sip:bob@ims.test").service_route == [ims.service_route]
        contact = ims_contact(gateway, "sip:bob@ims.test")
        assert contact.startswith("sip:") and "@127.0.0.2:" in contact
        assert_registered_through_pcscf(ims, await scscf_record(ims, "sip:bob@ims.test"), contact)
        assert await pcscf_records(ims) == 1  # the P-CSCF saved the contact on the 200 (pcscf_save)
        assert hss_state("sip:bob@ims.test") is RegState.REGISTERED
        # the WIC removes its contact: gone at the S-CSCF and at the HSS
        _, gone = await wic.register_digest(PASSWORDS["bob"], expires=0)
        assert gone.status == 200, gone
        await eventually(lambda: hss_state("sip:bob@ims.test") is RegState.NOT_REGISTERED)
        await removed_at_scscf(ims, "sip:bob@ims.test", contact)
        assert await pcscf_records(ims) == 0  # the P-CSCF dropped it on the 200 too
    finally:
        await wic.close()


async def test_ims_digest_on_behalf_through_the_pcscf(ims: KamailioIms, gateway: GatewayServer) -> None:
    """Seed 004 §6.X.2.2.2: the gateway answers the S-CSCF's digest challenge (relayed by the P-CSCF)."""
    wic = Wic(gateway.url, origin=ORIGIN, user="frank")
    await wic.connect()
    try:
        ok = await wic.register(headers=[password_header("frank@ims.test", PASSWORDS["frank"])])
        assert ok.status == 200, ok
        assert ok.headers.get_all("P-Associated-URI") == ["<sip:frank@ims.test>"]
        contact = ims_contact(gateway, "sip:frank@ims.test")
        assert_registered_through_pcscf(ims, await scscf_record(ims, "sip:frank@ims.test"), contact)
        assert len(registers_at_scscf(ims, contact)) == 2  # the challenged REGISTER and the answer
        assert hss_state("sip:frank@ims.test") is RegState.REGISTERED
        # the WIC leaves: after the grace period the gateway de-registers its contact
        await wic.close()
        await eventually(lambda: not gateway.gateway.bindings.by_id, timeout=8)
        await eventually(lambda: hss_state("sip:frank@ims.test") is RegState.NOT_REGISTERED)
        await removed_at_scscf(ims, "sip:frank@ims.test", contact)
    finally:
        await wic.close()


async def test_ims_aka_relay_through_the_pcscf(ims: KamailioIms, gateway: GatewayServer) -> None:
    """Without IPsec the P-CSCF relays the AKA challenge (ck/ik removed, TS 24.229 §5.2.2.1)."""
    wic = Wic(gateway.url, origin=ORIGIN, user="carol")
    await wic.connect()
    try:
        first, ok = await wic.register_aka(usim())
        challenge = first.headers.get("WWW-Authenticate") or ""
        assert first.status == 401 and "AKAv1-MD5" in challenge and "ck=" not in challenge, first
        assert "401 for sip:carol@ims.test: ck/ik removed" in pcscf_log(ims)  # the S-CSCF sent them
        assert ok.status == 200, ok
        contact = ims_contact(gateway, "sip:carol@ims.test")
        assert_registered_through_pcscf(ims, await scscf_record(ims, "sip:carol@ims.test"), contact)
        _, gone = await wic.register_aka(usim(), expires=0)
        assert gone.status == 200, gone
        await removed_at_scscf(ims, "sip:carol@ims.test", contact)
    finally:
        await wic.close()


async def exchange_messages(sender_gw: GatewayServer, receiver_gw: GatewayServer, ims: KamailioIms) -> None:
    """frank (on-behalf digest, via ``sender_gw``) and bob (digest relay, via ``receiver_gw``)
    message each other: WIC -> gateway -> P-CSCF -> S-CSCF -> I-CSCF -> S-CSCF -> P-CSCF ->
    gateway -> WIC. The gateways, UEs here, only prefer an identity (P-Preferred-Identity);
    the P-Asserted-Identity each callee sees is the one Kamailio's P-CSCF asserted."""
    bob = Wic(receiver_gw.url, origin=ORIGIN, user="bob")
    frank = Wic(sender_gw.url, origin=ORIGIN, user="frank")
    await bob.connect()
    await frank.connect()
    try:
        _, ok = await bob.register_digest(PASSWORDS["bob"])
        assert ok.status == 200, ok
        ok = await frank.register(headers=[password_header("frank@ims.test", PASSWORDS["frank"])])
        assert ok.status == 200, ok
        sent = await frank.request("MESSAGE", "sip:bob@ims.test", [("Content-Type", "text/plain")], b"hi bob")
        assert sent.status == 200, sent
        got = await bob.wait_request("MESSAGE")
        assert got.body == b"hi bob"
        assert "P-Preferred-Identity" not in got.headers  # the P-CSCF turned it into its assertion
        assert str(got.uri) == f"sip:{bob.contact_user}@{bob.host};transport=ws"
        # the terminating leg came down bob's Path through the P-CSCF to the contact his gateway registered
        assert f"terminating MESSAGE to {ims_contact(receiver_gw, 'sip:bob@ims.test')}" in pcscf_log(ims)
        assert got.headers.get_all("P-Asserted-Identity") == ["<sip:frank@ims.test>"]
        assert asserted_by_pcscf(ims, "MESSAGE")[-1] == "sip:frank@ims.test"
        back = await bob.request("MESSAGE", "sip:frank@ims.test", [("Content-Type", "text/plain")], b"hi")
        assert back.status == 200, back
        got = await frank.wait_request("MESSAGE")
        assert got.headers.get_all("P-Asserted-Identity") == ["<sip:bob@ims.test>"]
    finally:
        await bob.close()
        await frank.close()


async def test_message_between_wics_of_two_gateways(
    ims: KamailioIms, gateway: GatewayServer, gateway2: GatewayServer
) -> None:
    await exchange_messages(gateway, gateway2, ims)


async def test_message_between_wics_of_one_gateway(ims: KamailioIms, gateway: GatewayServer) -> None:
    await exchange_messages(gateway, gateway, ims)


@contextlib.asynccontextmanager
async def sessions(gateway: GatewayServer) -> AsyncIterator[SessionManager]:
    """The gateway's session B2BUA, media interworking left to the IMS (no media here)."""
    manager = SessionManager(gateway.gateway, SessionConfig(media="ims"), iwf=None)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.close()


async def test_call_between_wics_through_the_pcscf(
    ims: KamailioIms, gateway: GatewayServer, gateway2: GatewayServer
) -> None:
    """INVITE / 180 / 200 / ACK / BYE, signalling only, WIC -> gateway -> P-CSCF -> S-CSCF ->
    I-CSCF -> S-CSCF -> P-CSCF -> gateway -> WIC; ACK and BYE follow the route set the
    P-CSCF and S-CSCF recorded."""
    async with sessions(gateway) as calling, sessions(gateway2) as called:
        frank = SessionWic(gateway.url, origin=ORIGIN, user="frank")
        bob = SessionWic(gateway2.url, origin=ORIGIN, user="bob")
        try:
            await frank.connect()
            await bob.connect()
            ok = await frank.register(headers=[password_header("frank@ims.test", PASSWORDS["frank"])])
            assert ok.status == 200, ok
            _, ok = await bob.register_digest(PASSWORDS["bob"])
            assert ok.status == 200, ok
            sent = await frank.invite("sip:bob@ims.test")
            incoming = await bob.next_request("INVITE")
            assert incoming.headers.get_all("P-Asserted-Identity") == ["<sip:frank@ims.test>"]
            assert "P-Preferred-Identity" not in incoming.headers
            assert asserted_by_pcscf(ims, "INVITE")[-1] == "sip:frank@ims.test"
            assert f"terminating INVITE to {ims_contact(gateway2, 'sip:bob@ims.test')}" in pcscf_log(ims)
            await bob.answer(incoming, 180)
            await bob.answer(incoming, 200, body=chrome_answer())
            answered = await frank.final(sent)
            assert answered.status == 200, answered
            assert [r.status for r in sent.provisional if r.status > 100] == [180]
            dialog = frank.dialog_from(sent, answered)
            await frank.ack(dialog)
            await eventually(lambda: bob.got("ACK"))  # the ACK followed the recorded route set too
            bye = await frank.in_dialog(dialog, "BYE")
            assert (await frank.final(bye)).status == 200
            got = await bob.next_request("BYE")
            assert got.call_id == incoming.call_id
            await eventually(lambda: not calling.calls and not called.calls)
        finally:
            await closing(frank, bob)


async def test_web_token_tna_through_the_pcscf(ims: KamailioIms, gateway: GatewayServer) -> None:
    """Seed 004 §6.X.2.2.3 / §6.1.3: the P-CSCF trusts the gateway's address for Trusted Node
    Authentication (``integrity-protected="auth-done"``) and vouches for it to the I-CSCF."""
    auth = gateway.gateway.auth
    assert auth is not None
    wic = Wic(gateway.url, origin=ORIGIN, user="dave")
    await wic.connect()
    try:
        ok = await wic.register(headers=[bearer(token_for(auth, "dave"))])
        assert ok.status == 200, ok
        contact = ims_contact(gateway, "sip:dave@ims.test")
        assert_registered_through_pcscf(ims, await scscf_record(ims, "sip:dave@ims.test"), contact)
        assert len(registers_at_scscf(ims, contact)) == 1  # no challenge: TNA
        assert "REGISTER sip:dave@ims.test: trusted node authentication" in ims.scscf.log_text()
        await wic.close()  # the WIC leaves: after the grace period the gateway de-registers its contact
        await eventually(lambda: not gateway.gateway.bindings.by_id, timeout=8)
        await removed_at_scscf(ims, "sip:dave@ims.test", contact)
    finally:
        await wic.close()


async def test_auth_done_from_an_untrusted_ue_is_refused_by_the_pcscf(ims: KamailioIms) -> None:
    """The P-CSCF's side of TNA: an auth-done REGISTER from an address it does not trust gets 403."""
    status = await asyncio.to_thread(
        register_auth_done, ims.pcscf_address, "127.0.0.3", "sip:erin@ims.test", "erin@ims.test"
    )
    assert status == 403


async def test_pool_registered_through_the_pcscf(
    ims: KamailioIms, tmp_path: Path, certs: tuple[Path, Path]
) -> None:
    """Seed 004 §6.X.2.2.4: the gateway registers its pool IMPUs (digest) through the P-CSCF."""
    async with behind_pcscf(
        ims, tmp_path / "pool", certs, pools=("web",), pool_passwords=(f"web={POOL_PASSWORD}",)
    ) as server:
        regs = server.gateway.pools.regs
        assert len(regs) == 3 and all(r.active for r in regs.values())
        for impu in regs:
            record = await scscf_record(ims, impu)
            (contact,) = re.findall(r"(sip:p[^@\s]*@127\.0\.0\.2:\d+)", record)
            assert_registered_through_pcscf(ims, record, contact)
        auth = server.gateway.auth
        assert auth is not None
        wic = Wic(server.url, origin=ORIGIN, user="pat", domain="web.example")
        await wic.connect()
        try:
            ok = await wic.register(headers=[bearer(token_for(auth, "pat"))])
            assert ok.status == 200, ok
            assert ok.headers.get("P-Associated-URI", "").strip("<>") in regs
        finally:
            await wic.close()


async def test_pcscf_subscribes_to_the_reg_event(ims: KamailioIms, gateway: GatewayServer) -> None:
    """TS 24.229 §5.2.3: after the registration the P-CSCF (not the gateway, a UE here)
    SUBSCRIBEs to the user's reg event at the S-CSCF and takes its NOTIFYs (RFC 3680)."""
    wic = Wic(gateway.url, origin=ORIGIN, user="gina")
    await wic.connect()
    try:
        _, ok = await wic.register_digest(PASSWORDS["gina"])
        assert ok.status == 200, ok
        pcscf_host = f"{ims.host}:{ims.pcscf_port}"

        def subscribed() -> list[str]:
            found = re.findall(r"reg event SUBSCRIBE to (\S+) from \S+ contact=(\S+)", ims.scscf.log_text())
            return [ruri for ruri, contact in found if "gina@ims.test" in ruri and pcscf_host in contact]

        await eventually(subscribed, timeout=8)
        await eventually(lambda: "reg event NOTIFY for sip:gina@ims.test processed" in pcscf_log(ims))
        assert not gateway.gateway.regevents.by_impu  # the gateway, a UE here, leaves that to the P-CSCF
    finally:
        await wic.close()


def open_sockets() -> set[str]:
    """The sockets this process (the gateway runs in it) has open: ``socket:[inode]``."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            out.add(os.readlink(f"/proc/self/fd/{fd}"))
    return {x for x in out if x.startswith("socket:")}


def udp_port(contact: str) -> int:
    return int(re.search(r"@[^:;>]+:(\d+)", contact).group(1))  # type: ignore[union-attr]


async def test_wics_of_one_gateway_are_registered_from_their_own_ports(
    ims: KamailioIms, gateway: GatewayServer
) -> None:
    """TS 24.229 §5.2.6.3.1 / TS 33.203 §7.1: the P-CSCF binds a registration to the UE's address
    and port. Two WICs of one gateway: two contacts on two ports at the S-CSCF, each REGISTER sent
    from the port its Contact names, neither the main Mw port."""
    bob = Wic(gateway.url, origin=ORIGIN, user="bob")
    frank = Wic(gateway.url, origin=ORIGIN, user="frank")
    await bob.connect()
    await frank.connect()
    try:
        _, ok = await bob.register_digest(PASSWORDS["bob"])
        assert ok.status == 200, ok
        ok = await frank.register(headers=[password_header("frank@ims.test", PASSWORDS["frank"])])
        assert ok.status == 200, ok
        contacts = {u: ims_contact(gateway, u) for u in ("sip:bob@ims.test", "sip:frank@ims.test")}
        ports = {udp_port(c) for c in contacts.values()}
        assert len(ports) == 2 and gateway.gateway.ims.port not in ports, contacts
        for impu, contact in contacts.items():
            assert_registered_through_pcscf(ims, await scscf_record(ims, impu), contact)
    finally:
        await bob.close()
        await frank.close()


async def test_call_between_wics_of_one_gateway(ims: KamailioIms, gateway: GatewayServer) -> None:
    """A call between two WICs of one gateway: the P-CSCF asserts the caller's identity (its own
    flow), not the callee's; the answer and the BYE reach the right WICs."""
    async with sessions(gateway) as manager:
        frank = SessionWic(gateway.url, origin=ORIGIN, user="frank")
        bob = SessionWic(gateway.url, origin=ORIGIN, user="bob")
        try:
            await frank.connect()
            await bob.connect()
            _, ok = await bob.register_digest(PASSWORDS["bob"])  # bob first: the old bug asserted him
            assert ok.status == 200, ok
            ok = await frank.register(headers=[password_header("frank@ims.test", PASSWORDS["frank"])])
            assert ok.status == 200, ok
            sent = await frank.invite("sip:bob@ims.test")
            incoming = await bob.next_request("INVITE")
            assert incoming.headers.get_all("P-Asserted-Identity") == ["<sip:frank@ims.test>"]
            assert asserted_by_pcscf(ims, "INVITE")[-1] == "sip:frank@ims.test"
            assert f"terminating INVITE to {ims_contact(gateway, 'sip:bob@ims.test')}" in pcscf_log(ims)
            await bob.answer(incoming, 200, body=chrome_answer())
            answered = await frank.final(sent)
            assert answered.status == 200, answered
            dialog = frank.dialog_from(sent, answered)
            await frank.ack(dialog)
            await eventually(lambda: bob.got("ACK"))
            bye = await frank.in_dialog(dialog, "BYE")
            assert (await frank.final(bye)).status == 200
            got = await bob.next_request("BYE")
            assert got.call_id == incoming.call_id
            await eventually(lambda: not manager.calls)
        finally:
            await closing(frank, bob)


async def test_ue_flow_is_closed_after_de_registration(ims: KamailioIms, gateway: GatewayServer) -> None:
    """The WIC's own socket lives as long as its registration: closed (its descriptor too) once
    the de-registration is done; the main Mw listener stays."""
    layer = gateway.gateway.ims.endpoint.transport
    wic = Wic(gateway.url, origin=ORIGIN, user="bob")
    await wic.connect()
    try:
        _, ok = await wic.register_digest(PASSWORDS["bob"])
        assert ok.status == 200, ok
        assert layer.private_udp == 1 and len(gateway.gateway.ims.ue_flows) == 1
        (flow,) = gateway.gateway.ims.ue_flows.values()
        assert flow.listener is not None
        ue_socket = os.readlink(f"/proc/self/fd/{flow.listener.fileno}")
        assert ue_socket in open_sockets()
        port = udp_port(ims_contact(gateway, "sip:bob@ims.test"))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, pytest.raises(OSError):
            probe.bind(("127.0.0.2", port))  # the port is taken
        _, gone = await wic.register_digest(PASSWORDS["bob"], expires=0)
        assert gone.status == 200, gone
        await eventually(lambda: layer.private_udp == 0 and not gateway.gateway.ims.ue_flows)
        await eventually(lambda: ue_socket not in open_sockets())  # the descriptor too: no leak
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.2", port))  # free again
    finally:
        await wic.close()


@contextlib.asynccontextmanager
async def dave_and_erin_over_tcp(
    ims: KamailioIms, tmp: Path, certs: tuple[Path, Path]
) -> AsyncIterator[tuple[GatewayServer, Wic, Wic]]:
    """A gateway behind the P-CSCF over TCP (``mw_transport = tcp``, quick flow recovery) with
    dave and erin registered (web-token, TNA)."""
    async with behind_pcscf(ims, tmp, certs, mw_transport="tcp", flow_retry_base=0.2) as gateway:
        auth = gateway.gateway.auth
        assert auth is not None
        dave = Wic(gateway.url, origin=ORIGIN, user="dave")
        erin = Wic(gateway.url, origin=ORIGIN, user="erin")
        try:
            for wic in (dave, erin):
                await wic.connect()
                assert (await wic.register(headers=[bearer(token_for(auth, wic.user))])).status == 200
            yield gateway, dave, erin
        finally:
            await dave.close()
            await erin.close()


async def erin_reaches_dave(ims: KamailioIms, erin: Wic, dave: Wic, contact: str, body: bytes) -> None:
    """erin's MESSAGE reaches dave's WIC down the P-CSCF's Path to his ``contact``, with her
    identity as the P-CSCF asserted it, and her 200 comes back."""
    sent = await erin.request("MESSAGE", "sip:dave@ims.test", [("Content-Type", "text/plain")], body)
    assert sent.status == 200, sent
    got = await dave.wait_request("MESSAGE")
    assert got.body == body
    assert got.headers.get_all("P-Asserted-Identity") == ["<sip:erin@ims.test>"]
    assert f"terminating MESSAGE to {contact}" in pcscf_log(ims)


async def reset_at_pcscf(ims: KamailioIms, port: int) -> None:
    """Reset the P-CSCF's end of the TCP connection from our ``port`` (``ss -K``: as a restart
    or a middlebox would)."""
    killed = await asyncio.create_subprocess_exec(
        "ss", "-K", "-t", "sport", "=", f":{ims.pcscf_port}", "dport", "=", f":{port}",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await killed.wait() == 0


async def test_tcp_flow_reset_by_the_pcscf_is_recovered(
    ims: KamailioIms, tmp_path: Path, certs: tuple[Path, Path]
) -> None:
    """``mw_transport = tcp``: each UE flow is its own connection to the P-CSCF. The P-CSCF's
    end of dave's connection is reset (``ss -K``, as a restart or a middlebox would): the
    gateway reconnects from the same port (RFC 5626 §4.4.1; the P-CSCF knows the UE by it) and
    registers dave again through the P-CSCF (TNA), and a MESSAGE from erin then reaches dave
    down the P-CSCF's Path over the new connection."""
    async with dave_and_erin_over_tcp(ims, tmp_path / "t", certs) as (gateway, dave, erin):
        contact = ims_contact(gateway, "sip:dave@ims.test")
        assert contact.endswith(";transport=tcp")
        assert len(registers_at_scscf(ims, contact)) == 1
        flow = binding(gateway, "sip:dave@ims.test").ims_flow
        assert flow is not None and flow.stream is not None
        old, port = flow.stream, flow.port
        await reset_at_pcscf(ims, port)
        await eventually(lambda: old.closed and flow.stream is not old, timeout=10)
        assert flow.port == port and ims_contact(gateway, "sip:dave@ims.test") == contact
        await eventually(lambda: len(registers_at_scscf(ims, contact)) == 2, timeout=10)
        assert_registered_through_pcscf(ims, await scscf_record(ims, "sip:dave@ims.test"), contact)
        await erin_reaches_dave(ims, erin, dave, contact, b"back")


async def nft(*args: str) -> None:
    """Run ``nft`` (nftables) in this test's network namespace."""
    done = await asyncio.create_subprocess_exec("nft", *args, stderr=asyncio.subprocess.PIPE)
    _, err = await done.communicate()
    assert done.returncode == 0, f"nft {' '.join(args)}: {err.decode()}"


async def test_the_pcscf_connects_to_a_tcp_contact_while_the_flow_is_down(
    ims: KamailioIms, tmp_path: Path, certs: tuple[Path, Path]
) -> None:
    """A UE listens on the port of its TCP Contact (RFC 3261 §18.2.1): when the P-CSCF has no
    connection of the UE's to send a terminating request over, it opens one to the Contact.
    Here dave's connection is reset at the P-CSCF (``ss -K``) and the gateway's reconnection
    from his port is held back (an nftables rule of this test's namespace drops its SYNs), so
    Kamailio's P-CSCF has no connection of dave's when erin's MESSAGE comes down its Path: it
    connects to dave's Contact, the flow admits it (it comes from the P-CSCF) and dave's WIC
    gets the MESSAGE and answers over it. Once the rule is gone, the flow's own connection comes
    back from the same port."""
    async with dave_and_erin_over_tcp(ims, tmp_path / "c", certs) as (gateway, dave, erin):
        contact = ims_contact(gateway, "sip:dave@ims.test")
        flow = binding(gateway, "sip:dave@ims.test").ims_flow
        assert flow is not None and flow.stream is not None and not flow.accepted
        old, port = flow.stream, flow.port
        await nft("add", "table", "inet", "webims_test")
        try:
            await nft(
                "add", "chain", "inet", "webims_test", "out", "{ type filter hook output priority 0 ; }"
            )
            await nft(  # only the gateway's connection attempts from dave's port: not the SYN-ACK
                "add", "rule", "inet", "webims_test", "out",
                "tcp", "sport", str(port), "tcp", "flags", "&", "(syn|ack)", "==", "syn", "drop",
            )  # fmt: skip
            await reset_at_pcscf(ims, port)
            await eventually(lambda: old.closed, timeout=5)
            assert flow.stream is old or flow.stream is None or flow.stream.closed  # not back yet
            await erin_reaches_dave(ims, erin, dave, contact, b"over yours")
            (accepted,) = flow.accepted  # the P-CSCF's own connection to dave's Contact
            assert accepted.local[1] == port and accepted.remote[0] == ims.host
        finally:
            await nft("delete", "table", "inet", "webims_test")
        # the SYN the kernel sends again gets through: the flow's own connection, same port
        await eventually(
            lambda: flow.stream is not None and flow.stream is not old and not flow.stream.closed, timeout=12
        )
        assert flow.port == port and ims_contact(gateway, "sip:dave@ims.test") == contact


async def test_a_contact_moved_after_a_restart_replaces_the_old_one(
    ims: KamailioIms, tmp_path: Path, certs: tuple[Path, Path]
) -> None:
    """After a restart dave's old Mw port is taken: his flow gets a new one and the gateway
    registers the new Contact with the old one removed in the same REGISTER (``expires=0``,
    RFC 3261 §10.2.2), through Kamailio's P-CSCF to its S-CSCF, which registers the new one and
    ends the old one (left alone, the old one would stay registered, and be forked to, for the
    rest of its hour)."""
    impu = "sip:dave@ims.test"
    where = tmp_path / "r"
    async with behind_pcscf(
        ims, where, certs, store=SqliteRegistrationStore(Store(where / "state.db")), restart_grace=30.0
    ) as gateway:
        auth = gateway.gateway.auth
        assert auth is not None
        dave = Wic(gateway.url, origin=ORIGIN, user="dave")
        await dave.connect()
        assert (await dave.register(headers=[bearer(token_for(auth, "dave"))])).status == 200
        await dave.close()  # the gateway stops before its grace period ends: the binding stays
        old = ims_contact(gateway, impu)
        await gateway.gateway.store.flush()
    assert old in await scscf_record(ims, impu)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind((GATEWAY_HOST, udp_port(old)))  # dave's old port is taken meanwhile
        async with behind_pcscf(  # its own auth store: a TNA refresh verifies no token
            ims, tmp_path / "r2", certs, store=SqliteRegistrationStore(Store(where / "state.db")),
            restart_grace=30.0,
        ) as gateway:  # fmt: skip
            new = ims_contact(gateway, impu)
            assert udp_port(new) != udp_port(old)
            for _ in range(50):  # the gateway registers it once its flows are back
                if new in await scscf_record(ims, impu):
                    break
                await asyncio.sleep(0.2)
            record = await scscf_record(ims, impu)
            assert new in record, record
            # the S-CSCF took the removal: the old Contact expires within seconds, not at the end
            # of its hour (Kamailio 5.6.3 gives it ~10 s, and still listed it with "expires: 1"
            # some seconds later while the record had another Contact)
            left = re.search(rf"{re.escape(old)}: {{\s*expires: (\d+)", record)
            assert left is None or int(left.group(1)) <= 10, record
            # one REGISTER, along the P-CSCF's Path: the old Contact with expires=0, then the new one
            (moved,) = re.findall(r"REGISTER \S+ contact=(.*) path=(\S*)\n", ims.scscf.log_text())[-1:]
            assert moved[1] == ims.pcscf_path and moved[0].index(f"<{old}>") < moved[0].index(f"<{new}>")
            assert re.search(rf"<{re.escape(old)}>[^,]*;expires=0,", moved[0]), moved
            await gateway.gateway.modes.deregister_at_ims(binding(gateway, impu))  # leave nothing behind
            await removed_at_scscf(ims, impu, new)
