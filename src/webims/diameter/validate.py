"""Semantic checks of a decoded message against its command (RFC 6733 §7, TS 29.229 §6.1).

:func:`check_message` raises :class:`DiameterError` with the Result-Code and
Failed-AVP that RFC 6733 asks for:

===============================================  ====  ================================
problem                                          code  Failed-AVP
===============================================  ====  ================================
'E' bit in a request (§3)                        3008  -
'P' bit differs from the command's CCF (§3)      3008  -
application not supported (§7.1.3)               3007  -
command not defined for the application          3001  -
reserved AVP flag bit set (§4.1)                 3009  the AVP
unknown AVP with the 'M' bit (§4.1)              5001  the AVP
payload length wrong for its format              5014  the AVP
payload value invalid (bad UTF-8, ...)           5004  the AVP
required AVP missing (§7.1.5)                    5005  zero-filled example of it
AVP more often than allowed (§7.1.5)             5009  first instance beyond the limit
Cx answer without any result                     5005  example Result-Code
===============================================  ====  ================================

Errors inside Grouped AVPs carry the offending AVP wrapped in its Grouped parents (§7.5).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from .avp import Avp, example_avp, scan_avps, wrap_error
from .commands import COMMANDS, GROUPED_RULES, MANY, Rule
from .constants import AVP_FLAGS_RESERVED, CX_APPLICATION_ID, FLAG_ERROR, ResultCode
from .datatypes import AvpType
from .dictionary import AVP_BY_NAME, lookup
from .errors import DiameterError
from .message import Message

_KNOWN_APPLICATIONS = frozenset(app for (_, app) in COMMANDS)
_FAILED_AVP = AVP_BY_NAME["Failed-AVP"].key


def check_message(message: Message, *, applications: Collection[int] | None = None) -> None:
    """Check ``message`` against its CCF; raise :class:`DiameterError` on the first problem.

    ``applications``: the application ids accepted on this connection (after
    capabilities exchange); by default every application with a known CCF.
    """
    try:
        _check(message, _KNOWN_APPLICATIONS if applications is None else applications)
    except DiameterError as exc:
        try:
            session_id = message.session_id
        except DiameterError:
            session_id = None
        raise exc.with_context(header=message.header, request=message, session_id=session_id) from None


def _check(message: Message, applications: Collection[int]) -> None:
    if message.is_request and message.flags & FLAG_ERROR:
        raise DiameterError(ResultCode.DIAMETER_INVALID_HDR_BITS, "'E' bit set in a request")
    cmd = COMMANDS.get((message.command_code, message.application_id))
    if message.application_id not in applications or (
        cmd is None and message.application_id not in _KNOWN_APPLICATIONS
    ):
        raise DiameterError(
            ResultCode.DIAMETER_APPLICATION_UNSUPPORTED, f"application {message.application_id} not supported"
        )
    if cmd is None:
        raise DiameterError(
            ResultCode.DIAMETER_COMMAND_UNSUPPORTED,
            f"command {message.command_code} not defined for application {message.application_id}",
        )
    if message.is_request and message.is_proxiable != cmd.proxiable:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_HDR_BITS,
            f"{cmd.request_name} must {'' if cmd.proxiable else 'not '}have the 'P' bit",
        )
    rules = cmd.request if message.is_request else cmd.answer
    check_avps(message.avps, rules, ())
    # TS 29.229 §6.1: "[ Result-Code ] [ Experimental-Result ]", one of them is required.
    if (
        not message.is_request
        and cmd.application_id == CX_APPLICATION_ID
        and message.find("Result-Code") is None
        and message.find("Experimental-Result") is None
    ):
        raise DiameterError(
            ResultCode.DIAMETER_MISSING_AVP,
            "neither Result-Code nor Experimental-Result",
            failed_avp=example_avp("Result-Code").encode(),
        )


def check_avps(avps: Sequence[Avp], rules: Sequence[Rule], parents: tuple[Avp, ...]) -> None:
    """Check each AVP, recursing into Grouped ones, then the occurrence ``rules``."""
    for a in avps:
        check_avp(a, parents)
    check_occurrences(avps, rules, parents)


def check_avp(a: Avp, parents: tuple[Avp, ...]) -> None:
    if a.flags & AVP_FLAGS_RESERVED:
        raise wrap_error(
            DiameterError(
                ResultCode.DIAMETER_INVALID_AVP_BITS,
                f"AVP {a.code} has reserved flag bits {a.flags & AVP_FLAGS_RESERVED:#x}",
                failed_avp=a.encode(),
            ),
            parents,
        )
    d = lookup(a.code, a.vendor_id)
    if d is None:
        if a.is_mandatory:
            raise wrap_error(
                DiameterError(
                    ResultCode.DIAMETER_AVP_UNSUPPORTED,
                    f"unknown AVP {a.code} (vendor {a.vendor_id}) with the 'M' bit",
                    failed_avp=a.encode(),
                ),
                parents,
            )
        return
    if d.type is not AvpType.GROUPED:
        try:
            a.check()
        except DiameterError as exc:
            raise wrap_error(exc, parents) from None
        return
    if d.key == _FAILED_AVP:
        return
    inner, err = scan_avps(a.data, 0, len(a.data))
    chain = (*parents, a)
    if err is not None:
        raise wrap_error(err, chain)
    check_avps(inner, GROUPED_RULES.get(d.name, ()), chain)


def check_occurrences(avps: Sequence[Avp], rules: Sequence[Rule], parents: tuple[Avp, ...]) -> None:
    by_key: dict[tuple[int, int], list[Avp]] = {}
    for a in avps:
        by_key.setdefault((a.code, a.vendor_id), []).append(a)
    for rule in rules:
        found = by_key.get(AVP_BY_NAME[rule.name].key, [])
        if len(found) < rule.min:
            raise wrap_error(
                DiameterError(
                    ResultCode.DIAMETER_MISSING_AVP,
                    f"missing {rule.name}",
                    failed_avp=example_avp(rule.name).encode(),
                ),
                parents,
            )
        if rule.max != MANY and len(found) > rule.max:
            code = (
                ResultCode.DIAMETER_AVP_NOT_ALLOWED
                if rule.max == 0
                else ResultCode.DIAMETER_AVP_OCCURS_TOO_MANY_TIMES
            )
            raise wrap_error(
                DiameterError(
                    code,
                    f"{rule.name} occurs {len(found)} times, at most {rule.max} allowed",
                    failed_avp=found[rule.max].encode(),
                ),
                parents,
            )
