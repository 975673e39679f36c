"""What every SIP transport shares: sources, connections, handlers, limits.

A transport (UDP, TCP, TLS, WS, WSS) turns bytes from the network into parsed
messages (:mod:`webims.sip.framing`) and hands each one, with the
:class:`Connection` it came in on, to a :class:`Handler`.  The handler answers on
that same connection (RFC 3261 §18.2.2; RFC 7118 §5: a response to a request
received over a WebSocket goes back on that WebSocket) or asks the
:class:`~webims.transport.layer.TransportLayer` for a connection to a host.

Connections are not a sans-IO core: this package is the asyncio side of
DESIGN.md §1 and may import asyncio, socket and ssl.
"""

from __future__ import annotations

import abc
import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mypy_extensions import mypyc_attr

from webims.sip import ParseError, Request, Response, parse_cseq, parse_name_addr
from webims.sip.headers import parse_vias
from webims.sip.message import REASON_PHRASES

__all__ = [
    "DEFAULT_PORTS",
    "RELIABLE_TRANSPORTS",
    "TRANSPORTS",
    "Connection",
    "ConnectionLimits",
    "Handler",
    "Message",
    "MessageCallback",
    "Source",
    "TransportClosed",
    "TransportError",
    "error_reply",
    "host_key",
]

log = logging.getLogger("webims.transport")

Message = Request | Response

#: Via transport tokens (RFC 3261 §20.42, RFC 7118 §5.2).
TRANSPORTS = ("UDP", "TCP", "TLS", "WS", "WSS")
RELIABLE_TRANSPORTS = frozenset({"TCP", "TLS", "WS", "WSS"})
#: Default ports when a Via sent-by has none (RFC 3261 §18.2.2, §19.1.2; RFC 7118 §5.2
#: has no SIP default for WS, so the HTTP ones apply).
DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "WS": 80, "WSS": 443}


class TransportError(Exception):
    """A transport could not carry a message (RFC 3261 §18.4 "transport error")."""


class TransportClosed(TransportError):
    """Sending on a connection that is closed."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Explicit limits for connection-oriented transports (DESIGN.md §6.5).

    ``max_connections`` and ``max_connections_per_source`` count connections
    accepted from peers (TCP, TLS, WS and WSS together; the source is the remote
    IP address).  ``idle_timeout`` closes an accepted connection that received
    nothing (no message, no keep-alive) for that many seconds; ``None`` never
    does.  Connections we opened are not counted and never idle out.
    ``max_write_buffer`` aborts a connection whose peer stops reading.
    """

    max_connections: int = 10_000
    max_connections_per_source: int = 100
    idle_timeout: float | None = 900.0
    max_write_buffer: int = 1 << 20
    connect_timeout: float = 10.0
    tls_handshake_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.max_connections_per_source < 1:
            raise ValueError("connection limits must be at least 1")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive or None")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a message came from and which connection carries it.

    ``transport`` is the Via token (UDP, TCP, TLS, WS, WSS).  For WebSocket
    connections ``origin`` is the HTTP Origin of the upgrade request and ``path``
    the request path (RFC 7118 §4, RFC 6455 §10.2).  ``connection_id`` is unique
    in the process; for UDP it names the flow (local socket, remote address) of
    RFC 5626 §3.
    """

    transport: str
    remote_host: str
    remote_port: int
    local_host: str
    local_port: int
    connection_id: int
    origin: str | None = None
    path: str | None = None

    @property
    def remote(self) -> tuple[str, int]:
        return (self.remote_host, self.remote_port)

    @property
    def local(self) -> tuple[str, int]:
        return (self.local_host, self.local_port)

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE_TRANSPORTS

    @property
    def secure(self) -> bool:
        return self.transport in ("TLS", "WSS")

    def __str__(self) -> str:
        return f"{self.transport} {_hostport(self.remote_host, self.remote_port)} #{self.connection_id}"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_HOST_KEYS: dict[str, str] = {}
_HOST_KEYS_MAX = 16_384


def host_key(host: str) -> str:
    """A host in canonical form for comparisons and table keys: no IPv6 brackets,
    lower case, IP addresses in their compressed form.

    Every message passes here several times (Via, source address, flows): results are
    remembered (a bounded table, emptied when full, so hostile names cannot grow it).
    """
    key = _HOST_KEYS.get(host)
    if key is None:
        key = _canonical_host(host)
        if len(_HOST_KEYS) >= _HOST_KEYS_MAX:
            _HOST_KEYS.clear()
        _HOST_KEYS[host] = key
    return key


def bound_socket(host: str, port: int, kind: socket.SocketKind, *, shared_port: bool = False,
                 receive_buffer: int = 0) -> socket.socket:
    """A non-blocking socket of ``kind`` bound to the address ``host`` (no resolver: uvloop's
    ``local_addr`` asks getaddrinfo in its thread pool even for an address), ``port`` (0: an
    ephemeral one). ``shared_port``: ``SO_REUSEADDR`` and ``SO_REUSEPORT``, so that a TCP
    listener and an outgoing connection share the port (a UE flow's, :mod:`.stream`); only
    sockets of this process's user with the same options share it, a port another socket holds
    still fails with ``OSError``. ``receive_buffer``: ``SO_RCVBUF`` asked for (not fatal)."""
    address = host_key(host)
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, kind)
    try:
        if shared_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if receive_buffer:
            receive_buffer_of(sock, receive_buffer, host, port)
        sock.setblocking(False)
        sock.bind((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def receive_buffer_of(sock: socket.socket, size: int, host: str, port: int) -> None:
    """Ask for a ``size``-byte receive buffer (the kernel caps it at net.core.rmem_max)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError as exc:  # not fatal: the default buffer
        log.debug("SO_RCVBUF on %s:%d: %s", host, port, exc)


def _canonical_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" not in host and not host.replace(".", "").isdigit():
        return host.rstrip(".")  # a name (IPv4 has digits and dots only, IPv6 colons)
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.rstrip(".")


@mypyc_attr(allow_interpreted_subclasses=True)  # subclassed outside the compiled modules
class Connection(abc.ABC):
    """One flow to a peer: a TCP/TLS connection, a WebSocket, or for UDP the pair
    (local socket, remote address).  ``send`` never blocks: it queues bytes in
    order, and raises :class:`TransportClosed` once the connection is closed."""

    __slots__ = ()

    source: Source
    outgoing: bool

    @property
    def id(self) -> int:
        return self.source.connection_id

    @property
    def transport(self) -> str:
        return self.source.transport

    @property
    def remote(self) -> tuple[str, int]:
        return self.source.remote

    @property
    def local(self) -> tuple[str, int]:
        return self.source.local

    @property
    @abc.abstractmethod
    def closed(self) -> bool: ...

    @abc.abstractmethod
    def send(self, data: Message | bytes) -> None:
        """Queue a message (or raw bytes, e.g. a keep-alive) on this connection."""

    def send_response(self, response: Response) -> None:
        """Send a response to a request that came in on this connection.

        Reliable transports answer on the same connection (RFC 3261 §18.2.2,
        RFC 7118 §5); UDP overrides this to follow the top Via.  When the
        connection is gone, use :meth:`TransportLayer.send_response`, which may
        open a new connection as §18.2.2 allows.
        """
        self.send(response)

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection (pending output is flushed first where possible)."""

    @abc.abstractmethod
    async def wait_closed(self) -> None: ...

    async def drain(self) -> None:  # noqa: B027 - optional flow control
        """Wait until the queued output has been handed to the kernel."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.source}{' closed' if self.closed else ''}>"


MessageCallback = Callable[[Message, Connection], Awaitable[None] | None]


@mypyc_attr(allow_interpreted_subclasses=True)  # subclassed outside the compiled modules
class Handler:
    """What a :class:`TransportLayer` delivers to.

    Override :meth:`message_received`; the connection events are optional.  A
    ``message_received`` that returns an awaitable is run as a task (one task per
    message; tasks start in arrival order).  Exceptions are logged and never
    reach the peer or stop the connection.
    """

    def message_received(self, message: Message, conn: Connection) -> Awaitable[None] | None:
        raise NotImplementedError

    def connection_made(self, conn: Connection) -> None:
        """A connection-oriented transport accepted or opened ``conn``."""

    def connection_lost(self, conn: Connection, exc: BaseException | None) -> None:
        """``conn`` closed (RFC 5626 §4.4: a flow failed; RFC 7118: a WIC left)."""


class CallbackHandler(Handler):
    """Adapts a plain ``callback(message, conn)`` to :class:`Handler`."""

    def __init__(self, callback: MessageCallback) -> None:
        self.callback = callback

    def message_received(self, message: Message, conn: Connection) -> Awaitable[None] | None:
        return self.callback(message, conn)


# --------------------------------------------------------------------- error replies

_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_CALL_ID_RE = re.compile(r"[^\s@]+(?:@[^\s@]+)?")  # §25.1 callid = word ["@" word]
_COPIED = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To",
           "call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"}


def _request_method(start_line: str) -> str | None:
    """The method of a line shaped like a Request-Line (§7.1), else None."""
    parts = start_line.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return None
    method, _, version = parts
    if not set(method) <= _TOKEN_CHARS or not version.upper().startswith("SIP/"):
        return None
    return method


def _valid(canonical: str, value: str) -> bool:
    """Whether a copied header value would parse in a response (so that the peer
    can match the answer to its transaction, §17.1.3)."""
    try:
        if canonical == "Via":
            parse_vias(value)
        elif canonical in ("From", "To"):
            parse_name_addr(value)
        elif canonical == "Call-ID":
            return _CALL_ID_RE.fullmatch(value) is not None
    except ParseError:
        return False
    return True


def error_reply(data: bytes, status: int, reason: str, *, tag: str = "webims-err") -> bytes | None:
    """A stateless error response to a request that failed to parse, or None.

    RFC 3261 §8.2 (and §16.3 for proxies) answers a malformed request with 4xx/5xx
    when possible; responses and ACKs are never answered (§17, §18.1.2), nor is
    anything that does not start with a Request-Line or lacks a usable Via.  The
    Via, From, To and Call-ID lines are copied as received when they parse
    (§8.2.6.2); a CSeq that does not parse becomes ``0 <method>`` so that the
    client can still match the answer by branch and method (§17.1.3); To gets
    ``tag`` when it has none.  Nothing from the parser (no traceback, no
    offending text) goes back beyond the reason phrase.
    """
    text = data[:65_536].decode("utf-8", "replace")
    text = text.lstrip("\r\n")
    lines = text.split("\n")
    method = _request_method(lines[0].rstrip("\r"))
    if method is None or method == "ACK":
        return None
    copied: dict[str, list[str]] = {}
    complete = lines[1:] if text.endswith("\n") else lines[1:-1]  # drop a cut-off last line
    for raw in complete:
        line = raw.rstrip("\r")
        if not line:
            break
        if line[0] in " \t":
            continue  # folded continuation: only one-line fields are copied
        name, colon, value = line.partition(":")
        canonical = _COPIED.get(name.strip().lower())
        if canonical is None or not colon:
            continue
        value = value.strip()
        if not value or len(value) > 4096 or any(ord(c) < 32 and c != "\t" for c in value):
            continue
        if canonical != "Via" and canonical in copied:
            continue  # a duplicated single-valued header: echo only the first
        if canonical == "CSeq":
            try:
                cseq = parse_cseq(value)
            except ParseError:
                value = f"0 {method}"
            else:
                if cseq.method != method:
                    value = f"{cseq.seq} {method}"
        elif not _valid(canonical, value):
            continue
        elif canonical == "To" and ";tag=" not in value.replace(" ", "").lower():
            value = f"{value};tag={tag}"
        copied.setdefault(canonical, []).append(value)
    if "Via" not in copied:
        return None
    copied.setdefault("CSeq", [f"0 {method}"])
    phrase = "".join(c for c in reason if 32 <= ord(c) < 127)[:100] or REASON_PHRASES.get(status, "Error")
    if not 400 <= status <= 699:
        status = 400
    head = "".join(f"{name}: {value}\r\n" for name in ("Via", "From", "To", "Call-ID", "CSeq")
                   for value in copied.get(name, ()))
    return f"SIP/2.0 {status} {phrase}\r\n{head}Content-Length: 0\r\n\r\n".encode()


# --------------------------------------------------------------------- idle timers


class IdleTimer:
    """Calls ``expire`` once nothing was seen for ``timeout`` seconds.

    Activity only stamps a float; one timer handle is rescheduled lazily, so a
    busy connection costs no timer churn.
    """

    __slots__ = ("_expire", "_handle", "_last", "_loop", "_timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float | None,
                 expire: Callable[[], None]) -> None:
        self._loop = loop
        self._timeout = timeout
        self._expire = expire
        self._last = loop.time()
        self._handle: asyncio.TimerHandle | None = None
        if timeout is not None:
            self._handle = loop.call_at(self._last + timeout, self._check)

    def touch(self) -> None:
        self._last = self._loop.time()

    def _check(self) -> None:
        assert self._timeout is not None
        due = self._last + self._timeout
        if self._loop.time() >= due:
            self._handle = None
            self._expire()
        else:
            self._handle = self._loop.call_at(due, self._check)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
