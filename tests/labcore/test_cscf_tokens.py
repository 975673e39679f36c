"""Pooled random tokens (webims.labcore.tokens): sizes, ranges, never the same bytes twice."""

from __future__ import annotations

import pytest

from webims.labcore.tokens import randbelow, token_hex


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
