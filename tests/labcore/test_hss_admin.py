"""HSS-initiated Cx: RTR (TS 29.228 §6.1.3) and PPR (§6.2.2) on an administrator's command,
through the admin HTTP endpoint and the ``webims subscriber deregister|push-profile`` CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hss_harness import ALICE, BOB, REALM, SCSCF, SCSCF_HOST, connect, running, sar, subscriber_store

from webims.config import ConfigError, load_config
from webims.diameter import (
    VENDOR_3GPP,
    CommandCode,
    Message,
    PushProfileRequest,
    ReasonCode,
    RegistrationTerminationRequest,
    ResultCode,
    ServerAssignmentType,
    build_ppa,
    build_rta,
)
from webims.labcore.hss import AdminServer, CxClient, HssServer, ImsSubscription, RegState, SubscriberStore

TOKEN = "s3cret-admin-token"


@dataclass
class Scscf:
    """A test S-CSCF: answers RTR/PPR with ``result`` and records them."""

    result: int = ResultCode.DIAMETER_SUCCESS
    received: list[Message] = field(default_factory=list)

    def handle(self, request: Message) -> Message:
        self.received.append(request)
        if request.command_code == CommandCode.REGISTRATION_TERMINATION:
            return build_rta(request, result=self.result, origin_host=SCSCF_HOST, origin_realm=REALM)
        return build_ppa(request, result=self.result, origin_host=SCSCF_HOST, origin_realm=REALM)


@dataclass
class Setup:
    hss: HssServer
    admin: AdminServer
    subs: SubscriberStore
    scscf: Scscf
    cx: CxClient


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    with subscriber_store(tmp_path / "db", ALICE, BOB) as subs:
        async with running(subs) as hss:
            admin = AdminServer(hss, "127.0.0.1", 0, TOKEN)
            await admin.start()
            scscf = Scscf()
            cx = await connect(hss, on_request=scscf.handle)
            await cx.request(
                sar(cx, "alice@ims.test", ["sip:alice@ims.test"], ServerAssignmentType.REGISTRATION)
            )
            try:
                yield Setup(hss, admin, subs, scscf, cx)
            finally:
                await cx.close()
                await admin.stop()


async def post(setup: Setup, path: str, body: Any, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(setup.admin.url + path, data=json.dumps(body), headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def test_deregister_sends_rtr_and_clears_state(setup: Setup) -> None:
    status, answer = await post(
        setup, "/hss/deregister", {"impi": "alice@ims.test", "reason": "server-change", "info": "maintenance"}
    )
    assert status == 200, answer
    assert answer["success"] is True and answer["result_code"] == 2001
    assert answer["destination_host"] == SCSCF_HOST
    (rtr,) = setup.scscf.received
    assert rtr.command_code == CommandCode.REGISTRATION_TERMINATION and rtr.is_request and rtr.is_proxiable
    assert rtr.get_str("Destination-Host") == SCSCF_HOST and rtr.get_str("Destination-Realm") == REALM
    assert rtr.origin_host == "hss.ims.test"
    vsai = rtr.require_group("Vendor-Specific-Application-Id")
    assert (vsai.require_int("Vendor-Id"), vsai.require_int("Auth-Application-Id")) == (VENDOR_3GPP, 16777216)
    view = RegistrationTerminationRequest.from_message(rtr)
    assert view.user_name == "alice@ims.test"
    # Every assigned identity of the IMPI, listed (Kamailio ignores an RTR with only User-Name).
    assert view.public_identities == ("sip:alice@ims.test", "tel:+15551000")
    assert view.deregistration_reason.reason_code == ReasonCode.SERVER_CHANGE
    assert view.deregistration_reason.reason_info == "maintenance"
    for impu in ("sip:alice@ims.test", "tel:+15551000"):
        rec = setup.subs.impu(impu)
        assert rec is not None and rec.reg_state is RegState.NOT_REGISTERED and rec.scscf_name is None


async def test_deregister_selected_identities(setup: Setup) -> None:
    status, answer = await post(
        setup, "/hss/deregister", {"impi": "alice@ims.test", "impus": ["tel:+15551000"]}
    )
    assert status == 200 and answer["impus"] == ["sip:alice@ims.test", "tel:+15551000"]  # the implicit set
    view = RegistrationTerminationRequest.from_message(setup.scscf.received[0])
    assert view.public_identities == ("sip:alice@ims.test", "tel:+15551000")
    assert view.deregistration_reason.reason_code == ReasonCode.PERMANENT_TERMINATION


async def test_rta_failure_keeps_registration(setup: Setup) -> None:
    setup.scscf.result = ResultCode.DIAMETER_UNABLE_TO_COMPLY
    status, answer = await post(setup, "/hss/deregister", {"impi": "alice@ims.test"})
    assert status == 200 and answer["success"] is False and answer["result_code"] == 5012
    assert setup.subs.impu("sip:alice@ims.test").reg_state is RegState.REGISTERED  # type: ignore[union-attr]


async def test_push_profile_sends_ppr_with_user_data(setup: Setup) -> None:
    from webims.labcore.hss import SubscriberChanges

    setup.subs.update("alice@ims.test", SubscriberChanges(barred=("tel:+15551000",)))
    status, answer = await post(setup, "/hss/push-profile", {"impi": "alice@ims.test"})
    assert status == 200 and answer["success"] is True and answer["command"] == "PPR"
    (ppr,) = setup.scscf.received
    assert ppr.command_code == CommandCode.PUSH_PROFILE and ppr.get_str("Destination-Host") == SCSCF_HOST
    view = PushProfileRequest.from_message(ppr)
    assert view.user_name == "alice@ims.test" and view.user_data is not None
    (sp,) = ImsSubscription.from_xml(view.user_data).service_profiles
    assert [(p.identity, p.barred) for p in sp.public_identities] == [
        ("sip:alice@ims.test", False),
        ("tel:+15551000", True),
    ]


async def test_admin_errors(setup: Setup) -> None:
    assert (await post(setup, "/hss/deregister", {"impi": "alice@ims.test"}, token="wrong"))[0] == 401
    assert (await post(setup, "/hss/deregister", {"impi": "alice@ims.test"}, token=None))[0] == 401
    assert (await post(setup, "/hss/deregister", {"impi": "nobody@ims.test"}))[0] == 404
    assert (await post(setup, "/hss/deregister", {"impi": "bob@ims.test"}))[0] == 409  # no S-CSCF
    assert (await post(setup, "/hss/push-profile", {"impi": "bob@ims.test"}))[0] == 409
    assert (await post(setup, "/hss/deregister", {"impi": "alice@ims.test", "reason": "bored"}))[0] == 400
    assert (await post(setup, "/hss/deregister", ["alice"]))[0] == 400
    async with (
        aiohttp.ClientSession() as http,
        http.get(setup.admin.url + "/hss/peers", headers={"Authorization": f"Bearer {TOKEN}"}) as resp,
    ):
        peers = (await resp.json())["peers"]
    assert [p["origin_host"] for p in peers] == [SCSCF_HOST]
    await setup.cx.close()  # the S-CSCF goes away: 504
    await asyncio.sleep(0.05)
    assert (await post(setup, "/hss/deregister", {"impi": "alice@ims.test"}))[0] == 504
    assert setup.subs.impu("sip:alice@ims.test").scscf_name == SCSCF  # type: ignore[union-attr]


async def test_cli_deregister_and_push_profile(setup: Setup, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBIMS_")}
    env.update(
        WEBIMS_STATE__DIR=str(tmp_path / "state"),
        WEBIMS_HSS__ADMIN_PORT=str(setup.admin.port),
        WEBIMS_HSS__ADMIN_TOKEN=TOKEN,
    )

    async def cli(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "webims",
            "subscriber",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    rc, out, err = await cli("push-profile", "alice@ims.test")
    assert rc == 0, err
    assert "PPR to scscf.ims.test: result 2001" in out
    rc, out, err = await cli("deregister", "--impi", "alice@ims.test", "--reason", "remove-s-cscf")
    assert rc == 0, err
    assert "RTR to scscf.ims.test: result 2001" in out
    rtr = RegistrationTerminationRequest.from_message(setup.scscf.received[-1])
    assert rtr.deregistration_reason.reason_code == ReasonCode.REMOVE_S_CSCF
    rc, out, err = await cli("deregister", "alice@ims.test")
    assert rc == 1 and "no S-CSCF assigned" in err
    env["WEBIMS_HSS__ADMIN_TOKEN"] = "wrong"
    rc, out, err = await cli("deregister", "alice@ims.test")
    assert rc == 1 and "bearer token" in err


def test_admin_token_required_off_loopback() -> None:
    with pytest.raises(ConfigError, match="admin_token"):
        load_config(None, environ={"WEBIMS_HSS__ADMIN_HOST": "192.0.2.1"})
    cfg = load_config(None, environ={"WEBIMS_HSS__ADMIN_HOST": "192.0.2.1", "WEBIMS_HSS__ADMIN_TOKEN": "t"})
    assert cfg["hss"].admin_token == "t"
    with pytest.raises(ConfigError, match="scscf_capabilities"):
        load_config(None, environ={"WEBIMS_HSS__SCSCF_CAPABILITIES": "x"})
