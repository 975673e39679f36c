"""Logging set-up that never writes secrets.

:func:`setup_logging` installs one handler on the root logger (text or JSON lines)
with a :class:`RedactingFilter`. The filter rewrites every record that passes the
handler (including records propagated from child loggers and exception text):

- credentials in ``Authorization`` / ``Proxy-Authorization`` headers (RFC 7235,
  RFC 8898 Bearer for SIP, Basic): the credentials after the scheme are masked;
- Digest parameters that are secrets or derive from them: ``response``, and the
  AKA session keys ``ck``/``ik`` the S-CSCF hands to the P-CSCF in
  WWW-Authenticate (TS 24.229 §5.4.1.2.1, TS 33.203 §6.1);
- ``password``/``secret``/``token``-like ``key=value``, ``key: value`` and JSON pairs;
- subscriber keys K/Ki/OP/OPc (TS 35.206) written as ``k=<32 hex>``;
- passwords in URL user-info (``redis://user:pass@host``), and JWTs (RFC 7519);
- any exact value listed in ``secrets`` (e.g. ``Config.secret_values()``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import TextIO

from webims.config import LogConfig

MASK = "***"

_SECRET_WORDS = (
    r"password|passwd|pwd|passphrase|secret|client_secret|api_?key|token|access_token|"
    r"refresh_token|id_token|private_key|ha1"
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer <token> / Basic <b64>  (RFC 7235 §4.2, RFC 8898)
    (
        re.compile(r"(?i)(\b(?:proxy-)?authorization\s*:\s*(?:bearer|basic)\s+)[^\s\"',;]+"),
        r"\1" + MASK,
    ),
    # Digest response and AKA CK/IK parameters are always quoted (RFC 7616 §3.4, TS 24.229)
    (re.compile(r'(?i)(\b(?:response|ck|ik)\s*=\s*")[^"]*(")'), r"\1" + MASK + r"\2"),
    # JSON "password": "..."
    (re.compile(rf'(?i)("(?:{_SECRET_WORDS})"\s*:\s*")(?:[^"\\]|\\.)*(")'), r"\1" + MASK + r"\2"),
    # password=..., token: ..., secret='...'
    (
        re.compile(rf"(?i)(\b(?:{_SECRET_WORDS})\b\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&\"']+)"),
        r"\1" + MASK,
    ),
    # Milenage K / OP / OPc (TS 35.206): 128-bit hex strings
    (re.compile(r"(?i)(\b(?:k|ki|op|opc)\s*[=:]\s*\"?)[0-9a-f]{32}\b"), r"\1" + MASK),
    # user-info password in URLs
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@"), r"\1" + MASK + "@"),
    # JWT (RFC 7519 compact serialisation)
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with credentials and the given exact ``secrets`` masked."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that redacts the message, its arguments and exception text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the record
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class WebimsHandler(logging.StreamHandler[TextIO]):
    """The handler :func:`setup_logging` installs (so a second call replaces it)."""


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(
    config: LogConfig,
    *,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
    level: str | None = None,
) -> logging.Handler:
    """Install the webims handler on the root logger (replacing a previous one).

    ``level`` overrides ``config.level`` (e.g. ``--debug``). Returns the handler.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, WebimsHandler)]:
        root.removeHandler(old)
        old.close()
    handler = WebimsHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(JsonFormatter() if config.format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel((level or config.level).upper())
    logging.captureWarnings(True)
    return handler
