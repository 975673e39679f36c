"""What the model remembers of parsed lines is never stale (webims.sdp.model docstring).

Every property of a parsed description (whose values the parser hands over) equals
the same property of a description built from the same lines and parsed lazily; any
change of the lines — through a setter, an attribute method, or the ``lines`` list
itself — shows at once; values handed out can be changed without effect; copies
diverge; the cache is bounded and evicted sections are parsed again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from webims.sdp import (
    PCMU,
    Attribute,
    Candidate,
    Connection,
    Line,
    MediaDescription,
    SdpError,
    SessionDescription,
    parse,
)
from webims.sdp import model as sdp_model

FIXTURES = Path(__file__).parent / "fixtures"
ALL = sorted(p.name for p in FIXTURES.glob("*.sdp"))

_SECTION = ("attributes", "connection", "bandwidths", "direction", "ice_ufrag", "ice_pwd", "ice_options",
            "fingerprints", "setup")  # fmt: skip
_MEDIA = ("mline", "media", "port", "proto", "fmts", "is_rejected", "is_rtp", "mid", "candidates",
          "end_of_candidates", "ice_credentials", "rtcp_mux", "rtcp_rsize", "is_bundle_only", "rtcp",
          "extmaps", "ssrcs", "ssrc_groups", "msids", "crypto", "preconditions", "ptime", "maxptime",
          "rtpmaps", "codecs")  # fmt: skip
_SESSION = ("version", "origin", "session_name", "timings", "groups", "bundle_groups", "ice_lite")


def fresh(sdp: SessionDescription) -> SessionDescription:
    """The same lines in new sections: nothing parsed yet."""
    return SessionDescription(list(sdp.lines), [MediaDescription(list(m.lines)) for m in sdp.media])


def view(sdp: SessionDescription) -> dict[str, Any]:
    """Every property value (and the lookups by name) of ``sdp``."""
    out: dict[str, Any] = {f"s.{name}": getattr(sdp, name) for name in (*_SECTION, *_SESSION)}
    for i, m in enumerate(sdp.media):
        out |= {f"{i}.{name}": getattr(m, name) for name in (*_SECTION, *_MEDIA)}
        for attr in m.attributes:
            out[f"{i}.a.{attr.name}"] = (
                m.get_attributes(attr.name), m.attribute(attr.name), m.attribute_value(attr.name),
                m.attribute_values(attr.name), m.has_attribute(attr.name),
            )  # fmt: skip
        out[f"{i}.for"] = (
            sdp.connection_for(m), sdp.direction_for(m), sdp.ice_credentials_for(m), sdp.ice_options_for(m),
            sdp.fingerprints_for(m), sdp.setup_for(m),
        )  # fmt: skip
        out[f"{i}.codec"] = [m.codec(int(f)) for f in m.fmts if f.isdigit()]
    return out


@pytest.mark.parametrize("name", ALL)
def test_parsed_values_equal_lazily_parsed_ones(name: str) -> None:
    sdp = parse((FIXTURES / name).read_bytes())
    expected = view(fresh(sdp))
    assert view(sdp) == expected
    assert view(sdp) == expected  # read again: from the cache
    assert view(sdp.copy()) == expected


def test_changing_the_lines_list_itself_is_seen() -> None:
    m = parse((FIXTURES / "chrome_offer_audio.sdp").read_bytes()).media[0]
    pcmu = m.codec(0)
    assert pcmu is not None and m.attribute_value("mid") == "0" and len(m.candidates) == 3
    index = next(i for i, line in enumerate(m.lines) if line.value == "rtpmap:0 PCMU/8000")
    m.lines[index] = Line("a", "rtpmap:0 PCMU/16000")  # same length, same position
    changed = m.codec(0)
    assert changed is not None and changed.clock_rate == 16000 and m.rtpmaps[0].clock_rate == 16000
    m.lines.append(Line("a", "candidate:9 1 udp 1 192.0.2.9 4000 typ host"))
    assert len(m.candidates) == 4 and m.candidates[-1].address == "192.0.2.9"
    del m.lines[[line.value for line in m.lines].index("mid:0")]
    assert m.mid is None and not m.has_attribute("mid")
    m.lines[0] = Line("m", "audio 9 UDP/TLS/RTP/SAVPF 0")
    assert m.fmts == ("0",) and [c.payload_type for c in m.codecs] == [0]
    m.lines = [Line("m", "audio 0 RTP/AVP 8")]
    assert m.port == 0 and m.attributes == [] and m.codecs[0].name == "PCMA"


def test_setters_and_attribute_methods_are_seen() -> None:
    sdp = parse((FIXTURES / "ims_volte_offer.sdp").read_bytes())
    m = sdp.media[0]
    before = m.codecs
    m.set_codecs([PCMU])
    assert m.codecs == [PCMU] != before
    m.connection = Connection("192.0.2.1")
    assert m.connection == Connection("192.0.2.1")
    m.add_attribute(Attribute("x-new", "1"))
    assert m.attribute_value("x-new") == "1"
    m.remove_attributes("x-new")
    assert m.attribute("x-new") is None
    m.direction = "inactive"
    assert m.direction == "inactive" and sdp.direction_for(m) == "inactive"
    sdp.session_name = "changed"
    assert sdp.session_name == "changed"


def test_values_handed_out_are_copies() -> None:
    m = parse((FIXTURES / "chrome_offer_audio.sdp").read_bytes()).media[0]
    m.codecs.clear()
    m.candidates.clear()
    m.attributes.clear()
    m.get_attributes("rtpmap").clear()
    m.rtpmaps.clear()
    m.fingerprints.clear()
    assert m.codecs and m.candidates and m.attributes and m.get_attributes("rtpmap") and m.rtpmaps
    assert m.fingerprints


def test_a_copy_and_its_original_diverge() -> None:
    sdp = parse((FIXTURES / "chrome_offer_audio.sdp").read_bytes())
    copy = sdp.copy()
    assert copy.media[0].codecs == sdp.media[0].codecs
    copy.media[0].set_codecs([PCMU])
    copy.media[0].remove_attributes("candidate")
    assert copy.media[0].codecs == [PCMU] and copy.media[0].candidates == []
    assert len(sdp.media[0].codecs) > 1 and len(sdp.media[0].candidates) == 3
    sdp.media[0].port = 1234
    assert copy.media[0].port != 1234


def test_the_cache_is_bounded_and_evicted_sections_parse_again() -> None:
    data = (FIXTURES / "firefox_offer_audio_video.sdp").read_bytes()
    first = parse(data)
    expected = view(fresh(first))
    for _ in range(sdp_model.MEMO_LIMIT // 2 + 10):  # each parse fills one memo per section
        view(parse(data))
    assert len(sdp_model._MEMOS) <= sdp_model.MEMO_LIMIT
    assert view(first) == expected


def test_a_parse_error_is_raised_every_time() -> None:
    m = MediaDescription([Line("m", "audio 9 RTP/AVP 0"), Line("a", "bad name:x"), Line("a", "ptime:x")])
    for _ in range(2):
        with pytest.raises(SdpError):
            _ = m.attributes
    m.lines[1] = Line("a", "rtcp-mux")
    assert m.rtcp_mux
    for _ in range(2):
        with pytest.raises(SdpError):
            _ = m.ptime
    m.lines[2] = Line("a", "ptime:30")
    assert m.ptime == 30.0


def test_candidate_values_are_the_parsed_lines() -> None:
    sdp = parse((FIXTURES / "chrome_offer_audio.sdp").read_bytes())
    values = sdp.media[0].attribute_values("candidate")
    assert sdp.media[0].candidates == [Candidate.parse(v) for v in values]
