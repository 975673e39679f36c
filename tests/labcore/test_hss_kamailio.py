"""Interop: Kamailio 5.6's I-CSCF and S-CSCF use the webims HSS over Cx; SIPp registers through them.

Kamailio and SIPp come from Debian (``kamailio``, ``kamailio-ims-modules``,
``kamailio-presence-modules``, ``kamailio-sqlite-modules``, ``sip-tester``); the
harness is :class:`webims.testing.kamailio.KamailioIms` and the SIPp scenarios are
those of :mod:`webims.testing.sipp`. A missing tool fails the test (no skip).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hss_harness import config

from webims.diameter import ReasonCode
from webims.labcore.hss import HssServer, RegState, SubscriberSpec, SubscriberStore
from webims.store import Store
from webims.testing.kamailio import KamailioIms
from webims.testing.ports import free_port
from webims.testing.sipp import (
    Sipp,
    SippResult,
    message_uac_scenario,
    message_uas_scenario,
    register_uac,
    sipp_safe_rands,
)

T = TypeVar("T")
REALM = "ims.test"
PASSWORDS = {name: f"{name}-secret" for name in ("alice", "bob", "dave", "erin", "frank", "gina")}
#: SIPp 3.6 takes aka_K / aka_OP / aka_AMF as raw text (16 / 16 / 2 characters).
AKA_K, AKA_OP, AKA_AMF = "webims-test-k001", "webims-operator!", "00"


class HssThread:
    """The HSS on its own event loop thread: Kamailio and SIPp are driven synchronously."""

    def __init__(self, subs: SubscriberStore) -> None:
        # carol's RANDs are ones SIPp answers right (webims.testing.sipp.sipp_safe_rands)
        self.hss = HssServer(config(), subs, rand_source=sipp_safe_rands(AKA_K.encode(), AKA_OP.encode()))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="webims-hss", daemon=True)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> HssThread:
        self.thread.start()
        self.call(self.hss.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self.hss.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def hss(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HssThread]:
    store = Store(tmp_path_factory.mktemp("hss") / "hss.sqlite3")
    subs = SubscriberStore(store)
    for name, password in PASSWORDS.items():
        subs.add(SubscriberSpec(f"{name}@{REALM}", (f"sip:{name}@{REALM}",), password=password))
    subs.add(
        SubscriberSpec(
            f"carol@{REALM}",
            (f"sip:carol@{REALM}",),
            k=AKA_K.encode(),
            op=AKA_OP.encode(),
            amf=AKA_AMF.encode(),
        )
    )
    with HssThread(subs) as runner:
        yield runner
    store.close()


@pytest.fixture(scope="module")
def ims(hss: HssThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioIms]:
    missing = [tool for tool in ("kamailio", "sipp", "kamcmd") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {missing}: see scripts/packages.txt")
    with KamailioIms(
        "127.0.0.1", hss.hss.port, realm=REALM, trusted_addresses=["127.0.0.2"],
        workdir=tmp_path_factory.mktemp("kamailio"),
    ) as pair:  # fmt: skip
        pair.wait_diameter_open()
        yield pair


def register(
    ims: KamailioIms, workdir: Path, user: str, *, password: str | None = None, **options: Any
) -> SippResult:
    secret = PASSWORDS.get(user, "") if password is None else password
    return register_uac(workdir, ims.icscf_address, user, secret, realm=REALM, **options).run()


def state(hss: HssThread, impu: str) -> tuple[RegState, str | None]:
    rec = hss.hss.subscribers.impu(impu)
    assert rec is not None
    return rec.reg_state, rec.scscf_name


def test_kamailio_cscfs_open_diameter_with_the_hss(ims: KamailioIms, hss: HssThread) -> None:
    peers = {c.peer_origin_host for c in hss.hss.peers()}
    assert {ims.icscf_identity, ims.scscf_identity} <= peers


def test_md5_registration_and_deregistration(ims: KamailioIms, hss: HssThread, tmp_path: Path) -> None:
    port = free_port("127.0.0.1")  # the same contact both times
    result = register(ims, tmp_path, "alice", deregister=False, local_port=port)
    assert result.ok, result.report()
    assert state(hss, f"sip:alice@{REALM}") == (RegState.REGISTERED, ims.server_name)
    result = register(ims, tmp_path, "alice", local_port=port)  # re-registration, then Expires: 0
    assert result.ok, result.report()
    assert state(hss, f"sip:alice@{REALM}")[0] is RegState.NOT_REGISTERED


def test_akav1_registration(ims: KamailioIms, hss: HssThread, tmp_path: Path) -> None:
    auth = f"[authentication username=carol@{REALM} aka_K={AKA_K} aka_OP={AKA_OP} aka_AMF={AKA_AMF}]"
    sqn = hss.hss.subscribers.impi(f"carol@{REALM}").sqn  # type: ignore[union-attr]
    result = register(ims, tmp_path, "carol", auth=auth, deregister=False)
    assert result.ok, result.report()
    assert state(hss, f"sip:carol@{REALM}") == (RegState.REGISTERED, ims.server_name)
    assert hss.hss.subscribers.impi(f"carol@{REALM}").sqn > sqn  # type: ignore[union-attr]


def test_wrong_password_and_unknown_user_get_403(ims: KamailioIms, hss: HssThread, tmp_path: Path) -> None:
    result = register(ims, tmp_path, "bob", password="not-the-password", final_status=403)
    assert result.ok, result.report()
    assert state(hss, f"sip:bob@{REALM}")[0] is RegState.NOT_REGISTERED
    result = register(ims, tmp_path, "nobody", password="x", first_status=403)
    assert result.ok, result.report()


def test_registration_termination_from_the_hss(ims: KamailioIms, hss: HssThread, tmp_path: Path) -> None:
    result = register(ims, tmp_path, "dave", deregister=False)
    assert result.ok, result.report()
    outcome = hss.call(hss.hss.deregister(f"dave@{REALM}", reason_code=ReasonCode.PERMANENT_TERMINATION))
    assert outcome.success and outcome.destination_host == ims.scscf_identity
    assert state(hss, f"sip:dave@{REALM}") == (RegState.NOT_REGISTERED, None)


def test_terminating_requests_use_lir(ims: KamailioIms, hss: HssThread, tmp_path: Path) -> None:
    """The I-CSCF's LIR: a registered user gets the MESSAGE, unregistered 480, unknown 404."""
    port = free_port("127.0.0.1")
    result = register(ims, tmp_path, "frank", deregister=False, local_port=port)
    assert result.ok, result.report()
    uas = Sipp(
        tmp_path, "uas", message_uas_scenario(expect_text="hello from webims"), ims.scscf_address,
        service="frank", keys={"realm": REALM}, local_port=port, wait_bound=True,
    )  # fmt: skip
    uas.start()
    keys = {"realm": REALM, "route": ims.service_route}
    sent = Sipp(
        tmp_path, "uac", message_uac_scenario(text="hello from webims"), ims.scscf_address,
        service="gina", keys={**keys, "callee": "frank"},
    ).run()  # fmt: skip
    received = uas.finish()
    assert sent.ok, sent.report()
    assert received.ok, received.report()
    for callee, status in (("erin", 480), ("nobody", 404)):
        result = Sipp(
            tmp_path, f"to-{callee}", message_uac_scenario(final_status=status), ims.scscf_address,
            service="gina", keys={**keys, "callee": callee},
        ).run()  # fmt: skip
        assert result.ok, result.report()
