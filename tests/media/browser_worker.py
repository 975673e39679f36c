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
import tempfile
import time
from typing import Any

from aiohttp import web
from playwright.async_api import async_playwright

from webims.media import EmbeddedConfig, EmbeddedMediaIWF
from webims.media.ports import PortAllocator
from webims.media.transcode import AudioDecoder
from webims.sdp import PCMU, TELEPHONE_EVENT_8000, parse
from webims.testing.media_peers import RtpPeer, rms

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>webims media test</title></head>
<body><audio id="remote" autoplay></audio>
<script>
const params = new URLSearchParams(location.search);
const want = params.get("codec");  // "pcmu" or "opus"
window.result = {state: "starting"};
async function run() {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  const tr = pc.addTransceiver(stream.getAudioTracks()[0], {direction: "sendrecv", streams: [stream]});
  const caps = RTCRtpReceiver.getCapabilities("audio").codecs;
  const keep = caps.filter(c => c.mimeType.toLowerCase() === "audio/" + want ||
                                c.mimeType.toLowerCase() === "audio/telephone-event");
  tr.setCodecPreferences(keep);
  pc.ontrack = ev => {
    const el = document.getElementById("remote");
    el.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    el.play().catch(e => { window.result.play_error = String(e); });
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(resolve => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
  window.result.offer = pc.localDescription.sdp;
  const resp = await fetch("/offer", {method: "POST", body: pc.localDescription.sdp});
  if (!resp.ok) throw new Error("offer rejected: " + resp.status + " " + await resp.text());
  const answer = await resp.text();
  window.result.answer = answer;
  await pc.setRemoteDescription({type: "answer", sdp: answer});
  window.result.state = "answered";
}
window.collect = async () => {
  const out = {state: window.result.state, ice: window.pc && window.pc.iceConnectionState,
               connection: window.pc && window.pc.connectionState};
  if (!window.pc) return out;
  const stats = await window.pc.getStats();
  stats.forEach(s => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.packetsReceived = s.packetsReceived; out.packetsLost = s.packetsLost;
      out.totalAudioEnergy = s.totalAudioEnergy; out.jitter = s.jitter; out.codecId = s.codecId;
    }
    if (s.type === "outbound-rtp" && s.kind === "audio") { out.packetsSent = s.packetsSent; }
    if (s.type === "codec") { out.codecs = (out.codecs || []).concat([s.id + " " + s.mimeType]); }
  });
  return out;
};
run().catch(e => { window.result.state = "error"; window.result.error = String(e); });
</script></body></html>
"""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
]


async def main(codec: str, seconds: float) -> dict[str, Any]:
    iwf = EmbeddedMediaIWF(EmbeddedConfig(port_min=40000, port_max=40199, media_timeout=60))
    await iwf.start()
    peer = RtpPeer(PortAllocator(41000, 41099))
    await peer.open()
    events: list[str] = []
    session = await iwf.create_session("browser-1", lambda e: events.append(f"{e.kind.value}:{e.detail}"))
    tone_task: asyncio.Task[int] | None = None

    async def offer(request: web.Request) -> web.Response:
        nonlocal tone_task
        sdp = parse(await request.read())
        ims_offer = await session.offer_from_webrtc(sdp)
        ims_answer = peer.answer(ims_offer, [PCMU, TELEPHONE_EVENT_8000])
        answer = await session.answer_from_ims(ims_answer)
        await session.confirm()
        tone_task = asyncio.create_task(peer.send_tone(seconds + 4, freq=440.0))
        return web.Response(text=answer.to_text())

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_post("/offer", offer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    result: dict[str, Any] = {"codec": codec}
    with tempfile.TemporaryDirectory(prefix="webims-chromium-") as profile:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile, executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
            try:
                page_ = await context.new_page()
                await page_.goto(f"http://127.0.0.1:{port}/?codec={codec}")
                deadline = time.monotonic() + seconds + 20
                browser: dict[str, Any] = {}
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    browser = await page_.evaluate("window.collect()")
                    state = await page_.evaluate("window.result")
                    if state.get("state") == "error":
                        result["page_error"] = state.get("error")
                        break
                    if (browser.get("packetsReceived") or 0) >= 100 + int(seconds * 50) // 2 and (
                        browser.get("totalAudioEnergy") or 0
                    ) > 0.01:
                        break
                result["browser"] = browser
                state = await page_.evaluate("window.result")
                result["offer"] = state.get("offer", "")
                result["answer"] = state.get("answer", "")
            finally:
                await context.close()
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
    await runner.cleanup()
    return result


def stats_dict(stats: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in stats.__dataclass_fields__:
        value = getattr(stats, name)
        out[name] = value.value if hasattr(value, "value") else value
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--codec", choices=("pcmu", "opus"), required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    ns = parser.parse_args()
    out = asyncio.run(main(ns.codec, ns.seconds))
    sys.stdout.write(json.dumps(out) + "\n")
