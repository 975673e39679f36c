"""webims.sdp: a sans-IO SDP library (RFC 8866) with the WebRTC <-> IMS transforms.

Parse with :func:`parse` (raises :class:`SdpError` only), read and change a
:class:`SessionDescription` through its typed properties, serialize with
:meth:`SessionDescription.to_bytes` (byte-exact for what was not changed).
:func:`create_answer` builds RFC 3264 answers, :func:`can_share_media` tells
whether two endpoints need a media interworking function, and
:func:`webrtc_to_ims` / :func:`ims_to_webrtc` rewrite descriptions for the IWF.
"""

from .errors import SdpError, SdpStatus
from .ice import Candidate, IceCredentials, parse_ice_options, parse_ice_pwd, parse_ice_ufrag
from .interwork import IMS_PROTO, WEBRTC_PROTO, IceEndpoint, RtpEndpoint, ims_to_webrtc, webrtc_to_ims
from .lines import Attribute, Bandwidth, Connection, Line, MediaLine, Origin, Timing, is_rtp_proto
from .match import (
    amr_mode_set,
    answer_codec,
    assign_payload_types,
    codecs_compatible,
    common_codecs,
    fmtp_compatible,
    intersect_codecs,
    limit_codecs,
    same_encoding,
)
from .model import DIRECTIONS, Direction, MediaDescription, Section, SessionDescription
from .offer_answer import (
    Compatibility,
    MediaAnswer,
    StreamCompatibility,
    answer_direction,
    can_share_media,
    create_answer,
    media_compatibility,
    profile_family,
    rejected_media,
    reverse_direction,
)
from .parser import DEFAULT_LIMITS, SdpLimits, parse
from .qos import Precondition, covers, preconditions_met, qos_answer, qos_offer, with_current
from .rtp import (
    AMR,
    AMR_WB,
    AMR_WB_OCTET_ALIGNED,
    G722,
    OPUS,
    PCMA,
    PCMU,
    STATIC_PAYLOAD_TYPES,
    TELEPHONE_EVENT_8000,
    TELEPHONE_EVENT_16000,
    TELEPHONE_EVENT_48000,
    Codec,
    Fmtp,
    RtcpFb,
    Rtpmap,
    parse_fmtp_parameters,
)
from .security import Crypto, Fingerprint, Setup, answer_setup, parse_setup
from .streams import Extmap, Group, Msid, Rtcp, Ssrc, SsrcGroup

__all__ = [
    "AMR",
    "AMR_WB",
    "AMR_WB_OCTET_ALIGNED",
    "DEFAULT_LIMITS",
    "DIRECTIONS",
    "G722",
    "IMS_PROTO",
    "OPUS",
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT_8000",
    "TELEPHONE_EVENT_16000",
    "TELEPHONE_EVENT_48000",
    "WEBRTC_PROTO",
    "Attribute",
    "Bandwidth",
    "Candidate",
    "Codec",
    "Compatibility",
    "Connection",
    "Crypto",
    "Direction",
    "Extmap",
    "Fingerprint",
    "Fmtp",
    "Group",
    "IceCredentials",
    "IceEndpoint",
    "Line",
    "MediaAnswer",
    "MediaDescription",
    "MediaLine",
    "Msid",
    "Origin",
    "Precondition",
    "Rtcp",
    "RtcpFb",
    "RtpEndpoint",
    "Rtpmap",
    "SdpError",
    "SdpLimits",
    "SdpStatus",
    "Section",
    "SessionDescription",
    "Setup",
    "Ssrc",
    "SsrcGroup",
    "StreamCompatibility",
    "Timing",
    "amr_mode_set",
    "answer_codec",
    "answer_direction",
    "answer_setup",
    "assign_payload_types",
    "can_share_media",
    "codecs_compatible",
    "common_codecs",
    "covers",
    "create_answer",
    "fmtp_compatible",
    "ims_to_webrtc",
    "intersect_codecs",
    "is_rtp_proto",
    "limit_codecs",
    "media_compatibility",
    "parse",
    "parse_fmtp_parameters",
    "parse_ice_options",
    "parse_ice_pwd",
    "parse_ice_ufrag",
    "parse_setup",
    "preconditions_met",
    "profile_family",
    "qos_answer",
    "qos_offer",
    "rejected_media",
    "reverse_direction",
    "same_encoding",
    "webrtc_to_ims",
    "with_current",
]
