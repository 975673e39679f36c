"""The SDP model: a session description and its media descriptions (RFC 8866 §5).

Each section keeps its lines exactly as parsed (:class:`~webims.sdp.lines.Line`).
Typed properties parse the lines they need when read; setters and the
attribute methods replace only the lines they change, and put a new line
where RFC 8866 §5 orders it.  An unmodified description therefore
serializes to the bytes it was parsed from (with CRLF line ends, §5).

What the properties parse (the attributes, the ``m=`` line, codecs,
candidates, ...) is remembered together with the lines it was parsed from;
when ``lines`` no longer holds those same lines (a setter, an attribute
method, or any change to the list itself) it is parsed again on the next
read.  Values are immutable (frozen dataclasses, tuples); lists and dicts are
handed out as fresh copies.  The remembered values live in a bounded cache
(the last ``MEMO_LIMIT`` sections read), not in the sections: a description
kept for a whole call (and freed with the call's other objects by the cyclic
garbage collector) does not keep a second, parsed copy of itself alive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from itertools import count
from typing import ClassVar, Literal, TypeVar, cast

from .errors import SdpError
from .ice import Candidate, IceCredentials, parse_ice_options
from .lines import Attribute, Bandwidth, Connection, Line, MediaLine, Origin, Timing, is_rtp_proto
from .qos import Precondition
from .rtp import Codec, Fmtp, RtcpFb, Rtpmap, format_ptime, parse_ptime
from .security import Crypto, Fingerprint, Setup, parse_setup
from .streams import Extmap, Group, Msid, Rtcp, Ssrc, SsrcGroup, parse_mid

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
#: The direction attributes of RFC 8866 §6.7.
DIRECTIONS: tuple[Direction, ...] = ("sendrecv", "sendonly", "recvonly", "inactive")

_SESSION_RANK = {t: i for i, t in enumerate("vosiuepcbt")} | {"r": 9, "z": 10, "k": 11, "a": 12}
_MEDIA_RANK = {"m": 0, "i": 1, "c": 2, "b": 3, "k": 4, "a": 5}
_T = TypeVar("_T")
_NO_ATTRIBUTES: tuple[Attribute, ...] = ()

#: How many sections' parsed values are kept (module docstring); the oldest go first.
MEMO_LIMIT = 256
#: The parsed values, by a section's ``_memo_key``; ``"#"`` holds the lines they came from.
_MEMOS: dict[int, dict[str, object]] = {}
_memo_keys = count(1)


class Section:
    """Lines shared by the session level and a media description."""

    _rank: ClassVar[dict[str, int]] = _SESSION_RANK

    def __init__(self, lines: Iterable[Line] = ()) -> None:
        self.lines: list[Line] = list(lines)
        self._memo_key = 0  # of this section's parsed values in ``_MEMOS`` (0: none yet)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Section) and type(other) is type(self) and self.lines == other.lines

    __hash__ = None  # type: ignore[assignment]

    # -- parsed values, kept while the lines stay the same (module docstring) ------------

    def _current_memo(self) -> dict[str, object]:
        """The remembered values of the current lines (a new, empty memo if they changed).

        Comparing with the lines kept in the memo costs one identity check per line
        (lines are frozen; an equal line that is a new object parses to the same value).
        """
        memo = _MEMOS.get(self._memo_key)
        if memo is None or memo["#"] != self.lines:
            memo = self._new_memo({})
        return memo

    def _new_memo(self, memo: dict[str, object]) -> dict[str, object]:
        memo["#"] = list(self.lines)
        key = self._memo_key = next(_memo_keys)
        _MEMOS[key] = memo
        if len(_MEMOS) > MEMO_LIMIT:
            with suppress(RuntimeError, KeyError):  # another thread changed the cache meanwhile
                del _MEMOS[next(iter(_MEMOS))]
        return memo

    def _remember(self, key: str, parse: Callable[[], _T]) -> _T:
        """``parse()``, computed once for the current lines (an :class:`SdpError` is not remembered)."""
        memo = self._current_memo()
        try:
            return cast(_T, memo[key])
        except KeyError:
            value = memo[key] = parse()
            return value

    def _seed(self, memo: dict[str, object]) -> None:
        """Values a parser has already parsed from the current lines (:mod:`.parser`).

        Keys as the properties use them: ``"a"`` every attribute, ``"v:<name>"`` the
        typed values of the attributes called ``name``, ``"m"``, ``"o"``, ``"c"``
        (the first ``c=``), ``"b"``, ``"t"`` the fixed-format lines.
        """
        self._new_memo(memo)

    def _share_memo(self, other: Section) -> None:
        """Let ``other`` (a copy with the same lines) use what this section has parsed.

        Safe to share: a memo is only used while the lines it holds are the section's,
        and a section whose lines changed starts a new one.
        """
        memo = _MEMOS.get(self._memo_key)
        if memo is not None and memo["#"] == self.lines == other.lines:
            other._memo_key = self._memo_key

    def _parsed_attributes(self) -> tuple[Attribute, ...]:
        return self._remember(
            "a", lambda: tuple(Attribute.parse(line.value) for line in self.lines if line.type == "a")
        )

    def _attribute_index(self) -> dict[str, tuple[Attribute, ...]]:
        """The attributes by name, in order."""

        def build() -> dict[str, tuple[Attribute, ...]]:
            index: dict[str, list[Attribute]] = {}
            for attr in self._parsed_attributes():
                index.setdefault(attr.name, []).append(attr)
            return {name: tuple(attrs) for name, attrs in index.items()}

        return self._remember("n", build)

    def _named(self, name: str) -> tuple[Attribute, ...]:
        return self._attribute_index().get(name, _NO_ATTRIBUTES)

    def _parsed_values(self, name: str, parse: Callable[[str], _T]) -> tuple[_T, ...]:
        """``parse`` of the value of each attribute called ``name`` (valueless ones left out)."""
        return self._remember(
            "v:" + name, lambda: tuple(parse(a.value) for a in self._named(name) if a.value is not None)
        )

    # -- generic line access -------------------------------------------------------------

    def _values(self, line_type: str) -> list[str]:
        return [line.value for line in self.lines if line.type == line_type]

    def _insert(self, line: Line) -> None:
        """Insert after the last line that RFC 8866 §5 orders at or before it."""
        rank = self._rank[line.type]
        index = 0
        for i, existing in enumerate(self.lines):
            if self._rank.get(existing.type, 99) <= rank:
                index = i + 1
        self.lines.insert(index, line)

    def _splice(self, matches: Callable[[Line], bool], new: Sequence[Line]) -> None:
        """Replace the lines ``matches`` selects by ``new``, where the first of them stood.

        With no line selected, each new line goes where RFC 8866 §5 orders it.
        """
        keep: list[Line] = []
        first: int | None = None
        for line in self.lines:
            if matches(line):
                if first is None:
                    first = len(keep)
            else:
                keep.append(line)
        if first is None:
            self.lines = keep
            for line in new:
                self._insert(line)
        else:
            self.lines = keep[:first] + list(new) + keep[first:]

    def _set_lines(self, line_type: str, values: Sequence[str]) -> None:
        self._splice(lambda line: line.type == line_type, [Line(line_type, v) for v in values])

    def _splice_attributes(self, names: str | Iterable[str], attrs: Iterable[Attribute]) -> None:
        wanted = {names} if isinstance(names, str) else set(names)
        self._splice(
            lambda line: line.type == "a" and line.value.partition(":")[0] in wanted,
            [a.to_line() for a in attrs],
        )

    # -- attributes (RFC 8866 §5.13) -----------------------------------------------------

    @property
    def attributes(self) -> list[Attribute]:
        """Every ``a=`` line of this section, in order."""
        return list(self._parsed_attributes())

    def get_attributes(self, name: str) -> list[Attribute]:
        """The attributes called ``name`` (names are case-sensitive)."""
        return list(self._named(name))

    def attribute(self, name: str) -> Attribute | None:
        """The first attribute called ``name``."""
        attrs = self._named(name)
        return attrs[0] if attrs else None

    def attribute_value(self, name: str) -> str | None:
        """The value of the first attribute called ``name`` (None if absent or valueless)."""
        attrs = self._named(name)
        return attrs[0].value if attrs else None

    def attribute_values(self, name: str) -> list[str]:
        return [a.value for a in self._named(name) if a.value is not None]

    def has_attribute(self, name: str) -> bool:
        return bool(self._named(name))

    def add_attribute(self, attr: Attribute) -> None:
        """Append an attribute after the last line of the section."""
        self.lines.append(attr.to_line())

    def add_attributes(self, attrs: Iterable[Attribute]) -> None:
        for attr in attrs:
            self.add_attribute(attr)

    def remove_attributes(self, *names: str) -> int:
        """Remove every attribute with one of ``names``; return how many went."""
        wanted = set(names)
        before = len(self.lines)
        self.lines = [
            line for line in self.lines if not (line.type == "a" and line.value.partition(":")[0] in wanted)
        ]
        return before - len(self.lines)

    def set_attribute(self, attr: Attribute) -> None:
        """Make ``attr`` the only attribute of its name, in the place of the first one."""
        self.replace_attributes(attr.name, [attr])

    def replace_attributes(self, names: str | Iterable[str], attrs: Iterable[Attribute]) -> None:
        """Replace the attributes called ``names`` (one name or several) by ``attrs``, in place."""
        self._splice_attributes(names, attrs)

    def set_flag(self, name: str, present: bool) -> None:
        """Add or remove a property attribute such as ``rtcp-mux``."""
        if present:
            if not self.has_attribute(name):
                self.add_attribute(Attribute(name))
        else:
            self.remove_attributes(name)

    # -- c= and b= (RFC 8866 §5.7, §5.8) ---------------------------------------------------

    @property
    def connection(self) -> Connection | None:
        """The first ``c=`` line of this section."""

        def parse() -> Connection | None:
            values = self._values("c")
            return Connection.parse(values[0]) if values else None

        return self._remember("c", parse)

    @connection.setter
    def connection(self, value: Connection | None) -> None:
        self._set_lines("c", [] if value is None else [str(value)])

    @property
    def bandwidths(self) -> list[Bandwidth]:
        return list(self._remember("b", lambda: tuple(Bandwidth.parse(v) for v in self._values("b"))))

    def bandwidth(self, bwtype: str) -> int | None:
        """The ``b=<bwtype>`` value (types compared case-insensitively)."""
        return next((b.value for b in self.bandwidths if b.type.upper() == bwtype.upper()), None)

    def set_bandwidth(self, bwtype: str, value: int | None) -> None:
        """Set (or with None remove) one bandwidth type, keeping the others in place."""
        out: list[str] = []
        done = False
        for bw in self.bandwidths:
            if bw.type.upper() == bwtype.upper():
                if value is not None and not done:
                    out.append(str(Bandwidth(bw.type, value)))
                done = True
            else:
                out.append(str(bw))
        if value is not None and not done:
            out.append(str(Bandwidth(bwtype, value)))
        self._set_lines("b", out)

    # -- attributes used at both levels --------------------------------------------------

    @property
    def direction(self) -> Direction | None:
        """The direction attribute written in this section (RFC 8866 §6.7), if any."""

        def find() -> Direction | None:
            for attr in self._parsed_attributes():
                if attr.name in DIRECTIONS:
                    return attr.name
            return None

        return self._remember("d", find)

    @direction.setter
    def direction(self, value: Direction | None) -> None:
        first = next(
            (i for i, line in enumerate(self.lines) if line.type == "a" and line.value in DIRECTIONS), None
        )
        self.remove_attributes(*DIRECTIONS)
        if value is not None:
            if first is None:
                self.add_attribute(Attribute(value))
            else:
                self.lines.insert(first, Line("a", value))

    @property
    def ice_ufrag(self) -> str | None:
        return self.attribute_value("ice-ufrag")

    @property
    def ice_pwd(self) -> str | None:
        return self.attribute_value("ice-pwd")

    @property
    def ice_options(self) -> tuple[str, ...]:
        value = self.attribute_value("ice-options")
        return self._remember("ice-options", lambda: parse_ice_options(value)) if value else ()

    @property
    def fingerprints(self) -> list[Fingerprint]:
        """``a=fingerprint`` lines of this section (RFC 8122 §5)."""
        return list(self._parsed_values("fingerprint", Fingerprint.parse))

    @property
    def setup(self) -> Setup | None:
        """``a=setup`` of this section (RFC 4145 §4)."""
        value = self.attribute_value("setup")
        return None if value is None else parse_setup(value)


class MediaDescription(Section):
    """One media description: its ``m=`` line and the lines after it (RFC 8866 §5.14)."""

    _rank = _MEDIA_RANK

    def __init__(self, lines: Iterable[Line]) -> None:
        super().__init__(lines)
        if not self.lines or self.lines[0].type != "m":
            raise SdpError("media description without m= line")

    @classmethod
    def create(cls, media: str, port: int, proto: str, fmts: Sequence[str] = ()) -> MediaDescription:
        return cls([Line("m", str(MediaLine(media, port, proto, tuple(fmts))))])

    def __repr__(self) -> str:
        return f"MediaDescription({self.lines[0].value!r}, {len(self.lines) - 1} lines)"

    # -- m= line -----------------------------------------------------------------------------

    @property
    def mline(self) -> MediaLine:
        return self._remember("m", lambda: MediaLine.parse(self.lines[0].value))

    @mline.setter
    def mline(self, value: MediaLine) -> None:
        self.lines[0] = Line("m", str(value))

    @property
    def media(self) -> str:
        """The media type: audio, video, application, ... (RFC 8866 §5.14)."""
        return self.mline.media

    @property
    def port(self) -> int:
        return self.mline.port

    @port.setter
    def port(self, value: int) -> None:
        m = self.mline
        self.mline = MediaLine(m.media, value, m.proto, m.fmts, m.port_count)

    @property
    def proto(self) -> str:
        return self.mline.proto

    @proto.setter
    def proto(self, value: str) -> None:
        m = self.mline
        self.mline = MediaLine(m.media, m.port, value, m.fmts, m.port_count)

    @property
    def fmts(self) -> tuple[str, ...]:
        return self.mline.fmts

    @fmts.setter
    def fmts(self, value: Sequence[str]) -> None:
        m = self.mline
        self.mline = MediaLine(m.media, m.port, m.proto, tuple(value), m.port_count)

    @property
    def is_rejected(self) -> bool:
        """Port 0: a rejected or disabled stream (RFC 3264 §6, §8.2)."""
        return self.port == 0

    @property
    def is_rtp(self) -> bool:
        return is_rtp_proto(self.proto)

    # -- identification and transport ----------------------------------------------------

    @property
    def mid(self) -> str | None:
        """``a=mid`` (RFC 5888 §4)."""
        value = self.attribute_value("mid")
        return None if value is None else self._remember("mid", lambda: parse_mid(value))

    @mid.setter
    def mid(self, value: str | None) -> None:
        self.replace_attributes("mid", [] if value is None else [Attribute("mid", parse_mid(value))])

    @property
    def candidates(self) -> list[Candidate]:
        """``a=candidate`` lines (RFC 8839 §5.1)."""
        return list(self._parsed_values("candidate", Candidate.parse))

    @property
    def end_of_candidates(self) -> bool:
        """``a=end-of-candidates`` (RFC 8840 §4.1)."""
        return self.has_attribute("end-of-candidates")

    @property
    def ice_credentials(self) -> IceCredentials | None:
        ufrag, pwd = self.ice_ufrag, self.ice_pwd
        return IceCredentials(ufrag, pwd) if ufrag is not None and pwd is not None else None

    @property
    def rtcp_mux(self) -> bool:
        """``a=rtcp-mux`` (RFC 5761 §5.1.1)."""
        return self.has_attribute("rtcp-mux")

    @property
    def rtcp_rsize(self) -> bool:
        """``a=rtcp-rsize`` (RFC 5506 §5)."""
        return self.has_attribute("rtcp-rsize")

    @property
    def is_bundle_only(self) -> bool:
        """``a=bundle-only`` (RFC 8843 §6)."""
        return self.has_attribute("bundle-only")

    @property
    def rtcp(self) -> Rtcp | None:
        """``a=rtcp`` (RFC 3605 §2.1)."""
        value = self.attribute_value("rtcp")
        return None if value is None else self._remember("rtcp", lambda: Rtcp.parse(value))

    @property
    def extmaps(self) -> list[Extmap]:
        return list(self._parsed_values("extmap", Extmap.parse))

    @property
    def ssrcs(self) -> list[Ssrc]:
        return list(self._parsed_values("ssrc", Ssrc.parse))

    @property
    def ssrc_groups(self) -> list[SsrcGroup]:
        return list(self._parsed_values("ssrc-group", SsrcGroup.parse))

    @property
    def msids(self) -> list[Msid]:
        return list(self._parsed_values("msid", Msid.parse))

    @property
    def crypto(self) -> list[Crypto]:
        """``a=crypto`` lines (RFC 4568 §9.1)."""
        return list(self._parsed_values("crypto", Crypto.parse))

    @property
    def preconditions(self) -> list[Precondition]:
        """``a=curr`` / ``a=des`` / ``a=conf`` lines, in order (RFC 3312 §5)."""
        return list(
            self._remember(
                "preconditions",
                lambda: tuple(
                    Precondition.parse(a.name, a.value or "")
                    for a in self._parsed_attributes()
                    if a.name in Precondition.names
                ),
            )
        )

    def set_preconditions(self, preconditions: Iterable[Precondition]) -> None:
        """Replace every curr/des/conf line (new ones go where the first old one was)."""
        self._splice_attributes(Precondition.names, (p.to_attribute() for p in preconditions))

    # -- payload formats ---------------------------------------------------------------------

    @property
    def ptime(self) -> float | None:
        """``a=ptime`` in ms (RFC 8866 §6.4)."""
        value = self.attribute_value("ptime")
        return None if value is None else self._remember("ptime", lambda: parse_ptime(value))

    @ptime.setter
    def ptime(self, value: float | None) -> None:
        self.replace_attributes("ptime", [] if value is None else [Attribute("ptime", format_ptime(value))])

    @property
    def maxptime(self) -> float | None:
        """``a=maxptime`` in ms (RFC 8866 §6.5)."""
        value = self.attribute_value("maxptime")
        return None if value is None else self._remember("maxptime", lambda: parse_ptime(value))

    @property
    def rtpmaps(self) -> dict[int, Rtpmap]:
        return dict(self._rtpmaps())

    def _rtpmaps(self) -> dict[int, Rtpmap]:
        return self._remember(
            "rtpmaps", lambda: {r.payload_type: r for r in self._parsed_values("rtpmap", Rtpmap.parse)}
        )

    @property
    def codecs(self) -> list[Codec]:
        """The payload types of the ``m=`` line, in order, with rtpmap/fmtp/rtcp-fb.

        A static type without ``a=rtpmap`` takes its RFC 3551 encoding; a
        dynamic one without ``a=rtpmap`` is left out (RFC 8866 §6.6).
        """
        return list(self._remember("codecs", self._parse_codecs))

    def _parse_codecs(self) -> tuple[Codec, ...]:
        if not self.is_rtp:
            return ()
        rtpmaps = self._rtpmaps()
        fmtps: dict[str, str] = {}
        feedback: dict[str, list[str]] = {}
        for attr in self._parsed_attributes():
            if attr.name == "fmtp" and attr.value is not None:
                fmtp = Fmtp.parse(attr.value)
                fmtps.setdefault(fmtp.format, fmtp.parameters)
            elif attr.name == "rtcp-fb" and attr.value is not None:
                fb = RtcpFb.parse(attr.value)
                feedback.setdefault(fb.payload_type, []).append(fb.value)
        out: list[Codec] = []
        for fmt in self.fmts:
            pt = int(fmt)
            rtpmap = rtpmaps.get(pt)
            if rtpmap is not None:
                base = Codec(pt, rtpmap.encoding_name, rtpmap.clock_rate, rtpmap.channels)
            else:
                static = Codec.static(pt)
                if static is None:
                    continue
                base = static
            out.append(
                Codec(
                    base.payload_type,
                    base.name,
                    base.clock_rate,
                    base.channels,
                    fmtps.get(fmt),
                    tuple(feedback.get(fmt, ())),
                )
            )
        return tuple(out)

    def codec(self, payload_type: int) -> Codec | None:
        return next(
            (c for c in self._remember("codecs", self._parse_codecs) if c.payload_type == payload_type), None
        )

    def set_codecs(self, codecs: Sequence[Codec]) -> None:
        """Make ``codecs`` the formats of this description.

        The ``m=`` format list is rewritten and every rtpmap/fmtp/rtcp-fb line
        replaced by the codecs' own, where the first of the old ones stood.
        """
        self.fmts = [str(c.payload_type) for c in codecs]
        self._splice_attributes(("rtpmap", "fmtp", "rtcp-fb"), (a for c in codecs for a in c.to_attributes()))


class SessionDescription(Section):
    """A whole session description (RFC 8866 §5): session-level lines and media descriptions."""

    _rank = _SESSION_RANK

    def __init__(self, lines: Iterable[Line], media: Iterable[MediaDescription] = ()) -> None:
        super().__init__(lines)
        self.media: list[MediaDescription] = list(media)

    @classmethod
    def create(
        cls,
        origin: Origin,
        session_name: str = "-",
        connection: Connection | None = None,
        timing: Timing | None = None,
    ) -> SessionDescription:
        """A minimal description: ``v=0``, ``o=``, ``s=``, optional ``c=``, ``t=``."""
        lines = [Line("v", "0"), Line("o", str(origin)), Line("s", session_name)]
        if connection is not None:
            lines.append(Line("c", str(connection)))
        lines.append(Line("t", str(timing or Timing())))
        return cls(lines)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SessionDescription) and self.lines == other.lines and self.media == other.media
        )

    def __repr__(self) -> str:
        return f"SessionDescription({len(self.lines)} session lines, {len(self.media)} media)"

    def copy(self) -> SessionDescription:
        """An independent copy (lines are immutable, so this is cheap; so is what was parsed)."""
        out = SessionDescription(self.lines, [MediaDescription(m.lines) for m in self.media])
        self._share_memo(out)
        for mine, theirs in zip(self.media, out.media, strict=True):
            mine._share_memo(theirs)
        return out

    # -- serialization (RFC 8866 §5: CRLF after every line) -----------------------------

    def to_text(self) -> str:
        out = [str(line) for line in self.lines]
        for m in self.media:
            out.extend(str(line) for line in m.lines)
        return "\r\n".join(out) + "\r\n"

    def __str__(self) -> str:
        return self.to_text()

    def to_bytes(self) -> bytes:
        return self.to_text().encode("utf-8")

    # -- session-level fields --------------------------------------------------------------

    @property
    def version(self) -> int:
        return int(self._values("v")[0])

    @property
    def origin(self) -> Origin:
        """``o=`` (RFC 8866 §5.2)."""
        return self._remember("o", lambda: Origin.parse(self._values("o")[0]))

    @origin.setter
    def origin(self, value: Origin) -> None:
        self._set_lines("o", [str(value)])

    @property
    def session_name(self) -> str:
        """``s=`` (RFC 8866 §5.3)."""
        return self._values("s")[0]

    @session_name.setter
    def session_name(self, value: str) -> None:
        self._set_lines("s", [value])

    @property
    def timings(self) -> list[Timing]:
        """``t=`` lines (RFC 8866 §5.9)."""
        return list(self._remember("t", lambda: tuple(Timing.parse(v) for v in self._values("t"))))

    @property
    def groups(self) -> list[Group]:
        """``a=group`` lines (RFC 5888 §5)."""
        return list(self._parsed_values("group", Group.parse))

    @property
    def bundle_groups(self) -> list[Group]:
        """The ``a=group:BUNDLE`` groups (RFC 8843 §7)."""
        return [g for g in self.groups if g.semantics.upper() == "BUNDLE"]

    @property
    def ice_lite(self) -> bool:
        """``a=ice-lite`` (RFC 8839 §5.3)."""
        return self.has_attribute("ice-lite")

    def media_by_mid(self, mid: str) -> MediaDescription | None:
        return next((m for m in self.media if m.mid == mid), None)

    # -- values a media description inherits from the session level ------------------

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The media-level ``c=``, else the session-level one (RFC 8866 §5.7)."""
        return media.connection or self.connection

    def direction_for(self, media: MediaDescription) -> Direction:
        """Media-level direction, else session-level, else ``sendrecv`` (RFC 8866 §6.7)."""
        return media.direction or self.direction or "sendrecv"

    def ice_credentials_for(self, media: MediaDescription) -> IceCredentials | None:
        """``ice-ufrag``/``ice-pwd`` of the media, else of the session (RFC 8839 §5.4)."""
        ufrag = media.ice_ufrag or self.ice_ufrag
        pwd = media.ice_pwd or self.ice_pwd
        return IceCredentials(ufrag, pwd) if ufrag is not None and pwd is not None else None

    def ice_options_for(self, media: MediaDescription) -> tuple[str, ...]:
        return media.ice_options or self.ice_options

    def fingerprints_for(self, media: MediaDescription) -> list[Fingerprint]:
        """Media-level fingerprints, else session-level ones (RFC 8122 §5)."""
        return media.fingerprints or self.fingerprints

    def setup_for(self, media: MediaDescription) -> Setup | None:
        """Media-level ``a=setup``, else session-level (RFC 4145 §4)."""
        return media.setup or self.setup
