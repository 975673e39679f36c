"""UDP port allocation for media from a configured range.

RTP takes an even port and RTCP the next odd one (RFC 3550 §11);
:meth:`PortAllocator.bind_pair` binds both, and :meth:`PortAllocator.bind_one`
one port (the WebRTC leg: rtcp-mux, RFC 5761).  A port another process holds
is skipped; when no port is left :class:`~webims.media.api.MediaError` 503 is
raised.  Ports are returned with :meth:`PortAllocator.release`; the allocator
knows which ports it handed out, so a leak shows in :attr:`PortAllocator.in_use`.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from itertools import chain

from webims.transport.base import bound_socket

from .api import MediaError

__all__ = ["PortAllocator", "bind_udp"]


def bind_udp(address: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``(address, port)``."""
    return bound_socket(address, port, socket.SOCK_DGRAM)


class PortAllocator:
    """Ports ``low``..``high`` (inclusive) on one or more addresses, handed out round-robin.

    Round-robin (rather than lowest-first) keeps a just-released port unused
    for a while, so late packets of an old call do not reach a new one.
    """

    def __init__(self, low: int, high: int) -> None:
        if not 1024 <= low <= high <= 65535:
            raise ValueError(f"bad media port range {low}-{high}")
        self.low = low
        self.high = high
        self._used: set[int] = set()
        self._next = low

    @property
    def in_use(self) -> frozenset[int]:
        return frozenset(self._used)

    @property
    def capacity(self) -> int:
        return self.high - self.low + 1

    def _candidates(self, step: int) -> Iterator[int]:
        """Free ports from the round-robin position on; even ones (with room for +1) for pairs.

        Lazy: a port is looked at only when the caller asks for the next one, so an
        allocation costs the ports it skips (usually none), not the size of the range.
        """
        first = self.low if step == 1 else self.low + self.low % 2
        start = self._next if step == 1 else self._next + self._next % 2
        start = max(first, start) if start <= self.high else first
        last = self.high if step == 1 else self.high - 1  # a pair needs port + 1 <= high
        used = self._used
        for port in chain(range(start, last + 1, step), range(first, start, step)):
            if port not in used:
                yield port

    def bind_one(self, addresses: list[str]) -> tuple[int, list[socket.socket]]:
        """One port bound on every address in ``addresses`` (same number on each)."""
        for port in self._candidates(1):
            socks = self._try_bind([(a, port) for a in addresses])
            if socks is not None:
                self._take(port)
                return port, socks
        raise MediaError("no free media port", 503)

    def bind_pair(self, address: str) -> tuple[int, socket.socket, socket.socket]:
        """An even RTP port and the next (RTCP) port, both bound on ``address``."""
        for port in self._candidates(2):
            if port + 1 in self._used:
                continue
            socks = self._try_bind([(address, port), (address, port + 1)])
            if socks is not None:
                self._take(port, port + 1)
                return port, socks[0], socks[1]
        raise MediaError("no free media port pair", 503)

    def release(self, *ports: int) -> None:
        for port in ports:
            self._used.discard(port)

    def _take(self, *ports: int) -> None:
        self._used.update(ports)
        nxt = max(ports) + 1
        self._next = nxt if nxt <= self.high else self.low

    @staticmethod
    def _try_bind(targets: list[tuple[str, int]]) -> list[socket.socket] | None:
        socks: list[socket.socket] = []
        try:
            for address, port in targets:
                socks.append(bind_udp(address, port))
        except OSError as exc:
            for s in socks:
                s.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return None
            raise MediaError(f"cannot bind media socket: {exc}", 503) from exc
        return socks
