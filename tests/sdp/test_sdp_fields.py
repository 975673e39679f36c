"""Structured access to real descriptions, field by field."""

from __future__ import annotations

from pathlib import Path

from webims.sdp import (
    Bandwidth,
    Candidate,
    Codec,
    Connection,
    Crypto,
    Extmap,
    Fingerprint,
    Group,
    IceCredentials,
    Msid,
    Origin,
    Precondition,
    Rtcp,
    SessionDescription,
    Ssrc,
    SsrcGroup,
    Timing,
    parse,
    preconditions_met,
)

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> SessionDescription:
    return parse((FIXTURES / name).read_bytes())


def test_chrome_audio_offer() -> None:
    sdp = load("chrome_offer_audio.sdp")
    assert sdp.version == 0
    assert sdp.origin == Origin("-", "1158092847045414605", 2, "IN", "IP4", "127.0.0.1")
    assert sdp.session_name == "-"
    assert sdp.timings == [Timing(0, 0)]
    assert sdp.connection is None
    assert sdp.groups == [Group("BUNDLE", ("0",))]
    assert sdp.bundle_groups == sdp.groups
    assert sdp.has_attribute("extmap-allow-mixed")
    assert sdp.attribute_value("msid-semantic") == " WMS b7decc0c-5d96-4f7f-a65b-eda9cf0c26ef"
    assert sdp.ice_lite is False
    assert len(sdp.media) == 1

    m = sdp.media[0]
    assert (m.media, m.port, m.proto) == ("audio", 54609, "UDP/TLS/RTP/SAVPF")
    assert m.fmts == ("111", "63", "9", "0", "8", "13", "110", "126")
    assert m.connection == Connection("203.0.113.77")
    assert m.rtcp == Rtcp(9, "IN", "IP4", "0.0.0.0")
    assert m.mid == "0" and sdp.media_by_mid("0") is m
    assert m.ice_credentials == IceCredentials("DMpg", "0TMkxpdzPaEMM1ZA7V0FhHVJ")
    assert sdp.ice_credentials_for(m) == m.ice_credentials
    assert m.ice_options == ("trickle",)
    assert m.fingerprints == [
        Fingerprint(
            "sha-256",
            "C1:74:6F:4D:DB:1C:C0:0F:A8:CF:B9:30:D4:E1:A9:1E:3B:5C:1F:94:A6:6A:05:AB:08:79:7F:B8:BE:DA:17:4A",
        )
    ]
    assert m.fingerprints[0].digest[:3] == bytes([0xC1, 0x74, 0x6F])
    assert m.setup == "actpass" and sdp.setup_for(m) == "actpass"
    assert m.direction == "sendrecv" and sdp.direction_for(m) == "sendrecv"
    assert m.rtcp_mux and not m.rtcp_rsize and not m.end_of_candidates and not m.is_bundle_only

    host, tcp, srflx = m.candidates
    assert host == Candidate(
        "3352124927",
        1,
        "udp",
        2122260223,
        "192.168.1.23",
        54609,
        "host",
        generation=0,
        extensions=(("network-id", "1"), ("network-cost", "10")),
    )
    assert (tcp.transport, tcp.port, tcp.tcptype, tcp.priority) == ("tcp", 9, "active", 1518280447)
    assert (srflx.type, srflx.related_address, srflx.related_port) == ("srflx", "192.168.1.23", 54609)
    assert srflx.extension("network-cost") == "10" and srflx.extension("ufrag") is None

    assert m.extmaps == [
        Extmap(1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
        Extmap(2, "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
        Extmap(3, "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"),
        Extmap(4, "urn:ietf:params:rtp-hdrext:sdes:mid"),
    ]
    stream, track = "b7decc0c-5d96-4f7f-a65b-eda9cf0c26ef", "4243ed52-566b-49d7-855a-45f8d1a6e55e"
    assert m.msids == [Msid(stream, track)]
    assert m.ssrcs == [
        Ssrc(2610631462, "cname", "jGHb6HrlEOS47Wgj"),
        Ssrc(2610631462, "msid", f"{stream} {track}"),
    ]
    assert m.ptime is None and m.maxptime is None

    opus, red, g722, pcmu, pcma, cn, te48, te8 = m.codecs
    assert opus == Codec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1", ("transport-cc",))
    assert opus.parameters == {"minptime": "10", "useinbandfec": "1"}
    assert red == Codec(63, "red", 48000, 2, "111/111") and red.is_auxiliary
    assert g722 == Codec(9, "G722", 8000) and g722.is_static
    assert (pcmu.name, pcmu.payload_type, pcma.name, cn.name) == ("PCMU", 0, "PCMA", "CN")
    assert te48 == Codec(110, "telephone-event", 48000) and te48.is_telephone_event
    assert te8.encoding == ("telephone-event", 8000, 1)
    assert m.codec(126) == te8 and m.codec(96) is None


def test_firefox_offer_session_level_values() -> None:
    sdp = load("firefox_offer_audio_video.sdp")
    assert sdp.origin.username == "mozilla...THIS_IS_SDPARTA-82.0.3"
    assert sdp.origin.sess_version == 0
    assert sdp.direction == "sendrecv"
    assert sdp.ice_options == ("trickle",)
    assert sdp.groups == [Group("BUNDLE", ("0", "1"))]
    assert sdp.attribute_value("msid-semantic") == "WMS *"
    fp = sdp.fingerprints[0]
    assert fp.algorithm == "sha-256" and len(fp.digest) == 32
    audio, video = sdp.media
    assert audio.fingerprints == [] and sdp.fingerprints_for(audio) == [fp] == sdp.fingerprints_for(video)
    assert audio.setup == "actpass"
    assert sdp.ice_credentials_for(audio) == sdp.ice_credentials_for(video)
    assert audio.ice_ufrag is not None and len(audio.ice_ufrag) == 8
    assert audio.connection == Connection("198.51.100.20")
    assert audio.rtcp == Rtcp(42661, "IN", "IP4", "203.0.113.176")

    cands = audio.candidates
    assert len(cands) == 8
    assert [c.component for c in cands] == [1, 1, 2, 2, 1, 2, 1, 2]
    relay = cands[6]
    assert (relay.type, relay.transport, relay.priority) == ("relay", "UDP", 92217087)
    assert (relay.related_address, relay.related_port, relay.generation) == ("198.51.100.20", 55324, None)
    assert cands[1].tcptype == "active" and cands[1].transport == "TCP"

    assert audio.extmaps[1] == Extmap(2, "urn:ietf:params:rtp-hdrext:csrc-audio-level", "recvonly")
    assert [c.name for c in audio.codecs] == ["opus", "G722", "PCMU", "PCMA", "telephone-event"]
    assert audio.codec(109) == Codec(109, "opus", 48000, 2, "maxplaybackrate=48000;stereo=1;useinbandfec=1")
    assert audio.codec(9) == Codec(9, "G722", 8000, 1)
    assert audio.codec(101) == Codec(101, "telephone-event", 8000, None, "0-15")
    assert audio.msids[0].stream.startswith("{") and audio.ssrcs[0].attribute == "cname"

    assert video.mid == "1" and video.rtcp_rsize
    h264 = video.codec(126)
    assert h264 is not None and h264.parameters["packetization-mode"] == "1"
    assert h264.rtcp_fb == ("nack", "nack pli", "ccm fir", "goog-remb", "transport-cc")
    assert video.codec(124) == Codec(124, "rtx", 90000, None, "apt=120")
    assert video.ssrc_groups == [SsrcGroup("FID", (video.ssrcs[0].ssrc, video.ssrcs[1].ssrc))]
    assert video.extmaps[3].direction == "recvonly"


def test_firefox_answer() -> None:
    sdp = load("firefox_answer_audio.sdp")
    m = sdp.media[0]
    assert sdp.setup_for(m) == "active"
    assert m.end_of_candidates
    assert m.codec(126) == Codec(126, "telephone-event", 8000, 1, "0-15")
    assert [c.port for c in m.candidates] == [50478, 9]


def test_safari_offer() -> None:
    sdp = load("safari_offer_audio_video.sdp")
    audio, video = sdp.media
    host, srflx = audio.candidates
    assert host.address.endswith(".local") and host.extensions == (("network-cost", "999"),)
    assert (srflx.related_address, srflx.related_port) == ("0.0.0.0", 0)
    assert audio.ice_credentials == IceCredentials("l8oP", "K+HJN45P/ED75cNRqsKz5b70")
    assert video.codecs[0].name == "H264"
    assert video.codecs[0].parameters["profile-level-id"] == "640c1f"
    assert len(video.ssrc_groups) == 1 and video.ssrc_groups[0].semantics == "FID"


def test_ims_volte_offer() -> None:
    sdp = load("ims_volte_offer.sdp")
    assert sdp.origin == Origin("-", "1718203456", 1718203456, "IN", "IP6", "2001:db8:1:2::3a")
    assert sdp.connection == Connection("2001:db8:1:2::3a", "IP6")
    assert sdp.bandwidths == [Bandwidth("AS", 49)]
    m = sdp.media[0]
    assert (m.port, m.proto, m.connection) == (31000, "RTP/AVP", None)
    assert sdp.connection_for(m) == sdp.connection
    assert m.bandwidth("AS") == 49 and m.bandwidth("rs") == 612 and m.bandwidth("RR") == 1837
    assert m.bandwidth("TIAS") is None
    assert m.ptime == 20 and m.maxptime == 240
    assert m.direction == "sendrecv"
    wb, wb_oa, nb, nb_oa, te16, te8 = m.codecs
    assert wb == Codec(116, "AMR-WB", 16000, 1, "mode-change-capability=2;max-red=0")
    assert wb_oa.parameters == {"octet-align": "1", "mode-change-capability": "2", "max-red": "0"}
    assert (nb.name, nb.clock_rate, nb_oa.parameters.get("octet-align")) == ("AMR", 8000, "1")
    assert te16 == Codec(111, "telephone-event", 16000, None, "0-15")
    assert te16.parameters == {"0-15": None}
    assert te8.clock_rate == 8000
    assert m.preconditions == [
        Precondition("curr", "local", "none"),
        Precondition("curr", "remote", "none"),
        Precondition("des", "local", "sendrecv", "mandatory"),
        Precondition("des", "remote", "sendrecv", "optional"),
    ]
    assert not preconditions_met(m.preconditions)
    assert m.ice_credentials is None and m.fingerprints == [] and m.mid is None and not m.rtcp_mux


def test_ims_answer_and_update_preconditions() -> None:
    answer = load("ims_volte_answer_183.sdp").media[0]
    assert Precondition("conf", "remote", "sendrecv") in answer.preconditions
    assert answer.preconditions[3] == Precondition("des", "remote", "sendrecv", "mandatory")
    update = load("ims_volte_update.sdp")
    assert update.origin.sess_version == 1718203457
    pre = update.media[0].preconditions
    assert pre[0] == Precondition("curr", "local", "sendrecv")
    assert not preconditions_met(pre)  # the remote segment is still "none"


def test_ims_mrf_answer() -> None:
    sdp = load("ims_mrf_pcmu_answer.sdp")
    m = sdp.media[0]
    assert [c.name for c in m.codecs] == ["PCMU", "PCMA", "telephone-event"]
    assert m.rtcp == Rtcp(20001, "IN", "IP4", "192.0.2.40")
    assert [(b.type, b.value) for b in m.bandwidths] == [("AS", 80), ("RS", 800), ("RR", 2400)]
    assert sdp.session_name == "MRF" and sdp.origin.sess_version == 82646


def test_ims_sdes_offer() -> None:
    m = load("ims_sdes_offer.sdp").media[0]
    assert m.proto == "RTP/SAVP"
    first, second = m.crypto
    assert first == Crypto(
        1,
        "AES_CM_128_HMAC_SHA1_80",
        ("inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",),
        ("UNENCRYPTED_SRTCP",),
    )
    assert first.inline_keys == ["WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"]
    assert (second.tag, second.suite, second.session_params) == (2, "AES_CM_128_HMAC_SHA1_32", ())
    wb = m.codec(104)
    assert wb is not None and wb.parameters["mode-set"] == "0,1,2"


def test_rfc8866_example() -> None:
    sdp = load("rfc8866_example.sdp")
    assert sdp.origin == Origin("jdoe", "3724394400", 3724394405, "IN", "IP4", "198.51.100.1")
    assert sdp.session_name == "Call to John Smith"
    assert [line.value for line in sdp.lines if line.type in "iuep"] == [
        "SDP Offer #1",
        "http://www.jdoe.example.com/home.html",
        "Jane Doe <jane@jdoe.example.com>",
        "+1 617 555-6011",
    ]
    a1, a2, video = sdp.media
    assert (a1.port, a2.port, video.port) == (49170, 49180, 51372)
    assert a1.codecs == [Codec(0, "PCMU", 8000)]
    assert sdp.connection_for(a1) == Connection("198.51.100.1")
    assert sdp.connection_for(video) == Connection("2001:db8::2", "IP6")
    assert video.codecs == [Codec(99, "h263-1998", 90000)]


def test_rfc8866_timing_and_multicast() -> None:
    sdp = load("rfc8866_timing.sdp")
    assert sdp.timings == [Timing(3034423619, 3042462419)]
    assert sdp.connection == Connection("233.252.0.1", "IP4", "IN", ttl=127)
    assert [line.value for line in sdp.lines if line.type == "r"] == ["604800 3600 0 90000", "7d 1h 0 25h"]
    assert sdp.direction == "recvonly" and sdp.direction_for(sdp.media[1]) == "recvonly"
    assert sdp.media[1].mline.port_count == 2
