"""The one error type of the Diameter codec (DESIGN.md §6.4, RFC 6733 §7).

Every malformed input raises :class:`DiameterError`. It carries its wire answer:
the Result-Code, the content of the Failed-AVP AVP (RFC 6733 §7.5), an
Error-Message text, and whether the transport connection must be closed because
the byte stream can no longer be framed (a broken message header, RFC 6733 §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .constants import FLAG_REQUEST

if TYPE_CHECKING:
    from .message import Message


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed 20-byte Diameter message header (RFC 6733 §3)."""

    version: int
    length: int
    flags: int
    command_code: int
    application_id: int
    hop_by_hop: int
    end_to_end: int

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)


class DiameterError(Exception):
    """A Diameter message, or part of one, that cannot be accepted.

    ``result_code``: the Result-Code for the answer (RFC 6733 §7.1). Codes
    3000-3999 are protocol errors, answered with the 'E' bit (§7.2).
    ``failed_avp``: encoded AVP(s) to put inside Failed-AVP, or ``None``.
    ``close_connection``: the stream cannot be framed any more (bad version,
    impossible message length); the connection must be closed after answering.
    ``header``: the header of the offending message when it could be read.
    ``request``: the decoded message, when the error comes from validation.
    ``session_id``: the Session-Id of the offending message, when known.
    """

    def __init__(
        self,
        result_code: int,
        reason: str,
        *,
        failed_avp: bytes | None = None,
        close_connection: bool = False,
        header: Header | None = None,
        request: Message | None = None,
        session_id: str | None = None,
    ) -> None:
        super().__init__(f"{result_code} {reason}")
        self.result_code = result_code
        self.reason = reason
        self.failed_avp = failed_avp
        self.close_connection = close_connection
        self.header = header
        self.request = request
        self.session_id = session_id

    @property
    def is_protocol_error(self) -> bool:
        """3xxx errors are answered with the 'E' bit set (RFC 6733 §7.1.3, §7.2)."""
        return 3000 <= self.result_code < 4000

    def with_context(
        self,
        *,
        header: Header | None = None,
        request: Message | None = None,
        session_id: str | None = None,
    ) -> DiameterError:
        """A copy that also knows the message it was raised for."""
        return DiameterError(
            self.result_code,
            self.reason,
            failed_avp=self.failed_avp,
            close_connection=self.close_connection,
            header=header if header is not None else self.header,
            request=request if request is not None else self.request,
            session_id=session_id if session_id is not None else self.session_id,
        )
