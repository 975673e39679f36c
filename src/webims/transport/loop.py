"""The one place that picks the event loop: uvloop when installed (DESIGN.md §5:
an idle WSS connection costs ~38 KB with uvloop, ~290 KB without), and the garbage
collector settings of a long-running server (:class:`GcPolicy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["GcPolicy", "install_uvloop", "loop_factory", "run", "stop_on_signals", "uvloop_available"]

_T = TypeVar("_T")


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """``uvloop.new_event_loop`` when uvloop is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


@dataclass(frozen=True, slots=True)
class GcPolicy:
    """Cyclic-GC settings for a server holding many long-lived objects (10,000 WICs).

    A collection stops the loop for a time proportional to the objects it traverses
    (0.1-0.2 µs each). The objects a server keeps for seconds or more — connections,
    registrations, calls in progress, and above all the transactions its SIP layer keeps
    for Timer J/K/D (RFC 3261 §17: 32 s over UDP), hundreds of objects per call — are
    almost all alive when traversed, and CPython's collector traverses them again at
    every collection of the generation they are in: the second generation every ten
    collections of the first (a pause of tens of milliseconds with 100 calls/s in
    progress), the oldest whenever a quarter more objects have survived into it (with
    10,000 WebSocket connections, a million objects: a good part of a second each time).
    The gateway's calls leave no cyclic garbage (their reference cycles are broken when
    they end: a finished call is freed by reference counting alone), so those traversals
    find nothing. So:

    - ``threshold``: the first generation's threshold (CPython: 700): large enough that
      the objects of a request in flight die young, small enough that one collection is
      short (a few milliseconds). Cyclic garbage that dies young is collected there. The
      threshold counts allocations minus deallocations, and long-lived objects dying
      (transactions at Timer K) offset the ones being born: in a steady state the first
      generation would grow far beyond it. So it is also collected every
      ``young_interval`` seconds (its pause: what was born and is still alive in that time);
    - ``freeze_survivors``: what survives a collection of the first generation is frozen
      at once (``gc.freeze`` from a ``gc.callbacks`` hook: never traversed again; frozen
      objects that die are still freed by reference counting), and the older generations
      are never collected automatically: each object is traversed at most once. The
      objects alive when the loop starts (modules, classes, configuration) are frozen too;
    - only cyclic garbage among frozen objects (something that was alive at a collection
      and later became part of an unreachable cycle) needs a full collection
      (``gc.unfreeze``, ``gc.collect``, ``gc.freeze``), which traverses the whole heap:
      it runs, checked every ``check_interval`` seconds, when the heap (the allocator's
      blocks in use: objects and their parts) has grown by ``full_growth`` (1.0: doubled)
      and by at least ``full_min`` blocks since the last full collection (or the start),
      no sooner than ``full_spacing`` seconds after it — the memory such garbage keeps
      stays bounded by that factor (and what leaks in that time), at the cost of one
      whole-heap pause (0.3 µs or more per object) each time; a server whose objects are
      freed by reference counting pays it only while it grows, and none during a
      benchmark's few minutes — and, if set, every ``full_interval`` seconds.
      ``freeze_survivors=False``: CPython's automatic collections of the older
      generations, the freeze at start, ``full_interval`` only.

    And one allocator setting, for the same servers: ``mmap_threshold`` fixes glibc's
    threshold above which ``malloc`` maps fresh pages (glibc otherwise raises it after the
    first large block is freed). uvloop keeps a 256 KiB TLS read buffer per connection and
    touches only its first page or two: mapped on its own that costs those pages; placed in
    the heap over freed, dirty memory it costs up to 20 KiB more per idle WSS connection
    (measured: 50 -> 30 KiB per connection). The price: large transient blocks (a 256 KiB
    TLS read buffer per read) are mapped and unmapped each time, a few microseconds.
    ``None`` leaves the allocator alone (and on a C library other than glibc nothing is done).
    """

    threshold: int = 10_000
    freeze_survivors: bool = True
    young_interval: float | None = 0.05
    full_growth: float | None = 1.0
    full_min: int = 1_000_000
    full_spacing: float = 600.0
    check_interval: float = 10.0
    full_interval: float | None = None
    mmap_threshold: int | None = 128 * 1024

    def apply(self) -> None:
        """At start: thresholds (and the freezing hook), then freeze what exists (:meth:`restore`: undone)."""
        if self.mmap_threshold is not None:
            _set_mmap_threshold(self.mmap_threshold)  # first: ctypes leaves a cycle or two
        _, second, third = gc.get_threshold()
        if self.freeze_survivors:
            second = third = _NEVER
            if _freeze_survivors not in gc.callbacks:
                gc.callbacks.append(_freeze_survivors)
        gc.set_threshold(self.threshold, second, third)
        gc.collect()
        gc.freeze()

    @staticmethod
    def restore() -> None:
        """CPython's collector settings again (after :meth:`apply`; objects unfrozen)."""
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(_freeze_survivors)
        gc.set_threshold(*_CPYTHON_THRESHOLDS)
        gc.unfreeze()

    async def keep(self) -> None:
        """Run with the loop: the young collections on time, the full ones (cancelled at exit)."""
        young = self.young_interval if self.freeze_survivors else None
        by_growth = self.freeze_survivors and self.full_growth is not None
        if young is None and self.full_interval is None and not by_growth:
            return
        loop = asyncio.get_running_loop()
        # the heap's size: sys.getallocatedblocks() walks the allocator's arenas (well under a
        # millisecond), gc.get_freeze_count() every frozen object (tens of milliseconds)
        baseline, last_full = sys.getallocatedblocks(), loop.time()
        last_check = last_full
        while True:
            await asyncio.sleep(young or self.check_interval)
            if young is not None:
                gc.collect(0)  # the hook freezes what survives
            now = loop.time()
            if now - last_check < self.check_interval:
                continue
            last_check = now
            blocks = sys.getallocatedblocks()
            grown = (
                by_growth
                and blocks > baseline * (1.0 + (self.full_growth or 0.0))
                and blocks - baseline > self.full_min
                and now - last_full >= self.full_spacing
            )
            if grown or (self.full_interval is not None and now - last_full >= self.full_interval):
                self.collect_full()
                baseline, last_full = sys.getallocatedblocks(), now

    @staticmethod
    def collect_full() -> int:
        """Collect everything, frozen objects included (a pause proportional to the heap), freeze
        the rest; the number of unreachable objects found."""
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        return found


#: A collection count never reached (the threshold of a generation not collected automatically).
_NEVER = 2**31 - 1
_CPYTHON_THRESHOLDS = (700, 10, 10)


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """``gc.callbacks`` hook of :class:`GcPolicy`: after a collection of the first generation,
    freeze its survivors (the collection is over: the generation lists are consistent)."""
    if phase == "stop" and info["generation"] == 0:
        gc.freeze()


def _set_mmap_threshold(size: int) -> bool:
    """glibc ``mallopt(M_MMAP_THRESHOLD, size)``; False where that is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold = -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, size))


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None, gc_policy: GcPolicy | None = None) -> _T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks; with ``gc_policy``
    the collector settings of a long-running server (:class:`GcPolicy`)."""
    with asyncio.Runner(debug=debug, loop_factory=loop_factory()) as runner:
        if gc_policy is None:
            return runner.run(main)
        gc_policy.apply()
        try:
            return runner.run(_with_gc(main, gc_policy))
        finally:
            gc_policy.restore()


async def _with_gc(main: Coroutine[Any, Any, _T], policy: GcPolicy) -> _T:
    keeper = asyncio.ensure_future(policy.keep())
    try:
        return await main
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper


def install_uvloop() -> bool:
    """Make uvloop the default for new event loops (for code that calls
    ``asyncio.run`` itself).  Returns False when uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def stop_on_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> asyncio.Event:
    """An event set when the process receives SIGINT or SIGTERM (for ``serve`` commands
    that run until stopped); call it from inside the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in signals:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop
