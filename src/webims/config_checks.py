"""Validation hooks for config settings (re-exported by :mod:`webims.config`).

A :class:`Check` returns the (possibly normalised) value or raises ``ValueError``;
``describe(kind)`` is the noun phrase after "expected" in the error message, e.g.
``transport.ws_port: expected an integer between 1 and 65535, got 'abc' (from ...)``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "Check",
    "between",
    "each",
    "host_port",
    "hostname",
    "is_hostname",
    "is_loopback",
    "non_empty",
    "one_of",
    "origin",
    "port",
    "predicate",
    "url_path",
]


class Check:
    """A validation hook for one setting: returns the (possibly normalised) value or
    raises ValueError; ``describe(kind)`` is the noun phrase after "expected"."""

    def describe(self, kind: str) -> str:
        return kind

    def __call__(self, value: Any) -> Any:
        return value


@dataclasses.dataclass(frozen=True)
class _Between(Check):
    lo: float
    hi: float

    def describe(self, kind: str) -> str:
        return f"{kind} between {self.lo} and {self.hi}"

    def __call__(self, value: Any) -> Any:
        if not self.lo <= value <= self.hi:
            raise ValueError("out of range")
        return value


@dataclasses.dataclass(frozen=True)
class _Predicate(Check):
    text: str
    test: Callable[[Any], bool]

    def describe(self, kind: str) -> str:
        return self.text

    def __call__(self, value: Any) -> Any:
        if not self.test(value):
            raise ValueError(self.text)
        return value


@dataclasses.dataclass(frozen=True)
class _Each(Check):
    inner: Check

    def describe(self, kind: str) -> str:
        return f"a list whose items are each {self.inner.describe('a string')}"

    def __call__(self, value: Any) -> Any:
        return type(value)(self.inner(item) for item in value)


def between(lo: float, hi: float) -> Check:
    """Inclusive numeric range."""
    return _Between(lo, hi)


def predicate(text: str, test: Callable[[Any], bool]) -> Check:
    """Any rule: ``text`` is what was expected, e.g. ``"a power of two"``."""
    return _Predicate(text, test)


def one_of(*choices: str) -> Check:
    return _Predicate("one of " + ", ".join(repr(c) for c in choices), lambda v: v in choices)


def each(check: Check) -> Check:
    """Apply ``check`` to every item of a list setting."""
    return _Each(check)


def non_empty() -> Check:
    return _Predicate("a non-empty value", lambda v: len(v) > 0)


def is_hostname(value: str) -> bool:
    """An IP address (IPv6 optionally in brackets) or an RFC 1123 host name."""
    try:
        ipaddress.ip_address(value[1:-1] if value.startswith("[") and value.endswith("]") else value)
        return True
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    return 0 < len(value) <= 253 and all(
        re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", label) for label in labels
    )


def is_loopback(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_host_port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return (
        bool(sep)
        and is_hostname(host)
        and port.isdigit()
        and 1 <= int(port) <= 65535
        and (":" not in host or host.startswith("["))
    )


_ORIGIN_RE = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")


def _is_origin(value: str) -> bool:
    match = _ORIGIN_RE.fullmatch(value)
    return match is not None and is_hostname(match.group(1)) and int((match.group(2) or ":1")[1:]) <= 65535


def hostname() -> Check:
    return _Predicate("a host name or IP address", is_hostname)


def host_port() -> Check:
    return _Predicate("host:port (IPv6 in brackets) with a port between 1 and 65535", _is_host_port)


def origin() -> Check:
    """An RFC 6454 origin as browsers send it in the Origin header."""
    return _Predicate("an origin such as 'https://example.com:8443'", _is_origin)


def url_path() -> Check:
    return _Predicate("a URL path starting with '/'", lambda v: v.startswith("/") and " " not in v)


def port() -> Check:
    return _Between(1, 65535)
