"""SIP dialogs (RFC 3261 §12-§15) over real messages.

The call-flow test runs Alice's UAC and Bob's UAS (each a TransactionLayer plus
dialogs) through a record-routing proxy, all in memory: every message is
serialized, parsed and handed on as bytes (RFC 3665 §3.2 shape).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import pytest

from webims.sip import Request, Response, SipURI, parse
from webims.sip.dialog import (
    Dialog,
    DialogError,
    DialogId,
    DialogSet,
    DialogState,
    DialogTable,
)
from webims.sip.transaction import (
    AckReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    TransactionTerminated,
)
from webims.sip.transaction_layer import TransactionLayer

E = TypeVar("E")


def sip(text: str) -> bytes:
    head, _, body = text.partition("\n\n")
    data = body.replace("\n", "\r\n").encode()
    head = head.replace("Content-Length: ?", f"Content-Length: {len(data)}")
    return head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + data


def req(data: bytes) -> Request:
    message = parse(data)
    assert isinstance(message, Request)
    return message


def resp(message: Response) -> Response:
    """Through the wire: serialize and parse again."""
    parsed = parse(bytes(message))
    assert isinstance(parsed, Response)
    return parsed


SDP = (
    "v=0\n"
    "o=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\n"
    "s=-\n"
    "c=IN IP4 192.0.2.101\n"
    "t=0 0\n"
    "m=audio 49172 RTP/AVP 0\n"
    "a=rtpmap:0 PCMU/8000\n"
)

# RFC 3665 §3.1 F1 (Alice -> Bob), UDP
INVITE = sip(
    "INVITE sip:bob@biloxi.example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\n"
    "Max-Forwards: 70\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
    "To: Bob <sip:bob@biloxi.example.com>\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\n"
    "CSeq: 1 INVITE\n"
    "Contact: <sip:alice@client.atlanta.example.com;transport=udp>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: ?\n\n" + SDP
)

# RFC 3665 §3.2 F4: the INVITE as Bob receives it through ss1 and ss2 (record-routed)
INVITE_VIA_PROXIES = sip(
    "INVITE sip:bob@client.biloxi.example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP ss2.biloxi.example.com:5060;branch=z9hG4bK721e4.1\n"
    "Via: SIP/2.0/TCP ss1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.111\n"
    "Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\n"
    "Max-Forwards: 68\n"
    "Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\n"
    "To: Bob <sip:bob@biloxi.example.com>\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\n"
    "CSeq: 2 INVITE\n"
    "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\n"
    "Content-Type: application/sdp\n"
    "Content-Length: ?\n\n" + SDP
)

BOB_CONTACT = "<sip:bob@client.biloxi.example.com>"
SS1, SS2 = "sip:ss1.atlanta.example.com;lr", "sip:ss2.biloxi.example.com;lr"


def only(events: Iterable[object], kind: type[E]) -> E:
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------- in-memory call


class Proxy:
    """A record-routing proxy (ss1) between Alice and Bob: adds its Via and Record-Route
    to dialog-creating requests, removes its own Route entry (loose routing, RFC 3261
    §16.4), strips its Via from responses (§16.7)."""

    host = "ss1.atlanta.example.com"

    def forward(self, src: str, message: Request | Response) -> tuple[str, Request | Response]:
        if isinstance(message, Response):
            message.headers.pop_first("via")
            dst = "alice" if "atlanta" in message.top_via.host else "bob"
            return dst, message
        route = message.route
        if route and isinstance(route[0].uri, SipURI) and route[0].uri.host == self.host:
            message.headers.pop_first("route")
        branch = f"z9hG4bKss1{message.top_via.branch}"  # stateless: same input, same branch (§16.11)
        message.headers.add("Via", f"SIP/2.0/UDP {self.host}:5060;branch={branch}", first=True)
        if message.method == "INVITE" and message.to.tag is None:
            message.headers.add("Record-Route", f"<sip:{self.host};lr>", first=True)
        return ("bob" if src == "alice" else "alice"), message


class Call:
    def __init__(self) -> None:
        self.now = 0.0
        self.layers = {"alice": TransactionLayer(), "bob": TransactionLayer()}
        self.tu: dict[str, list[Event]] = {"alice": [], "bob": []}
        self.proxy = Proxy()
        self.wire: list[tuple[str, str, Request | Response]] = []

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for name, layer in self.layers.items():
                for event in layer.events():
                    moved = True
                    if not isinstance(event, SendMessage):
                        self.tu[name].append(event)
                        continue
                    assert event.destination == "ss1"  # everything goes through the proxy
                    dst, forwarded = self.proxy.forward(name, parse(bytes(event.message)))
                    message = parse(bytes(forwarded))
                    self.wire.append((name, dst, message))
                    self.layers[dst].receive(message, self.now, source="ss1")

    def take(self, name: str, kind: type[E]) -> E:
        found = [e for e in self.tu[name] if isinstance(e, kind)]
        assert found, self.tu[name]
        self.tu[name].remove(found[0])
        return found[0]


def test_uac_uas_call_invite_180_200_ack_reinvite_bye() -> None:
    call = Call()
    alice, bob = call.layers["alice"], call.layers["bob"]
    alice_dialogs, bob_dialogs = DialogTable(), DialogTable()

    # F1 INVITE
    invite = req(INVITE)
    dialog_set = DialogSet(invite)
    alice.send_request(invite, call.now, destination="ss1")
    call.pump()
    got = call.take("bob", RequestReceived)
    assert [str(r) for r in got.request.record_route] == ["<sip:ss1.atlanta.example.com;lr>"]

    # 180 Ringing creates the early dialogs on both sides
    ringing = got.request.response(180, to_tag="8321234356", headers=[("Contact", BOB_CONTACT)])
    bob_dialog = Dialog.from_uas(got.request, ringing)
    bob_dialogs.add(bob_dialog)
    bob.send_response(got.key, ringing, call.now)
    call.pump()
    trying = call.take("alice", ResponseReceived)
    assert trying.response.status == 100 and dialog_set.receive_response(trying.response) is None
    r180 = call.take("alice", ResponseReceived).response
    alice_dialog = dialog_set.receive_response(r180)
    assert alice_dialog is not None and alice_dialog.early and bob_dialog.early
    assert alice_dialog.id == DialogId("3848276298220188511@atlanta.example.com", "9fxced76sl", "8321234356")
    assert bob_dialog.id == DialogId("3848276298220188511@atlanta.example.com", "8321234356", "9fxced76sl")
    alice_dialogs.add(alice_dialog)

    # 200 OK confirms; Alice ACKs it within the dialog (§13.2.2.4)
    call.now = 2.0
    ok = got.request.response(200, to_tag="8321234356", headers=[("Contact", BOB_CONTACT)])
    bob.send_response(got.key, ok, call.now)
    bob_dialog.response_sent(ok)
    call.pump()
    r200 = call.take("alice", ResponseReceived).response
    assert dialog_set.receive_response(r200) is alice_dialog
    assert alice_dialog.confirmed and bob_dialog.confirmed
    assert str(alice_dialog.remote_target) == "sip:bob@client.biloxi.example.com"
    assert str(bob_dialog.remote_target) == "sip:alice@client.atlanta.example.com;transport=udp"
    assert [str(r.uri) for r in alice_dialog.route_set] == ["sip:ss1.atlanta.example.com;lr"]
    assert [str(r.uri) for r in bob_dialog.route_set] == ["sip:ss1.atlanta.example.com;lr"]
    ack = alice_dialog.create_ack(invite, via="SIP/2.0/UDP client.atlanta.example.com:5060")
    alice.send_stateless(ack, destination="ss1")
    call.pump()
    acked = call.take("bob", AckReceived)
    assert acked.key == got.key
    assert acked.request.cseq.seq == 1 and acked.request.cseq.method == "ACK"
    assert str(acked.request.uri) == "sip:bob@client.biloxi.example.com"
    assert acked.request.top_via.branch != "z9hG4bK74bf9"  # the ACK for a 2xx is a new transaction
    assert bob_dialog.receive_request(acked.request) is None

    # re-INVITE from Alice with a new Contact: CSeq 2, Route through ss1, target refresh at Bob
    assert alice_dialog.local_target is not None
    alice_dialog.local_target = alice_dialog.local_target.replace(
        uri=SipURI(host="192.0.2.101", user="alice", port=5062))
    reinvite = alice_dialog.create_request(
        "INVITE", via="SIP/2.0/UDP client.atlanta.example.com:5060",
        headers=[("Content-Type", "application/sdp")], body=SDP.replace("\n", "\r\n").encode())
    assert reinvite.cseq.seq == 2
    assert [str(r) for r in reinvite.route] == ["<sip:ss1.atlanta.example.com;lr>"]
    alice.send_request(reinvite, call.now, destination="ss1")
    call.pump()
    got2 = call.take("bob", RequestReceived)
    assert got2.request.route == []  # the proxy consumed its Route entry
    found = bob_dialogs.for_request(got2.request)
    assert found is bob_dialog and found.receive_request(got2.request) is None
    assert bob_dialog.remote_seq == 2
    assert str(bob_dialog.remote_target) == "sip:alice@192.0.2.101:5062"
    ok2 = got2.request.response(200, headers=[("Contact", "<sip:bob@192.0.2.200>")])
    bob.send_response(got2.key, ok2, call.now)
    call.pump()
    assert call.take("alice", ResponseReceived).response.status == 100
    r200b = call.take("alice", ResponseReceived).response
    dialog = alice_dialogs.for_response(r200b)
    assert dialog is alice_dialog
    alice_dialog.receive_response(r200b)
    assert str(alice_dialog.remote_target) == "sip:bob@192.0.2.200"  # §12.2.1.2 target refresh
    ack2 = alice_dialog.create_ack(reinvite, via="SIP/2.0/UDP client.atlanta.example.com:5060")
    assert ack2.cseq.seq == 2 and str(ack2.uri) == "sip:bob@192.0.2.200"
    alice.send_stateless(ack2, destination="ss1")
    call.pump()
    assert call.take("bob", AckReceived).key == got2.key

    # a retransmitted 2xx gets the same ACK again
    assert alice_dialog.ack_for(r200b) is ack2

    # BYE from Bob: his first request in the dialog, Request-URI = Alice's new target
    bye = bob_dialog.create_request("BYE", via="SIP/2.0/UDP client.biloxi.example.com:5060")
    assert bye.cseq.seq == 1 and str(bye.uri) == "sip:alice@192.0.2.101:5062"
    assert bye.to.tag == "9fxced76sl" and bye.from_.tag == "8321234356"
    bob.send_request(bye, call.now, destination="ss1")
    call.pump()
    got3 = call.take("alice", RequestReceived)
    assert got3.request.method == "BYE" and str(got3.request.uri) == "sip:alice@192.0.2.101:5062"
    target = alice_dialogs.for_request(got3.request)
    assert target is alice_dialog and target.receive_request(got3.request) is None
    assert alice_dialog.terminated
    alice.respond(got3.key, 200, call.now)
    call.pump()
    bye_ok = call.take("bob", ResponseReceived).response
    assert bob_dialogs.for_response(bye_ok) is bob_dialog  # From tag is Bob's: his dialog
    bob_dialog.receive_response(bye_ok)
    assert bob_dialog.terminated
    assert alice_dialogs.purge() == [alice_dialog] and len(alice_dialogs) == 0


# --------------------------------------------------------------------------- forking


def fork_response(invite: Request, status: int, tag: str, contact: str,
                  record_route: str | None = None) -> Response:
    headers = [("Contact", contact)]
    response = invite.response(status, to_tag=tag, headers=headers)
    if record_route is not None:
        response.headers.add("Record-Route", record_route)
    return resp(response)


def test_forked_invite_two_early_dialogs_one_confirmed() -> None:
    invite = req(INVITE)
    dialogs = DialogSet(invite)
    assert dialogs.receive_response(resp(invite.response(100))) is None
    d1 = dialogs.receive_response(fork_response(invite, 180, "bob1", "<sip:bob@192.0.2.4>"))
    d2 = dialogs.receive_response(fork_response(invite, 180, "bob2", "<sip:bob@192.0.2.5>"))
    assert d1 is not None and d2 is not None and d1 is not d2
    assert {d.id.remote_tag for d in dialogs.early} == {"bob1", "bob2"}
    # a second 183 on the first fork updates that early dialog, not a new one
    assert dialogs.receive_response(fork_response(invite, 183, "bob1", "<sip:bob@192.0.2.44>")) is d1
    assert str(d1.remote_target) == "sip:bob@192.0.2.44"
    # the 2xx from the second fork confirms its dialog, with the 2xx's route set and target
    ok = fork_response(invite, 200, "bob2", "<sip:bob@192.0.2.55>",
                       record_route="<sip:p2.example.com;lr>, <sip:p1.example.com;lr>")
    assert dialogs.receive_response(ok) is d2
    assert d2.confirmed and d1.early
    assert [str(r.uri) for r in d2.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert str(d2.remote_target) == "sip:bob@192.0.2.55"
    assert dialogs.final is ok
    # the UA chooses to end the other early dialog
    assert dialogs.terminate_early() == [d1]
    assert d1.terminated and dialogs.confirmed == [d2]
    # another fork answers 200 as well: a second confirmed dialog the UA must ACK (and may BYE)
    d3 = dialogs.receive_response(fork_response(invite, 200, "bob3", "<sip:bob@192.0.2.6>"))
    assert d3 is not None and d3.confirmed and d3.id.remote_tag == "bob3"
    assert len(dialogs.confirmed) == 2


def test_non2xx_final_ends_every_early_dialog() -> None:
    invite = req(INVITE)
    dialogs = DialogSet(invite)
    d1 = dialogs.receive_response(fork_response(invite, 180, "bob1", "<sip:bob@192.0.2.4>"))
    d2 = dialogs.receive_response(fork_response(invite, 183, "bob2", "<sip:bob@192.0.2.5>"))
    assert dialogs.receive_response(resp(invite.response(486, to_tag="bob1"))) is d1
    assert d1 is not None and d2 is not None and d1.terminated and d2.terminated


def test_early_dialog_on_uas_side_ends_with_non2xx() -> None:
    invite = req(INVITE)
    ringing = invite.response(180, to_tag="t1", headers=[("Contact", BOB_CONTACT)])
    dialog = Dialog.from_uas(invite, ringing)
    assert dialog.early and dialog.local_seq is None and dialog.remote_seq == 1
    with pytest.raises(DialogError):
        dialog.create_request("BYE")  # §15: not from the callee on an early dialog
    dialog.response_sent(invite.response(487, to_tag="t1"))
    assert dialog.terminated


def test_no_dialog_without_to_tag_or_from_failure() -> None:
    invite = req(INVITE)
    with pytest.raises(DialogError):
        Dialog.from_uac(invite, resp(invite.response(180)))
    with pytest.raises(DialogError):
        Dialog.from_uac(invite, resp(invite.response(404, to_tag="x")))
    with pytest.raises(DialogError):
        Dialog.from_uas(invite, invite.response(100, to_tag="x"))


# --------------------------------------------------------------------------- route sets


def test_route_set_reversed_for_uac_in_order_for_uas() -> None:
    """RFC 3665 §3.2: Record-Route ss2, ss1 as Bob receives the INVITE (§12.1.1, §12.1.2)."""
    invite = req(INVITE_VIA_PROXIES)
    contact = "<sip:bob@client.biloxi.example.com;transport=tcp>"
    ok = invite.response(200, to_tag="314159", headers=[("Contact", contact)])
    bob = Dialog.from_uas(invite, ok)
    assert [str(r.uri) for r in bob.route_set] == [SS2, SS1]
    # the 200 carries the Record-Route back (§12.1.1); Alice reverses it
    alice = Dialog.from_uac(invite, resp(ok))
    assert [str(r.uri) for r in alice.route_set] == [SS1, SS2]
    bye = req(bytes(alice.create_request("BYE", via="SIP/2.0/TCP client.atlanta.example.com:5060")))
    assert str(bye.uri) == "sip:bob@client.biloxi.example.com;transport=tcp"
    assert [str(r.uri) for r in bye.route] == [SS1, SS2]
    assert bye.cseq.seq == 3 and bye.top_via.branch is not None and bye.top_via.branch.startswith("z9hG4bK")
    assert bye.max_forwards == 70 and bye.headers.get("contact") is None  # BYE is no target refresh
    bye2 = with_via(bob.create_request("BYE"))
    assert str(bye2.uri) == "sip:alice@client.atlanta.example.com;transport=tcp"
    assert [str(r.uri) for r in bye2.route] == [SS2, SS1]
    assert bye2.to.tag == "9fxced76sl" and bye2.from_.tag == "314159"


def test_strict_routing_example_of_12_2_1_1() -> None:
    """§12.2.1.1: route set <sip:proxy1>, <sip:proxy2>, <sip:proxy3;lr>, <sip:proxy4>,
    remote target sip:user@remoteua: Request-URI sip:proxy1, Route proxy2, proxy3, proxy4
    and the remote target last."""
    invite = req(INVITE)
    ok = invite.response(200, to_tag="x", headers=[("Contact", "<sip:user@remoteua>")])
    # the UAC reverses Record-Route, so list them backwards here
    ok.headers.add("Record-Route", "<sip:proxy4>, <sip:proxy3;lr>, <sip:proxy2>, <sip:proxy1;method=INVITE>")
    dialog = Dialog.from_uac(invite, resp(ok))
    info = req(bytes(dialog.create_request("INFO", via="SIP/2.0/UDP client.atlanta.example.com:5060")))
    assert str(info.uri) == "sip:proxy1"  # the method parameter is not allowed in a Request-URI
    assert [str(r) for r in info.route] == [
        "<sip:proxy2>", "<sip:proxy3;lr>", "<sip:proxy4>", "<sip:user@remoteua>"]


def test_loose_routing_keeps_remote_target() -> None:
    invite = req(INVITE)
    ok = invite.response(200, to_tag="x", headers=[("Contact", "<sip:user@remoteua>")])
    ok.headers.add("Record-Route", "<sip:proxy2;lr>, <sip:proxy1;lr>")
    dialog = Dialog.from_uac(invite, resp(ok))
    uri, routes = dialog.request_uri_and_route()
    assert str(uri) == "sip:user@remoteua"
    assert [str(r) for r in routes] == ["<sip:proxy1;lr>", "<sip:proxy2;lr>"]


# --------------------------------------------------------------------------- CSeq and refresh


def confirmed_pair() -> tuple[Request, Dialog, Dialog]:
    invite = req(INVITE)
    ok = invite.response(200, to_tag="8321234356", headers=[("Contact", BOB_CONTACT)])
    return invite, Dialog.from_uac(invite, resp(ok)), Dialog.from_uas(invite, ok)


def test_cseq_out_of_order_gets_500() -> None:
    _, alice, bob = confirmed_pair()
    info1 = req(bytes(alice.create_request("INFO", via="SIP/2.0/UDP a.example.com")))  # CSeq 2
    info2 = req(bytes(alice.create_request("INFO", via="SIP/2.0/UDP a.example.com")))  # CSeq 3
    assert (info1.cseq.seq, info2.cseq.seq) == (2, 3)
    assert bob.receive_request(info2) is None and bob.remote_seq == 3
    answer = bob.receive_request(info1)  # arrives late: lower CSeq (§12.2.2)
    assert answer is not None and answer.status == 500
    assert bytes(answer).startswith(b"SIP/2.0 500 ")
    assert bob.remote_seq == 3 and bob.confirmed


def test_local_cseq_skips_ack_and_cancel() -> None:
    invite, alice, _ = confirmed_pair()
    ack = alice.create_ack(invite)
    assert ack.cseq.seq == 1 and ack.cseq.method == "ACK" and alice.local_seq == 1
    with pytest.raises(DialogError):
        alice.create_request("ACK")
    with pytest.raises(DialogError):
        alice.create_request("CANCEL")
    assert alice.create_request("UPDATE").cseq.seq == 2


def test_ack_for_2xx_copies_credentials() -> None:
    invite = req(INVITE.replace(
        b"CSeq: 1 INVITE\r\n",
        b'CSeq: 1 INVITE\r\nProxy-Authorization: Digest username="alice", realm="atlanta.example.com", '
        b'nonce="wf84f1ceczx41ae6cbe5aea9c8e88d359", uri="sip:bob@biloxi.example.com", '
        b'response="42ce3cef44b22f50c6a6071bc8"\r\n'))
    ok = invite.response(200, to_tag="x", headers=[("Contact", BOB_CONTACT)])
    dialog = Dialog.from_uac(invite, resp(ok))
    ack = req(bytes(dialog.create_ack(invite, via="SIP/2.0/UDP client.atlanta.example.com:5060")))
    assert ack.headers.get("proxy-authorization") == invite.headers.get("proxy-authorization")
    assert ack.headers.get("contact") is None
    assert dialog.ack_for(resp(ok)) is dialog.last_ack


def test_target_refresh_by_incoming_update_but_not_info() -> None:
    _, alice, bob = confirmed_pair()
    info = alice.create_request("INFO", headers=[("Contact", "<sip:alice@198.51.100.1>")])
    assert bob.receive_request(with_via(info)) is None  # INFO is no target refresh request
    assert str(bob.remote_target) == "sip:alice@client.atlanta.example.com;transport=udp"
    assert alice.local_target is not None
    alice.local_target = alice.local_target.replace(uri=SipURI(host="198.51.100.2", user="alice"))
    update = alice.create_request("UPDATE")
    assert update.headers.get("contact") == "<sip:alice@198.51.100.2>"
    assert bob.receive_request(with_via(update)) is None
    assert str(bob.remote_target) == "sip:alice@198.51.100.2"


def with_via(request: Request) -> Request:
    request.headers.add("Via", "SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bKx", first=True)
    return req(bytes(request))


@pytest.mark.parametrize(("status", "ends"), [
    (481, True), (408, True), (404, True), (410, True), (416, True), (482, True), (483, True),
    (484, True), (485, True), (502, True), (604, True),
    (486, False), (488, False), (491, False), (500, False), (403, False), (200, False),
])
def test_responses_that_end_the_dialog(status: int, ends: bool) -> None:
    _, alice, _ = confirmed_pair()
    reinvite = with_via(alice.create_request("INVITE"))
    alice.receive_response(resp(reinvite.response(status)))
    assert alice.terminated is ends


def test_late_2xx_does_not_refresh_target() -> None:
    invite, alice, _ = confirmed_pair()
    reinvite = with_via(alice.create_request("INVITE"))
    alice.receive_response(resp(reinvite.response(200, headers=[("Contact", "<sip:bob@192.0.2.9>")])))
    assert str(alice.remote_target) == "sip:bob@192.0.2.9"
    late = invite.response(200, to_tag="8321234356", headers=[("Contact", BOB_CONTACT)])
    alice.receive_response(resp(late))  # a retransmission of the first 2xx
    assert str(alice.remote_target) == "sip:bob@192.0.2.9"


def test_bye_response_ends_dialog_and_terminated_dialog_sends_nothing() -> None:
    _, alice, bob = confirmed_pair()
    bye = with_via(alice.create_request("BYE"))
    assert bob.receive_request(bye) is None and bob.terminated
    alice.receive_response(resp(bye.response(200)))
    assert alice.state is DialogState.TERMINATED
    with pytest.raises(DialogError):
        alice.create_request("INFO")


def test_request_of_another_dialog_is_refused() -> None:
    _, alice, bob = confirmed_pair()
    info = with_via(alice.create_request("INFO"))
    info.headers.set("Call-ID", "other@atlanta.example.com")
    with pytest.raises(DialogError):
        bob.receive_request(req(bytes(info)))


def test_secure_flag_from_sips_request_uri() -> None:
    invite = req(INVITE.replace(b"INVITE sip:bob@", b"INVITE sips:bob@"))
    ok = invite.response(200, to_tag="x", headers=[("Contact", "<sips:bob@client.biloxi.example.com>")])
    assert Dialog.from_uac(invite, resp(ok)).secure
    assert Dialog.from_uas(invite, ok).secure
    _, plain, _ = confirmed_pair()
    assert not plain.secure


def test_dialog_table_lookup() -> None:
    invite, alice, bob = confirmed_pair()
    table = DialogTable()
    table.add(bob)
    info = with_via(alice.create_request("INFO"))
    assert table.for_request(info) is bob
    assert table.for_request(invite) is None  # no To tag: not within a dialog
    assert bob.id in table and list(table) == [bob]
    table.remove(bob)
    assert len(table) == 0


def test_transaction_events_feed_dialogs() -> None:
    """The layer's events carry what the dialog needs: a 2xx retransmission in the
    Accepted state goes up again and gets the same ACK (RFC 6026 §8.4, §13.2.2.4)."""
    layer = TransactionLayer()
    invite = req(INVITE)
    dialogs = DialogSet(invite)
    key = layer.send_request(invite, 0.0)
    layer.events()
    ok = resp(invite.response(200, to_tag="b", headers=[("Contact", BOB_CONTACT)]))
    acks = []
    for t in (0.1, 0.6):
        layer.receive(parse(bytes(ok)), t)
        for event in layer.events():
            assert isinstance(event, ResponseReceived) and event.key == key
            dialog = dialogs.receive_response(event.response)
            assert dialog is not None
            ack = dialog.ack_for(event.response) or dialog.create_ack(invite, via="SIP/2.0/UDP a.example.com")
            acks.append(ack)
    assert acks[0] is acks[1]
    layer.handle_timer(0.1 + 32.0)
    assert layer.events() == [TransactionTerminated(key)]
