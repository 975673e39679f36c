"""The WIC side: SIP over WebSocket (RFC 7118) flows and RFC 5626 flow tokens.

Each WebSocket is one RFC 5626 *flow*. :class:`WicSide` mounts the SIP WebSocket
route (``/sip`` by default) on an aiohttp application — the web server's own, so
the WIC reaches the gateway on the port it downloaded the page from — with the
Origin allowlist of seed 004 §6.X.2.1 ("the WIC is verified to be one downloaded
from an authorized Client Script Server"): a foreign Origin gets HTTP 403 and no
WebSocket. It remembers, per flow, the web-session cookie the browser sent on the
upgrade (seed 000 §6.2.2.4.2 web login) and the Origin.

CRLF keep-alives (RFC 5626 §4.4.1, RFC 7118 §6 note) are answered by the transport;
``Flow-Timer`` in our 2xx to REGISTER tells the WIC how often to send them.

:class:`FlowTokens` makes the tamper-proof tokens the IMS routes back to us by
(RFC 5626 §5.2: an HMAC over the identifier): ``b`` tokens name a WIC binding
(carried in our Path entry and Record-Route), ``p`` tokens a pool registration's
Contact. They name the *binding*, not the WebSocket, so a WIC that reconnects with
the same ``+sip.instance`` / ``reg-id`` is found again (flow recovery) without any
IMS traffic, and tokens stay valid across a gateway restart (the key is kept in the
state store).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, web

from webims.auth.sessions import cookie_value
from webims.endpoint import RequestHandler, SipEndpoint
from webims.sip import DEFAULT_TIMERS, TimerSettings
from webims.transport import Connection, OriginPolicy, WebSocketConnection
from webims.transport.websocket import WebSocketEndpoint

__all__ = ["Flow", "FlowTokens", "WicSide"]

log = logging.getLogger("webims.gateway.wic")

_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(slots=True)
class Flow:
    """One WIC WebSocket: the connection and what its upgrade request told us."""

    connection: Connection
    cookie: str | None = None  # webims_session value sent on the upgrade (seed 000 web login)
    origin: str | None = None

    @property
    def id(self) -> int:
        return self.connection.id

    @property
    def remote_host(self) -> str:
        return self.connection.remote[0]


class FlowTokens:
    """HMAC-protected identifiers for Path / Contact / Record-Route user parts (RFC 5626 §5.2)."""

    ID_LENGTH = 16
    MAC_LENGTH = 12

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("flow token key too short")
        self._key = key

    def _mac(self, body: str) -> str:
        """Keyed BLAKE2b (RFC 7693 §2.5: the key is the MAC key), 9 octets. It runs once per
        registration; HMAC-SHA256 through OpenSSL 3 (a provider fetch per call) took 1.7 % of
        the gateway's CPU per registration in ``perf``."""
        digest = hashlib.blake2b(body.encode(), digest_size=9, key=self._key).digest()
        return base64.urlsafe_b64encode(digest).decode()

    def _legacy_mac(self, body: str) -> str:
        """The HMAC-SHA256 MAC of tokens made up to commit bf21486, which a restarted gateway
        still finds in stored bindings and in the S-CSCF's Path: read, never made."""
        digest = hmac.digest(self._key, body.encode(), "sha256")[:9]
        return base64.urlsafe_b64encode(digest).decode()

    def make(self, kind: str, ident: str) -> str:
        if len(kind) != 1 or len(ident) != self.ID_LENGTH or not set(ident) <= _TOKEN_CHARS:
            raise ValueError("bad token identifier")
        return kind + ident + self._mac(kind + ident)

    def read(self, token: str | None) -> tuple[str, str] | None:
        """(kind, identifier) of a genuine token, else None."""
        if not token or len(token) != 1 + self.ID_LENGTH + self.MAC_LENGTH:
            return None
        body, mac = token[: 1 + self.ID_LENGTH], token[1 + self.ID_LENGTH :]
        if not hmac.compare_digest(mac, self._mac(body)) and not hmac.compare_digest(
            mac, self._legacy_mac(body)
        ):
            return None
        return body[0], body[1:]

    @staticmethod
    def ident_for(text: str) -> str:
        """A stable 16-character identifier for ``text`` (e.g. a pool IMPU)."""
        return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()[:12]).decode()


class _WicEndpoint(SipEndpoint):
    """A SipEndpoint that reports WebSocket flows opening and closing."""

    def __init__(self, side: WicSide, on_request: RequestHandler, *, timers: TimerSettings = DEFAULT_TIMERS,
                 uas_core: bool = True, send_trying: bool = True, **transport_options: Any) -> None:
        # the keyword-only arguments by name (compiled, a bare **options reached ``timers``)
        super().__init__(on_request, timers=timers, uas_core=uas_core, send_trying=send_trying,
                         **transport_options)
        self.side = side

    def connection_made(self, conn: Connection) -> None:
        flow = self.side.flows.get(conn.id)  # made by WicSide._on_upgrade for WebSockets
        if flow is None:
            flow = self.side.flows[conn.id] = Flow(conn, None, conn.source.origin)
        if self.side.on_flow_open is not None:
            self.side.on_flow_open(flow)

    def connection_lost(self, conn: Connection, exc: BaseException | None) -> None:
        flow = self.side.flows.pop(conn.id, None)
        if flow is not None and self.side.on_flow_closed is not None:
            self.side.on_flow_closed(flow)


class WicSide:
    """The SIP WebSocket endpoint of the gateway (module docstring)."""

    def __init__(
        self,
        on_request: RequestHandler,
        *,
        on_flow_open: Callable[[Flow], None] | None = None,
        on_flow_closed: Callable[[Flow], None] | None = None,
        **endpoint_options: Any,
    ) -> None:
        self.flows: dict[int, Flow] = {}
        self.on_flow_open = on_flow_open
        self.on_flow_closed = on_flow_closed
        self.endpoint = _WicEndpoint(self, on_request, **endpoint_options)
        self.ws: WebSocketEndpoint | None = None

    def mount(
        self,
        app: web.Application,
        *,
        path: str = "/sip",
        origins: Iterable[str] = (),
        allow_same_origin: bool = True,
        allow_missing_origin: bool = False,
        heartbeat: float | None = None,
    ) -> WebSocketEndpoint:
        """Add ``GET path`` (the SIP WebSocket upgrade) to ``app`` before it starts."""
        policy = OriginPolicy(
            origins, allow_same_origin=allow_same_origin, allow_missing_origin=allow_missing_origin
        )
        self.ws = WebSocketEndpoint(
            self.endpoint.transport, path=path, policy=policy, heartbeat=heartbeat,
            on_upgrade=self._on_upgrade,
        )  # fmt: skip
        app.router.add_get(path, self.ws.handle)
        app.on_shutdown.append(self.ws.on_shutdown)
        return self.ws

    def _on_upgrade(self, request: web.BaseRequest, conn: WebSocketConnection) -> None:
        """What the upgrade request tells about the WIC: its web-session cookie and Origin."""
        self.flows[conn.id] = Flow(conn, cookie_value(request.headers.get("Cookie")), conn.source.origin)

    def flow(self, connection_id: int) -> Flow | None:
        return self.flows.get(connection_id)

    def close_flow(
        self, connection: Connection, reason: str, *, code: int = WSCloseCode.POLICY_VIOLATION
    ) -> None:
        """Close a WIC's WebSocket (flooding, network-initiated de-registration)."""
        log.info("closing %s: %s", connection.source, reason)
        if isinstance(connection, WebSocketConnection):
            connection.close(code, reason.encode()[:120])
        else:
            connection.close()

    async def close(self) -> None:
        await self.endpoint.close()
