"""Sans-IO SIP (RFC 3261): messages, URIs, headers, framing, transactions, dialogs.

No asyncio, socket, ssl or time here (DESIGN.md §6.1).
"""

from .errors import ParseError
from .headers import CSeq, NameAddr, Via, parse_cseq, parse_name_addr, parse_name_addrs, parse_via
from .message import (
    DEFAULT_LIMITS,
    REASON_PHRASES,
    Header,
    Headers,
    Limits,
    Message,
    Request,
    Response,
    parse,
)
from .uri import URI, AbsoluteURI, SipURI, TelURI, parse_uri

__all__ = [
    "DEFAULT_LIMITS",
    "REASON_PHRASES",
    "URI",
    "AbsoluteURI",
    "CSeq",
    "Header",
    "Headers",
    "Limits",
    "Message",
    "NameAddr",
    "ParseError",
    "Request",
    "Response",
    "SipURI",
    "TelURI",
    "Via",
    "parse",
    "parse_cseq",
    "parse_name_addr",
    "parse_name_addrs",
    "parse_uri",
    "parse_via",
]
