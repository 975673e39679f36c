"""Pooled random identifiers (webims.sip.randomness): sizes, ranges, never the same bytes twice."""

from __future__ import annotations

import base64
import os

import pytest

from webims.sip.randomness import randbelow, token_hex, token_urlsafe


def test_tokens_have_the_asked_size_and_do_not_repeat() -> None:
    tokens = [token_hex(5) for _ in range(5000)]  # more than one 4 KiB block
    assert all(len(t) == 10 and int(t, 16) >= 0 for t in tokens)
    assert len(set(tokens)) == len(tokens)
    assert len(token_hex(5000)) == 10_000  # larger than a block


def test_randbelow_covers_its_range_only() -> None:
    seen = {randbelow(10) for _ in range(2000)}
    assert seen == set(range(10))
    assert all(0 <= randbelow(10_000) < 10_000 for _ in range(1000))
    assert randbelow(1) == 0
    with pytest.raises(ValueError):
        randbelow(0)


def test_urlsafe_tokens_are_urlsafe_and_fresh() -> None:
    tokens = {token_urlsafe(12) for _ in range(500)}
    assert len(tokens) == 500
    for token in tokens:
        assert len(token) == 16 and len(base64.urlsafe_b64decode(token)) == 12


def test_a_forked_child_does_not_reuse_its_parents_bytes() -> None:
    token_hex(1)  # the pool holds unused bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the next bytes it takes, to the parent
        os.write(write, token_hex(16).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32 and child != token_hex(16)
