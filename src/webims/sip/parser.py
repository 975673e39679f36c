"""SIP message parser (RFC 3261 §7, §18.3, §25.1; RFC 7118 §5).

``parse(data)`` turns one complete message into a :class:`Request` or
:class:`Response`.  The start line and the headers every SIP layer needs (Via,
From, To, Call-ID, CSeq, Contact, Max-Forwards, Expires, Date, Content-Type,
Content-Length) are validated here, so that a malformed message is refused at
once with the right answer; the objects (URIs, name-addrs, Vias) are built on
first use, from the match that validated them (no second match).  Speed matters
(issue 2: >= 50,000 parse + serialize a second; issue 5: gateway CPU per
registration): the common shapes are checked by precompiled patterns in one pass
over CRLF lines, and header lines that recur from message to message are split once.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ParseError
from .headers import (
    COMPACT_FORMS,
    CSEQ_RE,
    FAST_NAME_ADDR_RE,
    FAST_VIA_RE,
    NAME_ADDR_PARTS_RE,
    VIA_PARTS_RE,
    canonical_name,
    is_digits,
    new_cseq,
    parse_cseq,
    parse_name_addr,
    parse_via,
    split_list,
)
from .message import DEFAULT_LIMITS, Header, Headers, Limits, Request, Response
from .uri import AbsoluteURI, SipURI

__all__ = ["parse"]

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.I)
# callid = word [ "@" word ] (RFC 3261 §25.1)
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE = re.compile(rf"{_WORD}(?:@{_WORD})?")
# rfc1123-date = wkday "," SP date1 SP time SP "GMT" (RFC 3261 §20.17, §25.1)
_DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
    re.I,
)
# media-type = m-type SLASH m-subtype *(SEMI m-parameter) (§20.15)
_CONTENT_TYPE_RE = re.compile(
    r"[A-Za-z0-9\-.!%*_+`'~]+[ \t]*/[ \t]*[A-Za-z0-9\-.!%*_+`'~]+"
    r"(?:[ \t]*;[ \t]*[A-Za-z0-9\-.!%*_+`'~]+[ \t]*=[ \t]*"
    r"(?:[A-Za-z0-9\-.!%*_+`'~]+|\"(?:[^\"\\]|\\.)*\"))*"
)
# Headers that may appear once only (RFC 4475 §3.3.8, §3.3.9); Via and Contact are lists.
_SINGLE = frozenset(
    ("from", "to", "call-id", "cseq", "content-length", "max-forwards", "content-type", "expires", "date")
)
_TRACKED = _SINGLE | {"via", "contact"}
_CONTROLS = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_CONTROL_RE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FOLD = re.compile("\n[ \t]").search  # a continuation line (§7.3.1)


# Methods of RFC 3261 and its extensions: tokens, so not matched against the pattern again.
_METHODS = frozenset((
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
))  # fmt: skip
# Header lines whose text recurs from message to message (the same User-Agent, Allow,
# Max-Forwards, Content-Length...): each is split once and its Header shared.  Lines of
# the headers that identify a dialog or a transaction (Via, From, To, Call-ID...) are new
# in every message and are not kept.
_RECURRING = frozenset((
    "max-forwards", "content-length", "content-type", "expires", "min-expires", "cseq", "supported",
    "require", "allow", "allow-events", "accept", "accept-encoding", "accept-language", "user-agent",
    "server", "event", "content-disposition", "session-expires", "min-se", "privacy",
    "p-visited-network-id", "service-route", "record-route", "route",
))  # fmt: skip
_SEEN_LINES: dict[str, Header] = {}
_FAST_VIA = FAST_VIA_RE.fullmatch
_VIA_PARTS = VIA_PARTS_RE.fullmatch
_FAST_NAME_ADDR = FAST_NAME_ADDR_RE.fullmatch
_NAME_ADDR_PARTS = NAME_ADDR_PARTS_RE.fullmatch
_NAME_KEYS: dict[str, str] = {}


def _header_key(name: str, line: str) -> str:
    key = _NAME_KEYS.get(name)
    if key is None:
        if not _TOKEN_RE.fullmatch(name):
            raise ParseError("Bad header name", line=line)
        key = canonical_name(name)
        if len(_NAME_KEYS) < 1024:
            _NAME_KEYS[name] = key
    return key


def parse(data: bytes, limits: Limits = DEFAULT_LIMITS, *, stream: bool = False) -> Request | Response:
    """Parse one complete SIP message.

    Message-per-datagram semantics (UDP, WebSocket frames: RFC 3261 §18.3, RFC 7118
    §5): Content-Length is optional; when present the body is cut to it (octets
    after it are ignored, RFC 4475 §3.1.1.8) and a body shorter than it is an error.
    With ``stream=True`` (a framer already cut the message) Content-Length is
    mandatory (§20.14).
    Raises :class:`ParseError` and nothing else.
    """
    try:
        return _parse(data, limits, stream)
    except ParseError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, UnicodeError, OverflowError, RecursionError) as exc:
        raise ParseError(f"Malformed message ({type(exc).__name__})") from None


def _split_head(data: bytes, limits: Limits) -> tuple[bytes, int]:
    """The header section (without its final empty line) and the offset of the body."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        lf = data.find(b"\n\n", 0, end)  # LF-only line ends (tolerated, §7.5 wants CRLF)
        return (data[:lf], lf + 2) if lf >= 0 else (data[:end], end + 4)
    end = data.find(b"\n\n")
    if end >= 0:
        return data[:end], end + 2
    if data.endswith(b"\r\n"):  # no empty line: a datagram with no body (lenient)
        return data[:-2], len(data)
    if len(data) > limits.max_line_bytes and b"\n" not in data:
        raise ParseError("Message Too Large", 513)
    raise ParseError("Incomplete header section: missing empty line")


def _check_controls(head: bytes) -> None:
    """Control characters are allowed in the header section only as quoted-pairs
    (RFC 3261 §25.1; RFC 4475 §3.1.1.2 escapes a NUL that way)."""
    for m in _CONTROL_RE.finditer(head):
        at = m.start()
        if at == 0 or head[at - 1] != 0x5C:  # "\\"
            reason = "NUL byte in header section" if head[at] == 0 else "Control character in header section"
            line_start = head.rfind(b"\n", 0, at) + 1
            line_end = head.find(b"\n", at)
            line = head[line_start : line_end if line_end >= 0 else len(head)]
            raise ParseError(reason, line=line.decode("utf-8", "replace").rstrip("\r"))


def _decode_head(head: bytes) -> str:
    """The header section as text: no control characters but quoted-pairs, UTF-8 (§25.1)."""
    if len(head.translate(None, _CONTROLS)) != len(head):
        _check_controls(head)
    try:
        return head.decode()
    except UnicodeDecodeError:
        raise ParseError("Header section is not UTF-8") from None


def _parse_start(line: str) -> Request | Response:
    """Request-Line / Status-Line (§7.1, §7.2, §25.1); one SP between elements."""
    if line[:4].upper() == "SIP/":
        parts = line.split(" ", 2)
        if len(parts) < 2 or (parts[0] != "SIP/2.0" and not _VERSION_RE.fullmatch(parts[0])):
            raise ParseError("Bad status line", line=line)
        if parts[0] != "SIP/2.0" and parts[0].upper() != "SIP/2.0":
            raise ParseError("Version Not Supported", 505, line=line)
        code = parts[1]
        if len(code) != 3 or not (code.isdigit() and code.isascii()) or not 100 <= int(code) <= 699:
            raise ParseError("Bad status code", line=line)
        return Response(int(code), parts[2] if len(parts) == 3 else "", (), b"", parts[0])
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise ParseError("Bad request line", line=line)
    method, uri_text, version = parts
    if method not in _METHODS and not _TOKEN_RE.fullmatch(method):
        raise ParseError("Bad method", line=line)
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise ParseError("Version Not Supported", 505, line=line)
        raise ParseError("Bad request line", line=line)
    request = Request(method, uri_text, (), b"", version)  # the URI is parsed now unless in the fast form
    uri = request._uri
    if uri is not None:
        if isinstance(uri, AbsoluteURI):
            raise ParseError("Unsupported URI Scheme", 416, line=line)
        if isinstance(uri, SipURI) and uri.headers is not None:
            raise ParseError("Header fields in Request-URI", line=line)  # §19.1.1 Table 1
    return request


def _parse_folded(text: str, max_line: int) -> list[Header]:
    """Header lines with folding (§7.3.1) or LF-only line ends.

    ``Header.raw`` keeps each field's text (folding included, line ends as CRLF) without
    its final line terminator; the value is unfolded (each fold becomes one SP) and held
    to ``max_line`` too.
    """
    groups: list[list[str]] = []
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if "\r" in line:
            raise ParseError("Bare CR in header section", line=line)
        if len(line) > max_line:
            raise ParseError("Message Too Large", 513)
        if line[:1] in (" ", "\t"):
            if not groups:
                raise ParseError("Continuation line before any header", line=line)
            groups[-1].append(line)
        else:
            groups.append([line])
    fields: list[Header] = []
    for group in groups:
        line = group[0]
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError("Header line without colon", line=line)
        name = name.rstrip(" \t")
        key = _header_key(name, line)
        if len(group) == 1:
            fields.append(Header(name, value.strip(" \t"), line, key))
            continue
        parts = (part.strip(" \t") for part in (value, *group[1:]))
        value = " ".join(part for part in parts if part)
        if len(value) > max_line:
            raise ParseError("Message Too Large", 513)
        fields.append(Header(name, value, "\r\n".join(group), key))
    return fields


def _check_list(values: list[str], fast: Any, check: Any) -> None:
    """Validate every item of a comma-separated list header (no empty items: §25.1):
    ``fast`` (a pattern's fullmatch) first, the full ``check`` when it does not match."""
    for value in values:
        if "," not in value:
            if fast(value) is None:
                check(value)
            continue
        for item in split_list(value, allow_empty=False):
            if fast(item) is None:
                check(item)


def _long_name(name: str) -> str:
    return COMPACT_FORMS.get(name.lower(), name)


def _track(fields: list[Header]) -> tuple[dict[str, str], list[str], list[str]]:
    """First values of the single-valued headers, the Via values, the Contact values."""
    first: dict[str, str] = {}
    vias: list[str] = []
    contacts: list[str] = []
    for h in fields:
        key = h.key
        if key in _TRACKED:
            if key == "via":
                vias.append(h.value)
            elif key == "contact":
                contacts.append(h.value)
            elif key in first:
                raise ParseError(f"Multiple {_long_name(h.name)} headers", line=h.value)
            else:
                first[key] = h.value
    return first, vias, contacts


def _parse(data: bytes, limits: Limits, stream: bool) -> Request | Response:
    if len(data) > limits.max_message_bytes:
        raise ParseError("Message Too Large", 513)
    if data[:2] == b"\r\n":  # §7.5: CRLFs before the start line are ignored
        start = 2
        while data.startswith(b"\r\n", start):
            start += 2
        data = data[start:]
    if not data:
        raise ParseError("Empty message")
    end = data.find(b"\r\n\r\n")
    if end >= 0:  # (_split_head, whose LF-only check is needed only when there are LF-only ends)
        head, body_at = data[:end], end + 4
    else:
        head, body_at = _split_head(data, limits)
    text = _decode_head(head)
    lines = text.split("\r\n")
    crlfs = len(lines) - 1
    folded = text.count("\n") != crlfs or text.count("\r") != crlfs or _FOLD(text) is not None
    if folded and end >= 0 and b"\n\n" in head:  # LF-only line ends: the empty line comes first
        head, body_at = _split_head(data, limits)
        text = _decode_head(head)
        lines = text.split("\r\n")
        crlfs = len(lines) - 1
        folded = text.count("\n") != crlfs or text.count("\r") != crlfs or _FOLD(text) is not None
    if folded:  # folding, or LF-only / bare CR line ends
        nl = text.find("\n")
        first_line, rest = (text, "") if nl < 0 else (text[:nl], text[nl + 1 :])
        first_line = first_line.removesuffix("\r")
        if "\r" in first_line:
            raise ParseError("Bare CR in start line", line=first_line)
    else:
        first_line = lines[0]
        if crlfs > limits.max_headers:
            raise ParseError("Message Too Large: too many headers", 513)
    if len(first_line) > limits.max_line_bytes:
        raise ParseError("Message Too Large", 513)
    msg = _parse_start(first_line)
    if folded:
        fields = _parse_folded(rest, limits.max_line_bytes) if rest else []
        if len(fields) > limits.max_headers:
            raise ParseError("Message Too Large: too many headers", 513)
        first, vias, contacts = _track(fields)
    else:  # only CRLF line ends and no folding: the common case
        if len(text) > limits.max_line_bytes and any(len(x) > limits.max_line_bytes for x in lines):
            raise ParseError("Message Too Large", 513)
        fields = []
        append = fields.append
        keys = _NAME_KEYS
        tracked = _TRACKED
        seen = _SEEN_LINES
        first = {}
        vias = []
        contacts = []
        for line in lines[1:]:  # (_track inline)
            header = seen.get(line)
            if header is not None:  # a line seen before (Header objects are never modified)
                append(header)
                key = header.key
                if key not in tracked:
                    continue
                value = header.value
                name = header.name
            else:
                name, colon, value = line.partition(":")
                known = keys.get(name)
                if known is None or not colon:
                    if not colon:
                        raise ParseError("Header line without colon", line=line)
                    name = name.rstrip(" \t")
                    known = _header_key(name, line)
                key = known
                value = value.strip(" \t")
                header = Header(name, value, line, key)
                append(header)
                if key in _RECURRING:
                    if len(seen) >= 4096:
                        seen.clear()
                    seen[line] = header
            if key in tracked:
                if key == "via":
                    vias.append(value)
                elif key == "contact":
                    contacts.append(value)
                elif key in first:
                    raise ParseError(f"Multiple {_long_name(name)} headers", line=value)
                else:
                    first[key] = value
    headers = msg.headers = Headers._parsed(fields)
    headers._cache = _validate(msg, first, vias, contacts)
    body = data[body_at:]
    cl_text = first.get("content-length")
    if cl_text is not None:
        if not (cl_text.isdigit() and cl_text.isascii()) or len(cl_text) > 9:  # is_digits
            raise ParseError("Bad Content-Length header", line=cl_text)
        length = int(cl_text)
        if length > limits.max_body_bytes:
            raise ParseError("Request Entity Too Large", 413, line=cl_text)
        if length > len(body):
            raise ParseError("Content-Length larger than body", line=cl_text)
        if length < len(body):
            body = body[:length]
            data = data[: body_at + length]
    elif stream:
        raise ParseError("Missing Content-Length header")
    if len(body) > limits.max_body_bytes:
        raise ParseError("Request Entity Too Large", 413)
    msg._body = body
    msg._raw = data  # msg._mark_parsed(data), inline
    msg._body_dirty = False
    if isinstance(msg, Request):
        msg._start = (msg.method, msg._uri_text, msg.version)
    else:
        msg._start = (msg.status, msg.reason, msg.version)
    return msg


def _validate(msg: Request | Response, first: dict[str, str], vias: list[str],
              contacts: list[str]) -> dict[str, Any]:  # fmt: skip
    """Mandatory headers (§8.1.1), single-valued ones (RFC 4475 §3.3.8-9) and the values
    every layer reads.  Returns the start of the parsed views (see ``Headers``): the CSeq,
    and for Via, From, To and Contact (§17.1.3, §17.2.3, §12.1) the match that validated
    their only value, from which the view is made on first use without a second match."""
    if not vias:
        raise ParseError("Missing Via header")
    if not first.keys() >= _MANDATORY_KEYS:
        for key, name in _MANDATORY:
            if key not in first:
                raise ParseError(f"Missing {name} header")
    views: dict[str, Any] = {}
    if len(vias) == 1 and "," not in vias[0]:  # one Via value: the usual request from a UA
        value = vias[0]
        m = _VIA_PARTS(value)
        views["via"] = m if m is not None else [parse_via(value)]
    else:
        _check_list(vias, _FAST_VIA, parse_via)
    if contacts:
        if "*" in contacts:
            if len(contacts) > 1:
                raise ParseError("Contact: * with other Contact values", line="*")
        elif len(contacts) == 1 and "," not in contacts[0]:
            value = contacts[0]
            m = _NAME_ADDR_PARTS(value)
            views["contact"] = m if m is not None else [parse_name_addr(value)]
        else:
            _check_list(contacts, _FAST_NAME_ADDR, parse_name_addr)
    for key in ("from", "to"):
        value = first[key]
        m = _NAME_ADDR_PARTS(value)
        views[key] = m if m is not None else parse_name_addr(value)
    call_id = first["call-id"]
    if _CALL_ID_RE.fullmatch(call_id) is None:
        raise ParseError("Bad Call-ID header", line=call_id)
    cseq = first["cseq"]
    m = CSEQ_RE.fullmatch(cseq)
    number = int(m.group(1)) if m is not None else 2**31
    if number >= 2**31:
        parse_cseq(cseq)  # raises with the precise reason
        raise ParseError("Bad CSeq header", line=cseq)  # pragma: no cover
    assert m is not None
    method = m.group(2)
    views["cseq"] = new_cseq(number, method)
    if isinstance(msg, Request):
        if method != msg.method:
            raise ParseError("CSeq method does not match request method", line=cseq)
        mf = first.get("max-forwards")
        if mf is not None and (not is_digits(mf) or int(mf) > 255):
            raise ParseError("Bad Max-Forwards header", line=mf)
    expires = first.get("expires")
    if expires is not None and (not is_digits(expires) or len(expires) > 10 or int(expires) >= 2**32):
        raise ParseError("Bad Expires header", line=expires)
    date = first.get("date")
    if date is not None and _DATE_RE.fullmatch(date) is None:
        raise ParseError("Bad Date header", line=date)
    content_type = first.get("content-type")
    if content_type is not None and _CONTENT_TYPE_RE.fullmatch(content_type) is None:
        raise ParseError("Bad Content-Type header", line=content_type)
    return views


_MANDATORY = (("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq"))
_MANDATORY_KEYS = frozenset(key for key, _ in _MANDATORY)
