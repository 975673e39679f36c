"""Changing a parsed description re-renders only what changed, in RFC 8866 §5 order."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

import pytest

from webims.sdp import (
    PCMU,
    TELEPHONE_EVENT_8000,
    Attribute,
    Candidate,
    Codec,
    Connection,
    Fingerprint,
    MediaDescription,
    Origin,
    Precondition,
    SdpError,
    SessionDescription,
    answer_setup,
    parse,
    parse_fmtp_parameters,
)

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> SessionDescription:
    return parse((FIXTURES / name).read_bytes())


def changes(before: SessionDescription, after: SessionDescription) -> list[str]:
    diff = difflib.ndiff(before.to_text().splitlines(), after.to_text().splitlines())
    return [d for d in diff if d[:1] in "+-"]


def test_port_change_touches_only_the_m_line() -> None:
    before = load("chrome_offer_audio.sdp")
    after = before.copy()
    after.media[0].port = 40000
    assert changes(before, after) == [
        "- m=audio 54609 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "+ m=audio 40000 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
    ]


def test_origin_and_proto_setters() -> None:
    before = load("ims_volte_offer.sdp")
    after = before.copy()
    o = after.origin
    after.origin = Origin(o.username, o.sess_id, o.sess_version + 1, o.nettype, o.addrtype, o.unicast_address)
    after.media[0].proto = "RTP/AVPF"
    assert changes(before, after) == [
        "- o=- 1718203456 1718203456 IN IP6 2001:db8:1:2::3a",
        "+ o=- 1718203456 1718203457 IN IP6 2001:db8:1:2::3a",
        "- m=audio 31000 RTP/AVP 116 107 118 96 111 110",
        "+ m=audio 31000 RTP/AVPF 116 107 118 96 111 110",
    ]


def test_new_lines_go_where_rfc8866_orders_them() -> None:
    sdp = load("chrome_offer_audio.sdp")
    sdp.connection = Connection("192.0.2.7")
    assert [line.type for line in sdp.lines][:5] == ["v", "o", "s", "c", "t"]
    m = load("ims_volte_offer.sdp").media[0]
    m.connection = Connection("2001:db8::9", "IP6")
    assert [str(line) for line in m.lines[:3]] == [
        "m=audio 31000 RTP/AVP 116 107 118 96 111 110",
        "c=IN IP6 2001:db8::9",
        "b=AS:49",
    ]
    m.set_bandwidth("TIAS", 64000)
    m.set_bandwidth("RS", None)
    assert [str(line) for line in m.lines if line.type == "b"] == ["b=AS:49", "b=RR:1837", "b=TIAS:64000"]
    assert m.lines[5].type == "a"
    m.connection = None
    assert m.connection is None


def test_attribute_operations() -> None:
    m = load("chrome_offer_audio.sdp").media[0]
    index = [str(line) for line in m.lines].index("a=setup:actpass")
    m.set_attribute(Attribute("setup", "active"))
    assert str(m.lines[index]) == "a=setup:active" and m.setup == "active"
    assert m.remove_attributes("candidate", "ssrc") == 5
    assert m.candidates == [] and m.ssrcs == []
    m.direction = "recvonly"
    assert m.direction == "recvonly" and "a=recvonly" in [str(line) for line in m.lines]
    assert len([a for a in m.attributes if a.name in ("sendrecv", "recvonly")]) == 1
    m.mid = "audio"
    assert m.mid == "audio" and m.get_attributes("mid") == [Attribute("mid", "audio")]
    m.set_flag("rtcp-rsize", True)
    m.set_flag("rtcp-mux", False)
    assert m.rtcp_rsize and not m.rtcp_mux
    m.ptime = 20
    assert m.attribute_value("ptime") == "20" and m.ptime == 20.0
    m.add_attribute(Attribute("x-opaque", ""))
    assert str(m.lines[-1]) == "a=x-opaque:" and m.attribute_value("x-opaque") == ""


def test_set_codecs_replaces_the_block_in_place() -> None:
    m = load("chrome_offer_audio.sdp").media[0]
    before = [str(line) for line in m.lines]
    first = before.index("a=rtpmap:111 opus/48000/2")
    m.set_codecs([PCMU, TELEPHONE_EVENT_8000])
    after = [str(line) for line in m.lines]
    assert after[0] == "m=audio 54609 UDP/TLS/RTP/SAVPF 0 101"
    assert after[first : first + 3] == [
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
    ]
    assert after[first + 3 :] == [line for line in before[first:] if line.startswith("a=ssrc")]
    assert m.codecs == [PCMU, TELEPHONE_EVENT_8000]


def test_preconditions_replaced_in_place() -> None:
    m = load("ims_volte_offer.sdp").media[0]
    index = [str(line) for line in m.lines].index("a=curr:qos local none")
    m.set_preconditions(
        [Precondition("curr", "local", "sendrecv"), Precondition("des", "local", "send", "optional")]
    )
    assert [str(line) for line in m.lines[index : index + 3]] == [
        "a=curr:qos local sendrecv",
        "a=des:qos optional local send",
        "a=sendrecv",
    ]


def test_built_descriptions_parse_back() -> None:
    sdp = SessionDescription.create(
        Origin("webims", "42", 1, "IN", "IP4", "192.0.2.1"), "-", Connection("192.0.2.1")
    )
    m = MediaDescription.create("audio", 5004, "RTP/AVP")
    m.set_codecs([PCMU, Codec(96, "opus", 48000, 2, "useinbandfec=1")])
    m.direction = "sendonly"
    sdp.media.append(m)
    text = sdp.to_text()
    assert text == (
        "v=0\r\no=webims 42 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 5004 RTP/AVP 0 96\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 opus/48000/2\r\n"
        "a=fmtp:96 useinbandfec=1\r\na=sendonly\r\n"
    )
    assert parse(text) == sdp
    with pytest.raises(SdpError):
        MediaDescription([])


def test_candidate_rendering_and_trickle_prefix() -> None:
    cand = Candidate(
        "9",
        1,
        "tcp",
        1518280447,
        "192.0.2.5",
        9,
        "host",
        tcptype="active",
        generation=0,
        extensions=(("network-id", "1"),),
    )
    text = "9 1 tcp 1518280447 192.0.2.5 9 typ host tcptype active generation 0 network-id 1"
    assert str(cand) == text
    assert Candidate.parse("candidate:" + text) == cand
    assert cand.to_attribute() == Attribute("candidate", text)


def test_fingerprint_helpers() -> None:
    der = b"\x30\x03\x02\x01\x01"
    fp = Fingerprint.of_certificate(der)
    assert fp.digest == hashlib.sha256(der).digest()
    assert fp.value == fp.value.upper() and fp.value.count(":") == 31
    assert Fingerprint.parse(str(fp)) == fp
    assert fp.matches(Fingerprint("SHA-256", fp.value.lower()))
    assert not fp.matches(Fingerprint.of_certificate(der + b"\x00"))
    with pytest.raises(ValueError):
        Fingerprint.of_certificate(der, "md2")


@pytest.mark.parametrize(
    ("offered", "answered"),
    [("actpass", "active"), ("active", "passive"), ("passive", "active"), ("holdconn", "holdconn")],
)
def test_answer_setup(offered: str, answered: str) -> None:
    assert answer_setup(offered) == answered  # type: ignore[arg-type]


def test_fmtp_parameter_forms() -> None:
    assert parse_fmtp_parameters("mode-change-capability=2; max-red=220; octet-align=1") == {
        "mode-change-capability": "2",
        "max-red": "220",
        "octet-align": "1",
    }
    assert parse_fmtp_parameters("0-15") == {"0-15": None}
    assert parse_fmtp_parameters("Mode-Set=0,2;;") == {"mode-set": "0,2"}
