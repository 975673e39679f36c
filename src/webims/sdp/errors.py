"""The one error type of the SDP parser (DESIGN.md §6.4).

Every malformed or unacceptable session description raises :class:`SdpError`,
which carries the SIP response a server should send when the description came
in a request: 400 (Bad Request, RFC 3261 §21.4.1) for syntax errors, 488 (Not
Acceptable Here, RFC 3261 §21.4.26) for a well-formed description this
implementation will not accept (unknown line type, RFC 8866 §5; unsupported
version; a limit exceeded; no acceptable media).
"""

from __future__ import annotations

from typing import Literal

SdpStatus = Literal[400, 488]


class SdpError(Exception):
    """An SDP body that cannot be accepted.

    ``status`` is the SIP status code to answer with (400 or 488), ``reason``
    a short human-readable phrase (usable in a Warning header, RFC 3261
    §20.43) and ``line`` the offending SDP line, if there is one.
    """

    def __init__(self, reason: str, status: SdpStatus = 400, line: str | None = None) -> None:
        super().__init__(f"{status} {reason}" + (f": {line[:120]!r}" if line is not None else ""))
        self.status: SdpStatus = status
        self.reason = reason
        self.line = line

    def with_line(self, line: str) -> SdpError:
        """This error, with ``line`` attached if it had none."""
        if self.line is not None:
            return self
        return SdpError(self.reason, self.status, line)
