"""The one place that picks the event loop: uvloop when installed (DESIGN.md §5:
an idle WSS connection costs ~38 KB with uvloop, ~290 KB without), and the garbage
collector settings of a long-running server (:class:`GcPolicy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
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

    CPython's collector traverses every tracked object of the oldest generation at each
    full collection, and starts one whenever a quarter more objects have survived into it:
    with 10,000 WebSocket connections (a million objects) each full collection stops the
    loop for a good part of a second, and objects merely in flight across an ``await``
    (a registration waiting for the IMS) are promoted and trigger the next one. So:

    - ``threshold``: a larger first-generation threshold (CPython: 700), so that objects
      of requests in flight die young instead of being promoted;
    - the objects alive when the loop starts (modules, classes, configuration) are frozen
      (``gc.freeze``: never traversed again);
    - every ``full_interval`` seconds the objects that survived since are frozen as well,
      after a full collection of everything (``gc.unfreeze``, ``gc.collect``), so that
      cyclic garbage among them (closed connections) is still reclaimed, once per interval
      instead of at every quarter of growth. ``None``: freeze only at start.

    And one allocator setting, for the same servers: ``mmap_threshold`` fixes glibc's
    threshold above which ``malloc`` maps fresh pages (glibc otherwise raises it after the
    first large block is freed). uvloop keeps a 256 KiB TLS read buffer per connection and
    touches only its first page or two: mapped on its own that costs those pages; placed in
    the heap over freed, dirty memory it costs up to 20 KiB more per idle WSS connection
    (measured: 50 -> 30 KiB per connection). The price: large transient blocks (a 256 KiB
    TLS read buffer per read) are mapped and unmapped each time, a few microseconds.
    ``None`` leaves the allocator alone (and on a C library other than glibc nothing is done).
    """

    threshold: int = 50_000
    full_interval: float | None = 120.0
    mmap_threshold: int | None = 128 * 1024

    def apply(self) -> None:
        """At start: thresholds, then freeze what exists."""
        _, second, third = gc.get_threshold()
        gc.set_threshold(self.threshold, second, third)
        gc.collect()
        gc.freeze()
        if self.mmap_threshold is not None:
            _set_mmap_threshold(self.mmap_threshold)

    async def keep(self) -> None:
        """Run with the loop: the periodic collect-and-freeze (cancelled at exit)."""
        if self.full_interval is None:
            return
        while True:
            await asyncio.sleep(self.full_interval)
            gc.unfreeze()
            gc.collect()
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
        return runner.run(_with_gc(main, gc_policy))


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
