"""Numbers of the Diameter base protocol (RFC 6733) and of Cx (TS 29.228 / TS 29.229).

Every value here was checked against at least two independent sources
(RFC 6733 §3, §4.1, §5.3, §7.1 and §8.8; TS 29.229 §6.2 and §6.3; Kamailio's
``cdp/diameter_ims_code_avp.h``; the Erlang/OTP ``diameter`` Cx dictionary).
"""

from __future__ import annotations

from enum import IntEnum

# --- RFC 6733 §3: command flags -------------------------------------------------------------
FLAG_REQUEST = 0x80
FLAG_PROXIABLE = 0x40
FLAG_ERROR = 0x20
FLAG_RETRANSMITTED = 0x10
#: The four low "r(eserved)" command flag bits: set to zero, ignored on receipt (RFC 6733 §3).
FLAGS_RESERVED = 0x0F

# --- RFC 6733 §4.1: AVP flags ---------------------------------------------------------------
AVP_FLAG_VENDOR = 0x80
AVP_FLAG_MANDATORY = 0x40
AVP_FLAG_PROTECTED = 0x20
#: Unassigned AVP flag bits; "an unrecognized bit SHOULD be considered an error" (RFC 6733 §4.1).
AVP_FLAGS_RESERVED = 0x1F

DIAMETER_VERSION = 1
HEADER_LENGTH = 20

# --- Application identifiers (RFC 6733 §2.4, TS 29.229 §7.2) ---------------------------------
COMMON_APPLICATION_ID = 0
CX_APPLICATION_ID = 16777216
RELAY_APPLICATION_ID = 0xFFFFFFFF

# --- Vendor identifiers (IANA "SMI Network Management Private Enterprise Codes") -------------
VENDOR_3GPP = 10415
VENDOR_ETSI = 13019


class CommandCode(IntEnum):
    """Command codes: RFC 6733 §3.1 and TS 29.229 §6.1 (Table 6.1.1)."""

    CAPABILITIES_EXCHANGE = 257
    DEVICE_WATCHDOG = 280
    DISCONNECT_PEER = 282
    USER_AUTHORIZATION = 300
    SERVER_ASSIGNMENT = 301
    LOCATION_INFO = 302
    MULTIMEDIA_AUTH = 303
    REGISTRATION_TERMINATION = 304
    PUSH_PROFILE = 305


class ResultCode(IntEnum):
    """Result-Code AVP values of the base protocol, RFC 6733 §7.1."""

    DIAMETER_MULTI_ROUND_AUTH = 1001
    DIAMETER_SUCCESS = 2001
    DIAMETER_LIMITED_SUCCESS = 2002
    # §7.1.3 protocol errors: answered with the 'E' bit set.
    DIAMETER_COMMAND_UNSUPPORTED = 3001
    DIAMETER_UNABLE_TO_DELIVER = 3002
    DIAMETER_REALM_NOT_SERVED = 3003
    DIAMETER_TOO_BUSY = 3004
    DIAMETER_LOOP_DETECTED = 3005
    DIAMETER_REDIRECT_INDICATION = 3006
    DIAMETER_APPLICATION_UNSUPPORTED = 3007
    DIAMETER_INVALID_HDR_BITS = 3008
    DIAMETER_INVALID_AVP_BITS = 3009
    DIAMETER_UNKNOWN_PEER = 3010
    # §7.1.4 transient failures.
    DIAMETER_AUTHENTICATION_REJECTED = 4001
    DIAMETER_OUT_OF_SPACE = 4002
    ELECTION_LOST = 4003
    # §7.1.5 permanent failures.
    DIAMETER_AVP_UNSUPPORTED = 5001
    DIAMETER_UNKNOWN_SESSION_ID = 5002
    DIAMETER_AUTHORIZATION_REJECTED = 5003
    DIAMETER_INVALID_AVP_VALUE = 5004
    DIAMETER_MISSING_AVP = 5005
    DIAMETER_RESOURCES_EXCEEDED = 5006
    DIAMETER_CONTRADICTING_AVPS = 5007
    DIAMETER_AVP_NOT_ALLOWED = 5008
    DIAMETER_AVP_OCCURS_TOO_MANY_TIMES = 5009
    DIAMETER_NO_COMMON_APPLICATION = 5010
    DIAMETER_UNSUPPORTED_VERSION = 5011
    DIAMETER_UNABLE_TO_COMPLY = 5012
    DIAMETER_INVALID_BIT_IN_HEADER = 5013
    DIAMETER_INVALID_AVP_LENGTH = 5014
    DIAMETER_INVALID_MESSAGE_LENGTH = 5015
    DIAMETER_INVALID_AVP_BIT_COMBO = 5016
    DIAMETER_NO_COMMON_SECURITY = 5017


class ExperimentalResultCode(IntEnum):
    """Cx Experimental-Result-Code values (Vendor-Id 10415), TS 29.229 §6.2.

    They overlap numerically with :class:`ResultCode` (2001, 5001...), which is why
    they travel inside Experimental-Result with Vendor-Id 10415, never in Result-Code.
    """

    DIAMETER_FIRST_REGISTRATION = 2001
    DIAMETER_SUBSEQUENT_REGISTRATION = 2002
    DIAMETER_UNREGISTERED_SERVICE = 2003
    DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED = 2004
    DIAMETER_ERROR_USER_UNKNOWN = 5001
    DIAMETER_ERROR_IDENTITIES_DONT_MATCH = 5002
    DIAMETER_ERROR_IDENTITY_NOT_REGISTERED = 5003
    DIAMETER_ERROR_ROAMING_NOT_ALLOWED = 5004
    DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED = 5005
    DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED = 5006
    DIAMETER_ERROR_IN_ASSIGNMENT_TYPE = 5007
    DIAMETER_ERROR_TOO_MUCH_DATA = 5008
    DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA = 5009
    DIAMETER_ERROR_FEATURE_UNSUPPORTED = 5011
    DIAMETER_ERROR_SERVING_NODE_FEATURE_UNSUPPORTED = 5012


# --- Enumerated AVP values --------------------------------------------------------------------


class DisconnectCause(IntEnum):
    """Disconnect-Cause, RFC 6733 §5.4.3."""

    REBOOTING = 0
    BUSY = 1
    DO_NOT_WANT_TO_TALK_TO_YOU = 2


class AuthSessionState(IntEnum):
    """Auth-Session-State, RFC 6733 §8.11 (Cx always uses NO_STATE_MAINTAINED)."""

    STATE_MAINTAINED = 0
    NO_STATE_MAINTAINED = 1


class ServerAssignmentType(IntEnum):
    """Server-Assignment-Type, TS 29.229 §6.3."""

    NO_ASSIGNMENT = 0
    REGISTRATION = 1
    RE_REGISTRATION = 2
    UNREGISTERED_USER = 3
    TIMEOUT_DEREGISTRATION = 4
    USER_DEREGISTRATION = 5
    TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME = 6
    USER_DEREGISTRATION_STORE_SERVER_NAME = 7
    ADMINISTRATIVE_DEREGISTRATION = 8
    AUTHENTICATION_FAILURE = 9
    AUTHENTICATION_TIMEOUT = 10
    DEREGISTRATION_TOO_MUCH_DATA = 11
    AAA_USER_DATA_REQUEST = 12
    PGW_UPDATE = 13
    RESTORATION = 14


class UserAuthorizationType(IntEnum):
    """User-Authorization-Type, TS 29.229 §6.3."""

    REGISTRATION = 0
    DE_REGISTRATION = 1
    REGISTRATION_AND_CAPABILITIES = 2


class UserDataAlreadyAvailable(IntEnum):
    """User-Data-Already-Available, TS 29.229 §6.3."""

    USER_DATA_NOT_AVAILABLE = 0
    USER_DATA_ALREADY_AVAILABLE = 1


class ReasonCode(IntEnum):
    """Reason-Code inside Deregistration-Reason, TS 29.229 §6.3."""

    PERMANENT_TERMINATION = 0
    NEW_SERVER_ASSIGNED = 1
    SERVER_CHANGE = 2
    REMOVE_S_CSCF = 3


class OriginatingRequest(IntEnum):
    """Originating-Request, TS 29.229 §6.3."""

    ORIGINATING = 0


class LooseRouteIndication(IntEnum):
    """Loose-Route-Indication, TS 29.229 §6.3."""

    LOOSE_ROUTE_NOT_REQUIRED = 0
    LOOSE_ROUTE_REQUIRED = 1


class MultipleRegistrationIndication(IntEnum):
    """Multiple-Registration-Indication, TS 29.229 §6.3."""

    NOT_MULTIPLE_REGISTRATION = 0
    MULTIPLE_REGISTRATION = 1


class SessionPriority(IntEnum):
    """Session-Priority, TS 29.229 §6.3 (PRIORITY-0 is the highest)."""

    PRIORITY_0 = 0
    PRIORITY_1 = 1
    PRIORITY_2 = 2
    PRIORITY_3 = 3
    PRIORITY_4 = 4


class PriviledgedSenderIndication(IntEnum):
    """Priviledged-Sender-Indication (3GPP spelling), TS 29.229 §6.3."""

    NOT_PRIVILEDGED_SENDER = 0
    PRIVILEDGED_SENDER = 1


# --- Bit masks of the Unsigned32 flag AVPs ------------------------------------------------------
#: UAR-Flags bit 0, TS 29.229 §6.3.
UAR_FLAG_EMERGENCY_REGISTRATION = 0x1
#: LIA-Flags bit 0, TS 29.229 §6.3.
LIA_FLAG_PSI_DIRECT_ROUTING = 0x1
#: SAR-Flags bit 0, TS 29.229 §6.3.
SAR_FLAG_PCSCF_RESTORATION = 0x1
