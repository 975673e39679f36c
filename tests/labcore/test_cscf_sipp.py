"""The lab core end to end with SIPp (Debian ``sip-tester``) as UE + P-CSCF.

SIPp computes the Digest and AKA responses itself (``-au``/``-ap`` and the
``[authentication ... aka_K= aka_OP= aka_AMF=]`` keyword), so these check the
I-CSCF/S-CSCF/HSS against an independent implementation of TS 24.229 registration
and RFC 3261 calls. Each SIPp run is one call, bounded by ``-timeout``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from labcore_harness import AKA_AMF, AKA_K, AKA_OP, PASSWORDS, REALM, TRUSTED, UNTRUSTED, running_core

from webims.labcore import LabCore
from webims.labcore.hss import RegState
from webims.testing.ports import free_port
from webims.testing.sipp import (
    Sipp,
    SippResult,
    call_uac_scenario,
    call_uas_scenario,
    register_uac,
    require_sipp,
    sipp_safe_rands,
)


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[LabCore]:
    require_sipp()
    async with running_core(tmp_path) as lab:
        yield lab


def check(result: SippResult) -> None:
    assert result.ok, result.report()


def reg_state(core: LabCore, impu: str) -> RegState | None:
    assert core.subscribers is not None
    rec = core.subscribers.impu(impu)
    return rec.reg_state if rec is not None else None


async def register(
    core: LabCore,
    workdir: Path,
    user: str,
    *,
    password: str | None = None,
    local_ip: str = "127.0.0.1",
    **options: Any,
) -> SippResult:
    secret = PASSWORDS.get(user, "") if password is None else password
    name = f"register-{user}-{local_ip}"
    return await register_uac(
        workdir, core.icscf_address, user, secret, realm=REALM, name=name, local_ip=local_ip, **options
    ).run_async()


async def test_md5_digest_registration_and_deregistration(core: LabCore, tmp_path: Path) -> None:
    check(await register(core, tmp_path, "alice"))
    assert reg_state(core, "sip:alice@ims.test") is RegState.NOT_REGISTERED  # de-registered at the end
    assert core.scscf.registration("sip:alice@ims.test") is None
    assert core.scscf.registrar.registrations_completed == 2  # registration + de-registration


async def test_md5_registration_stays_registered(core: LabCore, tmp_path: Path) -> None:
    check(await register(core, tmp_path, "bob", deregister=False))
    reg = core.scscf.registration("sip:bob@ims.test")
    assert reg is not None and len(reg.bindings) == 1
    binding = next(iter(reg.bindings.values()))
    assert binding.path and "term@" in binding.path[0]
    assert reg_state(core, "sip:bob@ims.test") is RegState.REGISTERED
    assert "tel:+15552000" in reg.identities  # implicit registration set from User-Data


async def test_akav1_md5_registration_computed_by_sipp(core: LabCore, tmp_path: Path) -> None:
    auth = (
        f"[authentication username=carol@{REALM} aka_K={AKA_K.decode()} aka_OP={AKA_OP.decode()} "
        f"aka_AMF={AKA_AMF.decode()}]"
    )
    assert core.hss is not None
    core.hss.cx.rand_source = sipp_safe_rands(AKA_K, AKA_OP)  # RANDs SIPp answers right
    check(await register(core, tmp_path, "carol", auth=auth, deregister=False))
    assert reg_state(core, "sip:carol@ims.test") is RegState.REGISTERED


async def test_wrong_password_is_refused_with_403(core: LabCore, tmp_path: Path) -> None:
    check(await register(core, tmp_path, "dave", password="not-the-password", final_status=403))
    assert core.scscf.registration("sip:dave@ims.test") is None
    assert reg_state(core, "sip:dave@ims.test") is RegState.NOT_REGISTERED


async def test_unknown_user_is_refused_with_403_by_the_icscf(core: LabCore, tmp_path: Path) -> None:
    # TS 24.229 §5.3.1.2: a negative UAA (DIAMETER_ERROR_USER_UNKNOWN) gives 403 (Forbidden)
    check(await register(core, tmp_path, "nobody", password="x", first_status=403))


async def test_trusted_node_authentication_from_the_trusted_address(core: LabCore, tmp_path: Path) -> None:
    check(
        await register(
            core, tmp_path, "erin", local_ip=TRUSTED, integrity_protected="auth-done", deregister=False
        )
    )
    assert reg_state(core, "sip:erin@ims.test") is RegState.REGISTERED
    # no challenge was made: the HSS never saw a MAR for erin (the S-CSCF name was stored by SAR)
    assert core.scscf.registration("sip:erin@ims.test") is not None


async def test_trusted_node_authentication_from_another_address_is_challenged(
    core: LabCore, tmp_path: Path
) -> None:
    check(
        await register(
            core, tmp_path, "frank", local_ip=UNTRUSTED, integrity_protected="auth-done", final_status=401
        )
    )
    assert core.scscf.registration("sip:frank@ims.test") is None
    assert reg_state(core, "sip:frank@ims.test") is RegState.NOT_REGISTERED


async def _uas(core: LabCore, workdir: Path, user: str) -> Sipp:
    port = free_port()
    check(await register(core, workdir, user, local_port=port, deregister=False))
    uas = Sipp(
        workdir,
        f"uas-{user}",
        call_uas_scenario(),
        core.scscf_address,
        service=user,
        keys={"realm": REALM},
        local_port=port,
        wait_bound=True,
    )
    uas.start()
    return uas


def caller(core: LabCore, workdir: Path, user: str, callee: str, port: int, final_status: int = 200) -> Sipp:
    """A SIPp UAC calling ``callee`` as ``user`` on the S-CSCF's Service-Route, from ``port``:
    where its registration (as UE + P-CSCF, with Path) came from, which makes it a P-CSCF
    whose P-Asserted-Identity the S-CSCF believes (RFC 3325 §5)."""
    route = f"<{core.scscf.service_route}>"
    return Sipp(
        workdir, f"uac-{user}", call_uac_scenario(final_status=final_status), core.scscf_address,
        service=user, keys={"realm": REALM, "callee": callee, "route": route}, local_port=port,
    )  # fmt: skip


async def test_call_a_to_b_with_180_200_ack_bye(core: LabCore, tmp_path: Path) -> None:
    uas = await _uas(core, tmp_path, "gina")
    try:
        port = free_port()
        check(await register(core, tmp_path, "hank", local_port=port, deregister=False))
        check(await caller(core, tmp_path, "hank", "gina", port).run_async())
        check(await uas.finish_async())
    finally:
        uas.stop()


async def test_call_to_a_known_but_unregistered_user_gets_480(core: LabCore, tmp_path: Path) -> None:
    port = free_port()
    check(await register(core, tmp_path, "ivan", local_port=port, deregister=False))
    check(await caller(core, tmp_path, "ivan", "olga", port, 480).run_async())
    # the I-CSCF's LIR found olga not registered (DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)
    assert reg_state(core, "sip:olga@ims.test") is RegState.NOT_REGISTERED


async def test_call_to_an_unknown_user_gets_404(core: LabCore, tmp_path: Path) -> None:
    port = free_port()
    check(await register(core, tmp_path, "judy", local_port=port, deregister=False))
    check(await caller(core, tmp_path, "judy", "nobody", port, 404).run_async())
