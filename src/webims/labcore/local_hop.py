"""A SIP hop between two elements of the lab core in the same process (I-CSCF -> S-CSCF).

The I-CSCF forwards each REGISTER to the S-CSCF the HSS names (TS 24.229 §5.3.1.2).
When that S-CSCF is the one running beside it, serialising the request, sending it
over loopback UDP, parsing it again and running a client and a server transaction
for it (and the same for the response) only costs CPU: about a third of the core's
work per registration. :class:`LocalHop` hands the forwarded :class:`Request` object
to the S-CSCF's request handler instead and gives back its final response, with the
same headers as on the wire: the I-CSCF's Via on top (with its branch, RFC 3261
§16.6 step 8), Max-Forwards decremented, the S-CSCF seeing the I-CSCF as the source
address (which Trusted Node Authentication looks behind, TS 24.229 §5.4.1.2.2F).

What the wire would add and nothing here needs: retransmissions (none are needed
in-process; the upstream server transaction still absorbs the P-CSCF's) and the
100 Trying of the S-CSCF (hop by hop, RFC 3261 §16.7 step 5). A handler that ends
without a final response gives 500, as a failing element would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from webims.endpoint import IncomingRequest, RequestHandler, SipEndpoint, Target
from webims.sip import Request, Response, ServerKey, new_branch
from webims.transport import Connection

__all__ = ["LocalHop", "LocalIncoming"]

log = logging.getLogger("webims.labcore")


@dataclass(eq=False, init=False)
class LocalIncoming(IncomingRequest):
    """A request received from an element in the same process: the final response is
    kept in ``final`` instead of going to a server transaction."""

    final: Response | None = field(repr=False)

    def __init__(
        self, endpoint: SipEndpoint, key: ServerKey, request: Request, connection: Connection
    ) -> None:
        super().__init__(endpoint, key, request, connection)
        self.final = None

    def send(self, response: Response) -> None:
        if self.final_sent or response.status < 200:
            return  # provisional responses of a non-INVITE request stop at the next hop (§16.7 step 5)
        self.final_sent = True
        self.final = response


@dataclass(eq=False)
class LocalHop:
    """The element listening at ``target`` (its ``endpoint`` and request ``handler``),
    reached from ``sender``'s endpoint listening at ``sender_address``."""

    endpoint: SipEndpoint
    handler: RequestHandler
    target: Target
    sender: SipEndpoint
    sender_address: tuple[str, int]
    _out: Connection | None = field(default=None, repr=False)
    _back: Connection | None = field(default=None, repr=False)

    async def _connections(self) -> tuple[Connection, Connection]:
        out, back = self._out, self._back
        if out is None or back is None:
            # the flows the wire would use: ours towards the target (for our Via's sent-by)
            # and the target's towards us (the source address its handler sees)
            out = self._out = await self.sender.connect(self.target)
            host, port = self.sender_address
            back = self._back = await self.endpoint.connect(Target(self.target.transport, host, port))
        return out, back

    async def send(self, request: Request) -> Response:
        """Add our Via to ``request`` (already made for this branch, RFC 3261 §16.6 steps 1-7),
        run the target's handler on it and return its final response (our Via still on top)."""
        out, back = await self._connections()
        branch = new_branch()
        SipEndpoint.add_via(request, out, branch)
        host, port = out.local
        key = ServerKey(branch, f"{host}:{port}", request.method)
        incoming = LocalIncoming(self.endpoint, key, request, back)
        try:
            await self.handler(incoming)
        except Exception:
            log.exception("%s handler failed in-process", request.method)
        if incoming.final is not None:
            return incoming.final
        return request.response(500, "Server Internal Error")
