"""SIP transactions (RFC 3261 §17, corrected by RFC 6026), sans-IO.

The four transaction machines are written as one state table each, below:
``(state, input) -> (actions, next state)`` with the RFC section beside every
row (DESIGN.md §6.3).  An input with no row in the table is absorbed: that is how
the machines discard late responses, retransmitted requests in Trying, ACKs in
Confirmed, and so on.

Time is an argument: every call takes ``now`` (seconds, any epoch) and the
machines expose :meth:`Transaction.get_timer` / :meth:`Transaction.handle_timer`.
Outputs are events returned by each call: messages to pass to the transport
(:class:`SendMessage`), responses and ACKs for the transaction user, timeouts,
transport errors and termination. They are dataclasses with ``Final`` fields and a
written-out ``__init__``: mypyc compiles that ``__init__`` (about 12 times faster than
the one ``dataclasses`` generates for a frozen class, which stays interpreted) and
refuses assignments to ``Final`` fields at run time, as ``frozen=True`` would.
:class:`~webims.sip.transaction_layer.TransactionLayer` holds many transactions,
routes messages to them and multiplexes their timers.

Timers (§17.1.1.1, §17.1.2.2, §17.2.1, §17.2.2, Table 4; RFC 6026 §8.4, §8.7):
A/E/G retransmit from T1 (A doubling without cap, E and G capped at T2); B, F, H,
L, M last 64*T1; D is 32 s, I and K are T4, J is 64*T1 -- and D, I, J, K are zero
over reliable transports, where nothing is retransmitted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from .message import Request, Response
from .randomness import token_hex

__all__ = [
    "DEFAULT_TIMERS", "MAGIC_COOKIE", "TABLES", "AckReceived", "AckTimeout", "Backoff", "ClientKey",
    "ClientTransaction", "Do", "Event", "Input", "Kind", "MergedRequest", "RequestCancelled",
    "RequestReceived", "ResponseReceived", "Row", "SendMessage", "ServerKey", "ServerTransaction", "Start",
    "State", "Stop", "StrayResponse", "Timer", "TimerSettings", "ToT2", "Transaction", "TransactionKey",
    "TransactionTerminated", "TransactionTimeout", "TransportError", "is_reliable", "make_cancel",
    "make_non2xx_ack", "new_branch", "new_tag",
]

MAGIC_COOKIE = "z9hG4bK"  # §8.1.1.7: branches of RFC 3261 elements begin with it

# Transports without their own reliability (§17.1.1.2, §18): everything else
# (TCP, TLS, SCTP, WS, WSS) is reliable.
_UNRELIABLE = frozenset({"UDP", "DTLS"})


def new_branch() -> str:
    """A fresh Via branch: the magic cookie and 64 random bits (§8.1.1.7)."""
    return MAGIC_COOKIE + token_hex(8)


def new_tag() -> str:
    """A fresh From/To tag: 32 random bits at least (§19.3)."""
    return token_hex(5)


def is_reliable(transport: str) -> bool:
    """Whether a Via transport token names a reliable transport (§18)."""
    return transport.upper() not in _UNRELIABLE


@dataclass(frozen=True, slots=True)
class TimerSettings:
    """T1, T2, T4 (§17.1.1.1, Table 4) and the Timer D floor for unreliable transports."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    d: float = 32.0


DEFAULT_TIMERS = TimerSettings()


# --------------------------------------------------------------------------- keys


class ClientKey(NamedTuple):
    """Client transaction id (§17.1.3): top Via branch and CSeq method.

    (Named tuples: keys of several tables, hashed and compared in C.)"""

    branch: str
    method: str


class ServerKey(NamedTuple):
    """Server transaction id (§17.2.3): branch, sent-by and method (ACK counts as
    INVITE).  Requests from RFC 2543 elements (no magic cookie) get a synthetic
    branch and are matched field by field instead."""

    branch: str
    sent_by: str
    method: str


TransactionKey = ClientKey | ServerKey


# --------------------------------------------------------------------------- events


@dataclass(slots=True, init=False, unsafe_hash=True)
class SendMessage:
    """Pass ``message`` to the transport, toward ``destination`` (whatever the TU gave
    for a client transaction; the source of the request for a server one)."""

    message: Final[Request | Response]
    destination: Final[Any]
    key: Final[TransactionKey | None]
    retransmission: Final[bool]

    def __init__(self, message: Request | Response, destination: Any, key: TransactionKey | None,
                 retransmission: bool = False) -> None:
        self.message = message
        self.destination = destination
        self.key = key
        self.retransmission = retransmission


@dataclass(slots=True, init=False, unsafe_hash=True)
class RequestReceived:
    """A new request, with its new server transaction: the TU answers through
    ``TransactionLayer.send_response(key, ...)``."""

    key: Final[ServerKey]
    request: Final[Request]
    source: Final[Any]

    def __init__(self, key: ServerKey, request: Request, source: Any) -> None:
        self.key = key
        self.request = request
        self.source = source


@dataclass(slots=True, init=False, unsafe_hash=True)
class ResponseReceived:
    """A response passed up by a client transaction (including each 2xx retransmission
    in the Accepted state, RFC 6026 §8.4, which the UAC core ACKs again)."""

    key: Final[ClientKey]
    response: Final[Response]

    def __init__(self, key: ClientKey, response: Response) -> None:
        self.key = key
        self.response = response


@dataclass(slots=True, init=False, unsafe_hash=True)
class AckReceived:
    """An ACK for the TU: an ACK for a 2xx (§13.3.1.4; ``key`` is the INVITE server
    transaction it acknowledges, when one is still known), or an ACK that matched no
    transaction at all (``key`` None).  ACKs for non-2xx responses stay inside their
    transaction (§17.2.1)."""

    request: Final[Request]
    source: Final[Any]
    key: Final[ServerKey | None]

    def __init__(self, request: Request, source: Any, key: ServerKey | None = None) -> None:
        self.request = request
        self.source = source
        self.key = key


@dataclass(slots=True, init=False, unsafe_hash=True)
class StrayResponse:
    """A response that matched no client transaction (§18.1.2, RFC 6026 §8.2)."""

    response: Final[Response]
    source: Final[Any]

    def __init__(self, response: Response, source: Any) -> None:
        self.response = response
        self.source = source


@dataclass(slots=True, init=False, unsafe_hash=True)
class TransactionTimeout:
    """Timer B, F (no final response) or H (no ACK for a non-2xx final response)
    fired; B also fires 64*T1 after a CANCEL that got no final response (§9.1)."""

    key: Final[TransactionKey]
    timer: Final[Timer]

    def __init__(self, key: TransactionKey, timer: Timer) -> None:
        self.key = key
        self.timer = timer


@dataclass(slots=True, init=False, unsafe_hash=True)
class TransportError:
    """The transport failed to send this transaction's message (§17.1.4, §17.2.4)."""

    key: Final[TransactionKey]

    def __init__(self, key: TransactionKey) -> None:
        self.key = key


@dataclass(slots=True, init=False, unsafe_hash=True)
class AckTimeout:
    """A 2xx sent by a UAS was never acknowledged within 64*T1 (§13.3.1.4): the
    dialog is confirmed but the session should be ended with a BYE."""

    key: Final[ServerKey]

    def __init__(self, key: ServerKey) -> None:
        self.key = key


@dataclass(slots=True, init=False, unsafe_hash=True)
class RequestCancelled:
    """A CANCEL matched this pending INVITE (§9.2): the layer answered the CANCEL
    with 200 and the INVITE with 487; the TU stops processing the INVITE."""

    key: Final[ServerKey]
    cancel: Final[Request]

    def __init__(self, key: ServerKey, cancel: Request) -> None:
        self.key = key
        self.cancel = cancel


@dataclass(slots=True, init=False, unsafe_hash=True)
class MergedRequest:
    """A request merged with ``original`` (§8.2.2.2) was answered 482 (Loop Detected)."""

    key: Final[ServerKey]
    request: Final[Request]
    original: Final[ServerKey]

    def __init__(self, key: ServerKey, request: Request, original: ServerKey) -> None:
        self.key = key
        self.request = request
        self.original = original


@dataclass(slots=True, init=False, unsafe_hash=True)
class TransactionTerminated:
    """The transaction reached Terminated and was forgotten."""

    key: Final[TransactionKey]

    def __init__(self, key: TransactionKey) -> None:
        self.key = key


Event = (
    SendMessage
    | RequestReceived
    | ResponseReceived
    | AckReceived
    | StrayResponse
    | TransactionTimeout
    | TransportError
    | AckTimeout
    | RequestCancelled
    | MergedRequest
    | TransactionTerminated
)


# --------------------------------------------------------------------------- machine vocabulary


class Kind(enum.Enum):
    __hash__ = object.__hash__  # members are singletons: identity hashing, in C (hot table lookups)

    INVITE_CLIENT = "INVITE client"  # §17.1.1
    NON_INVITE_CLIENT = "non-INVITE client"  # §17.1.2
    INVITE_SERVER = "INVITE server"  # §17.2.1
    NON_INVITE_SERVER = "non-INVITE server"  # §17.2.2


class State(enum.Enum):
    __hash__ = object.__hash__  # members are singletons: identity hashing, in C (hot table lookups)

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"  # RFC 6026 §7.1, §7.2
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class Timer(enum.Enum):
    __hash__ = object.__hash__  # members are singletons: identity hashing, in C (hot table lookups)

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    K = "K"
    L = "L"  # RFC 6026
    M = "M"  # RFC 6026
    # §13.3.1.4: the UAS core retransmits its 2xx from T1, doubling up to T2, until
    # the ACK arrives.  Run here on behalf of a UAS TU (server transactions with uas=True).
    RETRANSMIT_2XX = "2xx"


class Input(enum.Enum):
    __hash__ = object.__hash__  # members are singletons: identity hashing, in C (hot table lookups)

    START = "start"  # client: request from the TU; server: request from the network
    R1XX = "1xx received"
    R2XX = "2xx received"
    R3XX_6XX = "300-699 received"
    REQUEST = "request retransmission received"
    ACK = "ACK received"
    TU_1XX = "1xx from TU"
    TU_2XX = "2xx from TU"
    TU_3XX_6XX = "300-699 from TU"
    TRANSPORT_ERROR = "transport error"
    CANCEL_SENT = "CANCEL sent"  # §9.1


class Do(enum.Enum):
    __hash__ = object.__hash__  # members are singletons: identity hashing, in C (hot table lookups)

    SEND = "send the request (client) or the TU's response (server)"
    RETRANSMIT = "re-send the request (client) or the last response (server)"
    SEND_TRYING = "send 100 Trying unless the TU answers within 200 ms (§17.2.1)"
    PASS_UP = "pass the response (client) or the ACK (server) to the TU"
    SEND_ACK = "send or re-send the ACK for a non-2xx final response (§17.1.1.3)"
    TIMEOUT = "inform the TU of the timeout"
    TRANSPORT_ERROR = "inform the TU of the transport error"
    NO_ACK = "inform a UAS TU that its 2xx was never acknowledged (§13.3.1.4)"


@dataclass(frozen=True, slots=True)
class Start:
    """Start a timer at its initial value (not at all when it only retransmits over a
    reliable transport; immediately fired when its value is zero)."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart a retransmission timer at twice its last interval (A: no cap; others: T2)."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class ToT2:
    """Restart a timer at T2 (Timer E in Proceeding, §17.1.2.2)."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class Stop:
    timers: tuple[Timer, ...]


Action = Do | Start | Backoff | ToT2 | Stop


@dataclass(frozen=True, slots=True)
class Row:
    actions: tuple[Action, ...]
    next: State
    ref: str


S, IN, T = State, Input, Timer
_AB = Stop((T.A, T.B))
_EF = Stop((T.E, T.F))


# INVITE client transaction: RFC 3261 §17.1.1.2 Figure 5, as corrected by RFC 6026 §8.4 Figure 5.
INVITE_CLIENT: dict[tuple[State, Input | Timer], Row] = {
    (S.CALLING, IN.START): Row((Do.SEND, Start(T.A), Start(T.B)), S.CALLING, "3261 §17.1.1.2"),
    (S.CALLING, T.A): Row((Do.RETRANSMIT, Backoff(T.A)), S.CALLING, "3261 §17.1.1.2"),
    (S.CALLING, T.B): Row((Do.TIMEOUT,), S.TERMINATED, "3261 §17.1.1.2"),
    (S.CALLING, IN.R1XX): Row((Do.PASS_UP, _AB), S.PROCEEDING, "3261 §17.1.1.2"),
    (S.CALLING, IN.R2XX): Row((Do.PASS_UP, _AB, Start(T.M)), S.ACCEPTED, "6026 §8.4"),
    (S.CALLING, IN.R3XX_6XX): Row((Do.PASS_UP, Do.SEND_ACK, _AB, Start(T.D)), S.COMPLETED,
                                  "3261 §17.1.1.2"),
    (S.CALLING, IN.TRANSPORT_ERROR): Row((Do.TRANSPORT_ERROR,), S.TERMINATED, "3261 §17.1.4"),
    (S.PROCEEDING, IN.R1XX): Row((Do.PASS_UP,), S.PROCEEDING, "3261 §17.1.1.2"),
    (S.PROCEEDING, IN.R2XX): Row((Do.PASS_UP, Stop((T.B,)), Start(T.M)), S.ACCEPTED, "6026 §8.4"),
    (S.PROCEEDING, IN.R3XX_6XX): Row((Do.PASS_UP, Do.SEND_ACK, Stop((T.B,)), Start(T.D)),
                                     S.COMPLETED, "3261 §17.1.1.2"),
    (S.PROCEEDING, IN.CANCEL_SENT): Row((Start(T.B),), S.PROCEEDING, "3261 §9.1 (64*T1 after CANCEL)"),
    (S.PROCEEDING, T.B): Row((Do.TIMEOUT,), S.TERMINATED, "3261 §9.1"),
    (S.ACCEPTED, IN.R2XX): Row((Do.PASS_UP,), S.ACCEPTED, "6026 §8.4"),
    (S.ACCEPTED, T.M): Row((), S.TERMINATED, "6026 §8.4"),
    (S.COMPLETED, IN.R3XX_6XX): Row((Do.SEND_ACK,), S.COMPLETED, "3261 §17.1.1.2"),
    (S.COMPLETED, IN.TRANSPORT_ERROR): Row((Do.TRANSPORT_ERROR,), S.TERMINATED, "6026 §8.4 Figure 5"),
    (S.COMPLETED, T.D): Row((), S.TERMINATED, "3261 §17.1.1.2"),
}

# Non-INVITE client transaction: RFC 3261 §17.1.2.2 Figure 6.
NON_INVITE_CLIENT: dict[tuple[State, Input | Timer], Row] = {
    (S.TRYING, IN.START): Row((Do.SEND, Start(T.E), Start(T.F)), S.TRYING, "3261 §17.1.2.2"),
    (S.TRYING, T.E): Row((Do.RETRANSMIT, Backoff(T.E)), S.TRYING, "3261 §17.1.2.2"),
    (S.TRYING, T.F): Row((Do.TIMEOUT,), S.TERMINATED, "3261 §17.1.2.2"),
    (S.TRYING, IN.R1XX): Row((Do.PASS_UP,), S.PROCEEDING, "3261 §17.1.2.2"),
    (S.TRYING, IN.R2XX): Row((Do.PASS_UP, _EF, Start(T.K)), S.COMPLETED, "3261 §17.1.2.2"),
    (S.TRYING, IN.R3XX_6XX): Row((Do.PASS_UP, _EF, Start(T.K)), S.COMPLETED, "3261 §17.1.2.2"),
    (S.TRYING, IN.TRANSPORT_ERROR): Row((Do.TRANSPORT_ERROR,), S.TERMINATED, "3261 §17.1.4"),
    (S.PROCEEDING, T.E): Row((Do.RETRANSMIT, ToT2(T.E)), S.PROCEEDING, "3261 §17.1.2.2"),
    (S.PROCEEDING, T.F): Row((Do.TIMEOUT,), S.TERMINATED, "3261 §17.1.2.2"),
    (S.PROCEEDING, IN.R1XX): Row((Do.PASS_UP,), S.PROCEEDING, "3261 §17.1.2.2"),
    (S.PROCEEDING, IN.R2XX): Row((Do.PASS_UP, _EF, Start(T.K)), S.COMPLETED, "3261 §17.1.2.2"),
    (S.PROCEEDING, IN.R3XX_6XX): Row((Do.PASS_UP, _EF, Start(T.K)), S.COMPLETED, "3261 §17.1.2.2"),
    (S.PROCEEDING, IN.TRANSPORT_ERROR): Row((Do.TRANSPORT_ERROR,), S.TERMINATED, "3261 §17.1.4"),
    (S.COMPLETED, T.K): Row((), S.TERMINATED, "3261 §17.1.2.2"),
}

# INVITE server transaction: RFC 3261 §17.2.1 Figure 7, as corrected by RFC 6026 §8.5-§8.7 Figure 7.
INVITE_SERVER: dict[tuple[State, Input | Timer], Row] = {
    (S.PROCEEDING, IN.START): Row((Do.SEND_TRYING,), S.PROCEEDING, "3261 §17.2.1"),
    (S.PROCEEDING, IN.REQUEST): Row((Do.RETRANSMIT,), S.PROCEEDING, "3261 §17.2.1"),
    (S.PROCEEDING, IN.TU_1XX): Row((Do.SEND,), S.PROCEEDING, "3261 §17.2.1"),
    (S.PROCEEDING, IN.TU_2XX): Row((Do.SEND, Start(T.L), Start(T.RETRANSMIT_2XX)), S.ACCEPTED,
                                   "6026 §8.5; 3261 §13.3.1.4"),
    (S.PROCEEDING, IN.TU_3XX_6XX): Row((Do.SEND, Start(T.G), Start(T.H)), S.COMPLETED, "3261 §17.2.1"),
    (S.PROCEEDING, IN.TRANSPORT_ERROR): Row((Do.TRANSPORT_ERROR,), S.TERMINATED, "3261 §17.2.4"),
    (S.ACCEPTED, IN.REQUEST): Row((), S.ACCEPTED, "6026 §8.7 (absorbed)"),
    (S.ACCEPTED, IN.ACK): Row((Do.PASS_UP, Stop((T.RETRANSMIT_2XX,))), S.ACCEPTED,
                              "6026 §8.7; 3261 §13.3.1.4"),
    (S.ACCEPTED, IN.TU_2XX): Row((Do.SEND,), S.ACCEPTED, "6026 §8.7"),
    (S.ACCEPTED, T.RETRANSMIT_2XX): Row((Do.RETRANSMIT, Backoff(T.RETRANSMIT_2XX)), S.ACCEPTED,
                                         "3261 §13.3.1.4"),
    (S.ACCEPTED, IN.TRANSPORT_ERROR): Row((Do.TRANSPORT_ERROR,), S.ACCEPTED, "6026 §8.7 Figure 7"),
    (S.ACCEPTED, T.L): Row((Do.NO_ACK,), S.TERMINATED, "6026 §8.7; 3261 §13.3.1.4"),
    (S.COMPLETED, IN.REQUEST): Row((Do.RETRANSMIT,), S.COMPLETED, "3261 §17.2.1"),
    (S.COMPLETED, T.G): Row((Do.RETRANSMIT, Backoff(T.G)), S.COMPLETED, "3261 §17.2.1"),
    (S.COMPLETED, T.H): Row((Do.TIMEOUT,), S.TERMINATED, "3261 §17.2.1"),
    (S.COMPLETED, IN.ACK): Row((Stop((T.G, T.H)), Start(T.I)), S.CONFIRMED, "3261 §17.2.1"),
    (S.COMPLETED, IN.TRANSPORT_ERROR): Row((Do.TRANSPORT_ERROR,), S.TERMINATED, "3261 §17.2.4"),
    (S.CONFIRMED, T.I): Row((), S.TERMINATED, "3261 §17.2.1"),
}

# Non-INVITE server transaction: RFC 3261 §17.2.2 Figure 8.
NON_INVITE_SERVER: dict[tuple[State, Input | Timer], Row] = {
    (S.TRYING, IN.START): Row((), S.TRYING, "3261 §17.2.2"),
    (S.TRYING, IN.TU_1XX): Row((Do.SEND,), S.PROCEEDING, "3261 §17.2.2"),
    (S.TRYING, IN.TU_2XX): Row((Do.SEND, Start(T.J)), S.COMPLETED, "3261 §17.2.2"),
    (S.TRYING, IN.TU_3XX_6XX): Row((Do.SEND, Start(T.J)), S.COMPLETED, "3261 §17.2.2"),
    (S.PROCEEDING, IN.REQUEST): Row((Do.RETRANSMIT,), S.PROCEEDING, "3261 §17.2.2"),
    (S.PROCEEDING, IN.TU_1XX): Row((Do.SEND,), S.PROCEEDING, "3261 §17.2.2"),
    (S.PROCEEDING, IN.TU_2XX): Row((Do.SEND, Start(T.J)), S.COMPLETED, "3261 §17.2.2"),
    (S.PROCEEDING, IN.TU_3XX_6XX): Row((Do.SEND, Start(T.J)), S.COMPLETED, "3261 §17.2.2"),
    (S.PROCEEDING, IN.TRANSPORT_ERROR): Row((Do.TRANSPORT_ERROR,), S.TERMINATED, "3261 §17.2.4"),
    (S.COMPLETED, IN.REQUEST): Row((Do.RETRANSMIT,), S.COMPLETED, "3261 §17.2.2"),
    (S.COMPLETED, IN.TRANSPORT_ERROR): Row((Do.TRANSPORT_ERROR,), S.TERMINATED, "3261 §17.2.4"),
    (S.COMPLETED, T.J): Row((), S.TERMINATED, "3261 §17.2.2"),
}

TABLES: dict[Kind, dict[tuple[State, Input | Timer], Row]] = {
    Kind.INVITE_CLIENT: INVITE_CLIENT,
    Kind.NON_INVITE_CLIENT: NON_INVITE_CLIENT,
    Kind.INVITE_SERVER: INVITE_SERVER,
    Kind.NON_INVITE_SERVER: NON_INVITE_SERVER,
}

_INITIAL = {
    Kind.INVITE_CLIENT: S.CALLING,
    Kind.NON_INVITE_CLIENT: S.TRYING,
    Kind.INVITE_SERVER: S.PROCEEDING,
    Kind.NON_INVITE_SERVER: S.TRYING,
}

_RETRANSMISSION_TIMERS = frozenset({T.A, T.E, T.G, T.RETRANSMIT_2XX})
# initial timer values by (T1, T2, T4, D, reliable): see Transaction.__init__
_DURATIONS: dict[tuple[float, float, float, float, bool], dict[Timer, float | None]] = {}
# Timers that are zero over reliable transports (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
_ZERO_WHEN_RELIABLE = frozenset({T.D, T.I, T.J, T.K})


# --------------------------------------------------------------------------- message builders


def _copy(request: Request, name: str) -> list[tuple[str, str]]:
    return [(name, value) for value in request.headers.get_all(name)]


def make_non2xx_ack(request: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a 300-699 response (§17.1.1.3): same
    Request-URI, Call-ID, From, CSeq number and single top Via as the INVITE, the To
    of the response, the INVITE's Route header fields."""
    headers: list[tuple[str, str]] = [
        ("Via", str(request.top_via)),
        ("Max-Forwards", str(request.max_forwards if request.max_forwards is not None else 70)),
        ("From", request.headers.get("from", "")),
        ("To", response.headers.get("to", "")),
        ("Call-ID", request.call_id),
        ("CSeq", f"{request.cseq.seq} ACK"),
        *_copy(request, "Route"),
        ("Content-Length", "0"),
    ]
    return Request("ACK", request.uri, headers)


def make_cancel(request: Request) -> Request:
    """The CANCEL of a pending request (§9.1): Request-URI, Call-ID, From, To and CSeq
    number of the request, its top Via only (same branch), its Route header fields."""
    headers: list[tuple[str, str]] = [
        ("Via", str(request.top_via)),
        ("Max-Forwards", str(request.max_forwards if request.max_forwards is not None else 70)),
        ("From", request.headers.get("from", "")),
        ("To", request.headers.get("to", "")),
        ("Call-ID", request.call_id),
        ("CSeq", f"{request.cseq.seq} CANCEL"),
        *_copy(request, "Route"),
        ("Content-Length", "0"),
    ]
    return Request("CANCEL", request.uri, headers)


# --------------------------------------------------------------------------- machines


class Transaction:
    """One transaction state machine, driven by its table in :data:`TABLES`.

    Every public method returns the events it produced; nothing is sent by itself.
    """

    __slots__ = ("_deadlines", "_durations", "_intervals", "_table", "destination", "key", "kind",
                 "reliable", "request", "state", "timers")  # fmt: skip

    def __init__(self, kind: Kind, key: TransactionKey, request: Request, *, reliable: bool,
                 destination: Any = None, timers: TimerSettings = DEFAULT_TIMERS) -> None:
        self.kind = kind
        self.key = key
        self.request = request
        self.reliable = reliable
        self.destination = destination
        self.timers = timers
        self.state = _INITIAL[kind]
        self._deadlines: dict[Timer, float] = {}
        self._intervals: dict[Timer, float] = {}
        self._table = TABLES[kind]
        # initial timer values for these settings and this transport (Table 4), computed once
        durations_key = (timers.t1, timers.t2, timers.t4, timers.d, reliable)
        durations = _DURATIONS.get(durations_key)
        if durations is None:
            durations = {timer: self._duration(timer) for timer in Timer}
            if len(_DURATIONS) < 64:
                _DURATIONS[durations_key] = durations
        self._durations = durations

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind.value} {self.key} {self.state.value}>"

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED

    # -- timers ----------------------------------------------------------------
    def get_timer(self) -> float | None:
        """The earliest deadline of the running timers, or None."""
        return min(self._deadlines.values()) if self._deadlines else None

    def running_timers(self) -> dict[Timer, float]:
        """Running timers and their deadlines (for tests and diagnostics)."""
        return dict(self._deadlines)

    def handle_timer(self, now: float) -> list[Event]:
        """Fire every timer whose deadline is ``now`` or earlier, earliest first."""
        out: list[Event] = []
        while self._deadlines:
            timer = min(self._deadlines, key=self._deadlines.__getitem__)
            if self._deadlines[timer] > now:
                break
            del self._deadlines[timer]
            self._step(timer, now, None, out)
        return out

    def transport_error(self, now: float) -> list[Event]:
        """The transport could not send this transaction's message (§17.1.4, §17.2.4)."""
        out: list[Event] = []
        self._step(IN.TRANSPORT_ERROR, now, None, out)
        return out

    def _duration(self, timer: Timer) -> float | None:
        t1 = self.timers.t1
        if timer in _RETRANSMISSION_TIMERS:
            return None if self.reliable else t1
        if timer in _ZERO_WHEN_RELIABLE and self.reliable:
            return 0.0
        if timer is T.D:
            return self.timers.d
        if timer in (T.I, T.K):
            return self.timers.t4
        return 64 * t1  # B, F, H, J, L, M

    def _arm(self, timer: Timer, interval: float, now: float) -> None:
        self._intervals[timer] = interval
        self._deadlines[timer] = now + interval

    # -- the table interpreter -----------------------------------------------------
    def _step(self, step: Input | Timer, now: float, message: Request | Response | None,
              out: list[Event]) -> None:
        row = self._table.get((self.state, step))
        if row is None:
            return  # absorbed: no row for this input in this state
        immediate: list[Timer] | None = None
        deadlines = self._deadlines
        for action in row.actions:
            cls = action.__class__
            if cls is Do:
                if action is Do.TIMEOUT:
                    assert isinstance(step, Timer)
                    out.append(TransactionTimeout(self.key, step))
                elif action is Do.TRANSPORT_ERROR:
                    out.append(TransportError(self.key))
                else:
                    self._do_message(action, message, out)  # type: ignore[arg-type]
            elif cls is Start:
                timer = action.timer  # type: ignore[union-attr]
                value = self._durations[timer]
                if value is None or (timer is T.RETRANSMIT_2XX and not self._retransmits_2xx()):
                    continue
                if value == 0:
                    if immediate is None:
                        immediate = []
                    immediate.append(timer)
                else:
                    self._intervals[timer] = value
                    deadlines[timer] = now + value
            elif cls is Stop:
                for timer in action.timers:  # type: ignore[union-attr]
                    deadlines.pop(timer, None)
            elif cls is Backoff:
                timer = action.timer  # type: ignore[union-attr]
                interval = 2 * self._intervals.get(timer, self.timers.t1)
                if timer is not T.A:
                    interval = min(interval, self.timers.t2)
                self._arm(timer, interval, now)
            else:  # ToT2
                self._arm(action.timer, self.timers.t2, now)  # type: ignore[union-attr]
        self.state = row.next
        if row.next is S.TERMINATED:
            deadlines.clear()
            out.append(TransactionTerminated(self.key))
            return
        if immediate is not None:
            for timer in immediate:  # zero-valued timers fire at once (reliable transports)
                self._step(timer, now, None, out)

    def _retransmits_2xx(self) -> bool:
        return False

    def _do_message(self, action: Do, message: Request | Response | None, out: list[Event]) -> None:
        raise NotImplementedError


class ClientTransaction(Transaction):
    """INVITE (§17.1.1) or non-INVITE (§17.1.2) client transaction."""

    __slots__ = ("ack", "cancel_pending")

    def __init__(self, request: Request, *, reliable: bool, destination: Any = None,
                 timers: TimerSettings = DEFAULT_TIMERS, key: ClientKey | None = None) -> None:
        kind = Kind.INVITE_CLIENT if request.method == "INVITE" else Kind.NON_INVITE_CLIENT
        if key is None:
            key = ClientKey(request.top_via.branch or "", request.cseq.method)
        super().__init__(kind, key, request, reliable=reliable, destination=destination, timers=timers)
        self.ack: Request | None = None  # the ACK for a non-2xx final response, once built
        self.cancel_pending = False  # §9.1: CANCEL asked for before any provisional response

    def start(self, now: float) -> list[Event]:
        """Pass the request to the transport and start the timers."""
        out: list[Event] = []
        self._step(IN.START, now, None, out)
        return out

    def receive_response(self, response: Response, now: float) -> list[Event]:
        """A response matched to this transaction (§17.1.3)."""
        status = response.status
        step = IN.R1XX if status < 200 else IN.R2XX if status < 300 else IN.R3XX_6XX
        out: list[Event] = []
        self._step(step, now, response, out)
        return out

    def cancel_sent(self, now: float) -> list[Event]:
        """A CANCEL for this INVITE went out: give up 64*T1 later without a final response (§9.1)."""
        out: list[Event] = []
        self._step(IN.CANCEL_SENT, now, None, out)
        return out

    def _do_message(self, action: Do, message: Request | Response | None, out: list[Event]) -> None:
        key = self.key
        assert isinstance(key, ClientKey)
        if action is Do.SEND:
            out.append(SendMessage(self.request, self.destination, key))
        elif action is Do.RETRANSMIT:
            out.append(SendMessage(self.request, self.destination, key, retransmission=True))
        elif action is Do.PASS_UP:
            assert isinstance(message, Response)
            out.append(ResponseReceived(key, message))
        elif action is Do.SEND_ACK:
            assert isinstance(message, Response)
            again = self.ack is not None
            if self.ack is None:
                self.ack = make_non2xx_ack(self.request, message)
            out.append(SendMessage(self.ack, self.destination, key, retransmission=again))


class ServerTransaction(Transaction):
    """INVITE (§17.2.1) or non-INVITE (§17.2.2) server transaction.

    ``send_trying``: an INVITE server transaction answers 100 Trying at once
    (§17.2.1; turn off only when the TU always answers within 200 ms).
    ``uas``: the TU is a UAS core rather than a proxy, so the INVITE transaction
    retransmits the 2xx until its ACK (§13.3.1.4) and reports :class:`AckTimeout`.
    """

    __slots__ = ("acked", "last_response", "send_trying", "uas")

    def __init__(self, request: Request, key: ServerKey, *, reliable: bool, destination: Any = None,
                 timers: TimerSettings = DEFAULT_TIMERS, send_trying: bool = True,
                 uas: bool = True) -> None:
        kind = Kind.INVITE_SERVER if request.method == "INVITE" else Kind.NON_INVITE_SERVER
        super().__init__(kind, key, request, reliable=reliable, destination=destination, timers=timers)
        self.send_trying = send_trying
        self.uas = uas
        self.last_response: Response | None = None
        self.acked = False  # an ACK for the 2xx reached this transaction

    def start(self, now: float) -> list[Event]:
        """Begin (the request has been passed to the TU): 100 Trying for an INVITE."""
        out: list[Event] = []
        self._step(IN.START, now, None, out)
        return out

    def receive_request(self, request: Request, now: float) -> list[Event]:
        """A retransmission of the request (§17.2.3 matched it here)."""
        out: list[Event] = []
        self._step(IN.REQUEST, now, request, out)
        return out

    def receive_ack(self, ack: Request, now: float) -> list[Event]:
        """An ACK matched to this INVITE transaction: by branch (non-2xx, §17.2.3) or, for a
        2xx, by dialog and CSeq number (§13.3.1.4)."""
        out: list[Event] = []
        self._step(IN.ACK, now, ack, out)
        return out

    def send_response(self, response: Response, now: float) -> list[Event]:
        """A response from the TU; dropped when the state has no use for it (§17.2.2)."""
        status = response.status
        step = IN.TU_1XX if status < 200 else IN.TU_2XX if status < 300 else IN.TU_3XX_6XX
        out: list[Event] = []
        self._step(step, now, response, out)
        return out

    def _retransmits_2xx(self) -> bool:
        return self.uas

    def _do_message(self, action: Do, message: Request | Response | None, out: list[Event]) -> None:
        key = self.key
        assert isinstance(key, ServerKey)
        if action is Do.SEND:
            assert isinstance(message, Response)
            self.last_response = message
            out.append(SendMessage(message, self.destination, key))
        elif action is Do.RETRANSMIT:
            if self.last_response is not None:
                out.append(SendMessage(self.last_response, self.destination, key, retransmission=True))
        elif action is Do.SEND_TRYING:
            if self.send_trying:
                self.last_response = self.request.response(100)
                out.append(SendMessage(self.last_response, self.destination, key))
        elif action is Do.PASS_UP:
            assert isinstance(message, Request)
            self.acked = True
            out.append(AckReceived(message, self.destination, key))
        elif action is Do.NO_ACK and self.uas and not self.acked:
            out.append(AckTimeout(key))
