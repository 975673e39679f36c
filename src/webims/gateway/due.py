"""One loop timer for the deadlines of many items (bindings, reg-event subscriptions).

:class:`DueHeap` keeps (deadline, item) entries in a heap and a single
:meth:`asyncio.loop.call_at` timer for the earliest one, so an idle item costs one small
heap entry rather than a :class:`asyncio.TimerHandle` and a context copy (10,000 WICs per
process). The item's own ``due`` attribute says which entry is current: an entry whose
deadline is no longer its item's ``due`` is stale and skipped (moving a deadline pushes a
new entry; ``item.due = None`` cancels). Deadlines are wall-clock seconds (``clock``,
``time.time`` by default), as the registrar and the reg-event code keep them.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["DueHeap", "HasDue"]


class HasDue(Protocol):
    """An item with a deadline slot (None: nothing due)."""

    due: float | None


D = TypeVar("D", bound=HasDue)

#: Entries this close to their deadline fire with the ones due now (one timer wake-up).
SLACK = 0.001


class DueHeap(Generic[D]):
    """Deadlines of many items on one loop timer (module docstring).

    ``on_due(item)`` runs from the loop timer for each item whose deadline has come (its
    ``due`` is None by then); ``live()`` is how many items may have an entry (the heap is
    compacted when stale entries outnumber them).
    """

    def __init__(
        self,
        on_due: Callable[[D], None],
        live: Callable[[], int],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._on_due = on_due
        self._live = live
        self._clock = clock
        self._heap: list[tuple[float, int, D]] = []
        self._seq = 0  # ties: first pushed, first due (items are never compared)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # (get_running_loop() costs a getpid)

    def __len__(self) -> int:
        """Entries in the heap, stale ones included."""
        return len(self._heap)

    def push(self, item: D, when: float) -> None:
        """``item`` is due at ``when`` (replacing its earlier deadline, if any)."""
        if item.due == when:
            return  # its entry is in the heap already
        item.due = when
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, item))
        if len(self._heap) > 2 * self._live() + 1024:
            self._heap = [e for e in self._heap if e[2].due == e[0]]
            heapq.heapify(self._heap)
        self._arm()

    def stop(self) -> None:
        """No more wake-ups (the entries stay; :meth:`push` arms the timer again)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _arm(self) -> None:
        heap = self._heap
        while heap and heap[0][2].due != heap[0][0]:
            heapq.heappop(heap)  # stale
        if not heap:
            return
        due = heap[0][0]
        timer_at = self._timer_at
        if self._timer is not None and timer_at is not None and timer_at <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._timer_at = due
        self._timer = loop.call_at(loop.time() + max(0.0, due - self._clock()), self._fire)

    def _fire(self) -> None:
        self._timer = self._timer_at = None
        limit = self._clock() + SLACK
        heap = self._heap
        while heap and heap[0][0] <= limit:
            due, _, item = heapq.heappop(heap)
            if item.due == due:
                item.due = None
                self._on_due(item)
        self._arm()
