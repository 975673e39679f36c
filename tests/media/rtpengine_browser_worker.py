"""Browser media test body: Chromium <-> rtpengine (driven by RtpengineIWF) <-> plain RTP peer.

Run by tests/media/test_rtpengine_browser.py inside a loopback-only network
namespace (webims.testing.netns): starts rtpengine in userspace, the rtpengine
backend, an RTP peer (the IMS side) that sends a 440 Hz PCMU tone and records
what it gets, an aiohttp page (webims.testing.browser.OFFER_PAGE: an
RTCPeerConnection with Chromium's fake microphone that posts its offer to
``/offer``) and headless Chromium.  Prints one JSON object: the browser's
getStats, what the RTP peer received, the IWF's leg statistics, leftovers.

    python rtpengine_browser_worker.py --codec pcmu|opus [--seconds 5]
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from pathlib import Path
from typing import Any

from browser_worker import run_worker  # the command line shared with the embedded test

from webims.media.rtpengine import RtpengineIWF
from webims.sdp import PCMU, parse
from webims.testing.browser import chromium, first_page, offer_page_server, wait_for_audio
from webims.testing.rtpengine import Rtpengine, RtpPacket, RtpPeer, rtp_target


def ulaw(sample: int) -> int:
    """ITU-T G.711 µ-law encoding of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    return ~(sign | exponent << 4 | (magnitude >> (exponent + 3)) & 0x0F) & 0xFF


def ulaw_decode(byte: int) -> int:
    byte = ~byte & 0xFF
    magnitude = (((byte & 0x0F) << 3) + 0x84) << ((byte >> 4) & 0x07)
    return 0x84 - magnitude if byte & 0x80 else magnitude - 0x84


async def send_tone(peer: RtpPeer, target: tuple[str, int], seconds: float) -> None:
    """20 ms PCMU packets of a 440 Hz tone, paced in real time."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(int(seconds * 50)):
        pcm = (int(8000 * math.sin(2 * math.pi * 440 * (n * 160 + i) / 8000)) for i in range(160))
        peer.send(RtpPacket(0, n, n * 160, 0xC0FFEE, bytes(ulaw(s) for s in pcm)), target)
        await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))


async def main(codec: str, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {"codec": codec}
    with tempfile.TemporaryDirectory(prefix="webims-rtpe-") as workdir, Rtpengine(Path(workdir)) as rtpe:
        iwf = RtpengineIWF(rtpe.ng_address)
        await iwf.start()
        peer = await RtpPeer.open()
        events: list[str] = []
        session = await iwf.create_session("browser-1", lambda e: events.append(f"{e.kind.value}:{e.detail}"))
        tasks: list[asyncio.Task[None]] = []

        async def offer(sdp: bytes) -> str:
            ims_offer = await session.offer_from_webrtc(parse(sdp))
            result["ims_offer"] = ims_offer.to_text()
            answer = await session.answer_from_ims(peer.describe([PCMU]))
            await session.confirm()
            tasks.append(asyncio.create_task(send_tone(peer, rtp_target(ims_offer), seconds + 6)))
            return answer.to_text()

        async with offer_page_server(offer) as url, chromium() as context:
            page = await first_page(context)
            await page.goto(f"{url}?codec={codec}")
            audio = await wait_for_audio(page, packets=100 + int(seconds * 50) // 2, timeout=seconds + 20)
        result.update(audio.report())

        pcm = [ulaw_decode(b) for p in peer.received[-100:] if p.payload_type == 0 for b in p.payload]
        result["rtp_peer"] = {
            "packets_received": len(peer.received),
            "payload_types": sorted({p.payload_type for p in peer.received}),
            "rms": math.sqrt(sum(s * s for s in pcm) / len(pcm)) if pcm else 0.0,
        }
        result["iwf"] = [
            {"side": s.side.value, "codec": s.codec, "packets_received": s.packets_received,
             "packets_sent": s.packets_sent, "mos": s.mos}
            for s in await session.refresh_stats()
        ]  # fmt: skip
        for task in tasks:
            task.cancel()
        await session.release("test over")
        result["events"] = events
        result["sessions_left"] = iwf.sessions()
        result["calls_left"] = rtpe.calls()
        peer.close()
        await iwf.close()
    return result


if __name__ == "__main__":
    run_worker(main)
