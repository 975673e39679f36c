"""RFC 3264 answers, codec matching, media compatibility and preconditions."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import pytest

from webims.sdp import (
    AMR_WB,
    AMR_WB_OCTET_ALIGNED,
    G722,
    OPUS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT_8000,
    TELEPHONE_EVENT_16000,
    Attribute,
    Bandwidth,
    Codec,
    Connection,
    Group,
    MediaAnswer,
    Origin,
    Precondition,
    SdpError,
    SessionDescription,
    amr_mode_set,
    answer_direction,
    assign_payload_types,
    can_share_media,
    codecs_compatible,
    common_codecs,
    create_answer,
    intersect_codecs,
    limit_codecs,
    media_compatibility,
    parse,
    preconditions_met,
    profile_family,
    qos_answer,
    qos_offer,
    reverse_direction,
    with_current,
)

FIXTURES = Path(__file__).parent / "fixtures"
ORIGIN = Origin("-", "5", 1, "IN", "IP4", "192.0.2.1")
CONN = Connection("192.0.2.1")


def load(name: str) -> SessionDescription:
    return parse((FIXTURES / name).read_bytes())


# --- direction negotiation (RFC 3264 §6.1) ----------------------------------------------

EXPECTED_DIRECTION = {
    ("sendrecv", "sendrecv"): "sendrecv",
    ("sendrecv", "sendonly"): "sendonly",
    ("sendrecv", "recvonly"): "recvonly",
    ("sendrecv", "inactive"): "inactive",
    ("sendonly", "sendrecv"): "recvonly",
    ("sendonly", "sendonly"): "inactive",
    ("sendonly", "recvonly"): "recvonly",
    ("sendonly", "inactive"): "inactive",
    ("recvonly", "sendrecv"): "sendonly",
    ("recvonly", "sendonly"): "sendonly",
    ("recvonly", "recvonly"): "inactive",
    ("recvonly", "inactive"): "inactive",
    ("inactive", "sendrecv"): "inactive",
    ("inactive", "sendonly"): "inactive",
    ("inactive", "recvonly"): "inactive",
    ("inactive", "inactive"): "inactive",
}


@pytest.mark.parametrize(
    ("offered", "local"), list(product(["sendrecv", "sendonly", "recvonly", "inactive"], repeat=2))
)
def test_answer_direction(offered: str, local: str) -> None:
    assert answer_direction(offered, local) == EXPECTED_DIRECTION[(offered, local)]  # type: ignore[arg-type]


def test_reverse_direction() -> None:
    assert [reverse_direction(d) for d in ("sendrecv", "sendonly", "recvonly", "inactive")] == [
        "sendrecv",
        "recvonly",
        "sendonly",
        "inactive",
    ]


# --- create_answer (RFC 3264 §6) -----------------------------------------------------------


def test_answer_to_volte_offer_field_by_field() -> None:
    offer = load("ims_volte_offer.sdp")
    answer = create_answer(
        offer,
        [
            MediaAnswer(
                [AMR_WB_OCTET_ALIGNED, TELEPHONE_EVENT_8000, TELEPHONE_EVENT_16000],
                40012,
                max_codecs=1,
                attributes=[p.to_attribute() for p in qos_answer(offer.media[0].preconditions, confirm=True)],
                bandwidths=[Bandwidth("AS", 49)],
                ptime=20,
            )
        ],
        origin=ORIGIN,
        connection=CONN,
    )
    assert parse(answer.to_bytes()) == answer
    assert answer.origin == ORIGIN and answer.connection == CONN and answer.session_name == "-"
    (m,) = answer.media
    assert (m.media, m.port, m.proto) == ("audio", 40012, "RTP/AVP")
    assert m.bandwidths == [Bandwidth("AS", 49)]
    # The offered octet-aligned AMR-WB (107), and the offered telephone-event of its rate (111).
    assert m.codecs == [
        Codec(107, "AMR-WB", 16000, 1, "octet-align=1;mode-change-capability=2;max-red=0"),
        Codec(111, "telephone-event", 16000, None, "0-15"),
    ]
    assert m.ptime == 20 and m.direction == "sendrecv"
    assert m.preconditions == load("ims_volte_answer_183.sdp").media[0].preconditions


def test_rejected_streams_keep_position_media_and_proto() -> None:
    offer = load("chrome_offer_audio_video.sdp")
    answer = create_answer(
        offer, [MediaAnswer([PCMU], 5000, direction="recvonly")], origin=ORIGIN, connection=CONN
    )
    audio, video = answer.media
    assert (audio.port, audio.mid, audio.direction) == (5000, "0", "recvonly")
    assert audio.codecs == [Codec(0, "PCMU", 8000)]
    assert str(video.lines[0]) == "m=video 0 UDP/TLS/RTP/SAVPF 96"  # RFC 3264 §6: port 0, one format
    assert video.mid == "1"
    assert answer.groups == [Group("BUNDLE", ("0",))]  # RFC 8843 §7.3: rejected mid leaves the group


def test_no_common_codec_is_488() -> None:
    offer = load("ims_volte_offer.sdp")
    with pytest.raises(SdpError) as info:
        create_answer(offer, [MediaAnswer([PCMU, OPUS], 5000)], origin=ORIGIN, connection=CONN)
    assert info.value.status == 488
    with pytest.raises(SdpError):
        create_answer(offer, [], origin=ORIGIN, connection=CONN)


def test_offered_port_zero_stays_rejected() -> None:
    offer = load("rfc8866_example.sdp")
    offer.media[0].port = 0
    answer = create_answer(
        offer, [MediaAnswer([PCMU], 5000), MediaAnswer([PCMU], 5002)], origin=ORIGIN, connection=CONN
    )
    assert [m.port for m in answer.media] == [0, 5002, 0]
    assert answer.media[2].media == "video"


def test_answer_mode_set_is_narrowed() -> None:
    offer = load("ims_sdes_offer.sdp")  # AMR-WB mode-set=0,1,2
    local = Codec(96, "AMR-WB", 16000, 1, "mode-set=2,8")
    answer = create_answer(
        offer,
        [MediaAnswer([local], 5000, attributes=[Attribute("crypto", "1 X inline:k")])],
        origin=ORIGIN,
        connection=CONN,
    )
    m = answer.media[0]
    assert m.proto == "RTP/SAVP"
    (wb,) = m.codecs
    assert (wb.payload_type, amr_mode_set(wb)) == (104, frozenset({2}))
    assert wb.fmtp == "mode-set=2;mode-change-capability=2;max-red=0"


def test_prefer_local_order() -> None:
    offer = load("chrome_offer_audio.sdp")
    spec = [MediaAnswer([PCMA, PCMU, OPUS], 5000)]
    plain = create_answer(offer, spec, origin=ORIGIN, connection=CONN)
    mine = create_answer(offer, spec, origin=ORIGIN, connection=CONN, prefer_local_order=True)
    assert [c.name for c in plain.media[0].codecs] == ["opus", "PCMU", "PCMA"]
    assert [c.name for c in mine.media[0].codecs] == ["PCMA", "PCMU", "opus"]


def test_answer_without_connection_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        create_answer(load("ims_mrf_pcmu_answer.sdp"), [MediaAnswer([PCMU], 5000)], origin=ORIGIN)


# --- codec matching ------------------------------------------------------------------------


def test_amr_octet_align_and_mode_set_matter() -> None:
    assert not codecs_compatible(AMR_WB, AMR_WB_OCTET_ALIGNED)  # RFC 4867 §8.3.1
    assert codecs_compatible(AMR_WB_OCTET_ALIGNED, Codec(97, "amr-wb", 16000, None, "octet-align=1"))
    a = Codec(97, "AMR-WB", 16000, 1, "mode-set=0,1,2")
    assert codecs_compatible(a, AMR_WB)  # no mode-set: any mode
    assert not codecs_compatible(a, Codec(98, "AMR-WB", 16000, 1, "mode-set=8"))
    assert codecs_compatible(a, Codec(98, "AMR-WB", 16000, 1, "mode-set=2, 8"))
    assert not codecs_compatible(AMR_WB, Codec(96, "AMR", 8000, 1))
    assert not codecs_compatible(OPUS, Codec(111, "opus", 48000, 1))  # channels
    assert not codecs_compatible(Codec(96, "", 0), Codec(96, "", 0))  # unknown encodings never match


def test_h264_packetization_mode_and_profile() -> None:
    base = Codec(102, "H264", 90000, None, "packetization-mode=1;profile-level-id=42e01f")
    assert codecs_compatible(
        base, Codec(96, "h264", 90000, None, "profile-level-id=42001f;packetization-mode=1")
    )
    assert not codecs_compatible(base, Codec(96, "H264", 90000, None, "profile-level-id=42e01f"))
    assert not codecs_compatible(
        base, Codec(96, "H264", 90000, None, "packetization-mode=1;profile-level-id=640c1f")
    )


def test_intersection_drops_orphan_rtx_and_red() -> None:
    video = load("chrome_offer_audio_video.sdp").media[1]
    kept = intersect_codecs(video.codecs, [Codec(0, "VP8", 90000), Codec(0, "rtx", 90000)])
    assert [(c.payload_type, c.name) for c in kept] == [(96, "VP8"), (97, "rtx")]  # rtx apt=96 only
    audio = load("chrome_offer_audio.sdp").media[0]
    assert [c.name for c in intersect_codecs(audio.codecs, [Codec(0, "red", 48000, 2), PCMU])] == ["PCMU"]


def test_common_codecs_and_limit() -> None:
    chrome = load("chrome_offer_audio.sdp").media[0].codecs
    volte = load("ims_volte_offer.sdp").media[0].codecs
    assert common_codecs(chrome, volte) == []  # telephone-event alone is not a common codec
    assert [a.name for a, _ in common_codecs(chrome, volte, include_auxiliary=True)] == ["telephone-event"]
    assert [c.name for c in limit_codecs(chrome, 1)] == ["opus", "red", "telephone-event"]
    assert [(c.name, c.clock_rate) for c in limit_codecs(chrome, 3)][-4:] == [
        ("PCMU", 8000),
        ("CN", 8000),
        ("telephone-event", 48000),
        ("telephone-event", 8000),
    ]


def test_assign_payload_types() -> None:
    codecs = [
        PCMU,
        Codec(101, "opus", 48000, 2),
        Codec(101, "telephone-event", 8000),
        Codec(102, "rtx", 90000, None, "apt=101"),
        G722,
        Codec(70, "AMR", 8000),
    ]
    out = assign_payload_types(codecs, reserved=[102])
    assert [c.payload_type for c in out] == [0, 101, 96, 97, 9, 98]
    assert out[3].fmtp == "apt=96"  # follows the renumbered codec it repairs
    with pytest.raises(ValueError):
        assign_payload_types([Codec(96, "x", 8000)] * 70)


# --- media compatibility (S-CSCF: insert an MRF or not) ----------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "ok", "reason"),
    [
        ("chrome_offer_audio.sdp", "firefox_offer_audio_video.sdp", True, ""),
        ("chrome_offer_audio.sdp", "safari_answer_audio.sdp", True, ""),
        ("ims_volte_offer.sdp", "ims_volte_answer_183.sdp", True, ""),
        ("chrome_offer_audio.sdp", "ims_volte_offer.sdp", False, "audio: dtls-srtp vs rtp"),
        ("chrome_offer_audio.sdp", "ims_mrf_pcmu_answer.sdp", False, "audio: dtls-srtp vs rtp"),
        ("ims_mrf_pcmu_answer.sdp", "ims_volte_offer.sdp", False, "audio: no common codec"),
        ("ims_sdes_offer.sdp", "ims_volte_offer.sdp", False, "audio: sdes-srtp vs rtp"),
        ("rfc8866_example.sdp", "ims_mrf_pcmu_answer.sdp", True, ""),
        ("chrome_offer_audio.sdp", "rfc8866_timing.sdp", False, "audio: dtls-srtp vs rtp"),
    ],
)
def test_media_compatibility(a: str, b: str, ok: bool, reason: str) -> None:
    result = media_compatibility(load(a), load(b))
    assert (result.ok, result.reason) == (ok, reason)
    assert can_share_media(load(a), load(b)) is ok


def test_compatibility_details() -> None:
    result = media_compatibility(load("firefox_offer_audio_video.sdp"), load("chrome_offer_audio_video.sdp"))
    assert result.ok
    audio, video = result.streams
    assert (audio.index_a, audio.index_b, audio.family_a) == (0, 0, "dtls-srtp")
    assert [x.name for x, _ in audio.common] == ["opus", "G722", "PCMU", "PCMA"]
    assert video.media == "video" and {x.name for x, _ in video.common} == {"VP8", "VP9", "H264"}
    empty = load("rfc8866_example.sdp")
    for m in empty.media:
        m.port = 0
    assert (
        media_compatibility(empty, load("ims_volte_offer.sdp")).reason == "no stream of a common media type"
    )


def test_profile_family() -> None:
    assert [
        profile_family(p)
        for p in ("UDP/TLS/RTP/SAVPF", "TCP/DTLS/RTP/SAVPF", "RTP/SAVPF", "RTP/AVPF", "RTP/AVP", "udp")
    ] == [
        "dtls-srtp",
        "dtls-srtp",
        "sdes-srtp",
        "rtp",
        "rtp",
        "UDP",
    ]


# --- preconditions (RFC 3312, RFC 4032) ---------------------------------------------------------


def test_qos_offer_is_what_a_volte_ue_writes() -> None:
    assert qos_offer() == load("ims_volte_offer.sdp").media[0].preconditions


def test_qos_answer_swaps_and_upgrades() -> None:
    offer = load("ims_volte_offer.sdp").media[0].preconditions
    assert qos_answer(offer, confirm=True) == load("ims_volte_answer_183.sdp").media[0].preconditions
    assert qos_answer(offer, "sendrecv", local_strength="optional")[2:] == [
        Precondition("des", "local", "sendrecv", "optional"),
        Precondition("des", "remote", "sendrecv", "mandatory"),
    ]
    assert qos_answer([]) == []


def test_preconditions_met_as_resources_come_up() -> None:
    pre = load("ims_volte_update.sdp").media[0].preconditions  # local up, remote none, both mandatory
    assert not preconditions_met(pre)
    assert preconditions_met(with_current(pre, "remote", "sendrecv"))
    assert not preconditions_met(with_current(pre, "remote", "send"))
    assert preconditions_met(qos_offer(local_current="sendrecv"))  # remote is only optional
    assert not preconditions_met([Precondition("des", "e2e", "sendrecv", "failure")])
    assert with_current([], "e2e", "recv") == [Precondition("curr", "e2e", "recv")]
