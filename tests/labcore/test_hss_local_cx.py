"""LocalCx (the HSS's typed Cx for CSCFs in its process) answers as its Diameter answers read.

Two HSSs on two identical subscriber stores get the same sequence of UAR/MAR/SAR: one
as Diameter messages (``CxHandlers.handle``, the answer read with ``cx_parse``), the other
through :class:`LocalCx`. Every answer, and the registration state left in the stores,
must be the same (TS 29.228 §6.1.1, §6.1.2, §6.3).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hss_harness import ALICE, BOB, REALM, SCSCF, SCSCF_HOST, config, subscriber_store

from webims.diameter import (
    ExperimentalResultCode,
    Message,
    MultimediaAuthAnswer,
    ResultCode,
    ServerAssignmentAnswer,
    ServerAssignmentType,
    SipAuthDataItem,
    UserAuthorizationAnswer,
    UserAuthorizationType,
    UserDataAlreadyAvailable,
    build_mar,
    build_sar,
    build_uar,
)
from webims.labcore.hss import CxHandlers, ImsSubscription, SubscriberSpec, SubscriberStore
from webims.labcore.hss.local_cx import LocalCx

SAT = ServerAssignmentType
UAT = UserAuthorizationType
X = ExperimentalResultCode
SESSION = "scscf.ims.test;1;1"
ORIGIN = (SCSCF_HOST, REALM)
OTHER_SCSCF = "sip:scscf2.ims.test:6060"

CAROL = SubscriberSpec(
    "carol@ims.test", ("sip:carol@ims.test",), password="x", barred=frozenset({"sip:carol@ims.test"})
)
IFC = (
    "<InitialFilterCriteria><Priority>0</Priority><ApplicationServer>"
    "<ServerName>sip:as.ims.test</ServerName></ApplicationServer></InitialFilterCriteria>"
)
DAVE = SubscriberSpec(
    "dave@ims.test",
    ("sip:dave@ims.test", "tel:+15552000"),
    password="d",
    ifc_xml=IFC,
    display_names=(("sip:dave@ims.test", "Dave D"),),
)
POOL = SubscriberSpec(
    "pool@ims.test",
    ("sip:pool@ims.test", "sip:user-!\\d{4}!@ims.test"),
    password="p",
    implicit_sets=(("sip:user-!\\d{4}!@ims.test",),),
)


def _rand() -> Callable[[], bytes]:
    counter = itertools.count(1)
    return lambda: next(counter).to_bytes(16, "big")


class Pair:
    """The same HSS twice: ``wire`` answers Diameter messages, ``local`` through LocalCx."""

    def __init__(self, wire: SubscriberStore, local: SubscriberStore) -> None:
        self.wire = CxHandlers(wire, config(), rand_source=_rand())
        self.local = LocalCx(CxHandlers(local, config(), rand_source=_rand()))
        self.read: ImsSubscription | None = None

    def _routing(self) -> dict[str, Any]:
        return {
            "session_id": SESSION,
            "origin_host": ORIGIN[0],
            "origin_realm": ORIGIN[1],
            "destination_realm": REALM,
        }

    def _answer(self, request: Message) -> Message:
        answer = self.wire.handle(request)
        assert answer is not None
        return answer

    async def uar(
        self, impi: str, impu: str, uat: int = UAT.REGISTRATION, vni: str = REALM
    ) -> UserAuthorizationAnswer:
        request = build_uar(
            user_name=impi, public_identity=impu, visited_network_identifier=vni, user_authorization_type=uat,
            **self._routing(),
        )  # fmt: skip
        wire = UserAuthorizationAnswer.from_message(self._answer(request))
        local = await self.local.uar(SESSION, impi, impu, vni, uat)
        assert local == wire
        return local

    async def mar(
        self, impi: str, impu: str, scheme: str, authorization: bytes | None = None, count: int = 1
    ) -> MultimediaAuthAnswer:
        item = SipAuthDataItem(authentication_scheme=scheme, authorization=authorization)
        request = build_mar(
            user_name=impi, public_identity=impu, server_name=SCSCF, sip_auth_data_item=item,
            sip_number_auth_items=count, **self._routing(),
        )  # fmt: skip
        wire = MultimediaAuthAnswer.from_message(self._answer(request))
        local = await self.local.mar(SESSION, ORIGIN, SCSCF, impi, impu, item, count)
        assert local == wire
        return local

    async def sar(
        self,
        impi: str | None,
        impus: list[str],
        sat: int,
        *,
        server_name: str = SCSCF,
        available: int = UserDataAlreadyAvailable.USER_DATA_NOT_AVAILABLE,
    ) -> ServerAssignmentAnswer:
        request = build_sar(
            user_name=impi, public_identities=impus, server_name=server_name, server_assignment_type=sat,
            user_data_already_available=available, **self._routing(),
        )  # fmt: skip
        wire = ServerAssignmentAnswer.from_message(self._answer(request))
        local, read = await self.local.sar(SESSION, ORIGIN, server_name, sat, impi, impus, available)
        assert local == wire
        if read is not None:  # the User-Data as the S-CSCF would read it
            assert wire.user_data is not None and read == ImsSubscription.from_xml(wire.user_data)
        self.read = read
        return local


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    specs = (ALICE, BOB, CAROL, DAVE, POOL)
    with (
        subscriber_store(tmp_path / "wire", *specs) as wire,
        subscriber_store(tmp_path / "local", *specs) as local,
    ):
        yield Pair(wire, local)
        for impi in ("alice@ims.test", "bob@ims.test", "carol@ims.test", "dave@ims.test", "pool@ims.test"):
            rows = [wire.impus_of(impi), local.impus_of(impi)]
            states = [
                [(r.impu, r.reg_state, r.scscf_name, r.scscf_host, r.scscf_realm) for r in x] for x in rows
            ]
            assert states[0] == states[1], impi


async def test_uar_answers(pair: Pair) -> None:
    first = await pair.uar("alice@ims.test", "sip:alice@ims.test")
    assert first.result.experimental_result_code == X.DIAMETER_FIRST_REGISTRATION
    assert first.server_capabilities is not None
    unknown = await pair.uar("nobody@ims.test", "sip:nobody@ims.test")
    assert unknown.result.experimental_result_code == X.DIAMETER_ERROR_USER_UNKNOWN
    mismatch = await pair.uar("bob@ims.test", "sip:alice@ims.test")
    assert mismatch.result.experimental_result_code == X.DIAMETER_ERROR_IDENTITIES_DONT_MATCH
    barred = await pair.uar("carol@ims.test", "sip:carol@ims.test")
    assert barred.result.result_code == ResultCode.DIAMETER_AUTHORIZATION_REJECTED
    roaming = await pair.uar("bob@ims.test", "sip:bob@ims.test", vni="visited.example")
    assert roaming.result.experimental_result_code == X.DIAMETER_FIRST_REGISTRATION  # roaming allowed: "*"
    caps = await pair.uar("bob@ims.test", "sip:bob@ims.test", UAT.REGISTRATION_AND_CAPABILITIES)
    assert caps.result.result_code == ResultCode.DIAMETER_SUCCESS
    dereg = await pair.uar("bob@ims.test", "sip:bob@ims.test", UAT.DE_REGISTRATION)
    assert dereg.result.experimental_result_code == X.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED
    bad = await pair.uar("bob@ims.test", "sip:bob@ims.test", 7)
    assert bad.result.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE


async def test_mar_answers(pair: Pair) -> None:
    digest = await pair.mar("alice@ims.test", "sip:alice@ims.test", "SIP Digest")
    assert digest.result.result_code == ResultCode.DIAMETER_SUCCESS
    assert digest.sip_auth_data_items[0].digest is not None
    aka = await pair.mar("alice@ims.test", "sip:alice@ims.test", "Digest-AKAv1-MD5", count=2)
    assert [i.item_number for i in aka.sip_auth_data_items] == [1, 2]
    assert aka.sip_auth_data_items[0].authenticate is not None
    chosen = await pair.mar("alice@ims.test", "sip:alice@ims.test", "Unknown")
    assert chosen.result.result_code == ResultCode.DIAMETER_SUCCESS
    no_aka = await pair.mar("bob@ims.test", "sip:bob@ims.test", "Digest-AKAv1-MD5")
    assert no_aka.result.experimental_result_code == X.DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED
    short = await pair.mar("alice@ims.test", "sip:alice@ims.test", "Digest-AKAv1-MD5", b"\x00" * 29)
    assert short.result.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE
    mac = await pair.mar("alice@ims.test", "sip:alice@ims.test", "Digest-AKAv1-MD5", b"\x00" * 30)
    assert mac.result.result_code == ResultCode.DIAMETER_AUTHORIZATION_REJECTED  # AUTS MAC-S wrong
    unknown = await pair.mar("nobody@ims.test", "sip:nobody@ims.test", "SIP Digest")
    assert unknown.result.experimental_result_code == X.DIAMETER_ERROR_USER_UNKNOWN


async def test_sar_answers(pair: Pair) -> None:
    await pair.mar("alice@ims.test", "sip:alice@ims.test", "SIP Digest")
    reg = await pair.sar("alice@ims.test", ["sip:alice@ims.test"], SAT.REGISTRATION)
    assert reg.result.result_code == ResultCode.DIAMETER_SUCCESS and reg.user_data
    assert pair.read is not None and pair.read.identities == ("sip:alice@ims.test", "tel:+15551000")
    with_ifc = await pair.sar("dave@ims.test", ["sip:dave@ims.test"], SAT.REGISTRATION)
    assert with_ifc.user_data and pair.read is None  # an iFC is read back re-serialised: the S-CSCF reads it
    subsequent = await pair.uar("alice@ims.test", "sip:alice@ims.test")
    assert subsequent.server_name == SCSCF
    again = await pair.sar(
        "alice@ims.test", ["sip:alice@ims.test"], SAT.RE_REGISTRATION,
        available=UserDataAlreadyAvailable.USER_DATA_ALREADY_AVAILABLE,
    )  # fmt: skip
    assert again.result.result_code == ResultCode.DIAMETER_SUCCESS and again.user_data is None
    taken = await pair.sar(
        "alice@ims.test", ["sip:alice@ims.test"], SAT.REGISTRATION, server_name=OTHER_SCSCF
    )
    assert taken.result.experimental_result_code == X.DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED
    unregistered = await pair.sar("", ["sip:bob@ims.test"], SAT.UNREGISTERED_USER)
    assert (
        unregistered.result.code
        == (await pair.sar("", ["sip:bob@ims.test"], SAT.UNREGISTERED_USER)).result.code
    )
    wildcard = await pair.sar("pool@ims.test", ["sip:user-0042@ims.test"], SAT.REGISTRATION)
    assert wildcard.wildcarded_public_identity == "sip:user-!\\d{4}!@ims.test"
    assert pair.read is not None and pair.read.identities[0] == "sip:user-0042@ims.test"
    barred = await pair.sar("carol@ims.test", ["sip:carol@ims.test"], SAT.REGISTRATION)
    assert barred.result.result_code == ResultCode.DIAMETER_SUCCESS
    missing = await pair.sar(None, ["sip:alice@ims.test"], SAT.RE_REGISTRATION)
    assert missing.result.result_code == ResultCode.DIAMETER_MISSING_AVP
    bad = await pair.sar("alice@ims.test", ["sip:alice@ims.test"], 99)
    assert bad.result.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE
    dereg = await pair.sar("alice@ims.test", ["sip:alice@ims.test"], SAT.USER_DEREGISTRATION)
    assert dereg.result.result_code == ResultCode.DIAMETER_SUCCESS
    gone = await pair.uar("alice@ims.test", "sip:alice@ims.test", UAT.DE_REGISTRATION)
    assert gone.result.experimental_result_code == X.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED
    unknown = await pair.sar("nobody@ims.test", ["sip:nobody@ims.test"], SAT.REGISTRATION)
    assert unknown.result.experimental_result_code == X.DIAMETER_ERROR_USER_UNKNOWN
