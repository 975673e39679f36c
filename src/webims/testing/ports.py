"""Free ports for tests and benchmarks (racy by nature: fine on loopback).

One helper for every test peer and fixture: SIP listens on both UDP and TCP at
the same port (RFC 3261 §18), so :func:`free_port` by default returns a port free
for both; a TCP-only probe once handed out a port whose UDP side was taken.
"""

from __future__ import annotations

import collections
import random
import socket

__all__ = ["EPHEMERAL_LOW", "free_port", "free_port_block"]

#: Linux's ephemeral range starts at 32768: blocks below it do not collide with
#: the ports the kernel hands out for ``bind(port 0)``.
EPHEMERAL_LOW = 32_768
_BLOCK_LOW = 10_000
#: Ports :func:`free_port` handed out lately in this process: a port is free until its
#: caller binds it, and the kernel may pick it again for the next probe meanwhile (two
#: peers of one test were once given the same port).
_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=1024)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _kinds(udp: bool, tcp: bool) -> list[socket.SocketKind]:
    kinds = [k for k, wanted in ((socket.SOCK_STREAM, tcp), (socket.SOCK_DGRAM, udp)) if wanted]
    if not kinds:
        raise ValueError("ask for a UDP port, a TCP port or both")
    return kinds


def _label(kinds: list[socket.SocketKind]) -> str:
    return "+".join("TCP" if k == socket.SOCK_STREAM else "UDP" for k in kinds)


def _bindable(host: str, port: int, kinds: list[socket.SocketKind]) -> bool:
    """Whether ``port`` can be bound on ``host`` now for every socket kind in ``kinds``."""
    family = _family(host)
    socks: list[socket.socket] = []
    try:
        for kind in kinds:
            sock = socket.socket(family, kind)
            socks.append(sock)
            sock.bind((host, port))
    except OSError:
        return False
    finally:
        for sock in socks:
            sock.close()
    return True


def free_port(host: str = "127.0.0.1", *, udp: bool = True, tcp: bool = True) -> int:
    """A port free on ``host`` now for UDP and TCP (or only the one asked for), and not one
    handed out lately in this process."""
    kinds = _kinds(udp, tcp)
    family = _family(host)
    for _ in range(50):
        with socket.socket(family, kinds[0]) as first:
            first.bind((host, 0))
            port = int(first.getsockname()[1])
            if port not in _HANDED_OUT and _bindable(host, port, kinds[1:]):
                _HANDED_OUT.append(port)
                return port
    raise OSError(f"no free {_label(kinds)} port on {host}")


def free_port_block(
    count: int,
    host: str = "127.0.0.1",
    rng: random.Random | None = None,
    *,
    udp: bool = True,
    tcp: bool = False,
) -> tuple[int, int]:
    """``(first, last)`` of ``count`` consecutive ports in 10000-32767, all free on ``host`` now.

    Chosen at random among aligned blocks, so that parallel tests rarely collide;
    the first port is even (RTP on an even port, RTCP on the next: RFC 3550 §11).
    UDP only unless asked otherwise (media ports).
    """
    kinds = _kinds(udp, tcp)
    if not 2 <= count <= EPHEMERAL_LOW - _BLOCK_LOW:
        raise ValueError(f"port block of {count} ports does not fit in {_BLOCK_LOW}-{EPHEMERAL_LOW - 1}")
    rng = rng or random.Random()
    blocks = (EPHEMERAL_LOW - _BLOCK_LOW) // count
    for _ in range(20):
        first = _BLOCK_LOW + rng.randrange(blocks) * count
        first += first % 2
        last = min(first + count - 1, EPHEMERAL_LOW - 1)
        if all(_bindable(host, port, kinds) for port in range(first, last + 1)):
            return first, last
    raise OSError(f"no block of {count} free {_label(kinds)} ports on {host}")
