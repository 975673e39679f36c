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
- the connection limits of the layer are reached: HTTP 503.

Text and binary messages are both accepted (RFC 7118 §5.1); each one is a whole
SIP message.  A malformed request is answered 400 on the same WebSocket, which
stays open; a message larger than ``Limits.max_message_bytes`` is answered 513
(when it is a request) and the WebSocket closed with 1009 (above twice the limit
aiohttp closes at once, without reading the message).  A CRLFCRLF message gets a CRLF answer (RFC 5626 §4.4.1
style keep-alive).  ``heartbeat`` sends WebSocket pings and closes a peer that
does not answer; ``idle_timeout`` (of the layer) closes a WebSocket that sent no
message for that long (WebSocket pongs do not count).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from webims.sip import ParseError
from webims.sip.framing import PONG_BYTES, Ping, Pong, parse_frame

from .base import Connection, IdleTimer, Message, Source, TransportClosed, error_reply, host_key
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


class WebSocketConnection(Connection):
    """One SIP WebSocket (server side).  ``send`` queues frames; a writer task,
    alive only while there is something to send, keeps their order."""

    def __init__(self, layer: TransportLayer, ws: web.WebSocketResponse, source: Source) -> None:
        self.layer = layer
        self.ws = ws
        self.source = source
        self.outgoing = False
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing = False
        self._idle: IdleTimer | None = None
        self._close_task: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closing or self.ws.closed

    def send(self, data: Message | bytes) -> None:
        if self.closed:
            raise TransportClosed(f"{self.source} is closed")
        raw = data if isinstance(data, bytes) else data.serialize()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("send on %s:\n%s", self.source, raw.decode("utf-8", "replace"))
        self._enqueue(raw)

    def close(self, code: int = WSCloseCode.GOING_AWAY, reason: bytes = b"") -> None:
        if self._closing:
            return
        self._closing = True
        self._close_task = asyncio.ensure_future(self._close(code, reason))

    async def wait_closed(self) -> None:
        await asyncio.shield(self._done)

    async def drain(self) -> None:
        writer = self._writer
        if writer is not None:
            await asyncio.shield(writer)

    # -- internals
    def _enqueue(self, raw: bytes) -> None:
        self._queue.append(raw)
        self._queued_bytes += len(raw)
        if self._queued_bytes > self.layer.connection_limits.max_write_buffer:
            log.warning("%s: peer does not read (write queue full); closing", self.source)
            self._queue.clear()
            self.close(WSCloseCode.TRY_AGAIN_LATER)
            return
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        try:
            while self._queue:
                raw = self._queue.popleft()
                self._queued_bytes -= len(raw)
                opcode = WSMsgType.TEXT if _is_utf8(raw) else WSMsgType.BINARY  # RFC 7118 §5.1
                await self.ws.send_frame(raw, opcode)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("send failed on %s: %s", self.source, exc)
            self._queue.clear()
            self._queued_bytes = 0
        finally:
            self._writer = None

    async def _close(self, code: int, reason: bytes) -> None:
        try:
            if self._writer is not None:
                await asyncio.shield(self._writer)
            await self.ws.close(code=code, message=reason)
        except Exception as exc:  # a peer that is already gone
            log.debug("close of %s: %s", self.source, exc)

    def _frame(self, data: bytes) -> None:
        if len(data) > self.layer.limits.max_message_bytes:
            log.info("message too large on %s: %d bytes", self.source, len(data))
            reply = error_reply(data, 513, "Message Too Large")
            if reply is not None:
                self._enqueue(reply)
            self.close(WSCloseCode.MESSAGE_TOO_BIG)
            return
        try:
            event = parse_frame(data, self.layer.limits)
        except ParseError as exc:
            log.info("bad message on %s: %d %s", self.source, exc.status, exc.reason)
            reply = error_reply(data, exc.status, exc.reason)
            if reply is not None:
                self._enqueue(reply)
            return
        if isinstance(event, Ping):
            self._enqueue(PONG_BYTES)
        elif not isinstance(event, Pong):
            self.layer.deliver(event, self)

    async def run(self) -> None:
        """Read messages until the WebSocket closes."""
        loop = asyncio.get_running_loop()
        self._idle = IdleTimer(loop, self.layer.connection_limits.idle_timeout, self._idle_expired)
        error: BaseException | None = None
        try:
            async for msg in self.ws:
                if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                    self._idle.touch()
                    data = msg.data
                    try:
                        self._frame(data.encode() if isinstance(data, str) else data)
                    except Exception:  # a bug must not end the WebSocket (nor reach the peer)
                        log.exception("unexpected error reading from %s", self.source)
                elif msg.type is WSMsgType.ERROR:
                    error = msg.data if isinstance(msg.data, BaseException) else None
                    log.info("WebSocket error on %s: %s", self.source, msg.data)
                    break
        finally:
            self._closing = True
            self._idle.cancel()
            if self._writer is not None:
                self._writer.cancel()
            if not self._done.done():
                self._done.set_result(None)
            self.layer.unregister(self, error)

    def _idle_expired(self) -> None:
        log.info("closing idle WebSocket %s", self.source)
        self.close(WSCloseCode.GOING_AWAY, b"idle")


def _is_utf8(raw: bytes) -> bool:
    if raw.isascii():
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class WebSocketEndpoint:
    """The aiohttp handler of the SIP WebSocket route (see :func:`mount_websocket`)."""

    def __init__(self, layer: TransportLayer, *, path: str = "/sip", policy: OriginPolicy | None = None,
                 heartbeat: float | None = 30.0, compress: bool = False) -> None:
        self.layer = layer
        self.path = path
        self.policy = policy if policy is not None else OriginPolicy()
        self.heartbeat = heartbeat
        self.compress = compress
        self.connections: set[WebSocketConnection] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not self.policy.allows(origin, request):
            log.info("WebSocket upgrade from %s refused: origin %r not allowed", request.remote, origin)
            return web.Response(status=403, text="Origin not allowed\n")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if SIP_SUBPROTOCOL not in offered:
            log.info("WebSocket upgrade from %s refused: no 'sip' subprotocol", request.remote)
            return web.Response(status=400, text="WebSocket subprotocol 'sip' required (RFC 7118)\n")
        ws = web.WebSocketResponse(
            protocols=(SIP_SUBPROTOCOL,),
            heartbeat=self.heartbeat,
            # Up to twice the limit the message is read whole, answered 513 and the
            # WebSocket closed cleanly with 1009; beyond that aiohttp drops it at once.
            max_msg_size=2 * self.layer.limits.max_message_bytes,
            compress=self.compress,
        )
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="Not a WebSocket upgrade\n")
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        sock = transport.get_extra_info("sockname") if transport is not None else None
        remote_host = host_key(str(peer[0])) if peer else (request.remote or "")
        if not self.layer.admit(remote_host):
            return web.Response(status=503, headers={"Retry-After": "30"}, text="Too many connections\n")
        try:
            await ws.prepare(request)
            source = Source(
                "WSS" if request.secure else "WS",
                remote_host, int(peer[1]) if peer else 0,
                host_key(str(sock[0])) if sock else "", int(sock[1]) if sock else 0,
                self.layer.next_id(), origin=origin, path=request.path,
            )
            conn = WebSocketConnection(self.layer, ws, source)
            self.connections.add(conn)
            self.layer.register(conn)
            try:
                await conn.run()
            finally:
                self.connections.discard(conn)
        finally:
            self.layer.release(remote_host)
        return ws

    async def on_shutdown(self, app: web.Application) -> None:
        """Close every SIP WebSocket with 1001 (going away) when the app stops."""
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
