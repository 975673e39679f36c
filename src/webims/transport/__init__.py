"""asyncio adapters for SIP over UDP, TCP, TLS, WS and WSS (RFC 3261 §18, RFC 7118).

Kept apart from the sans-IO cores (DESIGN.md §1, §6.1): this package owns the
sockets, TLS, WebSockets and timers; :mod:`webims.sip` owns the bytes.

    layer = TransportLayer(handler)                 # handler(message, conn) or a Handler
    await layer.listen_udp("127.0.0.1", 5060)
    await layer.listen_tcp("127.0.0.1", 5060)
    await layer.listen_tls("127.0.0.1", 5061, server_context(cert, key))
    mount_websocket(app, layer, path="/sip", origins=["https://wic.example"])
    ...
    conn.send_response(request.response(200))      # on the connection it came in on
    conn = await layer.connect("TCP", "10.0.0.1", 5060); conn.send(request)
"""

from .base import (
    DEFAULT_PORTS,
    RELIABLE_TRANSPORTS,
    TRANSPORTS,
    Connection,
    ConnectionLimits,
    Handler,
    Message,
    MessageCallback,
    Source,
    TransportClosed,
    TransportError,
    error_reply,
    host_key,
)
from .layer import TransportLayer
from .loop import install_uvloop, loop_factory, run, uvloop_available
from .stream import StreamConnection, StreamListener
from .tls import client_context, ensure_self_signed, make_self_signed, server_context
from .udp import UdpConnection, UdpListener
from .via import (
    WEBSOCKET_TRANSPORTS,
    fill_received,
    is_invalid_host,
    is_ip_address,
    random_invalid_host,
    replace_top_via,
    response_destination,
    uri_transport_param,
    via_transport,
)
from .websocket import (
    SIP_SUBPROTOCOL,
    OriginPolicy,
    WebSocketConnection,
    WebSocketEndpoint,
    WebSocketServer,
    mount_websocket,
    normalize_origin,
    serve_websocket,
)

__all__ = [
    "DEFAULT_PORTS",
    "RELIABLE_TRANSPORTS",
    "SIP_SUBPROTOCOL",
    "TRANSPORTS",
    "WEBSOCKET_TRANSPORTS",
    "Connection",
    "ConnectionLimits",
    "Handler",
    "Message",
    "MessageCallback",
    "OriginPolicy",
    "Source",
    "StreamConnection",
    "StreamListener",
    "TransportClosed",
    "TransportError",
    "TransportLayer",
    "UdpConnection",
    "UdpListener",
    "WebSocketConnection",
    "WebSocketEndpoint",
    "WebSocketServer",
    "client_context",
    "ensure_self_signed",
    "error_reply",
    "fill_received",
    "host_key",
    "install_uvloop",
    "is_invalid_host",
    "is_ip_address",
    "loop_factory",
    "make_self_signed",
    "mount_websocket",
    "normalize_origin",
    "random_invalid_host",
    "replace_top_via",
    "response_destination",
    "run",
    "serve_websocket",
    "server_context",
    "uri_transport_param",
    "uvloop_available",
    "via_transport",
]
