"""Private flows of a :class:`TransportLayer`: ``open_udp`` sockets and ``open_connection``
connections (one UE's own flow toward a P-CSCF, TS 33.203 §7.1) with the gated listener on
their port, and ``input_pending``."""

from __future__ import annotations

import asyncio
import resource
import socket

import pytest
from sipwire import Responder, StreamClient, UdpClient, options

from webims.sip import Response, parse
from webims.transport import ConnectionLimits, StreamConnection, TransportLayer, UdpConnection


async def test_private_udp_socket_delivers_to_the_same_handler_and_is_not_shared() -> None:
    responder = Responder()
    async with TransportLayer(responder) as layer:
        main = await layer.listen_udp("127.0.0.1", 0)
        private = await layer.open_udp("127.0.0.1", 0)
        assert private.local[1] not in (0, main.local[1]) and layer.private_udp == 1
        client = await UdpClient.open()
        client.send(options(transport="UDP", via_port=client.port, rport=True), private.local)
        answer = parse(await client.datagram())
        assert isinstance(answer, Response) and answer.status == 200
        _, conn = responder.requests[0]
        assert isinstance(conn, UdpConnection) and conn.local == private.local  # answered from it
        # connect() gives flows of the listeners, never of a private socket
        flow = await layer.connect("UDP", "127.0.0.1", client.port)
        assert flow.local == main.local
        # a flow of the private socket sends from its port
        private.flow(("127.0.0.1", client.port)).send(options(transport="UDP", via_port=private.local[1]))
        _, source = await asyncio.wait_for(client.received.get(), 10)
        assert source == private.local
        layer.close_udp(private)
        await private.wait_closed()
        assert layer.private_udp == 0 and private.closed
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(private.local)  # its port is free again
        client.close()


async def test_layer_close_closes_private_sockets() -> None:
    layer = TransportLayer(Responder())
    private = await layer.open_udp("127.0.0.1", 0)
    await layer.close()
    assert private.closed
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(private.local)  # closed by the time close() returns: a restart may bind it


async def test_input_pending_polls_the_listeners_only() -> None:
    """Datagrams queued on a listener make ``input_pending`` true (the endpoint reads them before
    firing timers); a private socket's are left to the loop (it is not polled)."""
    async with TransportLayer(Responder()) as layer:
        main = await layer.listen_udp("127.0.0.1", 0)
        private = await layer.open_udp("127.0.0.1", 0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            assert not layer.input_pending()
            sender.sendto(b"\r\n\r\n", private.local)  # no await: the loop has not read it
            assert not layer.input_pending()
            sender.sendto(b"\r\n\r\n", main.local)
            assert layer.input_pending()
        await asyncio.sleep(0.05)  # the loop reads (and drops) the keep-alives
        assert not layer.input_pending()


async def test_input_pending_with_descriptors_beyond_fd_setsize() -> None:
    """``select()`` cannot take a descriptor >= FD_SETSIZE (1024): a gateway with thousands of
    sockets has its listener up there. ``poll()`` can."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    fillers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(1030)]
    try:
        async with TransportLayer(Responder()) as layer:
            main = await layer.listen_udp("127.0.0.1", 0)
            assert main.fileno >= 1024
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.sendto(b"\r\n\r\n", main.local)
                assert layer.input_pending()
    finally:
        for s in fillers:
            s.close()


async def test_open_connection_is_a_new_unshared_connection() -> None:
    accepted: list[tuple[str, int]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("peername")[:2])
        await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with TransportLayer(Responder()) as layer:
            shared = await layer.connect("TCP", "127.0.0.1", port)
            own = await layer.open_connection("TCP", "127.0.0.1", port, local=("127.0.0.1", 0))
            other = await layer.open_connection("TCP", "127.0.0.1", port)
            assert len({shared.local, own.local, other.local}) == 3
            assert await layer.connect("TCP", "127.0.0.1", port) is shared  # still the shared one
            assert layer.find("TCP", "127.0.0.1", port) is shared
            assert own in layer.connections  # known to the layer (closed with it)
            shared.close()
            await shared.wait_closed()
            again = await layer.connect("TCP", "127.0.0.1", port)
            assert again is not own and again is not other  # a private one is never reused
            for _ in range(50):
                if len(accepted) == 4:
                    break
                await asyncio.sleep(0.02)
            assert len(accepted) == 4
    finally:
        server.close()


class _OnlyFrom:
    """A :class:`~webims.transport.stream.Gate` admitting one address, at most ``limit`` at a time."""

    def __init__(self, host: str, limit: int) -> None:
        self.host, self.limit = host, limit
        self.open: set[StreamConnection] = set()

    def admit(self, conn: StreamConnection) -> bool:
        if conn.remote[0] != self.host or len(self.open) >= self.limit:
            return False
        self.open.add(conn)
        return True

    def dismiss(self, conn: StreamConnection) -> None:
        self.open.discard(conn)


async def test_a_private_connection_shares_its_port_with_a_gated_listener() -> None:
    """A UE flow's TCP port: the listener (``shared_port``, with a ``gate``) and the connection
    made from that port (``open_connection(shared_port=True)``) coexist, also after the
    connection is made again from the same port; the gate alone decides who is accepted (not
    the layer's per-source limit), and its connections are not reused by ``connect()``. A
    port some other socket holds still cannot be shared."""
    responder = Responder()
    remotes: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: remotes.append(w), "127.0.0.1", 0)
    remote = server.sockets[0].getsockname()[1]
    gate = _OnlyFrom("127.0.0.1", limit=2)
    limits = ConnectionLimits(max_connections_per_source=1)
    async with TransportLayer(responder, connection_limits=limits) as layer:
        listener = await layer.listen_tcp("127.0.0.2", 0, gate=gate, shared_port=True)
        port = listener.local[1]
        local = ("127.0.0.2", port)
        conn = await layer.open_connection("TCP", "127.0.0.1", remote, local=local, shared_port=True)
        assert conn.local == ("127.0.0.2", port)
        while not remotes:
            await asyncio.sleep(0.01)
        remotes[0].close()  # the far end closes (as a P-CSCF restarting: the TIME_WAIT is its own)
        await asyncio.wait_for(conn.wait_closed(), 5.0)
        again = await layer.open_connection("TCP", "127.0.0.1", remote, local=local, shared_port=True)
        assert again.local == ("127.0.0.2", port)  # the listener held the port meanwhile
        clients = [await StreamClient.open("127.0.0.2", port, local_addr=("127.0.0.1", 0)) for _ in range(2)]
        for client in clients:  # two from one source, over the layer's limit of one: the gate's call
            await client.send(options(transport="TCP", via_port=None))
            assert (await client.response()).status == 200
        assert len(gate.open) == 2
        assert layer.find("TCP", "127.0.0.1", clients[0].writer.get_extra_info("sockname")[1]) is None
        third = await StreamClient.open("127.0.0.2", port, local_addr=("127.0.0.1", 0))
        assert await third.closed_by_peer()  # over the gate's limit
        stranger = await StreamClient.open("127.0.0.2", port, local_addr=("127.0.0.3", 0))
        assert await stranger.closed_by_peer()  # not the gate's address
        with socket.socket() as other:  # without SO_REUSEPORT: the port is not shared with it
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError):
                other.bind(("127.0.0.2", port))
        layer.close_listener(listener)
        await listener.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await StreamClient.open("127.0.0.2", port)
        for client in (*clients, third, stranger):
            client.writer.close()
        await asyncio.sleep(0.05)
        assert not gate.open  # dismissed as they closed
    server.close()
