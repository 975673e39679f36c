"""DueHeap: the one loop timer behind the registrar's and the reg-event code's deadlines.

The heap's clock is a fake wall clock; the loop timer it arms waits ``due - clock()``
(0 when that is past), so the tests move the clock instead of waiting.
"""

from __future__ import annotations

import asyncio

from webims.gateway.due import DueHeap


class Item:
    def __init__(self, name: str) -> None:
        self.name = name
        self.due: float | None = None


class Harness:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.fired: list[tuple[str, float | None]] = []
        self.items: list[Item] = []
        self.heap: DueHeap[Item] = DueHeap(self.on_due, lambda: len(self.items), clock=lambda: self.now)

    def on_due(self, item: Item) -> None:
        self.fired.append((item.name, item.due))  # due is None by the time it fires


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_items_fire_in_deadline_order_once_their_time_has_come() -> None:
    h = Harness()
    a, b, c = Item("a"), Item("b"), Item("c")
    h.items = [a, b, c]
    h.heap.push(b, 990.0)
    h.heap.push(a, 980.0)
    h.heap.push(c, 1000.0 + 3600)
    await asyncio.sleep(0.01)  # the timer is set for the earliest deadline, already past
    await settle()
    assert h.fired == [("a", None), ("b", None)]
    assert a.due is None and b.due is None and c.due == 1000.0 + 3600
    h.heap.stop()


async def test_a_moved_deadline_leaves_a_stale_entry_that_never_fires() -> None:
    h = Harness()
    a, b, c = Item("a"), Item("b"), Item("c")
    h.items = [a, b, c]
    h.heap.push(a, 980.0)
    h.heap.push(b, 985.0)
    h.heap.push(c, 990.0)
    h.heap.push(a, 1000.0 + 3600)  # later now: the 980 entry is stale
    h.heap.push(a, 1000.0 + 3600)  # unchanged: no second entry
    assert len(h.heap) == 3  # the stale (980, a) left the top at once
    b.due = None  # cancelled by its owner: (985, b) stays in the heap, stale
    await asyncio.sleep(0.01)
    await settle()
    assert h.fired == [("c", None)]  # the stale (985, b) entry was skipped
    assert a.due == 1000.0 + 3600 and b.due is None
    h.now = 1000.0 + 7200
    h.heap.push(Item("d"), 1000.0)  # past already: the timer fires at once
    await asyncio.sleep(0.01)
    await settle()
    assert [name for name, _ in h.fired] == ["c", "d", "a"]
    assert len(h.heap) == 0


async def test_an_earlier_deadline_rearms_the_timer() -> None:
    h = Harness()
    late, early = Item("late"), Item("early")
    h.items = [late, early]
    h.heap.push(late, 1000.0 + 3600)  # the timer waits an hour
    h.heap.push(early, 999.0)  # past: must not wait behind the hour
    await asyncio.sleep(0.01)
    await settle()
    assert h.fired == [("early", None)]
    h.heap.stop()


async def test_an_item_pushed_again_from_its_callback_fires_again_later() -> None:
    h = Harness()
    item = Item("again")
    h.items = [item]
    rounds: list[float] = []

    def again(it: Item) -> None:
        rounds.append(h.now)
        if len(rounds) < 3:
            h.now += 10
            h.heap.push(it, h.now - 1)  # due at once again

    h.heap = DueHeap(again, lambda: 1, clock=lambda: h.now)
    h.heap.push(item, 999.0)
    for _ in range(5):
        await asyncio.sleep(0.01)
    assert rounds == [1000.0, 1010.0, 1020.0]
    assert item.due is None


async def test_stale_entries_are_compacted_when_they_outnumber_the_live_items() -> None:
    h = Harness()
    item = Item("moving")
    h.items = [item]
    for i in range(3000):
        h.heap.push(item, 2000.0 + i)  # each push makes the previous entry stale
    assert len(h.heap) <= 2 * len(h.items) + 1024 + 1
    h.heap.stop()
    assert item.due == 2000.0 + 2999
