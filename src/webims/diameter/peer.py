"""A sans-IO Diameter peer connection: capabilities exchange, watchdog, disconnection.

RFC 6733 §5.6 peer state machine, simplified to one transport connection per
peer (no election, §5.6.4), with the RFC 3539 §3.4 watchdog. Bytes and ``now``
go in; events and bytes to send come out::

    peer = DiameterPeer(caps, Role.RESPONDER, now=clock())
    events = peer.receive_data(data, now=clock())
    transport.write(peer.data_to_send())
    # call peer.handle_timer(clock()) when clock() >= peer.get_timer()

State table (one row per transition, RFC section beside it):

=========  =====================================  ==================================  =========
state      event                                  action                              next
=========  =====================================  ==================================  =========
Wait-CER   CER, common application (§5.3)         send CEA 2001                       Open
Wait-CER   CER, no common application (§5.3)      send CEA 5010                       Closed
Wait-CER   CER failing its CCF (§7)               send CEA with the error             Closed
Wait-CER   other message / timeout (§5.6)         -                                   Closed
Wait-CEA   CEA 2xxx, common application (§5.3)    -                                   Open
Wait-CEA   CEA error, no common app, timeout      -                                   Closed
Open       DWR (§5.5.1)                           send DWA                            Open
Open       DWA (§5.5.2, RFC 3539 §3.4.1)          watchdog OKAY                       Open
Open       Tw elapsed, nothing pending (3539)     send DWR                            Open
Open       Tw elapsed, DWR pending (3539)         SUSPECT                             Open
Open       Tw elapsed while SUSPECT (3539)        -                                   Closed
Open       DPR (§5.4.1)                           send DPA                            Closed
Open       close() (§5.4)                         send DPR                            Closing
Open       CER (§5.6 R-Open/R-Rcv-CER)            send CEA                            Open
Open       request failing its CCF (§7)           send error answer                   Open
Closing    DPA (§5.4.2) / timeout                 -                                   Closed
any        stream cannot be framed (§3)           answer if possible                  Closed
any        connection_lost()                      -                                   Closed
=========  =====================================  ==================================  =========
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from .base import (
    Capabilities,
    advertised_applications,
    build_cea,
    build_cer,
    build_dpa,
    build_dpr,
    build_dwa,
    build_dwr,
    error_answer,
)
from .constants import (
    COMMON_APPLICATION_ID,
    RELAY_APPLICATION_ID,
    CommandCode,
    DisconnectCause,
    ResultCode,
)
from .errors import DiameterError
from .framing import DEFAULT_MAX_MESSAGE_SIZE, StreamDecoder
from .ids import IdGenerator
from .message import Message
from .validate import check_message, with_common

#: RFC 3539 §3.4.1: "Twinit ... SHOULD be 30 seconds", and not below 6 seconds.
DEFAULT_WATCHDOG_INTERVAL = 30.0
MIN_WATCHDOG_INTERVAL = 6.0


class Role(Enum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


class PeerState(Enum):
    WAIT_CER = "Wait-CER"
    WAIT_CEA = "Wait-I-CEA"
    OPEN = "Open"
    CLOSING = "Closing"
    CLOSED = "Closed"


class PeerStateError(RuntimeError):
    """An action that the current state does not allow (e.g. a request before Open)."""


# --- events ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerOpened:
    """Capabilities exchanged; ``applications`` are the ones both sides support."""

    origin_host: str
    origin_realm: str
    applications: frozenset[int]
    capabilities: Message


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """An application request that passed its CCF; answer it with :meth:`DiameterPeer.send_answer`."""

    message: Message


@dataclass(frozen=True, slots=True)
class AnswerReceived:
    message: Message
    request: Message


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """A request was malformed; ``answer`` (already queued) carries the error."""

    error: DiameterError
    answer: Message | None


@dataclass(frozen=True, slots=True)
class MessageDiscarded:
    reason: str
    message: Message | None = None


@dataclass(frozen=True, slots=True)
class WatchdogSuspect:
    """RFC 3539 §3.4: no DWA within Tw; the connection closes after one more Tw."""


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The peer is Closed: flush :meth:`DiameterPeer.data_to_send`, then close the transport.

    ``unanswered``: requests we sent that will never be answered on this connection.
    """

    reason: str
    result_code: int | None = None
    disconnect_cause: int | None = None
    unanswered: tuple[Message, ...] = ()


PeerEvent = (
    PeerOpened
    | RequestReceived
    | AnswerReceived
    | RequestRejected
    | MessageDiscarded
    | WatchdogSuspect
    | PeerClosed
)


class DiameterPeer:
    """One Diameter connection, from either end. Create it once the transport is up.

    An initiator queues its CER at once. ``watchdog_jitter`` is the ± random part
    of Tw (RFC 3539 §3.4.1 asks for ±2 s).
    """

    def __init__(
        self,
        capabilities: Capabilities,
        role: Role,
        *,
        now: float,
        watchdog_interval: float = DEFAULT_WATCHDOG_INTERVAL,
        watchdog_jitter: float = 2.0,
        cer_timeout: float = 10.0,
        cea_timeout: float = 10.0,
        dpa_timeout: float = 5.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        rng: random.Random | None = None,
    ) -> None:
        if watchdog_interval < MIN_WATCHDOG_INTERVAL:
            raise ValueError(f"Tw below {MIN_WATCHDOG_INTERVAL} s (RFC 3539 §3.4.1)")
        self.capabilities = capabilities
        self.role = role
        # The watchdog jitter is drawn for every message received: a seeded PRNG (no
        # system call), unless the caller injects its own generator.
        self._rng = rng if rng is not None else random.Random(random.SystemRandom().getrandbits(64))
        self.ids = IdGenerator(now, rng)
        self._decoder = StreamDecoder(max_message_size)
        self._tw = watchdog_interval
        self._tw_current = watchdog_interval
        self._jitter = watchdog_jitter
        self._cea_timeout = cea_timeout
        self._dpa_timeout = dpa_timeout
        self._out = bytearray()
        self._pending: dict[int, Message] = {}
        self._internal: dict[int, Message] = {}
        self._deadline: float | None = None
        self._dwr_pending = False
        self._suspect = False
        self.peer_origin_host: str | None = None
        self.peer_origin_realm: str | None = None
        self.applications: frozenset[int] = frozenset()
        if role is Role.INITIATOR:
            self.state = PeerState.WAIT_CEA
            self._send_internal(build_cer(capabilities))
            self._deadline = now + cea_timeout
        else:
            self.state = PeerState.WAIT_CER
            self._deadline = now + cer_timeout

    # --- public API ----------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self.state is PeerState.CLOSED

    @property
    def our_applications(self) -> frozenset[int]:
        return frozenset(a.application_id for a in self.capabilities.applications)

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called (None: no timer)."""
        return None if self.state is PeerState.CLOSED else self._deadline

    def handle_timer(self, now: float) -> list[PeerEvent]:
        if self._deadline is None or now < self._deadline or self.state is PeerState.CLOSED:
            return []
        if self.state is PeerState.WAIT_CER:
            return self._closed("no CER received")
        if self.state is PeerState.WAIT_CEA:
            return self._closed("no CEA received")
        if self.state is PeerState.CLOSING:
            return self._closed("no DPA received")
        # Open: RFC 3539 §3.4.1 OnTimerElapsed.
        if self._suspect:
            return self._closed("watchdog: no answer to DWR")
        if self._dwr_pending:
            self._suspect = True
            self._deadline = now + self._tw_value()
            return [WatchdogSuspect()]
        caps = self.capabilities
        self._send_internal(build_dwr(caps.origin_host, caps.origin_realm, caps.origin_state_id))
        self._dwr_pending = True
        self._deadline = now + self._tw_value()
        return []

    def receive_data(self, data: bytes, now: float) -> list[PeerEvent]:
        events: list[PeerEvent] = []
        if self.state is PeerState.CLOSED:
            return events
        for item in self._decoder.feed(data):
            if self.closed:
                break
            if isinstance(item, DiameterError):
                events += self._on_bad_message(item)
            else:
                events += self._on_message(item, now)
        return events

    def send_request(self, message: Message, now: float) -> Message:
        """Queue an application request; returns it with its Hop-by-Hop/End-to-End identifiers.

        An End-to-End identifier already set (a retransmission, RFC 6733 §5.5.4) is kept.
        """
        if self.state is not PeerState.OPEN:
            raise PeerStateError(f"cannot send a request in state {self.state.value}")
        if not message.is_request:
            raise ValueError("send_request() needs a request")
        e2e = message.end_to_end or self.ids.next_end_to_end()
        stamped = message.with_ids(self.ids.next_hop_by_hop(), e2e)
        self._pending[stamped.hop_by_hop] = stamped
        self._out += stamped.encode()
        return stamped

    def send_answer(self, message: Message) -> None:
        if self.state not in (PeerState.OPEN, PeerState.CLOSING):
            raise PeerStateError(f"cannot send an answer in state {self.state.value}")
        if message.is_request:
            raise ValueError("send_answer() needs an answer")
        self._out += message.encode()

    def close(self, now: float, cause: DisconnectCause = DisconnectCause.REBOOTING) -> list[PeerEvent]:
        """Start an orderly disconnection (RFC 6733 §5.4): DPR, then Closing until the DPA."""
        if self.state is PeerState.OPEN:
            caps = self.capabilities
            self._send_internal(build_dpr(caps.origin_host, caps.origin_realm, cause))
            self.state = PeerState.CLOSING
            self._deadline = now + self._dpa_timeout
            return []
        if self.state in (PeerState.WAIT_CER, PeerState.WAIT_CEA):
            return self._closed("closed before capabilities exchange")
        return []

    def connection_lost(self, now: float) -> list[PeerEvent]:
        if self.state is PeerState.CLOSED:
            return []
        return self._closed("connection lost")

    # --- internals -----------------------------------------------------------------------------------
    def _tw_value(self) -> float:
        value = self._tw + self._rng.uniform(-self._jitter, self._jitter) if self._jitter else self._tw
        self._tw_current = value
        return value

    def _send_internal(self, request: Message) -> Message:
        stamped = request.with_ids(self.ids.next_hop_by_hop(), self.ids.next_end_to_end())
        self._internal[stamped.hop_by_hop] = stamped
        self._out += stamped.encode()
        return stamped

    def _answer(self, message: Message | None) -> None:
        if message is not None:
            self._out += message.encode()

    def _closed(
        self, reason: str, *, result_code: int | None = None, disconnect_cause: int | None = None
    ) -> list[PeerEvent]:
        self.state = PeerState.CLOSED
        self._deadline = None
        unanswered = tuple(self._pending.values())
        self._pending.clear()
        self._internal.clear()
        return [PeerClosed(reason, result_code, disconnect_cause, unanswered)]

    def _error_answer(self, error: DiameterError) -> Message | None:
        caps = self.capabilities
        return error_answer(error, origin_host=caps.origin_host, origin_realm=caps.origin_realm)

    def _on_bad_message(self, error: DiameterError) -> list[PeerEvent]:
        header = error.header
        is_request = header is not None and header.is_request
        answer = None
        if is_request and header is not None and header.command_code == CommandCode.CAPABILITIES_EXCHANGE:
            answer = build_cea(
                Message(
                    header.command_code,
                    header.application_id,
                    header.flags,
                    header.hop_by_hop,
                    header.end_to_end,
                    (),
                ),
                self.capabilities,
                error.result_code,
                error_message=error.reason,
                failed=error.failed_avp,
            )
        elif is_request:
            answer = self._error_answer(error)
        self._answer(answer)
        if error.close_connection or self.state in (PeerState.WAIT_CER, PeerState.WAIT_CEA):
            return self._closed(f"malformed message: {error.reason}", result_code=error.result_code)
        if is_request:
            return [RequestRejected(error, answer)]
        return [MessageDiscarded(f"malformed answer: {error.reason}")]

    def _on_message(self, m: Message, now: float) -> list[PeerEvent]:
        if self.state is PeerState.WAIT_CER:
            if m.is_request and m.command_code == CommandCode.CAPABILITIES_EXCHANGE:
                return self._on_cer(m, now)
            return self._closed("first message is not a CER")
        if self.state is PeerState.WAIT_CEA:
            if not m.is_request and m.command_code == CommandCode.CAPABILITIES_EXCHANGE:
                return self._on_cea(m, now)
            return self._closed("expected a CEA")
        # Open or Closing. RFC 3539 §3.4.1: any message received resets the watchdog.
        self._suspect = False
        if self.state is PeerState.OPEN:
            # The jittered Tw drawn when the timer was last set (RFC 3539 §3.4.1 SetWatchdog);
            # drawing one for every message received would cost more than the rest of this.
            self._deadline = now + self._tw_current
        code = m.command_code
        if m.application_id == COMMON_APPLICATION_ID and code in (
            CommandCode.CAPABILITIES_EXCHANGE,
            CommandCode.DEVICE_WATCHDOG,
            CommandCode.DISCONNECT_PEER,
        ):
            return self._on_base(m, now)
        if m.is_request:
            try:
                check_message(m, applications=with_common(self.applications))
            except DiameterError as exc:
                answer = self._error_answer(exc)
                self._answer(answer)
                return [RequestRejected(exc, answer)]
            return [RequestReceived(m)]
        request = self._pending.pop(m.hop_by_hop, None)
        if request is None:
            # RFC 6733 §6.2: an answer with an unknown Hop-by-Hop identifier is discarded.
            return [MessageDiscarded("answer with unknown Hop-by-Hop identifier", m)]
        return [AnswerReceived(m, request)]

    def _on_base(self, m: Message, now: float) -> list[PeerEvent]:
        caps = self.capabilities
        if not m.is_request:
            request = self._internal.pop(m.hop_by_hop, None)
            if m.command_code == CommandCode.DEVICE_WATCHDOG:
                self._dwr_pending = False
                return []
            if m.command_code == CommandCode.DISCONNECT_PEER and self.state is PeerState.CLOSING:
                return self._closed("disconnected", result_code=_result(m))
            return [MessageDiscarded("unexpected base protocol answer", m)] if request is None else []
        try:
            check_message(m, applications={COMMON_APPLICATION_ID})
        except DiameterError as exc:
            answer: Message | None
            if m.command_code == CommandCode.CAPABILITIES_EXCHANGE:
                answer = build_cea(m, caps, exc.result_code, error_message=exc.reason, failed=exc.failed_avp)
            else:
                answer = self._error_answer(exc)
            self._answer(answer)
            return [RequestRejected(exc, answer)]
        if m.command_code == CommandCode.DEVICE_WATCHDOG:
            self._answer(
                build_dwa(m, caps.origin_host, caps.origin_realm, origin_state_id=caps.origin_state_id)
            )
            return []
        if m.command_code == CommandCode.DISCONNECT_PEER:
            self._answer(build_dpa(m, caps.origin_host, caps.origin_realm))
            cause = m.get_int("Disconnect-Cause")
            return self._closed("peer sent DPR", disconnect_cause=cause)
        # CER on an open connection: answer it again, stay Open (RFC 6733 §5.6, R-Open).
        common = self._common(advertised_applications(m))
        result = ResultCode.DIAMETER_SUCCESS if common else ResultCode.DIAMETER_NO_COMMON_APPLICATION
        self._answer(build_cea(m, caps, result))
        return []

    def _common(self, theirs: Iterable[int]) -> frozenset[int]:
        theirs = frozenset(theirs)
        ours = self.our_applications
        if RELAY_APPLICATION_ID in theirs:
            return ours
        if RELAY_APPLICATION_ID in ours:
            return theirs
        return ours & theirs

    def _open(self, m: Message, now: float, common: frozenset[int]) -> list[PeerEvent]:
        self.state = PeerState.OPEN
        self.applications = common
        self.peer_origin_host = m.get_str("Origin-Host")
        self.peer_origin_realm = m.get_str("Origin-Realm")
        self._deadline = now + self._tw_value()
        return [PeerOpened(self.peer_origin_host or "", self.peer_origin_realm or "", common, m)]

    def _on_cer(self, m: Message, now: float) -> list[PeerEvent]:
        caps = self.capabilities
        try:
            check_message(m, applications={COMMON_APPLICATION_ID})
            common = self._common(advertised_applications(m))
        except DiameterError as exc:
            self._answer(build_cea(m, caps, exc.result_code, error_message=exc.reason, failed=exc.failed_avp))
            return self._closed(f"bad CER: {exc.reason}", result_code=exc.result_code)
        if not common:
            # RFC 6733 §5.3: no common application -> DIAMETER_NO_COMMON_APPLICATION, disconnect.
            self._answer(build_cea(m, caps, ResultCode.DIAMETER_NO_COMMON_APPLICATION))
            return self._closed(
                "no common application", result_code=ResultCode.DIAMETER_NO_COMMON_APPLICATION
            )
        self._answer(build_cea(m, caps))
        return self._open(m, now, common)

    def _on_cea(self, m: Message, now: float) -> list[PeerEvent]:
        self._internal.pop(m.hop_by_hop, None)
        result = _result(m)
        if result is None or not 2000 <= result < 3000:
            return self._closed("CEA refused the connection", result_code=result)
        try:
            common = self._common(advertised_applications(m))
        except DiameterError as exc:
            return self._closed(f"bad CEA: {exc.reason}", result_code=exc.result_code)
        if not common:
            return self._closed(
                "no common application", result_code=ResultCode.DIAMETER_NO_COMMON_APPLICATION
            )
        return self._open(m, now, common)


def _result(m: Message) -> int | None:
    try:
        return m.result_code
    except DiameterError:
        return None
