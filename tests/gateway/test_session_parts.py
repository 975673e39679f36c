"""The session B2BUA's sans-IO parts with real bytes: RFC 4028 timers, RFC 3262 PRACK, RFC 3312
preconditions, SDP versions across a leg, the ringing policy and the [sessions] config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from webims.config import ConfigError, load_config
from webims.gateway.prack import RAck, ReliableSender, RSeqTracker, is_reliable, parse_rack
from webims.gateway.precondition import QosState, apply_preconditions, preconditions_of
from webims.gateway.sdp_media import LegSdp, signature
from webims.gateway.session_settings import SessionConfig, ringing_hidden
from webims.gateway.session_timer import (
    SessionTimer,
    parse_session_expires,
    uac_result,
    uas_negotiate,
)
from webims.sdp import parse as parse_sdp
from webims.sip import Request, Response, parse

FIXTURES = Path(__file__).resolve().parents[1] / "sdp" / "fixtures"

# RFC 4028 §9 example shape (an INVITE asking for a session timer), TS 24.229 style headers
INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n"
    b"Max-Forwards: 70\r\nTo: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Supported: timer, 100rel\r\nSession-Expires: 1800\r\nMin-SE: 90\r\nContent-Length: 0\r\n\r\n"
)


def invite(**replace: str) -> Request:
    text = INVITE
    for old, new in replace.items():
        text = text.replace(old.encode(), new.encode())
    message = parse(text)
    assert isinstance(message, Request)
    return message


# ---------------------------------------------------------------- RFC 4028


def test_session_expires_header_parsing() -> None:
    assert parse_session_expires("4000;refresher=uac") == (4000, "uac")
    assert parse_session_expires("1800 ; refresher = uas") == (1800, "uas")
    assert parse_session_expires("90") == (90, None)
    assert parse_session_expires("soon") is None and parse_session_expires(None) is None


def test_uas_negotiation_picks_the_refresher_and_rejects_small_intervals() -> None:
    done = uas_negotiate(invite(), min_se=90, default=0)
    assert (done.status, done.interval, done.refresher) == (200, 1800, "uac")
    assert done.response_headers(uac_supports=True) == [
        ("Session-Expires", "1800;refresher=uac"), ("Require", "timer"),
    ]  # fmt: skip
    small = uas_negotiate(invite(**{"Session-Expires: 1800": "Session-Expires: 60"}), min_se=90, default=0)
    assert small.status == 422 and small.response_headers(uac_supports=True) == [("Min-SE", "90")]
    # a UAC without timer support never refreshes: we do (refresher=uas, §9)
    plain = uas_negotiate(invite(**{"Supported: timer, 100rel": "Supported: 100rel"}), min_se=90, default=0)
    assert plain.refresher == "uas" and ("Require", "timer") not in plain.response_headers(uac_supports=False)
    # no Session-Expires asked: none unless we want one
    none = uas_negotiate(invite(**{"Session-Expires: 1800\r\n": ""}), min_se=90, default=0)
    assert none.interval == 0 and none.response_headers(uac_supports=True) == []
    ours = uas_negotiate(invite(**{"Session-Expires: 1800\r\n": ""}), min_se=90, default=600)
    assert (ours.interval, ours.refresher) == (600, "uac")


def test_session_timer_refresh_and_expiry_times() -> None:
    refresh = SessionTimer(1800, we_refresh=True, now=100.0)
    assert refresh.get_timer() == 1000.0 and refresh.due(999.0) is None and refresh.due(1000.0) == "refresh"
    expire = SessionTimer(90, we_refresh=False, now=0.0)
    assert expire.get_timer() == 60.0 and expire.due(60.0) == "expired"  # 90 - min(32, 90/3)
    response = Response(200, headers=[("Session-Expires", "4000;refresher=uas")])
    assert uac_result(response) == (4000, "uas")
    assert SessionTimer.after_request_sent((4000, "uas"), 0.0).we_refresh is False


# ---------------------------------------------------------------- RFC 3262


def test_reliable_provisional_numbering_retransmission_and_prack_matching() -> None:
    request = invite()
    sender = ReliableSender(request, t1=0.5, start=776656)
    reliable = sender.prepare(request.response(183, to_tag="a"))
    assert is_reliable(reliable) and reliable.headers.get("RSeq") == "776656"
    with pytest.raises(ValueError):
        sender.prepare(request.response(180, to_tag="a"))  # one at a time (§3)
    assert sender.retransmit_intervals() == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]  # within 64*T1
    wrong = parse(INVITE.replace(b"INVITE sip", b"PRACK sip").replace(b"314159 INVITE", b"314160 PRACK")
                  .replace(b"Content-Length", b"RAck: 776657 314159 INVITE\r\nContent-Length"))  # fmt: skip
    assert isinstance(wrong, Request) and not sender.match(wrong)
    right = parse(bytes(wrong).replace(b"RAck: 776657", b"RAck: 776656"))
    assert isinstance(right, Request) and sender.match(right) and sender.outstanding is None
    assert parse_rack("776656 314159 INVITE") == RAck(776656, 314159, "INVITE")
    assert parse_rack("x 1 INVITE") is None


def test_uac_takes_each_reliable_response_once_in_order() -> None:
    request = invite()
    tracker = RSeqTracker()

    def r(rseq: int) -> Response:
        return Response(183, headers=[*request.response(183, to_tag="b").headers, ("Require", "100rel"),
                                      ("RSeq", str(rseq))])  # fmt: skip

    assert tracker.accept(r(10)) and not tracker.accept(r(10)) and not tracker.accept(r(12))
    assert tracker.accept(r(11)) and str(tracker.rack(r(11))) == "11 314159 INVITE"


# ---------------------------------------------------------------- RFC 3312


def test_ni_o_precondition_exchange() -> None:
    """Our offer (local none), the callee's answer asking for confirmation, our UPDATE, met."""
    qos = QosState()
    offer = qos.offer_lines()
    assert [str(p) for p in offer] == [
        "qos local none", "qos remote none", "qos mandatory local sendrecv", "qos optional remote sendrecv",
    ]  # fmt: skip
    answer = parse_sdp((FIXTURES / "ims_volte_answer_183.sdp").read_bytes())
    assert qos.take_answer(preconditions_of(answer))
    assert not qos.met()
    qos.reserved()
    assert qos.must_tell_peer()
    update = qos.offer_lines()
    assert str(update[0]) == "qos local sendrecv" and not qos.must_tell_peer()
    qos.remote = "sendrecv"
    assert qos.met()


def test_ni_t_answer_to_a_volte_offer() -> None:
    offer = parse_sdp((FIXTURES / "ims_volte_offer.sdp").read_bytes())
    qos = QosState()
    assert qos.take_offer(preconditions_of(offer))
    qos.reserved()
    lines = qos.answer_lines(confirm=True)
    assert [(p.kind, str(p)) for p in lines] == [
        ("curr", "qos local sendrecv"), ("curr", "qos remote none"),
        ("des", "qos mandatory local sendrecv"), ("des", "qos mandatory remote sendrecv"),
        ("conf", "qos remote sendrecv"),
    ]  # fmt: skip
    assert not qos.met()  # the caller's segment (mandatory for it) is not reserved yet
    update = parse_sdp((FIXTURES / "ims_volte_update.sdp").read_bytes())  # it reports: local sendrecv
    assert qos.take_offer(preconditions_of(update)) and qos.met()
    sdp = apply_preconditions(offer.copy(), lines)
    assert b"a=conf:qos remote sendrecv" in sdp.to_bytes()


# ---------------------------------------------------------------- SDP versions per leg


def test_leg_sdp_versions_follow_changes_only() -> None:
    leg = LegSdp()
    chrome = parse_sdp((FIXTURES / "chrome_offer_audio.sdp").read_bytes())
    first = parse_sdp(leg.stamp(chrome))
    again = parse_sdp(leg.stamp(chrome))
    assert first.origin.sess_version == again.origin.sess_version == 1
    assert first.origin.sess_id == leg.session_id
    held = chrome.copy()
    held.media[0].direction = "sendonly"
    assert parse_sdp(leg.stamp(held)).origin.sess_version == 2
    assert leg.again() == leg.stamp(held)
    # refresh detection on what the peer sends: o= and preconditions do not count
    peer = parse_sdp((FIXTURES / "ims_volte_offer.sdp").read_bytes())
    assert leg.received(peer) and not leg.received(peer)
    bumped = peer.copy()
    bumped.origin = dataclasses.replace(bumped.origin, sess_version=99)
    assert leg.is_refresh(apply_preconditions(bumped, []))
    assert signature(peer) != signature(held)


# ---------------------------------------------------------------- config


def test_ringing_policy() -> None:
    config = SessionConfig(hide_ringing_for=("ua=NoRing", "origin=https://*.kiosk.example"))
    assert ringing_hidden(config, user_agent="NoRing/2", origin=None, impu="sip:a@x")
    assert ringing_hidden(config, user_agent="JsSIP", origin="https://a.kiosk.example", impu="sip:a@x")
    assert not ringing_hidden(config, user_agent="JsSIP 3.10", origin="https://wic.example", impu="sip:a@x")
    assert ringing_hidden(SessionConfig(hide_ringing=True), user_agent=None, origin=None, impu="sip:a@x")


def test_sessions_config_from_environment_and_errors() -> None:
    config = load_config(None, environ={"WEBIMS_SESSIONS__MEDIA": "ims", "WEBIMS_SESSIONS__MIN_SE": "120"})
    sessions = config.get(SessionConfig)
    assert sessions.media == "ims" and sessions.min_se == 120
    with pytest.raises(ConfigError, match="media"):
        load_config(None, environ={"WEBIMS_SESSIONS__MEDIA": "somewhere"})
    with pytest.raises(ConfigError, match="session_expires"):
        load_config(None, environ={"WEBIMS_SESSIONS__SESSION_EXPIRES": "60"})
    with pytest.raises(ConfigError, match="hide_ringing_for"):
        load_config(None, environ={"WEBIMS_SESSIONS__HIDE_RINGING_FOR": '["bogus"]'})
