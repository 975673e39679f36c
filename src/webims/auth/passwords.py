"""Password hashing: argon2id (RFC 9106) via argon2-cffi, in PHC string format.

The parameters travel inside each hash, so changing them only affects new hashes;
:meth:`PasswordHasher.needs_rehash` tells when a stored hash should be upgraded at
the next successful login. Verification costs tens of milliseconds by design: the
HTTP server runs it on a worker thread, never on the event loop.
"""

from __future__ import annotations

import contextlib

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["PasswordHasher"]

# A valid hash of a random password: verifying against it for unknown users keeps
# the timing of "no such user" and "wrong password" alike.
_DUMMY_PASSWORD = "webims-dummy-password-for-timing"


class PasswordHasher:
    """argon2id hasher; ``memory_kib`` / ``time_cost`` / ``parallelism`` per RFC 9106 §4."""

    def __init__(self, *, time_cost: int = 2, memory_kib: int = 19_456, parallelism: int = 1) -> None:
        # Defaults: OWASP's argon2id minimum (19 MiB, t=2, p=1).
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=argon2.Type.ID
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        if not password:
            raise ValueError("empty password")
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True if ``password`` matches ``stored``; ``stored=None`` burns the same time, False."""
        if stored is None:
            if self._dummy is None:
                self._dummy = self._hasher.hash(_DUMMY_PASSWORD)
            stored, password = self._dummy, password + "\x00"
            with contextlib.suppress(VerificationError, InvalidHashError):
                self._hasher.verify(stored, password)
            return False
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True
