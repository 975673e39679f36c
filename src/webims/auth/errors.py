"""Typed errors of the web authorization function, each carrying its wire answer.

- :class:`OAuthError`: an RFC 6749 §5.2 error (``error``, ``error_description``)
  with its HTTP status; the token, introspection and revocation endpoints answer it
  as JSON.
- :class:`TokenError` (:class:`InvalidToken`, :class:`InsufficientScope`): a
  bearer token the resource server (the gateway) must refuse, with the RFC 6750
  §3.1 error code, a human ``reason`` and the ``WWW-Authenticate`` value to send.
- :class:`PoolError` / :class:`PoolExhausted`: IMPU pool allocation failures.
- :class:`NotFound`, :class:`Conflict`: provisioning errors (CLI, admin API).
- :class:`Problem`: an RFC 9457 ``application/problem+json`` answer.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "AuthError",
    "Conflict",
    "InsufficientScope",
    "InvalidToken",
    "NotFound",
    "OAuthError",
    "PoolError",
    "PoolExhausted",
    "Problem",
    "TokenError",
]


class AuthError(Exception):
    """Base class of every error this package raises on purpose."""


class OAuthError(AuthError):
    """RFC 6749 §5.2 error response (also §4.1.2.1 codes for the authorization endpoint)."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class TokenError(AuthError):
    """A bearer token that must be refused (RFC 6750 §3.1)."""

    error = "invalid_token"
    status = 401

    def __init__(self, reason: str, *, scope: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.scope = scope

    def www_authenticate(self, realm: str = "webims") -> str:
        """``WWW-Authenticate: Bearer ...`` value (RFC 6750 §3)."""
        desc = self.reason.replace("\\", "\\\\").replace('"', "'")
        value = f'Bearer realm="{realm}", error="{self.error}", error_description="{desc}"'
        if self.scope:
            value += f', scope="{self.scope}"'
        return value


class InvalidToken(TokenError):
    """Expired, revoked, malformed, wrong signature/issuer/audience/type... (401)."""

    error = "invalid_token"
    status = 401


class InsufficientScope(TokenError):
    """Valid token without the scope the request needs (403, RFC 6750 §3.1)."""

    error = "insufficient_scope"
    status = 403


class PoolError(AuthError):
    """A pool operation that cannot be done (unknown pool, bad pattern...)."""


class PoolExhausted(PoolError):
    """Every IMPU of the pool is allocated to another WIC."""

    def __init__(self, pool: str, size: int) -> None:
        super().__init__(f"pool {pool!r} has no free IMS identity (all {size} allocated); try again later")
        self.pool = pool
        self.size = size


class NotFound(AuthError):
    """Unknown user, client, pool or allocation."""


class Conflict(AuthError):
    """The object exists already, or is in use."""


class Problem(AuthError):
    """RFC 9457 problem details."""

    def __init__(self, status: int, title: str, detail: str, *, type_: str = "about:blank") -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_

    def body(self) -> bytes:
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        doc["detail"] = self.detail
        return json.dumps(doc).encode()
