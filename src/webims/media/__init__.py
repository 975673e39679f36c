"""webims.media: the media interworking function (seed 004 §6.X.2.3, §6.1.3).

The API (:mod:`.api`) and its backends: the embedded one (:mod:`.embedded`,
in-process: aioice, DTLS-SRTP, PyAV) and rtpengine (:mod:`.rtpengine`).
"""

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
