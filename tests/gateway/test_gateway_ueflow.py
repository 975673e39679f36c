"""Behind an operator P-CSCF each WIC registration has its own Mw flow (seed 004; TS 24.229
§5.2.6.3.1, TS 33.203 §7.1: without IPsec the P-CSCF knows a UE by its address and port).

The next hop here is a scripted P-CSCF on a real UDP socket: it answers REGISTERs with 200
(the Contact with its expiry), MESSAGEs with 200, and records the source address of each
request, which is what a P-CSCF binds a registration to. It can also send requests to a
registered Contact, as a P-CSCF does for terminating requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import resource
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import GATEWAY_HOST, ORIGIN, POOL_PASSWORD, LabFactory, gateway_on, token_for
from test_gateway_modes import core_bindings, eventually
from wicclient import Wic, bearer

from webims.auth.service import AuthService
from webims.gateway.run import GatewayServer, connections_that_fit, descriptors_needed, raise_nofile
from webims.gateway.settings import GatewayConfig
from webims.gateway.state import SqliteRegistrationStore
from webims.labcore import LabCore
from webims.sip import NameAddr, Request, Response, parse, parse_name_addr
from webims.sip.uri import SipURI
from webims.store import Store


@dataclass
class Seen:
    method: str
    source: tuple[str, int]
    contact: str | None
    request: Request


@dataclass
class ScriptedPcscf(asyncio.DatagramProtocol):
    """A P-CSCF as far as a UE's source address goes (module docstring)."""

    seen: list[Seen] = field(default_factory=list)
    answers: list[tuple[Response, tuple[str, int]]] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None
    silent: bool = False  # records requests without answering (a P-CSCF that is overloaded)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse(data)
        if isinstance(message, Response):
            self.answers.append((message, (addr[0], addr[1])))
            return
        contacts = live_contacts(message)
        contact = str(contacts[0].uri) if contacts else None
        self.seen.append(Seen(message.method, (addr[0], addr[1]), contact, message))
        if message.method == "ACK" or self.silent:
            return
        assert self.transport is not None
        self.transport.sendto(pcscf_answer(message).serialize(), addr)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port}"

    def registers(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "REGISTER"]

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)


def pcscf_answer(request: Request) -> Response:
    """The scripted P-CSCF's 200: to a REGISTER with the Contact it adds (its expiry) and the
    registered identity in P-Associated-URI; to anything else a bare 200."""
    headers: list[tuple[str, str]] = []
    live = live_contacts(request)
    if request.method == "REGISTER" and live:
        expires = request.expires if request.expires is not None else 600
        headers = [
            ("Contact", f"<{live[0].uri}>;expires={expires}"),
            ("P-Associated-URI", f"<{request.to.uri}>"),
        ]
    return request.response(200, to_tag="pcscf", headers=headers)


def live_contacts(request: Request) -> list[NameAddr]:
    """The Contacts a REGISTER adds or refreshes (not those it removes with expires=0)."""
    return [c for c in request.contact if c.expires != 0]


def removed_contacts(request: Request) -> list[str]:
    """The Contacts a REGISTER removes (expires=0, RFC 3261 §10.2.2)."""
    return [str(c.uri) for c in request.contact if c.expires == 0]


@contextlib.asynccontextmanager
async def scripted_pcscf() -> AsyncIterator[ScriptedPcscf]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(ScriptedPcscf, local_addr=("127.0.0.1", 0))
    try:
        yield protocol
    finally:
        transport.close()


def port_of(uri: str) -> int:
    parsed = parse_name_addr(f"<{uri}>").uri
    assert isinstance(parsed, SipURI) and parsed.port is not None
    return parsed.port


def message_to(
    contact: str, source_port: int, body: bytes = b"from the IMS", transport: str = "UDP"
) -> bytes:
    """A terminating MESSAGE as the P-CSCF sends it to a registered Contact."""
    return (
        f"MESSAGE {contact} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{source_port};branch=z9hG4bK-term-{source_port}-{len(body)}\r\n"
        "Max-Forwards: 69\r\n"
        "From: <sip:alice@ims.test>;tag=a1\r\n"
        f"To: <{contact}>\r\n"
        f"Call-ID: term-{len(body)}@pcscf\r\n"
        "CSeq: 1 MESSAGE\r\n"
        "P-Asserted-Identity: <sip:alice@ims.test>\r\n"
        "Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def test_each_wic_registers_and_sends_from_its_own_port(
    auth: AuthService, certs: tuple[Path, Path]
) -> None:
    async with (
        scripted_pcscf() as pcscf,
        gateway_on(pcscf.uri, auth, certs, topology="behind-p-cscf", pcscf=pcscf.uri) as server,
    ):
        gateway = server.gateway
        dave = Wic(server.url, origin=ORIGIN, user="dave")
        erin = Wic(server.url, origin=ORIGIN, user="erin")
        await dave.connect()
        await erin.connect()
        try:
            for wic in (dave, erin):
                ok = await wic.register(headers=[bearer(token_for(auth, wic.user))])
                assert ok.status == 200, ok
            registers = pcscf.registers()
            assert len(registers) == 2
            ports = [s.source[1] for s in registers]
            # two UEs for the P-CSCF: two source ports, neither the shared Mw listener's, each the
            # port of the Contact it registered (where the P-CSCF's terminating requests go)
            assert len(set(ports)) == 2 and gateway.ims.port not in ports
            assert all(s.source[0] == GATEWAY_HOST for s in registers)
            for seen in registers:
                assert seen.contact is not None and port_of(seen.contact) == seen.source[1]
                via = seen.request.top_via
                assert via.port == seen.source[1]  # responses come back to that flow (RFC 3261 §18.2.2)
            assert gateway.ims.endpoint.transport.private_udp == 2
            # out-of-dialog requests of each WIC leave from its own flow
            contact_of = {s.request.to.uri.user: s.contact for s in registers}  # type: ignore[union-attr]
            for wic in (dave, erin):
                sent = await wic.request("MESSAGE", "sip:bob@ims.test", [("Content-Type", "text/plain")], b"")
                assert sent.status == 200, sent
                last = [s for s in pcscf.seen if s.method == "MESSAGE"][-1]
                contact = contact_of[wic.user]
                assert contact is not None and last.source[1] == port_of(contact)
            # a terminating request to dave's Contact arrives on dave's socket, reaches dave, and
            # its answer leaves from that socket
            dave_contact = contact_of["dave"]
            assert dave_contact is not None
            pcscf.send(message_to(dave_contact, pcscf.port), (GATEWAY_HOST, port_of(dave_contact)))
            got = await dave.wait_request("MESSAGE")
            assert got.body == b"from the IMS"
            await eventually(lambda: any(r.status == 200 for r, _ in pcscf.answers))
            ((answer, source),) = [(r, s) for r, s in pcscf.answers if r.cseq.method == "MESSAGE"]
            assert answer.status == 200 and source == (GATEWAY_HOST, port_of(dave_contact))
        finally:
            await dave.close()
            await erin.close()


async def test_ue_flow_closes_when_the_binding_ends(auth: AuthService, certs: tuple[Path, Path]) -> None:
    async with (
        scripted_pcscf() as pcscf,
        gateway_on(pcscf.uri, auth, certs, topology="behind-p-cscf", pcscf=pcscf.uri) as server,
    ):
        layer = server.gateway.ims.endpoint.transport
        dave = Wic(server.url, origin=ORIGIN, user="dave")
        await dave.connect()
        try:
            assert (await dave.register(headers=[bearer(token_for(auth, "dave"))])).status == 200
            (seen,) = pcscf.registers()
            port = seen.source[1]
            assert layer.private_udp == 1
            assert (await dave.register(0, headers=[bearer(token_for(auth, "dave"))])).status == 200
            gone = pcscf.registers()[-1]
            assert gone.source[1] == port and gone.request.expires == 0  # de-registered from its flow
            await eventually(lambda: layer.private_udp == 0 and not server.gateway.ims.ue_flows)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind((GATEWAY_HOST, port))  # the socket is closed: its port is free
        finally:
            await dave.close()


def restartable(
    pcscf: ScriptedPcscf, auth: AuthService, certs: tuple[Path, Path], tmp_path: Path, **overrides: Any
) -> contextlib.AbstractAsyncContextManager[GatewayServer]:
    """A gateway behind ``pcscf`` whose registrations are kept in ``tmp_path``'s state store,
    started again with them (each call a new start)."""
    return gateway_on(
        pcscf.uri, auth, certs, topology="behind-p-cscf", pcscf=pcscf.uri,
        store=SqliteRegistrationStore(Store(tmp_path / "state.db")), restart_grace=30.0, **overrides,
    )  # fmt: skip


async def register_and_leave(server: GatewayServer, auth: AuthService, user: str) -> None:
    """``user``'s WIC registers (web-token) and closes its WebSocket: within ``restart_grace``
    the binding stays, for a restart to restore."""
    wic = Wic(server.url, origin=ORIGIN, user=user)
    await wic.connect()
    assert (await wic.register(headers=[bearer(token_for(auth, user))])).status == 200
    await wic.close()


async def test_a_restarted_gateway_takes_back_each_flows_port(
    auth: AuthService, certs: tuple[Path, Path], tmp_path: Path
) -> None:
    """The P-CSCF holds the UE's address: after a restart the restored binding's flow binds the
    same port, and a terminating request to its Contact is answered from it (430: its WIC has
    not come back yet, RFC 5626 §5.3). When that port is taken the flow gets another and the
    gateway registers the new Contact (TNA: it can)."""
    async with scripted_pcscf() as pcscf:
        async with restartable(pcscf, auth, certs, tmp_path) as server:
            for user in ("dave", "erin"):
                await register_and_leave(server, auth, user)
            first = {s.request.to.uri.user: s for s in pcscf.registers()}  # type: ignore[union-attr]
            await server.gateway.store.flush()
        dave_port = first["dave"].source[1]
        erin_port = first["erin"].source[1]
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind((GATEWAY_HOST, erin_port))  # erin's old port is taken meanwhile
        try:
            async with restartable(pcscf, auth, certs, tmp_path) as server:
                by_aor = {b.aor: b for b in server.gateway.bindings}
                assert by_aor["sip:dave@ims.test"].ims_flow.port == dave_port
                erin_flow = by_aor["sip:erin@ims.test"].ims_flow
                assert erin_flow is not None and erin_flow.port != erin_port
                # erin's new Contact is registered from the new port
                await eventually(lambda: len(pcscf.registers()) == 3)
                again = pcscf.registers()[-1]
                assert again.source[1] == erin_flow.port and again.contact is not None
                assert port_of(again.contact) == erin_flow.port
                assert removed_contacts(again.request) == [first["erin"].contact]  # RFC 3261 §10.2.2
                erins = [s for s in pcscf.registers() if "erin" in str(s.request.to.uri)]
                assert len({s.request.call_id for s in erins}) == 1  # one registration, a new Contact
                # the P-CSCF reaches dave's restored flow at the old address
                contact = first["dave"].contact
                assert contact is not None
                pcscf.send(message_to(contact, pcscf.port, b"after the restart"), (GATEWAY_HOST, dave_port))
                await eventually(lambda: any(r.cseq.method == "MESSAGE" for r, _ in pcscf.answers))
                ((answer, source),) = [(r, s) for r, s in pcscf.answers if r.cseq.method == "MESSAGE"]
                assert answer.status == 430 and source == (GATEWAY_HOST, dave_port)
        finally:
            blocker.close()


async def test_a_contact_to_remove_outlives_a_second_restart(
    auth: AuthService, certs: tuple[Path, Path], tmp_path: Path
) -> None:
    """erin's port is taken while the gateway restarts: her flow moves and the REGISTER that
    would remove the old Contact gets no answer before the gateway stops again. The next start
    (the new port free, the old still taken) removes the old Contact then (RFC 3261 §10.2.2):
    what was to be removed is kept with the binding, not only in memory."""

    def gateway() -> contextlib.AbstractAsyncContextManager[GatewayServer]:
        return restartable(pcscf, auth, certs, tmp_path)

    async with scripted_pcscf() as pcscf:
        async with gateway() as server:
            await register_and_leave(server, auth, "erin")
            (first,) = pcscf.registers()
            await server.gateway.store.flush()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind(first.source)  # erin's old port is taken meanwhile, and stays so
        try:
            pcscf.silent = True
            async with gateway() as server:
                (binding,) = server.gateway.bindings
                moved_port = binding.ims_flow.port
                assert moved_port != first.source[1] and binding.retired_contact is not None
                await eventually(lambda: len(pcscf.registers()) == 2)
                assert removed_contacts(pcscf.registers()[-1].request) == [first.contact]  # unanswered
                await server.gateway.store.flush()
            pcscf.silent = False
            async with gateway() as server:
                (binding,) = server.gateway.bindings
                assert binding.ims_flow.port == moved_port  # free again: the flow takes it back
                await eventually(lambda: len(pcscf.registers()) == 3)
                last = pcscf.registers()[-1]
                assert last.source[1] == moved_port and last.contact is not None
                assert port_of(last.contact) == moved_port
                assert removed_contacts(last.request) == [first.contact]
                await eventually(lambda: binding.retired_contact is None)  # its 200 came
        finally:
            blocker.close()


async def test_no_flow_toward_the_pcscf_is_a_503_and_no_binding(
    auth: AuthService, certs: tuple[Path, Path]
) -> None:
    """Over TCP a UE's flow is its own connection: when it cannot be opened the WIC gets a 503
    saying so (with Retry-After), and the gateway keeps nothing of the attempt."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))  # a port nobody listens on: connection refused
        refused = f"sip:127.0.0.1:{closed.getsockname()[1]};transport=tcp"
        async with gateway_on(
            refused, auth, certs, topology="behind-p-cscf", pcscf=refused, mw_transport="tcp"
        ) as server:
            dave = Wic(server.url, origin=ORIGIN, user="dave")
            await dave.connect()
            try:
                answer = await dave.register(headers=[bearer(token_for(auth, "dave"))])
                assert answer.status == 503, answer
                assert "no flow toward the P-CSCF" in answer.reason
                assert answer.headers.get("Retry-After")
                assert not server.gateway.bindings.by_id and not server.gateway.ims.ue_flows
                assert not server.gateway.ims.endpoint.transport.connections
            finally:
                await dave.close()


async def test_as_the_pcscf_there_is_one_listener(make_lab: LabFactory, core: LabCore) -> None:
    """The ``p-cscf`` topology keeps its one shared Mw listener: no flow per WIC."""
    async with make_lab() as lab:
        wics = [Wic(lab.url, origin=ORIGIN, user=u) for u in ("dave", "erin")]
        try:
            for wic in wics:
                await wic.connect()
                assert (await wic.register(headers=[bearer(token_for(lab.auth, wic.user))])).status == 200
            ims = lab.gateway.ims
            assert ims.endpoint.transport.private_udp == 0 and not ims.ue_flows
            assert all(b.ims_flow is None for b in lab.gateway.bindings)
            for wic in wics:  # the IMS reaches every WIC by the one listener (our Path entry)
                (binding,) = core_bindings(lab, wic.aor)
                assert binding.path and f":{ims.port};" in str(binding.path[0])
        finally:
            for wic in wics:
                await wic.close()


def test_the_run_path_asks_for_a_descriptor_per_flow() -> None:
    """10,000 WICs behind a P-CSCF: 10,000 WebSockets and 10,000 Mw flows (plus a margin; over
    TCP a flow is a connection, the listener on its port and one the P-CSCF may open there); as
    the P-CSCF one each. ``raise_nofile`` never lowers the limit and stays within the hard one."""
    hop = "sip:127.0.0.1"
    behind = GatewayConfig(icscf=hop, domain="ims.test", topology="behind-p-cscf", pcscf=hop)
    assert descriptors_needed(behind, 10_000) == 2 * 10_000 + 1024
    over_tcp = GatewayConfig(
        icscf=hop, domain="ims.test", topology="behind-p-cscf", pcscf=hop, mw_transport="tcp"
    )
    assert descriptors_needed(over_tcp, 10_000) == 4 * 10_000 + 1024  # connection, listener, accepted
    assert connections_that_fit(over_tcp, 20_000) == 4_744
    assert descriptors_needed(GatewayConfig(icscf=hop, domain="ims.test"), 10_000) == 10_000 + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connections_that_fit(behind, descriptors_needed(behind, 10_000)) == 10_000
    assert connections_that_fit(behind, 20_000) == 9_488  # this machine's hard limit
    assert connections_that_fit(GatewayConfig(icscf=hop, domain="ims.test"), 20_000) == 18_976
    assert raise_nofile(1) == soft  # never lowered
    want = soft + 16 if hard == resource.RLIM_INFINITY else min(hard, soft + 16)
    assert raise_nofile(want) == want == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def test_pool_registrations_have_flows_of_their_own(
    auth: AuthService, certs: tuple[Path, Path]
) -> None:
    """Seed 004 §6.X.2.2.4/§6.X.2.2.5: each pool IMPU the gateway registers is a UE of its own for
    the P-CSCF; a WIC given a pooled IMPU sends from that registration's flow."""
    async with scripted_pcscf() as pcscf, gateway_on(
        pcscf.uri, auth, certs, topology="behind-p-cscf", pcscf=pcscf.uri,
        pools=("web",), pool_passwords=(f"web={POOL_PASSWORD}",),
    ) as server:  # fmt: skip
        regs = server.gateway.pools.regs
        registers = pcscf.registers()
        assert len(regs) == len(registers) == 3
        ports = {s.source[1] for s in registers}
        assert len(ports) == 3 and {r.ims_port for r in regs.values()} == ports
        assert all(s.contact is not None and port_of(s.contact) == s.source[1] for s in registers)
        pat = Wic(server.url, origin=ORIGIN, user="pat", domain="web.example")
        await pat.connect()
        try:
            ok = await pat.register(headers=[bearer(token_for(auth, "pat"))])
            assert ok.status == 200, ok
            impu = ok.headers.get("P-Associated-URI", "").strip("<>")
            sent = await pat.request("MESSAGE", "sip:bob@ims.test", [("Content-Type", "text/plain")], b"")
            assert sent.status == 200, sent
            (message,) = [s for s in pcscf.seen if s.method == "MESSAGE"]
            assert message.source[1] == regs[impu].ims_port
            regs[impu].ims_flow.end()  # its flow is gone (the pool registration ended under pat)
            refused = await pat.request("MESSAGE", "sip:bob@ims.test", [("Content-Type", "text/plain")], b"")
            assert refused.status == 503 and "flow is closed" in refused.reason, refused
            assert refused.headers.get("Retry-After") == str(server.gateway.config.retry_after)
            assert len([s for s in pcscf.seen if s.method == "MESSAGE"]) == 1
        finally:
            await pat.close()


_BINDS: list[list[tuple[str, int]]] = []  # while recording: the addresses sockets are bound to


def _bind_seen(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.bind" and _BINDS and isinstance(args[1], tuple):
        _BINDS[-1].append((str(args[1][0]), int(args[1][1])))


@functools.cache
def _hook_binds() -> None:
    sys.addaudithook(_bind_seen)  # once, for the rest of the run: hooks cannot be removed


@contextlib.contextmanager
def recording_binds() -> Iterator[list[tuple[str, int]]]:
    """The (host, port) of every ``socket.bind`` of this process meanwhile, in order (the
    interpreter's audit event, which compiled code raises too: the real binds, nothing stubbed)."""
    _hook_binds()
    _BINDS.append([])
    try:
        yield _BINDS[-1]
    finally:
        _BINDS.pop()


async def test_pool_registrations_are_restored_with_their_ports(
    auth: AuthService, certs: tuple[Path, Path], tmp_path: Path
) -> None:
    """A restarted gateway opens each kept pool registration's flow on its old port with the
    bindings' and registers nothing again for those; the one whose old port is taken gets a new
    port and registers again at once, removing the Contact on the old one (RFC 3261 §10.2.2), in
    the same registration (Call-ID). Every old port, the bindings' and the pools', is asked for
    before any new (ephemeral) one, which could take it: the binds the restart makes show it
    (a binding whose port is taken too, erin's, moves in the same restart)."""

    def gateway() -> contextlib.AbstractAsyncContextManager[GatewayServer]:
        pool = {"pools": ("web",), "pool_passwords": (f"web={POOL_PASSWORD}",)}
        return restartable(pcscf, auth, certs, tmp_path, **pool)

    async with scripted_pcscf() as pcscf:
        async with gateway() as server:
            for user in ("dave", "erin"):
                await register_and_leave(server, auth, user)
            first = {str(s.request.to.uri): s for s in pcscf.registers()}
            pool_ports = {impu: reg.ims_port for impu, reg in server.gateway.pools.regs.items()}
            await server.gateway.store.flush()
        assert len(pool_ports) == 3 and set(pool_ports) < set(first)
        taken, *kept = sorted(pool_ports)
        dave_port, erin_port = (first[f"sip:{user}@ims.test"].source[1] for user in ("dave", "erin"))
        old_ports = {*pool_ports.values(), dave_port, erin_port}
        with contextlib.ExitStack() as blockers:
            for port in (pool_ports[taken], erin_port):  # taken meanwhile
                blocker = blockers.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                blocker.bind((GATEWAY_HOST, port))
            seen = len(pcscf.registers())
            with recording_binds() as binds:
                async with gateway() as server:
                    started = [port for host, port in binds if host == GATEWAY_HOST]
                    restore = started[min(started.index(port) for port in old_ports) :]
                    flows = [port for port in restore if port in old_ports | {0}]
                    assert sorted(flows[:5]) == sorted(old_ports) and flows[5:] == [0, 0], started
                    regs = server.gateway.pools.regs
                    for impu in kept:
                        flow = regs[impu].ims_flow
                        assert flow is not None and flow.port == pool_ports[impu]
                    dave, erin = sorted(server.gateway.bindings, key=lambda b: str(b.impu))
                    assert dave.ims_flow.port == dave_port and erin.ims_flow.port != erin_port
                    moved = regs[taken].ims_flow
                    assert moved is not None and moved.port != pool_ports[taken]
                    await eventually(lambda: len(pcscf.registers()) == seen + 2)
                    await asyncio.sleep(0.3)  # nothing else comes: the others were not registered again
                    again = {str(s.request.to.uri): s for s in pcscf.registers()[seen:]}
                    assert set(again) == {taken, "sip:erin@ims.test"}
                    assert again["sip:erin@ims.test"].source[1] == erin.ims_flow.port
                    assert again[taken].source[1] == moved.port
                    assert again[taken].request.call_id == first[taken].request.call_id
                    assert removed_contacts(again[taken].request) == [first[taken].contact]
                    reg = regs[taken]
                    await eventually(lambda: reg.ims_port == moved.port and reg.retired_contact is None)


def test_raise_nofile_raises_the_hard_limit_when_privileged() -> None:
    """10,000 WICs behind a P-CSCF need more descriptors than a 20,000 hard limit: a process that
    may (CAP_SYS_RESOURCE) raises the hard limit too; one that may not (this machine's root lacks
    it) stays within it, and the gateway then takes fewer WICs (``connections_that_fit``).
    In a child process, so that this test run's own limits stay as they are."""
    import subprocess
    import sys

    probe = (
        "import resource; from webims.gateway.run import raise_nofile; "
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE); "
        "want = hard + 64 if hard != resource.RLIM_INFINITY else soft + 64; "
        "print(want, raise_nofile(want), *resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    want, got, soft, hard = (int(x) for x in out.stdout.split())
    nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    effective = next(
        int(line.split()[1], 16) for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("CapEff:")
    )  # fmt: skip
    if effective >> 24 & 1 and want <= nr_open:  # CAP_SYS_RESOURCE (capability 24)
        assert got == soft == hard == want
    else:
        assert got == soft <= hard < want
