"""Building requests and answers, and the base protocol's own commands (RFC 6733 §5, §6.2, §7.2)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from .avp import Avp, make_avp
from .constants import (
    AVP_FLAG_MANDATORY,
    CX_APPLICATION_ID,
    FLAG_ERROR,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    VENDOR_3GPP,
    AuthSessionState,
    CommandCode,
    DisconnectCause,
    ExperimentalResultCode,
    ResultCode,
)
from .dictionary import AVP_BY_NAME
from .errors import DiameterError
from .message import Message

_PROXY_INFO = AVP_BY_NAME["Proxy-Info"].key
_SESSION_ID = AVP_BY_NAME["Session-Id"].key
#: Longest Error-Message we send (RFC 6733 §7.3 gives no limit; keep answers small).
MAX_ERROR_MESSAGE = 200


@dataclass(frozen=True, slots=True)
class Application:
    """An application we support (RFC 6733 §5.3 capabilities exchange).

    ``vendor_id`` non-zero: advertised inside Vendor-Specific-Application-Id (§6.11),
    as 3GPP applications are; zero: as a plain Auth-/Acct-Application-Id.
    """

    application_id: int
    vendor_id: int = 0
    accounting: bool = False


#: Cx as TS 29.229 §7.2 asks it to be advertised: Vendor-Id 10415, Auth-Application-Id 16777216.
CX_APPLICATION = Application(CX_APPLICATION_ID, VENDOR_3GPP)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What this node says about itself in CER/CEA (RFC 6733 §5.3.1-2)."""

    origin_host: str
    origin_realm: str
    host_ip_addresses: tuple[IPv4Address | IPv6Address, ...]
    product_name: str = "webims"
    vendor_id: int = 0
    applications: tuple[Application, ...] = (CX_APPLICATION,)
    supported_vendor_ids: tuple[int, ...] = (VENDOR_3GPP,)
    origin_state_id: int | None = None
    firmware_revision: int | None = None

    def __post_init__(self) -> None:
        if not self.host_ip_addresses:
            raise ValueError("CER/CEA need at least one Host-IP-Address (RFC 6733 §5.3.1)")


# --- generic construction --------------------------------------------------------------------


def make_request(
    command_code: int,
    application_id: int,
    avps: Iterable[Avp],
    *,
    proxiable: bool,
    hop_by_hop: int = 0,
    end_to_end: int = 0,
) -> Message:
    """A request (R bit). The peer layer stamps the identifiers when it sends it."""
    flags = FLAG_REQUEST | (FLAG_PROXIABLE if proxiable else 0)
    return Message(command_code, application_id, flags, hop_by_hop, end_to_end, tuple(avps))


def make_answer(request: Message, avps: Iterable[Avp], *, error: bool = False) -> Message:
    """An answer to ``request``: same command, application, identifiers and 'P' bit.

    Proxy-Info AVPs of the request are appended in their order (RFC 6733 §6.2 step 4).
    """
    flags = (request.flags & FLAG_PROXIABLE) | (FLAG_ERROR if error else 0)
    code, vendor = _PROXY_INFO
    proxy_info = [a for a in request.avps if a[0] == code and a[2] == vendor]
    return Message(
        request.command_code,
        request.application_id,
        flags,
        request.hop_by_hop,
        request.end_to_end,
        (*avps, *proxy_info),
    )


def result_avp(result: int) -> Avp:
    """Result-Code, or Experimental-Result (Vendor-Id 10415) for an :class:`ExperimentalResultCode`."""
    if isinstance(result, ExperimentalResultCode):
        return experimental_result_avp(result)
    return make_avp("Result-Code", int(result))


def experimental_result_avp(code: int, vendor_id: int = VENDOR_3GPP) -> Avp:
    """Experimental-Result ::= { Vendor-Id } { Experimental-Result-Code } (RFC 6733 §7.6)."""
    return make_avp(
        "Experimental-Result",
        [make_avp("Vendor-Id", vendor_id), make_avp("Experimental-Result-Code", int(code))],
    )


def vendor_specific_application_id(vendor_id: int, application_id: int, *, accounting: bool = False) -> Avp:
    """Vendor-Specific-Application-Id (RFC 6733 §6.11)."""
    app = "Acct-Application-Id" if accounting else "Auth-Application-Id"
    return make_avp(
        "Vendor-Specific-Application-Id", [make_avp("Vendor-Id", vendor_id), make_avp(app, application_id)]
    )


def origin_avps(origin_host: str, origin_realm: str) -> list[Avp]:
    return [identity_avp("Origin-Host", origin_host), identity_avp("Origin-Realm", origin_realm)]


_IDENTITY_AVPS: dict[tuple[str, str], Avp] = {}
_MAX_IDENTITY_AVPS = 1024


def identity_avp(name: str, value: str) -> Avp:
    """``make_avp(name, value)`` for the few values a node repeats in every message (its
    Origin-Host and Origin-Realm, its peers' Destination-Host and -Realm, S-CSCF names):
    built once and shared (an :class:`Avp` is immutable)."""
    key = (name, value)
    avp = _IDENTITY_AVPS.get(key)
    if avp is None:
        if len(_IDENTITY_AVPS) >= _MAX_IDENTITY_AVPS:
            _IDENTITY_AVPS.clear()
        avp = _IDENTITY_AVPS[key] = make_avp(name, value)
    return avp


def failed_avp(content: bytes) -> Avp:
    """Failed-AVP around already-encoded AVP bytes (RFC 6733 §7.5)."""
    return Avp(AVP_BY_NAME["Failed-AVP"].code, AVP_FLAG_MANDATORY, 0, content)


# --- capabilities exchange (RFC 6733 §5.3) --------------------------------------------------------


def _capability_avps(caps: Capabilities) -> list[Avp]:
    avps = [make_avp("Host-IP-Address", ip) for ip in caps.host_ip_addresses]
    avps.append(make_avp("Vendor-Id", caps.vendor_id))
    avps.append(make_avp("Product-Name", caps.product_name))
    if caps.origin_state_id is not None:
        avps.append(make_avp("Origin-State-Id", caps.origin_state_id))
    avps += [make_avp("Supported-Vendor-Id", v) for v in caps.supported_vendor_ids]
    for app in caps.applications:
        name = "Acct-Application-Id" if app.accounting else "Auth-Application-Id"
        if app.vendor_id:
            avps.append(
                vendor_specific_application_id(app.vendor_id, app.application_id, accounting=app.accounting)
            )
        else:
            avps.append(make_avp(name, app.application_id))
    if caps.firmware_revision is not None:
        avps.append(make_avp("Firmware-Revision", caps.firmware_revision))
    return avps


def build_cer(caps: Capabilities) -> Message:
    """Capabilities-Exchange-Request, RFC 6733 §5.3.1 (no 'P' bit)."""
    return make_request(
        CommandCode.CAPABILITIES_EXCHANGE,
        0,
        [*origin_avps(caps.origin_host, caps.origin_realm), *_capability_avps(caps)],
        proxiable=False,
    )


def build_cea(
    request: Message,
    caps: Capabilities,
    result: int = ResultCode.DIAMETER_SUCCESS,
    *,
    error_message: str | None = None,
    failed: bytes | None = None,
) -> Message:
    """Capabilities-Exchange-Answer, RFC 6733 §5.3.2."""
    avps = [make_avp("Result-Code", int(result)), *origin_avps(caps.origin_host, caps.origin_realm)]
    avps += _capability_avps(caps)
    if error_message:
        avps.append(make_avp("Error-Message", error_message[:MAX_ERROR_MESSAGE]))
    if failed is not None:
        avps.append(failed_avp(failed))
    return make_answer(request, avps, error=3000 <= int(result) < 4000)


def advertised_applications(message: Message) -> frozenset[int]:
    """Application ids a CER/CEA advertises (Auth-/Acct-Application-Id, also inside §6.11 groups)."""
    apps = set(message.get_all_int("Auth-Application-Id")) | set(message.get_all_int("Acct-Application-Id"))
    for g in message.get_all_group("Vendor-Specific-Application-Id"):
        apps |= set(g.get_all_int("Auth-Application-Id")) | set(g.get_all_int("Acct-Application-Id"))
    return frozenset(apps)


# --- watchdog and disconnection (RFC 6733 §5.5, §5.4) ------------------------------------------------


def build_dwr(origin_host: str, origin_realm: str, origin_state_id: int | None = None) -> Message:
    avps = origin_avps(origin_host, origin_realm)
    if origin_state_id is not None:
        avps.append(make_avp("Origin-State-Id", origin_state_id))
    return make_request(CommandCode.DEVICE_WATCHDOG, 0, avps, proxiable=False)


def build_dwa(
    request: Message,
    origin_host: str,
    origin_realm: str,
    result: int = ResultCode.DIAMETER_SUCCESS,
    origin_state_id: int | None = None,
) -> Message:
    avps = [make_avp("Result-Code", int(result)), *origin_avps(origin_host, origin_realm)]
    if origin_state_id is not None:
        avps.append(make_avp("Origin-State-Id", origin_state_id))
    return make_answer(request, avps)


def build_dpr(
    origin_host: str, origin_realm: str, cause: DisconnectCause = DisconnectCause.REBOOTING
) -> Message:
    avps = [*origin_avps(origin_host, origin_realm), make_avp("Disconnect-Cause", int(cause))]
    return make_request(CommandCode.DISCONNECT_PEER, 0, avps, proxiable=False)


def build_dpa(
    request: Message, origin_host: str, origin_realm: str, result: int = ResultCode.DIAMETER_SUCCESS
) -> Message:
    return make_answer(
        request, [make_avp("Result-Code", int(result)), *origin_avps(origin_host, origin_realm)]
    )


# --- error answers (RFC 6733 §7.2, §7.1.5) --------------------------------------------------------------


def error_answer(
    error: DiameterError, *, origin_host: str, origin_realm: str, error_message: bool = True
) -> Message | None:
    """The answer to send for ``error``, or None when there is nothing to answer.

    Protocol errors (3xxx) follow the ``answer-message`` format with the 'E' bit
    (§7.2); other errors are ordinary answers of the command, carrying the
    Cx header AVPs (Vendor-Specific-Application-Id, Auth-Session-State) for Cx.
    Answers to answers are never sent.
    """
    request = error.request
    header = request.header if request is not None else error.header
    if header is None or not header.is_request:
        return None
    base = (
        request
        if request is not None
        else Message(
            header.command_code, header.application_id, header.flags, header.hop_by_hop, header.end_to_end, ()
        )
    )
    session = [a for a in base.avps if (a.code, a.vendor_id) == _SESSION_ID][:1]
    if not session and error.session_id is not None:
        session = [make_avp("Session-Id", error.session_id)]
    result = make_avp("Result-Code", int(error.result_code))
    tail: list[Avp] = []
    if error_message:
        tail.append(make_avp("Error-Message", error.reason[:MAX_ERROR_MESSAGE]))
    if error.failed_avp is not None:
        tail.append(failed_avp(error.failed_avp))
    origin = origin_avps(origin_host, origin_realm)
    if error.is_protocol_error:
        return make_answer(base, [*session, *origin, result, *tail], error=True)
    if header.application_id == CX_APPLICATION_ID:
        vsai = vendor_specific_application_id(VENDOR_3GPP, CX_APPLICATION_ID)
        state = make_avp("Auth-Session-State", AuthSessionState.NO_STATE_MAINTAINED)
        return make_answer(base, [*session, vsai, result, state, *origin, *tail])
    return make_answer(base, [*session, result, *origin, *tail])
