"""Media port allocation: round-robin over the range, RTP even and RTCP + 1 (RFC 3550 §11),
ports held elsewhere skipped, 503 when none is left; real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from webims.media.api import MediaError
from webims.media.ports import PortAllocator, bind_udp

LOW = 46000


def free_block(size: int) -> int:
    """A first port of ``size`` consecutive UDP ports nobody holds now (from LOW on)."""
    for first in range(LOW, 60000, size):
        socks = []
        try:
            for port in range(first, first + size):
                socks.append(bind_udp("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return first
    raise RuntimeError("no free block of UDP ports")


@pytest.fixture
def closing() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


def test_single_ports_go_round_robin_and_wrap(closing: list[socket.socket]) -> None:
    first = free_block(4)
    ports = PortAllocator(first, first + 3)
    got = []
    held: dict[int, list[socket.socket]] = {}
    for _ in range(4):
        port, socks = ports.bind_one(["127.0.0.1"])
        closing.extend(socks)
        got.append(port)
        held[port] = socks
    assert got == [first, first + 1, first + 2, first + 3]
    assert ports.in_use == frozenset(got)
    with pytest.raises(MediaError) as info:
        ports.bind_one(["127.0.0.1"])
    assert info.value.status == 503
    for s in held[first + 1]:
        s.close()
    ports.release(first + 1)
    port, socks = ports.bind_one(["127.0.0.1"])  # the only free one, found by wrapping around
    closing.extend(socks)
    assert port == first + 1


def test_a_released_port_waits_for_its_turn(closing: list[socket.socket]) -> None:
    first = free_block(4)
    ports = PortAllocator(first, first + 3)
    port, socks = ports.bind_one(["127.0.0.1"])
    for s in socks:
        s.close()
    ports.release(port)
    again, socks = ports.bind_one(["127.0.0.1"])
    closing.extend(socks)
    assert again == first + 1  # not the port just released


def test_pairs_are_even_and_odd_and_skip_a_port_held_elsewhere(closing: list[socket.socket]) -> None:
    first = free_block(8)
    if first % 2:
        first += 1
    ports = PortAllocator(first, first + 6)  # pairs: first, first+2, first+4 (first+6 has no +1)
    closing.append(bind_udp("127.0.0.1", first + 3))  # another process holds an RTCP port
    rtp, a, b = ports.bind_pair("127.0.0.1")
    closing += [a, b]
    assert rtp == first and a.getsockname()[1] == first and b.getsockname()[1] == first + 1
    rtp, a, b = ports.bind_pair("127.0.0.1")
    closing += [a, b]
    assert rtp == first + 4  # first+2 skipped: its RTCP port was taken
    with pytest.raises(MediaError):
        ports.bind_pair("127.0.0.1")
    assert ports.in_use == frozenset({first, first + 1, first + 4, first + 5})


def test_pairs_start_even_from_an_odd_position(closing: list[socket.socket]) -> None:
    first = free_block(6)
    if first % 2 == 0:
        first += 1
    ports = PortAllocator(first, first + 4)  # odd low: pairs at first+1, first+3
    _, socks = ports.bind_one(["127.0.0.1"])  # takes the odd low port
    closing.extend(socks)
    rtp, a, b = ports.bind_pair("127.0.0.1")
    closing += [a, b]
    assert rtp == first + 1 and rtp % 2 == 0


def test_a_large_range_allocates_and_releases(closing: list[socket.socket]) -> None:
    first = free_block(4)
    ports = PortAllocator(first, 65535)
    port, socks = ports.bind_one(["127.0.0.1"])
    closing.extend(socks)
    assert port == first and ports.capacity == 65536 - first
    ports.release(port)
    assert ports.in_use == frozenset()
