"""Registration lifecycle: refreshes toward the IMS, expiry, restarts, topologies, pool identities."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import ORIGIN, PASSWORDS, POOL_PASSWORD, LabFactory, token_for
from test_gateway_modes import core_bindings, eventually
from wicclient import Wic, bearer, password_header

from webims.gateway.state import SqliteRegistrationStore
from webims.labcore import LabCore
from webims.store import Store
from webims.testing.ports import free_port


async def test_gateway_refreshes_the_ims_registration_it_made(make_lab: LabFactory) -> None:
    async with make_lab(ims_expires=12) as lab:
        wic = Wic(lab.url, origin=ORIGIN, user="dave")
        await wic.connect()
        try:
            assert (await wic.register(600, [bearer(token_for(lab.auth, "dave"))])).status == 200
            (binding,) = list(lab.gateway.bindings)
            first = binding.cseq
            first_expiry = binding.ims_expires_at
            await eventually(lambda: binding.cseq > first, timeout=12)  # at half time (TS 24.229 §5.1.1.4.1)
            await eventually(lambda: binding.ims_expires_at > first_expiry)
            assert core_bindings(lab, "sip:dave@ims.test")
        finally:
            await wic.close()


async def test_wic_binding_expiry_deregisters_at_the_ims(make_lab: LabFactory) -> None:
    async with make_lab(min_expires=1) as lab:
        wic = Wic(lab.url, origin=ORIGIN, user="frank")
        await wic.connect()
        try:
            ok = await wic.register(2, [password_header("frank@ims.test", PASSWORDS["frank"])])
            assert ok.status == 200 and ok.contact[0].expires == 2
            assert core_bindings(lab, "sip:frank@ims.test")
            await eventually(lambda: not lab.gateway.bindings.by_id, timeout=6)
            await eventually(lambda: core_bindings(lab, "sip:frank@ims.test") == [])
        finally:
            await wic.close()


async def test_keep_on_close_and_flow_failed(make_lab: LabFactory) -> None:
    async with make_lab(keep_on_close=("web-token",)) as lab:
        dave = Wic(lab.url, origin=ORIGIN, user="dave")
        erin = Wic(lab.url, origin=ORIGIN, user="erin")
        await dave.connect()
        await erin.connect()
        try:
            assert (await dave.register(headers=[bearer(token_for(lab.auth, "dave"))])).status == 200
            assert (await erin.register(headers=[bearer(token_for(lab.auth, "erin"))])).status == 200
            await dave.close()
            await asyncio.sleep(1.5)  # past the grace period: kept (keep_on_close)
            assert core_bindings(lab, "sip:dave@ims.test") and lab.gateway.bindings.of_impu(
                "sip:dave@ims.test"
            )
            response = await erin.request(
                "MESSAGE", "sip:dave@ims.test", [("Content-Type", "text/plain")], b"hi"
            )
            assert response.status == 430  # RFC 5626 §5.3: the flow is gone
        finally:
            await dave.close()
            await erin.close()


async def test_restart_keeps_registrations_and_the_wic_finds_its_own(
    make_lab: LabFactory, tmp_path: Path
) -> None:
    db = Store(tmp_path / "gateway-state.sqlite3")
    port = free_port("127.0.0.2")
    try:
        token = token_for_lab = None
        async with make_lab(
            store=SqliteRegistrationStore(db),
            mw_port=port,
            pools=("web",),
            pool_passwords=(f"web={POOL_PASSWORD}",),
        ) as lab:
            token_for_lab = lab
            token = token_for(lab.auth, "dave")
            wic = Wic(lab.url, origin=ORIGIN, user="dave")
            await wic.connect()
            assert (await wic.register(headers=[bearer(token)])).status == 200
            (binding,) = list(lab.gateway.bindings)
            binding_id, sent = binding.id, binding.cseq
            pool_cseq = {impu: r.cseq for impu, r in lab.gateway.pools.regs.items()}
            await wic.close()
        assert token_for_lab is not None and token is not None
        assert core_bindings(token_for_lab, "sip:dave@ims.test")  # the IMS registration outlives us
        async with make_lab(
            store=SqliteRegistrationStore(db),
            mw_port=port,
            pools=("web",),
            pool_passwords=(f"web={POOL_PASSWORD}",),
        ) as lab:
            restored = lab.gateway.bindings.by_id[binding_id]
            assert restored.connection is None and restored.grace_until is not None
            # the pool registrations were kept, not made again
            assert {impu: r.cseq for impu, r in lab.gateway.pools.regs.items()} == pool_cseq
            wic.url = lab.url
            await wic.connect()
            erin = Wic(lab.url, origin=ORIGIN, user="erin")
            await erin.connect()
            try:
                assert (await wic.register(headers=[bearer(token)])).status == 200
                assert list(lab.gateway.bindings.of_impu("sip:dave@ims.test")) == [restored]
                assert restored.cseq == sent and restored.connection is not None
                assert (await erin.register(headers=[bearer(token_for(lab.auth, "erin"))])).status == 200
                response = await erin.request(
                    "MESSAGE", "sip:dave@ims.test", [("Content-Type", "text/plain")], b"after the restart"
                )
                assert response.status == 200
                assert (await wic.wait_request("MESSAGE")).body == b"after the restart"
            finally:
                await wic.close()
                await erin.close()
    finally:
        db.close()


async def test_pool_identity_translation_both_ways(make_lab: LabFactory) -> None:
    async with make_lab(pools=("web",), pool_passwords=(f"web={POOL_PASSWORD}",)) as lab:
        pat = Wic(lab.url, origin=ORIGIN, user="pat", domain="web.example")
        dave = Wic(lab.url, origin=ORIGIN, user="dave")
        await pat.connect()
        await dave.connect()
        try:
            ok = await pat.register(headers=[bearer(token_for(lab.auth, "pat"))])
            assert ok.status == 200
            impu = ok.headers.get("P-Associated-URI", "").strip("<>")
            assert impu.startswith("sip:web-")
            assert (await dave.register(headers=[bearer(token_for(lab.auth, "dave"))])).status == 200
            sent = await pat.request(
                "MESSAGE", "sip:dave@ims.test", [("Content-Type", "text/plain")], b"from pool"
            )
            assert sent.status == 200
            got = await dave.wait_request("MESSAGE")
            assert got.headers.get_all("P-Asserted-Identity") == [f"<{impu}>"]
            assert str(got.from_.uri) == impu  # the WIC's own address is translated to its IMPU
            back = await dave.request("MESSAGE", impu, [("Content-Type", "text/plain")], b"to the pool IMPU")
            assert back.status == 200
            delivered = await pat.wait_request("MESSAGE")
            assert delivered.body == b"to the pool IMPU"
            assert str(delivered.uri) == f"sip:{pat.contact_user}@{pat.host};transport=ws"
        finally:
            await pat.close()
            await dave.close()


async def test_behind_an_operator_p_cscf_the_gateway_is_a_ue(make_lab: LabFactory, core: LabCore) -> None:
    """Seed 004 topology. The lab core has no P-CSCF, so the I-CSCF stands in for it:
    the REGISTER carries no Path and the registered Contact is the gateway's (flow token)."""
    async with make_lab(topology="behind-p-cscf", pcscf=core.icscf_uri) as lab:
        bob = Wic(lab.url, origin=ORIGIN, user="bob")
        frank = Wic(lab.url, origin=ORIGIN, user="frank")
        await bob.connect()
        await frank.connect()
        try:
            _, ok = await bob.register_digest(PASSWORDS["bob"])
            assert ok.status == 200, ok
            (contact,) = core_bindings(lab, "sip:bob@ims.test")
            assert contact.path == ()
            user = str(contact.contact.uri).split(":", 1)[1].split("@", 1)[0]
            assert lab.gateway.tokens.read(user) is not None
            assert str(contact.contact.uri).startswith("sip:") and "invalid" not in str(contact.contact.uri)
            ok2 = await frank.register(headers=[password_header("frank@ims.test", PASSWORDS["frank"])])
            assert ok2.status == 200
            # each WIC is a UE of its own for the P-CSCF: its own port (TS 24.229 §5.2.6.3.1)
            (frank_contact,) = core_bindings(lab, "sip:frank@ims.test")
            ports = {c.contact.uri.port for c in (contact, frank_contact)}  # type: ignore[union-attr]
            assert len(ports) == 2 and lab.gateway.ims.port not in ports
            response = await frank.request(
                "MESSAGE", "sip:bob@ims.test", [("Content-Type", "text/plain")], b"ue"
            )
            assert response.status == 200
            got = await bob.wait_request("MESSAGE")
            assert str(got.uri) == f"sip:{bob.contact_user}@{bob.host};transport=ws"
        finally:
            await bob.close()
            await frank.close()


async def test_pool_registered_on_demand(make_lab: LabFactory) -> None:
    async with make_lab(
        pools=("web",), pool_passwords=(f"web={POOL_PASSWORD}",), pool_registration="on-demand"
    ) as lab:
        regs = lab.gateway.pools.regs
        assert regs and not any(r.active for r in regs.values())  # nothing registered at start-up
        wic = Wic(lab.url, origin=ORIGIN, user="quinn", domain="web.example")
        await wic.connect()
        try:
            ok = await wic.register(headers=[bearer(token_for(lab.auth, "quinn"))])
            assert ok.status == 200
            impu = ok.headers.get("P-Associated-URI", "").strip("<>")
            assert regs[impu].active and core_bindings(lab, impu)
            assert sum(r.active for r in regs.values()) == 1  # only the IMPU that was asked for
        finally:
            await wic.close()
