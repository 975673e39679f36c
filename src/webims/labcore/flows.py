"""Where requests come from, as the lab CSCFs compare sources (RFC 3261 §18.2.1, RFC 3581, RFC 5626 §3).

A :class:`Flow` is a transport and the (host, port) a request was sent from. On
loopback every element has the address 127.0.0.1, so sources are told apart by
(transport, host, port); for TCP the port is the connection's own (ephemeral) port,
which names that connection while it lasts.

- :func:`flow_of`: the direct source of a request (its connection);
- :func:`stamp_source`: the I-CSCF writes ``received`` and ``rport`` on the top Via
  of every request it receives, whatever the sender asked (RFC 3261 §18.2.1 lets a
  server add ``received``; RFC 3581 §4 defines ``rport``), so that the S-CSCF behind
  it can read where the request came from (:func:`via_flow`) and no sender can claim
  another one's address by its Via sent-by;
- :class:`CoreElements`: whether a flow is one of the lab core's own elements in this
  process (the I-CSCF and S-CSCF listening ports, and for TCP their outgoing
  connections): those are the only senders whose next Via is believed.
"""

from __future__ import annotations

from dataclasses import dataclass

from webims.endpoint import SipEndpoint
from webims.sip import Request, Via
from webims.transport import Connection, host_key
from webims.transport.base import DEFAULT_PORTS

__all__ = ["CoreElements", "Flow", "flow_of", "stamp_source", "via_flow"]

_ANY = frozenset({"0.0.0.0", "::"})


@dataclass(frozen=True)
class Flow:
    """A transport (Via token: UDP, TCP, TLS, WS, WSS) and the (host, port) it sent from."""

    transport: str
    host: str  # host_key form
    port: int

    def __str__(self) -> str:
        return f"{self.transport} {self.host}:{self.port}"


def flow_of(conn: Connection) -> Flow:
    """The direct source of what arrived on ``conn``."""
    host, port = conn.remote
    return Flow(conn.transport.upper(), host_key(host), port)


def via_flow(via: Via) -> Flow:
    """The source a Via records: ``received`` (else the sent-by host) and ``rport`` (else
    the sent-by port), RFC 3261 §18.2.1, RFC 3581 §4. Meaningful only for a Via our own
    I-CSCF stamped (:func:`stamp_source`)."""
    transport = via.transport.upper()
    port = via.rport or via.port or DEFAULT_PORTS.get(transport, 5060)
    return Flow(transport, host_key(via.received or via.host), port)


def stamp_source(request: Request, conn: Connection) -> None:
    """Write the real source on the top Via: ``received`` and ``rport`` always (see the
    module docstring). Responses then go back to that source (RFC 3581 §4), which is where
    a symmetric UE listens."""
    via = request.top_via
    host, port = conn.remote
    received, rport = host_key(host), str(port)
    params = via.params
    if params.get("received") == received and params.get("rport") == rport:
        return
    new = dict(params)
    new["received"] = received
    new["rport"] = rport
    request.replace_top_via(via.replace(params=new))


class CoreElements:
    """The SIP elements of one lab core in this process (I-CSCF, S-CSCF): whether a flow
    is one of theirs. Its UDP requests leave from its listening port (RFC 3261 §18.1.1);
    its TCP requests from the local end of a connection it opened."""

    def __init__(self) -> None:
        self._elements: list[tuple[SipEndpoint, str, int]] = []
        self._known: dict[Flow, Connection] = {}

    def add(self, endpoint: SipEndpoint, host: str, port: int) -> None:
        self._elements.append((endpoint, host_key(host), port))

    def is_own(self, flow: Flow) -> bool:
        for _, host, port in self._elements:
            if flow.port == port and (flow.host == host or host in _ANY):
                return True
        if flow.transport == "UDP":
            return False
        conn = self._known.get(flow)
        if conn is not None and not conn.closed:
            return True
        for endpoint, _, _ in self._elements:
            for conn in endpoint.transport.connections:
                if not conn.outgoing or conn.transport.upper() != flow.transport:
                    continue
                host, port = conn.local
                if port == flow.port and host_key(host) == flow.host:
                    if len(self._known) >= 256:
                        self._known.clear()
                    self._known[flow] = conn
                    return True
        return False
