"""Rate limits for WIC requests: token buckets per connection and per source address.

A WIC that floods the gateway gets ``503 Service Unavailable`` with ``Retry-After``
(RFC 3261 §21.5.4: the server is temporarily overloaded; a well-behaved UA waits)
and, after ``max_violations`` such answers in a row, its WebSocket is closed.

Time is an argument (``now``), so the buckets are plain data and testable without a
clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Decision", "RateLimiter", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; :meth:`take` spends one if there is one."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def full(self, now: float) -> bool:
        """Refilled to ``burst`` by ``now``: no different from a new bucket."""
        return self.tokens + (now - self.stamp) * self.rate >= self.burst

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class Decision:
    """``allowed``; else ``retry_after`` seconds and whether to ``close`` the connection."""

    allowed: bool
    retry_after: int = 0
    close: bool = False


_ALLOWED = Decision(True)  # frozen: one for every allowed request


class _ConnState:
    """A connection's buckets, each made on its first use (a WIC that only registers has one)."""

    __slots__ = ("register", "requests", "violations")

    def __init__(self) -> None:
        self.register: TokenBucket | None = None
        self.requests: TokenBucket | None = None
        self.violations = 0


class RateLimiter:
    """Buckets per connection id (REGISTER and other requests apart) and per source IP
    (REGISTER only, across all its connections).

    Every ``sweep_interval`` seconds (checked on :meth:`check`) the buckets that have filled
    up again are dropped, with the state of connections that have only such buckets and no
    violation: a full bucket is what a new one would be, so nothing changes for anybody,
    and an idle registered WIC (the many) keeps no rate-limit state at all."""

    def __init__(
        self,
        *,
        register_rate: float,
        register_burst: int,
        source_register_rate: float,
        source_register_burst: int,
        request_rate: float,
        request_burst: int,
        max_violations: int,
        max_sources: int = 100_000,
        sweep_interval: float = 10.0,
    ) -> None:
        self.register_rate = register_rate
        self.register_burst = register_burst
        self.source_register_rate = source_register_rate
        self.source_register_burst = source_register_burst
        self.request_rate = request_rate
        self.request_burst = request_burst
        self.max_violations = max_violations
        self.max_sources = max_sources
        self.sweep_interval = sweep_interval
        self._next_sweep = -math.inf  # the first check sweeps (nothing) and sets it
        self._conns: dict[int, _ConnState] = {}
        self._sources: dict[str, TokenBucket] = {}

    def tracked(self) -> tuple[int, int]:
        """(connections, source addresses) with rate-limit state."""
        return len(self._conns), len(self._sources)

    def check(self, connection_id: int, source: str, method: str, now: float) -> Decision:
        if now >= self._next_sweep:
            self.sweep(now)
            self._next_sweep = now + self.sweep_interval
        state = self._conns.get(connection_id)
        if state is None:
            state = self._conns[connection_id] = _ConnState()
        if method == "REGISTER":
            source_bucket = self._sources.get(source)
            if source_bucket is None:
                if len(self._sources) >= self.max_sources:
                    self._prune(now)
                source_bucket = self._sources[source] = TokenBucket(
                    self.source_register_rate, self.source_register_burst, now
                )
            bucket = state.register
            if bucket is None:
                bucket = state.register = TokenBucket(self.register_rate, self.register_burst, now)
            ok = bucket.take(now)
            if ok and not source_bucket.take(now):
                ok = False
                bucket.tokens += 1.0  # not this connection's fault alone: give its token back
                bucket = source_bucket
        else:
            bucket = state.requests
            if bucket is None:
                bucket = state.requests = TokenBucket(self.request_rate, self.request_burst, now)
            ok = bucket.take(now)
        if ok:
            state.violations = 0
            return _ALLOWED
        state.violations += 1
        retry = max(1, math.ceil(bucket.wait_time(now)))
        return Decision(False, retry, state.violations >= self.max_violations)

    def sweep(self, now: float) -> None:
        """Drop what has filled up again (class docstring)."""
        idle = [
            cid
            for cid, state in self._conns.items()
            if state.violations == 0
            and (state.register is None or state.register.full(now))
            and (state.requests is None or state.requests.full(now))
        ]
        for cid in idle:
            del self._conns[cid]
        self._drop_full_sources(now)

    def forget(self, connection_id: int) -> None:
        """The connection closed."""
        self._conns.pop(connection_id, None)

    def _drop_full_sources(self, now: float) -> None:
        full = [key for key, bucket in self._sources.items() if bucket.full(now)]
        for key in full:
            del self._sources[key]

    def _prune(self, now: float) -> None:
        self._drop_full_sources(now)
        if len(self._sources) >= self.max_sources:
            self._sources.clear()
