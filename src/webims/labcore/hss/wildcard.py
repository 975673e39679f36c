"""Wildcarded Public User Identities (TS 23.003 §13.5, TS 29.228 §7.2b).

A wildcarded IMPU stands for a range of IMPUs: the parts between two ``!`` are a
regular expression, the rest is literal, e.g. ``sip:user-!\\d{4}!@ims.test`` or
``tel:+1555!.*!``. An identity belongs to the range when the whole identity matches
(:meth:`re.Pattern.fullmatch`).

Safety (the patterns come from provisioning, the identities from the network):

* each pattern is checked and compiled once (:func:`compile_wildcard`, cached);
* lengths are bounded (:data:`MAX_PATTERN_LENGTH`, :data:`MAX_IDENTITY_LENGTH`);
* constructs that make Python's backtracking matcher exponential or that have no
  place in an identity range are refused: back-references, look-arounds and other
  ``(?...)`` groups, and a repeated group (``*``, ``+``, ``{m,n}``) that itself holds
  a quantifier or an alternation, such as ``(a+)+`` or ``(a|aa)*``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

__all__ = [
    "MAX_IDENTITY_LENGTH",
    "MAX_PATTERN_LENGTH",
    "WildcardError",
    "WildcardIndex",
    "compile_wildcard",
    "is_wildcarded",
    "wildcard_matches",
]

MAX_PATTERN_LENGTH = 256
MAX_IDENTITY_LENGTH = 512
DELIMITER = "!"
#: Unbounded repetitions allowed in one pattern: k of them cost O(len(identity)^k) when backtracking.
MAX_UNBOUNDED = 2
#: A bounded repetition above this many is counted as unbounded.
MAX_BOUND = 32
_BOUND = re.compile(r"\{(\d*)(,(\d*))?\}")


def _is_unbounded(bound: re.Match[str]) -> bool:
    if bound.group(2) is None:  # {m}
        return int(bound.group(1) or 0) > MAX_BOUND
    upper = bound.group(3)
    return not upper or int(upper) > MAX_BOUND


class WildcardError(ValueError):
    """A wildcarded identity that cannot be used (syntax, length or an unsafe expression)."""


def is_wildcarded(identity: str) -> bool:
    """True when ``identity`` has at least one ``!regex!`` part (TS 23.003 §13.5)."""
    return identity.count(DELIMITER) >= 2


def _check_regex(part: str, pattern: str) -> None:
    """Refuse back-references, ``(?`` groups and repeated groups holding quantifiers or ``|``."""
    # Each open group records whether it contains a quantifier or an alternation.
    stack: list[bool] = []
    i = 0
    n = len(part)
    last_group_risky: bool | None = None  # set right after ')' to the closed group's flag
    unbounded = 0
    while i < n:
        c = part[i]
        risky_close = last_group_risky
        last_group_risky = None
        if c == "\\":
            if i + 1 >= n:
                raise WildcardError(f"{pattern!r}: trailing backslash")
            if part[i + 1].isdigit() and part[i + 1] != "0":
                raise WildcardError(f"{pattern!r}: back-references are not allowed")
            i += 2
            continue
        if c == "[":
            j = i + 1
            if j < n and part[j] == "^":
                j += 1
            if j < n and part[j] == "]":
                j += 1
            while j < n and part[j] != "]":
                j += 2 if part[j] == "\\" else 1
            if j >= n:
                raise WildcardError(f"{pattern!r}: unterminated character class")
            i = j + 1
            continue
        if c == "(":
            if part.startswith("(?", i):
                raise WildcardError(f"{pattern!r}: '(?' groups are not allowed")
            stack.append(False)
        elif c == ")":
            if not stack:
                raise WildcardError(f"{pattern!r}: unbalanced ')'")
            inner = stack.pop()
            last_group_risky = inner
            if stack and inner:
                stack[-1] = True
        elif c in "*+?{|":
            bound = _BOUND.match(part, i) if c == "{" else None
            repeated = c in "*+" or bound is not None
            if risky_close and repeated:
                raise WildcardError(
                    f"{pattern!r}: a repeated group holding a quantifier or '|' "
                    "(e.g. '(a+)+', '(a|aa)*') is not allowed"
                )
            if c in "*+" or (bound is not None and _is_unbounded(bound)):
                unbounded += 1
                if unbounded > MAX_UNBOUNDED:
                    raise WildcardError(
                        f"{pattern!r}: more than {MAX_UNBOUNDED} unbounded repetitions ('*', '+', '{{m,}}')"
                    )
            if stack:
                stack[-1] = True
            if bound is not None:
                i = bound.end()
                continue
        i += 1
    if stack:
        raise WildcardError(f"{pattern!r}: unbalanced '('")


@functools.lru_cache(maxsize=4096)
def compile_wildcard(pattern: str) -> re.Pattern[str]:
    """The compiled form of a wildcarded identity; raises :class:`WildcardError`."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise WildcardError(f"wildcarded identity longer than {MAX_PATTERN_LENGTH} characters")
    pieces = pattern.split(DELIMITER)
    if len(pieces) < 3 or len(pieces) % 2 == 0:
        raise WildcardError(f"{pattern!r}: expected '!regex!' parts between pairs of '!'")
    out: list[str] = []
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            out.append(re.escape(piece))
        else:
            if not piece:
                raise WildcardError(f"{pattern!r}: empty '!!' part")
            _check_regex(piece, pattern)
            out.append(f"(?:{piece})")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise WildcardError(f"{pattern!r}: {exc}") from None


def wildcard_matches(pattern: str, identity: str) -> bool:
    """Does ``identity`` belong to the range ``pattern`` (whole-string match)?"""
    if len(identity) > MAX_IDENTITY_LENGTH:
        return False
    return compile_wildcard(pattern).fullmatch(identity) is not None


class WildcardIndex:
    """A set of wildcarded identities, matched most specific first.

    "Most specific" = the longest literal text, then the longest pattern, then the
    pattern text (a stable order). Patterns that fail :func:`compile_wildcard` are
    skipped and listed in ``rejected``.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        compiled: list[tuple[tuple[int, int, str], str, re.Pattern[str]]] = []
        self.rejected: list[str] = []
        for p in patterns:
            try:
                rx = compile_wildcard(p)
            except WildcardError:
                self.rejected.append(p)
                continue
            literal = sum(len(x) for x in p.split(DELIMITER)[::2])
            compiled.append(((-literal, -len(p), p), p, rx))
        compiled.sort(key=lambda t: t[0])
        self._entries = [(p, rx) for _, p, rx in compiled]

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, identity: str) -> str | None:
        """The wildcarded identity whose range holds ``identity``, or None."""
        if len(identity) > MAX_IDENTITY_LENGTH:
            return None
        for pattern, rx in self._entries:
            if rx.fullmatch(identity) is not None:
                return pattern
        return None
