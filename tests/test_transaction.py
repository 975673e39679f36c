"""SIP transactions (RFC 3261 §17, RFC 6026) with a fake clock.

Messages are real bytes (RFC 3665 §3.1 / §3.8 call flows, rewritten for the
transport under test) parsed with ``webims.sip.parse``; the behaviour tests pair
a client transaction layer ("alice") with a server one ("bob") in memory: every
message one sends is serialized, parsed and fed into the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from webims.sip import Request, Response, parse
from webims.sip.transaction import (
    INVITE_CLIENT,
    INVITE_SERVER,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    TABLES,
    AckReceived,
    AckTimeout,
    ClientKey,
    ClientTransaction,
    Event,
    MergedRequest,
    RequestCancelled,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    ServerKey,
    State,
    StrayResponse,
    Timer,
    TimerSettings,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
    make_cancel,
    make_non2xx_ack,
    new_branch,
)
from webims.sip.transaction_layer import TransactionLayer

T1, T2, T4 = 0.5, 4.0, 5.0
E = TypeVar("E")


def sip(text: str) -> bytes:
    """A message written with LF line ends, as bytes with CRLF and a correct Content-Length."""
    head, _, body = text.partition("\n\n")
    data = body.replace("\n", "\r\n").encode()
    head = head.replace("Content-Length: ?", f"Content-Length: {len(data)}")
    return head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + data


def invite(transport: str = "UDP", *, branch: str = "z9hG4bK74bf9", route: str = "") -> bytes:
    """RFC 3665 §3.1 F1, Alice -> Bob."""
    lower = transport.lower()
    return sip(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\n"
        f"Via: SIP/2.0/{transport} client.atlanta.example.com:5060"
        + (f";branch={branch}" if branch else "") + "\n"
        "Max-Forwards: 70\n"
        + route +
        "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
        "To: Bob <sip:bob@biloxi.example.com>\n"
        "Call-ID: 3848276298220188511@atlanta.example.com\n"
        "CSeq: 1 INVITE\n"
        f"Contact: <sip:alice@client.atlanta.example.com;transport={lower}>\n"
        "Content-Type: application/sdp\n"
        "Content-Length: ?\n"
        "\n"
        "v=0\n"
        "o=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\n"
        "s=-\n"
        "c=IN IP4 192.0.2.101\n"
        "t=0 0\n"
        "m=audio 49172 RTP/AVP 0\n"
        "a=rtpmap:0 PCMU/8000\n"
    )


def bye(transport: str = "UDP", branch: str = "z9hG4bKnashds7") -> bytes:
    """RFC 3665 §3.1 F5, Bob -> Alice."""
    return sip(
        "BYE sip:alice@client.atlanta.example.com SIP/2.0\n"
        f"Via: SIP/2.0/{transport} client.biloxi.example.com:5060;branch={branch}\n"
        "Max-Forwards: 70\n"
        "From: Bob <sip:bob@biloxi.example.com>;tag=8321234356\n"
        "To: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
        "Call-ID: 3848276298220188511@atlanta.example.com\n"
        "CSeq: 1 BYE\n"
        "Content-Length: 0\n"
        "\n"
    )


def request(data: bytes) -> Request:
    message = parse(data)
    assert isinstance(message, Request)
    return message


# --------------------------------------------------------------------------- in-memory network


@dataclass
class Wire:
    time: float
    src: str
    dst: str
    data: bytes
    retransmission: bool

    @property
    def first_line(self) -> str:
        return self.data.split(b"\r\n", 1)[0].decode()


@dataclass
class Endpoint:
    name: str
    layer: TransactionLayer
    tu: list[Event] = field(default_factory=list)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.tu if isinstance(e, kind)]


class Net:
    """Endpoints joined by a lossless (unless told otherwise) in-memory network."""

    def __init__(self, *endpoints: Endpoint) -> None:
        self.now = 0.0
        self.endpoints = {e.name: e for e in endpoints}
        self.wire: list[Wire] = []
        self.drop: Callable[[Wire], bool] = lambda w: False

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for ep in self.endpoints.values():
                for event in ep.layer.events():
                    moved = True
                    if not isinstance(event, SendMessage):
                        ep.tu.append(event)
                        continue
                    w = Wire(self.now, ep.name, str(event.destination), bytes(event.message),
                             event.retransmission)
                    self.wire.append(w)
                    target = self.endpoints.get(w.dst)
                    if target is not None and not self.drop(w):
                        target.layer.receive(parse(w.data), self.now, source=ep.name)

    def run_until(self, t: float) -> None:
        """Advance the fake clock to ``t``, firing every timer due on the way."""
        while True:
            due = [x for x in (e.layer.get_timer() for e in self.endpoints.values()) if x is not None]
            if not due or min(due) > t:
                break
            self.now = min(due)
            for ep in self.endpoints.values():
                ep.layer.handle_timer(self.now)
            self.pump()
        self.now = t

    def sent(self, src: str, start: str) -> list[Wire]:
        return [w for w in self.wire if w.src == src and w.first_line.startswith(start)]

    def times(self, src: str, start: str) -> list[float]:
        return [w.time for w in self.sent(src, start)]


def pair(*, send_trying: bool = True) -> tuple[Net, Endpoint, Endpoint]:
    alice = Endpoint("alice", TransactionLayer())
    bob = Endpoint("bob", TransactionLayer(send_trying=send_trying))
    return Net(alice, bob), alice, bob


def only(events: Iterable[object], kind: type[E]) -> E:
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


def state(layer: TransactionLayer, key: ClientKey | ServerKey) -> State | None:
    return layer.state(key)


def status(event: object) -> int:
    assert isinstance(event, SendMessage) and isinstance(event.message, Response), event
    return event.message.status


def message(event: object) -> Request | Response:
    assert isinstance(event, SendMessage), event
    return event.message


# --------------------------------------------------------------------------- the tables


def test_tables_cite_the_rfc_and_use_every_timer() -> None:
    timers_used: set[Timer] = set()
    for table in TABLES.values():
        for (_state, step), row in table.items():
            assert row.ref.startswith(("3261 §", "6026 §")), row
            if isinstance(step, Timer):
                timers_used.add(step)
    assert {t.value for t in timers_used} >= set("ABDEFGHIJKLM")
    # RFC 6026: Accepted exists on both INVITE machines, never on non-INVITE ones
    assert any(s is State.ACCEPTED for s, _ in INVITE_CLIENT)
    assert any(s is State.ACCEPTED for s, _ in INVITE_SERVER)
    assert not any(s is State.ACCEPTED for s, _ in (*NON_INVITE_CLIENT, *NON_INVITE_SERVER))


def test_new_branch_has_magic_cookie_and_is_random() -> None:
    a, b = new_branch(), new_branch()
    assert a.startswith("z9hG4bK") and b.startswith("z9hG4bK") and a != b


# --------------------------------------------------------------------------- INVITE client


def test_timer_a_doubles_without_cap_until_timer_b() -> None:
    net, alice, _ = pair()
    net.drop = lambda w: True  # nobody answers
    key = alice.layer.send_request(request(invite("UDP")), 0.0, destination="bob")
    net.pump()
    net.run_until(100.0)
    # §17.1.1.2: 7 transmissions, at 0, T1, 3T1, 7T1, 15T1, 31T1, 63T1; Timer B at 64*T1
    assert net.times("alice", "INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert [w.retransmission for w in net.sent("alice", "INVITE")] == [False] + [True] * 6
    assert len({w.data for w in net.sent("alice", "INVITE")}) == 1
    assert alice.tu == [TransactionTimeout(key, Timer.B), TransactionTerminated(key)]
    assert key not in alice.layer and alice.layer.get_timer() is None


def test_timer_b_over_tcp_without_retransmission() -> None:
    net, alice, _ = pair()
    net.drop = lambda w: True
    key = alice.layer.send_request(request(invite("TCP")), 0.0, destination="bob")
    net.pump()
    assert alice.layer.get_timer() == 32.0
    net.run_until(100.0)
    assert net.times("alice", "INVITE") == [0.0]
    assert alice.tu == [TransactionTimeout(key, Timer.B), TransactionTerminated(key)]


def test_provisional_stops_retransmissions_and_timer_b() -> None:
    net, alice, _ = pair()
    key = alice.layer.send_request(request(invite("UDP")), 0.0, destination="bob")
    net.pump()  # bob answers 100 Trying at once
    assert state(alice.layer, key) is State.PROCEEDING
    assert alice.layer.get_timer() is None  # no A, no B in Proceeding
    net.run_until(200.0)
    assert net.times("alice", "INVITE") == [0.0]
    assert [e.response.status for e in alice.of(ResponseReceived)] == [100]


def test_non2xx_final_is_acked_and_timer_d_over_udp() -> None:
    net, alice, bob = pair()
    key = alice.layer.send_request(request(invite("UDP")), 0.0, destination="bob")
    net.pump()
    skey = only(bob.tu, RequestReceived).key
    net.run_until(1.0)
    bob.layer.respond(skey, 486, net.now, to_tag="8321234356")
    net.drop = lambda w: w.first_line.startswith("ACK")  # the first two ACKs get lost
    net.pump()
    net.run_until(1.5)  # Timer G: bob retransmits the 486; alice ACKs again
    net.drop = lambda w: False
    net.run_until(2.0)
    acks = net.sent("alice", "ACK")
    assert [w.time for w in acks] == [1.0, 1.5]
    assert acks[0].data == acks[1].data and acks[1].retransmission
    # the retransmitted 486 is not passed up again (§17.1.1.2)
    assert [e.response.status for e in alice.of(ResponseReceived)] == [100, 486]
    assert state(alice.layer, key) is State.COMPLETED
    net.run_until(1.0 + 32.0 - 0.01)
    assert key in alice.layer
    net.run_until(1.0 + 32.0)
    assert alice.tu[-1] == TransactionTerminated(key)
    # Bob's transaction saw the ACK: Confirmed, then Timer I (T4) over UDP
    assert bob.of(TransactionTerminated) == [TransactionTerminated(skey)]
    assert not bob.of(AckReceived)  # ACKs for non-2xx stay in the transaction


def test_non2xx_ack_is_built_per_17_1_1_3() -> None:
    route = "Route: <sip:ss1.atlanta.example.com;lr>\nRoute: <sip:ss2.biloxi.example.com;lr>\n"
    inv = request(invite("UDP", route=route))
    response = inv.response(486, to_tag="8321234356")
    ack = request(bytes(make_non2xx_ack(inv, response)))
    assert ack.method == "ACK" and ack.uri == inv.uri
    assert [str(v) for v in ack.via] == [str(inv.top_via)]
    assert ack.top_via.branch == "z9hG4bK74bf9"
    assert ack.call_id == inv.call_id and ack.headers.get("from") == inv.headers.get("from")
    assert ack.to.tag == "8321234356" and ack.to.uri == inv.to.uri
    assert (ack.cseq.seq, ack.cseq.method) == (1, "ACK")
    assert [str(r.uri) for r in ack.route] == ["sip:ss1.atlanta.example.com;lr",
                                              "sip:ss2.biloxi.example.com;lr"]
    assert ack.max_forwards == 70 and ack.body == b""


def test_non2xx_over_tcp_timer_d_is_zero() -> None:
    net, alice, bob = pair()
    key = alice.layer.send_request(request(invite("TCP")), 0.0, destination="bob")
    net.pump()
    skey = only(bob.tu, RequestReceived).key
    bob.layer.respond(skey, 603, net.now, to_tag="8321234356")
    net.pump()
    assert len(net.sent("alice", "ACK")) == 1
    assert TransactionTerminated(key) in alice.tu and key not in alice.layer  # D = 0
    assert TransactionTerminated(skey) in bob.tu  # I = 0
    assert not net.sent("bob", "SIP/2.0 603")[0].retransmission
    assert len(net.sent("bob", "SIP/2.0 603")) == 1  # no Timer G over TCP


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_2xx_goes_up_and_retransmissions_in_accepted_too(transport: str) -> None:
    # RFC 6026 §8.4: the client transaction stays in Accepted for Timer M (64*T1) and
    # passes every 2xx up; it never ACKs a 2xx itself.
    net, alice, _ = pair()
    key = alice.layer.send_request(request(invite(transport)), 0.0, destination="bob")
    net.drop = lambda w: True
    net.pump()
    inv = request(net.sent("alice", "INVITE")[0].data)
    ok = inv.response(200, to_tag="8321234356", headers=[("Contact", "<sip:bob@client.biloxi.example.com>")])
    alice.layer.receive(parse(bytes(ok)), 2.0)
    assert state(alice.layer, key) is State.ACCEPTED
    alice.layer.receive(parse(bytes(ok)), 2.5)  # retransmission
    alice.layer.receive(parse(bytes(ok)), 3.5)
    net.pump()
    assert [e.response.status for e in alice.of(ResponseReceived)] == [200, 200, 200]
    assert not net.sent("alice", "ACK")
    assert alice.layer.get_timer() == 2.0 + 32.0  # Timer M
    net.run_until(2.0 + 32.0)
    assert alice.tu[-1] == TransactionTerminated(key)
    alice.layer.receive(parse(bytes(ok)), 40.0)  # now a stray response for the UAC core
    assert isinstance(alice.layer.next_event(), StrayResponse)


def test_stray_response() -> None:
    layer = TransactionLayer()
    ok = request(invite("UDP", branch="z9hG4bKunknown")).response(200, to_tag="x")
    layer.receive(parse(bytes(ok)), 0.0, source="bob")
    (event,) = layer.events()
    assert isinstance(event, StrayResponse) and event.source == "bob" and event.response.status == 200
    assert len(layer) == 0


# --------------------------------------------------------------------------- non-INVITE client


def test_timer_e_doubles_capped_at_t2_until_timer_f() -> None:
    net, _, bob = pair()
    net.drop = lambda w: True
    key = bob.layer.send_request(request(bye("UDP")), 0.0, destination="alice")
    net.pump()
    net.run_until(100.0)
    # §17.1.2.2: T1, 2T1, 4T1, then T2 (4 s) until Timer F at 64*T1
    assert net.times("bob", "BYE") == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert bob.tu == [TransactionTimeout(key, Timer.F), TransactionTerminated(key)]


def test_timer_e_is_t2_in_proceeding() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request(bye("UDP")), 0.0, destination="alice")
    bye_sent = request(bytes(message(layer.events()[0])))
    layer.handle_timer(0.5)  # first retransmission; E now 1 s
    layer.receive(parse(bytes(bye_sent.response(180))), 0.6)
    assert state(layer, key) is State.PROCEEDING
    times = []
    while (t := layer.get_timer()) is not None and t < 32.0:
        layer.handle_timer(t)
        times.append(t)
    # in Proceeding every firing re-arms E at T2 (§17.1.2.2)
    assert times == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]


def test_timer_f_over_tcp_no_retransmission() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request(bye("TCP")), 0.0)
    assert len(layer.events()) == 1
    assert layer.get_timer() == 32.0
    layer.handle_timer(32.0)
    assert layer.events() == [TransactionTimeout(key, Timer.F), TransactionTerminated(key)]


@pytest.mark.parametrize(("transport", "k"), [("UDP", T4), ("TCP", 0.0)])
def test_timer_k_absorbs_retransmitted_final(transport: str, k: float) -> None:
    net, alice, bob = pair()
    key = bob.layer.send_request(request(bye(transport)), 0.0, destination="alice")
    net.pump()
    skey = only(alice.tu, RequestReceived).key
    net.run_until(0.2)
    alice.layer.respond(skey, 200, net.now)
    net.pump()
    ok = net.sent("alice", "SIP/2.0 200")[0].data
    assert [e.response.status for e in bob.of(ResponseReceived)] == [200]
    if k:
        assert state(bob.layer, key) is State.COMPLETED
        # only the key is kept in Completed: not the transaction, nor its request
        assert bob.layer.get(key) is None and len(bob.layer) == 1
        bob.layer.receive(parse(ok), 1.0)  # retransmitted 200: absorbed (not a stray response)
        assert bob.layer.events() == []
        net.run_until(0.2 + k - 0.01)
        assert key in bob.layer
        net.run_until(0.2 + k)
    assert bob.tu[-1] == TransactionTerminated(key) and key not in bob.layer
    assert net.times("bob", "BYE") == [0.0]


# --------------------------------------------------------------------------- INVITE server


def test_invite_server_sends_100_and_resends_last_provisional() -> None:
    layer = TransactionLayer()
    data = invite("UDP")
    layer.receive(parse(data), 0.0, source="alice")
    events = layer.events()
    trying = only(events, SendMessage)
    assert status(trying) == 100
    key = only(events, RequestReceived).key
    assert key == ServerKey("z9hG4bK74bf9", "client.atlanta.example.com:5060", "INVITE")
    layer.receive(parse(data), 0.4, source="alice")  # retransmission: 100 again, TU not told
    assert [type(e) for e in layer.events()] == [SendMessage]
    layer.respond(key, 180, 0.5, to_tag="8321234356")
    layer.events()
    layer.receive(parse(data), 1.5, source="alice")
    (again,) = layer.events()
    assert isinstance(again, SendMessage) and again.retransmission
    assert status(again) == 180
    assert layer.get_timer() is None  # no timer in Proceeding


def test_timer_g_and_h_without_ack() -> None:
    layer = TransactionLayer()
    layer.receive(parse(invite("UDP")), 0.0, source="alice")
    key = only(layer.events(), RequestReceived).key
    layer.respond(key, 486, 0.0, to_tag="8321234356")
    assert len(layer.events()) == 1
    sent: list[float] = []
    events: list[Event] = []
    while (t := layer.get_timer()) is not None:
        layer.handle_timer(t)
        for e in layer.events():
            if isinstance(e, SendMessage):
                assert e.retransmission and status(e) == 486
                sent.append(t)
            else:
                events.append(e)
    # §17.2.1: G from T1 doubling up to T2; Timer H at 64*T1
    assert sent == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events == [TransactionTimeout(key, Timer.H), TransactionTerminated(key)]


@pytest.mark.parametrize(("transport", "i"), [("UDP", T4), ("TCP", 0.0)])
def test_ack_confirms_and_timer_i(transport: str, i: float) -> None:
    net, alice, bob = pair()
    alice.layer.send_request(request(invite(transport)), 0.0, destination="bob")
    net.pump()
    skey = only(bob.tu, RequestReceived).key
    net.run_until(0.1)
    bob.layer.respond(skey, 404, net.now, to_tag="8321234356")
    net.pump()
    if i:
        assert state(bob.layer, skey) is State.CONFIRMED
        assert bob.layer.get_timer() == pytest.approx(0.1 + T4)
        net.run_until(0.1 + i)
    assert bob.tu[-1] == TransactionTerminated(skey)
    assert len(net.sent("bob", "SIP/2.0 404")) == 1  # the ACK stopped Timer G


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_timer_l_absorbs_invite_retransmissions(transport: str) -> None:
    layer = TransactionLayer(uas_core=False)  # a proxy: no 2xx retransmission of its own
    data = invite(transport)
    layer.receive(parse(data), 0.0, source="alice")
    key = only(layer.events(), RequestReceived).key
    layer.respond(key, 200, 1.0, to_tag="8321234356")
    layer.events()
    assert state(layer, key) is State.ACCEPTED
    layer.receive(parse(data), 2.0, source="alice")  # RFC 6026 §8.7: absorbed, not a new request
    assert layer.events() == []
    assert layer.get_timer() == 1.0 + 32.0
    layer.handle_timer(33.0)
    assert layer.events() == [TransactionTerminated(key)]


def test_uas_retransmits_2xx_until_ack_and_reports_missing_ack() -> None:
    layer = TransactionLayer()
    layer.receive(parse(invite("UDP")), 0.0, source="alice")
    key = only(layer.events(), RequestReceived).key
    layer.respond(key, 200, 0.0, to_tag="8321234356")
    layer.events()
    sent = []
    tail: list[Event] = []
    while (t := layer.get_timer()) is not None:
        layer.handle_timer(t)
        for e in layer.events():
            (sent.append(t) if isinstance(e, SendMessage) else tail.append(e))
    # §13.3.1.4: T1 doubling up to T2, for 64*T1 (= Timer L); then the TU learns the ACK never came
    assert sent == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert tail == [AckTimeout(key), TransactionTerminated(key)]


# --------------------------------------------------------------------------- non-INVITE server


@pytest.mark.parametrize(("transport", "j"), [("UDP", 64 * T1), ("TCP", 0.0)])
def test_timer_j_resends_final_for_retransmitted_request(transport: str, j: float) -> None:
    layer = TransactionLayer()
    data = bye(transport)
    layer.receive(parse(data), 0.0, source="bob")
    key = only(layer.events(), RequestReceived).key
    layer.receive(parse(data), 0.3, source="bob")  # Trying: retransmission discarded
    assert layer.events() == []
    layer.respond(key, 200, 1.0)
    first = only(layer.events(), SendMessage)
    if not j:
        assert key not in layer
        return
    # Completed keeps the last response and its key, not the transaction with its request
    assert layer.get(key) is None and state(layer, key) is State.COMPLETED and len(layer) == 1
    layer.receive(parse(data), 2.0, source="bob")
    (again,) = layer.events()
    assert isinstance(again, SendMessage) and bytes(again.message) == bytes(first.message)
    assert again.retransmission
    layer.respond(key, 500, 3.0)  # a second final response is discarded (§17.2.2)
    assert layer.events() == []
    assert layer.get_timer() == 1.0 + j
    layer.handle_timer(1.0 + j)
    assert layer.events() == [TransactionTerminated(key)]
    assert indexes_empty(layer)


def answered(data: bytes) -> tuple[TransactionLayer, ServerKey, Request | Response]:
    """A layer that received ``data`` (a non-INVITE over UDP) and answered it 200 at 0.1 s:
    the layer, the transaction's key and the response sent."""
    layer = TransactionLayer()
    layer.receive(parse(data), 0.0, source="bob")
    key = only(layer.events(), RequestReceived).key
    layer.respond(key, 200, 0.1)
    return layer, key, only(layer.events(), SendMessage).message


def test_cancel_of_answered_non_invite_gets_200_with_its_to_tag() -> None:
    """§9.2: a CANCEL for a request that has its final response already has no effect but
    a 200 (the BYE's transaction is only its key and last response by then)."""
    data = bye("UDP")
    layer, _, _ = answered(data)
    cancel = request(data.replace(b"BYE sip:", b"CANCEL sip:").replace(b"1 BYE", b"1 CANCEL"))
    layer.receive(cancel, 0.2, source="bob")
    events = layer.events()
    answer = only(events, SendMessage).message
    assert isinstance(answer, Response) and answer.status == 200 and answer.cseq.method == "CANCEL"
    assert answer.to.tag == "9fxced76sl"  # the BYE's To tag (in-dialog)
    assert not [e for e in events if isinstance(e, RequestCancelled)]
    layer.handle_timer(100.0)  # Timer J of both
    assert len(layer) == 0 and indexes_empty(layer)


def test_rfc2543_non_invite_retransmission_after_final() -> None:
    """Without a magic cookie the Completed transaction stays whole but for its request,
    of which it keeps what §17.2.3 matches on."""
    data = bye("UDP").replace(b";branch=z9hG4bKnashds7", b"")
    layer, key, first = answered(data)
    txn = layer.get(key)
    assert txn is not None and txn.request.body == b""
    assert {h.key for h in txn.request.headers.fields} == {"via", "from", "to", "call-id", "cseq"}
    layer.receive(parse(data), 1.0, source="bob")
    again = only(layer.events(), SendMessage)
    assert again.message is first and again.retransmission


def test_non_invite_server_proceeding_resends_provisional() -> None:
    layer = TransactionLayer()
    data = bye("UDP")
    layer.receive(parse(data), 0.0, source="bob")
    key = only(layer.events(), RequestReceived).key
    layer.respond(key, 100, 0.1)
    layer.events()
    layer.receive(parse(data), 0.5, source="bob")
    (again,) = layer.events()
    assert status(again) == 100 and isinstance(again, SendMessage) and again.retransmission


# --------------------------------------------------------------------------- whole exchanges


def test_basic_call_over_udp_with_loss() -> None:
    """RFC 3665 §3.1 over UDP: the first INVITE is lost; Timer A recovers it."""
    net, alice, bob = pair()
    lost: list[Wire] = []

    def drop(w: Wire) -> bool:
        if w.first_line.startswith("INVITE") and not lost:
            lost.append(w)
            return True
        return False

    net.drop = drop
    ckey = alice.layer.send_request(request(invite("UDP")), 0.0, destination="bob")
    net.pump()
    assert not bob.tu
    net.run_until(0.5)
    skey = only(bob.tu, RequestReceived).key
    net.run_until(0.6)
    bob.layer.respond(skey, 180, net.now, to_tag="8321234356")
    net.pump()
    net.run_until(2.0)
    bob.layer.respond(skey, 200, net.now, to_tag="8321234356",
                      headers=[("Contact", "<sip:bob@client.biloxi.example.com>")])
    net.pump()
    statuses = [e.response.status for e in alice.of(ResponseReceived)]
    assert statuses == [100, 180, 200]
    # the UAC core ACKs the 2xx outside the transaction (§13.2.2.4) ...
    ok = alice.of(ResponseReceived)[-1].response
    ack = request(sip(
        "ACK sip:bob@client.biloxi.example.com SIP/2.0\n"
        "Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bd5\n"
        "Max-Forwards: 70\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
        f"To: {ok.headers.get('to')}\n"
        "Call-ID: 3848276298220188511@atlanta.example.com\n"
        "CSeq: 1 ACK\n"
        "Content-Length: 0\n\n"
    ))
    net.run_until(3.0)  # one 2xx retransmission by Bob's UAS core first (at 2.5)
    assert net.times("bob", "SIP/2.0 200") == [2.0, 2.5]
    alice.layer.send_stateless(ack, destination="bob")
    net.pump()
    # ... and the UAS recognises it by dialog and CSeq: retransmissions stop, the TU sees it
    got = only(bob.tu, AckReceived)
    assert got.key == skey
    net.run_until(100.0)
    assert net.times("bob", "SIP/2.0 200") == [2.0, 2.5]
    assert not bob.of(AckTimeout)
    assert TransactionTerminated(ckey) in alice.tu and TransactionTerminated(skey) in bob.tu
    assert len(alice.layer) == len(bob.layer) == 0


def test_cancel_of_pending_invite() -> None:
    """RFC 3665 §3.8 (no answer): CANCEL gets 200, the INVITE 487, which is ACKed."""
    net, alice, bob = pair()
    ikey = alice.layer.send_request(request(invite("UDP")), 0.0, destination="bob")
    net.pump()
    skey = only(bob.tu, RequestReceived).key
    net.run_until(0.1)
    bob.layer.respond(skey, 180, net.now, to_tag="8321234356")
    net.pump()
    net.run_until(5.0)
    ckey = alice.layer.cancel(ikey, net.now)
    assert ckey == ClientKey("z9hG4bK74bf9", "CANCEL")
    net.pump()
    cancel = request(net.sent("alice", "CANCEL")[0].data)
    assert cancel.top_via.branch == "z9hG4bK74bf9" and cancel.cseq.method == "CANCEL"
    cancelled = only(bob.tu, RequestCancelled)
    assert cancelled.key == skey and bytes(cancelled.cancel) == bytes(cancel)
    statuses = {(e.key.method, e.response.status) for e in alice.of(ResponseReceived)}
    assert ("CANCEL", 200) in statuses and ("INVITE", 487) in statuses
    final = net.sent("bob", "SIP/2.0 487")[0]
    assert request_to_tag(final.data) == "8321234356"  # same To tag as the 180
    assert len(net.sent("alice", "ACK")) == 1
    assert state(bob.layer, skey) is State.CONFIRMED
    net.run_until(100.0)
    assert len(net.sent("bob", "SIP/2.0 487")) == 1
    assert len(alice.layer) == len(bob.layer) == 0
    assert indexes_empty(bob.layer)  # the INVITE and its CANCEL shared one (branch, sent-by)
    assert alice.layer.cancel(ikey, 101.0) is None  # nothing left to cancel


def indexes_empty(layer: TransactionLayer) -> bool:
    """Nothing of ended server transactions left in the layer's lookup tables."""
    return not (layer._by_branch or layer._server_index or layer._merge or layer._rfc2543 or layer._acks)


def request_to_tag(data: bytes) -> str | None:
    return parse(data).to.tag


def test_cancel_waits_for_a_provisional_response() -> None:
    # §9.1: no CANCEL before a provisional response has arrived
    net, alice, bob = pair(send_trying=False)
    ikey = alice.layer.send_request(request(invite("TCP")), 0.0, destination="bob")
    net.pump()
    net.run_until(1.0)
    assert alice.layer.cancel(ikey, net.now) == ClientKey("z9hG4bK74bf9", "CANCEL")
    net.pump()
    assert not net.sent("alice", "CANCEL")
    skey = only(bob.tu, RequestReceived).key
    net.run_until(2.0)
    bob.layer.respond(skey, 183, net.now, to_tag="8321234356")
    net.pump()
    assert net.times("alice", "CANCEL") == [2.0]
    assert bob.of(RequestCancelled)


def test_cancel_without_final_response_times_out() -> None:
    # §9.1: 64*T1 after the CANCEL without a final response, the INVITE transaction gives up
    layer = TransactionLayer()
    ikey = layer.send_request(request(invite("TCP")), 0.0)
    sent = request(bytes(message(layer.events()[0])))
    layer.receive(parse(bytes(sent.response(180, to_tag="x"))), 1.0)
    assert layer.get_timer() is None
    layer.cancel(ikey, 10.0)
    ckey = ClientKey("z9hG4bK74bf9", "CANCEL")
    layer.receive(parse(bytes(make_cancel(sent).response(200, to_tag="x"))), 10.1)
    assert TransactionTerminated(ckey) in layer.events()  # Timer K = 0 over TCP
    layer.handle_timer(10.0 + 32.0)
    assert layer.events() == [TransactionTimeout(ikey, Timer.B), TransactionTerminated(ikey)]


def test_cancel_matching_nothing_gets_481() -> None:
    layer = TransactionLayer()
    cancel = make_cancel(request(invite("UDP")))
    layer.receive(parse(bytes(cancel)), 0.0, source="alice")
    (out,) = layer.events()
    assert status(out) == 481


def test_cancel_after_final_response_has_no_effect() -> None:
    layer = TransactionLayer()
    inv = request(invite("TCP"))
    layer.receive(inv, 0.0, source="alice")
    key = only(layer.events(), RequestReceived).key
    layer.respond(key, 200, 1.0, to_tag="t")
    layer.events()
    layer.receive(parse(bytes(make_cancel(inv))), 2.0, source="alice")
    events = layer.events()
    out = only(events, SendMessage)
    assert status(out) == 200 and out.message.cseq.method == "CANCEL"
    assert not [e for e in events if isinstance(e, RequestCancelled)]
    assert state(layer, key) is State.ACCEPTED


def test_cancel_for_a_proxy_is_passed_to_the_tu() -> None:
    layer = TransactionLayer(uas_core=False)
    inv = request(invite("UDP"))
    layer.receive(inv, 0.0, source="alice")
    ikey = only(layer.events(), RequestReceived).key
    layer.receive(parse(bytes(make_cancel(inv))), 1.0, source="alice")
    got = only(layer.events(), RequestReceived)
    assert got.request.method == "CANCEL"
    assert layer.cancel_target(got.request) == ikey


def test_cancel_is_built_per_9_1() -> None:
    route = "Route: <sip:ss1.atlanta.example.com;lr>\n"
    inv = request(invite("TCP", route=route))
    cancel = request(bytes(make_cancel(inv)))
    assert cancel.uri == inv.uri and cancel.call_id == inv.call_id
    assert cancel.headers.get("from") == inv.headers.get("from")
    assert cancel.headers.get("to") == inv.headers.get("to")
    assert [str(v) for v in cancel.via] == [str(inv.top_via)]
    assert (cancel.cseq.seq, cancel.cseq.method) == (1, "CANCEL")
    assert [str(r) for r in cancel.route] == ["<sip:ss1.atlanta.example.com;lr>"]


# --------------------------------------------------------------------------- transport errors


def test_transport_error_on_client_transaction() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request(invite("TCP")), 0.0, destination="bob")
    layer.events()
    layer.transport_error(key, 0.01)
    assert layer.events() == [TransportError(key), TransactionTerminated(key)]
    assert key not in layer and layer.get_timer() is None
    layer.transport_error(key, 0.02)  # unknown key: nothing
    assert layer.events() == []


def test_transport_error_on_non_invite_client_in_proceeding() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request(bye("UDP")), 0.0)
    sent = request(bytes(message(layer.events()[0])))
    layer.receive(parse(bytes(sent.response(100))), 0.1)
    layer.events()
    layer.handle_timer(0.5)  # retransmission that the transport fails to send
    layer.events()
    layer.transport_error(key, 0.5)
    assert layer.events() == [TransportError(key), TransactionTerminated(key)]


def test_transport_error_on_server_transactions() -> None:
    layer = TransactionLayer()
    layer.receive(parse(invite("UDP")), 0.0, source="alice")
    key = only(layer.events(), RequestReceived).key
    layer.respond(key, 200, 0.1, to_tag="t")
    layer.events()
    layer.transport_error(key, 0.2)  # RFC 6026 Figure 7: inform the TU, stay Accepted
    assert layer.events() == [TransportError(key)]
    assert state(layer, key) is State.ACCEPTED
    layer.receive(parse(bye("TCP")), 1.0, source="bob")
    bkey = only(layer.events(), RequestReceived).key
    layer.respond(bkey, 100, 1.1)
    layer.events()
    layer.transport_error(bkey, 1.2)  # §17.2.4: Proceeding -> Terminated
    assert layer.events() == [TransportError(bkey), TransactionTerminated(bkey)]


# --------------------------------------------------------------------------- matching


def test_merged_request_gets_482() -> None:
    """§8.2.2.2: the same INVITE forked by a proxy reaches the UAS twice."""
    layer = TransactionLayer()
    copies = []
    for branch in ("z9hG4bK2d4790.1", "z9hG4bK2d4790.2"):
        data = invite("UDP").replace(
            b"Via: ", f"Via: SIP/2.0/UDP ss1.atlanta.example.com:5060;branch={branch}\r\nVia: ".encode(), 1
        )
        copies.append(request(data))
    layer.receive(copies[0], 0.0, source="proxy")
    first = only(layer.events(), RequestReceived).key
    layer.receive(copies[1], 0.1, source="proxy")
    events = layer.events()
    merged = only(events, MergedRequest)
    assert merged.original == first and merged.key.branch == "z9hG4bK2d4790.2"
    statuses = [status(e) for e in events if isinstance(e, SendMessage)]
    assert statuses == [100, 482]
    assert not [e for e in events if isinstance(e, RequestReceived)]
    # a retransmission of the original is still a retransmission, not a merge
    layer.receive(parse(bytes(copies[0])), 0.2, source="proxy")
    assert [type(e) for e in layer.events()] == [SendMessage]


def test_requests_with_to_tag_are_not_merged() -> None:
    layer = TransactionLayer()
    layer.receive(parse(bye("UDP", "z9hG4bKa")), 0.0, source="bob")
    layer.receive(parse(bye("UDP", "z9hG4bKb")), 0.1, source="bob")
    assert len([e for e in layer.events() if isinstance(e, RequestReceived)]) == 2


def test_server_matching_uses_sent_by_and_method() -> None:
    layer = TransactionLayer()
    inv = invite("UDP")
    layer.receive(parse(inv), 0.0, source="alice")
    layer.events()
    # same branch from another sent-by: a different transaction (§17.2.3)
    other = inv.replace(b"client.atlanta.example.com:5060;", b"pc33.atlanta.example.com:5060;")
    other = other.replace(b"tag=9fxced76sl", b"tag=other")
    layer.receive(parse(other), 0.1, source="alice")
    assert len([e for e in layer.events() if isinstance(e, RequestReceived)]) == 1
    assert len(layer) == 2


def test_client_matching_uses_cseq_method() -> None:
    layer = TransactionLayer()
    inv = request(invite("UDP"))
    ikey = layer.send_request(inv, 0.0)
    layer.events()
    # a response with the INVITE's branch but CSeq method CANCEL matches no transaction
    cancel_ok = make_cancel(inv).response(200, to_tag="x")
    layer.receive(parse(bytes(cancel_ok)), 0.1)
    assert [type(e) for e in layer.events()] == [StrayResponse]
    assert state(layer, ikey) is State.CALLING


RFC2543_INVITE = sip(
    "INVITE sip:bob@biloxi.example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060\n"
    "Max-Forwards: 70\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n"
    "To: Bob <sip:bob@biloxi.example.com>\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\n"
    "CSeq: 314159 INVITE\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\n"
    "Content-Length: 0\n\n"
)


def test_rfc2543_matching_of_retransmission_ack_and_cancel() -> None:
    layer = TransactionLayer()
    layer.receive(parse(RFC2543_INVITE), 0.0, source="alice")
    events = layer.events()
    key = only(events, RequestReceived).key
    assert not key.branch.startswith("z9hG4bK")
    # retransmission: matched by Request-URI, tags, Call-ID, CSeq, top Via
    layer.receive(parse(RFC2543_INVITE), 0.3, source="alice")
    assert [type(e) for e in layer.events()] == [SendMessage]
    # the same request from a different top Via is another transaction: a merged one (§8.2.2.2)
    moved = RFC2543_INVITE.replace(b"pc33.atlanta.example.com:5060\r\n", b"pc34.atlanta.example.com:5060\r\n")
    layer.receive(parse(moved), 0.4, source="alice")
    assert len([e for e in layer.events() if isinstance(e, MergedRequest)]) == 1
    # CANCEL: matched as if it were the INVITE (§9.2)
    cancel = request(bytes(make_cancel(request(RFC2543_INVITE))))
    layer.receive(cancel, 1.0, source="alice")
    events = layer.events()
    assert only(events, RequestCancelled).key == key
    final = [e.message for e in events
             if isinstance(e, SendMessage) and isinstance(e.message, Response) and e.message.status == 487]
    to_tag = final[0].to.tag
    # an ACK with the wrong To tag does not match; the right one confirms the transaction
    ack = make_non2xx_ack(request(RFC2543_INVITE), final[0])
    wrong = bytes(ack).replace(f"tag={to_tag}".encode(), b"tag=wrong")
    layer.receive(parse(wrong), 1.1, source="alice")
    assert [type(e) for e in layer.events()] == [AckReceived]
    assert state(layer, key) is State.COMPLETED
    layer.receive(parse(bytes(ack)), 1.2, source="alice")
    assert layer.events() == []
    assert state(layer, key) is State.CONFIRMED


def test_standalone_client_transaction() -> None:
    inv = request(invite("UDP"))
    txn = ClientTransaction(inv, reliable=False, destination="bob", timers=TimerSettings(t1=0.1))
    assert [type(e) for e in txn.start(0.0)] == [SendMessage]
    assert txn.get_timer() == 0.1 and txn.running_timers() == {Timer.A: 0.1, Timer.B: 6.4}
    out = txn.handle_timer(0.1)
    assert out == [SendMessage(inv, "bob", txn.key, retransmission=True)]
    assert txn.get_timer() == pytest.approx(0.3)


def test_ack_is_refused_as_a_client_transaction() -> None:
    inv = request(invite("UDP"))
    with pytest.raises(ValueError):
        TransactionLayer().send_request(make_non2xx_ack(inv, inv.response(486, to_tag="x")), 0.0)


def test_missing_branch_is_added() -> None:
    layer = TransactionLayer(branch_factory=lambda: "z9hG4bKfixed")
    key = layer.send_request(request(invite("UDP", branch="")), 0.0)
    assert key == ClientKey("z9hG4bKfixed", "INVITE")
    sent = only(layer.events(), SendMessage)
    assert request(bytes(sent.message)).top_via.branch == "z9hG4bKfixed"
