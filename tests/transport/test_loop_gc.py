"""GcPolicy: young collections only, their survivors frozen, full collections when the heap grew.

Each test applies the policy to this process's collector and restores CPython's settings
after (``GcPolicy.restore``).
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from webims.transport.loop import GcPolicy, run


class Node:
    """A reference cycle: one Node pointing at itself."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def policy_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        GcPolicy.restore()
        gc.set_threshold(*thresholds)
        gc.collect()


def test_apply_freezes_what_exists_and_turns_off_the_older_generations(policy_restored: None) -> None:
    GcPolicy(threshold=1234, mmap_threshold=None).apply()
    assert gc.get_threshold()[0] == 1234
    assert min(gc.get_threshold()[1:]) > 1_000_000  # never collected automatically
    assert gc.get_freeze_count() > 1000  # modules, classes... frozen at start
    GcPolicy.restore()
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_survivors_of_a_young_collection_are_frozen_and_young_garbage_collected(
    policy_restored: None,
) -> None:
    GcPolicy(threshold=100_000, mmap_threshold=None).apply()
    frozen = gc.get_freeze_count()
    kept = [Node() for _ in range(500)]  # alive across the collection
    garbage = weakref.ref(Node())  # dies young, kept only by its cycle
    assert garbage() is not None
    gc.collect(0)
    assert garbage() is None
    assert gc.get_freeze_count() >= frozen + 500
    assert all(gc.is_tracked(n) for n in kept)
    # frozen and then unreachable as a cycle: only a full collection finds it
    cycle = weakref.ref(kept[0])
    del kept
    gc.collect(0)
    gc.collect(2)
    assert cycle() is not None  # frozen: no collection of the older generations reaches it
    assert GcPolicy.collect_full() >= 500
    assert cycle() is None


def test_frozen_objects_are_still_freed_by_reference_counting(policy_restored: None) -> None:
    GcPolicy(threshold=100_000, mmap_threshold=None).apply()
    data = {"payload": [1, 2, 3]}
    gc.collect(0)  # now frozen
    frozen = gc.get_freeze_count()
    del data
    assert gc.get_freeze_count() == frozen - 2  # the dict and its list left the frozen generation


def test_run_collects_young_on_time_and_restores(policy_restored: None) -> None:
    async def main() -> tuple[int, int]:
        kept = [Node() for _ in range(300)]
        before = gc.get_freeze_count()
        await asyncio.sleep(0.3)  # a few young_interval ticks: kept is frozen by now
        after = gc.get_freeze_count()
        del kept
        return before, after

    before, after = run(main(), gc_policy=GcPolicy(young_interval=0.05, mmap_threshold=None))
    assert after >= before + 300
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == (700, 10, 10)  # restored


def test_full_collection_when_the_heap_grew(policy_restored: None) -> None:
    """A leak of cycles among frozen objects: the heap doubles, a full collection reclaims it."""

    async def main() -> tuple[int, int]:
        await asyncio.sleep(0.01)  # the policy's task has measured the heap
        leaked = [Node() for _ in range(100_000)]
        gc.collect(0)  # frozen
        ref = weakref.ref(leaked[-1])
        del leaked  # each Node now cyclic garbage among frozen objects
        freed_before = ref() is None
        await asyncio.sleep(0.4)  # check_interval passes: the heap has grown, full collection
        return int(freed_before), int(ref() is None)

    policy = GcPolicy(  # "grown": by 2 % here (this test process's heap is large already)
        young_interval=0.05,
        check_interval=0.1,
        full_growth=0.02,
        full_min=10_000,
        full_spacing=0.0,
        mmap_threshold=None,
    )
    freed_before, freed_after = run(main(), gc_policy=policy)
    assert (freed_before, freed_after) == (0, 1)


def test_no_full_collection_while_the_heap_stays(policy_restored: None) -> None:
    starts: list[int] = []

    def log(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            starts.append(info["generation"])

    async def main() -> None:
        gc.callbacks.append(log)
        try:
            for _ in range(6):
                _ = [Node() for _ in range(2000)]  # garbage that dies young, no growth
                await asyncio.sleep(0.05)
        finally:
            gc.callbacks.remove(log)

    policy = GcPolicy(young_interval=0.02, check_interval=0.05, full_spacing=0.0, mmap_threshold=None)
    run(main(), gc_policy=policy)
    assert 0 in starts and 2 not in starts and 1 not in starts
