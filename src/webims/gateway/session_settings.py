"""The ``[sessions]`` config section: the gateway's session B2BUA (seed 004 §6.X.2.3).

Registered when ``webims.gateway.settings`` is imported (config discovery). Example::

    [sessions]
    media = "external"                 # "ims": pass the WebRTC SDP on, the IMS inserts its MRF
    media_backend = "embedded"         # or "rtpengine" (ng at rtpengine)
    media_address = "127.0.0.1"        # IWF: IMS-side RTP address and WebRTC host candidates
    hide_ringing = false               # true: 180 Ringing never reaches WICs
    hide_ringing_for = ["ua=LegacyPhone", "origin=https://kiosk.example"]
    hundred_rel = "supported"          # toward the IMS (NI-O): "supported", "required", "off"
    preconditions = "supported"        # RFC 3312 qos preconditions toward the IMS
    session_expires = 1800             # RFC 4028, IMS leg; the gateway refreshes
    min_se = 90

Every key can be overridden from the environment, e.g. ``WEBIMS_SESSIONS__MEDIA=ims``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Literal

from webims.config import Invalid, between, each, host_port, hostname, predicate, section, setting

__all__ = ["SessionConfig", "ringing_hidden"]


def _is_ringing_rule(value: str) -> bool:
    kind, sep, pattern = value.partition("=")
    return bool(sep and pattern) and kind.strip() in ("ua", "origin", "impu")


@section("sessions")
@dataclass(frozen=True)
class SessionConfig:
    """Sessions through the gateway: media interworking placement, NI-O/NI-T, timers."""

    enabled: bool = setting(True, doc="false: INVITE and its dialog are answered 501")
    media: Literal["ims", "external"] = setting(
        "external",
        doc="media interworking: 'ims' (the IMS's MRF; SDP passed on); 'external' (an IWF we drive)",
    )
    media_backend: Literal["embedded", "rtpengine"] = setting("embedded", doc="the external IWF")
    media_address: str = setting(
        "127.0.0.1", check=hostname(), doc="embedded IWF: IMS-side RTP address and WebRTC host candidate"
    )
    webrtc_addresses: tuple[str, ...] = setting(
        (), check=each(hostname()), doc="embedded IWF: WebRTC host candidate addresses; empty = media_address"
    )
    media_port_min: int = setting(40000, check=between(1024, 65535))
    media_port_max: int = setting(49999, check=between(1024, 65535))
    rtpengine: str = setting("127.0.0.1:2223", check=host_port(), doc="rtpengine ng control address")
    max_calls: int = setting(10_000, check=between(1, 10_000_000), doc="calls at once; more get 503")
    hide_ringing: bool = setting(False, doc="never pass 180 Ringing to WICs (seed 004 §6.X.2.3.1 step 11)")
    hide_ringing_for: tuple[str, ...] = setting(
        (), check=each(predicate("ua=SUBSTRING, origin=GLOB or impu=GLOB", _is_ringing_rule)),
        doc="WICs that do not want 180 Ringing",
    )  # fmt: skip
    hundred_rel: Literal["supported", "required", "off"] = setting(
        "supported", doc="RFC 3262 toward the IMS on the WIC's behalf (NI-O / NI-T)"
    )
    preconditions: Literal["supported", "required", "off"] = setting(
        "supported", doc="RFC 3312 qos preconditions toward the IMS on the WIC's behalf"
    )
    precondition_timeout: float = setting(
        30.0, check=between(1, 600), doc="preconditions not met by then: 580 Precondition Failure"
    )
    session_expires: int = setting(
        1800, check=between(1, 86_400), doc="RFC 4028 Session-Expires asked on the IMS leg (>= 90 there)"
    )
    min_se: int = setting(90, check=between(1, 86_400), doc="RFC 4028 Min-SE (smaller only in tests)")
    wic_session_expires: int = setting(
        0, check=between(0, 86_400), doc="Session-Expires asked of WICs we call; 0 = none"
    )
    ims_invite_timeout: float = setting(
        8.0, check=between(0.5, 120), doc="no answer at all to an INVITE by then: 503 to the WIC"
    )
    glare_retries: int = setting(3, check=between(0, 20), doc="re-INVITE/UPDATE retries after 491")

    def validate(self) -> None:
        if self.media_port_min >= self.media_port_max:
            raise Invalid("media_port_max", "must be above media_port_min")
        if self.min_se > self.session_expires:
            raise Invalid("session_expires", "must be at least min_se")

    @property
    def candidate_addresses(self) -> tuple[str, ...]:
        return self.webrtc_addresses or (self.media_address,)


def ringing_hidden(config: SessionConfig, *, user_agent: str | None, origin: str | None, impu: str) -> bool:
    """Whether a WIC does not want 180 Ringing (``hide_ringing``, ``hide_ringing_for``)."""
    if config.hide_ringing:
        return True
    for rule in config.hide_ringing_for:
        kind, _, pattern = rule.partition("=")
        kind = kind.strip()
        if kind == "ua" and user_agent and pattern in user_agent:
            return True
        if kind == "origin" and origin and fnmatch.fnmatchcase(origin, pattern):
            return True
        if kind == "impu" and fnmatch.fnmatchcase(impu, pattern):
            return True
    return False
