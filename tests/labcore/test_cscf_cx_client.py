"""The CSCFs' Cx client (webims.labcore.cx_client): answers by Hop-by-Hop identifier,
timeouts, no connection, reconnection after the HSS restarts (RFC 6733 §2.1, §5.6, §6.2)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from ipaddress import ip_address
from pathlib import Path

import pytest
from labcore_harness import REALM, eventually

from webims.diameter import (
    Capabilities,
    ExperimentalResultCode,
    Message,
    Role,
    UserAuthorizationAnswer,
    build_uar,
)
from webims.labcore.cx_client import CxTimeout, CxUnavailable, DiameterClient
from webims.labcore.hss import HssConfig, HssServer, SubscriberSpec, SubscriberStore
from webims.labcore.hss.connection import DiameterConnection
from webims.store import Store
from webims.testing.ports import free_port


def uar(client: DiameterClient, impu: str) -> Message:
    return build_uar(
        session_id=client.session_id(),
        origin_host=client.origin_host,
        origin_realm=client.origin_realm,
        destination_realm=REALM,
        user_name=impu.removeprefix("sip:"),
        public_identity=impu,
        visited_network_identifier=REALM,
    )


@contextlib.asynccontextmanager
async def hss_on(tmp_path: Path, port: int) -> AsyncIterator[HssServer]:
    store = Store(tmp_path / "hss.sqlite3")
    subs = SubscriberStore(store)
    if subs.get(f"alice@{REALM}") is None:
        subs.add(SubscriberSpec(impi=f"alice@{REALM}", impus=(f"sip:alice@{REALM}",), password="x"))
    hss = HssServer(HssConfig(listen_port=port, admin_port=0), subs)
    await hss.start()
    try:
        yield hss
    finally:
        await hss.stop()
        store.close()


def client(port: int, **options: object) -> DiameterClient:
    return DiameterClient(
        origin_host="icscf.ims.test",
        origin_realm=REALM,
        peer_host="127.0.0.1",
        peer_port=port,
        reconnect_delay=(0.05, 0.2),
        **options,  # type: ignore[arg-type]
    )


async def test_requests_in_parallel_get_their_own_answers(tmp_path: Path) -> None:
    port = free_port()
    async with hss_on(tmp_path, port):
        cx = client(port)
        try:
            assert await cx.start(wait=5)
            assert cx.peer_origin_host == "hss.ims.test"
            known, unknown = await asyncio.gather(
                cx.request(uar(cx, "sip:alice@ims.test")), cx.request(uar(cx, "sip:nobody@ims.test"))
            )
            assert UserAuthorizationAnswer.from_message(known).result.is_success
            result = UserAuthorizationAnswer.from_message(unknown).result
            assert result.experimental_result_code == ExperimentalResultCode.DIAMETER_ERROR_USER_UNKNOWN
        finally:
            await cx.close()


async def test_no_connection_raises_cx_unavailable() -> None:
    cx = client(free_port(), connect_timeout=0.2)
    try:
        await cx.start()
        with pytest.raises(CxUnavailable):
            await cx.request(uar(cx, "sip:alice@ims.test"), timeout=0.3)
    finally:
        await cx.close()


async def test_a_peer_that_never_answers_raises_cx_timeout() -> None:
    caps = Capabilities("mute.ims.test", REALM, (ip_address("127.0.0.1"),))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: DiameterConnection(caps, Role.RESPONDER, on_request=lambda conn, m: None), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    cx = client(port)
    try:
        assert await cx.start(wait=5)
        with pytest.raises(CxTimeout):
            await cx.request(uar(cx, "sip:alice@ims.test"), timeout=0.2)
    finally:
        await cx.close()
        server.close()
        await server.wait_closed()


async def test_reconnects_after_the_hss_restarts(tmp_path: Path) -> None:
    port = free_port()
    cx = client(port)
    try:
        async with hss_on(tmp_path, port):
            assert await cx.start(wait=5)
            await cx.request(uar(cx, "sip:alice@ims.test"))
        await eventually(lambda: not cx.is_open)  # the HSS sent DPR and closed
        async with hss_on(tmp_path, port):
            assert await cx.wait_open(5)
            answer = await cx.request(uar(cx, "sip:alice@ims.test"))
            assert UserAuthorizationAnswer.from_message(answer).result.is_success
        assert cx.connections == 2
    finally:
        await cx.close()
