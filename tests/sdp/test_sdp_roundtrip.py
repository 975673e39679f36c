"""Every fixture parses and serializes back to the same bytes (DESIGN.md §6.6)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from webims.sdp import (
    Candidate,
    Crypto,
    Extmap,
    Fingerprint,
    Fmtp,
    Group,
    Msid,
    Precondition,
    Rtcp,
    RtcpFb,
    Rtpmap,
    Ssrc,
    SsrcGroup,
    parse,
)
from webims.sdp.lines import Bandwidth, Connection, MediaLine, Origin, Timing

FIXTURES = Path(__file__).parent / "fixtures"
ALL = sorted(p.name for p in FIXTURES.glob("*.sdp"))


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_fixture_set_is_complete() -> None:
    names = set(ALL)
    for browser in ("chrome", "firefox", "safari"):
        assert any(n.startswith(f"{browser}_offer") for n in names), browser
        assert any(n.startswith(f"{browser}_answer") for n in names), browser
    assert sum(n.startswith("ims_") for n in names) >= 4


@pytest.mark.parametrize("name", ALL)
def test_round_trip_is_byte_exact(name: str) -> None:
    data = load(name)
    assert data.endswith(b"\r\n") and b"\r\n\r\n" not in data
    sdp = parse(data)
    assert sdp.to_bytes() == data
    assert parse(sdp.to_text()).to_bytes() == data  # str input too


@pytest.mark.parametrize("name", ALL)
def test_lf_input_serializes_with_crlf(name: str) -> None:
    data = load(name)
    assert parse(data.replace(b"\r\n", b"\n")).to_bytes() == data


@pytest.mark.parametrize("name", ALL)
def test_copy_is_equal_and_independent(name: str) -> None:
    sdp = parse(load(name))
    twin = sdp.copy()
    assert twin == sdp
    twin.media[0].port = 1 if sdp.media[0].port != 1 else 2
    assert twin != sdp
    assert sdp.to_bytes() == load(name)


# Typed values render back to the exact text they were parsed from, for every line of every
# fixture: a changed description re-renders a value in the form the browsers and UEs use.
_TYPED: dict[str, Callable[[str], object]] = {
    "candidate": Candidate.parse,
    "fingerprint": Fingerprint.parse,
    "rtpmap": Rtpmap.parse,
    "fmtp": Fmtp.parse,
    "rtcp-fb": RtcpFb.parse,
    "extmap": Extmap.parse,
    "ssrc": Ssrc.parse,
    "ssrc-group": SsrcGroup.parse,
    "msid": Msid.parse,
    "rtcp": Rtcp.parse,
    "group": Group.parse,
    "crypto": Crypto.parse,
    "curr": lambda v: Precondition.parse("curr", v),
    "des": lambda v: Precondition.parse("des", v),
    "conf": lambda v: Precondition.parse("conf", v),
}
_LINES: dict[str, Callable[[str], object]] = {
    "o": Origin.parse,
    "c": Connection.parse,
    "b": Bandwidth.parse,
    "t": Timing.parse,
    "m": MediaLine.parse,
}


@pytest.mark.parametrize("name", ALL)
def test_typed_values_render_exactly(name: str) -> None:
    sdp = parse(load(name))
    checked = 0
    for section in [sdp, *sdp.media]:
        for line in section.lines:
            if line.type in _LINES:
                assert str(_LINES[line.type](line.value)) == line.value
                checked += 1
        for attr in section.attributes:
            if attr.name in _TYPED and attr.value is not None:
                assert str(_TYPED[attr.name](attr.value)) == attr.value, attr
                checked += 1
    assert checked >= 5
