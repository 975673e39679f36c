"""The transaction layer: many transactions, message routing, one timer (RFC 3261 §17).

:class:`TransactionLayer` owns client and server transactions keyed by their ids,
matches incoming messages to them (§17.1.3, §17.2.3, including the RFC 2543
fallback for branches without the magic cookie), creates server transactions for
new requests, and reports what matches nothing (stray responses, ACKs for 2xx) to
the transaction user.  It multiplexes every transaction's timers behind one
``get_timer()`` / ``handle_timer(now)`` pair and queues the events of all of them
(``next_event()`` / ``events()``, like :class:`webims.sip.framing.StreamFramer`).

With ``uas_core=True`` (a user agent, not a proxy) it also performs the
mechanical UAS-core duties that sit next to the transactions: merged-request
detection (§8.2.2.2, 482), CANCEL handling (§9.2: 200 to the CANCEL, 487 to the
pending INVITE, 481 when nothing matches) and 2xx retransmission until the ACK
(§13.3.1.4).  On the client side it builds and sends CANCEL requests (§9.1).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .errors import ParseError
from .headers import Via
from .message import Request, Response
from .parser import parse
from .transaction import (
    DEFAULT_TIMERS,
    MAGIC_COOKIE,
    AckReceived,
    ClientKey,
    ClientTransaction,
    Event,
    Kind,
    MergedRequest,
    RequestCancelled,
    RequestReceived,
    SendMessage,
    ServerKey,
    ServerTransaction,
    State,
    StrayResponse,
    TimerSettings,
    TransactionKey,
    TransactionTerminated,
    is_reliable,
    make_cancel,
    new_branch,
    new_tag,
)

__all__ = ["TransactionLayer", "sent_by_key"]

_AckKey = tuple[str, int, str | None, str | None]  # Call-ID, CSeq number, From tag, To tag
_MergeKey = tuple[str | None, str, int, str]  # From tag, Call-ID, CSeq number, CSeq method


def _reparse(data: bytes) -> Request | Response | None:
    """A response this layer sent, from the bytes it keeps (None past the parser's limits:
    a TU's response with more header fields than a received one may have is not resent)."""
    try:
        return parse(data)
    except ParseError:
        return None


_new_key = tuple.__new__  # a ClientKey / ServerKey without the NamedTuple's Python __new__


def sent_by_key(via: Via) -> str:
    """The sent-by of a Via as compared by §17.2.3 (host case-insensitive)."""
    host = via.host.lower()
    return host if via.port is None else f"{host}:{via.port}"


def _via_equal(a: Via, b: Via) -> bool:
    """Via equality for RFC 2543 matching (§17.2.3, §20.42)."""
    if a.transport.upper() != b.transport.upper() or sent_by_key(a) != sent_by_key(b):
        return False
    return {k: (v or "").lower() for k, v in a.params.items()} == {
        k: (v or "").lower() for k, v in b.params.items()
    }


class TransactionLayer:
    """Client and server transactions of one SIP element.

    ``timers``: T1/T2/T4.  ``uas_core``: behave as a UAS core (see the module
    docstring); a proxy passes False and handles CANCEL and 2xx itself.
    ``send_trying``: INVITE server transactions answer 100 Trying at once.
    ``branch_factory``: makes the branches of requests that carry none.
    """

    def __init__(self, timers: TimerSettings = DEFAULT_TIMERS, *, uas_core: bool = True,
                 send_trying: bool = True, branch_factory: Callable[[], str] = new_branch) -> None:
        self.timers = timers
        self.uas_core = uas_core
        self.send_trying = send_trying
        self.branch_factory = branch_factory
        self._clients: dict[ClientKey, ClientTransaction] = {}
        # Non-INVITE transactions in Completed, over UDP, by key (their deadline stays in
        # ``_deadline``): a client one (§17.1.2.2, Timer K: T4) only absorbs retransmitted
        # final responses, so None is kept for it; a server one (§17.2.2, Timer J: 64*T1)
        # answers a retransmitted request with its last response, so (that response's bytes,
        # where it went) is kept. Not the transaction with its request, nor the response's
        # header objects: a gateway's every REGISTER and SUBSCRIBE, and the reg-event NOTIFY
        # it answers, would stay in memory for those seconds. RFC 2543 server transactions
        # stay whole (matched by the request's fields).
        self._completed: dict[TransactionKey, tuple[bytes, Any] | None] = {}
        self._servers: dict[ServerKey, ServerTransaction] = {}
        self._events: deque[Event] = deque()
        # (deadline, key): equal deadlines are ordered by key (ClientKey and ServerKey are
        # tuples of str), without a sequence number (an int object in each of these entries)
        self._heap: list[tuple[float, TransactionKey]] = []
        self._deadline: dict[TransactionKey, float] = {}
        self._seq = itertools.count()
        self._rfc2543: dict[tuple[str, int], list[ServerKey]] = {}
        # magic-cookie server transactions by (branch, sent-by), for CANCEL (§9.2): the key
        # itself, a list only when several share them (an INVITE and its CANCEL); unindexed
        # from the key (no ``_server_index`` entry: a Completed non-INVITE one has none)
        self._by_branch: dict[tuple[str, str], ServerKey | list[ServerKey]] = {}
        self._merge: dict[_MergeKey, ServerKey] = {}
        self._acks: dict[_AckKey, ServerKey] = {}
        # what else to unindex when a server transaction ends: (index, entry key)
        self._server_index: dict[ServerKey, list[tuple[dict[Any, Any], Any]]] = {}

    # -- events ---------------------------------------------------------------------
    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[Event]:
        """Every queued event, oldest first (the queue is emptied)."""
        out = list(self._events)
        self._events.clear()
        return out

    # -- lookup ---------------------------------------------------------------------
    def get(self, key: TransactionKey) -> ClientTransaction | ServerTransaction | None:
        """The live transaction ``key`` (not a non-INVITE one in Completed, of which the layer
        keeps only what that state needs: see :meth:`state`)."""
        if isinstance(key, ClientKey):
            return self._clients.get(key)
        return self._servers.get(key)

    def state(self, key: TransactionKey) -> State | None:
        """The state of transaction ``key``, or None once it is forgotten."""
        txn = self.get(key)
        if txn is not None:
            return txn.state
        return State.COMPLETED if key in self._completed else None

    def __contains__(self, key: object) -> bool:
        return key in self._clients or key in self._servers or key in self._completed

    def __len__(self) -> int:
        return len(self._clients) + len(self._servers) + len(self._completed)

    # -- timers ---------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """The earliest deadline over all transactions, or None."""
        heap = self._heap
        while heap:
            deadline, key = heap[0]
            if self._deadline.get(key) == deadline:
                return deadline
            heapq.heappop(heap)  # stale entry
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        while True:
            deadline = self.get_timer()
            if deadline is None or deadline > now:
                return
            _, key = heapq.heappop(self._heap)
            del self._deadline[key]
            txn = self.get(key)
            if txn is None:
                if key in self._completed:  # Timer K / J: Completed -> Terminated
                    del self._completed[key]
                    if isinstance(key, ServerKey):
                        self._unindex(key)
                    self._events.append(TransactionTerminated(key))
                continue
            self._events.extend(txn.handle_timer(now))
            self._settle(txn)

    def _settle(self, txn: ClientTransaction | ServerTransaction) -> None:
        """Reschedule ``txn``'s next timer, or forget it once Terminated."""
        key = txn.key
        if txn.state is State.TERMINATED:
            self._forget(txn)
            return
        deadline = txn.get_timer()
        if deadline is None:
            self._deadline.pop(key, None)
        elif self._deadline.get(key) != deadline:
            self._deadline[key] = deadline
            heapq.heappush(self._heap, (deadline, key))

    def _forget(self, txn: ClientTransaction | ServerTransaction) -> None:
        key = txn.key
        self._deadline.pop(key, None)
        if isinstance(key, ClientKey):
            self._clients.pop(key, None)
            return
        self._servers.pop(key, None)
        self._unindex(key)

    def _index_branch(self, key: ServerKey) -> None:
        by_branch = (key.branch, key.sent_by)
        found = self._by_branch.get(by_branch)
        if found is None:
            self._by_branch[by_branch] = key
        elif isinstance(found, list):
            found.append(key)
        else:
            self._by_branch[by_branch] = [found, key]

    def _unindex_branch(self, key: ServerKey) -> None:
        by_branch = (key.branch, key.sent_by)
        found = self._by_branch.get(by_branch)
        if isinstance(found, list):
            if key in found:
                found.remove(key)
            if len(found) == 1:
                self._by_branch[by_branch] = found[0]
        elif found == key:
            del self._by_branch[by_branch]

    def _unindex(self, key: ServerKey) -> None:
        if key.branch.startswith(MAGIC_COOKIE):
            self._unindex_branch(key)
        if not self._server_index:
            return
        for index, index_key in self._server_index.pop(key, ()):
            value = index.get(index_key)
            if isinstance(value, list):
                if key in value:
                    value.remove(key)
                if not value:
                    del index[index_key]
            elif value == key:
                del index[index_key]

    def _index(self, index: dict[Any, Any], index_key: Any, key: ServerKey, *, many: bool = False) -> None:
        if many:
            index.setdefault(index_key, []).append(key)
        else:
            index[index_key] = key
        self._server_index.setdefault(key, []).append((index, index_key))

    # -- client side ----------------------------------------------------------------
    def send_request(self, request: Request, now: float, *, destination: Any = None,
                     reliable: bool | None = None) -> ClientKey:
        """Start a client transaction for ``request`` (not ACK: see :meth:`send_stateless`).

        A top Via without a branch gets one.  ``reliable`` defaults to what the top
        Via transport says.  Returns the transaction key.
        """
        if request.method == "ACK":
            raise ValueError("ACK is not sent in a client transaction (§17.1.1.3, §13.2.2.4)")
        via = request.top_via
        if not via.branch:
            via = via.with_param("branch", self.branch_factory())
            request.headers.pop_first("via")
            request.headers.add("Via", str(via), first=True)
        key: ClientKey = _new_key(ClientKey, (via.branch or "", request.cseq.method))
        if key in self._clients or key in self._completed:
            raise ValueError(f"a client transaction {key} already exists")
        txn = ClientTransaction(request, key=key, destination=destination, timers=self.timers,
                                reliable=is_reliable(via.transport) if reliable is None else reliable)
        self._clients[key] = txn
        self._events.extend(txn.start(now))
        self._settle(txn)
        return key

    def send_stateless(self, message: Request | Response, *, destination: Any = None) -> None:
        """Pass a message to the transport outside any transaction (the ACK for a 2xx,
        §13.2.2.4; a stateless proxy's forwarding)."""
        self._events.append(SendMessage(message, destination, None))

    def cancel(self, key: ClientKey, now: float) -> ClientKey | None:
        """CANCEL the pending INVITE of client transaction ``key`` (§9.1).

        Sent at once in its own non-INVITE client transaction when a provisional
        response has arrived; otherwise sent as soon as one does.  Returns the
        CANCEL's transaction key, or None when there is nothing to cancel any more.
        """
        txn = self._clients.get(key)
        if txn is None or txn.kind is not Kind.INVITE_CLIENT:
            return None
        cancel_key = ClientKey(key.branch, "CANCEL")
        if txn.state is State.CALLING:
            txn.cancel_pending = True
            return cancel_key
        if txn.state is State.PROCEEDING:
            return self._send_cancel(txn, now)
        return None

    def _send_cancel(self, txn: ClientTransaction, now: float) -> ClientKey:
        txn.cancel_pending = False
        key = txn.key
        assert isinstance(key, ClientKey)
        cancel_key = ClientKey(key.branch, "CANCEL")
        if cancel_key not in self._clients:
            self.send_request(make_cancel(txn.request), now, destination=txn.destination,
                              reliable=txn.reliable)
            self._events.extend(txn.cancel_sent(now))
            self._settle(txn)
        return cancel_key

    def _receive_response(self, response: Response, now: float, source: Any) -> None:
        try:
            key = _new_key(ClientKey, (response.top_via.branch or "", response.cseq.method))
        except ParseError:
            key = None
        txn = self._clients.get(key) if key is not None else None
        if txn is None:
            if key not in self._completed:  # in Completed a retransmission is absorbed
                self._events.append(StrayResponse(response, source))
            return
        self._events.extend(txn.receive_response(response, now))
        if txn.cancel_pending and txn.state is not State.CALLING:
            if txn.state is State.PROCEEDING:
                self._send_cancel(txn, now)
            else:
                txn.cancel_pending = False  # a final response came first: nothing to cancel
        self._settle(txn)
        if txn.state is State.COMPLETED and txn.kind is Kind.NON_INVITE_CLIENT:
            own = txn.key  # (the one ``_deadline`` holds: the response's own key is let go)
            assert isinstance(own, ClientKey)
            del self._clients[own]  # Timer K runs on in ``_deadline``
            self._completed[own] = None

    # -- server side ----------------------------------------------------------------
    def send_response(self, key: ServerKey, response: Response, now: float) -> bool:
        """Pass the TU's response to server transaction ``key``.

        Returns False when the transaction no longer exists (it timed out or failed
        meanwhile); a response the transaction's state does not accept is dropped.
        """
        txn = self._servers.get(key)
        if txn is None:
            return key in self._completed  # Completed: a second final response is dropped
        before = txn.state
        self._events.extend(txn.send_response(response, now))
        if (self.uas_core and txn.kind is Kind.INVITE_SERVER and 200 <= response.status < 300
                and before is State.PROCEEDING and txn.state is State.ACCEPTED):
            # §13.3.1.4: the ACK for this 2xx is recognised by dialog and CSeq number
            ack_key = (response.call_id, response.cseq.seq, response.from_.tag, response.to.tag)
            self._index(self._acks, ack_key, key)
        self._settle(txn)
        if txn.state is State.COMPLETED and txn.kind is Kind.NON_INVITE_SERVER:
            last = txn.last_response
            if key.branch.startswith(MAGIC_COOKIE) and last is not None:
                del self._servers[key]  # Timer J runs on in ``_deadline``
                self._completed[key] = (last.serialized(), txn.destination)
            else:  # RFC 2543: matched by the request's fields, which are all it keeps
                txn.request = txn.request.skeleton()
        return True

    def respond(self, key: ServerKey, status: int, now: float, reason: str | None = None, *,
                to_tag: str | None = None, headers: Iterable[tuple[str, str]] = (),
                body: bytes = b"") -> bool:
        """Build a response to the transaction's request (``Request.response``) and send it."""
        txn = self._servers.get(key)
        if txn is None:
            return False
        response = txn.request.response(status, reason, to_tag=to_tag, headers=headers, body=body)
        return self.send_response(key, response, now)

    def transport_error(self, key: TransactionKey, now: float) -> None:
        """The transport failed to send a message of transaction ``key`` (§17.1.4, §17.2.4)."""
        txn = self.get(key)
        if txn is not None:
            self._events.extend(txn.transport_error(now))
            self._settle(txn)

    def server_key(self, request: Request) -> ServerKey | None:
        """The §17.2.3 key of a request whose branch has the magic cookie, else None."""
        via = request.top_via
        branch = via.branch
        if not branch or not branch.startswith(MAGIC_COOKIE):
            return None
        method = "INVITE" if request.method == "ACK" else request.method
        host = via.host.lower()
        sent_by = host if via.port is None else f"{host}:{via.port}"  # sent_by_key(via)
        return _new_key(ServerKey, (branch, sent_by, method))

    def match_request(self, request: Request) -> ServerTransaction | None:
        """The server transaction ``request`` belongs to (§17.2.3), if any."""
        key = self.server_key(request)
        if key is not None:
            return self._servers.get(key)
        for candidate in self._rfc2543.get((request.call_id, request.cseq.seq), ()):
            txn = self._servers[candidate]
            if self._matches_2543(txn, request, cancel=False):
                return txn
        return None

    def cancel_target(self, cancel: Request) -> ServerKey | None:
        """The server transaction a CANCEL applies to (§9.2): the §17.2.3 match of the
        CANCEL taken as if its method were anything but CANCEL or ACK."""
        via = cancel.top_via
        branch = via.branch
        if branch and branch.startswith(MAGIC_COOKIE):
            found = self._by_branch.get((branch, sent_by_key(via)))
            if isinstance(found, list):
                return next((k for k in found if k.method != "CANCEL"), None)
            return found if found is not None and found.method != "CANCEL" else None
        for candidate in self._rfc2543.get((cancel.call_id, cancel.cseq.seq), ()):
            txn = self._servers[candidate]
            if txn.request.method != "CANCEL" and self._matches_2543(txn, cancel, cancel=True):
                return candidate
        return None

    @staticmethod
    def _matches_2543(txn: ServerTransaction, request: Request, *, cancel: bool) -> bool:
        """§17.2.3 matching for requests without a magic-cookie branch (RFC 2543 peers)."""
        original = txn.request
        if (request.uri != original.uri or request.call_id != original.call_id
                or request.from_.tag != original.from_.tag
                or request.cseq.seq != original.cseq.seq
                or not _via_equal(request.top_via, original.top_via)):
            return False
        if request.method == "ACK":
            if original.method != "INVITE":
                return False
            sent = txn.last_response
            return request.to.tag == (sent.to.tag if sent is not None else None)
        if not cancel and request.cseq.method != original.cseq.method:
            return False
        return request.to.tag == original.to.tag

    def _receive_request(self, request: Request, now: float, source: Any, reliable: bool | None) -> None:
        key = self.server_key(request)
        if key is not None:
            txn = self._servers.get(key)
            if txn is None and request.method != "ACK":
                answered = self._completed.get(key)
                if answered is not None:  # §17.2.2: Completed resends the last response
                    resent = _reparse(answered[0])  # the bytes it sent (rare: kept as bytes)
                    if resent is not None:
                        self._events.append(SendMessage(resent, answered[1], key, retransmission=True))
                    return
                self._new_server_transaction(request, now, source, reliable, key)
                return
        else:
            txn = self.match_request(request)
        if request.method == "ACK":
            if txn is None and self.uas_core:
                ack_key = (request.call_id, request.cseq.seq, request.from_.tag, request.to.tag)
                found = self._acks.get(ack_key)
                txn = self._servers.get(found) if found is not None else None
            if txn is None or txn.kind is not Kind.INVITE_SERVER:
                self._events.append(AckReceived(request, source, None))
                return
            self._events.extend(txn.receive_ack(request, now))
            self._settle(txn)
            return
        if txn is not None:
            self._events.extend(txn.receive_request(request, now))
            self._settle(txn)
            return
        self._new_server_transaction(request, now, source, reliable)

    def _new_server_transaction(self, request: Request, now: float, source: Any,
                                reliable: bool | None, key: ServerKey | None = None) -> None:
        via = request.top_via
        if key is None:
            key = self.server_key(request)
        rfc2543 = key is None
        if key is None:
            key = ServerKey(f"rfc2543-{next(self._seq)}", sent_by_key(via), request.method)
        txn = ServerTransaction(
            request, key, destination=source, timers=self.timers, send_trying=self.send_trying,
            uas=self.uas_core, reliable=is_reliable(via.transport) if reliable is None else reliable,
        )
        merged_with = None
        merge_key: _MergeKey | None = None
        if request.to.tag is None and request.method != "CANCEL":
            merge_key = (request.from_.tag, request.call_id, request.cseq.seq, request.cseq.method)
            merged_with = self._merge.get(merge_key) if self.uas_core else None
        target = self.cancel_target(request) if request.method == "CANCEL" else None
        self._servers[key] = txn
        if rfc2543:
            self._index(self._rfc2543, (request.call_id, request.cseq.seq), key, many=True)
        else:
            self._index_branch(key)
        if merge_key is not None and merged_with is None:
            self._index(self._merge, merge_key, key)
        self._events.extend(txn.start(now))
        self._settle(txn)
        if merged_with is not None:  # §8.2.2.2
            self.respond(key, 482, now, to_tag=new_tag())
            self._events.append(MergedRequest(key, request, merged_with))
        elif request.method == "CANCEL" and self.uas_core:
            self._uas_cancel(key, target, request, now)
        else:
            self._events.append(RequestReceived(key, request, source))

    def _uas_cancel(self, key: ServerKey, target: ServerKey | None, cancel: Request, now: float) -> None:
        """§9.2: 481 when nothing matches; otherwise 200 to the CANCEL, and 487 to an
        INVITE that has no final response yet."""
        if target is None:
            self.respond(key, 481, now, to_tag=new_tag())
            return
        original = self._servers.get(target)
        sent: Request | Response | None
        if original is not None:
            sent = original.last_response
        else:  # answered already (Completed): its final response
            answered = self._completed.get(target)
            sent = _reparse(answered[0]) if answered is not None else None
        # the same To tag on the 200 (CANCEL) and on the 487 (INVITE), the early dialog's if any
        tag = sent.to.tag if sent is not None and sent.to.tag else new_tag()
        self.respond(key, 200, now, to_tag=tag)
        if (original is not None and original.kind is Kind.INVITE_SERVER
                and original.state is State.PROCEEDING):
            self.respond(target, 487, now, to_tag=tag)
            self._events.append(RequestCancelled(target, cancel))

    # -- input ----------------------------------------------------------------------
    def receive(self, message: Request | Response, now: float, *, source: Any = None,
                reliable: bool | None = None) -> None:
        """A message from the transport.  ``source`` identifies where it came from (the
        transport's address or connection) and becomes the destination of a new server
        transaction's responses; ``reliable`` overrides what the top Via says."""
        if isinstance(message, Response):
            self._receive_response(message, now, source)
        else:
            self._receive_request(message, now, source, reliable)
