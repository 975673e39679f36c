"""NI-O and NI-T (TS 23.228 §5.6.4 / §5.7.4) against SIPp as the IMS-side UA, through the lab core.

SIPp REQUIRES 100rel (RFC 3262) and qos preconditions (RFC 3312). The scripted WIC
does what JsSIP does: none of it. The gateway does PRACK, UPDATE and the precondition
status on the WIC's behalf; the WIC sees a plain call (no Require, no RSeq, no
curr/des/conf lines, no PRACK or UPDATE). Media by the external embedded IWF, so
SIPp sees RTP/AVP and the WIC WebRTC SDP. SIPp registers its contact through a
Python REGISTER (digest) to the lab core, then runs the scenario of tests/gateway/sipp/.
"""

from __future__ import annotations

from pathlib import Path

from conftest import PASSWORDS, LabFactory
from ims_phone import ImsPhone
from session_lab import eventually, session_lab, wics

from webims.media.embedded import EmbeddedConfig, EmbeddedMediaIWF
from webims.media.ports import PortAllocator
from webims.sdp import OPUS, PCMU, TELEPHONE_EVENT_8000, TELEPHONE_EVENT_48000, parse
from webims.testing.media_peers import WebRtcPeer
from webims.testing.ports import free_port
from webims.testing.sipp import Sipp, require_sipp

SCENARIOS = Path(__file__).with_name("sipp")

CODECS = [OPUS, PCMU, TELEPHONE_EVENT_48000, TELEPHONE_EVENT_8000]


def plain(body: bytes) -> None:
    """What the WIC must never see: precondition lines."""
    for attribute in (b"a=curr:", b"a=des:", b"a=conf:"):
        assert attribute not in body, body


async def test_ni_o_wic_calls_a_peer_requiring_100rel_and_preconditions(
    make_lab: LabFactory, tmp_path: Path
) -> None:
    require_sipp()
    port = free_port()
    iwf = EmbeddedMediaIWF(EmbeddedConfig(port_min=46000, port_max=46099))
    await iwf.start()
    try:
        async with session_lab(make_lab, media="external", iwf=iwf) as (lab, mgr):
            registrar = ImsPhone(lab.core, "bob", PASSWORDS["bob"], contact_port=port)
            await registrar.start()
            assert (await registrar.register()).status == 200
            sipp = Sipp(
                tmp_path, "ni_o_uas", SCENARIOS / "ni_o_uas.xml", service="bob", local_port=port, timeout=30,
                wait_bound=True,
            )  # fmt: skip
            sipp.start()
            (alice,) = await wics(lab, "alice")
            web = WebRtcPeer(PortAllocator(46200, 46249))
            try:
                sent = await alice.invite("sip:bob@ims.test", (await web.offer(CODECS)).to_bytes())
                ok = await alice.final(sent, timeout=20)
                assert ok.status == 200, ok
                provisional = [r for r in sent.provisional if r.status > 100]
                assert [r.status for r in provisional][-1] == 180
                for r in [*provisional, ok]:  # nothing reliable reaches the WIC
                    assert "100rel" not in r.option_tags("require") and "RSeq" not in r.headers
                    plain(r.body)
                assert b"UDP/TLS/RTP/SAVPF" in ok.body
                await web.accept(parse(ok.body))
                assert await web.connected()  # ICE + DTLS with the IWF: a real WebRTC leg
                dialog = alice.dialog_from(sent, ok)
                await alice.ack(dialog)
                bye = await alice.in_dialog(dialog, "BYE")
                assert (await alice.final(bye)).status == 200
                result = await sipp.finish_async()
                assert result.ok, result.report()
                assert not [r for r in alice.seen if r.method in ("PRACK", "UPDATE")]
                await eventually(lambda: not mgr.calls and not iwf.sessions())
            finally:
                sipp.stop()
                await web.close()
                await alice.close()
                await registrar.close()
    finally:
        await iwf.close()


async def test_ni_t_peer_requiring_100rel_and_preconditions_calls_a_wic(
    make_lab: LabFactory, tmp_path: Path
) -> None:
    require_sipp()
    port = free_port()
    iwf = EmbeddedMediaIWF(EmbeddedConfig(port_min=46100, port_max=46199))
    await iwf.start()
    try:
        async with session_lab(make_lab, media="external", iwf=iwf) as (lab, mgr):
            registrar = ImsPhone(lab.core, "bob", PASSWORDS["bob"], contact_port=port)
            await registrar.start()
            assert (await registrar.register()).status == 200
            (alice,) = await wics(lab, "alice")
            route = registrar.service_route[0]
            host, scscf_port = lab.core.scscf_address
            sipp = Sipp(
                tmp_path, "ni_t_uac", SCENARIOS / "ni_t_uac.xml", (host, scscf_port), service="bob",
                keys={"route": route, "callee": "alice@ims.test"}, local_port=port, timeout=30,
            )  # fmt: skip
            sipp.start()
            web = WebRtcPeer(PortAllocator(46250, 46299))
            try:
                invite = await alice.next_request("INVITE", timeout=20)
                # the WIC gets a plain INVITE: no 100rel, no preconditions, a WebRTC offer
                assert not invite.option_tags("require") & {"100rel", "precondition"}
                plain(invite.body)
                assert b"UDP/TLS/RTP/SAVPF" in invite.body
                assert invite.headers.get("P-Asserted-Identity") == "<sip:bob@ims.test>"
                await alice.answer(invite, 180)
                answer = await web.answer(parse(invite.body), CODECS)
                await alice.answer(invite, 200, body=answer.to_bytes())
                assert await web.connected()
                bye = await alice.next_request("BYE", timeout=20)
                assert bye.call_id == invite.call_id
                result = await sipp.finish_async()
                assert result.ok, result.report()
                assert not [r for r in alice.seen if r.method in ("PRACK", "UPDATE")]
                assert any(r.method == "ACK" for r in alice.seen)
                await eventually(lambda: not mgr.calls and not iwf.sessions())
            finally:
                sipp.stop()
                await web.close()
                await alice.close()
                await registrar.close()
    finally:
        await iwf.close()
