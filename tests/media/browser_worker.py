"""Browser media test body: Chromium <-> embedded IWF <-> plain RTP peer, all on loopback.

Run by tests/media/test_browser_media.py inside a loopback-only network
namespace (webims.testing.netns).  Starts the embedded media IWF, an RTP
peer that sends a 440 Hz PCMU tone and records what it gets, an aiohttp page
whose JavaScript makes an RTCPeerConnection with Chromium's fake microphone
and posts its offer to ``/offer`` (no SIP here), and headless Chromium.
Prints one JSON object: the browser's getStats, what the RTP peer received,
and the IWF's leg statistics.

    python browser_worker.py --codec pcmu|opus [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from webims.media import EmbeddedConfig, EmbeddedMediaIWF
from webims.media.ports import PortAllocator
from webims.media.transcode import AudioDecoder
from webims.sdp import PCMU, TELEPHONE_EVENT_8000, parse
from webims.testing.browser import chromium, first_page, offer_page_server, wait_for_audio
from webims.testing.media_peers import RtpPeer, rms


async def main(codec: str, seconds: float) -> dict[str, Any]:
    iwf = EmbeddedMediaIWF(EmbeddedConfig(port_min=40000, port_max=40199, media_timeout=60))
    await iwf.start()
    peer = RtpPeer(PortAllocator(41000, 41099))
    await peer.open()
    events: list[str] = []
    session = await iwf.create_session("browser-1", lambda e: events.append(f"{e.kind.value}:{e.detail}"))
    tone_task: asyncio.Task[int] | None = None

    async def offer(sdp: bytes) -> str:
        nonlocal tone_task
        ims_offer = await session.offer_from_webrtc(parse(sdp))
        ims_answer = peer.answer(ims_offer, [PCMU, TELEPHONE_EVENT_8000])
        answer = await session.answer_from_ims(ims_answer)
        await session.confirm()
        tone_task = asyncio.create_task(peer.send_tone(seconds + 4, freq=440.0))
        return answer.to_text()

    result: dict[str, Any] = {"codec": codec}
    async with offer_page_server(offer) as url, chromium() as context:
        page = await first_page(context)
        await page.goto(f"{url}?codec={codec}")
        audio = await wait_for_audio(page, packets=100 + int(seconds * 50) // 2, timeout=seconds + 20)
    result.update(audio.report())
    # What the RTP peer heard from the browser (decoded PCMU).
    decoder = AudioDecoder(peer.codec, 8000)
    pcm = b"".join(decoder.decode(p[12:]) for p in peer.received[-100:])
    result["rtp_peer"] = {
        "packets_received": peer.recorder.count,
        "codec": peer.codec.name,
        "rms": rms(pcm) if pcm else 0.0,
        "payload_types": sorted({p[1] & 0x7F for p in peer.received}),
    }
    result["iwf"] = [stats_dict(s) for s in session.stats()]
    result["plan"] = session.plan.description if session.plan else ""
    result["events"] = events
    if tone_task is not None:
        tone_task.cancel()
    await session.release("test over")
    result["sessions_left"] = iwf.sessions()
    result["ports_left"] = sorted(iwf.ports.in_use)
    peer.close()
    await iwf.close()
    return result


def stats_dict(stats: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in stats.__dataclass_fields__:
        value = getattr(stats, name)
        out[name] = value.value if hasattr(value, "value") else value
    return out


def run_worker(body: Callable[[str, float], Awaitable[dict[str, Any]]]) -> None:
    """``--codec pcmu|opus [--seconds N]``: run ``body`` and print its result as one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--codec", choices=("pcmu", "opus"), required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    ns = parser.parse_args()
    out = asyncio.run(body(ns.codec, ns.seconds))
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    run_worker(main)
