"""Shared pieces for the HSS tests: a running HSS on loopback, a Cx client, request builders."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from webims.aka import compute_opc
from webims.diameter import (
    Capabilities,
    Message,
    SipAuthDataItem,
    build_lir,
    build_mar,
    build_sar,
    build_uar,
)
from webims.labcore.hss import CxClient, HssConfig, HssServer, SubscriberSpec, SubscriberStore
from webims.store import Store

REALM = "ims.test"
SCSCF = "sip:scscf.ims.test:6060"
SCSCF_HOST = "scscf.ims.test"
ICSCF_HOST = "icscf.ims.test"
SCSCF_CAPS = Capabilities(SCSCF_HOST, REALM, (ip_address("127.0.0.1"),), product_name="test-scscf")
ICSCF_CAPS = Capabilities(ICSCF_HOST, REALM, (ip_address("127.0.0.1"),), product_name="test-icscf")

# TS 35.208 §4.3.1, test set 1
K1 = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OP1 = bytes.fromhex("cdc202d5123e20f62b6d676ac72cb318")
OPC1 = compute_opc(K1, OP1)

ALICE = SubscriberSpec(
    impi="alice@ims.test",
    impus=("sip:alice@ims.test", "tel:+15551000"),
    password="alice-secret",
    k=K1,
    op=OP1,
    sqn=32,
)
BOB = SubscriberSpec(impi="bob@ims.test", impus=("sip:bob@ims.test",), password="bob-secret")


# The MAR Kamailio 5.6's S-CSCF sends (ims_auth/cxdx_avp.c), with ETSI-SIP-Authorization
# (vendor 13019) inside SIP-Auth-Data-Item; the same bytes as tests/diameter/diameter_fixtures.py.
KAMAILIO_MAR = bytes.fromhex(
    "01000198c000012f010000001c2d3e4f5a000001"  # v1, len 408, R|P, 303, Cx, hbh, e2e
    "000001070000002373637363662e696d732e746573743b313730303030303030303b3700"  # Session-Id (no M)
    "000001080000001673637363662e696d732e746573740000"  # Origin-Host (no M)
    "0000012800000010696d732e74657374"  # Origin-Realm (no M)
    "0000011b40000010696d732e74657374"  # Destination-Realm
    "00000104400000200000010a4000000c000028af000001024000000c01000000"  # VSAI 10415/16777216
    "000001154000000c00000001"  # Auth-Session-State NO_STATE_MAINTAINED
    "0000000140000016616c69636540696d732e746573740000"  # User-Name alice@ims.test
    "00000259c000001e000028af7369703a616c69636540696d732e746573740000"  # Public-Identity
    "00000264c0000090000028af"  # SIP-Auth-Data-Item {
    "00000260c000001c000028af4469676573742d414b4176312d4d4435"  # SIP-Authentication-Scheme
    "000001f6c0000068000032db"  # ETSI-SIP-Authorization (502, vendor 13019) {
    "00000201c000001a000032db616c69636540696d732e746573740000"  # ETSI-Digest-Username
    "000001f8c0000014000032db696d732e74657374"  # ETSI-Digest-Realm
    "00000202c0000018000032db7369703a696d732e74657374"  # ETSI-Digest-URI
    "00000206c0000014000032db5245474953544552"  # ETSI-Digest-Method }}
    "0000025fc0000010000028af00000001"  # SIP-Number-Auth-Items 1
    "0000025ac0000023000028af7369703a73637363662e696d732e746573743a3630363000"  # Server-Name
)


def config(**changes: Any) -> HssConfig:
    base: dict[str, Any] = {"listen_port": 0, "admin_port": 0}
    base.update(changes)
    return HssConfig(**base)


@contextlib.contextmanager
def subscriber_store(path: Path, *specs: SubscriberSpec) -> Iterator[SubscriberStore]:
    store = Store(path)
    subs = SubscriberStore(store)
    for spec in specs:
        subs.add(spec)
    try:
        yield subs
    finally:
        store.close()


@contextlib.asynccontextmanager
async def running(
    subs: SubscriberStore, *, rand_source: Callable[[], bytes] | None = None, **changes: Any
) -> AsyncIterator[HssServer]:
    hss = HssServer(config(**changes), subs, rand_source=rand_source)
    await hss.start()
    try:
        yield hss
    finally:
        await hss.stop()


async def connect(
    hss: HssServer,
    caps: Capabilities = SCSCF_CAPS,
    on_request: Callable[[Message], Message | None] | None = None,
) -> CxClient:
    return await CxClient.connect("127.0.0.1", hss.port, caps, on_request=on_request)


def _routing(cx: CxClient) -> dict[str, Any]:
    return {
        "session_id": cx.session_id(),
        "origin_host": cx.capabilities.origin_host,
        "origin_realm": cx.capabilities.origin_realm,
        "destination_realm": REALM,
    }


def uar(cx: CxClient, impi: str, impu: str, uat: int | None = None, vni: str = REALM, **kw: Any) -> Message:
    return build_uar(
        user_name=impi,
        public_identity=impu,
        visited_network_identifier=vni,
        user_authorization_type=uat,
        **_routing(cx),
        **kw,
    )


def mar(
    cx: CxClient,
    impi: str,
    impu: str,
    scheme: str | None = "SIP Digest",
    *,
    items: int = 1,
    authorization: bytes | None = None,
    server_name: str = SCSCF,
    extra: tuple[Any, ...] = (),
) -> Message:
    item = SipAuthDataItem(authentication_scheme=scheme, authorization=authorization, extra=extra)
    return build_mar(
        user_name=impi,
        public_identity=impu,
        server_name=server_name,
        sip_auth_data_item=item,
        sip_number_auth_items=items,
        **_routing(cx),
    )


def sar(
    cx: CxClient, impi: str | None, impus: list[str], sat: int, *, server_name: str = SCSCF, **kw: Any
) -> Message:
    return build_sar(
        user_name=impi,
        public_identities=impus,
        server_name=server_name,
        server_assignment_type=sat,
        **_routing(cx),
        **kw,
    )


def lir(cx: CxClient, impu: str, **kw: Any) -> Message:
    return build_lir(public_identity=impu, **_routing(cx), **kw)


async def read_raw(reader: asyncio.StreamReader) -> Message:
    head = await asyncio.wait_for(reader.readexactly(20), 5)
    length = int.from_bytes(head[1:4], "big")
    return Message.decode(head + await asyncio.wait_for(reader.readexactly(length - 20), 5))
