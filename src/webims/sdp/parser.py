"""Parse a session description (RFC 8866 §5, grammar §9).

:func:`parse` checks structure (line order, mandatory and unique lines), the
syntax of every fixed-format line and of every attribute webims understands,
and the limits given in :class:`SdpLimits`.  It raises
:class:`~webims.sdp.errors.SdpError` and nothing else: 400 for malformed
input, 488 for input it will not take (unknown line type, RFC 8866 §5;
``v=`` other than 0; a limit exceeded).  Unknown attributes are kept as they
are (RFC 8866 §5.13).  Lines end in CRLF; a bare LF is accepted too.

What the checks parse (attributes, fixed-format lines, typed attribute values)
is handed to the model, which would otherwise parse it again on first read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import SdpError
from .ice import Candidate, parse_ice_options, parse_ice_pwd, parse_ice_ufrag
from .lines import (
    MEDIA_TYPES,
    SESSION_TYPES,
    Attribute,
    Bandwidth,
    Connection,
    Line,
    MediaLine,
    Origin,
    Timing,
)
from .model import DIRECTIONS, MediaDescription, SessionDescription
from .qos import Precondition
from .rtp import Fmtp, RtcpFb, Rtpmap, parse_ptime
from .security import Crypto, Fingerprint, parse_setup, parse_tls_id
from .streams import Extmap, Group, Msid, Rtcp, Ssrc, SsrcGroup, parse_mid


@dataclass(frozen=True, slots=True)
class SdpLimits:
    """Explicit limits on what :func:`parse` accepts (DESIGN.md §6.5); exceeding one is a 488."""

    max_size: int = 64 * 1024
    max_lines: int = 4096
    max_line_length: int = 4096
    max_media: int = 32


DEFAULT_LIMITS = SdpLimits()

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TYPED_TIME = re.compile(r"-?[0-9]{1,20}[dhms]?\Z")
_ONCE_IN_SESSION = "vosiuczk"
_ONCE_IN_MEDIA = "ik"

#: Property attributes: no value allowed.
_FLAGS = frozenset(
    (
        "rtcp-mux",
        "rtcp-mux-only",
        "rtcp-rsize",
        "ice-lite",
        "ice-mismatch",
        "end-of-candidates",
        "bundle-only",
        "extmap-allow-mixed",
        *DIRECTIONS,
    )
)


def _precondition(kind: str) -> Callable[[str], object]:
    return lambda value: Precondition.parse(kind, value)


#: Value attributes webims interprets, and the parser that validates each.
_VALUED: dict[str, Callable[[str], object]] = {
    "candidate": Candidate.parse,
    "ice-ufrag": parse_ice_ufrag,
    "ice-pwd": parse_ice_pwd,
    "ice-options": parse_ice_options,
    "fingerprint": Fingerprint.parse,
    "setup": parse_setup,
    "tls-id": parse_tls_id,
    "mid": parse_mid,
    "group": Group.parse,
    "extmap": Extmap.parse,
    "ssrc": Ssrc.parse,
    "ssrc-group": SsrcGroup.parse,
    "msid": Msid.parse,
    "rtcp": Rtcp.parse,
    "rtpmap": Rtpmap.parse,
    "fmtp": Fmtp.parse,
    "rtcp-fb": RtcpFb.parse,
    "ptime": parse_ptime,
    "maxptime": parse_ptime,
    "crypto": Crypto.parse,
    "curr": _precondition("curr"),
    "des": _precondition("des"),
    "conf": _precondition("conf"),
}
#: Value attributes whose model property parses with the same function as ``_VALUED``: their
#: parsed values are handed to the model (``Section._seed``, key ``"v:<name>"``).
_SEEDED = frozenset(
    ("candidate", "fingerprint", "group", "extmap", "ssrc", "ssrc-group", "msid", "rtpmap", "crypto")
)
#: At most one of each per section.
_UNIQUE = frozenset(("mid", "setup", "ice-ufrag", "ice-pwd", "ptime", "maxptime", "rtcp", "tls-id"))
#: Media-level only (RFC 8839 §5.1, RFC 5888 §4, RFC 8866 §6.6/§6.15, RFC 5576 §4, RFC 8830 §2,
#: RFC 3605 §2.1, RFC 4568 §9.1, RFC 3312 §5, RFC 8843 §6).  ptime/maxptime and rtcp-fb are
#: tolerated at session level: some IMS nodes write them there.
_MEDIA_ONLY = frozenset(
    [
        "candidate",
        "mid",
        "rtpmap",
        "fmtp",
        "ssrc",
        "ssrc-group",
        "msid",
        "rtcp",
        "crypto",
        "curr",
        "des",
        "conf",
        "bundle-only",
    ]
)
#: Session-level only (RFC 5888 §5).
_SESSION_ONLY = frozenset(("group",))


def _split_lines(data: bytes | str, limits: SdpLimits) -> list[str]:
    if isinstance(data, bytes):
        size = len(data)
        if size > limits.max_size:
            raise SdpError("session description too large", 488)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("session description is not UTF-8") from None
    else:
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError:
            raise SdpError("session description is not UTF-8") from None
        if size > limits.max_size:
            raise SdpError("session description too large", 488)
        text = data
    pieces = text.split("\n")
    if pieces and pieces[-1] == "":
        pieces.pop()
    lines = [p[:-1] if p.endswith("\r") else p for p in pieces]
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise SdpError("empty session description")
    if len(lines) > limits.max_lines:
        raise SdpError("too many lines", 488)
    return lines


def _check_typed_time(value: str, what: str, even: bool = False) -> None:
    parts = value.split(" ")
    if (even and len(parts) % 2) or any(_TYPED_TIME.match(p) is None for p in parts):
        raise SdpError(f"bad {what}")


def _check_attribute(attr: Attribute, in_media: bool) -> object:
    """Check one attribute; the typed value of a value attribute webims interprets, else None."""
    name = attr.name
    typed: object = None
    if name in _FLAGS:
        if attr.value is not None:
            raise SdpError(f"a={name} takes no value")
    elif name in _VALUED:
        if attr.value is None:
            raise SdpError(f"a={name} needs a value")
        typed = _VALUED[name](attr.value)
    if in_media and name in _SESSION_ONLY:
        raise SdpError(f"a={name} is a session-level attribute")
    if not in_media and name in _MEDIA_ONLY:
        raise SdpError(f"a={name} is a media-level attribute")
    return typed


class _SectionChecker:
    """Per-section uniqueness of lines and attributes; collects what was parsed for the model."""

    def __init__(self, once: str) -> None:
        self.once = once
        self.seen_types: set[str] = set()
        self.seen_attrs: set[str] = set()
        self.rtpmap_pts: set[int] = set()
        self.direction: str | None = None
        self.attributes: list[Attribute] = []
        self.values: dict[str, list[object]] = {}
        self.fixed: dict[str, list[object]] = {}

    def parsed(self, line_type: str, value: object) -> None:
        self.fixed.setdefault(line_type, []).append(value)

    def memo(self) -> dict[str, object]:
        """What the model remembers for this section's lines (the keys of ``Section._seed``)."""
        memo: dict[str, object] = {"a": tuple(self.attributes)}
        for name, values in self.values.items():
            memo["v:" + name] = tuple(values)
        fixed = self.fixed
        if "m" in fixed:
            memo["m"] = fixed["m"][0]
        if "o" in fixed:
            memo["o"] = fixed["o"][0]
        memo["c"] = fixed["c"][0] if "c" in fixed else None
        memo["b"] = tuple(fixed.get("b", ()))
        memo["t"] = tuple(fixed.get("t", ()))
        return memo

    def line(self, line_type: str) -> None:
        if line_type in self.once and line_type in self.seen_types:
            raise SdpError(f"more than one {line_type}= line")
        self.seen_types.add(line_type)

    def attribute(self, attr: Attribute, typed: object) -> None:
        name = attr.name
        self.attributes.append(attr)
        if name in _SEEDED:
            self.values.setdefault(name, []).append(typed)
        if name in _UNIQUE:
            if name in self.seen_attrs:
                raise SdpError(f"more than one a={name}")
            self.seen_attrs.add(name)
        elif name in DIRECTIONS:
            if self.direction is not None:
                raise SdpError("more than one direction attribute")
            self.direction = name
        elif name == "rtpmap" and isinstance(typed, Rtpmap):
            pt = typed.payload_type
            if pt in self.rtpmap_pts:
                raise SdpError("payload type mapped twice")
            self.rtpmap_pts.add(pt)


def _check_line(line: Line, checker: _SectionChecker) -> None:
    """Validate the value of one fixed-format line (RFC 8866 §5)."""
    t, value = line.type, line.value
    if t == "o":
        checker.parsed(t, Origin.parse(value))
    elif t == "c":
        checker.parsed(t, Connection.parse(value))
    elif t == "b":
        checker.parsed(t, Bandwidth.parse(value))
    elif t == "t":
        checker.parsed(t, Timing.parse(value))
    elif t == "r":
        if len(value.split(" ")) < 3:
            raise SdpError("bad repeat times")
        _check_typed_time(value, "repeat times")
    elif t == "z":
        _check_typed_time(value, "time zones", even=True)
    elif t == "v":
        if re.match(r"[0-9]{1,9}\Z", value) is None:
            raise SdpError("bad version")
        if value != "0":
            raise SdpError("unsupported SDP version", 488)


def parse(data: bytes | str, limits: SdpLimits = DEFAULT_LIMITS) -> SessionDescription:
    """Parse a session description; :class:`SdpError` on any malformed or unacceptable input."""
    texts = _split_lines(data, limits)
    session_lines: list[Line] = []
    media: list[list[Line]] = []
    current: list[Line] = session_lines
    checker = _SectionChecker(_ONCE_IN_SESSION)
    checkers = [checker]
    in_media = False
    previous = ""
    for index, text in enumerate(texts):
        try:
            line = _parse_line(text, limits)
            t = line.type
            if index < 3:
                if t != "vos"[index]:
                    raise SdpError(f"line {index + 1} must be {'vos'[index]}=")
            elif t in "vos" and not in_media:
                raise SdpError(f"more than one {t}= line")
            if t == "m":
                if not any(x.type == "t" for x in session_lines):
                    raise SdpError("missing t= line")
                if len(media) == limits.max_media:
                    raise SdpError("too many media descriptions", 488)
                in_media = True
                current = [line]
                media.append(current)
                checker = _SectionChecker(_ONCE_IN_MEDIA)
                checkers.append(checker)
                mline = MediaLine.parse(line.value)
                if not mline.fmts:
                    raise SdpError("media line without formats")
                checker.parsed(t, mline)
            elif in_media and t not in MEDIA_TYPES:
                raise SdpError(f"{t}= line not allowed in a media description")
            else:
                if t == "r" and previous not in "tr":
                    raise SdpError("r= line not after t=")
                checker.line(t)
                if t == "a":
                    attr = Attribute.parse(line.value)
                    checker.attribute(attr, _check_attribute(attr, in_media))
                else:
                    _check_line(line, checker)
                current.append(line)
            previous = t
        except SdpError as exc:
            raise exc.with_line(text) from None
    if len(session_lines) < 3:
        raise SdpError("truncated session description")
    if not any(x.type == "t" for x in session_lines):
        raise SdpError("missing t= line")
    sdp = SessionDescription(session_lines, [MediaDescription(lines) for lines in media])
    for section, done in zip((sdp, *sdp.media), checkers, strict=True):
        section._seed(done.memo())
    _check_session(sdp)
    return sdp


def _parse_line(text: str, limits: SdpLimits) -> Line:
    if len(text) > limits.max_line_length:
        raise SdpError("line too long", 488)
    if len(text) < 2 or text[1] != "=" or not ("a" <= text[0] <= "z"):
        raise SdpError("not a <type>=<value> line")
    if _CONTROL.search(text) is not None:
        raise SdpError("control character in line")
    if text[0] not in SESSION_TYPES and text[0] != "m":
        raise SdpError("unknown line type", 488)
    return Line(text[0], text[2:])


def _check_session(sdp: SessionDescription) -> None:
    """Checks across lines: c= coverage (RFC 8866 §5.7), unique mids, group tags (RFC 5888 §5)."""
    has_session_c = any(line.type == "c" for line in sdp.lines)
    mids: set[str] = set()
    for m in sdp.media:
        if not has_session_c and m.port != 0 and not any(line.type == "c" for line in m.lines):
            raise SdpError("media description without c= line", line=str(m.lines[0]))
        mid = m.mid
        if mid is not None:
            if mid in mids:
                raise SdpError("duplicate mid", line=f"a=mid:{mid}")
            mids.add(mid)
    for group in sdp.groups:
        for tag in group.mids:
            if tag not in mids:
                raise SdpError("group names an unknown mid", line=f"a=group:{group}")
