"""The sans-IO peer state machine (RFC 6733 §5.6, RFC 3539 watchdog), two peers in memory, fake clock."""

from __future__ import annotations

import random
from ipaddress import ip_address

import pytest
from diameter_fixtures import CER_HUAWEI_HSS, CER_ZTE_PCSCF

from webims.diameter import (
    AUTH_SCHEME_SIP_DIGEST,
    CX_APPLICATION_ID,
    VENDOR_3GPP,
    AnswerReceived,
    Application,
    Capabilities,
    CommandCode,
    DiameterPeer,
    DisconnectCause,
    IdGenerator,
    Message,
    MessageDiscarded,
    PeerClosed,
    PeerEvent,
    PeerOpened,
    PeerState,
    PeerStateError,
    RequestReceived,
    RequestRejected,
    ResultCode,
    Role,
    SessionIdGenerator,
    SipAuthDataItem,
    SipDigestAuthenticate,
    StreamDecoder,
    WatchdogSuspect,
    build_cea,
    build_cer,
    build_maa,
    build_mar,
    make_avp,
)

T0 = 1_700_000_000.0
HSS_CAPS = Capabilities("hss.ims.test", "ims.test", (ip_address("127.0.0.1"),), product_name="webims-hss")
SCSCF_CAPS = Capabilities("scscf.ims.test", "ims.test", (ip_address("::1"),), origin_state_id=7)


def new_pair(client_caps: Capabilities = SCSCF_CAPS) -> tuple[DiameterPeer, DiameterPeer]:
    client = DiameterPeer(client_caps, Role.INITIATOR, now=T0, watchdog_jitter=0, rng=random.Random(1))
    server = DiameterPeer(HSS_CAPS, Role.RESPONDER, now=T0, watchdog_jitter=0, rng=random.Random(2))
    return client, server


def pump(src: DiameterPeer, dst: DiameterPeer, now: float) -> list[PeerEvent]:
    return dst.receive_data(src.data_to_send(), now)


def sent(peer: DiameterPeer) -> list[Message]:
    items = StreamDecoder().feed(peer.data_to_send())
    assert all(isinstance(i, Message) for i in items)
    return [i for i in items if isinstance(i, Message)]


def opened() -> tuple[DiameterPeer, DiameterPeer]:
    client, server = new_pair()
    assert isinstance(pump(client, server, T0)[0], PeerOpened)
    assert isinstance(pump(server, client, T0)[0], PeerOpened)
    return client, server


def mar() -> Message:
    return build_mar(
        session_id="scscf.ims.test;1;1",
        origin_host="scscf.ims.test",
        origin_realm="ims.test",
        destination_realm="ims.test",
        user_name="alice@ims.test",
        public_identity="sip:alice@ims.test",
        server_name="sip:scscf.ims.test:6060",
        sip_auth_data_item=SipAuthDataItem(authentication_scheme="Unknown"),
    )


# --- capabilities exchange (RFC 6733 §5.3) ---------------------------------------------------------------


def test_cer_cea_opens_both_sides() -> None:
    client, server = new_pair()
    assert (client.state, server.state) == (PeerState.WAIT_CEA, PeerState.WAIT_CER)
    (cer,) = StreamDecoder().feed(client.data_to_send())
    assert (
        isinstance(cer, Message) and cer.command_code == CommandCode.CAPABILITIES_EXCHANGE and cer.is_request
    )
    assert not cer.is_proxiable
    assert cer.origin_host == "scscf.ims.test" and cer.get_int("Origin-State-Id") == 7
    assert cer.get_address("Host-IP-Address") == ip_address("::1")

    (ev,) = server.receive_data(cer.encode(), T0 + 0.1)
    assert isinstance(ev, PeerOpened)
    assert (ev.origin_host, ev.origin_realm, ev.applications) == (
        "scscf.ims.test",
        "ims.test",
        frozenset({CX_APPLICATION_ID}),
    )
    assert server.state is PeerState.OPEN and server.peer_origin_host == "scscf.ims.test"

    raw = server.data_to_send()
    (cea,) = StreamDecoder().feed(raw)
    assert isinstance(cea, Message) and not cea.is_request
    assert (cea.hop_by_hop, cea.end_to_end) == (cer.hop_by_hop, cer.end_to_end)
    assert cea.result_code == ResultCode.DIAMETER_SUCCESS
    assert cea.get_str("Product-Name") == "webims-hss"
    assert cea.get_all_int("Supported-Vendor-Id") == [VENDOR_3GPP]
    vsai = cea.require_group("Vendor-Specific-Application-Id")
    assert (vsai.require_int("Vendor-Id"), vsai.require_int("Auth-Application-Id")) == (
        VENDOR_3GPP,
        CX_APPLICATION_ID,
    )

    (ev2,) = client.receive_data(raw, T0 + 0.2)
    assert isinstance(ev2, PeerOpened) and ev2.origin_host == "hss.ims.test"
    assert client.state is PeerState.OPEN and client.applications == {CX_APPLICATION_ID}


def test_no_common_application_is_5010_and_closes() -> None:
    other = Capabilities("x.test", "test", (ip_address("127.0.0.2"),), applications=(Application(4),))
    client, server = new_pair(other)
    (ev,) = pump(client, server, T0)
    assert isinstance(ev, PeerClosed) and ev.result_code == ResultCode.DIAMETER_NO_COMMON_APPLICATION
    assert server.state is PeerState.CLOSED
    (ev2,) = pump(server, client, T0)
    assert isinstance(ev2, PeerClosed) and ev2.result_code == ResultCode.DIAMETER_NO_COMMON_APPLICATION


def test_real_cers_against_our_hss() -> None:
    hss = DiameterPeer(HSS_CAPS, Role.RESPONDER, now=T0)
    (ev,) = hss.receive_data(CER_HUAWEI_HSS, T0)  # advertises Cx among many
    assert isinstance(ev, PeerOpened) and ev.applications == {CX_APPLICATION_ID}
    hss2 = DiameterPeer(HSS_CAPS, Role.RESPONDER, now=T0)
    (ev2,) = hss2.receive_data(CER_ZTE_PCSCF, T0)  # a P-CSCF offering only Rx
    assert isinstance(ev2, PeerClosed) and ev2.result_code == ResultCode.DIAMETER_NO_COMMON_APPLICATION
    (cea,) = sent(hss2)
    assert cea.result_code == ResultCode.DIAMETER_NO_COMMON_APPLICATION


def test_malformed_cer_gets_an_error_cea_and_closes() -> None:
    client, server = new_pair()
    (cer,) = sent(client)
    bad = Message(
        cer.command_code,
        0,
        cer.flags,
        cer.hop_by_hop,
        cer.end_to_end,
        tuple(a for a in cer.avps if a.name != "Product-Name"),
    )
    (ev,) = server.receive_data(bad.encode(), T0)
    assert isinstance(ev, PeerClosed) and ev.result_code == ResultCode.DIAMETER_MISSING_AVP
    (cea,) = sent(server)
    assert cea.result_code == ResultCode.DIAMETER_MISSING_AVP
    assert cea.require("Failed-AVP").data == bytes.fromhex("0000010d00000008")  # Product-Name example


def test_first_message_must_be_cer_and_cer_must_come_in_time() -> None:
    _, server = new_pair()
    assert server.get_timer() == T0 + 10
    assert server.handle_timer(T0 + 9) == []
    (ev,) = server.handle_timer(T0 + 10)
    assert isinstance(ev, PeerClosed) and ev.reason == "no CER received"
    _, server = new_pair()
    (ev,) = server.receive_data(mar().with_ids(1, 1).encode(), T0)
    assert isinstance(ev, PeerClosed) and server.state is PeerState.CLOSED


def test_cea_timeout_and_refusal() -> None:
    client, _ = new_pair()
    assert client.get_timer() == T0 + 10
    (ev,) = client.handle_timer(T0 + 10)
    assert isinstance(ev, PeerClosed) and ev.reason == "no CEA received"
    client, _ = new_pair()
    (cer,) = sent(client)
    refusal = build_cea(cer, HSS_CAPS, ResultCode.DIAMETER_UNABLE_TO_COMPLY)
    (ev,) = client.receive_data(refusal.encode(), T0 + 1)
    assert isinstance(ev, PeerClosed) and ev.result_code == ResultCode.DIAMETER_UNABLE_TO_COMPLY


# --- application traffic ----------------------------------------------------------------------------


def test_request_answer_round_trip() -> None:
    client, server = opened()
    with pytest.raises(PeerStateError):
        DiameterPeer(HSS_CAPS, Role.RESPONDER, now=T0).send_request(mar(), T0)
    stamped = client.send_request(mar(), T0 + 1)
    assert stamped.hop_by_hop != 0 and stamped.end_to_end >> 20 == int(T0) & 0xFFF
    (ev,) = pump(client, server, T0 + 1)
    assert isinstance(ev, RequestReceived) and ev.message == stamped
    digest = SipDigestAuthenticate("ims.test", "auth", "00" * 16)
    maa = build_maa(
        ev.message,
        result=ResultCode.DIAMETER_SUCCESS,
        origin_host="hss.ims.test",
        origin_realm="ims.test",
        sip_auth_data_items=[SipAuthDataItem(authentication_scheme=AUTH_SCHEME_SIP_DIGEST, digest=digest)],
    )
    server.send_answer(maa)
    (ans,) = pump(server, client, T0 + 1.5)
    assert isinstance(ans, AnswerReceived) and ans.request == stamped and ans.message == maa
    # The same answer again no longer matches a pending request (RFC 6733 §6.2).
    server.send_answer(maa)
    (dup,) = pump(server, client, T0 + 2)
    assert isinstance(dup, MessageDiscarded)


def test_malformed_request_is_answered_and_the_connection_stays_open() -> None:
    client, server = opened()
    m = mar()
    bad = Message(
        m.command_code, m.application_id, m.flags, 0, 0, tuple(a for a in m.avps if a.name != "User-Name")
    )
    stamped = client.send_request(bad, T0 + 1)
    (ev,) = pump(client, server, T0 + 1)
    assert isinstance(ev, RequestRejected) and ev.error.result_code == ResultCode.DIAMETER_MISSING_AVP
    assert server.state is PeerState.OPEN
    (ans,) = pump(server, client, T0 + 1)
    assert isinstance(ans, AnswerReceived) and ans.request == stamped
    assert ans.message.result_code == ResultCode.DIAMETER_MISSING_AVP
    assert ans.message.require("Failed-AVP").data == bytes.fromhex("0000000140000008")


def test_undecodable_request_is_answered_and_the_connection_stays_open() -> None:
    _client, server = opened()
    data = bytearray(mar().with_ids(99, 98).encode())
    data[20 + 5 : 20 + 8] = (0xFFFF).to_bytes(3, "big")  # first AVP (Session-Id) runs off the end
    (ev,) = server.receive_data(bytes(data), T0 + 1)
    assert isinstance(ev, RequestRejected) and ev.error.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    (ans,) = sent(server)
    assert ans.hop_by_hop == 99 and ans.result_code == ResultCode.DIAMETER_INVALID_AVP_LENGTH
    assert server.state is PeerState.OPEN


def test_unframeable_stream_closes_after_answering() -> None:
    _, server = opened()
    (ev,) = server.receive_data(bytes.fromhex("02000014c000012f010000000000000500000006"), T0 + 1)
    assert isinstance(ev, PeerClosed) and ev.result_code == ResultCode.DIAMETER_UNSUPPORTED_VERSION
    (ans,) = sent(server)
    assert ans.hop_by_hop == 5 and ans.result_code == ResultCode.DIAMETER_UNSUPPORTED_VERSION
    assert server.receive_data(b"anything", T0 + 2) == [] and server.get_timer() is None


def test_request_for_an_application_not_negotiated_is_3007() -> None:
    client, server = opened()
    m = mar()
    other = Message(m.command_code, 16777217, m.flags, 0, 0, m.avps)
    client.send_request(other, T0 + 1)
    (ev,) = pump(client, server, T0 + 1)
    assert (
        isinstance(ev, RequestRejected)
        and ev.error.result_code == ResultCode.DIAMETER_APPLICATION_UNSUPPORTED
    )
    (ans,) = pump(server, client, T0 + 1)
    assert isinstance(ans, AnswerReceived) and ans.message.is_error


# --- watchdog (RFC 3539 §3.4) ----------------------------------------------------------------------------


def test_watchdog_sends_dwr_after_tw_idle_and_dwa_keeps_it_okay() -> None:
    client, server = opened()
    assert client.get_timer() == T0 + 30
    assert client.handle_timer(T0 + 29.9) == []
    assert client.handle_timer(T0 + 30) == []
    (dwr,) = StreamDecoder().feed(client.data_to_send())
    assert isinstance(dwr, Message) and dwr.command_code == CommandCode.DEVICE_WATCHDOG and dwr.is_request
    assert dwr.get_int("Origin-State-Id") == 7
    assert server.receive_data(dwr.encode(), T0 + 30) == []
    (dwa,) = sent(server)
    assert dwa.result_code == ResultCode.DIAMETER_SUCCESS and dwa.hop_by_hop == dwr.hop_by_hop
    assert client.receive_data(dwa.encode(), T0 + 30.5) == []
    assert client.get_timer() == T0 + 60.5
    assert client.handle_timer(T0 + 60.5) == []  # nothing pending: another DWR, no suspicion
    assert [m.command_code for m in sent(client)] == [CommandCode.DEVICE_WATCHDOG]


def test_watchdog_without_answers_goes_suspect_then_closes() -> None:
    client, _ = opened()
    pending = client.send_request(mar(), T0 + 1)
    assert client.handle_timer(T0 + 30) == []  # DWR sent
    (ev,) = client.handle_timer(T0 + 60)
    assert isinstance(ev, WatchdogSuspect)
    (ev2,) = client.handle_timer(T0 + 90)
    assert isinstance(ev2, PeerClosed) and ev2.reason.startswith("watchdog")
    assert ev2.unanswered == (pending,)
    assert client.state is PeerState.CLOSED and client.get_timer() is None


def test_any_received_message_resets_the_watchdog() -> None:
    client, server = opened()
    server.send_request(
        build_mar(
            session_id="s",
            origin_host="hss.ims.test",
            origin_realm="ims.test",
            destination_realm="ims.test",
            user_name="u",
            public_identity="sip:u@x",
            server_name="sip:s",
            sip_auth_data_item=SipAuthDataItem(authentication_scheme="Unknown"),
        ),
        T0 + 20,
    )
    (ev,) = pump(server, client, T0 + 20)
    assert isinstance(ev, RequestReceived)
    assert client.get_timer() == T0 + 50


def test_watchdog_jitter_stays_within_two_seconds() -> None:
    caps = SCSCF_CAPS
    for seed in range(20):
        p = DiameterPeer(HSS_CAPS, Role.RESPONDER, now=T0, rng=random.Random(seed))
        (cer,) = StreamDecoder().feed(DiameterPeer(caps, Role.INITIATOR, now=T0).data_to_send())
        assert isinstance(cer, Message)
        p.receive_data(cer.encode(), T0)
        timer = p.get_timer()
        assert timer is not None and T0 + 28 <= timer <= T0 + 32
    with pytest.raises(ValueError):
        DiameterPeer(HSS_CAPS, Role.RESPONDER, now=T0, watchdog_interval=5)


# --- disconnection (RFC 6733 §5.4) -----------------------------------------------------------------------


def test_dpr_dpa_closes_both_sides() -> None:
    client, server = opened()
    pending = client.send_request(mar(), T0 + 1)
    client.data_to_send()
    assert client.close(T0 + 2, DisconnectCause.BUSY) == []
    assert client.state is PeerState.CLOSING and client.get_timer() == T0 + 7
    with pytest.raises(PeerStateError):
        client.send_request(mar(), T0 + 2)
    (ev,) = pump(client, server, T0 + 2)
    assert isinstance(ev, PeerClosed) and ev.disconnect_cause == DisconnectCause.BUSY
    assert server.state is PeerState.CLOSED
    (ev2,) = pump(server, client, T0 + 2.1)
    assert isinstance(ev2, PeerClosed) and ev2.reason == "disconnected"
    assert ev2.result_code == ResultCode.DIAMETER_SUCCESS and ev2.unanswered == (pending,)


def test_dpa_timeout_closes() -> None:
    client, _ = opened()
    client.close(T0 + 1)
    (ev,) = client.handle_timer(T0 + 6)
    assert isinstance(ev, PeerClosed) and ev.reason == "no DPA received"


def test_connection_lost_reports_unanswered_requests() -> None:
    client, _ = opened()
    pending = client.send_request(mar(), T0 + 1)
    (ev,) = client.connection_lost(T0 + 2)
    assert isinstance(ev, PeerClosed) and ev.unanswered == (pending,)
    assert client.connection_lost(T0 + 3) == []


def test_cer_on_an_open_connection_is_answered_again() -> None:
    _client, server = opened()
    server.receive_data(build_cer(SCSCF_CAPS).with_ids(5, 6).encode(), T0 + 3)
    (cea,) = sent(server)
    assert cea.result_code == ResultCode.DIAMETER_SUCCESS and server.state is PeerState.OPEN


# --- identifiers (RFC 6733 §3, §8.8) ----------------------------------------------------------------------


def test_end_to_end_identifier_layout_and_uniqueness() -> None:
    ids = IdGenerator(0xABC123, random.Random(5))
    first = ids.next_end_to_end()
    assert first >> 20 == 0x123
    assert [ids.next_end_to_end() for _ in range(3)] == [first + 1, first + 2, first + 3]
    h = ids.next_hop_by_hop()
    assert ids.next_hop_by_hop() == (h + 1) & 0xFFFFFFFF


def test_session_id_format() -> None:
    gen = SessionIdGenerator("scscf.ims.test", 1_700_000_000, random.Random(3))
    a, b = gen.next(), gen.next("reg")
    host, high, low = a.split(";")
    assert (host, int(high)) == ("scscf.ims.test", 1_700_000_000)
    assert b == f"scscf.ims.test;1700000000;{int(low) + 1};reg"
    m = make_avp("Session-Id", a)
    assert m.as_str() == a
