"""Media interworking inside the IMS (seed 004 §6.X.2.3.1-2), and both placements in one call.

The lab core here runs its MRF (the S-CSCF inserts the media IWF when the two ends
cannot share media). With ``[sessions] media = "ims"`` the gateway passes the
WebRTC SDP on and the S-CSCF interworks; with ``"external"`` on a core that also
interworks, a call between two WICs is interworked once by the gateway (WebRTC ->
RTP) and once by the MRF (RTP -> WebRTC): the terminating gateway sees WebRTC SDP
from the IMS and takes no IWF session of its own. Real media (ICE, DTLS-SRTP, RTP)
in every case.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from conftest import PASSWORDS, REALM, Lab, core_config, gateway_on, subscriber_specs
from ims_phone import ImsPhone
from session_lab import eventually, wics

from webims.auth.service import AuthService
from webims.gateway.session_settings import SessionConfig
from webims.gateway.sessions import SessionManager
from webims.labcore import LabCore, start_labcore
from webims.labcore.hss import SubscriberStore
from webims.media.embedded import EmbeddedConfig, EmbeddedMediaIWF
from webims.media.ports import PortAllocator
from webims.sdp import OPUS, PCMU, TELEPHONE_EVENT_8000, TELEPHONE_EVENT_48000, parse
from webims.store import Store
from webims.testing.media_peers import RtpPeer, WebRtcPeer

CODECS = [OPUS, PCMU, TELEPHONE_EVENT_48000, TELEPHONE_EVENT_8000]


@contextlib.asynccontextmanager
async def interworking_lab(
    tmp: Path, auth: AuthService, certs: tuple[Path, Path], media: str
) -> AsyncIterator[tuple[Lab, SessionManager, EmbeddedMediaIWF]]:
    """Lab core whose S-CSCF inserts its MRF, and the gateway with ``media``."""
    store = Store(tmp / "hss.sqlite3")
    subs = SubscriberStore(store, default_realm=REALM)
    for spec in subscriber_specs():
        subs.add(spec)
    mrf = EmbeddedMediaIWF(EmbeddedConfig(port_min=47000, port_max=47099))
    await mrf.start()
    core: LabCore = await start_labcore(
        core_config(tmp, media_interworking="auto"), subscribers=subs, iwf=mrf
    )
    gateway_iwf = EmbeddedMediaIWF(EmbeddedConfig(port_min=47100, port_max=47199))
    await gateway_iwf.start()
    try:
        async with gateway_on(core.icscf_uri, auth, certs) as server:
            lab = Lab(core, auth, server, tmp)
            manager = SessionManager(lab.gateway, SessionConfig(media=media), iwf=gateway_iwf)  # type: ignore[arg-type]
            await manager.start()
            try:
                yield lab, manager, gateway_iwf
            finally:
                await manager.close()
    finally:
        await core.stop()
        await gateway_iwf.close()
        await mrf.close()
        store.close()


async def test_inside_the_ims_wic_calls_an_rtp_phone(
    tmp_path: Path, auth: AuthService, certs: tuple[Path, Path]
) -> None:
    async with interworking_lab(tmp_path, auth, certs, "ims") as (lab, _mgr, gateway_iwf):
        (alice,) = await wics(lab, "alice")
        bob = ImsPhone(lab.core, "bob", PASSWORDS["bob"])
        await bob.start()
        assert (await bob.register()).status == 200
        peers = PortAllocator(47200, 47299)
        web, rtp = WebRtcPeer(peers), RtpPeer(peers)
        await rtp.open()
        try:
            sent = await alice.invite("sip:bob@ims.test", (await web.offer(CODECS)).to_bytes())
            got = await bob.next_request("INVITE")
            # steps 7-9: the S-CSCF inserted the MRF: the phone gets plain RTP
            assert [m.proto for m in parse(got.request.body).media] == ["RTP/AVP"]
            assert lab.core.iwf is not None and len(lab.core.iwf.sessions()) == 1
            answer = rtp.answer(parse(got.request.body), [PCMU, TELEPHONE_EVENT_8000])
            bob.respond(got, 200, body=answer.to_bytes())
            ok = await alice.final(sent)
            assert ok.status == 200 and b"UDP/TLS/RTP/SAVPF" in ok.body
            await alice.ack(alice.dialog_from(sent, ok))
            await web.accept(parse(ok.body))
            assert await web.connected()
            await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0))
            await eventually(lambda: rtp.recorder.count >= 45 and web.recorder.count >= 45)
            assert not gateway_iwf.sessions()  # the gateway drove no IWF of its own
        finally:
            await web.close()
            rtp.close()
            await bob.close()
            await alice.close()


async def test_inside_the_ims_rtp_phone_calls_a_wic(
    tmp_path: Path, auth: AuthService, certs: tuple[Path, Path]
) -> None:
    async with interworking_lab(tmp_path, auth, certs, "ims") as (lab, _mgr, _iwf):
        (alice,) = await wics(lab, "alice")
        bob = ImsPhone(lab.core, "bob", PASSWORDS["bob"])
        await bob.start()
        assert (await bob.register()).status == 200
        peers = PortAllocator(47300, 47399)
        web, rtp = WebRtcPeer(peers), RtpPeer(peers)
        await rtp.open()
        try:
            offer_sdp = rtp.offer([PCMU, TELEPHONE_EVENT_8000]).to_bytes()
            request, final, _ = await bob.invite("sip:alice@ims.test", offer_sdp)
            incoming = await alice.next_request("INVITE")
            offer = parse(incoming.body)  # the MRF's WebRTC offer, passed on by the gateway
            assert offer.media[0].proto == "UDP/TLS/RTP/SAVPF"
            await alice.answer(incoming, 200, body=(await web.answer(offer, CODECS)).to_bytes())
            response = await asyncio.wait_for(final, 10)
            assert response.status == 200
            rtp.take(parse(response.body))
            await bob.ack_and_dialog(request, response)
            assert await web.connected()
            await asyncio.gather(web.send_tone(1.0), rtp.send_tone(1.0))
            await eventually(lambda: rtp.recorder.count >= 45 and web.recorder.count >= 45)
        finally:
            await web.close()
            rtp.close()
            await bob.close()
            await alice.close()


async def test_two_wics_gateway_iwf_and_mrf_in_one_call(
    tmp_path: Path, auth: AuthService, certs: tuple[Path, Path]
) -> None:
    async with interworking_lab(tmp_path, auth, certs, "external") as (lab, _mgr, gateway_iwf):
        alice, bob = await wics(lab, "alice", "bob")
        peers = PortAllocator(47400, 47499)
        a, b = WebRtcPeer(peers), WebRtcPeer(peers)
        try:
            sent = await alice.invite("sip:bob@ims.test", (await a.offer(CODECS)).to_bytes())
            incoming = await bob.next_request("INVITE")
            assert b"UDP/TLS/RTP/SAVPF" in incoming.body
            assert len(gateway_iwf.sessions()) == 1  # alice's; bob's side needs none
            await bob.answer(incoming, 200, body=(await b.answer(parse(incoming.body), CODECS)).to_bytes())
            ok = await alice.final(sent)
            assert ok.status == 200
            await alice.ack(alice.dialog_from(sent, ok))
            await a.accept(parse(ok.body))
            assert await a.connected() and await b.connected()
            await asyncio.gather(a.send_tone(1.0), b.send_tone(1.0))
            await eventually(lambda: a.recorder.count >= 45 and b.recorder.count >= 45)
        finally:
            await a.close()
            await b.close()
            await alice.close()
            await bob.close()
