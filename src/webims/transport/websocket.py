"""SIP over WebSocket, WS and WSS (RFC 7118), on an aiohttp web server.

:func:`mount_websocket` adds the SIP WebSocket route (default ``/sip``) to an
existing ``aiohttp.web.Application``, so the gateway can share the port of the
web server (WWSF); :func:`serve_websocket` runs a server of its own.

The upgrade is refused, before any WebSocket exists, when:

- the client does not offer the ``sip`` subprotocol (RFC 7118 §4): HTTP 400;
- the ``Origin`` is not allowed (RFC 6455 §10.2, against cross-site WebSocket
  hijacking): HTTP 403.  Allowed are the exact origins listed (``"*"`` allows
  every origin), and with ``allow_same_origin`` the origin of the server itself
  (the scheme and the ``Host`` the browser connected to).  A request without
  ``Origin`` comes from a non-browser client (browsers always send it, RFC 6455
  §4.1); it is refused unless ``allow_missing_origin`` is set;
- it is not a valid opening handshake (RFC 6455 §4.2.1): HTTP 400 (426 for
  another protocol version, §4.4);
- the connection limits of the layer are reached: HTTP 503.

aiohttp answers the HTTP request (101, RFC 6455 §4.2.2); from then on the bytes of
the connection go to :class:`WebSocketConnection`, a sans-queue RFC 6455 server
endpoint: frames are parsed as they arrive (§5.2: masked client frames,
fragmentation, ping/pong, the close handshake of §7) and each complete message is
parsed as SIP and delivered at once, with no task, queue or timer per connection or
per message (10,000 WICs per process).  Frames are written straight to the
transport.

Text and binary messages are both accepted (RFC 7118 §5.1); each one is a whole
SIP message.  A malformed request is answered 400 on the same WebSocket, which
stays open; a message larger than ``Limits.max_message_bytes`` is answered 513
(when it is a request) and the WebSocket closed with 1009 (above twice the limit
it is closed at once, without reading the message).  A CRLFCRLF message gets a CRLF
answer (RFC 5626 §4.4.1 style keep-alive).  ``heartbeat`` sends WebSocket pings and
closes a peer that does not answer within half of it; ``idle_timeout`` (of the
layer) closes a WebSocket that sent no message for that long (WebSocket pongs do
not count).  Both are checked by one periodic sweep over the connections.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import logging
import ssl
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, web

from webims.sip import ParseError
from webims.sip.framing import PONG_BYTES, Ping, Pong, parse_frame

from .base import Connection, Message, Source, TransportClosed, error_reply, host_key
from .layer import TransportLayer

__all__ = [
    "SIP_SUBPROTOCOL",
    "OriginPolicy",
    "WebSocketConnection",
    "WebSocketEndpoint",
    "WebSocketServer",
    "mount_websocket",
    "normalize_origin",
    "serve_websocket",
]

log = logging.getLogger("webims.transport")

#: The WebSocket subprotocol of RFC 7118 §4 (IANA "WebSocket Subprotocol Name Registry").
SIP_SUBPROTOCOL = "sip"

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

OriginKey = tuple[str, str, int]


def normalize_origin(origin: str) -> OriginKey | None:
    """``scheme://host[:port]`` as (scheme, host, port) with the default port made
    explicit (RFC 6454 §6.2 serialisation, compared as §5 says); None when it is
    not a tuple origin (e.g. ``null``)."""
    try:
        url = urlsplit(origin.strip())
        port = url.port
    except ValueError:
        return None
    scheme = url.scheme.lower()
    if not url.hostname or scheme not in _DEFAULT_PORTS or url.path not in ("", "/") or url.username:
        return None
    return scheme, host_key(url.hostname), port or _DEFAULT_PORTS[scheme]


class OriginPolicy:
    """Which ``Origin`` values may open the SIP WebSocket (checked at upgrade)."""

    def __init__(self, origins: Iterable[str] = (), *, allow_same_origin: bool = True,
                 allow_missing_origin: bool = False) -> None:
        listed = list(origins)
        self.allow_any = "*" in listed
        self.origins: frozenset[OriginKey] = frozenset(
            key for o in listed if o != "*" and (key := normalize_origin(o)) is not None)
        bad = [o for o in listed if o != "*" and normalize_origin(o) is None]
        if bad:
            raise ValueError(f"not an origin (scheme://host[:port]): {bad[0]!r}")
        self.allow_same_origin = allow_same_origin
        self.allow_missing_origin = allow_missing_origin

    def allows(self, origin: str | None, request: web.BaseRequest) -> bool:
        if origin is None:
            return self.allow_missing_origin
        if self.allow_any:
            return True
        key = normalize_origin(origin)
        if key is None:
            return False
        if key in self.origins:
            return True
        if self.allow_same_origin:
            own = normalize_origin(f"{request.scheme}://{request.host}")
            return own is not None and own == key
        return False


#: RFC 6455 §1.3: the GUID hashed with the client's key into Sec-WebSocket-Accept.
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: How long our Close frame waits for the peer's (RFC 6455 §7.1.1) before the TCP connection goes.
CLOSE_TIMEOUT = 5.0
# opcodes (RFC 6455 §5.2, §11.8)
_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: Close codes an endpoint may receive (RFC 6455 §7.4.1; 1012-1014 from the IANA registry);
#: 3000-4999 are for libraries and applications.
_RECEIVABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """RFC 6455 §5.3: XOR with the 4-byte masking key (as one big integer, in C)."""
    n = len(payload)
    if not n or mask == b"\0\0\0\0":
        return payload
    key = (mask * ((n + 3) >> 2))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def _is_utf8(raw: bytes) -> bool:
    if raw.isascii():
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _frame_header(opcode: int, length: int) -> bytes:
    """A final, unmasked server frame header (RFC 6455 §5.2, §5.1: servers never mask)."""
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big")
    return bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big")


class _GoneTransport(asyncio.Transport):
    """Stands for the transport of a connection that is lost: closing, writes nothing."""

    def is_closing(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


_GONE = _GoneTransport()
_NO_VIEW = memoryview(bytearray(0))


class WebSocketConnection(Connection, asyncio.BufferedProtocol):
    """One SIP WebSocket (server side, RFC 6455 after the opening handshake).

    After the upgrade it is the protocol of the connection (reading into ``read_view``, a
    buffer its endpoint shares between all connections: no read buffer per connection)
    and writes its frames to the transport; bytes aiohttp already held when it took over
    arrive through ``feed_data`` (it is also aiohttp's payload parser), and aiohttp still
    hears of ``connection_lost`` (its server's bookkeeping).
    """

    __slots__ = (
        "_buffer", "_close_handle", "_closing", "_done", "_finished", "_fragments", "_http", "_last_frame",
        "_last_message", "_loop", "_ping_at", "_transport", "_view", "layer", "on_closed", "outgoing",
        "source",
    )  # fmt: skip

    def __init__(self, layer: TransportLayer, transport: asyncio.Transport, source: Source,
                 read_view: memoryview | None = None) -> None:
        self._view = read_view if read_view is not None else memoryview(bytearray(65536))
        self._http: asyncio.BaseProtocol | None = None  # aiohttp's protocol, told of connection_lost
        self.layer = layer
        self.source = source
        self.outgoing = False
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._buffer = b""
        self._fragments: list[bytes] | None = None  # a fragmented message in progress (§5.4)
        self._closing = False  # our Close frame is out (or the connection failed)
        self._close_handle: asyncio.TimerHandle | None = None
        self._done: asyncio.Future[None] | None = None  # made by wait_closed()
        self._finished = False
        self.on_closed: Callable[[], None] | None = None  # once, when the WebSocket is over
        self._last_frame = self._last_message = self._loop.time()
        self._ping_at: float | None = None  # heartbeat ping awaiting its pong

    @property
    def closed(self) -> bool:
        return self._closing or self._transport.is_closing()

    def send(self, data: Message | bytes) -> None:
        if self.closed:
            raise TransportClosed(f"{self.source} is closed")
        raw = data if isinstance(data, bytes) else data.serialize()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("send on %s:\n%s", self.source, raw.decode("utf-8", "replace"))
        self._send_message(raw)

    def close(self, code: int = WSCloseCode.GOING_AWAY, reason: bytes = b"") -> None:
        """Start the closing handshake (RFC 6455 §7.1.2): our Close frame, then the TCP
        connection goes when the peer's Close arrives (or after ``CLOSE_TIMEOUT``)."""
        if self._closing:
            return
        self._closing = True
        if self._transport.is_closing():
            return
        self._write(_CLOSE, code.to_bytes(2, "big") + reason[:123])
        self._close_handle = self._loop.call_later(CLOSE_TIMEOUT, self._close_transport)

    async def wait_closed(self) -> None:
        if self._finished:
            return
        if self._done is None:
            self._done = self._loop.create_future()
        await asyncio.shield(self._done)

    # -- asyncio.BufferedProtocol (the transport's protocol once aiohttp hands it over)
    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.feed_data(self._view[:nbytes].tobytes())

    def eof_received(self) -> bool | None:
        return None  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        http, self._http = self._http, None
        if http is not None:
            http.connection_lost(exc)  # aiohttp forgets the connection (and feeds us EOF)
        # The transport refers to us as its protocol: let go of it (and of a read buffer that
        # may be shared) so that a closed connection is freed by reference counting, not left
        # as a cycle with its TLS buffers for a rare full collection.
        self._transport = _GONE
        self._view = _NO_VIEW
        self._finish()

    # -- aiohttp payload parser interface (RequestHandler.set_parser)
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        """Bytes from the network: parse every complete frame (RFC 6455 §5.2)."""
        buf = self._buffer + data if self._buffer else data
        pos = 0
        end = len(buf)
        max_size = 2 * self.layer.limits.max_message_bytes
        while end - pos >= 2 and not self._transport.is_closing():
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            at = pos + 2
            if length == 126:
                if end - at < 2:
                    break
                length = int.from_bytes(buf[at : at + 2], "big")
                at += 2
            elif length == 127:
                if end - at < 8:
                    break
                length = int.from_bytes(buf[at : at + 8], "big")
                at += 8
            opcode = b0 & 0x0F
            if b0 & 0x70 or not b1 & 0x80:  # RSV bits without an extension (§5.2); unmasked (§5.1)
                self._fail(WSCloseCode.PROTOCOL_ERROR, "reserved bits set" if b0 & 0x70 else "unmasked frame")
                break
            if opcode >= 0x8 and (not b0 & 0x80 or length > 125):  # §5.5
                self._fail(WSCloseCode.PROTOCOL_ERROR, "fragmented or long control frame")
                break
            pending = sum(map(len, self._fragments)) if self._fragments else 0
            if length + pending > max_size:
                log.info("message too large on %s: %d bytes", self.source, length + pending)
                self._fail(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
                break
            if end - at < 4 + length:
                break
            mask = buf[at : at + 4]
            at += 4
            payload = _unmask(buf[at : at + length], mask)
            pos = at + length
            self._last_frame = self._loop.time()
            self._on_frame(opcode, bool(b0 & 0x80), payload)
        self._buffer = buf[pos:] if pos < end and not self._transport.is_closing() else b""
        if len(self._buffer) > max_size + 14:  # pragma: no cover - bounded by the checks above
            self._fail(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
        return False, b""

    def feed_eof(self) -> None:
        """The TCP connection is gone."""
        self._finish()

    def _finish(self) -> None:
        """The WebSocket is over (closing handshake done, failed, or the TCP connection
        gone): :meth:`wait_closed` returns, whatever TLS still does to close."""
        self._closing = True
        self._buffer = b""
        self._fragments = None
        if self._finished:
            return
        self._finished = True
        if self._close_handle is not None:
            self._close_handle.cancel()
            self._close_handle = None
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
        if self.on_closed is not None:
            on_closed, self.on_closed = self.on_closed, None
            on_closed()

    def _close_transport(self) -> None:
        self._transport.close()
        self._finish()

    # -- frames
    def _on_frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode in (_TEXT, _BINARY):
            if self._fragments is not None:
                self._fail(WSCloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
            elif fin:
                self._on_message(opcode, payload)
            else:
                self._fragments = [bytes((opcode,)), payload]
        elif opcode == _CONTINUATION:
            fragments = self._fragments
            if fragments is None:
                self._fail(WSCloseCode.PROTOCOL_ERROR, "continuation without a message")
            elif fin:
                self._fragments = None
                self._on_message(fragments[0][0], b"".join(fragments[1:]) + payload)
            else:
                fragments.append(payload)
        elif opcode == _PING:
            if not self._closing:
                self._write(_PONG, payload)  # §5.5.3
        elif opcode == _PONG:
            self._ping_at = None
        elif opcode == _CLOSE:
            self._on_close(payload)
        else:
            self._fail(WSCloseCode.PROTOCOL_ERROR, f"unknown opcode {opcode}")

    def _on_message(self, opcode: int, data: bytes) -> None:
        if self._closing:
            return  # §7.1.4: after our Close, data is discarded
        if opcode == _TEXT and not _is_utf8(data):  # §8.1
            self._fail(WSCloseCode.INVALID_TEXT, "text message is not UTF-8")
            return
        self._last_message = self._last_frame
        try:
            self._frame(data)
        except Exception:  # a bug must not end the WebSocket (nor reach the peer)
            log.exception("unexpected error reading from %s", self.source)

    def _on_close(self, payload: bytes) -> None:
        """The peer's Close (§5.5.1): answer it (echoing its code) unless ours is out, then
        close the TCP connection (§7.1.1: the server closes it first)."""
        code: int = WSCloseCode.OK
        if len(payload) == 1:
            code = WSCloseCode.PROTOCOL_ERROR
        elif len(payload) >= 2:
            received = int.from_bytes(payload[:2], "big")
            if not _is_utf8(payload[2:]):
                code = WSCloseCode.INVALID_TEXT
            elif received in _RECEIVABLE_CLOSE_CODES or 3000 <= received < 5000:
                code = received
            else:
                code = WSCloseCode.PROTOCOL_ERROR
        if not self._closing:
            self._closing = True
            self._write(_CLOSE, code.to_bytes(2, "big") if payload else b"")
        self._close_transport()

    def _fail(self, code: int, why: str) -> None:
        """Fail the WebSocket connection (RFC 6455 §7.1.7): a Close frame, then the TCP connection."""
        log.info("WebSocket %s failed: %s (%d)", self.source, why, code)
        if not self._closing and not self._transport.is_closing():
            self._write(_CLOSE, code.to_bytes(2, "big"))
        self._close_transport()

    def _write(self, opcode: int, payload: bytes) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        transport.write(_frame_header(opcode, len(payload)) + payload)

    def _send_message(self, raw: bytes) -> None:
        """One SIP message in one frame: text when it is UTF-8, else binary (RFC 7118 §5.1)."""
        self._write(_TEXT if _is_utf8(raw) else _BINARY, raw)
        if self._transport.get_write_buffer_size() > self.layer.connection_limits.max_write_buffer:
            log.warning("%s: peer does not read (write buffer full); closing", self.source)
            self._transport.abort()
            self._finish()

    def _frame(self, data: bytes) -> None:
        if len(data) > self.layer.limits.max_message_bytes:
            log.info("message too large on %s: %d bytes", self.source, len(data))
            reply = error_reply(data, 513, "Message Too Large")
            if reply is not None:
                self._send_message(reply)
            self.close(WSCloseCode.MESSAGE_TOO_BIG)
            return
        try:
            event = parse_frame(data, self.layer.limits)
        except ParseError as exc:
            log.info("bad message on %s: %d %s", self.source, exc.status, exc.reason)
            reply = error_reply(data, exc.status, exc.reason)
            if reply is not None:
                self._send_message(reply)
            return
        if isinstance(event, Ping):
            self._send_message(PONG_BYTES)
        elif not isinstance(event, Pong):
            self.layer.deliver(event, self)

    # -- the endpoint's periodic sweep
    def _check(self, now: float, idle_timeout: float | None, heartbeat: float | None) -> None:
        if self._closing:
            return
        if idle_timeout is not None and now - self._last_message >= idle_timeout:
            log.info("closing idle WebSocket %s", self.source)
            self.close(WSCloseCode.GOING_AWAY, b"idle")
        elif heartbeat is not None:
            if self._ping_at is not None:
                if self._last_frame < self._ping_at and now - self._ping_at >= heartbeat / 2:
                    log.info("no pong from %s within %.1f s: closing", self.source, heartbeat / 2)
                    self._close_transport()  # 1006: abnormal closure, as aiohttp's heartbeat
                elif self._last_frame >= self._ping_at:
                    self._ping_at = None
            elif now - self._last_frame >= heartbeat:
                self._ping_at = now
                self._write(_PING, b"")


def _token_list(value: str) -> set[str]:
    return {t.strip().lower() for t in value.split(",") if t.strip()}


class WebSocketEndpoint:
    """The aiohttp handler of the SIP WebSocket route (see :func:`mount_websocket`).

    ``on_upgrade(request, connection)`` runs for each accepted WebSocket before the layer
    sees it (the gateway keeps the upgrade's cookie there).
    """

    def __init__(self, layer: TransportLayer, *, path: str = "/sip", policy: OriginPolicy | None = None,
                 heartbeat: float | None = 30.0, compress: bool = False,
                 on_upgrade: Callable[[web.BaseRequest, WebSocketConnection], None] | None = None) -> None:
        self.layer = layer
        self.path = path
        self.policy = policy if policy is not None else OriginPolicy()
        self.heartbeat = heartbeat
        self.compress = compress  # permessage-deflate is never negotiated (RFC 7692 is optional)
        self.on_upgrade = on_upgrade
        self.connections: set[WebSocketConnection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        # every connection reads into this (a read is handled before the next one starts)
        self._read_view = memoryview(bytearray(65536))

    def _refuse(self, request: web.BaseRequest) -> web.Response | None:
        """The opening handshake checks of RFC 6455 §4.2.1 (and ours): an error response, or None."""
        headers = request.headers
        origin = headers.get("Origin")
        if not self.policy.allows(origin, request):
            log.info("WebSocket upgrade from %s refused: origin %r not allowed", request.remote, origin)
            return web.Response(status=403, text="Origin not allowed\n")
        offered = [p.strip() for p in headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if SIP_SUBPROTOCOL not in offered:
            log.info("WebSocket upgrade from %s refused: no 'sip' subprotocol", request.remote)
            return web.Response(status=400, text="WebSocket subprotocol 'sip' required (RFC 7118)\n")
        if ("websocket" not in _token_list(headers.get("Upgrade", ""))
                or "upgrade" not in _token_list(headers.get("Connection", ""))
                or request.version < (1, 1)):
            return web.Response(status=400, text="Not a WebSocket upgrade\n")
        if headers.get("Sec-WebSocket-Version", "").strip() != "13":
            return web.Response(status=426, headers={"Sec-WebSocket-Version": "13"},
                                text="WebSocket version 13 required\n")  # §4.4
        try:
            if len(base64.b64decode(headers.get("Sec-WebSocket-Key", "").strip(), validate=True)) != 16:
                raise ValueError
        except (binascii.Error, ValueError):
            return web.Response(status=400, text="Bad Sec-WebSocket-Key\n")
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        remote_host = host_key(str(peer[0])) if peer else (request.remote or "")
        if not self.layer.admit(remote_host):
            return web.Response(status=503, headers={"Retry-After": "30"}, text="Too many connections\n")
        key = request.headers["Sec-WebSocket-Key"].strip().encode()
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
        response = web.StreamResponse(status=101, reason="Switching Protocols", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accept,
            "Sec-WebSocket-Protocol": SIP_SUBPROTOCOL,
        })  # fmt: skip
        response.force_close()
        try:
            await response.prepare(request)
        except BaseException:
            self.layer.release(remote_host)
            raise
        source = Source(
            "WSS" if request.secure else "WS",
            remote_host, int(peer[1]) if peer else 0,
            host_key(str(sock[0])) if sock else "", int(sock[1]) if sock else 0,
            self.layer.next_id(), origin=request.headers.get("Origin"), path=request.path,
        )
        conn = WebSocketConnection(self.layer, transport, source, self._read_view)
        conn.on_closed = functools.partial(self._closed, conn, remote_host)
        protocol = request.protocol
        protocol.set_parser(conn)  # type: ignore[arg-type]  # the bytes after the 101 come to us
        protocol.keep_alive(False)
        self.connections.add(conn)
        try:
            if self.on_upgrade is not None:
                self.on_upgrade(request, conn)
            self.layer.register(conn)
            self._arm()
        except BaseException:
            conn._close_transport()
            raise
        # Hand-over: the bytes aiohttp already read after the 101 went to ``conn`` (its payload
        # parser, just above); from now on the transport delivers to ``conn`` itself, and aiohttp
        # no longer knows the transport (so it neither writes nor closes it when this handler
        # returns); ``conn`` tells aiohttp's protocol when the connection is lost. The request,
        # its tasks and this coroutine are then gone: an idle WebSocket costs its TLS state and
        # ``conn``, not a suspended HTTP request.
        protocol.transport = None
        conn._http = protocol
        transport.set_protocol(conn)
        return response

    def _closed(self, conn: WebSocketConnection, remote_host: str) -> None:
        self.connections.discard(conn)
        self.layer.unregister(conn, None)
        self.layer.release(remote_host)

    def _arm(self) -> None:
        idle = self.layer.connection_limits.idle_timeout
        periods = [p for p in (idle, self.heartbeat / 2 if self.heartbeat else None) if p is not None]
        if self._sweep is not None or not periods or not self.connections:
            return
        tick = min(max(min(periods) / 4, 0.02), 5.0)
        self._sweep = asyncio.get_running_loop().call_later(tick, self._check_all)

    def _check_all(self) -> None:
        """One pass over the connections for idle timeouts and heartbeats (no timer each)."""
        self._sweep = None
        now = asyncio.get_running_loop().time()
        idle = self.layer.connection_limits.idle_timeout
        for conn in list(self.connections):
            conn._check(now, idle, self.heartbeat)
        self._arm()

    async def on_shutdown(self, app: web.Application) -> None:
        """Close every SIP WebSocket with 1001 (going away) when the app stops."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        conns = list(self.connections)
        for conn in conns:
            conn.close(WSCloseCode.GOING_AWAY, b"server shutdown")
        await asyncio.gather(*(c.wait_closed() for c in conns), return_exceptions=True)


def mount_websocket(
    app: web.Application,
    layer: TransportLayer,
    *,
    path: str = "/sip",
    origins: Iterable[str] = (),
    allow_same_origin: bool = True,
    allow_missing_origin: bool = False,
    heartbeat: float | None = 30.0,
    compress: bool = False,
) -> WebSocketEndpoint:
    """Add the SIP WebSocket route ``GET path`` to ``app`` (before it starts).

    ``origins``: exact allowed origins such as ``"https://wic.example.com"``
    (``"*"``: any); see the module docstring for the other checks.
    ``compress`` allows permessage-deflate (off: it costs memory per connection
    for little gain on SIP-sized messages).
    """
    endpoint = WebSocketEndpoint(
        layer, path=path, heartbeat=heartbeat, compress=compress,
        policy=OriginPolicy(origins, allow_same_origin=allow_same_origin,
                            allow_missing_origin=allow_missing_origin),
    )
    app.router.add_get(path, endpoint.handle)
    app.on_shutdown.append(endpoint.on_shutdown)
    return endpoint


class WebSocketServer:
    """A stand-alone aiohttp server carrying only the SIP WebSocket route."""

    def __init__(self, runner: web.AppRunner, site: web.BaseSite, endpoint: WebSocketEndpoint,
                 local: tuple[str, int], secure: bool) -> None:
        self.runner = runner
        self.site = site
        self.endpoint = endpoint
        self.local = local
        self.secure = secure

    @property
    def url(self) -> str:
        scheme = "wss" if self.secure else "ws"
        host = f"[{self.local[0]}]" if ":" in self.local[0] else self.local[0]
        return f"{scheme}://{host}:{self.local[1]}{self.endpoint.path}"

    async def close(self) -> None:
        await self.runner.cleanup()


async def serve_websocket(
    layer: TransportLayer,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl_context: ssl.SSLContext | None = None,
    path: str = "/sip",
    origins: Iterable[str] = (),
    allow_same_origin: bool = True,
    allow_missing_origin: bool = False,
    heartbeat: float | None = 30.0,
    compress: bool = False,
) -> WebSocketServer:
    """Serve SIP over WS (or WSS with ``ssl_context``) on ``host:port`` (0: any free port)."""
    app = web.Application()
    endpoint = mount_websocket(
        app, layer, path=path, origins=origins, allow_same_origin=allow_same_origin,
        allow_missing_origin=allow_missing_origin, heartbeat=heartbeat, compress=compress)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    name = runner.addresses[0]
    return WebSocketServer(runner, site, endpoint, (host_key(str(name[0])), int(name[1])),
                           ssl_context is not None)
