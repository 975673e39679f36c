"""Wire fixtures and small peers for the transport tests.

Messages follow RFC 3261 §10.2 / RFC 3665 §2.1 (REGISTER) and RFC 3261 §11.1
(OPTIONS), written as the bytes a UA sends.  :class:`Responder` is the tiny
test UAS: it answers on the connection a request came in on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable

from webims.sip import Request, Response
from webims.sip.framing import Ping, Pong, StreamFramer
from webims.transport import Connection, Handler, Message

_branches = itertools.count(1)


def branch() -> str:
    return f"z9hG4bK-test-{next(_branches)}"


def register(via_host: str = "client.invalid", via_port: int | None = 5060, *, transport: str = "TCP",
             rport: bool = True, call_id: str = "843817637684230@998sdasdh09", cseq: int = 1826,
             br: str | None = None) -> bytes:
    """RFC 3665 §2.1 F1 shaped REGISTER (Bob registers with biloxi.example.com)."""
    sent_by = via_host if via_port is None else f"{via_host}:{via_port}"
    return (
        "REGISTER sips:ss2.biloxi.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by};branch={br or branch()}{';rport' if rport else ''}\r\n"
        "Max-Forwards: 70\r\n"
        "From: Bob <sips:bob@biloxi.example.com>;tag=a73kszlfl\r\n"
        "To: Bob <sips:bob@biloxi.example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: <sips:bob@{via_host}>\r\n"
        "Expires: 7200\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    ).encode()


def options(via_host: str = "client.invalid", via_port: int | None = 5060, *, transport: str = "TCP",
            rport: bool = True, cseq: int = 63104, br: str | None = None, method: str = "OPTIONS",
            extra: str = "") -> bytes:
    """RFC 3261 §11.1 OPTIONS (Alice asks Carol)."""
    sent_by = via_host if via_port is None else f"{via_host}:{via_port}"
    return (
        f"{method} sip:carol@chicago.com SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by};branch={br or branch()}{';rport' if rport else ''}\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:carol@chicago.com>\r\n"
        "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:alice@pc33.atlanta.com>\r\n"
        "Accept: application/sdp\r\n"
        f"{extra}"
        "Content-Length: 0\r\n"
        "\r\n"
    ).encode()


def bad_cseq(via_host: str = "client.invalid", *, transport: str = "TCP") -> bytes:
    """An OPTIONS whose CSeq has no number (RFC 4475 §3.1.2 spirit): framing holds."""
    return options(via_host, transport=transport, br="z9hG4bK-bad-cseq").replace(
        b"CSeq: 63104 OPTIONS", b"CSeq: abc OPTIONS")


class Responder(Handler):
    """Answers REGISTER/OPTIONS/MESSAGE 200 on the connection they came in on.

    The 200 carries ``X-Source`` (what the transport said about the connection).
    ``BOOM`` requests make it raise.  Responses and connection events are kept
    for the tests to look at.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[Request, Connection]] = []
        self.responses: asyncio.Queue[tuple[Response, Connection]] = asyncio.Queue()
        self.made: list[Connection] = []
        self.lost: asyncio.Queue[Connection] = asyncio.Queue()

    def message_received(self, message: Message, conn: Connection) -> Awaitable[None] | None:
        if isinstance(message, Response):
            self.responses.put_nowait((message, conn))
            return None
        self.requests.append((message, conn))
        if message.method == "BOOM":
            raise RuntimeError("handler bug: secret-traceback-text")
        if message.method == "ACK":
            return None
        s = conn.source
        headers = [("X-Source", f"{s.transport} {s.remote_host} {s.remote_port} {s.connection_id} "
                                f"{s.origin} {s.path}")]
        if message.method == "REGISTER":
            headers += [("Contact", f"{message.headers.get('contact')};expires=600")]
        conn.send_response(message.response(200, to_tag="resp1", headers=headers))
        return None

    def connection_made(self, conn: Connection) -> None:
        self.made.append(conn)

    def connection_lost(self, conn: Connection, exc: BaseException | None) -> None:
        self.lost.put_nowait(conn)


class StreamClient:
    """A raw TCP/TLS SIP client on asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.framer = StreamFramer(role="client")

    @classmethod
    async def open(cls, host: str, port: int, **kwargs: object) -> StreamClient:
        reader, writer = await asyncio.open_connection(host, port, **kwargs)  # type: ignore[arg-type]
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def event(self, timeout: float = 10.0) -> Request | Response | Ping | Pong:
        """The next message or pong (the timeout only guards against a hang)."""

        async def read() -> Request | Response | Ping | Pong:
            while (event := self.framer.next_event()) is None:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError("connection closed")
                self.framer.feed(data)
            return event

        return await asyncio.wait_for(read(), timeout)

    async def response(self) -> Response:
        event = await self.event()
        assert isinstance(event, Response), event
        return event

    async def closed_by_peer(self, timeout: float = 10.0) -> bool:
        """True when the server closes (EOF or reset) before ``timeout``."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except (ConnectionError, OSError):
            return True
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


class UdpClient(asyncio.DatagramProtocol):
    """A UDP socket that queues what it receives."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> UdpClient:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(cls, local_addr=(host, 0))
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def datagram(self, timeout: float = 10.0) -> bytes:
        data, _ = await asyncio.wait_for(self.received.get(), timeout)
        return data

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
