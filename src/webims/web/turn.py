"""Short-lived TURN credentials (the "TURN REST API" of coturn's ``use-auth-secret``).

The client script server and the TURN server share a secret; the WWSF hands each
WIC a username ``<expiry>:<user>`` (expiry in seconds since the epoch) and the
password ``base64(HMAC-SHA1(secret, username))``.  The TURN server recomputes the
password from the username (RFC 8489 §9.2 long-term credentials) and refuses it
after the expiry.  Nothing is stored on either side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

__all__ = ["TurnCredentials", "turn_credentials"]


@dataclass(frozen=True)
class TurnCredentials:
    username: str
    credential: str
    expires_at: int


def turn_credentials(secret: str, user: str, *, now: float, ttl: int) -> TurnCredentials:
    """Credentials valid until ``now + ttl`` for ``user`` (which must not contain ':')."""
    if ":" in user:
        raise ValueError("the TURN user id must not contain ':' (it separates the expiry)")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    expires_at = int(now) + ttl
    username = f"{expires_at}:{user}" if user else str(expires_at)
    mac = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return TurnCredentials(username, base64.b64encode(mac).decode("ascii"), expires_at)
