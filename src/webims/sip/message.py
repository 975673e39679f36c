"""SIP message model and serializer (RFC 3261 §7, §20); the parser is :mod:`.parser`.

Header values are kept as text, in order, with the exact bytes they came in;
typed views (Via, From, To, CSeq, Contact, Route...) are built on first use and
cached.  Serializing a message nobody modified returns the received bytes; a
modified message re-serializes only what changed and keeps Content-Length equal
to the body length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from .errors import ParseError
from .headers import (
    _CANONICAL,
    _LIST_HEADERS,
    FAST_SIP_URI_RE,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    is_digits,
    iter_tokens,
    name_addr_from,
    parse_cseq,
    parse_name_addr,
    parse_vias,
    split_list,
    via_from,
)
from .uri import URI, parse_uri, parse_valid_sip_uri

__all__ = [
    "DEFAULT_LIMITS", "REASON_PHRASES", "Header", "Headers", "Limits", "Message", "Request", "Response",
]

_T = TypeVar("_T")

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_IDENTIFYING = frozenset(("via", "from", "to", "call-id", "cseq"))  # §17.1.3, §17.2.3
_RESPONSE_COPIED = frozenset(("via", "from", "call-id", "cseq"))  # and To (RFC 3261 §8.2.6.2)
_RESPONSE_VIEWS = ("via", "from", "to", "cseq")
_RESPONSE_VIEWS_TAGGED = ("via", "from", "cseq")


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


def _checked_value(value: str) -> str:
    """A header value set by a program: one line (no header injection through CR/LF)."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"header value with CR or LF: {value!r}")
    return value


def pending_view(key: str, m: re.Match[str]) -> Any:
    """The view of header ``key`` from the match that validated its only value (the parser
    keeps that match in place of the view until the view is first read)."""
    if key == "via":
        return [via_from(m, m.string)]
    if key == "contact":
        return [name_addr_from(m, m.string)]
    return name_addr_from(m, m.string)  # From, To


_Match = re.Match


class Headers:
    """Ordered header fields with case-insensitive, compact-form-aware lookup.

    Parsed views (typed values of a header: list of Via, NameAddr, CSeq...) are cached by
    canonical name; an entry may be the ``re.Match`` that validated the header's only
    value (from the parser), turned into the view on first read (:func:`pending_view`).
    """

    __slots__ = ("_cache", "_list", "dirty")

    def __init__(self, items: Iterable[Header | tuple[str, str]] = ()) -> None:
        fields: list[Header] = []
        append = fields.append
        canonical = _CANONICAL.get
        for item in items:
            if isinstance(item, Header):
                append(item)
                continue
            name, value = item
            if "\r" in value or "\n" in value:
                _checked_value(value)  # raises
            append(Header(name, value, None, canonical(name) or canonical_name(name)))
        self._list = fields
        self._cache: dict[str, Any] = {}
        self.dirty = False

    @classmethod
    def _parsed(cls, fields: list[Header]) -> Headers:
        headers = cls()
        headers._list = fields
        return headers

    def _changed(self, key: str) -> None:
        """A header named ``key`` changed: forget only its parsed view (views are cached
        by canonical header name)."""
        self._cache.pop(key, None)
        self.dirty = True

    def cached(self, key: str, make: Any) -> Any:
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = make()
        elif value.__class__ is _Match:
            value = self._cache[key] = pending_view(key, value)
        return value

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((h.name, h.value) for h in self._list)

    def __len__(self) -> int:
        return len(self._list)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _CANONICAL.get(name) or canonical_name(name)
        for h in self._list:  # noqa: SIM110 - a loop, not a generator: faster
            if h.key == key:
                return True
        return False

    @property
    def fields(self) -> list[Header]:
        """The header lines themselves (read-only use; mutate through methods)."""
        return self._list

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: _T) -> str | _T: ...
    def get(self, name: str, default: object = None) -> object:
        key = _CANONICAL.get(name) or canonical_name(name)
        for h in self._list:
            if h.key == key:
                return h.value
        return default

    def get_all(self, name: str) -> list[str]:
        """All values of ``name``; list headers (§7.3.1) are split on commas."""
        key = _CANONICAL.get(name) or canonical_name(name)
        values = [h.value for h in self._list if h.key == key]
        if values and key in _LIST_HEADERS:
            if len(values) == 1 and "," not in values[0]:
                value = values[0].strip(" \t")  # split_list of one item
                return [value] if value else []
            return [item for v in values for item in split_list(v)]
        return values

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header with one carrying ``value``."""
        key = canonical_name(name)
        new = Header(name, _checked_value(value), key=key)
        for i, h in enumerate(self._list):
            if h.key == key:
                self._list[i] = new
                self._list[i + 1 :] = [x for x in self._list[i + 1 :] if x.key != key]
                break
        else:
            self._list.append(new)
        self._changed(key)

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Append ``name: value``; with ``first`` put it before the others of that name
        (Via, Record-Route, Route, Path are prepended by proxies)."""
        key = _CANONICAL.get(name) or canonical_name(name)
        if "\r" in value or "\n" in value:
            _checked_value(value)  # raises
        new = Header(name, value, None, key)
        fields = self._list
        if first:
            for i, h in enumerate(fields):
                if h.key == key:
                    fields.insert(i, new)
                    break
            else:
                fields.append(new)
        else:
            fields.append(new)
        self._cache.pop(key, None)  # _changed(key)
        self.dirty = True

    def remove(self, name: str) -> int:
        key = canonical_name(name)
        before = len(self._list)
        self._list = [h for h in self._list if h.key != key]
        removed = before - len(self._list)
        if removed:
            self._changed(key)
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
                self._changed(key)
                return items[0] if items else None
        return None

    def copy(self) -> Headers:
        """An independent copy. Header lines are never changed in place and parsed views are
        read-only values, so both are shared."""
        copy = Headers._parsed(self._list.copy())
        copy._cache = self._cache.copy()
        return copy

    def view(self, key: str) -> Any:
        """The cached parsed view of header ``key``, or None."""
        value = self._cache.get(key)
        if value.__class__ is _Match:
            value = self._cache[key] = pending_view(key, value)
        return value

    def set_view(self, key: str, value: Any) -> None:
        """Record the parsed view of header ``key`` (after an edit that produced it)."""
        self._cache[key] = value


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
    # (views are read from the cache dict at once: these properties run on every message)
    @property
    def via(self) -> list[Via]:
        cache = self.headers._cache
        vias = cache.get("via")
        if vias is None:
            vias = cache["via"] = self._parse_vias()
        elif vias.__class__ is _Match:
            vias = cache["via"] = [via_from(vias, vias.string)]
        return vias

    def _parse_vias(self) -> list[Via]:
        # lines from the parser (``raw`` set) were validated there (parser._validate)
        return [
            v for h in self.headers.fields if h.key == "via"
            for v in parse_vias(h.value, validated=h.raw is not None)
        ]  # fmt: skip

    def push_via(self, via: Via) -> None:
        """Add ``via`` as the new top Via (§8.1.1.7, §16.6 step 8, §18.1.1), keeping the parsed view."""
        below = self.headers.view("via")
        if below is None:
            for h in self.headers.fields:
                if h.key == "via":
                    break
            else:
                below = []  # no Via yet: the view is this one
        self.headers.add("Via", str(via), first=True)
        if below is not None:
            self.headers.set_view("via", [via, *below])

    def replace_top_via(self, via: Via) -> None:
        """Put ``via`` in place of the top Via value (§18.2.1 ``received``/``rport``), keeping
        the parsed view."""
        below = self.via[1:]
        headers = self.headers
        fields = headers._list
        for i, h in enumerate(fields):
            if h.key == "via":
                if "," not in h.value:  # the top Via alone on its line: replace the line
                    fields[i] = Header("Via", _checked_value(str(via)), None, "via")
                    headers.dirty = True
                    break
                headers.pop_first("via")
                headers.add("Via", str(via), first=True)
                break
        else:  # no Via yet: this one is the first
            headers.add("Via", str(via), first=True)
        headers._cache["via"] = [via, *below]

    @property
    def top_via(self) -> Via:
        vias = self.headers._cache.get("via")
        if vias is None or vias.__class__ is _Match:
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
        cache = self.headers._cache
        cseq: CSeq | None = cache.get("cseq")
        if cseq is None:
            cseq = cache["cseq"] = parse_cseq(self._required("cseq"))
        return cseq

    @property
    def from_(self) -> NameAddr:
        cache = self.headers._cache
        addr = cache.get("from")
        if addr is None:
            addr = cache["from"] = parse_name_addr(self._required("from"))
        elif addr.__class__ is _Match:
            addr = cache["from"] = name_addr_from(addr, addr.string)
        return addr

    @property
    def to(self) -> NameAddr:
        cache = self.headers._cache
        addr = cache.get("to")
        if addr is None:
            addr = cache["to"] = parse_name_addr(self._required("to"))
        elif addr.__class__ is _Match:
            addr = cache["to"] = name_addr_from(addr, addr.string)
        return addr

    @property
    def contact(self) -> list[NameAddr]:
        """Contact addresses; empty for none and for ``Contact: *`` (see :attr:`contact_star`)."""
        addrs = self.headers._cache.get("contact")  # never made for "*"
        if addrs is not None:
            if addrs.__class__ is _Match:
                addrs = self.headers._cache["contact"] = [name_addr_from(addrs, addrs.string)]
            return addrs
        if self.contact_star:
            return []
        return self._addresses("contact")

    @property
    def contact_star(self) -> bool:
        if self.headers._cache.get("contact"):
            return False  # a view with Contact addresses: never made for "*"
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
        value = value.strip(" \t")
        if not is_digits(value) or int(value) > 255:
            raise ParseError("Bad Max-Forwards header", line=value)
        return int(value)

    @property
    def expires(self) -> int | None:
        value = self.headers.get("expires")
        if value is None:
            return None
        value = value.strip(" \t")
        if not is_digits(value) or len(value) > 10 or int(value) > 2**32 - 1:
            raise ParseError("Bad Expires header", line=value)
        return int(value)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("content-type")
        if value is None:
            return None
        return value.split(";", 1)[0].replace(" ", "").replace("\t", "").lower()

    def option_tags(self, name: str) -> set[str]:
        """Tokens of Supported / Require / Proxy-Require / Unsupported, lower-cased."""
        return {t.lower() for v in self.headers.get_all(name) for t in iter_tokens(v)}

    def _required(self, key: str) -> str:
        value = self.headers.get(key)
        if value is None:
            raise ParseError(f"Missing {key} header")
        return value

    def _addresses(self, key: str) -> list[NameAddr]:
        cache = self.headers._cache
        addrs = cache.get(key)
        if addrs is None:
            addrs = cache[key] = [parse_name_addr(v) for v in self.headers.get_all(key)]
        elif addrs.__class__ is _Match:
            addrs = cache[key] = pending_view(key, addrs)
        return addrs

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
        headers = self.headers
        length = str(len(body))
        for h in headers._list:
            if h.key == "content-length":
                if h.value.strip() != length:
                    headers.set("Content-Length", length)
                break
        else:
            headers.add("Content-Length", length)
        lines = [self.start_line()]
        lines += [h.raw if h.raw is not None else f"{h.name}: {h.value}" for h in headers._list]
        lines += ("", "")  # the empty line ending the header section
        return "\r\n".join(lines).encode() + body

    def serialized(self) -> bytes:
        """:meth:`serialize`, keeping the bytes: a message handed over to be sent, and kept to
        be sent again, is serialized once (a later change is still seen: :attr:`modified`)."""
        data = self.serialize()
        self._mark_parsed(data)
        return data

    def __bytes__(self) -> bytes:
        return self.serialize()

    def _mark_parsed(self, raw: bytes) -> None:
        self._raw = raw
        self._start = self._start_key()
        self._body_dirty = False
        self.headers.dirty = False


class Request(Message):
    """A SIP request (RFC 3261 §7.1).

    A parsed request keeps its Request-URI as text (validated) and builds the
    :data:`URI` object on first access; assigning ``uri`` replaces it.
    """

    __slots__ = ("_uri", "_uri_text", "method")

    def __init__(self, method: str, uri: URI | str, headers: Headers | Iterable[tuple[str, str]] = (),
                 body: bytes = b"", version: str = "SIP/2.0") -> None:
        super().__init__(headers, body, version)
        self.method = method
        self._uri_text: str | None = None
        self._uri: URI | None
        if not isinstance(uri, str):
            self._uri = uri
        elif FAST_SIP_URI_RE.fullmatch(uri) is not None:  # valid: the object on first use
            self._uri, self._uri_text = None, uri
        else:
            self._uri = parse_uri(uri)

    @property
    def uri(self) -> URI:
        uri = self._uri
        if uri is None:
            uri = self._uri = parse_valid_sip_uri(self._uri_text or "")  # matched FAST_SIP_URI_RE
        return uri

    @uri.setter
    def uri(self, value: URI | str) -> None:
        self._uri = parse_uri(value) if isinstance(value, str) else value
        self._uri_text = None

    @property
    def uri_text(self) -> str:
        """``str(self.uri)`` without building the URI object."""
        return self._uri_text if self._uri_text is not None and self._uri is None else str(self.uri)

    def skeleton(self) -> Request:
        """This request with only the header fields that identify it (Via, From, To, Call-ID,
        CSeq; shared) and no body: what a finished transaction still needs of it."""
        fields = [h for h in self.headers.fields if h.key in _IDENTIFYING]
        uri = self._uri if self._uri is not None else self.uri_text
        return Request(self.method, uri, Headers._parsed(fields), b"", self.version)

    def copy(self) -> Request:
        """A new request with the same start line, header fields (copied) and body."""
        uri = self._uri if self._uri is not None else self.uri_text
        return Request(self.method, uri, self.headers.copy(), self._body, self.version)

    def start_line(self) -> str:
        uri = self._uri_text if self._uri_text is not None else str(self._uri)
        return f"{self.method} {uri} {self.version}"

    def _start_key(self) -> tuple[object, ...]:
        return (self.method, self._uri_text, self.version)

    def response(self, status: int, reason: str | None = None, *, to_tag: str | None = None,
                 headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> Response:
        """Build a response to this request (RFC 3261 §8.2.6.2): Via, From, To, Call-ID,
        CSeq copied; ``to_tag`` added to To when it has none; Record-Route copied on
        101-299 responses (§12.1.1)."""
        copied: list[Header] = []
        tagged = False
        for h in self.headers.fields:  # Header lines are immutable: shared, not copied
            key = h.key
            if key in _RESPONSE_COPIED:
                copied.append(h)
            elif key == "to":
                if to_tag is not None and self.to.tag is None:
                    h = Header(h.name, f"{h.value};tag={to_tag}", key="to")
                    tagged = True
                copied.append(h)
            elif key == "record-route" and 100 < status < 300:
                copied.append(h)
            elif key == "timestamp" and status == 100:
                copied.append(h)  # §8.2.6.1
        canonical = _CANONICAL.get
        extra_keys: set[str] | tuple[()] = ()
        if headers:
            extra_keys = set()
            for name, value in headers:
                if "\r" in value or "\n" in value:
                    _checked_value(value)  # raises
                key = canonical(name) or canonical_name(name)
                extra_keys.add(key)
                copied.append(Header(name, value, None, key))
        out = Headers._parsed(copied)
        # the same header lines: the same parsed views (From, CSeq; To unless tagged here)
        views = self.headers._cache
        shared = out._cache
        for key in _RESPONSE_VIEWS if not tagged else _RESPONSE_VIEWS_TAGGED:
            view = views.get(key)
            if view is not None and key not in extra_keys:
                shared[key] = view
        return Response(status, reason, out, body)

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
