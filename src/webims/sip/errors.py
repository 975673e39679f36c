"""The one error type of the SIP parser (DESIGN.md §6.4).

Every malformed input raises :class:`ParseError`, which carries the response a
server should send (RFC 3261 §21) and the offending line where there is one.
"""

from __future__ import annotations


class ParseError(Exception):
    """A SIP message, header or URI that cannot be accepted.

    ``status``/``reason`` are the response to send to a request that failed to
    parse (400, 413, 416, 505, 513); ``line`` is the offending line, if any.
    """

    def __init__(self, reason: str, status: int = 400, line: str | None = None) -> None:
        super().__init__(f"{status} {reason}" + (f": {line[:120]!r}" if line is not None else ""))
        self.status = status
        self.reason = reason
        self.line = line
