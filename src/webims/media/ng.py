"""rtpengine's "ng" control protocol, sans-IO: bencode, cookies, retransmission, timeouts.

The ng protocol (rtpengine's ``docs/ng_control_protocol.md``) carries one
request or response a UDP datagram: a *cookie* (any string without a space),
one space, then a bencoded dictionary.  A request has ``command`` (``ping``,
``offer``, ``answer``, ``delete``, ``query``, ``list``...) and the command's
keys; the response repeats the cookie and carries ``result`` (``ok``,
``pong``, ``error`` with ``error-reason``, or a limit such as ``load limit``)
and possibly ``warning``.  rtpengine caches responses by cookie, so a request
retransmitted with the same cookie is answered once and never run twice: the
client retransmits freely until an answer comes or its timeout ends.

Bencode (BEP 3): ``i<int>e``, ``<len>:<bytes>``, ``l...e``, ``d...e``.  This codec
is our own: rtpengine writes dictionary keys in insertion order, not the sorted
order BEP 3 asks for, and ``fastbencode`` refuses such input ("dict keys
disordered"), so it cannot read rtpengine's answers.  Byte strings decode to
``str`` (UTF-8, undecodable bytes kept with ``surrogateescape``); dictionary keys
are encoded sorted.

:class:`NgConnection` is the request/response state machine: ``send`` queues a
datagram and returns its cookie, ``datagrams_to_send`` drains the queue,
``receive_datagram`` matches responses to requests, ``get_timer`` /
``handle_timer(now)`` drive retransmissions (intervals doubling from
``initial_interval`` up to ``max_interval``) and the overall ``timeout``.
Outcomes are :class:`NgReply` or :class:`NgFailure` events; every failure is an
:class:`NgError` subclass.  No I/O, no clock: ``now`` is an argument.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "NgConnection",
    "NgDecodeError",
    "NgError",
    "NgErrorReply",
    "NgEvent",
    "NgFailure",
    "NgReply",
    "NgTimeout",
    "RetransmitPolicy",
    "bdecode",
    "bencode",
    "decode_message",
    "encode_message",
]

#: What bencode carries: ints, strings (str or bytes in, str out), lists, dicts with string keys.
Bencodable: TypeAlias = Any

#: Nesting limit of the decoder (ng answers nest about 8 deep).
MAX_DEPTH = 64


class NgError(Exception):
    """Any ng failure: ``reason`` is the text to show (and to put in a SIP reason)."""

    def __init__(self, reason: str, command: str = "") -> None:
        super().__init__(f"{command}: {reason}" if command else reason)
        self.reason = reason
        self.command = command


class NgDecodeError(NgError):
    """A datagram that is not ``cookie SP bencoded-dictionary``; ``offset`` is where decoding failed."""

    def __init__(self, what: str, offset: int = 0, command: str = "") -> None:
        super().__init__(f"{what} at byte {offset}", command)
        self.what = what
        self.offset = offset


class NgErrorReply(NgError):
    """rtpengine answered ``result: error`` (or a refusal such as ``load limit``).

    ``result`` is the result string, ``reason`` its ``error-reason`` (or ``message``).
    """

    def __init__(self, reason: str, result: str = "error", command: str = "") -> None:
        super().__init__(reason, command)
        self.result = result


class NgTimeout(NgError):
    """No answer within the policy's timeout after ``attempts`` transmissions."""

    def __init__(self, reason: str, attempts: int, elapsed: float, command: str = "") -> None:
        super().__init__(reason, command)
        self.attempts = attempts
        self.elapsed = elapsed


# -- bencode ---------------------------------------------------------------------------------------


def _encode_into(value: Bencodable, out: list[bytes]) -> None:
    if isinstance(value, bool):  # bool is an int subclass; bencode has no booleans
        raise TypeError("bencode has no booleans; rtpengine takes flags as strings")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, Mapping):
        items: list[tuple[bytes, Bencodable]] = []
        for key, item in value.items():
            if isinstance(key, str):
                items.append((key.encode("utf-8", "surrogateescape"), item))
            elif isinstance(key, bytes):
                items.append((key, item))
            else:
                raise TypeError(f"bencode dictionary keys are strings, not {type(key).__name__}")
        items.sort(key=lambda kv: kv[0])
        out.append(b"d")
        for raw_key, item in items:
            out.append(b"%d:" % len(raw_key))
            out.append(raw_key)
            _encode_into(item, out)
        out.append(b"e")
    elif isinstance(value, list | tuple):
        out.append(b"l")
        for item in value:
            _encode_into(item, out)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


def bencode(value: Bencodable) -> bytes:
    """Encode ints, str/bytes, lists/tuples and dicts with str/bytes keys (keys sorted, BEP 3)."""
    out: list[bytes] = []
    _encode_into(value, out)
    return b"".join(out)


def _decode_int(data: bytes, i: int, end_char: int) -> tuple[int, int]:
    """Digits of an integer starting at ``i`` up to ``end_char``; returns (value, index after it)."""
    end = data.find(end_char, i)
    if end < 0:
        raise NgDecodeError("unterminated integer", i)
    text = data[i:end]
    negative = text.startswith(b"-")
    digits = text[1:] if negative else text
    # BEP 3: no leading zeros, no "-0", digits only.
    if (
        not digits
        or not digits.isdigit()
        or (len(digits) > 1 and digits[:1] == b"0")
        or (digits == b"0" and negative)
    ):
        raise NgDecodeError("bad integer", i)
    return int(text), end + 1


def _decode(data: bytes, i: int, depth: int) -> tuple[Bencodable, int]:
    if i >= len(data):
        raise NgDecodeError("truncated", i)
    lead = data[i]
    if lead == 0x69:  # "i"
        return _decode_int(data, i + 1, 0x65)
    if 0x30 <= lead <= 0x39:
        length, start = _decode_int(data, i, 0x3A)
        end = start + length
        if end > len(data):
            raise NgDecodeError("string runs past the end", i)
        return data[start:end].decode("utf-8", "surrogateescape"), end
    if lead not in (0x6C, 0x64):  # "l", "d"
        raise NgDecodeError(f"unexpected byte {data[i : i + 1]!r}", i)
    if depth >= MAX_DEPTH:
        raise NgDecodeError("nested too deeply", i)
    i += 1
    if lead == 0x6C:
        items: list[Bencodable] = []
        while i < len(data) and data[i] != 0x65:
            item, i = _decode(data, i, depth + 1)
            items.append(item)
        if i >= len(data):
            raise NgDecodeError("unterminated list", i)
        return items, i + 1
    result: dict[str, Bencodable] = {}
    while i < len(data) and data[i] != 0x65:
        if not 0x30 <= data[i] <= 0x39:
            raise NgDecodeError("dictionary key is not a string", i)
        key, i = _decode(data, i, depth + 1)
        item, i = _decode(data, i, depth + 1)
        result[key] = item  # rtpengine writes keys unsorted: accept any order
    if i >= len(data):
        raise NgDecodeError("unterminated dictionary", i)
    return result, i + 1


def bdecode(data: bytes) -> Bencodable:
    """Decode one bencoded value that fills ``data``; raises :class:`NgDecodeError` only."""
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise NgDecodeError("trailing bytes", end)
    return value


def encode_message(cookie: str, body: Mapping[str, Bencodable]) -> bytes:
    """One ng datagram: ``cookie SP bencode(body)``."""
    if not cookie or " " in cookie:
        raise ValueError("an ng cookie is a non-empty string without spaces")
    return cookie.encode("ascii") + b" " + bencode(body)


def decode_message(data: bytes) -> tuple[str, dict[str, Bencodable]]:
    """Split an ng datagram into its cookie and its dictionary; raises :class:`NgDecodeError`."""
    cookie, sep, payload = data.partition(b" ")
    if not sep or not cookie:
        raise NgDecodeError("no cookie", 0)
    try:
        text_cookie = cookie.decode("ascii")
    except UnicodeDecodeError:
        raise NgDecodeError("cookie is not ASCII", 0) from None
    try:
        body = bdecode(payload)
    except NgDecodeError as exc:
        raise NgDecodeError(exc.what, exc.offset + len(cookie) + 1) from None
    if not isinstance(body, dict):
        raise NgDecodeError("message is not a dictionary", len(cookie) + 1)
    return text_cookie, body


# -- request / response matching -----------------------------------------------------------------


@dataclass(frozen=True)
class RetransmitPolicy:
    """When to send a request again, and when to give up.

    Sends happen at 0, i, 3i, 7i... (interval doubling from ``initial_interval``,
    capped at ``max_interval``) until ``timeout`` after the first send.  The
    defaults give up after 4 s having sent 4 times (0, 0.5, 1.5, 3.5 s).
    """

    initial_interval: float = 0.5
    max_interval: float = 2.0
    timeout: float = 4.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_interval <= self.max_interval or self.timeout <= 0:
            raise ValueError("need 0 < initial_interval <= max_interval and timeout > 0")

    def send_times(self) -> list[float]:
        """The offsets (from the first send) at which a request that gets no answer is sent."""
        times, t, interval = [0.0], 0.0, self.initial_interval
        while t + interval < self.timeout:
            t += interval
            times.append(t)
            interval = min(interval * 2, self.max_interval)
        return times


@dataclass(frozen=True)
class NgReply:
    """rtpengine answered ``cookie``'s request with ``result`` ``ok`` or ``pong``."""

    cookie: str
    command: str
    body: dict[str, Bencodable]
    attempts: int

    @property
    def result(self) -> str:
        return str(self.body.get("result", ""))

    @property
    def warning(self) -> str | None:
        value = self.body.get("warning")
        return None if value is None else str(value)


@dataclass(frozen=True)
class NgFailure:
    """``cookie``'s request failed: an error answer, a malformed answer or a timeout."""

    cookie: str
    command: str
    error: NgError


NgEvent: TypeAlias = NgReply | NgFailure

_SUCCESS = frozenset(("ok", "pong"))


@dataclass
class _Pending:
    cookie: str
    command: str
    datagram: bytes
    first_sent: float
    next_send: float
    interval: float
    attempts: int = 1


def _default_cookie_prefix() -> str:
    return secrets.token_hex(6)


@dataclass
class NgConnection:
    """The client side of ng toward one rtpengine: cookies, matching, retransmissions, timeouts.

    ``cookie_prefix`` (random by default) plus a counter makes every cookie unique,
    also between several clients of one rtpengine (its response cache is keyed by
    cookie alone).
    """

    policy: RetransmitPolicy = field(default_factory=RetransmitPolicy)
    cookie_prefix: str = field(default_factory=_default_cookie_prefix)
    #: Datagrams dropped: unknown or already answered cookies (late duplicates), undecodable.
    stray_datagrams: int = 0
    _counter: int = 0
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _outgoing: list[bytes] = field(default_factory=list)

    def send(self, command: str, params: Mapping[str, Bencodable], now: float) -> str:
        """Queue the request ``command`` with ``params``; return its cookie."""
        if "command" in params:
            raise ValueError("give the command as the first argument, not in params")
        self._counter += 1
        cookie = f"{self.cookie_prefix}{self._counter}"
        datagram = encode_message(cookie, {"command": command, **params})
        self._pending[cookie] = _Pending(
            cookie, command, datagram, now, now + self.policy.initial_interval, self.policy.initial_interval
        )
        self._outgoing.append(datagram)
        return cookie

    def cancel(self, cookie: str) -> None:
        """Forget a request: no more retransmissions, its answer will be dropped as stray."""
        self._pending.pop(cookie, None)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def pending_cookies(self) -> list[str]:
        return list(self._pending)

    def datagrams_to_send(self) -> list[bytes]:
        """Datagrams to send now (first transmissions and retransmissions), in order."""
        out, self._outgoing = self._outgoing, []
        return out

    def receive_datagram(self, data: bytes, now: float) -> list[NgEvent]:
        """Match a datagram from rtpengine to its request."""
        cookie_bytes = data.partition(b" ")[0]
        try:
            cookie = cookie_bytes.decode("ascii")
        except UnicodeDecodeError:
            cookie = ""
        pending = self._pending.get(cookie)
        if pending is None:
            self.stray_datagrams += 1
            return []
        del self._pending[cookie]
        try:
            _, body = decode_message(data)
        except NgDecodeError as exc:
            return [NgFailure(cookie, pending.command, NgDecodeError(exc.what, exc.offset, pending.command))]
        return [self._outcome(pending, body)]

    @staticmethod
    def _outcome(pending: _Pending, body: dict[str, Bencodable]) -> NgEvent:
        result = body.get("result")
        if isinstance(result, str) and result in _SUCCESS:
            return NgReply(pending.cookie, pending.command, body, pending.attempts)
        reason = body.get("error-reason") or body.get("message") or result or "answer without a result"
        return NgFailure(
            pending.cookie,
            pending.command,
            NgErrorReply(str(reason), str(result) if result is not None else "", pending.command),
        )

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next run (a retransmission or a timeout), or None."""
        if not self._pending:
            return None
        return min(min(p.next_send, p.first_sent + self.policy.timeout) for p in self._pending.values())

    def handle_timer(self, now: float) -> list[NgEvent]:
        """Retransmit what is due; fail what has timed out."""
        events: list[NgEvent] = []
        for cookie, p in list(self._pending.items()):
            elapsed = now - p.first_sent
            if elapsed >= self.policy.timeout:
                del self._pending[cookie]
                reason = f"no answer after {p.attempts} transmissions in {elapsed:.1f} s"
                events.append(NgFailure(cookie, p.command, NgTimeout(reason, p.attempts, elapsed, p.command)))
            elif now >= p.next_send:
                p.attempts += 1
                p.interval = min(p.interval * 2, self.policy.max_interval)
                p.next_send = now + p.interval
                self._outgoing.append(p.datagram)
        return events

    def fail_all(self, error_factory: Callable[[str], NgError]) -> list[NgEvent]:
        """Fail every pending request (the transport closed); ``error_factory(command)`` makes each error."""
        events: list[NgEvent] = [
            NgFailure(p.cookie, p.command, error_factory(p.command)) for p in self._pending.values()
        ]
        self._pending.clear()
        return events
