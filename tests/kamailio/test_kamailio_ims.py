"""Kamailio 5.6 as I-CSCF + S-CSCF (webims.testing.kamailio) against a stand-in HSS, driven by SIPp.

These prove the harness and its configs; the interop tests of the lab HSS and the
gateway reuse the harness with the real HSS.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kamailio_env import AKA_AMF, AKA_K, AKA_OP, PASSWORDS, REALM, TRUSTED, UNTRUSTED
from kamailio_hss_standin import StandinHss, ThreadedHss

from webims.diameter import (
    CommandCode,
    DeregistrationReason,
    Message,
    ReasonCode,
    ResultCode,
    ServerAssignmentType,
    build_rtr,
)
from webims.testing.kamailio import (
    KamailioError,
    KamailioIms,
    KamailioNotInstalled,
    in_loopback_only_namespace,
    sip_options_ping,
    trusted_regex,
)
from webims.testing.ports import free_port
from webims.testing.sipp import (
    Sipp,
    SippResult,
    call_uac_scenario,
    call_uas_scenario,
    message_uac_scenario,
    message_uas_scenario,
    register_uac,
    subscribe_reg_scenario,
)

KEYS = {"realm": REALM}


def check(result: SippResult) -> None:
    assert result.ok, result.report()


def cx_for(hss: StandinHss, user: str, code: int) -> list[Message]:
    """Cx requests of one command about ``user`` (by Public-Identity or User-Name)."""
    impu, impi = f"sip:{user}@{REALM}", f"{user}@{REALM}"
    return [
        m
        for m in hss.commands(code)
        if impu in m.get_all_str("Public-Identity") or m.get_str("User-Name") == impi
    ]


def register(
    ims: KamailioIms, workdir: Path, user: str, *, password: str | None = None, **options: Any
) -> SippResult:
    """REGISTER ``user`` through the I-CSCF with SIPp; ``options``: :func:`register_uac`'s."""
    secret = PASSWORDS.get(user, "") if password is None else password
    return register_uac(workdir, ims.icscf_address, user, secret, realm=REALM, **options).run()


# --- the harness on its own ------------------------------------------------------------------------


def test_trusted_regex_matches_only_the_listed_addresses() -> None:
    regex = re.compile(trusted_regex(["127.0.0.2", "::1"]))
    assert regex.match("127.0.0.2") and regex.match("::1")
    assert not regex.match("127.0.0.20") and not regex.match("127.0.0.3") and not regex.match("127a0a0a2")
    assert not re.match(trusted_regex([]), "127.0.0.1")


def test_missing_kamailio_fails_loudly(tmp_path: Path) -> None:
    ims = KamailioIms(kamailio="/nonexistent/kamailio", workdir=tmp_path)
    with pytest.raises(KamailioNotInstalled, match="apt-get install kamailio"):
        ims.start()
    ims.stop()


def test_rendered_configs_pass_kamailios_own_check(tmp_path: Path) -> None:
    ims = KamailioIms("127.0.0.1", 3868, workdir=tmp_path, trusted_addresses=[TRUSTED])
    ims.render()
    try:
        for name in ("icscf", "scscf"):
            result = subprocess.run(
                ["kamailio", "-c", "-f", str(tmp_path / f"{name}.cfg")], capture_output=True, timeout=60
            )
            assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
        params = (tmp_path / "scscf-params.cfg").read_text()
        assert f'#!define SCSCF_URI "{ims.scscf_uri}"' in params
        assert f'#!define ICSCF_URI "{ims.icscf_uri}"' in params
        xml = (tmp_path / "icscf.xml").read_text()
        assert '<Peer FQDN="127.0.0.1" Realm="ims.test" port="3868"/>' in xml
    finally:
        ims.stop()


def test_start_and_stop_leave_nothing_running(hss: StandinHss) -> None:
    # "localhost" as the HSS peer's FQDN: a name that resolves without any set-up.
    ims = KamailioIms("localhost", hss.port, realm=REALM)
    workdir = ims.workdir
    with ims:
        assert ims.icscf.running and ims.scscf.running
        assert sip_options_ping(*ims.icscf_address) == 200
        assert sip_options_ping(*ims.scscf_address) == 200
        ims.wait_diameter_open()
    assert not ims.icscf.running and not ims.scscf.running
    assert ims.icscf.returncode == 0 and ims.scscf.returncode == 0
    assert sip_options_ping(*ims.icscf_address, timeout=0.3) is None
    assert not workdir.exists()  # its own temporary directory is removed...
    assert "Listening on" in ims.scscf.log_text()  # ...but the logs stay readable


# --- Diameter ----------------------------------------------------------------------------------------


def test_both_cscfs_complete_capabilities_exchange_with_the_hss(ims: KamailioIms, hss: StandinHss) -> None:
    assert {ims.icscf_identity, ims.scscf_identity} <= set(hss.opened)
    assert ims.icscf.diameter_peers() == {"127.0.0.1": "I_Open"}
    assert ims.scscf.diameter_peers() == {"127.0.0.1": "I_Open"}


# --- registration ------------------------------------------------------------------------------------


def test_md5_digest_registration_through_the_icscf(ims: KamailioIms, hss: StandinHss, sipp_dir: Path) -> None:
    check(register(ims, sipp_dir, "alice"))  # 401, 200 with Service-Route, then de-registration
    assert cx_for(hss, "alice", CommandCode.USER_AUTHORIZATION)
    mar = cx_for(hss, "alice", CommandCode.MULTIMEDIA_AUTH)
    assert mar and mar[0].require_str("Server-Name") == ims.server_name
    types = [
        m.require_int("Server-Assignment-Type") for m in cx_for(hss, "alice", CommandCode.SERVER_ASSIGNMENT)
    ]
    assert types[0] == ServerAssignmentType.REGISTRATION
    assert types[-1] == ServerAssignmentType.USER_DEREGISTRATION


def test_akav1_md5_registration(ims: KamailioIms, hss: StandinHss, sipp_dir: Path) -> None:
    auth = f"[authentication username=carol@{REALM} aka_K={AKA_K} aka_OP={AKA_OP} aka_AMF={AKA_AMF}]"
    check(register(ims, sipp_dir, "carol", auth=auth))
    assert cx_for(hss, "carol", CommandCode.SERVER_ASSIGNMENT)


def test_wrong_password_is_refused_with_403(ims: KamailioIms, sipp_dir: Path) -> None:
    check(register(ims, sipp_dir, "bob", password="not-the-password", final_status=403))


def test_unknown_user_is_refused_with_403(ims: KamailioIms, sipp_dir: Path) -> None:
    check(register(ims, sipp_dir, "nobody", password="x", first_status=403))


def test_trusted_node_authentication_from_the_trusted_address(
    ims: KamailioIms, hss: StandinHss, sipp_dir: Path
) -> None:
    check(register(ims, sipp_dir, "dave", local_ip=TRUSTED, integrity_protected="auth-done"))
    assert not cx_for(hss, "dave", CommandCode.MULTIMEDIA_AUTH)  # no challenge at all
    assert cx_for(hss, "dave", CommandCode.SERVER_ASSIGNMENT)


def test_trusted_node_authentication_from_another_address_is_challenged(
    ims: KamailioIms, hss: StandinHss, sipp_dir: Path
) -> None:
    check(
        register(
            ims, sipp_dir, "erin", local_ip=UNTRUSTED, integrity_protected="auth-done", final_status=401,
            check_service_route=False,
        )
    )  # fmt: skip
    assert not cx_for(hss, "erin", CommandCode.SERVER_ASSIGNMENT)


# --- routing between registered users ---------------------------------------------------------------


def originate(
    ims: KamailioIms, workdir: Path, name: str, scenario: str, callee: str, user: str = "gina"
) -> SippResult:
    """Run the UAC ``scenario`` as ``user`` toward ``callee`` on the S-CSCF's Service-Route."""
    keys = {**KEYS, "callee": callee, "route": ims.service_route}
    return Sipp(workdir, name, scenario, ims.scscf_address, service=user, keys=keys).run()


def _registered_uas(ims: KamailioIms, workdir: Path, user: str, scenario: str, name: str) -> Sipp:
    """Register ``user`` from a port, then listen there with a SIPp UAS running ``scenario``."""
    port = free_port()
    check(register(ims, workdir, user, local_port=port, deregister=False))
    uas = Sipp(
        workdir, name, scenario, ims.scscf_address, service=user, keys=KEYS, local_port=port, wait_bound=True
    )
    uas.start()
    return uas


def test_message_between_registered_users(ims: KamailioIms, hss: StandinHss, sipp_dir: Path) -> None:
    uas = _registered_uas(
        ims, sipp_dir, "frank", message_uas_scenario(expect_text="hello from webims"), "uas"
    )
    sent = originate(ims, sipp_dir, "uac", message_uac_scenario(text="hello from webims"), "frank")
    received = uas.finish()
    check(sent)
    check(received)
    assert cx_for(hss, "frank", CommandCode.LOCATION_INFO)  # the I-CSCF asked where frank is


def test_call_between_registered_users(ims: KamailioIms, sipp_dir: Path) -> None:
    uas = _registered_uas(ims, sipp_dir, "hank", call_uas_scenario(check_called_party=False), "callee")
    caller = originate(ims, sipp_dir, "caller", call_uac_scenario(), "hank")
    callee = uas.finish()
    check(caller)
    check(callee)


def test_request_to_an_unregistered_user_gets_480(ims: KamailioIms, hss: StandinHss, sipp_dir: Path) -> None:
    check(originate(ims, sipp_dir, "unreg", message_uac_scenario(final_status=480), "bob"))
    types = [
        m.require_int("Server-Assignment-Type") for m in cx_for(hss, "bob", CommandCode.SERVER_ASSIGNMENT)
    ]
    assert ServerAssignmentType.UNREGISTERED_USER in types


def test_request_to_an_unknown_user_gets_404(ims: KamailioIms, sipp_dir: Path) -> None:
    check(originate(ims, sipp_dir, "unknown", message_uac_scenario(final_status=404), "nobody"))


def test_reg_event_subscription_gets_a_reginfo_notify(ims: KamailioIms, sipp_dir: Path) -> None:
    check(register(ims, sipp_dir, "alice", deregister=False))
    check(originate(ims, sipp_dir, "subscribe", subscribe_reg_scenario(), "alice", user="alice"))
    assert "sip:alice@ims.test" in ims.registered_contacts("sip:alice@ims.test")


def test_registration_termination_request_is_answered(
    ims: KamailioIms, hss: StandinHss, hss_thread: ThreadedHss, sipp_dir: Path
) -> None:
    """RTR (TS 29.228 §6.2) with Public-Identity gets an RTA 2001 from Kamailio's S-CSCF.

    (Kamailio 5.6.3 leaves the contacts registered nonetheless; an RTR with only
    User-Name, and any PPR, get no answer at all.)
    """
    check(register(ims, sipp_dir, "gina", deregister=False))
    rtr = build_rtr(
        session_id=f"{hss.origin_host};rtr;1", origin_host=hss.origin_host, origin_realm=hss.realm,
        destination_host=ims.scscf_identity, destination_realm=REALM, user_name=f"gina@{REALM}",
        public_identities=[f"sip:gina@{REALM}"],
        deregistration_reason=DeregistrationReason(ReasonCode.PERMANENT_TERMINATION),
    )  # fmt: skip
    rta = hss_thread.call(hss.request(ims.scscf_identity, rtr))
    assert rta.command_code == CommandCode.REGISTRATION_TERMINATION and not rta.is_request
    assert rta.result_code == ResultCode.DIAMETER_SUCCESS
    assert rta.session_id == rtr.session_id


def test_pcscf_refused_outside_a_loopback_only_namespace(tmp_path: Path) -> None:
    """ims_ipsec_pcscf (which Kamailio's P-CSCF needs) deletes the IPsec SAs and policies of
    the namespace it starts in: KamailioIms never starts it in the machine's own (which has
    more than ``lo``), and nothing is started or rendered."""
    assert not in_loopback_only_namespace()
    kamailio = KamailioIms(workdir=tmp_path / "k", with_pcscf=True)
    with pytest.raises(KamailioError, match="nothing but loopback"):
        kamailio.start()
    assert not (tmp_path / "k" / "pcscf.cfg").exists()
