"""Via handling at the transport layer (RFC 3261 §18.2.1, §18.2.2; RFC 3581; RFC 7118 §5).

- :func:`fill_received` adds ``received`` / fills ``rport`` on the top Via of an
  incoming request, as a server transport must before anything else sees it.
- :func:`response_destination` is where §18.2.2 (and RFC 3581 §4) sends a response.
- RFC 7118 helpers: the ``WS``/``WSS`` Via transports and the ``.invalid`` hosts
  WebSocket clients put in Via and Contact (RFC 7118 §5.2, §5.3, RFC 2606 §2).
"""

from __future__ import annotations

import ipaddress
import secrets

from webims.sip import Request, Via

from .base import DEFAULT_PORTS, RELIABLE_TRANSPORTS, Source, host_key

__all__ = [
    "WEBSOCKET_TRANSPORTS",
    "fill_received",
    "is_invalid_host",
    "is_ip_address",
    "random_invalid_host",
    "replace_top_via",
    "response_destination",
    "uri_transport_param",
    "via_transport",
]

#: Via transport tokens of RFC 7118 §5.2 (SIP over WebSocket, plain and secure).
WEBSOCKET_TRANSPORTS = frozenset({"WS", "WSS"})


_IS_IP: dict[str, bool] = {}


def is_ip_address(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address (brackets allowed); remembered, as host_key."""
    known = _IS_IP.get(host)
    if known is None:
        try:
            ipaddress.ip_address(host_key(host))
            known = True
        except ValueError:
            known = False
        if len(_IS_IP) >= 16_384:
            _IS_IP.clear()
        _IS_IP[host] = known
    return known


def replace_top_via(request: Request, via: Via) -> None:
    """Put ``via`` in place of the top Via value of ``request`` (one comma item)."""
    request.replace_top_via(via)


def fill_received(request: Request, source: Source) -> Via:
    """Stamp the top Via of an incoming request with where it really came from.

    RFC 3261 §18.2.1: add ``received`` with the source address when the sent-by
    host differs from it (a domain name always differs).  RFC 3581 §4: when the
    request carries ``rport`` without a value, fill it with the source port, and
    add ``received`` even when the host matches.  Returns the (possibly new) top
    Via; the message is only modified when something changed.
    """
    via = request.top_via
    params = via.params
    remote = host_key(source.remote_host)
    received = host_key(via.host) != remote
    rport = "rport" in params and not params["rport"]
    if not received and not rport:
        return via
    new = dict(params)
    if rport:
        new["rport"] = str(source.remote_port)
        received = received or via.received is None
    if received:
        new["received"] = remote
    changed = via.replace(params=new)
    request.replace_top_via(changed)
    return changed


def response_destination(via: Via, transport: str | None = None) -> tuple[str, int]:
    """The (host, port) a response goes to by the top Via (RFC 3261 §18.2.2).

    Reliable transports: ``received`` (else the sent-by host) and the sent-by
    port, for a new connection when the original one is gone.  Unreliable:
    ``maddr`` if present, else with an ``rport`` value the ``received`` address
    and that port (RFC 3581 §4), else ``received`` and the sent-by port.  The
    default port is the transport's (5060, 5061 for TLS).
    """
    transport = (transport or via.transport).upper()
    default = DEFAULT_PORTS.get(transport, 5060)
    host = via.received or via.host
    if transport in RELIABLE_TRANSPORTS or transport == "SCTP":
        return host_key(host), via.port or default
    maddr = via.params.get("maddr")
    if maddr:
        return host_key(maddr), via.port or default
    if via.rport is not None:
        return host_key(host), via.rport
    return host_key(host), via.port or default


def via_transport(transport: str) -> str:
    """The Via transport token for a transport name ("ws" -> "WS", RFC 7118 §5.2)."""
    token = transport.upper()
    if token not in DEFAULT_PORTS:
        raise ValueError(f"unknown SIP transport {transport!r}")
    return token


def uri_transport_param(transport: str) -> str:
    """The SIP URI ``transport`` parameter value ("ws"/"wss" per RFC 7118 §5.3;
    TLS uses ``transport=tls``, which sips: URIs replace, RFC 3261 §19.1.1)."""
    return via_transport(transport).lower()


def random_invalid_host() -> str:
    """A random host under ``.invalid`` (RFC 2606 §2), as RFC 7118 §5.2 suggests for the
    Via sent-by and Contact of a WebSocket client that has no reachable address."""
    return f"{secrets.token_hex(6)}.invalid"


def is_invalid_host(host: str) -> bool:
    """True for ``invalid`` and any name below it (RFC 2606 §2, RFC 7118 §5.2)."""
    host = host_key(host)
    return host == "invalid" or host.endswith(".invalid")
