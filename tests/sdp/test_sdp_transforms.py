"""The WebRTC <-> IMS transforms of the media IWF, checked field by field on real descriptions."""

from __future__ import annotations

from pathlib import Path

import pytest

from webims.sdp import (
    AMR_WB,
    AMR_WB_OCTET_ALIGNED,
    OPUS,
    PCMU,
    Attribute,
    Bandwidth,
    Candidate,
    Codec,
    Connection,
    Fingerprint,
    Group,
    IceCredentials,
    IceEndpoint,
    MediaAnswer,
    Msid,
    Origin,
    Precondition,
    RtpEndpoint,
    SdpError,
    SessionDescription,
    Ssrc,
    can_share_media,
    create_answer,
    ims_to_webrtc,
    parse,
    qos_answer,
    qos_offer,
    webrtc_to_ims,
)

FIXTURES = Path(__file__).parent / "fixtures"

# Attributes that must never reach the IMS side (RFC 8839, RFC 8842, RFC 8843, RFC 5576, RFC 8830, RFC 8285).
WEBRTC_ONLY = {
    "candidate",
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "end-of-candidates",
    "fingerprint",
    "setup",
    "tls-id",
    "rtcp-mux",
    "rtcp-rsize",
    "group",
    "mid",
    "bundle-only",
    "ssrc",
    "ssrc-group",
    "msid",
    "msid-semantic",
    "extmap",
    "extmap-allow-mixed",
    "rtcp-fb",
}

IWF_RTP = RtpEndpoint("192.0.2.10", 30000)
IWF_FP = Fingerprint.from_digest("sha-256", bytes(range(32)))
IWF_CANDIDATES = (
    Candidate("1", 1, "udp", 2130706431, "198.51.100.9", 40000, "host", generation=0),
    Candidate("2", 1, "tcp", 1518280447, "198.51.100.9", 9, "host", tcptype="passive", generation=0),
)
IWF_ICE = IceEndpoint("iwF1", "iwfPasswordIsLongEnough1", (IWF_FP,), IWF_CANDIDATES)


def load(name: str) -> SessionDescription:
    return parse((FIXTURES / name).read_bytes())


def attribute_names(sdp: SessionDescription) -> set[str]:
    return {a.name for section in (sdp, *sdp.media) for a in section.attributes}


def reparsed(sdp: SessionDescription) -> SessionDescription:
    """The description survives its own parser unchanged (it is valid SDP)."""
    again = parse(sdp.to_bytes())
    assert again == sdp
    return again


# --- WebRTC -> IMS ------------------------------------------------------------------------


def test_chrome_offer_to_ims_passthrough_exact() -> None:
    ims = reparsed(webrtc_to_ims(load("chrome_offer_audio.sdp"), IWF_RTP))
    assert ims.to_text() == (
        "v=0\r\n"
        "o=- 1158092847045414605 2 IN IP4 192.0.2.10\r\n"
        "s=-\r\n"
        "c=IN IP4 192.0.2.10\r\n"
        "t=0 0\r\n"
        "m=audio 30000 RTP/AVP 111 9 0 8 13 110 126\r\n"
        "a=rtpmap:111 opus/48000/2\r\n"
        "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
        "a=rtpmap:9 G722/8000\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:13 CN/8000\r\n"
        "a=rtpmap:110 telephone-event/48000\r\n"
        "a=rtpmap:126 telephone-event/8000\r\n"
        "a=sendrecv\r\n"
    )


def test_chrome_offer_to_ims_with_transcoding_codecs() -> None:
    chrome = load("chrome_offer_audio.sdp")
    before = chrome.to_bytes()
    ims = reparsed(
        webrtc_to_ims(
            chrome,
            RtpEndpoint("2001:db8::10", 30002, rtcp_port=30010),
            codecs=[AMR_WB, AMR_WB_OCTET_ALIGNED, PCMU],
            origin=Origin("iwf", "77", 1, "IN", "IP6", "2001:db8::10"),
            ptime=20,
            bandwidths=[Bandwidth("AS", 49), Bandwidth("RS", 612), Bandwidth("RR", 1837)],
            preconditions=qos_offer(),
        )
    )
    assert chrome.to_bytes() == before  # pure: the input is unchanged
    assert ims.origin == Origin("iwf", "77", 1, "IN", "IP6", "2001:db8::10")
    assert ims.connection == Connection("2001:db8::10", "IP6")
    assert ims.attributes == []
    (m,) = ims.media
    assert (m.media, m.port, m.proto, m.connection) == ("audio", 30002, "RTP/AVP", None)
    assert [(b.type, b.value) for b in m.bandwidths] == [("AS", 49), ("RS", 612), ("RR", 1837)]
    assert m.codecs == [
        AMR_WB,
        AMR_WB_OCTET_ALIGNED,
        PCMU,
        Codec(101, "telephone-event", 16000, None, "0-15"),  # none offered at 16000: made
        Codec(126, "telephone-event", 8000),  # the browser's, for PCMU
    ]
    assert m.ptime == 20
    assert m.rtcp is not None and m.rtcp.port == 30010
    assert m.preconditions == qos_offer()
    assert m.direction == "sendrecv"
    assert not attribute_names(ims) & WEBRTC_ONLY


def test_firefox_offer_to_ims_rejects_video_keeps_order() -> None:
    firefox = load("firefox_offer_audio_video.sdp")
    ims = reparsed(webrtc_to_ims(firefox, IWF_RTP))
    assert ims.direction == "sendrecv"  # Firefox writes it at session level
    audio, video = ims.media
    assert audio.port == 30000 and audio.rtcp is None  # Firefox's a=rtcp described its own RTCP
    assert [c.payload_type for c in audio.codecs] == [109, 9, 0, 8, 101]
    assert audio.codec(101) == Codec(101, "telephone-event", 8000, None, "0-15")
    assert str(video.lines[0]) == "m=video 0 RTP/AVP 120" and len(video.lines) == 1
    assert not attribute_names(ims) & WEBRTC_ONLY


def test_one_endpoint_per_m_line() -> None:
    firefox = load("firefox_offer_audio_video.sdp")
    ims = reparsed(webrtc_to_ims(firefox, [IWF_RTP, RtpEndpoint("192.0.2.11", 32000)]))
    audio, video = ims.media
    assert audio.connection is None and ims.connection_for(audio) == Connection("192.0.2.10")
    assert video.connection == Connection("192.0.2.11") and video.port == 32000
    assert [c.name for c in video.codecs] == ["VP8", "VP9", "H264", "H264"]  # rtx gone
    assert all(c.rtcp_fb == () for c in video.codecs)  # RTP/AVP has no feedback (RFC 4585)
    with pytest.raises(SdpError) as info:
        webrtc_to_ims(firefox, [None, None])
    assert info.value.status == 488


# --- IMS -> WebRTC ------------------------------------------------------------------------


def test_volte_offer_to_browser_offer() -> None:
    volte = load("ims_volte_offer.sdp")
    endpoint = IceEndpoint(
        "iwF1",
        "iwfPasswordIsLongEnough1",
        (IWF_FP,),
        IWF_CANDIDATES,
        ice_options=("trickle",),
        msid=Msid("iwf", "audio0"),
        ssrc=1234,
        cname="iwfcname",
    )
    web = reparsed(ims_to_webrtc(volte, endpoint, codecs=[OPUS, PCMU]))
    assert web.origin == Origin("-", "1718203456", 1718203456, "IN", "IP4", "198.51.100.9")
    assert web.connection is None
    assert web.groups == [Group("BUNDLE", ("0",))]
    (m,) = web.media
    assert (m.port, m.proto) == (40000, "UDP/TLS/RTP/SAVPF")
    assert m.connection == Connection("198.51.100.9")
    assert m.candidates == list(IWF_CANDIDATES)
    assert m.ice_credentials == IceCredentials("iwF1", "iwfPasswordIsLongEnough1")
    assert m.ice_options == ("trickle",)
    assert m.fingerprints == [IWF_FP]
    assert m.setup == "actpass"
    assert m.mid == "0"
    assert m.direction == "sendrecv"
    assert m.rtcp_mux and m.rtcp_rsize and m.end_of_candidates
    assert m.msids == [Msid("iwf", "audio0")] and m.ssrcs == [Ssrc(1234, "cname", "iwfcname")]
    assert m.codecs == [
        OPUS,
        PCMU,
        Codec(101, "telephone-event", 48000, None, "0-15"),
        Codec(110, "telephone-event", 8000, None, "0-15"),  # the UE's own PT for 8000
    ]
    assert (m.ptime, m.maxptime) == (20, 240)
    assert m.preconditions == [] and m.bandwidths == [] and m.crypto == []
    # What the browser gets is a description a browser can take: DTLS family, ICE, opus.
    assert can_share_media(web, load("chrome_offer_audio.sdp"))


def test_trickle_endpoint_without_candidates() -> None:
    endpoint = IceEndpoint(
        "iwF1", "iwfPasswordIsLongEnough1", (IWF_FP,), end_of_candidates=False, ice_lite=True
    )
    web = reparsed(ims_to_webrtc(load("ims_mrf_pcmu_answer.sdp"), endpoint))
    m = web.media[0]
    assert (m.port, m.connection) == (9, Connection("0.0.0.0"))
    assert m.candidates == [] and not m.end_of_candidates
    assert web.ice_lite
    assert m.rtcp is None  # the MRF's a=rtcp does not describe the IWF
    assert [c.name for c in m.codecs] == ["PCMU", "PCMA", "telephone-event"]


def test_wic_originated_call_answer_back_to_chrome() -> None:
    chrome = load("chrome_offer_audio.sdp")
    ims_offer = webrtc_to_ims(chrome, IWF_RTP, codecs=[AMR_WB_OCTET_ALIGNED], preconditions=qos_offer())
    # The terminating UE answers the IWF's IMS offer (RFC 3264) ...
    ims_answer = create_answer(
        ims_offer,
        [
            MediaAnswer(
                [AMR_WB_OCTET_ALIGNED, Codec(99, "telephone-event", 16000, None, "0-15")],
                40012,
                attributes=[
                    p.to_attribute() for p in qos_answer(ims_offer.media[0].preconditions, confirm=True)
                ],
            )
        ],
        origin=Origin("-", "1", 1, "IN", "IP4", "192.0.2.50"),
        connection=Connection("192.0.2.50"),
    )
    assert [c.payload_type for c in ims_answer.media[0].codecs] == [105, 101]
    # ... and the IWF answers Chrome, transcoding AMR-WB <-> opus.
    web = reparsed(ims_to_webrtc(ims_answer, IWF_ICE, offer=chrome, codecs=[OPUS]))
    assert web.groups == [Group("BUNDLE", ("0",))]
    (m,) = web.media
    assert m.mid == "0"
    assert m.setup == "active"  # the answerer to actpass (RFC 5763 §5)
    assert m.codecs == [
        Codec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1"),  # chrome's PT; no common rtcp-fb
        Codec(110, "telephone-event", 48000, None, "0-15"),  # chrome's PT for telephone-event/48000
    ]
    assert not m.rtcp_rsize  # Chrome did not offer it for audio
    assert m.rtcp_mux and m.candidates == list(IWF_CANDIDATES) and m.fingerprints == [IWF_FP]
    assert m.preconditions == []
    assert m.direction == "sendrecv"


def test_ims_originated_call_browser_answer_back_to_ims() -> None:
    volte = load("ims_volte_offer.sdp")
    browser_offer = ims_to_webrtc(volte, IWF_ICE, codecs=[OPUS, PCMU])
    browser_answer = load("chrome_answer_audio.sdp")  # opus, PCMU, PCMA, telephone-event/8000
    assert can_share_media(browser_offer, browser_answer)
    answer = reparsed(
        webrtc_to_ims(
            browser_answer,
            RtpEndpoint("2001:db8::10", 30004),
            offer=volte,
            codecs=[AMR_WB],
            preconditions=qos_answer(volte.media[0].preconditions, "sendrecv", confirm=True),
        )
    )
    assert answer.connection == Connection("2001:db8::10", "IP6")
    assert answer.origin.unicast_address == "2001:db8::10" and answer.origin.addrtype == "IP6"
    (m,) = answer.media
    assert (m.port, m.proto) == (30004, "RTP/AVP")
    # The UE's PTs: 116 is its bandwidth-efficient AMR-WB, 111 its telephone-event/16000.
    assert m.codecs == [
        Codec(116, "AMR-WB", 16000, 1, "mode-change-capability=2;max-red=0"),
        Codec(111, "telephone-event", 16000, None, "0-15"),
    ]
    assert m.preconditions == [
        Precondition("curr", "local", "sendrecv"),
        Precondition("curr", "remote", "none"),
        Precondition("des", "local", "sendrecv", "mandatory"),
        Precondition("des", "remote", "sendrecv", "mandatory"),
        Precondition("conf", "remote", "sendrecv"),
    ]
    assert not attribute_names(answer) & WEBRTC_ONLY
    # Without transcoding there is nothing in common: the IWF must say 488.
    with pytest.raises(SdpError) as info:
        webrtc_to_ims(browser_answer, IWF_RTP, offer=volte)
    assert info.value.status == 488


def test_answer_to_firefox_with_rejected_video() -> None:
    firefox = load("firefox_offer_audio_video.sdp")
    ims_offer = webrtc_to_ims(firefox, IWF_RTP, codecs=[PCMU])
    assert [m.port for m in ims_offer.media] == [30000, 0]
    ims_answer = load("ims_mrf_pcmu_answer.sdp")
    ims_answer.media.append(
        parse(b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 120\r\n").media[0]
    )
    web = reparsed(ims_to_webrtc(ims_answer, IWF_ICE, offer=firefox, codecs=[OPUS, PCMU]))
    audio, video = web.media
    assert audio.mid == "0" and video.mid == "1"
    assert [c.payload_type for c in audio.codecs] == [109, 0, 101]  # Firefox's opus PT
    assert audio.setup == "active"
    assert str(video.lines[0]) == "m=video 0 UDP/TLS/RTP/SAVPF 120"
    assert [str(line) for line in video.lines[1:]] == ["a=mid:1"]
    assert web.groups == [Group("BUNDLE", ("0",))]
    with pytest.raises(SdpError):
        ims_to_webrtc(load("ims_mrf_pcmu_answer.sdp"), IWF_ICE, offer=firefox)  # 1 m-line for 2


def test_bundled_answer_puts_transport_in_the_tagged_section_only() -> None:
    text = (FIXTURES / "chrome_offer_audio.sdp").read_text()
    head, audio = text.split("m=audio", 1)
    second = ("m=audio" + audio).replace("a=mid:0", "a=mid:1")
    offer = parse(head.replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1") + "m=audio" + audio + second)
    ims = webrtc_to_ims(offer, [IWF_RTP, RtpEndpoint("192.0.2.10", 30002)], codecs=[PCMU])
    web = reparsed(ims_to_webrtc(ims, IWF_ICE, offer=offer))
    first, other = web.media
    assert web.groups == [Group("BUNDLE", ("0", "1"))]
    assert first.port == other.port == 40000  # one transport for the group (RFC 8843)
    assert first.candidates and first.ice_ufrag and first.fingerprints and first.setup == "active"
    assert (
        not other.candidates and other.ice_ufrag is None and other.fingerprints == [] and other.setup is None
    )
    assert (
        other.mid == "1" and other.rtcp_mux and [c.name for c in other.codecs] == ["PCMU", "telephone-event"]
    )


def test_iwf_endpoint_validation() -> None:
    with pytest.raises(SdpError):
        IceEndpoint("x", "short", (IWF_FP,))
    with pytest.raises(ValueError):
        IceEndpoint("iwF1", "iwfPasswordIsLongEnough1", ())
    assert IWF_ICE.default_candidate == IWF_CANDIDATES[0]
    assert RtpEndpoint("2001:db8::1", 4).connection == Connection("2001:db8::1", "IP6")


def test_transforms_preserve_session_timing_and_name() -> None:
    sdp = load("rfc8866_timing.sdp")
    ims = webrtc_to_ims(sdp, IWF_RTP)
    assert ims.session_name == "Seminar" and ims.timings == sdp.timings
    assert ims.direction == "recvonly" and ims.media[1].port == 0
    assert Attribute("recvonly") in ims.attributes
