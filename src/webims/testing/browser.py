"""Headless Chromium for tests: launch, the WebRTC media page and its getStats, screenshots.

Every browser test runs Chromium the same way: Debian's ``/usr/bin/chromium`` driven
by Python playwright (``executable_path``), headless, a fresh profile
(``--user-data-dir``) each time, fake audio devices and no traffic of its own
(:data:`CHROMIUM_ARGS`)::

    screenshot = Screenshots(ROOT / "test-artifacts" / "web")
    async with chromium() as context:                       # a temporary profile
        page = await first_page(context)
        ...
        await screenshot(page, "01-registered")             # .../web/01-registered.png

The media tests serve :data:`OFFER_PAGE` (:func:`offer_page_server`): an
RTCPeerConnection with Chromium's fake microphone that posts its offer to
``/offer`` and applies the answer, then :func:`wait_for_audio` polls its getStats
(RTCInboundRtpStreamStats ``packetsReceived``, ``totalAudioEnergy``, W3C
webrtc-stats §8.2) until enough audio arrived. A missing browser or playwright
raises :class:`BrowserMissing` (a failure, never a skip).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .netns import netns_unavailable

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "MEDIA_ARGS",
    "OFFER_PAGE",
    "AudioWait",
    "BrowserMissing",
    "Screenshots",
    "assert_browser_audio",
    "chromium",
    "first_page",
    "missing_chromium",
    "netns_browser_unavailable",
    "offer_page_server",
    "wait_for_audio",
]

CHROMIUM = "/usr/bin/chromium"
#: The team's flags: headless, no sandbox (root in a namespace), no GPU, no QUIC, no
#: first-run, update, sync or background traffic; fake microphone, no permission prompt.
CHROMIUM_ARGS: tuple[str, ...] = (
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
)
#: ICE on 127.0.0.1 (the calls run in a loopback-only namespace); remote audio plays
#: without a click.
MEDIA_ARGS: tuple[str, ...] = (
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
)


class BrowserMissing(RuntimeError):
    """Chromium or python playwright is not installed (``scripts/setup.sh`` installs both)."""


def missing_chromium() -> str | None:
    """Why Chromium cannot run here (None when it can)."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: apt-get install chromium (scripts/setup.sh)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "python playwright is missing: pip install -e '.[dev]'"
    return None


def netns_browser_unavailable() -> str | None:
    """Why Chromium cannot run here in a loopback-only network namespace (None when it can)."""
    why = missing_chromium()
    if why is None and (netns := netns_unavailable()) is not None:
        why = f"browser media tests need a network namespace: {netns}"
    return why


@contextlib.asynccontextmanager
async def chromium(
    profile: Path | None = None, *, args: Sequence[str] = MEDIA_ARGS, **options: Any
) -> AsyncIterator[BrowserContext]:
    """Headless Chromium in a persistent context with a fresh profile: ``profile`` (a new
    directory), or a temporary one removed afterwards. ``args`` come after
    :data:`CHROMIUM_ARGS`; ``options`` go to playwright's ``launch_persistent_context``."""
    why = missing_chromium()
    if why is not None:
        raise BrowserMissing(why)
    from playwright.async_api import async_playwright

    with contextlib.ExitStack() as stack:
        if profile is None:
            profile = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="webims-chromium-")))
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                str(profile), executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *args], **options
            )
            try:
                yield context
            finally:
                await context.close()


async def first_page(context: BrowserContext) -> Page:
    """The tab a persistent context opens with (or a new one)."""
    return context.pages[0] if context.pages else await context.new_page()


@dataclass(frozen=True)
class Screenshots:
    """``await screenshot(page, name)`` saves ``<directory>/<prefix><name>.png`` (the whole page)."""

    directory: Path
    prefix: str = ""

    async def __call__(self, page: Page, name: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.prefix}{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path


# --- the WebRTC media page ------------------------------------------------------------------------------

#: ``/?codec=pcmu|opus``: getUserMedia (fake microphone), an offer with only that codec
#: (and telephone-event) after ICE gathering, POST /offer, the answer applied; remote
#: audio plays. ``window.result``: state, offer, answer, error; ``window.collect()``:
#: connection states and the audio getStats.
OFFER_PAGE = """<!doctype html>
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


@contextlib.asynccontextmanager
async def offer_page_server(offer: Callable[[bytes], Awaitable[str]]) -> AsyncIterator[str]:
    """Serve :data:`OFFER_PAGE` on http://127.0.0.1:<port>/ (yielded); POST /offer gives
    ``offer`` the browser's SDP offer and returns the SDP answer it makes (an
    :class:`aiohttp.web.HTTPException` it raises is the page's error answer)."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=OFFER_PAGE, content_type="text/html")

    async def post_offer(request: web.Request) -> web.Response:
        return web.Response(text=await offer(await request.read()))

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_post("/offer", post_offer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class AudioWait:
    """What the media page showed when :func:`wait_for_audio` stopped waiting."""

    #: The last ``window.collect()``: connection states, packetsReceived, totalAudioEnergy...
    stats: dict[str, Any] = field(default_factory=dict)
    #: The page's error, when its script failed.
    page_error: str | None = None
    offer: str = ""
    answer: str = ""

    def report(self) -> dict[str, Any]:
        """For a worker's JSON: ``browser`` (the stats), ``offer``, ``answer``, ``page_error`` if any."""
        error = {} if self.page_error is None else {"page_error": self.page_error}
        return {"browser": self.stats, "offer": self.offer, "answer": self.answer, **error}


async def wait_for_audio(
    page: Page, *, packets: int, energy: float = 0.01, timeout: float, interval: float = 0.5
) -> AudioWait:
    """Poll the media page's getStats until ``packets`` audio packets arrived with a
    ``totalAudioEnergy`` above ``energy`` (sound, not silence), its script failed, or
    ``timeout`` seconds passed; the caller asserts on what it returns."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stats: dict[str, Any] = {}
    page_error: str | None = None
    while loop.time() < deadline:
        await asyncio.sleep(interval)
        stats = await page.evaluate("window.collect()")
        state = await page.evaluate("window.result")
        if state.get("state") == "error":
            page_error = state.get("error")
            break
        if (stats.get("packetsReceived") or 0) >= packets and (stats.get("totalAudioEnergy") or 0) > energy:
            break
    state = await page.evaluate("window.result")
    return AudioWait(stats, page_error, state.get("offer", ""), state.get("answer", ""))


def assert_browser_audio(
    result: Mapping[str, Any], codec: str, *, packets: int = 100, energy: float = 0.01
) -> None:
    """Check a worker's :meth:`AudioWait.report` (in ``result``): no page error, the peer
    connection connected, at least ``packets`` audio packets received with a
    ``totalAudioEnergy`` above ``energy`` (sound, not silence), ``codec`` negotiated."""
    if "page_error" in result:
        raise AssertionError(f"the media page failed: {result['page_error']}")
    stats = result["browser"]
    checks = {
        "connected": stats.get("connection") == "connected",
        f"{packets} packets received": (stats.get("packetsReceived") or 0) >= packets,
        f"totalAudioEnergy above {energy}": (stats.get("totalAudioEnergy") or 0) > energy,
        f"{codec} negotiated": any(codec in c.lower() for c in stats.get("codecs", [])),
    }
    failed = [what for what, ok in checks.items() if not ok]
    if failed:
        raise AssertionError(f"browser audio: not {', '.join(failed)}: {stats}")
