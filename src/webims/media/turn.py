"""Short-lived TURN credentials for WICs: the TURN REST API shared-secret scheme.

As coturn's ``use-auth-secret`` / ``static-auth-secret`` checks them
(draft-uberti-behave-turn-rest-00 §2.2): the username is
``<expiry Unix timestamp>:<user>`` and the password is
``base64(HMAC-SHA1(secret, username))``.  The TURN server accepts the
credential until the timestamp passes; the WWSF hands them to the WIC with its
ICE server list (RTCIceServer ``urls``/``username``/``credential``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["TurnCredentials", "turn_credentials", "turn_password"]


@dataclass(frozen=True)
class TurnCredentials:
    username: str
    password: str
    expires: int
    urls: tuple[str, ...] = field(default=())

    def ice_server(self) -> dict[str, object]:
        """The WebRTC ``RTCIceServer`` dictionary (W3C webrtc-pc §4.2.4)."""
        return {"urls": list(self.urls), "username": self.username, "credential": self.password}


def turn_password(secret: str | bytes, username: str) -> str:
    """``base64(HMAC-SHA1(secret, username))`` (coturn ``--use-auth-secret``)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, username.encode(), hashlib.sha1).digest()).decode("ascii")


def turn_credentials(
    secret: str | bytes, user: str, now: float, ttl: int = 86400, urls: Sequence[str] = ()
) -> TurnCredentials:
    """Credentials for ``user`` valid ``ttl`` seconds from ``now`` (Unix time)."""
    if ttl <= 0:
        raise ValueError("TURN credential lifetime must be positive")
    expires = int(now) + ttl
    username = f"{expires}:{user}" if user else str(expires)
    return TurnCredentials(username, turn_password(secret, username), expires, tuple(urls))
