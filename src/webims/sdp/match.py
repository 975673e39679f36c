"""Codec matching for offer/answer and interworking.

Two payload types carry the same codec when encoding name (case-insensitive),
clock rate and channel count agree (RFC 3264 §6.1, RFC 8866 §6.6) and, for
the payload formats whose fmtp parameters change the bitstream, those agree
too:

* AMR / AMR-WB (RFC 4867 §8.3.1): ``octet-align``, ``crc``,
  ``robust-sorting`` and ``interleaving`` must be equal; two ``mode-set``
  lists must share a mode;
* H.264 (RFC 6184 §8.2.2): same ``packetization-mode`` and profile;
* telephone-event (RFC 4733 §7.1): any event lists meet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from .rtp import Codec

_AMR_SYMMETRIC = ("octet-align", "crc", "robust-sorting", "interleaving")
#: Dynamic payload types handed out by :func:`assign_payload_types`: RFC 3551 §3
#: (96-127) first, then 35-63, which RFC 5761 §4 leaves clear of RTCP with rtcp-mux.
DYNAMIC_PAYLOAD_TYPES: tuple[int, ...] = (*range(96, 128), *range(35, 64))


def same_encoding(a: Codec, b: Codec) -> bool:
    """Same encoding name, clock rate and channels (1 when not given)."""
    return a.encoding == b.encoding


def amr_mode_set(codec: Codec) -> frozenset[int] | None:
    """The ``mode-set`` of an AMR/AMR-WB codec, or None when unrestricted (RFC 4867 §8.1)."""
    value = codec.parameters.get("mode-set")
    if not value:
        return None
    modes: set[int] = set()
    for item in value.split(","):
        item = item.strip()
        if item.isascii() and item.isdigit() and len(item) < 3:
            modes.add(int(item))
    return frozenset(modes)


def _flag(codec: Codec, name: str) -> str:
    value = codec.parameters.get(name)
    return "0" if value is None else value.strip()


def fmtp_compatible(a: Codec, b: Codec) -> bool:
    """True when the fmtp parameters of two same-encoding codecs can interwork."""
    name = a.name.lower()
    if name in ("amr", "amr-wb"):
        if any(_flag(a, p) != _flag(b, p) for p in _AMR_SYMMETRIC):
            return False
        modes_a, modes_b = amr_mode_set(a), amr_mode_set(b)
        return modes_a is None or modes_b is None or bool(modes_a & modes_b)
    if name == "h264":
        if _flag(a, "packetization-mode") != _flag(b, "packetization-mode"):
            return False
        prof_a = (a.parameters.get("profile-level-id") or "42001f")[:2].lower()
        prof_b = (b.parameters.get("profile-level-id") or "42001f")[:2].lower()
        return prof_a == prof_b
    return True


def codecs_compatible(a: Codec, b: Codec) -> bool:
    """Same encoding and interworking fmtp parameters; unknown encodings never match."""
    return bool(a.name) and same_encoding(a, b) and fmtp_compatible(a, b)


def answer_codec(offered: Codec, local: Codec) -> Codec:
    """The answer's version of an offered codec that matches a local one (RFC 3264 §6.1).

    The offered payload type is kept.  AMR/AMR-WB keep the offered
    parameters with ``mode-set`` narrowed to what both allow (RFC 4867
    §8.3.1); other codecs carry the answerer's own fmtp when it has one.
    ``rtcp-fb`` values are those both list.
    """
    feedback = tuple(fb for fb in offered.rtcp_fb if fb in local.rtcp_fb)
    name = offered.name.lower()
    if name in ("amr", "amr-wb"):
        fmtp = offered.fmtp
        modes_o, modes_l = amr_mode_set(offered), amr_mode_set(local)
        if modes_l is not None and modes_o != modes_l:
            common = sorted(modes_l if modes_o is None else modes_o & modes_l)
            items = [i.strip() for i in (offered.fmtp or "").split(";") if i.strip()]
            items = [i for i in items if not i.lower().startswith("mode-set")]
            fmtp = ";".join([f"mode-set={','.join(map(str, common))}", *items])
        return replace(offered, fmtp=fmtp, rtcp_fb=feedback)
    return replace(offered, fmtp=local.fmtp if local.fmtp is not None else offered.fmtp, rtcp_fb=feedback)


def _drop_orphans(codecs: list[Codec]) -> list[Codec]:
    """Drop rtx whose ``apt`` and RED whose primaries are no longer present."""
    pts = {str(c.payload_type) for c in codecs}
    out: list[Codec] = []
    for c in codecs:
        name = c.name.lower()
        if name == "rtx" and c.parameters.get("apt") not in pts:
            continue
        if name == "red" and c.fmtp and not all(p in pts for p in c.fmtp.strip().split("/")):
            continue
        out.append(c)
    return out


def intersect_codecs(
    offered: Sequence[Codec],
    local: Sequence[Codec],
    *,
    prefer_local_order: bool = False,
) -> list[Codec]:
    """The offered codecs the local side supports, as an answer would list them.

    Each result is :func:`answer_codec` of the offered codec and the first
    compatible local one, with the offered payload type.  Offer order unless
    ``prefer_local_order``.
    """
    matched: list[tuple[int, int, Codec]] = []
    for i, o in enumerate(offered):
        for j, mine in enumerate(local):
            if codecs_compatible(o, mine):
                matched.append((j, i, answer_codec(o, mine)))
                break
    if prefer_local_order:
        matched.sort(key=lambda t: (t[0], t[1]))
    return _drop_orphans([c for _, _, c in matched])


def common_codecs(
    a: Sequence[Codec], b: Sequence[Codec], *, include_auxiliary: bool = False
) -> list[tuple[Codec, Codec]]:
    """Pairs of compatible codecs of ``a`` and ``b`` (in ``a``'s order).

    Auxiliary formats (telephone-event, CN, rtx, RED, FEC) are left out
    unless ``include_auxiliary``: they are no reason to share media.
    """
    pairs: list[tuple[Codec, Codec]] = []
    for x in a:
        if x.is_auxiliary and not include_auxiliary:
            continue
        y = next((y for y in b if codecs_compatible(x, y)), None)
        if y is not None:
            pairs.append((x, y))
    return pairs


def limit_codecs(codecs: Sequence[Codec], count: int) -> list[Codec]:
    """The first ``count`` media codecs, with the auxiliary ones whose clock rate they use.

    (An IMS answer usually carries one speech codec and the telephone-event
    of its clock rate, TS 26.114.)
    """
    media = [c for c in codecs if not c.is_auxiliary][:count]
    clocks = {c.clock_rate for c in media}
    keep = {id(c) for c in media}
    return _drop_orphans([c for c in codecs if id(c) in keep or (c.is_auxiliary and c.clock_rate in clocks)])


def assign_payload_types(codecs: Sequence[Codec], reserved: Iterable[int] = ()) -> list[Codec]:
    """Give each codec a payload type not used twice and not in ``reserved``.

    Static payload types carrying their RFC 3551 encoding keep their number.
    A dynamic codec keeps its number if still free, otherwise it gets the first
    free one of :data:`DYNAMIC_PAYLOAD_TYPES`.  References in ``apt`` (rtx)
    are renumbered along.
    """
    used = set(reserved)
    out: list[Codec] = []
    moved: dict[int, int] = {}
    for c in codecs:
        pt = c.payload_type
        if pt in used or (pt < 96 and not c.is_static and pt not in range(35, 64)):
            pt = next((p for p in DYNAMIC_PAYLOAD_TYPES if p not in used), -1)
            if pt < 0:
                raise ValueError("no free RTP payload type")
            moved[c.payload_type] = pt
        used.add(pt)
        out.append(c.with_payload_type(pt))
    if moved:
        fixed: list[Codec] = []
        for c in out:
            apt = c.parameters.get("apt") if c.name.lower() == "rtx" else None
            if apt is not None and apt.isdigit() and int(apt) in moved:
                c = replace(c, fmtp=f"apt={moved[int(apt)]}")
            fixed.append(c)
        out = fixed
    return out
