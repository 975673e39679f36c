"""SIP message model, parser and serializer (RFC 3261 §7, §18.3, §20; RFC 7118 §5).

``parse(data)`` turns one complete message into a :class:`Request` or
:class:`Response`.  Header values are kept as text, in order, with the exact
bytes they came in; the headers every SIP layer needs (Via, From, To, Call-ID,
CSeq, Contact, Max-Forwards, Content-Length) are validated at parse time so that
a malformed one is refused with the right answer.  Serializing a message nobody
modified returns the received bytes; a modified message re-serializes only what
changed and keeps Content-Length equal to the body length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ParseError
from .headers import (
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    check_name_addr,
    check_via,
    is_list_header,
    iter_tokens,
    parse_cseq,
    parse_name_addr,
    parse_vias,
    split_list,
)
from .uri import URI, AbsoluteURI, parse_uri

__all__ = ["DEFAULT_LIMITS", "Header", "Headers", "Limits", "Message", "Request", "Response", "parse"]

_T = TypeVar("_T")

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_VERSION_RE = re.compile(r"SIP/\d+\.\d+", re.I)
_CALL_ID_RE = re.compile(r"[^\s@]+(?:@[^\s@]+)?")
_SINGLE = ("from", "to", "call-id", "cseq", "content-length", "max-forwards", "content-type")


@dataclass(frozen=True)
class Limits:
    """Explicit parser limits (DESIGN.md §6.5)."""

    max_message_bytes: int = 65_536
    max_headers: int = 128
    max_line_bytes: int = 8_192
    max_body_bytes: int = 60_000


DEFAULT_LIMITS = Limits()

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request",
    401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 412: "Conditional Request Failed",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    429: "Provide Referrer Identity", 430: "Flow Failed", 433: "Anonymity Disallowed",
    439: "First Hop Lacks Outbound Support", 440: "Max-Breadth Exceeded", 469: "Bad Info Package",
    470: "Consent Needed", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event",
    491: "Request Pending", 493: "Undecipherable", 494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


class Header:
    """One header field line: name as written, unfolded value, original text."""

    __slots__ = ("key", "name", "raw", "value")

    def __init__(self, name: str, value: str, raw: str | None = None, key: str | None = None) -> None:
        self.name = name
        self.value = value
        self.raw = raw
        self.key = key if key is not None else canonical_name(name)

    def __repr__(self) -> str:
        return f"Header({self.name!r}, {self.value!r})"

    def serialize(self) -> str:
        return (self.raw if self.raw is not None else f"{self.name}: {self.value}") + "\r\n"


class Headers:
    """Ordered header fields with case-insensitive, compact-form-aware lookup."""

    __slots__ = ("_cache", "_list", "dirty")

    def __init__(self, items: Iterable[Header | tuple[str, str]] = ()) -> None:
        self._list: list[Header] = [i if isinstance(i, Header) else Header(i[0], i[1]) for i in items]
        self._cache: dict[str, Any] = {}
        self.dirty = False

    def _changed(self) -> None:
        self._cache.clear()
        self.dirty = True

    def cached(self, key: str, make: Any) -> Any:
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = make()
            return value

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((h.name, h.value) for h in self._list)

    def __len__(self) -> int:
        return len(self._list)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = canonical_name(name)
        return any(h.key == key for h in self._list)

    @property
    def fields(self) -> list[Header]:
        """The header lines themselves (read-only use; mutate through methods)."""
        return self._list

    def get(self, name: str, default: _T = None) -> str | _T:  # type: ignore[assignment]
        key = canonical_name(name)
        for h in self._list:
            if h.key == key:
                return h.value
        return default

    def get_all(self, name: str) -> list[str]:
        """All values of ``name``; list headers (§7.3.1) are split on commas."""
        key = canonical_name(name)
        values = [h.value for h in self._list if h.key == key]
        if is_list_header(key):
            return [item for v in values for item in split_list(v)]
        return values

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header with one carrying ``value``."""
        key = canonical_name(name)
        new = Header(name, value, key=key)
        for i, h in enumerate(self._list):
            if h.key == key:
                self._list[i] = new
                self._list[i + 1 :] = [x for x in self._list[i + 1 :] if x.key != key]
                break
        else:
            self._list.append(new)
        self._changed()

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Append ``name: value``; with ``first`` put it before the others of that name
        (Via, Record-Route, Route, Path are prepended by proxies)."""
        key = canonical_name(name)
        new = Header(name, value, key=key)
        if first:
            for i, h in enumerate(self._list):
                if h.key == key:
                    self._list.insert(i, new)
                    break
            else:
                self._list.append(new)
        else:
            self._list.append(new)
        self._changed()

    def remove(self, name: str) -> int:
        key = canonical_name(name)
        before = len(self._list)
        self._list = [h for h in self._list if h.key != key]
        removed = before - len(self._list)
        if removed:
            self._changed()
        return removed

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of a list header (top Via, first Route)."""
        key = canonical_name(name)
        for i, h in enumerate(self._list):
            if h.key == key:
                items = split_list(h.value)
                if len(items) <= 1:
                    del self._list[i]
                else:
                    self._list[i] = Header(h.name, ", ".join(items[1:]), key=key)
                self._changed()
                return items[0] if items else None
        return None

    def copy(self) -> Headers:
        return Headers(Header(h.name, h.value, h.raw, h.key) for h in self._list)


class Message:
    """Common part of requests and responses."""

    __slots__ = ("_body", "_body_dirty", "_raw", "_start", "headers", "version")

    def __init__(self, headers: Headers | Iterable[tuple[str, str]] = (), body: bytes = b"",
                 version: str = "SIP/2.0") -> None:
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self._body = body
        self._body_dirty = True
        self._raw: bytes | None = None
        self._start: tuple[object, ...] = ()
        self.version = version

    # -- body ---------------------------------------------------------------
    @property
    def body(self) -> bytes:
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = value
        self._body_dirty = True

    # -- typed views of the headers every layer needs (§8.1.1) --------------
    @property
    def via(self) -> list[Via]:
        return self.headers.cached(  # type: ignore[no-any-return]
            "via", lambda: [v for s in self.headers.get_all("via") for v in parse_vias(s)]
        )

    @property
    def top_via(self) -> Via:
        vias = self.via
        if not vias:
            raise ParseError("Missing Via header")
        return vias[0]

    @property
    def call_id(self) -> str:
        value = self.headers.get("call-id")
        if value is None:
            raise ParseError("Missing Call-ID header")
        return value

    @property
    def cseq(self) -> CSeq:
        return self.headers.cached("cseq", lambda: parse_cseq(self._required("cseq")))  # type: ignore[no-any-return]

    @property
    def from_(self) -> NameAddr:
        return self.headers.cached("from", lambda: parse_name_addr(self._required("from")))  # type: ignore[no-any-return]

    @property
    def to(self) -> NameAddr:
        return self.headers.cached("to", lambda: parse_name_addr(self._required("to")))  # type: ignore[no-any-return]

    @property
    def contact(self) -> list[NameAddr]:
        """Contact addresses; empty for none and for ``Contact: *`` (see :attr:`contact_star`)."""
        if self.contact_star:
            return []
        return self._addresses("contact")

    @property
    def contact_star(self) -> bool:
        values = self.headers.get_all("contact")
        return len(values) == 1 and values[0] == "*"

    @property
    def route(self) -> list[NameAddr]:
        return self._addresses("route")

    @property
    def record_route(self) -> list[NameAddr]:
        return self._addresses("record-route")

    @property
    def path(self) -> list[NameAddr]:
        return self._addresses("path")

    @property
    def service_route(self) -> list[NameAddr]:
        return self._addresses("service-route")

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("max-forwards")
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit() or int(value) > 255:
            raise ParseError("Bad Max-Forwards header", line=value)
        return int(value)

    @property
    def expires(self) -> int | None:
        value = self.headers.get("expires")
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit() or len(value) > 10:
            raise ParseError("Bad Expires header", line=value)
        return int(value)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("content-type")
        return value.split(";", 1)[0].strip().lower() if value is not None else None

    def option_tags(self, name: str) -> set[str]:
        """Tokens of Supported / Require / Proxy-Require / Unsupported, lower-cased."""
        return {t.lower() for v in self.headers.get_all(name) for t in iter_tokens(v)}

    def _required(self, key: str) -> str:
        value = self.headers.get(key)
        if value is None:
            raise ParseError(f"Missing {key} header")
        return value

    def _addresses(self, key: str) -> list[NameAddr]:
        return self.headers.cached(  # type: ignore[no-any-return]
            key, lambda: [parse_name_addr(v) for v in self.headers.get_all(key)]
        )

    # -- serialization -----------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def _start_key(self) -> tuple[object, ...]:
        raise NotImplementedError

    @property
    def modified(self) -> bool:
        return (
            self._raw is None
            or self.headers.dirty
            or self._body_dirty
            or self._start != self._start_key()
        )

    def serialize(self) -> bytes:
        """The message as bytes: the received bytes when nothing was modified."""
        if not self.modified and self._raw is not None:
            return self._raw
        body = self._body
        out = [self.start_line(), "\r\n"]
        declared = self.headers.get("content-length")
        length = str(len(body))
        if declared is None or declared.strip() != length:
            self.headers.set("Content-Length", length)
        out.extend(h.serialize() for h in self.headers.fields)
        out.append("\r\n")
        return "".join(out).encode() + body

    def __bytes__(self) -> bytes:
        return self.serialize()

    def _mark_parsed(self, raw: bytes) -> None:
        self._raw = raw
        self._start = self._start_key()
        self._body_dirty = False
        self.headers.dirty = False


class Request(Message):
    """A SIP request (RFC 3261 §7.1)."""

    __slots__ = ("method", "uri")

    def __init__(self, method: str, uri: URI | str, headers: Headers | Iterable[tuple[str, str]] = (),
                 body: bytes = b"", version: str = "SIP/2.0") -> None:
        super().__init__(headers, body, version)
        self.method = method
        self.uri: URI = parse_uri(uri) if isinstance(uri, str) else uri

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def _start_key(self) -> tuple[object, ...]:
        return (self.method, id(self.uri), self.version)

    def response(self, status: int, reason: str | None = None, *, to_tag: str | None = None,
                 headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> Response:
        """Build a response to this request (RFC 3261 §8.2.6.2): Via, From, To, Call-ID,
        CSeq copied; ``to_tag`` added to To when it has none; Record-Route copied on
        101-299 responses (§12.1.1)."""
        copied: list[Header] = []
        for h in self.headers.fields:
            if h.key in ("via", "from", "call-id", "cseq"):
                copied.append(Header(h.name, h.value, key=h.key))
            elif h.key == "to":
                value = h.value
                if to_tag is not None and self.to.tag is None:
                    value = f"{value};tag={to_tag}"
                copied.append(Header(h.name, value, key="to"))
            elif h.key == "record-route" and 100 < status < 300:
                copied.append(Header(h.name, h.value, key=h.key))
            elif h.key == "timestamp" and status == 100:
                copied.append(Header(h.name, h.value, key=h.key))  # §8.2.6.1
        out = Headers(copied)
        for name, value in headers:
            out.add(name, value)
        return Response(status, reason if reason is not None else REASON_PHRASES.get(status, ""), out, body)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response (RFC 3261 §7.2)."""

    __slots__ = ("reason", "status")

    def __init__(self, status: int, reason: str | None = None,
                 headers: Headers | Iterable[tuple[str, str]] = (), body: bytes = b"",
                 version: str = "SIP/2.0") -> None:
        super().__init__(headers, body, version)
        self.status = status
        self.reason = reason if reason is not None else REASON_PHRASES.get(status, "")

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def _start_key(self) -> tuple[object, ...]:
        return (self.status, self.reason, self.version)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


# --------------------------------------------------------------------------- parser

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


def _split_head(data: bytes, limits: Limits) -> tuple[bytes, int]:
    """Return the header section and the offset of the body."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], end + 4
    end = data.find(b"\n\n")
    if end >= 0:
        return data[:end], end + 2
    if data.endswith(b"\r\n"):  # no empty line: a datagram with no body (lenient)
        return data[:-2], len(data)
    if len(data) > limits.max_line_bytes and b"\n" not in data:
        raise ParseError("Message Too Large", 513)
    raise ParseError("Incomplete header section: missing empty line")


def _parse_start(line: str) -> Request | Response:
    if line[:4].upper() == "SIP/":
        parts = line.split(" ", 2)
        if len(parts) < 2 or not _VERSION_RE.fullmatch(parts[0]):
            raise ParseError("Bad status line", line=line)
        if parts[0].upper() != "SIP/2.0":
            raise ParseError("Version Not Supported", 505, line=line)
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise ParseError("Bad status code", line=line)
        return Response(int(code), parts[2] if len(parts) == 3 else "", Headers(), b"", parts[0])
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise ParseError("Bad request line", line=line)
    method, uri_text, version = parts
    if not _TOKEN_RE.fullmatch(method):
        raise ParseError("Bad method", line=line)
    if version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise ParseError("Version Not Supported", 505, line=line)
        raise ParseError("Bad request line", line=line)
    uri = parse_uri(uri_text)
    if isinstance(uri, AbsoluteURI):
        raise ParseError("Unsupported URI Scheme", 416, line=line)
    return Request(method, uri, Headers(), b"", version)


_MANDATORY = (("via", "Via"), ("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq"))


def _validate(msg: Request | Response, first: dict[str, Header], counts: dict[str, int]) -> None:
    """Mandatory headers (§8.1.1), single-valued ones (RFC 4475 §3.1.2.19), and the
    values every layer reads, parsed once into the header cache."""
    for key, name in _MANDATORY:
        if key not in first:
            raise ParseError(f"Missing {name} header")
    if len(counts) != len(first):
        for key in _SINGLE:
            if counts.get(key, 0) > 1:
                raise ParseError(f"Multiple {key} headers")
    call_id = first["call-id"].value
    if not _CALL_ID_RE.fullmatch(call_id):
        raise ParseError("Bad Call-ID header", line=call_id)
    cseq = msg.headers._cache["cseq"] = parse_cseq(first["cseq"].value)
    # Via, From, To and Contact are validated here and built into objects on first use.
    for h in msg.headers.fields:
        key = h.key
        if key == "via" or key == "contact":
            if key == "contact" and h.value == "*":
                continue
            check = check_via if key == "via" else check_name_addr
            if "," in h.value:
                for item in split_list(h.value):
                    check(item)
            else:
                check(h.value)
    check_name_addr(first["from"].value)
    check_name_addr(first["to"].value)
    if isinstance(msg, Request):
        if cseq.method != msg.method:
            raise ParseError("CSeq method does not match request method", line=str(cseq))
        if "max-forwards" in first:
            msg.max_forwards  # noqa: B018
    if "expires" in first:
        msg.expires  # noqa: B018


def parse(data: bytes, limits: Limits = DEFAULT_LIMITS, *, stream: bool = False) -> Request | Response:
    """Parse one complete SIP message.

    Message-per-datagram semantics (UDP, WebSocket frames: RFC 3261 §18.3, RFC 7118
    §5): Content-Length is optional; when present the body is cut to it and a body
    shorter than it is an error.  With ``stream=True`` (a framer already cut the
    message) Content-Length is mandatory (§20.14).
    Raises :class:`ParseError` and nothing else.
    """
    try:
        return _parse(data, limits, stream)
    except ParseError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, UnicodeError, OverflowError) as exc:
        raise ParseError(f"Malformed message ({type(exc).__name__})") from None


def _parse_fields(text: str, max_line: int) -> list[Header]:
    """Header lines of ``text`` (everything after the start line, without the final CRLF).

    ``Header.raw`` keeps each field's exact text (folding included) without its
    final line terminator.
    """
    fields: list[Header] = []
    keys = _NAME_KEYS
    if "\n " not in text and "\n\t" not in text and text.count("\n") == text.count("\r\n"):
        if len(text) > max_line and any(len(x) > max_line for x in text.split("\r\n")):
            raise ParseError("Message Too Large", 513)
        for line in text.split("\r\n"):  # fast path: CRLF lines, no folding
            name, colon, value = line.partition(":")
            key = keys.get(name)
            if key is None or not colon:
                if not colon:
                    raise ParseError("Header line without colon", line=line)
                name = name.rstrip(" \t")
                key = _header_key(name, line)
            fields.append(Header(name, value.strip(), line, key))
        return fields
    for line in text.split("\n"):
        raw = line
        if line.endswith("\r"):
            line = line[:-1]
        if len(line) > max_line:
            raise ParseError("Message Too Large", 513)
        if line[:1] in (" ", "\t"):
            if not fields:
                raise ParseError("Continuation line before any header", line=line)
            prev = fields[-1]
            prev.value = f"{prev.value} {line.strip()}".strip()
            prev.raw = f"{prev.raw}\n{raw}"
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError("Header line without colon", line=line)
        name = name.rstrip(" \t")
        fields.append(Header(name, value.strip(), raw, _header_key(name, line)))
    for h in fields:  # the terminator of the last physical line is added back on output
        if h.raw is not None and h.raw.endswith("\r"):
            h.raw = h.raw[:-1]
    return fields


def _parse(data: bytes, limits: Limits, stream: bool) -> Request | Response:
    if len(data) > limits.max_message_bytes:
        raise ParseError("Message Too Large", 513)
    start = 0
    while data.startswith(b"\r\n", start):  # §7.5: CRLFs before the start line are ignored
        start += 2
    if start:
        data = data[start:]
    if not data:
        raise ParseError("Empty message")
    head, body_at = _split_head(data, limits)
    if b"\x00" in head:
        raise ParseError("NUL byte in header section")
    try:
        text = head.decode()
    except UnicodeDecodeError:
        raise ParseError("Header section is not UTF-8") from None
    nl = text.find("\n")
    if nl < 0:
        first_line, rest = text, ""
    else:
        first_line, rest = text[:nl], text[nl + 1 :]
    first_line = first_line.removesuffix("\r")
    if len(first_line) > limits.max_line_bytes:
        raise ParseError("Message Too Large", 513)
    msg = _parse_start(first_line)
    fields = _parse_fields(rest, limits.max_line_bytes) if rest else []
    if len(fields) > limits.max_headers:
        raise ParseError("Message Too Large: too many headers", 513)
    first: dict[str, Header] = {}
    counts: dict[str, int] = {}
    for h in fields:
        if h.key in first:
            counts[h.key] = counts.get(h.key, 1) + 1
        else:
            first[h.key] = h
    counts.update((k, 1) for k in first if k not in counts)
    msg.headers = Headers(fields)
    _validate(msg, first, counts)
    body = data[body_at:]
    cl_header = first.get("content-length")
    if cl_header is not None:
        cl_text = cl_header.value
        if not cl_text.isdigit() or len(cl_text) > 9:
            raise ParseError("Bad Content-Length header", line=cl_text)
        length = int(cl_text)
        if length > limits.max_body_bytes:
            raise ParseError("Request Entity Too Large", 413)
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
    msg._mark_parsed(data)
    return msg
