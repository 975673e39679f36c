"""Behind an operator P-CSCF over TCP, a UE's own flow survives its connection closing.

The P-CSCF (or a NAT, a firewall, its restart) may close the connection a UE registered over.
The gateway recovers the flow as that UE would (RFC 5626 §4.4.1, §4.5): it reconnects, from
the same port when it can (a P-CSCF without IPsec knows the UE by its address and port,
TS 33.203 §7.1), and registers again where it holds what that takes (web-token: TNA). A
relaying WIC (ims-digest) whose flow had to move to a new port is told to register again:
its WebSocket is closed.

The P-CSCF here is scripted on a real TCP listener: it answers REGISTER and MESSAGE with 200,
records each request with the address it came from, can close a UE's connection, stop and
start again on the same port, and send a terminating request over a UE's connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import GATEWAY_HOST, ORIGIN, POOL_PASSWORD, gateway_on, token_for
from test_gateway_modes import eventually
from test_gateway_ueflow import live_contacts, message_to, pcscf_answer, port_of, removed_contacts
from wicclient import Wic, bearer

from webims.auth.service import AuthService
from webims.gateway.run import GatewayServer
from webims.gateway.state import SqliteRegistrationStore
from webims.gateway.ueflow import MAX_ACCEPTED
from webims.sip import Request, Response, SipURI, parse
from webims.store import Store

_LENGTH = re.compile(rb"\r\n(?:Content-Length|l)[ \t]*:[ \t]*(\d+)", re.IGNORECASE)


@dataclass
class TcpPcscf:
    """A P-CSCF as far as a UE's TCP connection and source address go (module docstring)."""

    port: int = 0
    accepted: list[tuple[str, int]] = field(default_factory=list)
    accepted_at: list[float] = field(default_factory=list)  # loop time of each
    requests: list[tuple[tuple[str, int], Request]] = field(default_factory=list)
    answers: list[tuple[tuple[str, int], Response]] = field(default_factory=list)
    writers: dict[int, asyncio.StreamWriter] = field(default_factory=dict)  # by the UE's port
    server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection (a P-CSCF going down)."""
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers.values()):
            writer.close()
        self.writers.clear()
        await self.server.wait_closed()

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port};transport=tcp"

    def registers(self) -> list[tuple[tuple[str, int], Request]]:
        return [(peer, r) for peer, r in self.requests if r.method == "REGISTER"]

    def drop(self, ue_port: int) -> None:
        """Close the connection from the UE at ``ue_port`` (keep listening)."""
        self.writers.pop(ue_port).close()

    def send(self, ue_port: int, data: bytes) -> None:
        """Send on the connection from the UE at ``ue_port`` (a terminating request)."""
        self.writers[ue_port].write(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[:2]
        self.accepted.append(peer)
        self.accepted_at.append(asyncio.get_running_loop().time())
        self.writers[peer[1]] = writer
        try:
            while True:
                message = await read_message(reader)
                if isinstance(message, Response):
                    self.answers.append((peer, message))
                    continue
                self.requests.append((peer, message))
                writer.write(pcscf_answer(message).serialize())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self.writers.get(peer[1]) is writer:
                del self.writers[peer[1]]
            writer.close()


async def read_message(reader: asyncio.StreamReader) -> Request | Response:
    """The next SIP message on a TCP connection (RFC 3261 §18.3: framed by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = _LENGTH.search(head)
    body = await reader.readexactly(int(length.group(1))) if length else b""
    return parse(head + body)


@contextlib.asynccontextmanager
async def tcp_pcscf_and_gateway(
    auth: AuthService, certs: tuple[Path, Path], **overrides: Any
) -> AsyncIterator[tuple[TcpPcscf, GatewayServer]]:
    pcscf = TcpPcscf()
    await pcscf.start()
    try:
        overrides.setdefault("flow_retry_base", 0.2)
        async with gateway_on(
            pcscf.uri, auth, certs, topology="behind-p-cscf", pcscf=pcscf.uri, mw_transport="tcp", **overrides
        ) as server:
            yield pcscf, server
    finally:
        if pcscf.server is not None:
            pcscf.server.close()
        for writer in list(pcscf.writers.values()):
            writer.close()


def contact_port(request: Request) -> int:
    return port_of(str(live_contacts(request)[0].uri))


async def test_tcp_flows_are_connections_of_their_own(auth: AuthService, certs: tuple[Path, Path]) -> None:
    """With ``mw_transport = tcp`` each UE's flow is a new connection to the P-CSCF (not the one
    :meth:`TransportLayer.connect` shares), from the port its Contact names."""
    async with tcp_pcscf_and_gateway(auth, certs) as (pcscf, server):
        wics = [Wic(server.url, origin=ORIGIN, user=u) for u in ("dave", "erin")]
        try:
            for wic in wics:
                await wic.connect()
                assert (await wic.register(headers=[bearer(token_for(auth, wic.user))])).status == 200
            accepted = pcscf.accepted
            assert len(accepted) == 2 and len({p for _, p in accepted}) == 2
            registers = [r for _, r in pcscf.registers()]
            for message in registers:
                uri = message.contact[0].uri
                assert isinstance(uri, SipURI) and uri.param("transport") == "tcp"
            assert {contact_port(m) for m in registers} == {p for _, p in accepted}
            layer = server.gateway.ims.endpoint.transport
            assert layer.find("TCP", "127.0.0.1", pcscf.port) is None  # not the shared connection
        finally:
            for wic in wics:
                await wic.close()


async def test_a_closed_flow_reconnects_from_its_port_and_registers_again(
    auth: AuthService, certs: tuple[Path, Path]
) -> None:
    """The P-CSCF closes dave's connection: the gateway connects again from the same port,
    registers dave again on it (the same registration: Call-ID, a higher CSeq, the same
    Contact), and a terminating request over the new connection reaches dave. erin's flow,
    untouched, sees nothing of it."""
    async with tcp_pcscf_and_gateway(auth, certs) as (pcscf, server):
        dave = Wic(server.url, origin=ORIGIN, user="dave")
        erin = Wic(server.url, origin=ORIGIN, user="erin")
        try:
            for wic in (dave, erin):
                await wic.connect()
                assert (await wic.register(headers=[bearer(token_for(auth, wic.user))])).status == 200
            ((dave_peer, first), (erin_peer, _)) = pcscf.registers()
            port = dave_peer[1]
            assert contact_port(first) == port
            pcscf.drop(port)
            await eventually(lambda: len(pcscf.registers()) == 3)
            assert pcscf.accepted.count((GATEWAY_HOST, port)) == 2  # a new connection, the same port
            peer, again = pcscf.registers()[-1]
            assert peer == (GATEWAY_HOST, port) and contact_port(again) == port
            assert again.call_id == first.call_id and again.cseq.seq > first.cseq.seq
            assert again.headers.get("Authorization", "").startswith("Digest")  # TNA (auth-done)
            assert pcscf.accepted.count(erin_peer) == 1  # erin's flow was not touched
            # the P-CSCF reaches dave over the new connection
            contact = str(first.contact[0].uri)
            pcscf.send(port, message_to(contact, pcscf.port, b"after the reconnection", "TCP"))
            got = await dave.wait_request("MESSAGE")
            assert got.body == b"after the reconnection"
            await eventually(lambda: any(r.cseq.method == "MESSAGE" for _, r in pcscf.answers))
            ((source, answer),) = [(p, r) for p, r in pcscf.answers if r.cseq.method == "MESSAGE"]
            assert answer.status == 200 and source == (GATEWAY_HOST, port)
        finally:
            await dave.close()
            await erin.close()


async def _connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(GATEWAY_HOST, port, local_addr=(source, 0))


async def _closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """Whether the other end closes the connection (EOF or reset) without sending anything."""
    try:
        return await asyncio.wait_for(reader.read(), 5.0) == b""
    except ConnectionResetError:
        return True


async def test_the_pcscf_may_connect_to_a_ues_contact(auth: AuthService, certs: tuple[Path, Path]) -> None:
    """A P-CSCF that does not reuse a UE's connection opens one to the Contact it registered
    (RFC 3261 §18.2.1, §19.1.2): the flow's port accepts it, the terminating request reaches
    the WIC, and the answer goes back on that connection. Only the P-CSCF's address may
    connect (127.0.0.3 may not), at most ``MAX_ACCEPTED`` connections at a time; the accepted
    one outlives the recovery of the UE's own; once the registration ends the port accepts
    nothing and the accepted connections are closed."""
    async with tcp_pcscf_and_gateway(auth, certs) as (pcscf, server):
        dave = Wic(server.url, origin=ORIGIN, user="dave")
        try:
            await dave.connect()
            assert (await dave.register(headers=[bearer(token_for(auth, "dave"))])).status == 200
            ((peer, first),) = pcscf.registers()
            port, contact = peer[1], str(first.contact[0].uri)
            reader, writer = await _connect(port, "127.0.0.1")
            writer.write(message_to(contact, pcscf.port, b"a connection of its own", "TCP"))
            assert (await dave.wait_request("MESSAGE")).body == b"a connection of its own"
            answer = await asyncio.wait_for(read_message(reader), 5.0)
            assert isinstance(answer, Response) and answer.status == 200
            assert not pcscf.answers  # nothing went over dave's own connection
            # a stranger is closed on, and its request reaches nobody
            strange_reader, strange_writer = await _connect(port, "127.0.0.3")
            strange_writer.write(message_to(contact, 5060, b"a stranger", "TCP"))
            assert await _closed_by_peer(strange_reader)
            strange_writer.close()
            # MAX_ACCEPTED connections from the P-CSCF at a time: one is open, so three more
            more = [await _connect(port, "127.0.0.1") for _ in range(MAX_ACCEPTED)]
            assert await _closed_by_peer(more[-1][0])
            (flow,) = server.gateway.ims.ue_flows.values()
            assert len(flow.accepted) == MAX_ACCEPTED
            for _, extra in more:
                extra.close()
            await eventually(lambda: len(flow.accepted) == 1)
            # dave's own connection is recovered; the accepted one still carries requests
            pcscf.drop(port)
            await eventually(lambda: len(pcscf.registers()) == 2)
            assert pcscf.registers()[-1][0] == peer
            writer.write(message_to(contact, pcscf.port, b"after the recovery, still", "TCP"))
            assert (await dave.wait_request("MESSAGE")).body == b"after the recovery, still"
            answer = await asyncio.wait_for(read_message(reader), 5.0)
            assert isinstance(answer, Response) and answer.status == 200
            assert not dave.requests  # the stranger's MESSAGE never arrived
            # the registration ends: the flow's port is closed, and so is the P-CSCF's connection
            assert (await dave.register(0, headers=[bearer(token_for(auth, "dave"))])).status == 200
            await eventually(lambda: not server.gateway.ims.ue_flows)
            assert await _closed_by_peer(reader)
            writer.close()
            with pytest.raises(ConnectionRefusedError):
                await _connect(port, "127.0.0.1")
        finally:
            await dave.close()


async def test_a_relaying_wics_flow_reconnects_from_its_port_without_registering(
    auth: AuthService, certs: tuple[Path, Path]
) -> None:
    """frank relays his own digest (ims-digest): the gateway cannot register for him. Back on
    the same port, the P-CSCF reaches him as before; nothing is registered until his own next
    REGISTER, and his WebSocket stays open."""
    async with tcp_pcscf_and_gateway(auth, certs) as (pcscf, server):
        frank = Wic(server.url, origin=ORIGIN, user="frank")
        try:
            await frank.connect()
            assert (await frank.register()).status == 200
            ((peer, first),) = pcscf.registers()
            (binding,) = server.gateway.bindings
            assert binding.mode == "ims-digest"
            pcscf.drop(peer[1])
            await eventually(lambda: pcscf.accepted.count(peer) == 2)
            contact = str(first.contact[0].uri)
            await eventually(lambda: peer[1] in pcscf.writers)
            pcscf.send(peer[1], message_to(contact, pcscf.port, b"still here", "TCP"))
            got = await frank.wait_request("MESSAGE")
            assert got.body == b"still here"
            assert len(pcscf.registers()) == 1 and not frank.closed.is_set()
            assert (await frank.register()).status == 200  # his refresh goes on the new connection
            assert pcscf.registers()[-1][0] == peer
        finally:
            await frank.close()


async def test_a_pcscf_restart_moves_flows_whose_port_is_taken(
    auth: AuthService, certs: tuple[Path, Path]
) -> None:
    """The P-CSCF goes down: the gateway keeps trying (RFC 5626 §4.5 backoff: the first retry
    0.5-1 s later here). When the P-CSCF is back, dave's and frank's old ports cannot connect
    to it any more (another socket holds that connection: :func:`_take`), so both flows
    reconnect from new ports: dave (web-token) is registered again with the new Contact; frank
    (ims-digest relay: only his WIC can answer a challenge) gets his WebSocket closed, to
    register again; erin, whose port is free, reconnects from it and is registered again
    there."""
    async with tcp_pcscf_and_gateway(auth, certs, flow_retry_base=0.5) as (pcscf, server):
        wics = {u: Wic(server.url, origin=ORIGIN, user=u) for u in ("dave", "erin", "frank")}
        try:
            for user, wic in wics.items():
                await wic.connect()
                headers = [bearer(token_for(auth, user))] if user != "frank" else []
                assert (await wic.register(headers=headers)).status == 200
            modes = {b.aor.split(":")[1].split("@")[0]: b.mode for b in server.gateway.bindings}
            assert modes == {"dave": "web-token", "erin": "web-token", "frank": "ims-digest"}
            first = {r.to.uri.user: (peer[1], r) for peer, r in pcscf.registers()}  # type: ignore[union-attr]
            await pcscf.stop()
            blockers: list[socket.socket] = []
            try:
                await asyncio.sleep(0.1)  # the first attempt fails: nothing listens
                await pcscf.start()  # the same port
                blockers += [await _take(first[u][0], pcscf.port) for u in ("dave", "frank")]
                await eventually(lambda: len(pcscf.registers()) == 5, timeout=10.0)
                again = {r.to.uri.user: (peer[1], r) for peer, r in pcscf.registers()[3:]}  # type: ignore[union-attr]
                assert set(again) == {"dave", "erin"}
                assert again["erin"][0] == first["erin"][0]  # its port was free
                dave_port, dave_again = again["dave"]
                assert dave_port != first["dave"][0] and contact_port(dave_again) == dave_port
                assert dave_again.call_id == first["dave"][1].call_id
                # the old Contact is removed in the same REGISTER (RFC 3261 §10.2.2), not left to expire
                assert removed_contacts(dave_again) == [str(first["dave"][1].contact[0].uri)]
                assert removed_contacts(again["erin"][1]) == []  # back on its port: nothing to remove
                await asyncio.wait_for(wics["frank"].closed.wait(), 10.0)  # told to register again
                frank = next(b for b in server.gateway.bindings if b.aor.startswith("sip:frank@"))
                assert frank.ims_flow is not None and frank.ims_flow.port != first["frank"][0]
                assert f":{frank.ims_flow.port};" in frank.ims_contact  # what its next REGISTER carries
                # frank comes back (RFC 5626: the same instance): his REGISTER, relayed, moves him
                back = Wic(server.url, origin=ORIGIN, user="frank", instance=wics["frank"].instance)
                wics["back"] = back
                await back.connect()
                assert (await back.register()).status == 200
                peer, last = pcscf.registers()[-1]
                assert peer[1] == frank.ims_flow.port and contact_port(last) == frank.ims_flow.port
                assert removed_contacts(last) == [str(first["frank"][1].contact[0].uri)]
                assert frank.retired_contact is None
            finally:
                for blocker in blockers:
                    blocker.close()
        finally:
            for wic in wics.values():
                await wic.close()


async def test_a_restarted_gateway_reconnects_each_tcp_flow_from_its_port(
    auth: AuthService, certs: tuple[Path, Path], tmp_path: Path
) -> None:
    """A gateway restart over TCP: each restored flow connects from its old port again (the
    P-CSCF knows the UE by it, TS 33.203 §7.1), so nothing has to be registered again and the
    P-CSCF reaches dave there, over the new connection. The stopping gateway resets its flows'
    connections, leaving no TIME_WAIT of its own on the very connection it makes again."""
    pcscf = TcpPcscf()
    await pcscf.start()

    def gateway() -> contextlib.AbstractAsyncContextManager[GatewayServer]:
        return gateway_on(
            pcscf.uri, auth, certs, topology="behind-p-cscf", pcscf=pcscf.uri, mw_transport="tcp",
            store=SqliteRegistrationStore(Store(tmp_path / "state.db")), restart_grace=30.0,
        )  # fmt: skip

    try:
        async with gateway() as server:
            for user in ("dave", "erin"):
                wic = Wic(server.url, origin=ORIGIN, user=user)
                await wic.connect()
                assert (await wic.register(headers=[bearer(token_for(auth, user))])).status == 200
                await wic.close()
            first = {r.to.uri.user: (peer, r) for peer, r in pcscf.registers()}  # type: ignore[union-attr]
            await server.gateway.store.flush()
        for peer, _ in first.values():
            assert _time_wait(peer) == ""  # reset, not closed: the same connection can be made again
        async with gateway() as server:
            ports = {b.aor: b.ims_flow.port for b in server.gateway.bindings}
            assert ports == {f"sip:{u}@ims.test": first[u][0][1] for u in ("dave", "erin")}
            dave_port = first["dave"][0][1]
            await eventually(lambda: pcscf.accepted.count((GATEWAY_HOST, dave_port)) == 2)
            await eventually(lambda: dave_port in pcscf.writers)
            contact = str(first["dave"][1].contact[0].uri)
            pcscf.send(dave_port, message_to(contact, pcscf.port, b"after the gateway restart", "TCP"))
            await eventually(lambda: any(r.cseq.method == "MESSAGE" for _, r in pcscf.answers))
            ((source, answer),) = [(p, r) for p, r in pcscf.answers if r.cseq.method == "MESSAGE"]
            assert answer.status == 430 and source == (GATEWAY_HOST, dave_port)  # dave's WIC is away
            assert len(pcscf.registers()) == 2  # nothing moved: nothing registered again
    finally:
        await pcscf.stop()


def _time_wait(local: tuple[str, int]) -> str:
    """The TCP sockets in TIME-WAIT bound to ``local`` (``ss``: one line each)."""
    command = ["ss", "-Htn", "state", "time-wait", "src", f"{local[0]}:{local[1]}"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


async def test_a_pool_registration_flow_recovers(auth: AuthService, certs: tuple[Path, Path]) -> None:
    """A pool IMPU the gateway registered (seed 004 §6.X.2.2.4) is a UE of its own: when the
    P-CSCF closes its connection, it reconnects from the same port and registers again; the
    other pool registrations are untouched."""
    async with tcp_pcscf_and_gateway(
        auth, certs, pools=("web",), pool_passwords=(f"web={POOL_PASSWORD}",)
    ) as (pcscf, server):
        regs = server.gateway.pools.regs
        registers = pcscf.registers()
        assert len(regs) == len(registers) == 3
        (peer, first), *others = registers
        pcscf.drop(peer[1])
        await eventually(lambda: len(pcscf.registers()) == 4)
        again_peer, again = pcscf.registers()[-1]
        assert again_peer == peer and again.to.uri == first.to.uri and contact_port(again) == peer[1]
        assert again.call_id == first.call_id and again.cseq.seq > first.cseq.seq
        assert all(pcscf.accepted.count(p) == 1 for p, _ in others)
        (reg,) = [r for r in regs.values() if r.ims_port == peer[1]]
        assert reg.active and reg.ims_flow is not None and reg.ims_flow.stream is not None
        assert not reg.ims_flow.stream.closed


async def test_a_moved_pool_flow_removes_its_old_contact(auth: AuthService, certs: tuple[Path, Path]) -> None:
    """The P-CSCF restarts while one pool registration's port is taken: that registration comes
    back on a new port and its REGISTER removes the Contact on the old one (``expires=0``, RFC
    3261 §10.2.2); the others come back on their ports and remove nothing."""
    async with tcp_pcscf_and_gateway(
        auth, certs, pools=("web",), pool_passwords=(f"web={POOL_PASSWORD}",), flow_retry_base=0.5
    ) as (pcscf, server):
        firsts = pcscf.registers()
        assert len(firsts) == 3
        (peer, first) = firsts[0]
        await pcscf.stop()
        blockers: list[socket.socket] = []
        try:
            await asyncio.sleep(0.1)  # the first attempt fails: nothing listens
            await pcscf.start()
            blockers.append(await _take(peer[1], pcscf.port))
            await eventually(lambda: len(pcscf.registers()) == 6, timeout=10)
            again = {str(r.to.uri): (p, r) for p, r in pcscf.registers()[3:]}
            new_peer, moved = again[str(first.to.uri)]
            assert new_peer[1] != peer[1] and contact_port(moved) == new_peer[1]
            assert removed_contacts(moved) == [str(first.contact[0].uri)]
            for other_peer, other in firsts[1:]:
                back_peer, back = again[str(other.to.uri)]
                assert back_peer == other_peer and removed_contacts(back) == []
            (reg,) = [r for r in server.gateway.pools.regs.values() if r.ims_port == new_peer[1]]
            assert reg.retired_contact is None and reg.active
        finally:
            for blocker in blockers:
                blocker.close()


async def test_flows_lost_together_reconnect_paced(auth: AuthService, certs: tuple[Path, Path]) -> None:
    """A P-CSCF restart drops every UE's connection at once: the gateway reconnects and
    registers them again ``flow_recovery_rate`` per second (here 20: 50 ms apart), not all
    at once toward a P-CSCF that has just come back; every one of them comes back."""
    async with tcp_pcscf_and_gateway(auth, certs, flow_recovery_rate=20.0) as (pcscf, server):
        users = ("dave", "erin", "frank", "gina")
        wics = [Wic(server.url, origin=ORIGIN, user=u) for u in users]
        try:
            for wic in wics:
                await wic.connect()
                assert (await wic.register(headers=[bearer(token_for(auth, wic.user))])).status == 200
            first = list(pcscf.accepted)
            for _, port in first:
                pcscf.drop(port)
            await eventually(lambda: len(pcscf.registers()) == 2 * len(users))
            assert sorted(pcscf.accepted[len(users) :]) == sorted(first)  # each from its own port
            times = pcscf.accepted_at[len(users) :]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert all(gap >= 0.04 for gap in gaps), gaps  # 50 ms slots (the loop's timer granularity)
        finally:
            for wic in wics:
                await wic.close()


async def test_a_flow_ended_while_recovering_stops_trying(
    auth: AuthService, certs: tuple[Path, Path]
) -> None:
    """A WIC de-registers while its flow cannot reconnect: the recovery stops, no socket is
    left and nothing is registered when the P-CSCF comes back."""
    async with tcp_pcscf_and_gateway(auth, certs) as (pcscf, server):
        dave = Wic(server.url, origin=ORIGIN, user="dave")
        await dave.connect()
        try:
            assert (await dave.register(headers=[bearer(token_for(auth, "dave"))])).status == 200
            await pcscf.stop()
            await asyncio.sleep(0.1)
            answer = await dave.register(0, headers=[bearer(token_for(auth, "dave"))])
            assert answer.status in (200, 503), answer  # the IMS side is down: no answer from it
            await eventually(lambda: not server.gateway.bindings.by_id and not server.gateway.ims.ue_flows)
            pcscf.accepted.clear()
            pcscf.requests.clear()
            await pcscf.start()
            await asyncio.sleep(1.0)  # longer than the backoff
            assert len(pcscf.registers()) == 0 and not pcscf.accepted
            assert not server.gateway.ims.endpoint.transport.connections
        finally:
            await dave.close()


async def _take(port: int, pcscf_port: int) -> socket.socket:
    """Connect to the P-CSCF from ``port`` on the gateway's address, so that a flow cannot
    reconnect from that port (the connection it would make exists). The port itself stays the
    flow's: its listener holds it, and only a socket of the same user with ``SO_REUSEPORT``
    shares it, as this one does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setblocking(False)
    try:
        sock.bind((GATEWAY_HOST, port))
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", pcscf_port))
    except BaseException:
        sock.close()
        raise
    return sock
