"""No pattern of webims uses a possessive quantifier.

Python 3.11.0-3.11.4 match ``X++``, ``X*+`` and ``X?+`` wrongly (gh-100061, gh-106052):
a failed last round of a possessive repeat stays in the match and its groups, so that
``Bob <sip:bob@b.example>`` had the display name ``"Bob "`` and ``host-.example.com``
passed as a host name. Debian 12's python3 is 3.11.2, and ``scripts/setup.sh`` builds
``.venv`` on it, so the suite's other tests would show such a pattern failing there; this
one says which pattern it is on any interpreter. The atomic group ``(?>X+)`` means the
same and is matched right (3.11.5 made the possessive forms atomic groups too).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from re import _constants, _parser  # type: ignore[attr-defined]
from typing import Any

import webims

POSSESSIVE = {_constants.POSSESSIVE_REPEAT, _constants.POSSESSIVE_REPEAT_ONE}


def _opcodes(node: Any) -> Iterator[Any]:
    """Every opcode of a parsed pattern, nested ones included (a group's, a repeat's, an
    atomic group's, a branch's or a lookaround's sub-pattern)."""
    if isinstance(node, _parser.SubPattern):
        for op, arg in node:
            yield op
            yield from _opcodes(arg)
    elif isinstance(node, (list, tuple)):
        for item in node:
            yield from _opcodes(item)


def _patterns() -> Iterator[tuple[str, re.Pattern[Any]]]:
    for info in pkgutil.walk_packages(webims.__path__, "webims."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                yield f"{info.name}.{name}", value


def test_the_scan_finds_possessive_quantifiers() -> None:
    for nested in (r"a(?:[ \t]++b)*+", r"(?>x(?:a|b*+))", r"(?=a++)", r"(?:a|(b?+))"):
        assert POSSESSIVE & set(_opcodes(_parser.parse(nested))), nested
    assert not POSSESSIVE & set(_opcodes(_parser.parse(r"a(?>(?:[ \t]+b)*)")))


def test_no_pattern_is_possessive() -> None:
    patterns = dict(_patterns())
    assert "webims.sip.headers.NAME_ADDR_PARTS_RE" in patterns  # the scan reaches the SIP patterns
    possessive = [name for name, pattern in patterns.items()
                  if POSSESSIVE & set(_opcodes(_parser.parse(pattern.pattern, pattern.flags)))]  # fmt: skip
    assert possessive == []


def test_a_display_name_ends_at_its_last_token() -> None:
    """The case gh-106052 broke in the fast name-addr pattern (3.11.2 gave ``"Bob "``)."""
    from webims.sip.headers import NAME_ADDR_PARTS_RE

    match = NAME_ADDR_PARTS_RE.fullmatch("Bob  Smith \t<sip:bob@biloxi.example.com>;tag=a73kszlfl")
    assert match is not None and match.group(2) == "Bob  Smith"
