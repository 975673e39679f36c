"""Short-lived TURN credentials for the WIC (the "TURN REST API" of coturn's ``use-auth-secret``).

The client script server and the TURN server share a secret; the WWSF hands each
WIC a username ``<expiry>:<user>`` (expiry in seconds since the epoch) and the
password ``base64(HMAC-SHA1(secret, username))``.  The TURN server recomputes the
password from the username (RFC 8489 §9.2 long-term credentials) and refuses it
after the expiry.  Nothing is stored on either side.  The scheme is
:mod:`webims.media.turn`'s; the WWSF adds its rule on user ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from webims.media.turn import TurnCredentials
from webims.media.turn import turn_credentials as _turn_credentials

__all__ = ["TurnCredentials", "turn_credentials"]


def turn_credentials(
    secret: str, user: str, *, now: float, ttl: int, urls: Sequence[str] = ()
) -> TurnCredentials:
    """Credentials valid until ``now + ttl`` for ``user`` (which must not contain ':')."""
    if ":" in user:
        raise ValueError("the TURN user id must not contain ':' (it separates the expiry)")
    return _turn_credentials(secret, user, now, ttl, urls)
