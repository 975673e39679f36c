"""Browser body of test_cscf_mrf_media.py: Chromium as the WIC's media, the S-CSCF inserting the IWF.

Runs inside a loopback-only network namespace (webims.testing.netns), so
Chromium can use no other interface.  Starts the lab core with
``media_interworking = "auto"`` (the embedded IWF as MRF), registers a WIC
(alice: WebSocket contact with ``+sip.ice`` behind a gateway Path) and a plain
phone (bob, RTP/AVP PCMU, a :class:`~webims.testing.media_peers.RtpPeer`)
through the I-CSCF with SIP Digest, and serves the media page of
webims.testing.browser (OFFER_PAGE): Chromium's offer (Opus only, fake microphone)
goes out as alice's INVITE through the S-CSCF, bob answers PCMU, and the
S-CSCF's rewritten answer goes back to the page.  Seed 004 §6.X.2.3.1.

Prints one JSON object: what the signalling showed, the browser's getStats,
what the phone received, the IWF's plan and what was left after the BYE.

    python mrf_media_browser_worker.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "media"))

from aiohttp import web
from browser_worker import stats_dict  # type: ignore[import-not-found]
from labcore_harness import REALM, Ue
from mrf_media_helpers import lab_core_with_iwf, register_plain, register_wic

from webims.media.negotiate import audio_stream
from webims.media.ports import PortAllocator
from webims.media.transcode import AudioDecoder
from webims.sdp import PCMU, TELEPHONE_EVENT_8000, parse
from webims.sip import Dialog, Response, new_tag
from webims.testing.browser import chromium, first_page, offer_page_server, wait_for_audio
from webims.testing.media_peers import RtpPeer, rms

SDP = "application/sdp"


async def main(seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with (
        lab_core_with_iwf() as (core, iwf),
        Ue(core, "alice") as alice,
        Ue(core, "bob", answer=[]) as bob,
    ):
        await register_wic(alice)
        await register_plain(bob)
        result["registered"] = [
            alice.last_register.status if alice.last_register else 0,
            bob.last_register.status if bob.last_register else 0,
        ]
        phone = RtpPeer(PortAllocator(51000, 51099))
        await phone.open()
        tone: asyncio.Task[int] | None = None
        dialog: Dialog | None = None

        async def offer(sdp: bytes) -> str:
            """The page's offer -> alice's INVITE via the S-CSCF; bob answers; the answer -> the page."""
            nonlocal tone, dialog
            invite = alice.request("INVITE", f"sip:bob@{REALM}", body=sdp, content_type=SDP)
            sending = asyncio.create_task(alice.send(invite))
            incoming = await asyncio.wait_for(bob.incoming.get(), 15)
            sessions = iwf.sessions()
            session = iwf.session(sessions[0]) if len(sessions) == 1 else None
            got = audio_stream(parse(incoming.request.body))
            result["callee_offer_proto"] = got.proto
            result["callee_offer_at_iwf"] = bool(
                session is not None and session.ims is not None and got.port == session.ims.port
            )
            answer = phone.answer(parse(incoming.request.body), [PCMU, TELEPHONE_EVENT_8000])
            tag, contact = new_tag(), [("Contact", f"<{bob.contact_uri}>")]
            incoming.respond(180, to_tag=tag, headers=contact)
            incoming.respond(
                200, to_tag=tag, headers=[*contact, ("Content-Type", SDP)], body=answer.to_bytes()
            )
            final: Response = await asyncio.wait_for(sending, 15)
            result["invite_status"] = final.status
            if final.status != 200:
                raise web.HTTPInternalServerError(text=f"INVITE: {final.status} {final.reason}")
            dialog = Dialog.from_uac(invite, final)
            await alice.send_in_dialog(dialog.create_ack(invite))
            mine = audio_stream(parse(final.body))
            result["answer_from_iwf"] = bool(
                session is not None
                and session.webrtc is not None
                and list(mine.fingerprints) == [iwf.certificate.fingerprint()]
                and {c.port for c in mine.candidates} == {session.webrtc.ice.port}
            )
            tone = asyncio.create_task(phone.send_tone(seconds + 6, freq=440.0))
            return final.body.decode()

        try:
            async with offer_page_server(offer) as url, chromium() as context:
                tab = await first_page(context)
                await tab.goto(f"{url}?codec=opus")
                audio = await wait_for_audio(tab, packets=100 + int(seconds * 25), timeout=seconds + 30)
                result.update(audio.report())
                sessions = iwf.sessions()
                session = iwf.session(sessions[0]) if sessions else None
                result["plan"] = session.plan.description if session and session.plan else ""
                result["iwf"] = [stats_dict(s) for s in session.stats()] if session else []
            decoder = AudioDecoder(phone.codec, 8000)
            pcm = b"".join(decoder.decode(p[12:]) for p in phone.received[-100:])
            result["rtp_peer"] = {
                "packets_received": phone.recorder.count,
                "rms": rms(pcm) if pcm else 0.0,
                "payload_types": sorted({p[1] & 0x7F for p in phone.received}),
            }
            if dialog is not None:
                bye = await alice.send_in_dialog(dialog.create_request("BYE"))
                result["bye_status"] = bye.status if bye is not None else 0
            loop = asyncio.get_running_loop()
            end = loop.time() + 10
            while iwf.sessions() and loop.time() < end:
                await asyncio.sleep(0.05)
            result["sessions_left"] = iwf.sessions()
            result["ports_left"] = sorted(iwf.ports.in_use)
            result["inserted"] = core.scscf.mrf.inserted
        finally:
            if tone is not None:
                tone.cancel()
            phone.close()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    ns = parser.parse_args()
    out = asyncio.run(main(ns.seconds))
    sys.stdout.write(json.dumps(out) + "\n")
