"""Every registration mode end to end: scripted WIC over real WSS -> gateway -> lab IMS core.

Each test checks both sides: what the WIC got back, and what the S-CSCF holds (the
contact, and the Path with our flow token and ``ob``, RFC 5626 §5.3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from conftest import ORIGIN, PASSWORDS, POOL_PASSWORD, REALM, Lab, LabFactory, token_for, usim
from wicclient import Wic, bearer, password_header

from webims.gateway.regmsg import RegisterBuilder
from webims.labcore.registrations import Binding as CoreBinding
from webims.sip import Request
from webims.sip.auth_header import parse_challenge


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"condition not reached within {timeout} s")
        await asyncio.sleep(0.02)


def core_bindings(lab: Lab, impu: str) -> list[CoreBinding]:
    reg = lab.core.scscf.registration(impu)
    return list(reg.bindings.values()) if reg is not None else []


def ims_registers(lab: Lab) -> int:
    """How many REGISTERs the gateway sent toward the IMS so far (all bindings and pools)."""
    return sum(b.cseq for b in lab.gateway.bindings) + sum(r.cseq for r in lab.gateway.pools.regs.values())


def check_path(lab: Lab, binding: CoreBinding, *, ob: bool = True) -> str:
    """The S-CSCF stored our Path: the flow token names the gateway's binding."""
    assert len(binding.path) == 1, binding.path
    path = binding.path[0]
    host = f"{lab.gateway.config.uri_host}:{lab.gateway.ims.port}"
    assert host in path and ";lr" in path
    assert (";ob" in path) is ob
    token = path.split("sip:", 1)[1].split("@", 1)[0]
    kind_ident = lab.gateway.tokens.read(token)
    assert kind_ident is not None and kind_ident[0] == "b"
    return kind_ident[1]


async def test_ims_digest_relay_and_deregistration(lab: Lab) -> None:
    wic = Wic(lab.url, origin=ORIGIN, user="bob")
    await wic.connect()
    try:
        first, second = await wic.register_digest(PASSWORDS["bob"])
        assert first.status == 401
        challenge = parse_challenge(first.headers.get("WWW-Authenticate") or "")
        assert challenge.algorithm in (None, "MD5") and challenge.ck is None and challenge.ik is None
        assert second.status == 200, second
        assert "outbound" in second.option_tags("require")
        assert second.headers.get("Flow-Timer") == "120"
        assert [str(c.uri) for c in second.contact] == [f"sip:{wic.contact_user}@{wic.host};transport=ws"]
        assert "<sip:bob@ims.test>" in second.headers.get_all("P-Associated-URI")
        (binding,) = list(lab.gateway.bindings)
        assert binding.mode == "ims-digest" and binding.impu == "sip:bob@ims.test" and binding.service_route
        (core,) = core_bindings(lab, "sip:bob@ims.test")
        assert check_path(lab, core) == binding.id
        assert core.instance == wic.instance and core.reg_id == 1
        # de-registration: expires=0 for the contact, the WIC answers the challenge again if asked
        _, gone2 = await wic.register_digest(PASSWORDS["bob"], expires=0)
        assert gone2.status == 200
        assert not lab.gateway.bindings.by_id
        assert core_bindings(lab, "sip:bob@ims.test") == []
    finally:
        await wic.close()


async def test_ims_aka_relay_drops_ck_ik(lab: Lab) -> None:
    wic = Wic(lab.url, origin=ORIGIN, user="carol")
    await wic.connect()
    try:
        first, second = await wic.register_aka(usim())
        assert first.status == 401
        challenge = parse_challenge(first.headers.get("WWW-Authenticate") or "")
        assert challenge.algorithm == "AKAv1-MD5"
        assert challenge.ck is None and challenge.ik is None  # TS 24.229 §5.2.2.1: removed by the P-CSCF
        assert second.status == 200, second
        (binding,) = list(lab.gateway.bindings)
        assert binding.mode == "ims-aka" and binding.impi == "carol@ims.test"
        assert core_bindings(lab, "sip:carol@ims.test")
    finally:
        await wic.close()


async def test_relayed_credentials_keep_their_text(lab: Lab) -> None:
    """TS 24.229 §5.2.2.1: the WIC's Digest credentials reach the S-CSCF as the WIC wrote them,
    with the gateway's integrity-protected (WSS, flow not yet bound: tls-pending) appended; one
    the WIC wrote itself is replaced, never kept beside ours."""
    built: list[tuple[str | None, str | None]] = []

    class Spy(RegisterBuilder):  # records what the gateway asked for, builds it as ever
        def build(self, **kw: Any) -> Request:
            wic_request = kw.get("wic_request")
            theirs = wic_request.headers.get("Authorization") if wic_request else None
            built.append((theirs, kw["authorization"]))
            return super().build(**kw)

    b = lab.gateway.register_builder
    lab.gateway.register_builder = Spy(as_pcscf=b.as_pcscf, pvni=b.pvni, generated_at=b.generated_at,
                                       access_network_info=b.access_network_info)  # fmt: skip
    wic = Wic(lab.url, origin=ORIGIN, user="bob")
    await wic.connect()
    try:
        first, second = await wic.register_digest(PASSWORDS["bob"])
        assert (first.status, second.status) == (401, 200), second
        (_, none), (theirs, ours) = built
        assert none is None and theirs is not None
        assert ours == f'{theirs}, integrity-protected="tls-pending"'
        wrote = (
            'Digest username="bob@ims.test", realm="ims.test", nonce="", uri="sip:ims.test", '
            'response="", integrity-protected="yes"'
        )
        refused = await wic.register(headers=[("Authorization", wrote)])
        assert refused.status in (401, 403)
        sent = built[-1][1] or ""
        assert sent.count("integrity-protected") == 1 and 'integrity-protected="yes"' not in sent
    finally:
        lab.gateway.register_builder = b
        await wic.close()


async def test_relay_cannot_fake_trusted_node_authentication(lab: Lab) -> None:
    """A WIC writing integrity-protected="auth-done" itself is still challenged."""
    wic = Wic(lab.url, origin=ORIGIN, user="alice")
    await wic.connect()
    try:
        fake = (
            'Digest username="alice@ims.test", realm="ims.test", uri="sip:ims.test", nonce="", '
            'response="", integrity-protected="auth-done"'
        )
        response = await wic.register(headers=[("Authorization", fake)])
        assert response.status == 401
        assert core_bindings(lab, "sip:alice@ims.test") == []
    finally:
        await wic.close()


async def test_ims_digest_on_behalf(lab: Lab) -> None:
    wic = Wic(lab.url, origin=ORIGIN, user="frank")
    await wic.connect()
    try:
        ok = await wic.register(headers=[password_header("frank@ims.test", PASSWORDS["frank"])])
        assert ok.status == 200, ok
        (binding,) = list(lab.gateway.bindings)
        assert binding.mode == "ims-digest-on-behalf" and binding.password == PASSWORDS["frank"]
        assert "password" not in binding.to_record()
        (core,) = core_bindings(lab, "sip:frank@ims.test")
        check_path(lab, core)
        sent = binding.cseq
        again = await wic.register(headers=[password_header("frank@ims.test", PASSWORDS["frank"])])
        assert again.status == 200 and binding.cseq == sent  # a WIC refresh costs no IMS traffic
        wrong = Wic(lab.url, origin=ORIGIN, user="gina")
        await wrong.connect()
        try:
            refused = await wrong.register(headers=[password_header("gina@ims.test", "not-her-password")])
            assert refused.status == 403
            assert core_bindings(lab, "sip:gina@ims.test") == []
        finally:
            await wrong.close()
        await wic.register(0, headers=[password_header("frank@ims.test", PASSWORDS["frank"])])
        assert core_bindings(lab, "sip:frank@ims.test") == [] and binding.password is None
    finally:
        await wic.close()


async def test_web_token_registers_with_tna_and_refreshes_locally(lab: Lab) -> None:
    token = token_for(lab.auth, "dave")
    wic = Wic(lab.url, origin=ORIGIN, user="dave")
    await wic.connect()
    try:
        ok = await wic.register(headers=[bearer(token)])
        assert ok.status == 200, ok
        assert "<sip:dave@ims.test>" in ok.headers.get_all("P-Associated-URI")
        (binding,) = list(lab.gateway.bindings)
        assert (binding.mode, binding.sub, binding.impi) == ("web-token", "dave", "dave@ims.test")
        (core,) = core_bindings(lab, "sip:dave@ims.test")
        check_path(lab, core)
        assert core.impi == "dave@ims.test"
        sent = binding.cseq
        again = await wic.register(headers=[bearer(token)])
        assert again.status == 200 and binding.cseq == sent
        # the gateway subscribed to dave's reg event as P-CSCF
        subs = await eventually(
            lambda: [
                s
                for s in lab.core.scscf.regevent.subscriptions
                if "dave" in str(getattr(s, "aor", "")) or "dave" in repr(s)
            ]
        )
        assert subs
    finally:
        await wic.close()


async def test_web_login_with_session_cookie_on_the_upgrade(lab: Lab) -> None:
    user = lab.auth.users.get("erin")
    cookie = lab.auth.sessions.create(user)
    wic = Wic(lab.url, origin=ORIGIN, user="erin", cookie=cookie)
    await wic.connect()
    try:
        ok = await wic.register()
        assert ok.status == 200, ok
        (binding,) = list(lab.gateway.bindings)
        assert binding.mode == "web-login" and binding.sub == "erin"
        assert core_bindings(lab, "sip:erin@ims.test")
    finally:
        await wic.close()


async def test_session_cookie_of_another_identity_falls_back_to_ims_digest(lab: Lab) -> None:
    """Two tabs of one browser profile: tab A is logged in on the web as erin (its cookie
    goes with every WebSocket of the origin), tab B registers bob with his IMS password.
    B's REGISTER names an AOR erin's session does not map to: the gateway relays the
    IMS digest challenge instead of registering erin (or refusing bob)."""
    user = lab.auth.users.get("erin")
    cookie = lab.auth.sessions.create(user)
    wic = Wic(lab.url, origin=ORIGIN, user="bob", cookie=cookie)
    await wic.connect()
    try:
        first, second = await wic.register_digest(PASSWORDS["bob"])
        assert first.status == 401 and "Digest" in (first.headers.get("WWW-Authenticate") or "")
        assert second.status == 200, second
        (binding,) = list(lab.gateway.bindings)
        assert binding.mode == "ims-digest" and binding.impi == f"bob@{REALM}"
        assert core_bindings(lab, "sip:bob@ims.test")
        assert not core_bindings(lab, "sip:erin@ims.test")
    finally:
        await wic.close()


async def test_pool_mode_answers_from_the_pool_without_ims_traffic(make_lab: LabFactory) -> None:
    async with make_lab(pools=("web",), pool_passwords=(f"web={POOL_PASSWORD}",)) as lab:
        regs = lab.gateway.pools.regs
        assert sorted(regs) == [f"sip:web-{i}@{REALM}" for i in (1, 2, 3)]
        assert all(r.active for r in regs.values())
        for impu in regs:  # the gateway registered each pool IMPU itself (digest), with its own contact
            (core,) = core_bindings(lab, impu)
            found = lab.gateway.tokens.read(str(core.contact.uri).split(":", 1)[1].split("@")[0])
            assert found is not None and found[0] == "p"
        before = ims_registers(lab)
        token = token_for(lab.auth, "pat")
        wic = Wic(lab.url, origin=ORIGIN, user="pat-web", domain="web.example")
        await wic.connect()
        try:
            ok = await wic.register(headers=[bearer(token)])
            assert ok.status == 200, ok
            (binding,) = list(lab.gateway.bindings)
            assert binding.mode == "pool" and binding.impu in regs
            assert ok.headers.get_all("P-Associated-URI") == [f"<{binding.impu}>"]
            assert ims_registers(lab) == before  # seed 004 §6.X.2.2.5: no IMS traffic
            alloc = binding.allocation
            assert alloc is not None and lab.auth.pools.is_active(alloc)
            await wic.register(0, headers=[bearer(token)])
            assert not lab.gateway.bindings.by_id
            await eventually(lambda: not lab.auth.pools.is_active(alloc))
            assert core_bindings(lab, binding.impu)  # the pool registration stays
        finally:
            await wic.close()


async def test_wildcard_pool(make_lab: LabFactory) -> None:
    async with make_lab(pools=("wild",), pool_passwords=(f"wild={POOL_PASSWORD}",)) as lab:
        (reg,) = lab.gateway.pools.regs.values()
        assert reg.wildcard == f"sip:wild-!\\d+!@{REALM}" and reg.impu == f"sip:wild-0@{REALM}" and reg.active
        token = token_for(lab.auth, "wendy")
        wic = Wic(lab.url, origin=ORIGIN, user="wendy")
        await wic.connect()
        try:
            ok = await wic.register(headers=[bearer(token)])
            assert ok.status == 200, ok
            (binding,) = list(lab.gateway.bindings)
            assert binding.impu.startswith("sip:wild-") and reg.covers(binding.impu)
        finally:
            await wic.close()


async def test_wic_leaving_ends_its_registration_after_the_grace_period(lab: Lab) -> None:
    wic = Wic(lab.url, origin=ORIGIN, user="dave")
    await wic.connect()
    assert (await wic.register(headers=[bearer(token_for(lab.auth, "dave"))])).status == 200
    assert core_bindings(lab, "sip:dave@ims.test")
    await wic.close()
    (binding,) = list(lab.gateway.bindings)
    assert binding.connection is None and binding.grace_until is not None
    await eventually(lambda: not lab.gateway.bindings.by_id, timeout=5)
    await eventually(lambda: core_bindings(lab, "sip:dave@ims.test") == [])


async def test_flow_recovery_same_instance_on_a_new_websocket(lab: Lab) -> None:
    token = token_for(lab.auth, "dave")
    wic = Wic(lab.url, origin=ORIGIN, user="dave")
    await wic.connect()
    assert (await wic.register(headers=[bearer(token)])).status == 200
    (binding,) = list(lab.gateway.bindings)
    sent = binding.cseq
    await wic.close()
    await eventually(lambda: binding.connection is None)
    await wic.connect()  # same +sip.instance and reg-id, new WebSocket
    try:
        ok = await wic.register(headers=[bearer(token)])
        assert ok.status == 200
        assert list(lab.gateway.bindings) == [binding] and binding.cseq == sent
        assert binding.connection is not None and binding.grace_until is None
        await asyncio.sleep(1.5)  # past the grace period: still registered
        assert core_bindings(lab, "sip:dave@ims.test") and lab.gateway.bindings.by_id
    finally:
        await wic.close()


async def test_network_initiated_deregistration_reaches_the_wic(lab: Lab) -> None:
    wic = Wic(lab.url, origin=ORIGIN, user="dave")
    await wic.connect()
    try:
        assert (await wic.register(headers=[bearer(token_for(lab.auth, "dave"))])).status == 200
        await eventually(
            lambda: (
                lab.gateway.regevents.by_impu.get("sip:dave@ims.test") is not None
                and lab.gateway.regevents.by_impu["sip:dave@ims.test"].to_tag is not None
            )
        )
        assert await lab.core.scscf.deregister("sip:dave@ims.test", "rejected")
        await eventually(lambda: not lab.gateway.bindings.by_id)
        await asyncio.wait_for(wic.closed.wait(), 5)  # the WIC learns it: its WebSocket closes
    finally:
        await wic.close()


async def test_reg_event_subscription_follows_the_registration(lab: Lab) -> None:
    """TS 24.229 §5.2.3: one reg-event SUBSCRIBE per registered IMPU, in the S-CSCF's dialog
    (its Contact as target); the WIC's de-registration ends it (Expires: 0, RFC 6665 §4.1.2.3)."""
    scscf = lab.core.scscf.regevent
    wic = Wic(lab.url, origin=ORIGIN, user="dave")
    await wic.connect()
    try:
        assert (await wic.register(headers=[bearer(token_for(lab.auth, "dave"))])).status == 200
        events = lab.gateway.regevents
        dave = "sip:dave@ims.test"
        await eventually(lambda: (x := events.by_impu.get(dave)) is not None and bool(x.to_tag))
        sub = events.by_impu[dave]
        (theirs,) = [s for s in scscf.subscriptions if s.call_id == sub.call_id]
        assert theirs.remote_tag == sub.from_tag and theirs.local_tag == sub.to_tag
        assert sub.remote_target != sub.impu  # the S-CSCF's Contact from its 2xx
        assert (await wic.register(expires=0, headers=[bearer(token_for(lab.auth, "dave"))])).status == 200
        await eventually(lambda: not events.by_impu and not events.by_call_id)
        await eventually(lambda: not [s for s in scscf.subscriptions if s.call_id == sub.call_id])
    finally:
        await wic.close()


async def test_message_between_two_wics_with_asserted_identity(lab: Lab) -> None:
    dave = Wic(lab.url, origin=ORIGIN, user="dave")
    erin = Wic(lab.url, origin=ORIGIN, user="erin")
    await dave.connect()
    await erin.connect()
    try:
        assert (await dave.register(headers=[bearer(token_for(lab.auth, "dave"))])).status == 200
        assert (await erin.register(headers=[bearer(token_for(lab.auth, "erin"))])).status == 200
        response = await dave.request(
            "MESSAGE", "sip:erin@ims.test",
            [("P-Asserted-Identity", "<sip:alice@ims.test>"), ("Content-Type", "text/plain")],
            b"hello erin",
        )  # fmt: skip
        assert response.status == 200, response
        message = await erin.wait_request("MESSAGE")
        assert message.body == b"hello erin"
        assert message.headers.get_all("P-Asserted-Identity") == ["<sip:dave@ims.test>"]
        assert str(message.uri) == f"sip:{erin.contact_user}@{erin.host};transport=ws"
    finally:
        await dave.close()
        await erin.close()


async def test_unregistered_flow_cannot_send(lab: Lab) -> None:
    wic = Wic(lab.url, origin=ORIGIN, user="dave")
    await wic.connect()
    try:
        response = await wic.request("MESSAGE", "sip:erin@ims.test", [("Content-Type", "text/plain")], b"x")
        assert response.status == 403
    finally:
        await wic.close()


async def test_contact_star_is_turned_into_per_contact_deregistration(lab: Lab) -> None:
    """Kamailio keeps contacts on ``Contact: *``: the gateway de-registers each of the WIC's contacts."""
    wic = Wic(lab.url, origin=ORIGIN, user="dave")
    await wic.connect()
    try:
        token = bearer(token_for(lab.auth, "dave"))
        assert (await wic.register(headers=[token])).status == 200
        (binding,) = list(lab.gateway.bindings)
        query = await wic.request("REGISTER", "sip:ims.test", [token], to=wic.aor)  # no Contact: a query
        assert query.status == 200 and [str(c.uri) for c in query.contact] == [binding.contact_uri]
        gone = await wic.register(0, [token], contact="*")
        assert gone.status == 200
        assert not lab.gateway.bindings.by_id and core_bindings(lab, "sip:dave@ims.test") == []
    finally:
        await wic.close()
