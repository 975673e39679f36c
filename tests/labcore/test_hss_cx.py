"""Cx over a real TCP connection to a running HSS: UAR, MAR, SAR, LIR, field by field (TS 29.228/29.229)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hss_harness import (
    ALICE,
    BOB,
    ICSCF_CAPS,
    K1,
    KAMAILIO_MAR,
    OPC1,
    REALM,
    SCSCF,
    SCSCF_HOST,
    connect,
    lir,
    mar,
    running,
    sar,
    subscriber_store,
    uar,
)

from webims.aka import (
    AkaSyncFailure,
    Usim,
    UsimSqnState,
    generate_auts,
    next_sqn,
    resync_sqn,
    split_sqn,
    verify_autn,
)
from webims.diameter import (
    CX_APPLICATION_ID,
    VENDOR_3GPP,
    ExperimentalResultCode,
    LocationInfoAnswer,
    Message,
    MultimediaAuthAnswer,
    ResultCode,
    ServerAssignmentAnswer,
    ServerAssignmentType,
    UserAuthorizationAnswer,
    UserAuthorizationType,
    UserDataAlreadyAvailable,
    make_avp,
)
from webims.labcore.hss import ImsSubscription, RegState, SubscriberSpec

X = ExperimentalResultCode
SAT = ServerAssignmentType


def experimental(answer: Message) -> int | None:
    er = answer.experimental_result
    if er is None:
        return None
    assert er[0] == VENDOR_3GPP
    return er[1]


def assert_cx_answer(answer: Message, request: Message) -> None:
    """TS 29.229 §6.1 common part of every answer."""
    assert not answer.is_request
    assert answer.command_code == request.command_code
    assert answer.application_id == CX_APPLICATION_ID
    assert (answer.hop_by_hop, answer.end_to_end) == (request.hop_by_hop, request.end_to_end)
    assert answer.session_id == request.session_id
    assert answer.origin_host == "hss.ims.test"
    assert answer.origin_realm == REALM
    assert answer.get_int("Auth-Session-State") == 1
    vsai = answer.require_group("Vendor-Specific-Application-Id")
    assert (vsai.require_int("Vendor-Id"), vsai.require_int("Auth-Application-Id")) == (VENDOR_3GPP, 16777216)


async def test_capabilities_exchange_advertises_cx(tmp_path: Path) -> None:
    with subscriber_store(tmp_path / "db", ALICE) as subs:
        async with running(subs) as hss:
            cx = await connect(hss)
            cea = cx.connection.opened.result().capabilities
            assert cea.result_code == ResultCode.DIAMETER_SUCCESS
            assert cea.origin_host == "hss.ims.test"
            groups = cea.get_all_group("Vendor-Specific-Application-Id")
            assert [(g.require_int("Vendor-Id"), g.require_int("Auth-Application-Id")) for g in groups] == [
                (VENDOR_3GPP, CX_APPLICATION_ID)
            ]
            assert VENDOR_3GPP in cea.get_all_int("Supported-Vendor-Id")
            await cx.close()


async def test_uar_first_then_subsequent_registration(tmp_path: Path) -> None:
    with subscriber_store(tmp_path / "db", ALICE) as subs:
        async with running(subs, scscf_names=(SCSCF,), scscf_capabilities=("7", "9")) as hss:
            icscf = await connect(hss, ICSCF_CAPS)
            scscf = await connect(hss)
            req = uar(icscf, "alice@ims.test", "sip:alice@ims.test", UserAuthorizationType.REGISTRATION)
            req, ans = await icscf.exchange(req)
            assert_cx_answer(ans, req)
            uaa = UserAuthorizationAnswer.from_message(ans)
            assert uaa.result.experimental_result_code == X.DIAMETER_FIRST_REGISTRATION
            assert uaa.server_name is None
            assert uaa.server_capabilities is not None
            assert uaa.server_capabilities.mandatory == (7, 9)  # never empty (Kamailio drops empty ones)
            assert uaa.server_capabilities.server_names == (SCSCF,)
            # MAR from the S-CSCF stores its name (TS 29.228 §6.3.1): the 2nd REGISTER goes there.
            maa = await scscf.request(mar(scscf, "alice@ims.test", "sip:alice@ims.test"))
            assert maa.result_code == ResultCode.DIAMETER_SUCCESS
            ans = await icscf.request(uar(icscf, "alice@ims.test", "tel:+15551000"))
            uaa = UserAuthorizationAnswer.from_message(ans)
            assert uaa.result.experimental_result_code == X.DIAMETER_SUBSEQUENT_REGISTRATION
            assert uaa.server_name == SCSCF
            assert uaa.server_capabilities is None
            # De-registration UAR while only authenticated: not registered (5003).
            ans = await icscf.request(uar(icscf, "alice@ims.test", "sip:alice@ims.test", 1))
            assert experimental(ans) == X.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED
            await scscf.request(sar(scscf, "alice@ims.test", ["sip:alice@ims.test"], SAT.REGISTRATION))
            ans = await icscf.request(uar(icscf, "alice@ims.test", "sip:alice@ims.test", 1))
            assert ans.result_code == ResultCode.DIAMETER_SUCCESS
            assert ans.get_str("Server-Name") == SCSCF
            ans = await icscf.request(uar(icscf, "alice@ims.test", "sip:alice@ims.test", 2))
            assert ans.result_code == ResultCode.DIAMETER_SUCCESS
            assert ans.find("Server-Capabilities") is not None
            await icscf.close()
            await scscf.close()


async def test_uar_errors(tmp_path: Path) -> None:
    barred = SubscriberSpec(
        "carol@ims.test", ("sip:carol@ims.test",), password="x", barred=frozenset({"sip:carol@ims.test"})
    )
    roamer = SubscriberSpec(
        "dave@ims.test", ("sip:dave@ims.test",), password="x", visited_networks=("visited.net",)
    )
    with subscriber_store(tmp_path / "db", ALICE, BOB, barred, roamer) as subs:
        async with running(subs) as hss:
            cx = await connect(hss, ICSCF_CAPS)
            ans = await cx.request(uar(cx, "nobody@ims.test", "sip:nobody@ims.test"))
            assert experimental(ans) == X.DIAMETER_ERROR_USER_UNKNOWN
            assert ans.result_code is None
            ans = await cx.request(uar(cx, "alice@ims.test", "sip:bob@ims.test"))
            assert experimental(ans) == X.DIAMETER_ERROR_IDENTITIES_DONT_MATCH
            ans = await cx.request(uar(cx, "carol@ims.test", "sip:carol@ims.test"))
            assert ans.result_code == ResultCode.DIAMETER_AUTHORIZATION_REJECTED
            ans = await cx.request(uar(cx, "dave@ims.test", "sip:dave@ims.test", vni="elsewhere.net"))
            assert experimental(ans) == X.DIAMETER_ERROR_ROAMING_NOT_ALLOWED
            ans = await cx.request(uar(cx, "dave@ims.test", "sip:dave@ims.test", vni="visited.net"))
            assert experimental(ans) == X.DIAMETER_FIRST_REGISTRATION
            ans = await cx.request(uar(cx, "dave@ims.test", "sip:dave@ims.test", vni=REALM))  # home: allowed
            assert experimental(ans) == X.DIAMETER_FIRST_REGISTRATION
            await cx.close()


async def test_mar_sip_digest_for_kamailio_scheme_names(tmp_path: Path) -> None:
    sha = SubscriberSpec("erin@ims.test", ("sip:erin@ims.test",), password="pw", digest_algorithm="SHA-256")
    with subscriber_store(tmp_path / "db", ALICE, BOB, sha) as subs:
        async with running(subs, digest_qop="auth,auth-int") as hss:
            cx = await connect(hss)
            md5 = hashlib.md5(b"bob@ims.test:ims.test:bob-secret").hexdigest()
            for scheme in ("SIP Digest", "Digest-MD5", "Digest", "unknown", "Unknown", None):
                req = mar(cx, "bob@ims.test", "sip:bob@ims.test", scheme, items=3)
                req, ans = await cx.exchange(req)
                assert_cx_answer(ans, req)
                maa = MultimediaAuthAnswer.from_message(ans)
                assert maa.result.result_code == ResultCode.DIAMETER_SUCCESS, scheme
                assert (maa.user_name, maa.public_identity) == ("bob@ims.test", "sip:bob@ims.test")
                assert maa.sip_number_auth_items == 1 and len(maa.sip_auth_data_items) == 1
                item = maa.sip_auth_data_items[0]
                assert item.authentication_scheme == "SIP Digest"
                assert item.digest is not None
                assert (item.digest.realm, item.digest.qop, item.digest.ha1) == (REALM, "auth,auth-int", md5)
                assert item.digest.algorithm == "MD5"
                assert item.authenticate is None and item.authorization is None
            ans = await cx.request(mar(cx, "erin@ims.test", "sip:erin@ims.test"))
            item = MultimediaAuthAnswer.from_message(ans).sip_auth_data_items[0]
            assert item.digest is not None and item.digest.algorithm == "SHA-256"
            assert item.digest.ha1 == hashlib.sha256(b"erin@ims.test:ims.test:pw").hexdigest()
            # Bob has no AKA credentials; NASS-Bundled is not supported at all (5006).
            for scheme in ("Digest-AKAv1-MD5", "NASS-Bundled"):
                ans = await cx.request(mar(cx, "bob@ims.test", "sip:bob@ims.test", scheme))
                assert experimental(ans) == X.DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED
            ans = await cx.request(mar(cx, "bob@ims.test", "sip:alice@ims.test"))
            assert experimental(ans) == X.DIAMETER_ERROR_IDENTITIES_DONT_MATCH
            ans = await cx.request(mar(cx, "zed@ims.test", "sip:bob@ims.test"))
            assert experimental(ans) == X.DIAMETER_ERROR_USER_UNKNOWN
            await cx.close()


async def test_mar_unknown_scheme_prefers_configured_choice(tmp_path: Path) -> None:
    with subscriber_store(tmp_path / "db", ALICE) as subs:
        for choice, expected in (("Digest-AKAv2-MD5", "Digest-AKAv2-MD5"), ("SIP Digest", "SIP Digest")):
            async with running(subs, unknown_scheme=choice) as hss:
                cx = await connect(hss)
                ans = await cx.request(mar(cx, "alice@ims.test", "sip:alice@ims.test", "Unknown"))
                assert (
                    MultimediaAuthAnswer.from_message(ans).sip_auth_data_items[0].authentication_scheme
                    == expected
                )
                await cx.close()


async def test_kamailio_mar_bytes_with_etsi_sip_authorization(tmp_path: Path) -> None:
    """The MAR Kamailio's S-CSCF sends (ETSI-SIP-Authorization inside SIP-Auth-Data-Item), as bytes."""
    with subscriber_store(tmp_path / "db", ALICE) as subs:
        async with running(subs) as hss:
            cx = await connect(hss)
            request = Message.decode(KAMAILIO_MAR)
            ans = await cx.request(request.with_ids(0, 0))
            maa = MultimediaAuthAnswer.from_message(ans)
            assert maa.result.result_code == ResultCode.DIAMETER_SUCCESS
            (item,) = maa.sip_auth_data_items
            assert item.authentication_scheme == "Digest-AKAv1-MD5"
            assert item.authenticate is not None and len(item.authenticate) == 32
            assert item.authorization is not None and len(item.authorization) == 8
            assert (maa.user_name, maa.public_identity) == ("alice@ims.test", "sip:alice@ims.test")
            assert subs.impu("sip:alice@ims.test").scscf_name == "sip:scscf.ims.test:6060"  # type: ignore[union-attr]
            await cx.close()


async def test_mar_aka_vectors_and_sqn_per_vector(tmp_path: Path) -> None:
    with subscriber_store(tmp_path / "db", ALICE) as subs:
        async with running(subs, max_auth_items=3) as hss:
            cx = await connect(hss)
            for scheme in ("Digest-AKAv1-MD5", "Digest-AKAv2-MD5"):
                before = subs.impi("alice@ims.test").sqn  # type: ignore[union-attr]
                req = mar(cx, "alice@ims.test", "sip:alice@ims.test", scheme, items=5)
                req, ans = await cx.exchange(req)
                assert_cx_answer(ans, req)
                maa = MultimediaAuthAnswer.from_message(ans)
                assert maa.sip_number_auth_items == 3  # capped by max_auth_items
                expected = before
                for n, item in enumerate(maa.sip_auth_data_items, 1):
                    assert item.authentication_scheme == scheme and item.item_number == n
                    assert item.authenticate is not None and item.authorization is not None
                    rand, autn = item.authenticate[:16], item.authenticate[16:]
                    usim_view = verify_autn(K1, OPC1, rand, autn)  # MAC-A checks with K/OPc
                    expected = next_sqn(expected)
                    assert usim_view.sqn == expected
                    assert (usim_view.res, usim_view.ck, usim_view.ik) == (
                        item.authorization,
                        item.confidentiality_key,
                        item.integrity_key,
                    )
                assert subs.impi("alice@ims.test").sqn == expected  # type: ignore[union-attr]
            await cx.close()


async def test_resynchronisation_moves_sqn_as_ts_33_102_says(tmp_path: Path) -> None:
    with subscriber_store(tmp_path / "db", ALICE) as subs:
        async with running(subs) as hss:
            cx = await connect(hss)
            # The USIM already accepted SEQ 1000 with IND 0 (e.g. vectors of another HSS): the
            # HSS's SQN_HE (SEQ 1, IND 0) is stale for that array entry (TS 33.102 Annex C.2.2).
            usim = Usim(K1, OPC1, UsimSqnState())
            usim.sqn_state.accept(1000 << 5)
            sqn_ms = usim.sqn_state.sqn_ms
            ans = await cx.request(mar(cx, "alice@ims.test", "sip:alice@ims.test", "Digest-AKAv1-MD5"))
            item = MultimediaAuthAnswer.from_message(ans).sip_auth_data_items[0]
            assert item.authenticate is not None
            rand, autn = item.authenticate[:16], item.authenticate[16:]
            with pytest.raises(AkaSyncFailure) as failure:
                usim.authenticate(rand, autn)
            sqn_he = subs.impi("alice@ims.test").sqn  # type: ignore[union-attr]
            # Kamailio's resync MAR: SIP-Authorization = RAND || AUTS (TS 29.229 §6.3.10).
            ans = await cx.request(
                mar(
                    cx,
                    "alice@ims.test",
                    "sip:alice@ims.test",
                    "Digest-AKAv1-MD5",
                    authorization=rand + failure.value.auts,
                )
            )
            maa = MultimediaAuthAnswer.from_message(ans)
            assert maa.result.result_code == ResultCode.DIAMETER_SUCCESS
            fresh = maa.sip_auth_data_items[0]
            assert fresh.authenticate is not None
            # TS 33.102 §6.3.5: SQN_HE := SQN_MS (the next SQN from SQN_HE would not be accepted),
            # then the new vector uses the next SQN after it; the USIM accepts it.
            reset = resync_sqn(sqn_he, sqn_ms)
            assert reset == sqn_ms
            result = usim.authenticate(fresh.authenticate[:16], fresh.authenticate[16:])
            assert result.sqn == next_sqn(sqn_ms)
            assert split_sqn(result.sqn)[0] == 1001
            assert subs.impi("alice@ims.test").sqn == next_sqn(sqn_ms)  # type: ignore[union-attr]
            assert result.res == fresh.authorization
            await cx.close()


async def test_resynchronisation_keeps_sqn_when_already_ahead_and_refuses_bad_auts(tmp_path: Path) -> None:
    spec = SubscriberSpec("frank@ims.test", ("sip:frank@ims.test",), k=K1, opc=OPC1, sqn=5000 << 5)
    with subscriber_store(tmp_path / "db", spec) as subs:
        async with running(subs) as hss:
            cx = await connect(hss)
            rand = bytes(range(16))
            # USIM at SEQ 4000: the HSS's next SQN (SEQ 5001) would be accepted, so SQN_HE stays.
            auts = generate_auts(K1, OPC1, rand, 4000 << 5)
            ans = await cx.request(
                mar(cx, "frank@ims.test", "sip:frank@ims.test", "Digest-AKAv1-MD5", authorization=rand + auts)
            )
            item = MultimediaAuthAnswer.from_message(ans).sip_auth_data_items[0]
            assert item.authenticate is not None
            assert verify_autn(K1, OPC1, item.authenticate[:16], item.authenticate[16:]).sqn == next_sqn(
                5000 << 5
            )
            # A tampered MAC-S: refused (TS 33.102 §6.3.5), SQN unchanged, connection fine.
            before = subs.impi("frank@ims.test").sqn  # type: ignore[union-attr]
            bad = auts[:-1] + bytes([auts[-1] ^ 1])
            ans = await cx.request(
                mar(cx, "frank@ims.test", "sip:frank@ims.test", "Digest-AKAv1-MD5", authorization=rand + bad)
            )
            assert ans.result_code == ResultCode.DIAMETER_AUTHORIZATION_REJECTED
            assert subs.impi("frank@ims.test").sqn == before  # type: ignore[union-attr]
            # A SIP-Authorization that is not RAND||AUTS: 5004 with the item as Failed-AVP.
            ans = await cx.request(
                mar(cx, "frank@ims.test", "sip:frank@ims.test", "Digest-AKAv1-MD5", authorization=b"short")
            )
            assert ans.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE
            failed = ans.require_group("Failed-AVP")
            assert failed.find("SIP-Auth-Data-Item") is not None
            ans = await cx.request(mar(cx, "frank@ims.test", "sip:frank@ims.test", "Digest-AKAv1-MD5"))
            assert ans.result_code == ResultCode.DIAMETER_SUCCESS
            await cx.close()


async def test_sar_registration_cycle_and_user_data(tmp_path: Path) -> None:
    with subscriber_store(tmp_path / "db", ALICE, BOB) as subs:
        async with running(subs) as hss:
            cx = await connect(hss)
            req = sar(cx, "alice@ims.test", ["sip:alice@ims.test"], SAT.REGISTRATION)
            req, ans = await cx.exchange(req)
            assert_cx_answer(ans, req)
            saa = ServerAssignmentAnswer.from_message(ans)
            assert saa.result.result_code == ResultCode.DIAMETER_SUCCESS
            assert saa.user_name == "alice@ims.test"
            assert saa.user_data is not None
            profile = ImsSubscription.from_xml(saa.user_data)
            assert profile.private_id == "alice@ims.test"
            assert profile.identities == ("sip:alice@ims.test", "tel:+15551000")  # the implicit set
            for impu in ("sip:alice@ims.test", "tel:+15551000"):
                rec = subs.impu(impu)
                assert rec is not None and rec.reg_state is RegState.REGISTERED
                assert (rec.scscf_name, rec.scscf_host, rec.scscf_realm) == (SCSCF, SCSCF_HOST, REALM)
            # Re-registration with the data already available: no User-Data.
            ans = await cx.request(
                sar(
                    cx,
                    "alice@ims.test",
                    ["sip:alice@ims.test"],
                    SAT.RE_REGISTRATION,
                    user_data_already_available=UserDataAlreadyAvailable.USER_DATA_ALREADY_AVAILABLE,
                )
            )
            assert ans.result_code == ResultCode.DIAMETER_SUCCESS and ans.find("User-Data") is None
            # Another S-CSCF may not take a registered user (TS 29.228 §6.1.2.1).
            other = sar(
                cx, "alice@ims.test", ["sip:alice@ims.test"], SAT.REGISTRATION, server_name="sip:other:6060"
            )
            assert experimental(await cx.request(other)) == X.DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED
            nassign = sar(
                cx, "alice@ims.test", ["sip:alice@ims.test"], SAT.NO_ASSIGNMENT, server_name="sip:other:6060"
            )
            assert (await cx.request(nassign)).result_code == ResultCode.DIAMETER_UNABLE_TO_COMPLY
            ans = await cx.request(sar(cx, "alice@ims.test", ["sip:alice@ims.test"], SAT.NO_ASSIGNMENT))
            assert ans.result_code == ResultCode.DIAMETER_SUCCESS and ans.find("User-Data") is not None
            # User de-registration: every identity of the set is not registered, no S-CSCF.
            ans = await cx.request(sar(cx, "alice@ims.test", ["tel:+15551000"], SAT.USER_DEREGISTRATION))
            assert ans.result_code == ResultCode.DIAMETER_SUCCESS and ans.find("User-Data") is None
            for impu in ("sip:alice@ims.test", "tel:+15551000"):
                rec = subs.impu(impu)
                assert rec is not None and rec.reg_state is RegState.NOT_REGISTERED and rec.scscf_name is None
            # Errors: unknown identity, IMPI/IMPU mismatch, registration without User-Name.
            ans = await cx.request(sar(cx, "alice@ims.test", ["sip:nobody@ims.test"], SAT.REGISTRATION))
            assert experimental(ans) == X.DIAMETER_ERROR_USER_UNKNOWN
            ans = await cx.request(sar(cx, "alice@ims.test", ["sip:bob@ims.test"], SAT.REGISTRATION))
            assert experimental(ans) == X.DIAMETER_ERROR_IDENTITIES_DONT_MATCH
            ans = await cx.request(sar(cx, None, ["sip:bob@ims.test"], SAT.REGISTRATION))
            assert ans.result_code == ResultCode.DIAMETER_MISSING_AVP
            assert ans.require_group("Failed-AVP").find("User-Name") is not None
            ans = await cx.request(sar(cx, "alice@ims.test", ["sip:alice@ims.test"], SAT.PGW_UPDATE))
            assert experimental(ans) == X.DIAMETER_ERROR_IN_ASSIGNMENT_TYPE
            await cx.close()


async def test_sar_unregistered_user_store_server_name_and_auth_failure(tmp_path: Path) -> None:
    with subscriber_store(tmp_path / "db", ALICE, BOB) as subs:
        async with running(subs) as hss:
            cx = await connect(hss)
            # Terminating call to an unregistered user: unregistered state with this S-CSCF.
            ans = await cx.request(sar(cx, None, ["sip:bob@ims.test"], SAT.UNREGISTERED_USER))
            assert ans.result_code == ResultCode.DIAMETER_SUCCESS and ans.find("User-Data") is not None
            assert subs.impu("sip:bob@ims.test").reg_state is RegState.UNREGISTERED  # type: ignore[union-attr]
            ans = await cx.request(lir(cx, "sip:bob@ims.test"))
            assert ans.result_code == ResultCode.DIAMETER_SUCCESS and ans.get_str("Server-Name") == SCSCF
            # Then it registers: registered.
            await cx.request(sar(cx, "bob@ims.test", ["sip:bob@ims.test"], SAT.REGISTRATION))
            assert subs.impu("sip:bob@ims.test").reg_state is RegState.REGISTERED  # type: ignore[union-attr]
            # Timeout de-registration keeping the name: UAR then answers SUBSEQUENT with it.
            ans = await cx.request(
                sar(cx, "bob@ims.test", ["sip:bob@ims.test"], SAT.TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME)
            )
            assert ans.result_code == ResultCode.DIAMETER_SUCCESS
            rec = subs.impu("sip:bob@ims.test")
            assert rec is not None and rec.reg_state is RegState.NOT_REGISTERED and rec.scscf_name == SCSCF
            ans = await cx.request(uar(cx, "bob@ims.test", "sip:bob@ims.test"))
            assert (
                experimental(ans) == X.DIAMETER_SUBSEQUENT_REGISTRATION
                and ans.get_str("Server-Name") == SCSCF
            )
            # Authentication failure of an unregistered user: the name MAR stored is removed.
            await cx.request(mar(cx, "alice@ims.test", "sip:alice@ims.test"))
            assert subs.impu("sip:alice@ims.test").scscf_name == SCSCF  # type: ignore[union-attr]
            ans = await cx.request(
                sar(cx, "alice@ims.test", ["sip:alice@ims.test"], SAT.AUTHENTICATION_FAILURE)
            )
            assert ans.result_code == ResultCode.DIAMETER_SUCCESS
            assert subs.impu("sip:alice@ims.test").scscf_name is None  # type: ignore[union-attr]
        async with running(subs, keep_server_name=False) as hss:
            cx = await connect(hss)
            await cx.request(sar(cx, "bob@ims.test", ["sip:bob@ims.test"], SAT.REGISTRATION))
            ans = await cx.request(
                sar(cx, "bob@ims.test", ["sip:bob@ims.test"], SAT.USER_DEREGISTRATION_STORE_SERVER_NAME)
            )
            assert experimental(ans) == X.DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED
            assert subs.impu("sip:bob@ims.test").scscf_name is None  # type: ignore[union-attr]
            await cx.close()


async def test_lir_states(tmp_path: Path) -> None:
    unreg = SubscriberSpec(
        "gina@ims.test", ("sip:gina@ims.test",), password="x", unreg_services=frozenset({"sip:gina@ims.test"})
    )
    with subscriber_store(tmp_path / "db", ALICE, BOB, unreg) as subs:
        async with running(subs) as hss:
            cx = await connect(hss, ICSCF_CAPS)
            scscf = await connect(hss)
            req = lir(cx, "sip:nobody@ims.test")
            req, ans = await cx.exchange(req)
            assert_cx_answer(ans, req)
            assert experimental(ans) == X.DIAMETER_ERROR_USER_UNKNOWN
            assert (
                experimental(await cx.request(lir(cx, "sip:bob@ims.test")))
                == X.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED
            )
            lia = LocationInfoAnswer.from_message(await cx.request(lir(cx, "sip:gina@ims.test")))
            assert lia.result.experimental_result_code == X.DIAMETER_UNREGISTERED_SERVICE
            assert lia.server_name is None and lia.server_capabilities is not None
            lia = LocationInfoAnswer.from_message(
                await cx.request(lir(cx, "sip:bob@ims.test", originating_request=True))
            )
            assert lia.result.experimental_result_code == X.DIAMETER_UNREGISTERED_SERVICE
            await scscf.request(sar(scscf, "alice@ims.test", ["sip:alice@ims.test"], SAT.REGISTRATION))
            lia = LocationInfoAnswer.from_message(
                await cx.request(lir(cx, "tel:+15551000"))
            )  # via implicit set
            assert lia.result.result_code == ResultCode.DIAMETER_SUCCESS
            assert lia.server_name == SCSCF and lia.server_capabilities is None
            await scscf.request(
                sar(scscf, "gina@ims.test", ["sip:gina@ims.test"], SAT.USER_DEREGISTRATION_STORE_SERVER_NAME)
            )
            lia = LocationInfoAnswer.from_message(await cx.request(lir(cx, "sip:gina@ims.test")))
            assert lia.result.experimental_result_code == X.DIAMETER_UNREGISTERED_SERVICE
            assert lia.server_name == SCSCF
            lia = LocationInfoAnswer.from_message(
                await cx.request(lir(cx, "sip:alice@ims.test", user_authorization_type=2))
            )
            assert (
                lia.result.result_code == ResultCode.DIAMETER_SUCCESS and lia.server_capabilities is not None
            )
            await cx.close()
            await scscf.close()


async def test_wildcarded_impu_lir_and_sar(tmp_path: Path) -> None:
    pool = SubscriberSpec(
        "pool@ims.test",
        ("sip:pool@ims.test", "sip:user-!\\d{4}!@ims.test"),
        password="p",
        implicit_sets=(("sip:user-!\\d{4}!@ims.test",),),
    )
    with subscriber_store(tmp_path / "db", pool, BOB) as subs:
        async with running(subs) as hss:
            cx = await connect(hss)
            ans = await cx.request(lir(cx, "sip:user-1234@ims.test"))
            assert experimental(ans) == X.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED
            assert (
                experimental(await cx.request(lir(cx, "sip:user-12345@ims.test")))
                == X.DIAMETER_ERROR_USER_UNKNOWN
            )
            req = sar(cx, "pool@ims.test", ["sip:user-0042@ims.test"], SAT.REGISTRATION)
            saa = ServerAssignmentAnswer.from_message(await cx.request(req))
            assert saa.result.result_code == ResultCode.DIAMETER_SUCCESS
            assert saa.wildcarded_public_identity == "sip:user-!\\d{4}!@ims.test"
            assert saa.user_data is not None
            profile = ImsSubscription.from_xml(saa.user_data)
            (sp,) = profile.service_profiles
            assert [(p.identity, p.identity_type, p.wildcarded_impu) for p in sp.public_identities] == [
                ("sip:user-0042@ims.test", 3, "sip:user-!\\d{4}!@ims.test"),
                ("sip:user-!\\d{4}!@ims.test", 4, "sip:user-!\\d{4}!@ims.test"),
            ]
            lia = LocationInfoAnswer.from_message(await cx.request(lir(cx, "sip:user-9999@ims.test")))
            assert lia.result.result_code == ResultCode.DIAMETER_SUCCESS
            assert lia.server_name == SCSCF
            assert lia.wildcarded_public_identity == "sip:user-!\\d{4}!@ims.test"
            # The distinct identity of the same subscriber is in another implicit set: not registered.
            assert (
                experimental(await cx.request(lir(cx, "sip:pool@ims.test")))
                == X.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED
            )
            await cx.close()


async def test_several_peers_and_restart_keeps_state(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with subscriber_store(db, ALICE, BOB) as subs:
        async with running(subs) as hss:
            clients = [await connect(hss) for _ in range(3)]
            assert len(hss.peers()) == 3
            answers = [
                c.send(mar(c, "alice@ims.test", "sip:alice@ims.test", "Digest-AKAv1-MD5")) for c in clients
            ]
            for fut in answers:
                assert (await fut).result_code == ResultCode.DIAMETER_SUCCESS
            await clients[0].request(
                sar(clients[0], "alice@ims.test", ["sip:alice@ims.test"], SAT.REGISTRATION)
            )
            sqn = subs.impi("alice@ims.test").sqn  # type: ignore[union-attr]
            for c in clients:
                await c.close()
    assert sqn == next_sqn(next_sqn(next_sqn(32)))
    # A new process on the same file: registration state and SQN survive.
    with subscriber_store(db) as subs:
        async with running(subs) as hss:
            cx = await connect(hss, ICSCF_CAPS)
            ans = await cx.request(lir(cx, "tel:+15551000"))
            assert ans.result_code == ResultCode.DIAMETER_SUCCESS and ans.get_str("Server-Name") == SCSCF
            scscf = await connect(hss)
            ans = await scscf.request(mar(scscf, "alice@ims.test", "sip:alice@ims.test", "Digest-AKAv1-MD5"))
            item = MultimediaAuthAnswer.from_message(ans).sip_auth_data_items[0]
            assert item.authenticate is not None
            assert verify_autn(K1, OPC1, item.authenticate[:16], item.authenticate[16:]).sqn == next_sqn(sqn)
            await cx.close()
            await scscf.close()


async def test_unknown_avp_without_m_bit_is_ignored(tmp_path: Path) -> None:
    with subscriber_store(tmp_path / "db", BOB) as subs:
        async with running(subs) as hss:
            cx = await connect(hss)
            extra = make_avp("Vendor-Id", 1)  # a known AVP where the CCF allows *[AVP]
            req = uar(cx, "bob@ims.test", "sip:bob@ims.test", extra=[extra])
            assert experimental(await cx.request(req)) == X.DIAMETER_FIRST_REGISTRATION
            await cx.close()
