"""Command Code Formats (CCF) and Grouped AVP formats as occurrence rules.

Base protocol: RFC 6733 §5.3.1-2 (CER/CEA), §5.5.1-2 (DWR/DWA), §5.4.1-2 (DPR/DPA),
§6.7.2 (Proxy-Info), §6.11 (Vendor-Specific-Application-Id), §7.5 (Failed-AVP),
§7.6 (Experimental-Result). Cx: TS 29.228 §6 (procedures) and TS 29.229 §6.1.1-6.1.12
(UAR..PPA) and §6.3 (Grouped AVPs), cross-checked with the Erlang/OTP and go-diameter Cx
dictionaries. Every CCF here ends with ``*[ AVP ]``: other AVPs are allowed unless they
carry the M bit and are unknown (RFC 6733 §4.1).

Fixed positions (``< Session-Id >`` first) are not enforced: no peer we know of gets
them wrong and rejecting on order would only hurt interoperability.
"""

from __future__ import annotations

from dataclasses import dataclass

from .constants import COMMON_APPLICATION_ID, CX_APPLICATION_ID, CommandCode

#: Unbounded maximum (the ``*`` of RFC 6733 §3.2 ABNF).
MANY = -1


@dataclass(frozen=True, slots=True)
class Rule:
    """``name`` occurs between ``min`` and ``max`` times (``max == MANY``: no limit)."""

    name: str
    min: int
    max: int


def one(name: str) -> Rule:
    """``{ name }``: exactly once."""
    return Rule(name, 1, 1)


def opt(name: str) -> Rule:
    """``[ name ]``: at most once."""
    return Rule(name, 0, 1)


def some(name: str) -> Rule:
    """``*[ name ]``: any number."""
    return Rule(name, 0, MANY)


def many(name: str) -> Rule:
    """``1*{ name }``: at least once."""
    return Rule(name, 1, MANY)


@dataclass(frozen=True, slots=True)
class CommandDef:
    code: int
    application_id: int
    request_name: str
    answer_name: str
    proxiable: bool
    request: tuple[Rule, ...]
    answer: tuple[Rule, ...]


_CE_COMMON = (
    one("Origin-Host"),
    one("Origin-Realm"),
    many("Host-IP-Address"),
    one("Vendor-Id"),
    one("Product-Name"),
    opt("Origin-State-Id"),
    some("Supported-Vendor-Id"),
    some("Auth-Application-Id"),
    some("Inband-Security-Id"),
    some("Acct-Application-Id"),
    some("Vendor-Specific-Application-Id"),
    opt("Firmware-Revision"),
)
_ANSWER_ERRORS = (opt("Error-Message"), opt("Failed-AVP"))

_CX_REQUEST = (
    one("Session-Id"),
    one("Vendor-Specific-Application-Id"),
    one("Auth-Session-State"),
    one("Origin-Host"),
    one("Origin-Realm"),
    opt("Destination-Host"),
    one("Destination-Realm"),
    some("Supported-Features"),
    some("Proxy-Info"),
    some("Route-Record"),
)
_CX_ANSWER = (
    one("Session-Id"),
    one("Vendor-Specific-Application-Id"),
    opt("Result-Code"),
    opt("Experimental-Result"),
    one("Auth-Session-State"),
    one("Origin-Host"),
    one("Origin-Realm"),
    some("Supported-Features"),
    opt("Failed-AVP"),
    some("Proxy-Info"),
    some("Route-Record"),
)


def _cx(
    code: CommandCode, req: str, ans: str, request: tuple[Rule, ...], answer: tuple[Rule, ...]
) -> CommandDef:
    return CommandDef(code, CX_APPLICATION_ID, req, ans, True, _CX_REQUEST + request, _CX_ANSWER + answer)


def _with(rules: tuple[Rule, ...], **changes: Rule) -> tuple[Rule, ...]:
    return tuple(changes.get(r.name.replace("-", "_"), r) for r in rules)


COMMAND_DEFS: tuple[CommandDef, ...] = (
    CommandDef(
        CommandCode.CAPABILITIES_EXCHANGE,
        COMMON_APPLICATION_ID,
        "CER",
        "CEA",
        False,
        _CE_COMMON,
        (one("Result-Code"), *_CE_COMMON, *_ANSWER_ERRORS),
    ),
    CommandDef(
        CommandCode.DEVICE_WATCHDOG,
        COMMON_APPLICATION_ID,
        "DWR",
        "DWA",
        False,
        (one("Origin-Host"), one("Origin-Realm"), opt("Origin-State-Id")),
        (
            one("Result-Code"),
            one("Origin-Host"),
            one("Origin-Realm"),
            *_ANSWER_ERRORS,
            opt("Origin-State-Id"),
        ),
    ),
    CommandDef(
        CommandCode.DISCONNECT_PEER,
        COMMON_APPLICATION_ID,
        "DPR",
        "DPA",
        False,
        (one("Origin-Host"), one("Origin-Realm"), one("Disconnect-Cause")),
        (one("Result-Code"), one("Origin-Host"), one("Origin-Realm"), *_ANSWER_ERRORS),
    ),
    # TS 29.229 §6.1.1-6.1.2
    _cx(
        CommandCode.USER_AUTHORIZATION,
        "UAR",
        "UAA",
        (
            one("User-Name"),
            one("Public-Identity"),
            one("Visited-Network-Identifier"),
            opt("User-Authorization-Type"),
            opt("UAR-Flags"),
        ),
        (opt("Server-Name"), opt("Server-Capabilities")),
    ),
    # TS 29.229 §6.1.3-6.1.4
    _cx(
        CommandCode.SERVER_ASSIGNMENT,
        "SAR",
        "SAA",
        (
            opt("User-Name"),
            some("Public-Identity"),
            opt("Wildcarded-Public-Identity"),
            one("Server-Name"),
            one("Server-Assignment-Type"),
            one("User-Data-Already-Available"),
            opt("SCSCF-Restoration-Info"),
            opt("Multiple-Registration-Indication"),
            opt("Session-Priority"),
            opt("SAR-Flags"),
        ),
        (
            opt("User-Name"),
            opt("User-Data"),
            opt("Charging-Information"),
            opt("Associated-Identities"),
            opt("Loose-Route-Indication"),
            some("SCSCF-Restoration-Info"),
            opt("Associated-Registered-Identities"),
            opt("Server-Name"),
            opt("Wildcarded-Public-Identity"),
            opt("Priviledged-Sender-Indication"),
            opt("Allowed-WAF-WWSF-Identities"),
        ),
    ),
    # TS 29.229 §6.1.5-6.1.6
    _cx(
        CommandCode.LOCATION_INFO,
        "LIR",
        "LIA",
        (
            opt("Originating-Request"),
            one("Public-Identity"),
            opt("User-Authorization-Type"),
            opt("Session-Priority"),
        ),
        (opt("Server-Name"), opt("Server-Capabilities"), opt("Wildcarded-Public-Identity"), opt("LIA-Flags")),
    ),
    # TS 29.229 §6.1.7-6.1.8
    _cx(
        CommandCode.MULTIMEDIA_AUTH,
        "MAR",
        "MAA",
        (
            one("User-Name"),
            one("Public-Identity"),
            one("SIP-Auth-Data-Item"),
            one("SIP-Number-Auth-Items"),
            one("Server-Name"),
        ),
        (opt("User-Name"), opt("Public-Identity"), opt("SIP-Number-Auth-Items"), some("SIP-Auth-Data-Item")),
    ),
    # TS 29.229 §6.1.9-6.1.10: Destination-Host is mandatory in RTR (HSS -> S-CSCF).
    CommandDef(
        CommandCode.REGISTRATION_TERMINATION,
        CX_APPLICATION_ID,
        "RTR",
        "RTA",
        True,
        (
            *_with(_CX_REQUEST, Destination_Host=one("Destination-Host")),
            one("User-Name"),
            opt("Associated-Identities"),
            some("Public-Identity"),
            one("Deregistration-Reason"),
            opt("RTR-Flags"),
        ),
        (*_CX_ANSWER, opt("Associated-Identities"), some("Identity-with-Emergency-Registration")),
    ),
    # TS 29.229 §6.1.11-6.1.12
    CommandDef(
        CommandCode.PUSH_PROFILE,
        CX_APPLICATION_ID,
        "PPR",
        "PPA",
        True,
        (
            *_with(_CX_REQUEST, Destination_Host=one("Destination-Host")),
            one("User-Name"),
            opt("User-Data"),
            opt("Charging-Information"),
            opt("SIP-Auth-Data-Item"),
            opt("Allowed-WAF-WWSF-Identities"),
        ),
        _CX_ANSWER,
    ),
)

COMMANDS: dict[tuple[int, int], CommandDef] = {(c.code, c.application_id): c for c in COMMAND_DEFS}

#: Grouped AVP formats, by AVP name (Failed-AVP is deliberately absent: its content is
#: whatever failed and is not validated, RFC 6733 §7.5).
GROUPED_RULES: dict[str, tuple[Rule, ...]] = {
    "Vendor-Specific-Application-Id": (
        one("Vendor-Id"),
        opt("Auth-Application-Id"),
        opt("Acct-Application-Id"),
    ),
    "Experimental-Result": (one("Vendor-Id"), one("Experimental-Result-Code")),
    "Proxy-Info": (one("Proxy-Host"), one("Proxy-State")),
    "Server-Capabilities": (some("Mandatory-Capability"), some("Optional-Capability"), some("Server-Name")),
    "SIP-Auth-Data-Item": (
        opt("SIP-Item-Number"),
        opt("SIP-Authentication-Scheme"),
        opt("SIP-Authenticate"),
        opt("SIP-Authorization"),
        opt("SIP-Authentication-Context"),
        opt("Confidentiality-Key"),
        opt("Integrity-Key"),
        opt("SIP-Digest-Authenticate"),
        opt("Framed-IP-Address"),
        opt("Framed-IPv6-Prefix"),
        opt("Framed-Interface-Id"),
        some("ETSI-Line-Identifier"),
    ),
    "SIP-Digest-Authenticate": (
        one("Digest-Realm"),
        opt("Digest-Algorithm"),
        one("Digest-QoP"),
        one("Digest-HA1"),
    ),
    "Deregistration-Reason": (one("Reason-Code"), opt("Reason-Info")),
    "Charging-Information": (
        opt("Primary-Event-Charging-Function-Name"),
        opt("Secondary-Event-Charging-Function-Name"),
        opt("Primary-Charging-Collection-Function-Name"),
        opt("Secondary-Charging-Collection-Function-Name"),
    ),
    "Supported-Features": (one("Vendor-Id"), one("Feature-List-ID"), one("Feature-List")),
    "Supported-Applications": (
        some("Auth-Application-Id"),
        some("Acct-Application-Id"),
        some("Vendor-Specific-Application-Id"),
    ),
    "Associated-Identities": (some("User-Name"),),
    "Associated-Registered-Identities": (some("User-Name"),),
    "SCSCF-Restoration-Info": (one("User-Name"), many("Restoration-Info"), opt("SIP-Authentication-Scheme")),
    "Restoration-Info": (
        one("Path"),
        one("Contact"),
        opt("Initial-CSeq-Sequence-Number"),
        opt("Call-ID-SIP-Header"),
        opt("Subscription-Info"),
    ),
    "Subscription-Info": (
        one("Call-ID-SIP-Header"),
        one("From-SIP-Header"),
        one("To-SIP-Header"),
        one("Record-Route"),
        one("Contact"),
    ),
    "Identity-with-Emergency-Registration": (one("User-Name"), one("Public-Identity")),
    "Allowed-WAF-WWSF-Identities": (
        some("WebRTC-Authentication-Function-Name"),
        some("WebRTC-Web-Server-Function-Name"),
    ),
}


def command_def(code: int, application_id: int) -> CommandDef | None:
    return COMMANDS.get((code, application_id))
