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
from .constants import (
    AVP_FLAG_MANDATORY,
    AVP_FLAGS_RESERVED,
    COMMON_APPLICATION_ID,
    CX_APPLICATION_ID,
    FLAG_ERROR,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    ResultCode,
)
from .datatypes import AvpType
from .dictionary import AVP_BY_CODE, AVP_BY_NAME, AvpDef
from .errors import DiameterError
from .message import Message

_KNOWN_APPLICATIONS = frozenset(app for (_, app) in COMMANDS)


def _int_key(key: tuple[int, int]) -> int:
    """``(code, vendor)`` as one int: cheaper to hash than a tuple (the checker's keys)."""
    return (key[1] << 32) | key[0]


_RESULT_CODE = _int_key(AVP_BY_NAME["Result-Code"].key)
_EXPERIMENTAL_RESULT = _int_key(AVP_BY_NAME["Experimental-Result"].key)

#: A rule list compiled for the checker: ``(int key, name, min, max)`` in rule order.
_Compiled = tuple[tuple[int, str, int, int], ...]


def _compile(rules: Sequence[Rule]) -> _Compiled:
    return tuple((_int_key(AVP_BY_NAME[r.name].key), r.name, r.min, r.max) for r in rules)


_COMMAND_RULES: dict[tuple[int, int], tuple[_Compiled, _Compiled]] = {
    key: (_compile(c.request), _compile(c.answer)) for key, c in COMMANDS.items()
}

# What to check in the payload of each known AVP (RFC 6733 §4.2-§4.4), by int key.
_OPAQUE, _FIXED, _TEXT, _ADDRESS, _GROUP = range(5)
_TEXT_TYPES = (AvpType.UTF8_STRING, AvpType.DIAMETER_IDENTITY, AvpType.DIAMETER_URI)


def _kind(d: AvpDef) -> tuple[int, object]:
    if d.type is AvpType.GROUPED:
        if d.key == AVP_BY_NAME["Failed-AVP"].key:
            return _OPAQUE, None  # Failed-AVP holds whatever was wrong: not checked (§7.5)
        return _GROUP, _compile(GROUPED_RULES.get(d.name, ()))
    if d.fixed_length >= 0:
        return _FIXED, d.fixed_length
    if d.type is AvpType.ADDRESS:
        return _ADDRESS, None
    if d.type in _TEXT_TYPES:
        return _TEXT, d.text_encoding
    return _OPAQUE, None


_KINDS: dict[int, tuple[int, object]] = {_int_key(d.key): _kind(d) for d in AVP_BY_CODE.values()}
#: Application sets given as ``applications`` (frozensets), with the base application added.
_WITH_COMMON: dict[frozenset[int], frozenset[int]] = {}


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


def with_common(applications: frozenset[int]) -> frozenset[int]:
    """``applications`` plus the base protocol's (0), remembered: for :func:`check_message`
    on every request of a connection."""
    out = _WITH_COMMON.get(applications)
    if out is None:
        if len(_WITH_COMMON) > 64:
            _WITH_COMMON.clear()
        out = _WITH_COMMON[applications] = applications | {COMMON_APPLICATION_ID}
    return out


def _check(message: Message, applications: Collection[int]) -> None:
    flags = message.flags
    is_request = bool(flags & FLAG_REQUEST)
    if is_request and flags & FLAG_ERROR:
        raise DiameterError(ResultCode.DIAMETER_INVALID_HDR_BITS, "'E' bit set in a request")
    app = message.application_id
    key = (message.command_code, app)
    cmd = COMMANDS.get(key)
    if app not in applications or (cmd is None and app not in _KNOWN_APPLICATIONS):
        raise DiameterError(ResultCode.DIAMETER_APPLICATION_UNSUPPORTED, f"application {app} not supported")
    if cmd is None:
        raise DiameterError(
            ResultCode.DIAMETER_COMMAND_UNSUPPORTED,
            f"command {message.command_code} not defined for application {app}",
        )
    if is_request and bool(flags & FLAG_PROXIABLE) != cmd.proxiable:
        raise DiameterError(
            ResultCode.DIAMETER_INVALID_HDR_BITS,
            f"{cmd.request_name} must {'' if cmd.proxiable else 'not '}have the 'P' bit",
        )
    request_rules, answer_rules = _COMMAND_RULES[key]
    counts = _check_list(message.avps, request_rules if is_request else answer_rules, ())
    # TS 29.229 §6.1: "[ Result-Code ] [ Experimental-Result ]", one of them is required.
    if (
        not is_request
        and app == CX_APPLICATION_ID
        and _RESULT_CODE not in counts
        and _EXPERIMENTAL_RESULT not in counts
    ):
        raise DiameterError(
            ResultCode.DIAMETER_MISSING_AVP,
            "neither Result-Code nor Experimental-Result",
            failed_avp=example_avp("Result-Code").encode(),
        )


def _check_list(avps: Sequence[Avp], rules: _Compiled, parents: tuple[Avp, ...]) -> dict[int, int]:
    """Check each AVP (recursing into Grouped ones), then the occurrence rules; returns
    how often each AVP (by int key) occurs. The first problem in AVP order wins, then rule order."""
    counts: dict[int, int] = {}
    count = counts.get
    kinds = _KINDS
    for a in avps:
        code, flags, vendor, data = a
        key = (vendor << 32) | code
        counts[key] = count(key, 0) + 1
        if flags & AVP_FLAGS_RESERVED:
            raise wrap_error(
                DiameterError(
                    ResultCode.DIAMETER_INVALID_AVP_BITS,
                    f"AVP {code} has reserved flag bits {flags & AVP_FLAGS_RESERVED:#x}",
                    failed_avp=a.encode(),
                ),
                parents,
            )
        spec = kinds.get(key)
        if spec is None:
            if flags & AVP_FLAG_MANDATORY:
                raise wrap_error(
                    DiameterError(
                        ResultCode.DIAMETER_AVP_UNSUPPORTED,
                        f"unknown AVP {code} (vendor {vendor}) with the 'M' bit",
                        failed_avp=a.encode(),
                    ),
                    parents,
                )
            continue
        kind, arg = spec
        if kind == _FIXED:
            if len(data) != arg:
                _payload_error(a, parents)
        elif kind == _TEXT:
            try:
                data.decode(arg)  # type: ignore[arg-type]
            except UnicodeDecodeError:
                _payload_error(a, parents)
        elif kind == _GROUP:
            inner, err = scan_avps(data, 0, len(data))
            chain = (*parents, a)
            if err is not None:
                raise wrap_error(err, chain)
            _check_list(inner, arg, chain)  # type: ignore[arg-type]
        elif kind == _ADDRESS:
            _payload_error(a, parents)  # the length depends on the family: Avp.check decides
    _occurrences(avps, counts, rules, parents)
    return counts


def _payload_error(a: Avp, parents: tuple[Avp, ...]) -> None:
    """Raise the error :meth:`Avp.check` finds in ``a``'s payload (5014 length, 5004 value)."""
    try:
        a.check()
    except DiameterError as exc:
        raise wrap_error(exc, parents) from None


def _occurrences(
    avps: Sequence[Avp], counts: dict[int, int], rules: _Compiled, parents: tuple[Avp, ...]
) -> None:
    for key, name, low, high in rules:
        n = counts.get(key, 0)
        if n < low:
            raise wrap_error(
                DiameterError(
                    ResultCode.DIAMETER_MISSING_AVP, f"missing {name}", failed_avp=example_avp(name).encode()
                ),
                parents,
            )
        if high != MANY and n > high:
            found = [a for a in avps if (a[2] << 32) | a[0] == key]
            code = (
                ResultCode.DIAMETER_AVP_NOT_ALLOWED
                if high == 0
                else ResultCode.DIAMETER_AVP_OCCURS_TOO_MANY_TIMES
            )
            raise wrap_error(
                DiameterError(
                    code, f"{name} occurs {n} times, at most {high} allowed", failed_avp=found[high].encode()
                ),
                parents,
            )


def check_avps(avps: Sequence[Avp], rules: Sequence[Rule], parents: tuple[Avp, ...]) -> None:
    """Check each AVP, recursing into Grouped ones, then the occurrence ``rules``."""
    _check_list(avps, _compile(rules), parents)


def check_avp(a: Avp, parents: tuple[Avp, ...]) -> None:
    """Check one AVP (flags, format; a Grouped one with its content)."""
    _check_list((a,), (), parents)


def check_occurrences(avps: Sequence[Avp], rules: Sequence[Rule], parents: tuple[Avp, ...]) -> None:
    """The occurrence ``rules`` alone (RFC 6733 §7.1.5: 5005 missing, 5008/5009 too many)."""
    counts: dict[int, int] = {}
    for a in avps:
        key = (a[2] << 32) | a[0]
        counts[key] = counts.get(key, 0) + 1
    _occurrences(avps, counts, _compile(rules), parents)
