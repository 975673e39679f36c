"""webims.media: the media interworking function (seed 004 §6.X.2.3, §6.1.3).

The API (:mod:`.api`) and its backends: the embedded one (:mod:`.embedded`,
in-process: aioice, DTLS-SRTP, PyAV) and rtpengine (:mod:`.rtpengine`).
Names are exported lazily (PEP 562) so that importing a light module such as
:mod:`.turn` does not load the whole media stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from webims.lazy import lazy_exports

if TYPE_CHECKING:
    from .api import (
        LegSide,
        LegStats,
        MediaError,
        MediaEvent,
        MediaEventKind,
        MediaIWF,
        MediaSession,
        estimate_mos,
    )
    from .embedded import EmbeddedConfig, EmbeddedMediaIWF, EmbeddedSession
    from .rtpengine import CodecPolicy, RtpengineIWF, RtpengineSession
    from .turn import TurnCredentials, turn_credentials, turn_password

_EXPORTS = {
    **dict.fromkeys(
        ("LegSide", "LegStats", "MediaError", "MediaEvent", "MediaEventKind", "MediaIWF", "MediaSession",
         "estimate_mos"), ".api"),
    **dict.fromkeys(("EmbeddedConfig", "EmbeddedMediaIWF", "EmbeddedSession"), ".embedded"),
    **dict.fromkeys(("CodecPolicy", "RtpengineIWF", "RtpengineSession"), ".rtpengine"),
    **dict.fromkeys(("TurnCredentials", "turn_credentials", "turn_password"), ".turn"),
}  # fmt: skip
__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "CodecPolicy",
    "EmbeddedConfig",
    "EmbeddedMediaIWF",
    "EmbeddedSession",
    "LegSide",
    "LegStats",
    "MediaError",
    "MediaEvent",
    "MediaEventKind",
    "MediaIWF",
    "MediaSession",
    "RtpengineIWF",
    "RtpengineSession",
    "TurnCredentials",
    "estimate_mos",
    "turn_credentials",
    "turn_password",
]
