"""Session timers (RFC 4028), sans-IO: negotiation and one timer per dialog.

The gateway is a B2BUA, so each leg of a call (WIC side, IMS side) negotiates its
own session interval and refresher. :func:`uac_headers` writes what a UAC asks
(§7.1), :func:`uas_negotiate` is the UAS's decision on a session refresh request
(§9: 422 with ``Min-SE`` when the interval is too small, the refresher choice,
``Require: timer`` when the UAC must refresh), :func:`uac_result` reads a 2xx
(§7.2). :class:`SessionTimer` then says when to refresh (half the interval, §10)
or, when the peer refreshes, when the session has expired (the interval minus
``min(32, interval / 3)``, §10) — time is an argument (``now``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from webims.sip import Request, Response

__all__ = [
    "ABSOLUTE_MIN_SE",
    "Negotiation",
    "SessionTimer",
    "min_se_of",
    "parse_session_expires",
    "uac_headers",
    "uac_result",
    "uas_negotiate",
]

Refresher = Literal["uac", "uas"]
#: RFC 4028 §4: Min-SE is never below 90 seconds on the wire in a real deployment.
ABSOLUTE_MIN_SE = 90


def parse_session_expires(value: str | None) -> tuple[int, Refresher | None] | None:
    """``Session-Expires: 1800;refresher=uac`` -> (1800, "uac"); None when absent or bad (§4)."""
    if not value:
        return None
    delta, *params = (p.strip() for p in value.split(";"))
    if not delta.isdigit():
        return None
    refresher: Refresher | None = None
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher":
            v = val.strip().lower()
            if v == "uac":
                refresher = "uac"
            elif v == "uas":
                refresher = "uas"
    return int(delta), refresher


def session_expires_of(message: Request | Response) -> tuple[int, Refresher | None] | None:
    return parse_session_expires(
        message.headers.get("Session-Expires") or message.headers.get("x")  # x: compact form (§4)
    )


def min_se_of(message: Request | Response) -> int | None:
    value = (message.headers.get("Min-SE") or "").split(";")[0].strip()
    return int(value) if value.isdigit() else None


def uac_headers(interval: int, min_se: int, *, refresher: Refresher | None = "uac") -> list[tuple[str, str]]:
    """What a UAC sends in an INVITE/UPDATE that is a session refresh (§7.1, §7.4)."""
    se = f"{interval};refresher={refresher}" if refresher else str(interval)
    return [("Session-Expires", se), ("Min-SE", str(min_se))]


@dataclass(frozen=True, slots=True)
class Negotiation:
    """The UAS's decision on a session refresh request (§9)."""

    status: int  # 200: go on; 422: Session Interval Too Small
    interval: int = 0  # 0: no session timer
    refresher: Refresher | None = None
    min_se: int = 0

    def response_headers(self, *, uac_supports: bool) -> list[tuple[str, str]]:
        """Headers for the 2xx (or the 422's ``Min-SE``)."""
        if self.status == 422:
            return [("Min-SE", str(self.min_se))]
        if not self.interval:
            return []
        out = [("Session-Expires", f"{self.interval};refresher={self.refresher}")]
        if self.refresher == "uac" and uac_supports:
            out.append(("Require", "timer"))  # §9: the UAC must refresh
        return out


def uas_negotiate(
    request: Request, *, min_se: int, default: int, prefer_uac_refresher: bool = True
) -> Negotiation:
    """The UAS side of §9 for an INVITE or UPDATE (initial or refresh).

    ``min_se``: the smallest interval we accept (a smaller ``Session-Expires``
    gets 422); ``default``: the interval we ask for when the UAC names none but
    supports timers. A UAC without ``timer`` support never refreshes.
    """
    supports = "timer" in request.option_tags("supported") or "timer" in request.option_tags("require")
    asked = session_expires_of(request)
    their_min = min_se_of(request) or 0
    if asked is None:
        if not default:
            return Negotiation(200)
        interval = max(default, min_se, their_min)
        return Negotiation(200, interval, "uac" if supports and prefer_uac_refresher else "uas", min_se)
    interval, refresher = asked
    if interval < min_se:
        return Negotiation(422, min_se=min_se)
    if refresher is None:
        refresher = "uac" if supports and prefer_uac_refresher else "uas"
    if not supports:
        refresher = "uas"
    return Negotiation(200, interval, refresher, max(min_se, their_min))


def uac_result(response: Response) -> tuple[int, Refresher] | None:
    """From a 2xx to our refresh request (§7.2): (interval, refresher), or None (no timer)."""
    found = session_expires_of(response)
    if found is None:
        return None
    interval, refresher = found
    return interval, refresher or "uac"


class SessionTimer:
    """One dialog's session timer: refresh at half the interval when we refresh (§10),
    else expire ``min(32, interval/3)`` before the interval ends without a refresh."""

    def __init__(self, interval: int, *, we_refresh: bool, now: float) -> None:
        self.interval = interval
        self.we_refresh = we_refresh
        self.started = now

    @classmethod
    def after_request_sent(cls, result: tuple[int, Refresher], now: float) -> SessionTimer:
        interval, refresher = result
        return cls(interval, we_refresh=refresher == "uac", now=now)

    @classmethod
    def after_request_received(cls, negotiation: Negotiation, now: float) -> SessionTimer | None:
        if negotiation.status != 200 or not negotiation.interval:
            return None
        return cls(negotiation.interval, we_refresh=negotiation.refresher == "uas", now=now)

    def get_timer(self) -> float:
        if self.we_refresh:
            return self.started + self.interval / 2
        return self.started + self.interval - min(32.0, self.interval / 3)

    def due(self, now: float) -> Literal["refresh", "expired"] | None:
        if now < self.get_timer():
            return None
        return "refresh" if self.we_refresh else "expired"
