"""Login throttling per username and per source address (brute-force defence).

Failed attempts are counted in a sliding window; once a username (or an address)
has ``limit`` failures inside ``window`` seconds, every further attempt for it is
refused *before* the password is checked, with the number of seconds until the
oldest failure leaves the window (the HTTP layer sends 429 + ``Retry-After``,
RFC 6585 §4). A success clears the username's count. Memory is bounded: the
least recently used keys are forgotten beyond ``max_keys``.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["LoginLimiter"]


class _Window:
    def __init__(self, limit: int, window: float, max_keys: int) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()

    def _trim(self, key: str, now: float) -> deque[float] | None:
        q = self._fails.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._fails[key]
            return None
        return q

    def retry_after(self, key: str, now: float) -> float | None:
        q = self._trim(key, now)
        if q is None or len(q) < self.limit:
            return None
        return q[-self.limit] + self.window - now

    def fail(self, key: str, now: float) -> None:
        q = self._trim(key, now)
        if q is None:
            q = self._fails[key] = deque(maxlen=self.limit)
        q.append(now)
        self._fails.move_to_end(key)
        while len(self._fails) > self.max_keys:
            self._fails.popitem(last=False)

    def clear(self, key: str) -> None:
        self._fails.pop(key, None)


class LoginLimiter:
    """Sliding-window failure counters for usernames and source addresses."""

    def __init__(
        self,
        *,
        per_user: int = 5,
        per_ip: int = 20,
        window: float = 300.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = _Window(per_user, window, max_keys)
        self._ips = _Window(per_ip, window, max_keys)
        self._clock = clock

    def check(self, username: str, ip: str) -> int | None:
        """Seconds to wait (for Retry-After) if this attempt must be refused, else None."""
        now = self._clock()
        waits = [
            w for w in (self._users.retry_after(username.lower(), now), self._ips.retry_after(ip, now)) if w
        ]
        return max(1, math.ceil(max(waits))) if waits else None

    def failure(self, username: str, ip: str) -> None:
        now = self._clock()
        self._users.fail(username.lower(), now)
        self._ips.fail(ip, now)

    def success(self, username: str, ip: str) -> None:
        self._users.clear(username.lower())
