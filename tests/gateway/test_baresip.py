"""A real SIP phone, baresip 1.0 (Debian's ``baresip-core``), registers with the lab IMS
core and calls, and is called by, the WIC web app (JsSIP in headless Chromium) through
the gateway, with audio both ways.

The body is tests/gateway/baresip_worker.py, run in a loopback-only network namespace
with the system as ``webims demo`` runs it (the lab IMS core, the authorization
function, the gateway with its session B2BUA and external embedded media IWF, the demo
users). baresip runs headless with its own config directory (``ausine`` tone as its
microphone, ``sndfile`` records what it sent and got, ``g711``, driven over
``ctrl_tcp``) and the demo's SIP phone subscription (sip:phone@ims.test, digest,
outbound proxy the lab I-CSCF). Its SIP trace (``-s``) is parsed here with webims's
own parser: the assertions are on what baresip really sent and got.

- baresip registers: digest MD5 with qop=auth after a 401 (RFC 3261 §22.4, RFC 8760),
  the S-CSCF holds its Contact; it de-registers when it quits;
- alice calls sip:phone@ims.test in the WIC: the gateway's WebRTC call reaches baresip
  as plain RTP/AVP (its IWF interworks); baresip answers by itself; audio both ways
  (the WIC's WebRTC statistics: >= 100 packets each way, totalAudioEnergy > 0.01;
  baresip's recording: seconds of sound, not silence); alice hangs up, baresip gets
  the BYE and its call is closed; the gateway holds no call, dialog or IWF session;
- baresip dials sip:alice@ims.test: the WIC rings, alice answers; audio both ways;
  baresip hangs up (BYE, 200); nothing is left in the gateway;
- DTMF: the WIC's RFC 4733 events (RTCDTMFSender) and SIP INFO digits
  (application/dtmf-relay) reach baresip, which reports each digit; baresip's RFC 4733
  events (``sndcode``) reach the gateway's IWF on the IMS leg, which forwards them to
  the browser (a browser has no API that shows received telephone-events).

baresip 1.0 does not use the Service-Route it gets (RFC 3608): its INVITEs go to its
outbound proxy, the I-CSCF. baresip registered there without a P-CSCF (no Path), so
the lab core does the P-CSCF's originating duties for it (webims.labcore.attached,
TS 24.229 §5.2.6.3): the I-CSCF knows its flow (127.0.0.1:5090 over UDP) and sends its
INVITE to the S-CSCF's originating part, which asserts its identity
(P-Asserted-Identity: <sip:phone@ims.test>, RFC 3325 §5); the WIC gets that identity
whichever way baresip sends (outbound proxy the I-CSCF, or the Service-Route URI).

baresip's log and WAV recordings are kept in test-artifacts/gateway/baresip/<scenario>/.
The tests fail, never skip, when baresip, Chromium or network namespaces are missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from webims.sdp import MediaDescription
from webims.sdp import parse as parse_sdp
from webims.sip import Request, Response, parse
from webims.testing.browser import netns_browser_unavailable
from webims.testing.netns import netns_unavailable, run_python_in_netns

WORKER = Path(__file__).with_name("baresip_worker.py")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "gateway" / "baresip"
BARESIP = Path("/usr/bin/baresip")
MODULES = Path("/usr/lib/baresip/modules")
NEEDED_MODULES = ("g711", "ausine", "aubridge", "sndfile", "account", "menu", "ctrl_tcp")
ICSCF = "127.0.0.1:5070"  # the lab I-CSCF (webims.demo)
SCSCF = "127.0.0.1:6060"  # the lab S-CSCF
BARESIP_AT = "127.0.0.1:5090"  # baresip's SIP (baresip_worker.SIP_PORT)
NOTHING = {"calls": 0, "dialogs": 0, "invites": 0, "iwf_sessions": 0}

pytestmark = pytest.mark.browser


def baresip_missing() -> str | None:
    if not BARESIP.exists():
        return f"{BARESIP} is missing: apt-get install baresip-core (scripts/packages.txt)"
    missing = [m for m in NEEDED_MODULES if not (MODULES / f"{m}.so").exists()]
    if missing:
        return f"baresip modules missing in {MODULES}: {missing} (baresip-core)"
    return None


def run_scenario(name: str, *, browser: bool = True, outbound: str = "icscf") -> dict[str, Any]:
    why = baresip_missing() or (netns_browser_unavailable() if browser else netns_unavailable())
    if why is not None:
        pytest.fail(why, pytrace=False)
    artifacts = ARTIFACTS / (name if outbound == "icscf" else f"{name}-{outbound}")
    arguments = ["--scenario", name, "--outbound", outbound, "--artifacts", str(artifacts)]
    return run_python_in_netns(WORKER, arguments, timeout=240)


# ---------------------------------------------------------------------------- the trace
class Trace:
    """baresip's SIP trace (``baresip -s``) parsed by webims: what it sent and what it got."""

    def __init__(self, entries: list[dict[str, str]]) -> None:
        self.entries = entries
        self.messages = [(e, parse(e["message"].encode())) for e in entries]

    def requests(self, method: str, direction: str) -> list[tuple[dict[str, str], Request]]:
        return [
            (e, m) for e, m in self.messages
            if isinstance(m, Request) and m.method == method and e["direction"] == direction
        ]  # fmt: skip

    def responses(self, method: str, direction: str) -> list[tuple[dict[str, str], Response]]:
        return [
            (e, m) for e, m in self.messages
            if isinstance(m, Response) and e["direction"] == direction
            and (m.headers.get("CSeq") or "").endswith(f" {method}")
        ]  # fmt: skip

    def statuses(self, method: str, direction: str) -> list[int]:
        return [m.status for _, m in self.responses(method, direction)]


def plain_audio(body: bytes) -> MediaDescription:
    """The one audio stream of a plain RTP description: RTP/AVP, no ICE, no DTLS, no SDES."""
    sdp = parse_sdp(body)
    (m,) = sdp.media
    assert m.media == "audio" and m.proto == "RTP/AVP", (m.media, m.proto)
    assert not sdp.fingerprints_for(m) and not m.candidates and m.ice_credentials is None
    assert not m.crypto
    assert m.port > 0
    return m


def names(m: MediaDescription) -> list[str]:
    return [c.name.upper() for c in m.codecs]


def wic_audio(r: dict[str, Any]) -> None:
    """The WIC's peer connection sent and got >= 100 packets, and got sound (baresip's tone)."""
    figures = {k: v for k, v in r.items() if k.startswith("wic_")}
    assert r["wic_received"] >= 100 and r["wic_sent"] >= 100, figures
    assert r["wic_energy"] > 0.01, figures


def baresip_audio(r: dict[str, Any]) -> None:
    """baresip's recording of what it got is seconds long and sound (Chromium's fake
    microphone beeps, each second; a PCMU silence decodes to RMS ~0); what it sent is its
    440 Hz tone."""
    (dec,) = r["baresip_dec"]
    assert dec["rate"] == 8000 and dec["channels"] == 1, dec
    assert dec["seconds"] >= 4.0, dec
    assert dec["rms"] > 300, dec
    assert dec["sound_seconds"] >= 4 and dec["sound_frames"] >= 20, dec
    (enc,) = r["baresip_enc"]
    assert enc["rms"] > 3000 and enc["sound_seconds"] >= 4, enc
    # baresip's own RTP counters for the call (its report when the call ends)
    (rtp,) = r["baresip_rtp"]
    assert rtp["sent"] >= 100 and rtp["received"] >= 100, rtp


def events(r: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in r["events"] if e.get("type") == kind]


def registered(r: dict[str, Any], trace: Trace, proxy: str = ICSCF, route: str = f"<sip:{ICSCF};lr>") -> str:
    """baresip registered with digest at the lab core (through its outbound proxy ``proxy``,
    named in ``route``); returns its Contact URI."""
    registers = trace.requests("REGISTER", "sent")  # (retransmissions included, RFC 3261 §17.1.2)
    first = registers[0]
    second = next(x for x in registers if x[1].headers.get("Authorization") is not None)
    assert first[0]["dst"] == proxy and first[1].headers.get("Authorization") is None
    assert first[1].headers.get("Route") == route  # the outbound proxy, loose routing
    assert str(first[1].uri) == "sip:ims.test"
    challenge = next(m for _, m in trace.responses("REGISTER", "got"))
    assert challenge.status == 401 and challenge.headers.get("CSeq") == first[1].headers.get("CSeq")
    www = challenge.headers.get("WWW-Authenticate") or ""
    assert www.startswith("Digest ") and 'realm="ims.test"' in www and "algorithm=MD5" in www
    authorization = second[1].headers.get("Authorization") or ""
    assert authorization.startswith("Digest ") and 'username="phone@ims.test"' in authorization
    assert "qop=auth" in authorization and "nc=00000001" in authorization
    assert second[1].headers.get("Call-ID") == first[1].headers.get("Call-ID")
    ok = next(m for _, m in trace.responses("REGISTER", "got") if m.status == 200)
    assert ok.headers.get("CSeq") == second[1].headers.get("CSeq")  # the authorized REGISTER's
    assert ok.headers.get("Service-Route") == f"<sip:orig@{SCSCF};lr>"
    assert "<sip:phone@ims.test>" in (ok.headers.get("P-Associated-URI") or "")
    contact = (second[1].headers.get("Contact") or "").split(";expires")[0]
    assert contact.endswith(f"@{BARESIP_AT}>"), contact
    # The S-CSCF holds baresip's Contact; baresip says it is registered.
    assert r["binding"] == [contact], (r["binding"], contact)
    assert "sip:phone@ims.test" in r["reginfo"] and "OK" in r["reginfo"], r["reginfo"]
    return contact.strip("<>")


def quit_and_deregistered(r: dict[str, Any], trace: Trace) -> None:
    """baresip quit cleanly, de-registering (Contact ...;expires=0, 200) first."""
    assert r["returncode"] == 0, r["returncode"]
    last = trace.requests("REGISTER", "sent")[-1][1]
    assert (last.headers.get("Contact") or "").endswith(";expires=0"), last.headers.get("Contact")
    assert trace.statuses("REGISTER", "got")[-1] == 200
    assert r["binding_after_quit"] == [], r["binding_after_quit"]


def nothing_left(r: dict[str, Any]) -> None:
    assert r["left"] == NOTHING, r["left"]
    assert "Active calls (0)" in r["calls_after"], r["calls_after"]


# ---------------------------------------------------------------------------- tests
def test_baresip_registers_with_digest_at_the_lab_core() -> None:
    r = run_scenario("register", browser=False)
    trace = Trace(r["trace"])
    registered(r, trace)
    assert list(dict.fromkeys(trace.statuses("REGISTER", "got")))[:2] == [401, 200]
    quit_and_deregistered(r, trace)


def test_the_wic_calls_baresip_which_answers_with_audio_both_ways() -> None:
    r = run_scenario("wic-calls")
    trace = Trace(r["trace"])
    contact = registered(r, trace)
    assert r["wic_identity"] == "sip:alice@ims.test"
    # The gateway's call reaches baresip at its registered Contact, from the S-CSCF,
    # as plain RTP/AVP with PCMU (the gateway's IWF stands in for the browser's WebRTC).
    invites = trace.requests("INVITE", "got")  # (a retransmission, RFC 3261 §17.1.1.2, is the same)
    at, invite = invites[0]
    assert {m.via[0].branch for _, m in invites} == {invite.via[0].branch}, invites
    assert at["src"] == SCSCF and str(invite.uri) == contact
    assert (invite.headers.get("P-Asserted-Identity") or "") == "<sip:alice@ims.test>"
    assert (invite.headers.get("From") or "").startswith("<sip:alice@ims.test>")
    assert "PCMU" in names(plain_audio(invite.body))
    # baresip answers by itself (answermode auto): 180, then 200 (retransmitted until the
    # ACK, RFC 3261 §13.3.1.4) with its RTP/AVP PCMU answer.
    statuses = trace.statuses("INVITE", "sent")
    assert statuses[0] == 180 and set(statuses[1:]) == {200}, statuses
    ok = trace.responses("INVITE", "sent")[-1][1]
    assert names(plain_audio(ok.body))[0] == "PCMU"
    assert trace.requests("ACK", "got"), "no ACK for baresip's 200"
    assert "ESTABLISHED" in r["calls_in_call"] and "sip:alice@ims.test" in r["calls_in_call"]
    (established,) = events(r, "CALL_ESTABLISHED")
    assert established["direction"] == "incoming" and established["peeruri"] == "sip:alice@ims.test"
    wic_audio(r)
    baresip_audio(r)
    assert r["left_in_call"]["calls"] == 1 and r["left_in_call"]["iwf_sessions"] == 1, r["left_in_call"]
    # alice hangs up: the BYE reaches baresip in the dialog, it answers 200, its call closes.
    byes = [m for _, m in trace.requests("BYE", "got")]
    assert byes and {b.headers.get("Call-ID") for b in byes} == {invite.headers.get("Call-ID")}
    assert set(trace.statuses("BYE", "sent")) == {200}
    (closed,) = events(r, "CALL_CLOSED")
    assert closed["id"] == established["id"]
    assert r["wic_status"] == "Call ended", r["wic_status"]
    assert r["page_errors"] == []
    nothing_left(r)
    quit_and_deregistered(r, trace)


#: baresip's outbound proxy: the lab I-CSCF (what ``webims demo`` tells SIP phones), or the
#: S-CSCF's Service-Route URI, which baresip 1.0 does not take from the 200 to its REGISTER
#: by itself (RFC 3608 §6): its (host:port, Route).
OUTBOUND = {
    "icscf": (ICSCF, f"<sip:{ICSCF};lr>"),
    "service-route": (SCSCF, f"<sip:orig@{SCSCF};lr>"),
}


@pytest.mark.parametrize("outbound", sorted(OUTBOUND))
def test_baresip_calls_the_wic_which_answers_with_audio_both_ways(outbound: str) -> None:
    r = run_scenario("calls-wic", outbound=outbound)
    proxy, route = OUTBOUND[outbound]
    trace = Trace(r["trace"])
    registered(r, trace, proxy, route)
    assert r["dial"]["ok"] is True, r["dial"]
    # baresip's INVITE: to its outbound proxy, plain RTP/AVP PCMU + telephone-event.
    invites = trace.requests("INVITE", "sent")  # (a retransmission is the same)
    at, invite = invites[0]
    assert {m.via[0].branch for _, m in invites} == {invite.via[0].branch}, invites
    assert at["dst"] == proxy and invite.headers.get("Route") == route
    assert str(invite.uri) == "sip:alice@ims.test"
    assert (
        invite.headers.get("P-Preferred-Identity") is None
        and invite.headers.get("P-Asserted-Identity") is None
    )
    offered = plain_audio(invite.body)
    assert names(offered) == ["PCMU", "TELEPHONE-EVENT"], names(offered)
    # The WIC rings (180) and alice answers (200): RTP/AVP from the gateway's IWF, PCMU.
    statuses = trace.statuses("INVITE", "got")
    assert 180 in statuses and statuses[-1] == 200, statuses
    ok = trace.responses("INVITE", "got")[-1][1]
    assert ok.headers.get("P-Asserted-Identity") == "<sip:alice@ims.test>"
    assert f"<sip:{SCSCF};lr>" in ok.headers.get_all("Record-Route")
    answered = plain_audio(ok.body)
    assert names(answered)[0] == "PCMU" and set(names(answered)) <= set(names(offered))
    acks = trace.requests("ACK", "sent")  # one per 200 (retransmissions included)
    assert acks and all(at["dst"] == SCSCF for at, _ in acks), acks
    assert all(ack.headers.get("Route") == f"<sip:{SCSCF};lr>" for _, ack in acks)  # the Record-Route
    assert r["incoming_from"] == "sip:phone@ims.test", r["incoming_from"]
    assert r["at_wic"]["from"].startswith("<sip:phone@ims.test>;tag="), r["at_wic"]
    # The S-CSCF serves baresip as originating (TS 24.229 §5.4.3.2), on the Service-Route or
    # sent there by the I-CSCF from baresip's registered flow, and asserts its identity as its
    # P-CSCF would (TS 24.229 §5.2.6.3.1); the gateway passes it on to the WIC (RFC 3325 §5).
    assert r["at_wic"]["pai"] == "<sip:phone@ims.test>", r["at_wic"]
    (established,) = events(r, "CALL_ESTABLISHED")
    assert established["direction"] == "outgoing" and established["peeruri"] == "sip:alice@ims.test"
    wic_audio(r)
    baresip_audio(r)
    assert r["left_in_call"]["calls"] == 1 and r["left_in_call"]["iwf_sessions"] == 1, r["left_in_call"]
    # baresip hangs up: its BYE (on the Record-Route) gets 200; the WIC says so.
    assert r["hangup"]["ok"] is True, r["hangup"]
    byes = trace.requests("BYE", "sent")
    assert byes and all(at["dst"] == SCSCF for at, _ in byes), byes
    assert {b.headers.get("Call-ID") for _, b in byes} == {invite.headers.get("Call-ID")}
    assert set(trace.statuses("BYE", "got")) == {200}
    (closed,) = events(r, "CALL_CLOSED")
    assert closed["id"] == established["id"]
    assert "sip:phone@ims.test hung up" in r["wic_status"], r["wic_status"]
    assert r["page_errors"] == []
    nothing_left(r)
    quit_and_deregistered(r, trace)


def test_dtmf_between_the_wic_and_baresip() -> None:
    r = run_scenario("dtmf")
    trace = Trace(r["trace"])
    registered(r, trace)
    wic_audio(r)
    # WIC -> baresip, RFC 4733 (RTCDTMFSender; the gateway's IWF maps the telephone-event
    # payload type between the legs): baresip decodes each digit.
    assert r["rfc4733_at_baresip"] == ["1", "9"], r["rfc4733_at_baresip"]
    assert not [m for _, m in trace.requests("INFO", "got") if b"Signal=1" in m.body]  # not by INFO
    # WIC -> baresip, SIP INFO (application/dtmf-relay) relayed in the dialog; baresip answers 200.
    assert r["info_at_baresip"] == ["4", "#"], r["info_at_baresip"]
    infos = [m for _, m in trace.requests("INFO", "got")]
    assert {m.headers.get("Content-Type") for m in infos} == {"application/dtmf-relay"}
    signals = [m.body.split(b"\r\n")[0] for m in infos]
    assert list(dict.fromkeys(signals)) == [b"Signal=4", b"Signal=#"], signals
    assert set(trace.statuses("INFO", "sent")) == {200}
    assert r["wic_dtmf_sent"] == "194#"
    # baresip -> WIC, RFC 4733 (``sndcode``): the gateway's IWF sees each event on the IMS leg
    # and forwards it to the browser, which has no API to show received telephone-events
    # (RTCDTMFSender only sends; JsSIP's newDTMF fires for INFO only).
    assert all(c["ok"] for c in r["sndcode"]), r["sndcode"]
    from_ims = [m.rsplit(": ", 1)[-1] for m in r["gateway_dtmf"] if m.endswith("from the ims side")]
    assert from_ims == ["DTMF 3 from the ims side", "DTMF 7 from the ims side"], r["gateway_dtmf"]
    assert r["page_errors"] == []
    nothing_left(r)
    quit_and_deregistered(r, trace)
