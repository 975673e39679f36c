"""SIP.js (npm ``sip.js`` 0.21) in headless Chromium calls and is called by an IMS phone
through the gateway, with audio both ways.

Run by tests/gateway/test_sipjs_calls.py inside a loopback-only network namespace
(webims.testing.netns), so Chromium's ICE candidates are on 127.0.0.1 only::

    python sipjs_call_worker.py --bundle /tmp/sip.js --scenario outgoing|incoming|cancel|jssip

The system is what ``webims demo`` runs (:func:`webims.demo.demo_config` and
:func:`~webims.demo.provision`: the lab IMS core, the authorization function, the
gateway with its session B2BUA and the external embedded media IWF, the demo users),
started by :func:`webims.demo.running_demo`, which hands over the gateway (its calls,
dialogs and IWF sessions are checked at the end) and lets the HTTPS app also serve the
SIP.js page (tests/gateway/web/sipjs_call.html) at /sipjs/ and the bundle
(``--bundle``, made by the test with esbuild) at /sipjs/sip.js, next to the WIC web
app (JsSIP) that the ``jssip`` scenario uses. SIP.js registers as alice with a web
token (``Authorization: Bearer`` in the Registerer's and the Inviter's
``extraHeaders``); the IMS phone (digest, plain RTP/AVP PCMU, sends a tone) is
registered as phone.

Scenarios:

- ``outgoing``: SIP.js calls the phone, the phone answers (180, 200), audio both
  ways, SIP.js hangs up (BYE);
- ``incoming``: the phone calls SIP.js, ``delegate.onInvite`` accepts, audio both
  ways, the phone hangs up;
- ``cancel``: SIP.js calls the phone, the phone rings (180), SIP.js cancels;
- ``jssip``: SIP.js and the WIC web app (JsSIP, bob logged in with his IMS password
  in a second tab) call each other: SIP.js calls bob, bob answers, audio both ways,
  bob hangs up; bob calls SIP.js, ``delegate.onInvite`` accepts, audio both ways,
  SIP.js hangs up.

Prints one JSON object last: what SIP.js sent and received, what reached the phone,
the audio figures of both sides and what the gateway still holds; the test asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "web")]

from aiohttp import web  # noqa: E402
from call_checks import left_in_gateway, until  # noqa: E402
from ims_phone import Got, ImsPhone  # noqa: E402
from wictest import text, wait_state, wic_audio  # type: ignore[import-not-found]  # noqa: E402

from webims.auth.service import AuthService  # noqa: E402
from webims.config import load_config  # noqa: E402
from webims.demo import running_demo  # noqa: E402
from webims.gateway.core import Gateway  # noqa: E402
from webims.labcore import LabCore  # noqa: E402
from webims.media.ports import PortAllocator  # noqa: E402
from webims.media.transcode import AudioDecoder  # noqa: E402
from webims.sdp import PCMU, TELEPHONE_EVENT_8000, parse  # noqa: E402
from webims.testing.browser import MEDIA_ARGS, chromium, first_page  # noqa: E402
from webims.testing.media_peers import RtpPeer, rms  # noqa: E402

PAGE = HERE / "web" / "sipjs_call.html"
WIC_USER = "alice"  # the demo's web user (token) -> sip:alice@ims.test
WIC_AOR = "sip:alice@ims.test"
PHONE_AOR = "sip:phone@ims.test"
#: Audio wanted at each end (as tests/gateway/test_session_browser.py): packets, energy.
PACKETS = 100
ENERGY = 0.01


@dataclass
class System:
    """The started demo system: the gateway (with its session B2BUA), the core, the WAF."""

    gateway: Gateway
    core: LabCore
    auth: AuthService
    origin: str  # https://host:port of the gateway and the pages (the WIC web app at /, if served)
    wss_url: str

    @property
    def page_url(self) -> str:
        return f"{self.origin}/sipjs/"


def add_page(app: web.Application, bundle: str) -> web.Application:
    """The SIP.js page at /sipjs/ and the SIP.js bundle at /sipjs/sip.js, on ``app``."""
    html = PAGE.read_text()

    async def index(request: web.Request) -> web.Response:
        # its own policy (the authorization function's app sets a strict default): the
        # page's script is inline
        csp = {"Content-Security-Policy": "script-src 'self' 'unsafe-inline'"}
        return web.Response(text=html, content_type="text/html", headers=csp)

    async def library(request: web.Request) -> web.Response:
        return web.Response(text=bundle, content_type="application/javascript")

    app.router.add_get("/sipjs/", index)
    app.router.add_get("/sipjs/sip.js", library)
    return app


@contextlib.asynccontextmanager
async def running_system(tmp: Path, bundle: str) -> AsyncIterator[System]:
    """The system ``webims demo`` runs (:func:`webims.demo.running_demo`), with the SIP.js
    page (:func:`add_page`) on its HTTPS app."""
    environ = dict(os.environ)
    environ["WEBIMS_STATE__DIR"] = str(tmp)
    config = load_config(None, environ=environ)
    async with running_demo(config, routes=lambda app: add_page(app, bundle)) as demo:
        origin = demo.wss_url.rsplit("/", 1)[0].replace("wss://", "https://")
        yield System(demo.gateway, demo.core, demo.auth, origin, demo.wss_url)


async def evaluate(page: Any, expression: str, arg: object = None) -> Any:
    return await asyncio.wait_for(page.evaluate(expression, arg), 60)


async def session_state(page: Any, state: str, seconds: float = 20.0) -> None:
    async def reached() -> bool:
        return state in await page.evaluate("window.states")

    await until(reached, f"SIP.js session {state}", seconds)


async def sipjs_audio(page: Any, seconds: float = 30.0) -> dict[str, Any]:
    """SIP.js's peer connection statistics once audio flowed both ways (or after ``seconds``)."""
    stats: dict[str, Any] = {}

    async def enough() -> bool:
        nonlocal stats
        stats = await page.evaluate("window.audio()")
        return bool(
            (stats.get("packetsReceived") or 0) >= PACKETS
            and (stats.get("packetsSent") or 0) >= PACKETS
            and (stats.get("totalAudioEnergy") or 0) > ENERGY
        )

    with contextlib.suppress(AssertionError):  # the test asserts on the figures
        await until(enough, "audio at SIP.js", seconds)
    return stats


async def phone_audio(rtp: RtpPeer, seconds: float = 30.0) -> dict[str, Any]:
    """The phone's RTP: packet count, payload types, and the level of its decoded PCMU."""

    async def enough() -> bool:
        return rtp.recorder.count >= PACKETS

    with contextlib.suppress(AssertionError):
        await until(enough, "RTP at the phone", seconds)
    packets = list(rtp.received)
    decoder = AudioDecoder(PCMU, 8000)
    pcm = b"".join(decoder.decode(p[12:]) for p in packets if p[1] & 0x7F == PCMU.payload_type)
    return {
        "packets": rtp.recorder.count,
        "payload_types": sorted({p[1] & 0x7F for p in packets}),
        "rms": rms(pcm),
    }


def at_phone(got: Got) -> dict[str, Any]:
    """The INVITE as it reached the phone (the gateway's IMS leg, through the S-CSCF)."""
    request = got.request
    return {
        "sdp": request.body.decode(),
        "from": request.headers.get("From") or "",
        "pai": request.headers.get("P-Asserted-Identity") or "",
        "authorization": request.headers.get("Authorization"),
        "content_type": request.headers.get("Content-Type") or "",
    }


async def start_sipjs(page: Any, system: System, out: dict[str, Any]) -> str:
    """alice's SIP.js UA registers with a web token; returns the Bearer header line."""
    token = system.auth.tokens.issue_for_user(
        WIC_USER, client_id=system.auth.settings.wic_client_id
    ).access_token
    bearer = f"Authorization: Bearer {token}"
    out["token"] = token
    state = await evaluate(
        page, "a => window.startUA(a[0], a[1])", [system.wss_url, {"uri": WIC_AOR, "extraHeaders": [bearer]}]
    )
    assert state == "Connected", await page.evaluate("window.events")
    out["register"] = await evaluate(page, "() => window.register()")
    assert out["register"].get("status") == 200, (out["register"], await page.evaluate("window.events"))
    return bearer


async def call_phone(page: Any, phone: ImsPhone, bearer: str, out: dict[str, Any]) -> Got:
    """SIP.js calls the phone (the Bearer on its INVITE); the INVITE as the phone got it."""
    await evaluate(page, "a => window.call(a[0], a[1])", [PHONE_AOR, [bearer]])
    got = await phone.next_request("INVITE", timeout=20)
    out["at_phone"] = at_phone(got)
    return got


async def audio_both_ways(page: Any, rtp: RtpPeer, out: dict[str, Any]) -> None:
    """The phone sends a tone while SIP.js's and the phone's audio figures are taken."""
    tone = asyncio.ensure_future(rtp.send_tone(10.0))
    try:
        out["sipjs_audio"] = await sipjs_audio(page)
        out["phone_audio"] = await phone_audio(rtp)
    finally:
        tone.cancel()


async def outgoing(
    page: Any, context: Any, system: System, phone: ImsPhone, rtp: RtpPeer, out: dict[str, Any]
) -> None:
    """SIP.js calls the phone; the phone answers; audio; SIP.js hangs up."""
    bearer = await start_sipjs(page, system, out)
    got = await call_phone(page, phone, bearer, out)
    answer = rtp.answer(parse(got.request.body), [PCMU, TELEPHONE_EVENT_8000])
    out["phone_answer"] = answer.to_bytes().decode()
    phone.respond(got, 180, to_tag="ph")
    phone.respond(got, 200, to_tag="ph", body=answer.to_bytes())
    await session_state(page, "Established")
    await audio_both_ways(page, rtp, out)
    out["phone_acks"] = len(phone.acks)
    out["hangup"] = await evaluate(page, "() => window.hangup()")
    bye = await phone.next_request("BYE", timeout=10)
    out["bye_at_phone"] = {"call_id": bye.request.headers.get("Call-ID"),
                           "invite_call_id": got.request.headers.get("Call-ID")}  # fmt: skip
    await session_state(page, "Terminated")


async def incoming(
    page: Any, context: Any, system: System, phone: ImsPhone, rtp: RtpPeer, out: dict[str, Any]
) -> None:
    """The phone calls SIP.js; ``delegate.onInvite`` accepts; audio; the phone hangs up."""
    await start_sipjs(page, system, out)
    await page.evaluate("window.autoAnswer = true")
    offer = rtp.offer([PCMU, TELEPHONE_EVENT_8000]).to_bytes()
    out["phone_offer"] = offer.decode()
    request, final, provisional = await phone.invite(WIC_AOR, offer)
    response = await asyncio.wait_for(final, 30)
    out["phone_final"] = response.status
    out["phone_provisional"] = [r.status for r in provisional]
    out["phone_answer_sdp"] = response.body.decode()
    assert response.status == 200, (response.status, await page.evaluate("window.events"))
    rtp.take(parse(response.body))
    dialog = await phone.ack_and_dialog(request, response)
    out["incoming_from"] = await page.evaluate("window.incomingFrom")
    await session_state(page, "Established")
    await audio_both_ways(page, rtp, out)
    out["phone_bye"] = (await phone.send_in(dialog, "BYE")).status
    await session_state(page, "Terminated")


async def cancel(
    page: Any, context: Any, system: System, phone: ImsPhone, rtp: RtpPeer, out: dict[str, Any]
) -> None:
    """SIP.js calls the phone; the phone rings; SIP.js cancels (RFC 3261 §9)."""
    bearer = await start_sipjs(page, system, out)
    got = await call_phone(page, phone, bearer, out)
    phone.respond(got, 180, to_tag="ph")

    async def ringing() -> bool:
        return 180 in await page.evaluate("window.responses")

    await until(ringing, "SIP.js saw the 180")
    out["cancel"] = await evaluate(page, "() => window.cancel()")
    await asyncio.wait_for(got.incoming.cancelled.wait(), 20)  # the CANCEL reached the phone
    out["phone_cancelled"] = True
    await session_state(page, "Terminated")

    async def final() -> bool:
        return any(code >= 300 for code in await page.evaluate("window.responses"))

    with contextlib.suppress(AssertionError):
        await until(final, "SIP.js's final answer", 10)


async def login_bob(context: Any, system: System) -> Any:
    """A second tab: the WIC web app (JsSIP), bob logged in with his IMS password (ims-digest)."""
    wic = await context.new_page()
    await wic.goto(f"{system.origin}/")
    await wait_state(wic, "login")
    await wic.click("#tab-ims-digest")
    await wic.fill("#digest-impu", "sip:bob@ims.test")
    await wic.fill("#digest-password", "bob-secret")
    await wic.click("#panel-ims-digest button[type=submit]")
    await wait_state(wic, "registered")
    return wic


async def jssip(
    page: Any, context: Any, system: System, phone: ImsPhone, rtp: RtpPeer, out: dict[str, Any]
) -> None:
    """SIP.js and the JsSIP WIC call each other (audio both ways each time)."""
    bearer = await start_sipjs(page, system, out)
    wic = await login_bob(context, system)
    out["wic_identity"] = await text(wic, "#identity")
    # SIP.js calls bob; bob answers in the WIC, then hangs up.
    await evaluate(page, "a => window.call(a[0], a[1])", ["sip:bob@ims.test", [bearer]])
    await wait_state(wic, "incoming")
    out["wic_incoming_from"] = await text(wic, "#incoming-from")
    await wic.click("#answer")
    await wait_state(wic, "in-call")
    await session_state(page, "Established")
    out["sipjs_audio"] = await sipjs_audio(page)
    await wic_audio(wic, out, "wic")
    out["left_in_call"] = await left_in_gateway(system.gateway, 0)
    await wic.click("#hangup")
    await session_state(page, "Terminated")
    await wait_state(wic, "registered")
    out["states"] = await page.evaluate("window.states")
    out["responses"] = await page.evaluate("window.responses")
    out["left_after_first"] = await left_in_gateway(system.gateway)
    # bob calls SIP.js; delegate.onInvite accepts; SIP.js hangs up.
    await page.evaluate("window.states = []; window.incomingFrom = null; window.autoAnswer = true")
    await wic.fill("#target", "alice")
    await wic.click("#call")
    await session_state(page, "Established")
    out["incoming_from"] = await page.evaluate("window.incomingFrom")
    await wait_state(wic, "in-call")
    out["sipjs_audio2"] = await sipjs_audio(page)
    await wic_audio(wic, out, "wic2")
    out["hangup"] = await evaluate(page, "() => window.hangup()")
    await session_state(page, "Terminated")
    await wait_state(wic, "registered")
    out["wic_status"] = await text(wic, "#status")
    out["states2"] = await page.evaluate("window.states")


SCENARIOS = {"outgoing": outgoing, "incoming": incoming, "cancel": cancel, "jssip": jssip}


async def scenario(name: str, system: System, profile: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"scenario": name}
    phone = ImsPhone(system.core, "phone", "phone-secret")
    await phone.start()
    assert (await phone.register()).status == 200
    rtp = RtpPeer(PortAllocator(38000, 38099))
    await rtp.open()
    page: Any = None
    try:
        async with chromium(
            profile, args=(*MEDIA_ARGS, "--ignore-certificate-errors"), ignore_https_errors=True,
            permissions=["microphone"],
        ) as context:  # fmt: skip
            page = await first_page(context)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(system.page_url)
            await SCENARIOS[name](page, context, system, phone, rtp, out)
            out["left"] = await left_in_gateway(system.gateway)
            out.setdefault("responses", await page.evaluate("window.responses"))
            out.setdefault("states", await page.evaluate("window.states"))
            sent: list[str] = await page.evaluate("window.sent")
            received: list[str] = await page.evaluate("window.received")
            out["sent"] = sent
            out["received"] = received
            out["events"] = await page.evaluate("window.events")
            out["page_errors"] = errors
            await evaluate(page, "() => window.stopUA()")
            return out
    except Exception:
        if page is not None:
            with contextlib.suppress(Exception):
                sys.stderr.write(json.dumps(await page.evaluate("window.events"), indent=1) + "\n")
                sys.stderr.write("\n\n".join(await page.evaluate("window.sent.concat(window.received)")))
        raise
    finally:
        rtp.close()
        await phone.close()


async def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    args = parser.parse_args(argv)
    bundle = args.bundle.read_text()
    with tempfile.TemporaryDirectory(prefix="webims-sipjs-call-") as tmp:
        async with running_system(Path(tmp), bundle) as system:
            return await asyncio.wait_for(scenario(args.scenario, system, Path(tmp) / "profile"), 200)


if __name__ == "__main__":
    import uvloop

    result = uvloop.run(main(sys.argv[1:]))
    sys.stdout.write(json.dumps(result) + "\n")
