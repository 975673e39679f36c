"""Registration through the lab I-CSCF and S-CSCF (TS 24.229 §5.3.1, §5.4.1), driven by Python UEs.

Real sockets on loopback, the real HSS (SQLite) behind Cx. SIPp covers the same
ground from an independent implementation in test_cscf_sipp.py; these check the
details: headers of the 401 and 200, AKA nonce and keys, resynchronisation,
Path/Expires/Contact rules, expiry, barring, the HSS state after each step.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from labcore_harness import (
    AKA_K,
    AKA_OP,
    PASSWORDS,
    REALM,
    SDP_PCMU,
    Ue,
    core_config,
    eventually,
    running_core,
    usim,
)

from webims.aka import UsimSqnState, compute_opc, parse_aka_nonce
from webims.aka.vectors import Usim
from webims.diameter import ServerCapabilities
from webims.endpoint import IncomingRequest
from webims.labcore import LabCore, start_labcore
from webims.labcore.hss import RegState, SubscriberStore
from webims.labcore.icscf import select_scscf
from webims.labcore.settings import ScscfEntry, parse_scscf_entry
from webims.sip.digest import parse_challenge
from webims.store import Store


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[LabCore]:
    async with running_core(tmp_path) as lab:
        yield lab


def state(core: LabCore, impu: str) -> RegState | None:
    assert core.subscribers is not None
    rec = core.subscribers.impu(impu)
    return rec.reg_state if rec is not None else None


def scscf_of(core: LabCore, impu: str) -> str | None:
    assert core.subscribers is not None
    rec = core.subscribers.impu(impu)
    return rec.scscf_name if rec is not None else None


# --- Digest ---------------------------------------------------------------------------------------


async def test_md5_challenge_and_200_ok_headers(core: LabCore) -> None:
    async with Ue(core, "alice", path="sip:pcscf@127.0.0.1:5999;lr") as ue:
        first = await ue.register(authenticate=False)
        assert first.status == 401
        challenge = parse_challenge(first.headers.get("www-authenticate") or "")
        assert challenge.is_digest and challenge.realm == REALM
        assert challenge.algorithm == "MD5" and challenge.qop_options == ("auth",)
        assert challenge.nonce and challenge.ck is None  # no keys outside AKA
        ok = await ue.register(600)
        assert ok.status == 200, ok
        assert ok.headers.get_all("service-route") == [f"<{core.scscf.service_route}>"]
        assert core.scscf.service_route.startswith("sip:orig@")
        assert ok.headers.get_all("path") == ["<sip:pcscf@127.0.0.1:5999;lr>"]
        assert "path" in ok.option_tags("supported")
        pau = ok.headers.get_all("p-associated-uri")
        assert pau == ["<sip:alice@ims.test>", "<tel:+15551000>"]  # the implicit set, registered IMPU first
        (contact,) = ok.contact
        assert str(contact.uri) == ue.contact_uri and contact.expires == 600
    assert state(core, "sip:alice@ims.test") is RegState.REGISTERED
    assert state(core, "tel:+15551000") is RegState.REGISTERED
    assert scscf_of(core, "sip:alice@ims.test") == core.scscf.server_name
    reg = core.scscf.registration("tel:+15551000")
    assert reg is not None and reg.impu == "sip:alice@ims.test"


async def test_wrong_password_gets_403_and_nothing_is_registered(core: LabCore) -> None:
    async with Ue(core, "dave", password="wrong") as ue:
        response = await ue.register()
        assert response.status == 403
    assert core.scscf.registration("sip:dave@ims.test") is None
    assert state(core, "sip:dave@ims.test") is RegState.NOT_REGISTERED


async def test_unknown_user_is_refused_by_the_icscf_with_403(core: LabCore) -> None:
    async with Ue(core, "nobody", password="x") as ue:
        response = await ue.register()
        assert response.status == 403
        assert "www-authenticate" not in response.headers  # refused before any S-CSCF saw it


async def test_a_challenge_answered_for_another_impi_is_not_accepted(core: LabCore) -> None:
    async with Ue(core, "erin") as ue:
        challenge = parse_challenge(
            (await ue.register(authenticate=False)).headers.get("www-authenticate") or ""
        )
        # frank answers erin's challenge with his own password
        from webims.sip.digest import DigestClient

        creds = DigestClient(f"frank@{REALM}", PASSWORDS["frank"]).authorize(
            challenge, "REGISTER", f"sip:{REALM}"
        )
        response = await ue.register(authorization=creds.format(), authenticate=False)
        assert response.status in (401, 403)
    assert core.scscf.registration("sip:erin@ims.test") is None


# --- AKA -----------------------------------------------------------------------------------------------


async def test_akav1_challenge_carries_rand_autn_ck_ik_and_the_usim_accepts_it(core: LabCore) -> None:
    async with Ue(core, "walt", usim=usim()) as ue:
        first = await ue.register(authenticate=False)
        assert first.status == 401
        challenge = parse_challenge(first.headers.get("www-authenticate") or "")
        assert challenge.algorithm == "AKAv1-MD5"
        nonce = parse_aka_nonce(challenge.nonce or "")
        assert len(nonce.rand) == 16 and len(nonce.autn) == 16
        assert len(base64.b64decode(challenge.nonce or "")) == 32
        assert challenge.ck is not None and len(bytes.fromhex(challenge.ck)) == 16  # TS 24.229 §5.4.1.2.1
        assert challenge.ik is not None and len(bytes.fromhex(challenge.ik)) == 16
        ok = await ue.register()
        assert ok.status == 200
    assert state(core, "sip:walt@ims.test") is RegState.REGISTERED


async def test_akav2_md5_when_the_ue_asks_for_it(core: LabCore) -> None:
    akav2 = (
        f'Digest username="walt@{REALM}", realm="{REALM}", nonce="", uri="sip:{REALM}", response="", '
        "algorithm=AKAv2-MD5"
    )
    async with Ue(core, "walt", usim=usim()) as ue:
        first = await ue.register(authorization=akav2, authenticate=False)
        assert parse_challenge(first.headers.get("www-authenticate") or "").algorithm == "AKAv2-MD5"
        ok = await ue.register(authorization=akav2)
        assert ok.status == 200


async def test_aka_resynchronisation_moves_the_hss_sequence_number(core: LabCore) -> None:
    """TS 33.102 §6.3.5: the USIM is far ahead; its AUTS makes the HSS jump to SQN_MS."""
    assert core.subscribers is not None
    before = core.subscribers.impi(f"walt@{REALM}")
    assert before is not None
    ahead = Usim(AKA_K, compute_opc(AKA_K, AKA_OP), UsimSqnState(seq_array=[5000] * 32))
    async with Ue(core, "walt", usim=ahead) as ue:
        ok = await ue.register()
        assert ok.status == 200, ok
    after = core.subscribers.impi(f"walt@{REALM}")
    assert after is not None and after.sqn >> 5 > 5000 > before.sqn >> 5


async def test_aka_with_a_wrong_response_gets_403(core: LabCore) -> None:
    wrong = Usim(b"0123456789abcdef", compute_opc(b"0123456789abcdef", AKA_OP))
    async with Ue(core, "walt", usim=wrong) as ue:
        # the USIM cannot verify AUTN (MAC failure): it answers with an empty response
        response = await ue.register()
        assert response.status == 403
    assert core.scscf.registration("sip:walt@ims.test") is None


# --- checks before authentication ---------------------------------------------------------------------


async def test_path_without_supported_path_gets_420(core: LabCore) -> None:
    async with Ue(core, "gina") as ue:
        response = await ue.register(headers=[("Path", "<sip:p@127.0.0.1:5999;lr>")], authenticate=False)
        assert response.status == 420
        assert response.headers.get("unsupported") == "path"


async def test_too_brief_expiry_gets_423_with_min_expires(core: LabCore) -> None:
    async with Ue(core, "gina") as ue:
        response = await ue.register(10, authenticate=False)
        assert response.status == 423
        assert response.headers.get("min-expires") == str(core.config.min_expires)


async def test_expiry_above_the_maximum_is_shortened(core: LabCore) -> None:
    async with Ue(core, "gina") as ue:
        ok = await ue.register(10**7)
        assert ok.status == 200
        assert ok.contact[0].expires == core.config.max_expires


async def test_contact_star_needs_expires_zero(core: LabCore) -> None:
    async with Ue(core, "gina") as ue:
        response = await ue.register(600, contact="*", authenticate=False)
        assert response.status == 400


# --- re-registration and de-registration ---------------------------------------------------------------


async def test_reregistration_refreshes_the_same_binding(core: LabCore) -> None:
    async with Ue(core, "hank") as ue:
        assert (await ue.register(600)).status == 200
        reg = core.scscf.registration("sip:hank@ims.test")
        assert reg is not None
        first = next(iter(reg.bindings.values()))
        assert first.event == "registered"
        assert (await ue.register(1200)).status == 200
        (binding,) = reg.bindings.values()
        assert binding.id == first.id and binding.event == "refreshed"
        assert binding.expires_in(core.scscf.registrar.now()) > 1100


async def test_outbound_instances_and_reg_ids_are_separate_bindings(core: LabCore) -> None:
    inst = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"'
    async with Ue(core, "ivan") as ue:
        assert (await ue.register(contact=f"<{ue.contact_uri}>;{inst};reg-id=1")).status == 200
        ok = await ue.register(contact=f"<sip:ivan@127.0.0.1:5998>;{inst};reg-id=2")
        assert ok.status == 200 and len(ok.contact) == 2
        # the same instance and reg-id from a new address replaces that flow (RFC 5626 §6)
        ok = await ue.register(contact=f"<sip:ivan@127.0.0.1:5997>;{inst};reg-id=2")
        assert sorted(str(c.uri) for c in ok.contact) == sorted([ue.contact_uri, "sip:ivan@127.0.0.1:5997"])


async def test_deregistration_with_expires_zero(core: LabCore) -> None:
    async with Ue(core, "judy") as ue:
        assert (await ue.register()).status == 200
        assert state(core, "sip:judy@ims.test") is RegState.REGISTERED
        bye = await ue.register(0)
        assert bye.status == 200 and bye.contact == []
    assert core.scscf.registration("sip:judy@ims.test") is None
    assert state(core, "sip:judy@ims.test") is RegState.NOT_REGISTERED  # SAR USER_DEREGISTRATION


async def test_contact_star_removes_every_binding(core: LabCore) -> None:
    async with Ue(core, "kim") as one, Ue(core, "kim") as two:
        assert (await one.register()).status == 200
        ok = await two.register()
        assert len(ok.contact) == 2
        assert (await one.register(0, contact="*")).status == 200
    assert core.scscf.registration("sip:kim@ims.test") is None
    assert state(core, "sip:kim@ims.test") is RegState.NOT_REGISTERED


async def test_registration_expires_and_the_hss_is_told(tmp_path: Path) -> None:
    async with running_core(tmp_path, min_expires=1) as core, Ue(core, "lee") as ue:
        assert (await ue.register(1)).status == 200
        assert core.scscf.registration("sip:lee@ims.test") is not None
        await eventually(lambda: core.scscf.registration("sip:lee@ims.test") is None)
        await eventually(lambda: state(core, "sip:lee@ims.test") is RegState.NOT_REGISTERED)


# --- barring -------------------------------------------------------------------------------------------


async def test_a_barred_identity_cannot_register(core: LabCore) -> None:
    async with Ue(core, "barry-old", impi=f"barry@{REALM}", password="barry-secret") as ue:
        response = await ue.register()
        assert response.status == 403
    assert core.scscf.registration("sip:barry-old@ims.test") is None


async def test_barred_identities_are_left_out_of_p_associated_uri(core: LabCore) -> None:
    async with Ue(core, "barry", password="barry-secret") as ue:
        ok = await ue.register()
        assert ok.status == 200
        assert ok.headers.get_all("p-associated-uri") == ["<sip:barry@ims.test>"]
        async with Ue(core, "alice") as alice:
            assert (await alice.register()).status == 200
            # terminating to the barred identity: 404 (TS 24.229 §5.4.3.3)
            message = alice.request(
                "MESSAGE", "sip:barry-old@ims.test", body=b"hi", content_type="text/plain"
            )
            assert (await alice.send(message)).status == 404


# --- TNA, HSS failures, S-CSCF selection -------------------------------------------------------------


async def test_auth_done_directly_from_a_trusted_address(core: LabCore) -> None:
    tna = (
        f'Digest username="gina@{REALM}", realm="{REALM}", nonce="", uri="sip:{REALM}", response="", '
        'integrity-protected="auth-done"'
    )
    async with Ue(core, "gina", host="127.0.0.2") as ue:
        ok = await ue.register(authorization=tna, authenticate=False)
        assert ok.status == 200
    async with Ue(core, "hank", host="127.0.0.3") as ue:
        refused = await ue.register(authorization=tna.replace("gina", "hank"), authenticate=False)
        assert refused.status == 401


async def test_hss_unreachable_gives_480(tmp_path: Path) -> None:
    from webims.testing.ports import free_port

    config = core_config(tmp_path, hss="remote", hss_port=free_port(), cx_timeout=0.3)
    store = Store(tmp_path / "unused.sqlite3")
    core = await start_labcore(config, subscribers=SubscriberStore(store), iwf=None, connect_timeout=0.2)
    try:
        assert not core.icscf_cx.is_open
        async with Ue(core, "alice") as ue:
            assert (await ue.register()).status == 480
            invite = ue.request(
                "INVITE", "sip:bob@ims.test", body=SDP_PCMU, content_type="application/sdp", route=False
            )
            assert (await ue.send(invite, ue.icscf())).status == 480  # terminating: LIR fails
    finally:
        await core.stop()
        store.close()


def test_scscf_selection_by_capabilities() -> None:
    entries = [
        ScscfEntry("sip:a.ims.test", frozenset({1})),
        ScscfEntry("sip:b.ims.test", frozenset({1, 2, 3})),
        ScscfEntry("sip:c.ims.test", frozenset({1, 2})),
    ]
    assert select_scscf(entries, None) == entries[0]
    assert select_scscf(entries, ServerCapabilities(mandatory=(2,))) == entries[1]  # most optional (none)
    assert select_scscf(entries, ServerCapabilities(mandatory=(1,), optional=(2,))) in (
        entries[1],
        entries[2],
    )
    assert select_scscf(entries, ServerCapabilities(mandatory=(1,), optional=(2, 3))) == entries[1]
    assert select_scscf(entries, ServerCapabilities(mandatory=(9,))) is None
    named = ServerCapabilities(mandatory=(1,), server_names=("sip:c.ims.test",))
    assert select_scscf(entries, named) == entries[2]
    assert parse_scscf_entry("sip:x.ims.test:6060 4,5") == ScscfEntry(
        "sip:x.ims.test:6060", frozenset({4, 5})
    )
    with pytest.raises(ValueError):
        parse_scscf_entry("http://x")


async def test_the_icscf_hands_registers_to_its_own_scscf_in_process(core: LabCore) -> None:
    """The REGISTER the S-CSCF handles in-process is the one the wire would carry: the I-CSCF's Via
    on top of the UE's, Max-Forwards decremented, the I-CSCF as source; the UE gets the S-CSCF's
    answer with its own Via only. A failing S-CSCF handler gives 500. Cx goes to the embedded HSS
    directly, and the registration state is stored before the 200 goes out."""
    assert core.hss is not None
    (hop,) = set(core.icscf.local_hops.values())
    handler = hop.handler
    seen: list[IncomingRequest] = []

    async def recording(incoming: IncomingRequest) -> None:
        seen.append(incoming)
        await handler(incoming)

    hop.handler = recording
    answered = core.hss.requests_answered
    async with Ue(core, "alice") as ue:
        ok = await ue.register(600)
        assert ok.status == 200, ok
        assert [v.host for v in ok.via] == ["127.0.0.1"] and len(ok.via) == 1
        assert state(core, "sip:alice@ims.test") is RegState.REGISTERED
        assert len(seen) == 2  # the challenged REGISTER and the answer to the challenge
        request = seen[-1].request
        vias = request.via
        assert len(vias) == 2 and vias[0].port == core.icscf_address[1] and vias[1].port == ue.port
        assert request.max_forwards == 69
        assert seen[-1].connection.remote == ("127.0.0.1", core.icscf_address[1])
        assert core.hss.requests_answered == answered + 4  # UAR, MAR, UAR, SAR

        async def failing(incoming: IncomingRequest) -> None:
            raise RuntimeError("S-CSCF bug")

        hop.handler = failing
        assert (await ue.register(600)).status == 500


async def test_the_200_ok_lists_each_contact_as_registered_with_the_granted_expires(core: LabCore) -> None:
    inst = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000a95a0e129>"'
    async with Ue(core, "judy") as ue:
        # an expires parameter in the Contact wins over the Expires header (RFC 3261 §10.3 step 7)
        ok = await ue.register(900, contact=f"<{ue.contact_uri};transport=udp>;expires=300;{inst};reg-id=1")
        assert ok.status == 200
        (contact,) = ok.contact
        assert str(contact.uri) == f"{ue.contact_uri};transport=udp"
        assert contact.expires == 300 and contact.reg_id == 1
        assert contact.sip_instance == "urn:uuid:00000000-0000-1000-8000-000a95a0e129"
        assert ok.headers.get("contact").count("expires=") == 1
        # without one, the binding's text is echoed as registered, the granted expiry appended
        again = await ue.register(600, contact=f"<{ue.contact_uri};transport=udp>;{inst};reg-id=1")
        assert again.headers.get("contact") == f"<{ue.contact_uri};transport=udp>;{inst};reg-id=1;expires=600"
