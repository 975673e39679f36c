"""OPTIONS addressed to the gateway itself (RFC 3261 §11): what it can do, for keep-alive pings too.

An OPTIONS whose Request-URI is the gateway's own Mw address without a user part
(a P-CSCF or S-CSCF checking that its peer is alive, or asking its capabilities)
is answered here with 200 and ``Allow``, ``Accept``, ``Supported`` (§11.2). An
OPTIONS for a user (``sip:alice@...``) is not ours: it goes to that user's WIC (or
to the IMS) like any other request (:mod:`.proxy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from webims.endpoint import IncomingRequest
from webims.sip import Request, SipURI

from .b2bua import ALLOW

if TYPE_CHECKING:
    from .core import Gateway

__all__ = ["CAPABILITIES", "answer_options", "is_for_gateway"]

#: RFC 3261 §11.2: what the gateway accepts and supports (its B2BUA legs and registrations).
CAPABILITIES = (
    ("Allow", ALLOW + ", REGISTER, SUBSCRIBE, NOTIFY"),
    ("Accept", "application/sdp, application/dtmf-relay, text/plain, message/cpim"),
    ("Accept-Encoding", "identity"),
    ("Accept-Language", "en"),
    ("Supported", "100rel, precondition, timer, path, outbound, gruu"),
)


def is_for_gateway(request: Request, gateway: Gateway) -> bool:
    uri = request.uri
    return isinstance(uri, SipURI) and not uri.user and gateway.ims.is_ours(uri)


def answer_options(incoming: IncomingRequest) -> None:
    """200 with our capabilities (and no body, §11.2)."""
    incoming.respond(200, headers=list(CAPABILITIES))
