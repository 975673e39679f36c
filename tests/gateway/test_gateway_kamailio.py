"""Interop: the gateway as P-CSCF in front of Kamailio 5.6's I-CSCF/S-CSCF, which use the webims HSS.

Scripted WICs over real WSS register through the gateway in ``ims-aka``, ``ims-digest``,
``web-token`` (Trusted Node Authentication: the harness's S-CSCF accepts
``integrity-protected="auth-done"`` from the gateway's address, 127.0.0.2) and ``pool``
modes. Kamailio facts the gateway copes with: ``Supported: path`` with Path (else 420),
P-Visited-Network-ID (else 400), de-registration per contact (``Contact: *`` leaves
contacts valid), about 10% less expiry than asked. Kamailio and its IMS modules come
from Debian; a missing one fails the test (no skip).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import (
    AKA_AMF,
    AKA_K,
    AKA_OP,
    GATEWAY_HOST,
    ORIGIN,
    PASSWORDS,
    POOL_PASSWORD,
    REALM,
    gateway_on,
    make_auth,
    token_for,
    usim,
)
from test_gateway_modes import eventually
from wicclient import Wic, bearer

from webims.auth.service import AuthService
from webims.gateway.run import GatewayServer
from webims.labcore.hss import HssConfig, HssServer, RegState, SubscriberSpec, SubscriberStore
from webims.store import Store
from webims.testing.kamailio import KamailioIms

T = TypeVar("T")


class HssThread:
    """The webims HSS on its own event loop thread (Kamailio is started synchronously)."""

    def __init__(self, subs: SubscriberStore) -> None:
        self.hss = HssServer(HssConfig(listen_port=0, admin_port=0), subs)
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


HSS: dict[str, HssThread] = {}


def hss_state(impu: str) -> RegState:
    """What the HSS knows (Kamailio's SAR): the ground truth of the S-CSCF's registration."""
    rec = HSS["hss"].hss.subscribers.impu(impu)
    assert rec is not None
    return rec.reg_state


@contextlib.contextmanager
def kamailio_ims(tmp_path_factory: pytest.TempPathFactory, **options: Any) -> Iterator[KamailioIms]:
    """Kamailio's CSCFs (``options``: :class:`KamailioIms`'s, e.g. ``with_pcscf=True``) in front of
    the webims HSS on its own thread (:data:`HSS`), with this module's subscribers."""
    missing = [tool for tool in ("kamailio", "kamcmd") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"missing {missing}: apt-get install kamailio kamailio-ims-modules "
            "kamailio-presence-modules kamailio-sqlite-modules (scripts/packages.txt)"
        )
    store = Store(tmp_path_factory.mktemp("hss") / "hss.sqlite3")
    subs = SubscriberStore(store, default_realm=REALM)
    for name in ("bob", "dave", "erin", "frank", "gina"):
        subs.add(SubscriberSpec(f"{name}@{REALM}", (f"sip:{name}@{REALM}",), password=PASSWORDS[name]))
    for name in ("carol", "walt"):
        subs.add(
            SubscriberSpec(
                f"{name}@{REALM}", (f"sip:{name}@{REALM}",), k=AKA_K, op=AKA_OP, amf=AKA_AMF, sqn=64
            )
        )
    web = tuple(f"sip:web-{i}@{REALM}" for i in range(1, 4))
    subs.add(
        SubscriberSpec(
            f"webpool@{REALM}", web, password=POOL_PASSWORD, implicit_sets=tuple((u,) for u in web)
        )
    )
    try:
        with HssThread(subs) as hss, KamailioIms(
            "127.0.0.1", hss.hss.port, realm=REALM, trusted_addresses=[GATEWAY_HOST],
            workdir=tmp_path_factory.mktemp("kamailio"), **options,
        ) as ims:  # fmt: skip
            ims.wait_diameter_open()
            HSS["hss"] = hss
            yield ims
    finally:
        store.close()


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioIms]:
    with kamailio_ims(tmp_path_factory) as pair:
        yield pair


@pytest.fixture
async def gateway(
    kamailio: KamailioIms, tmp_path: Path, certs: tuple[Path, Path]
) -> AsyncIterator[GatewayServer]:
    auth: AuthService = make_auth(tmp_path)
    try:
        async with gateway_on(
            kamailio.icscf_uri,
            auth,
            certs,
            pools=("web",),
            pool_passwords=(f"web={POOL_PASSWORD}",),
            ims_timeout=8.0,
        ) as server:
            server.gateway.auth = auth
            yield server
    finally:
        auth.store.close()


def contacts(kamailio: KamailioIms, impu: str) -> str:
    return kamailio.registered_contacts(impu)


async def kam(kamailio: KamailioIms, impu: str) -> str:
    return await asyncio.to_thread(contacts, kamailio, impu)


async def test_ims_digest_relay_through_kamailio(kamailio: KamailioIms, gateway: GatewayServer) -> None:
    wic = Wic(gateway.url, origin=ORIGIN, user="bob")
    await wic.connect()
    try:
        first, ok = await wic.register_digest(PASSWORDS["bob"])
        assert first.status == 401 and ok.status == 200, ok
        granted = ok.contact[0].expires
        assert granted is not None and 0 < granted <= 600  # Kamailio grants about 10% less than asked
        assert wic.contact_user in await kam(kamailio, "sip:bob@ims.test")
        assert hss_state("sip:bob@ims.test") is RegState.REGISTERED
        _, gone = await wic.register_digest(PASSWORDS["bob"], expires=0)
        assert gone.status == 200
        await eventually(lambda: hss_state("sip:bob@ims.test") is RegState.NOT_REGISTERED)
    finally:
        await wic.close()


async def test_ims_aka_relay_through_kamailio(kamailio: KamailioIms, gateway: GatewayServer) -> None:
    wic = Wic(gateway.url, origin=ORIGIN, user="carol")
    await wic.connect()
    try:
        first, ok = await wic.register_aka(usim())
        assert first.status == 401 and "ck=" not in (first.headers.get("WWW-Authenticate") or "")
        assert ok.status == 200, ok
        assert wic.contact_user in await kam(kamailio, "sip:carol@ims.test")
    finally:
        await wic.close()


async def test_web_token_tna_through_kamailio(kamailio: KamailioIms, gateway: GatewayServer) -> None:
    auth = gateway.gateway.auth
    assert auth is not None
    wic = Wic(gateway.url, origin=ORIGIN, user="dave")
    await wic.connect()
    try:
        ok = await wic.register(headers=[bearer(token_for(auth, "dave"))])
        assert ok.status == 200, ok
        assert wic.contact_user in await kam(kamailio, "sip:dave@ims.test")
        await wic.close()  # the WIC leaves: after the grace period the gateway de-registers its contact
        assert hss_state("sip:dave@ims.test") is RegState.REGISTERED
        await eventually(lambda: not gateway.gateway.bindings.by_id, timeout=8)
        await eventually(lambda: hss_state("sip:dave@ims.test") is RegState.NOT_REGISTERED)
    finally:
        await wic.close()


async def test_pool_through_kamailio(kamailio: KamailioIms, gateway: GatewayServer) -> None:
    regs = gateway.gateway.pools.regs
    assert len(regs) == 3 and all(r.active for r in regs.values())
    for impu in regs:
        assert "sip:p" in await kam(kamailio, impu)  # the gateway's pool contact
        assert hss_state(impu) is RegState.REGISTERED
    auth = gateway.gateway.auth
    assert auth is not None
    wic = Wic(gateway.url, origin=ORIGIN, user="pat", domain="web.example")
    await wic.connect()
    try:
        ok = await wic.register(headers=[bearer(token_for(auth, "pat"))])
        assert ok.status == 200, ok
        assert ok.headers.get("P-Associated-URI", "").strip("<>") in regs
    finally:
        await wic.close()
