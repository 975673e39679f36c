"""Two WIC tabs and an IMS phone call each other through the gateway and the lab IMS core.

Run by tests/gateway/test_session_browser.py inside a loopback-only network namespace
(webims.testing.netns), so Chromium's ICE candidates are on 127.0.0.1 only. The whole
system runs as ``webims demo`` runs it (:func:`webims.demo.running_demo`: lab core with
its MRF, authorization function, client script server, gateway with its session
B2BUA and the external embedded media IWF), with the demo users:

- tab A logs in with a web account (``web-token``: PKCE at the authorization function,
  Bearer token on REGISTER, TNA toward the IMS) as alice;
- tab B logs in with the IMS password (``ims-digest``) as bob;
- a Python IMS phone (digest, plain RTP/AVP PCMU, sends a tone) registered as phone.

Scenario: unregistered callee (the UI says why); A calls B, B declines (603); A calls
B and cancels; A calls B, B answers: audio both ways (>= 100 packets, energy), DTMF by
INFO shown at B, RFC 4733 sent, hold and resume, B hangs up; A calls the phone (audio
through the gateway's IWF), A hangs up; the phone calls A (the lab MRF interworks), the
phone hangs up. Screenshots in test-artifacts/gateway/. Prints one JSON object last.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "web")]

from ims_phone import ImsPhone  # noqa: E402
from wictest import (  # type: ignore[import-not-found]  # noqa: E402
    PageWatch,
    chromium,
    csp_violations,
    print_pages,
    stat,
    text,
    wait_state,
    wic_audio,
)

from webims.config import load_config  # noqa: E402
from webims.demo import running_demo  # noqa: E402
from webims.media.ports import PortAllocator  # noqa: E402
from webims.sdp import PCMU, TELEPHONE_EVENT_8000, parse  # noqa: E402
from webims.testing.browser import Screenshots  # noqa: E402
from webims.testing.media_peers import RtpPeer  # noqa: E402

ARTIFACTS = HERE.parents[1] / "test-artifacts" / "gateway"


screenshot = Screenshots(ARTIFACTS)


async def until(check: Any, what: str, seconds: float = 15.0) -> None:
    for _ in range(int(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not reached: {what}")


async def dial(page: Any, target: str) -> None:
    await page.fill("#target", target)
    await page.click("#call")


class _Core:
    """What ImsPhone needs of a lab core: where its I-CSCF is."""

    def __init__(self, icscf: str) -> None:
        host, _, port = icscf.removeprefix("sip:").partition(":")
        self.icscf_address = (host, int(port.split(";")[0]))


async def scenario(url: str, icscf: str, profile: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    phone = ImsPhone(_Core(icscf), "phone", "phone-secret")  # type: ignore[arg-type]
    await phone.start()
    assert (await phone.register()).status == 200
    rtp = RtpPeer(PortAllocator(38000, 38099))
    await rtp.open()
    # two browsers (profiles): a web login's session cookie in one must not speak for the other
    async with chromium(profile / "a") as browser_a, chromium(profile / "b") as browser_b:
        a = browser_a.pages[0] if browser_a.pages else await browser_a.new_page()
        b = browser_b.pages[0] if browser_b.pages else await browser_b.new_page()
        watches = [PageWatch(a), PageWatch(b)]
        try:
            # --- log in: A with a web account (PKCE, Bearer), B with the IMS password
            await a.goto(url)
            await wait_state(a, "login")
            await a.click("#web-login")
            await a.wait_for_url("**/authorize?*")
            await a.fill("#username", "alice")
            await a.fill("#password", "alice")
            await a.click("button[type=submit]")
            await wait_state(a, "registered")
            out["a_identity"] = await text(a, "#identity")
            await b.goto(url)
            await wait_state(b, "login")
            await b.click("#tab-ims-digest")
            await b.fill("#digest-impu", "sip:bob@ims.test")
            await b.fill("#digest-password", "bob-secret")
            await b.click("#panel-ims-digest button[type=submit]")
            await wait_state(b, "registered")
            out["b_identity"] = await text(b, "#identity")
            await screenshot(a, "01-a-registered-web-token")
            await screenshot(b, "02-b-registered-ims-digest")

            # --- an unregistered callee: the UI says why
            await dial(a, "carol")
            await until(lambda: _shown(a, "#error"), "the error of the call to carol")
            out["unregistered"] = await text(a, "#error")
            await screenshot(a, "03-unregistered-callee")
            await wait_state(a, "registered")

            # --- B declines
            await dial(a, "bob")
            await wait_state(b, "incoming")
            out["incoming_from"] = await text(b, "#incoming-from")
            await wait_state(a, "ringing")
            await screenshot(a, "04-ringing")
            await screenshot(b, "05-incoming")
            await b.click("#reject")
            await until(lambda: _shown(a, "#error"), "the decline at A")
            out["declined"] = await text(a, "#error")
            await screenshot(a, "06-declined")
            await wait_state(a, "registered")

            # --- A cancels before the answer
            await dial(a, "bob")
            await wait_state(b, "incoming")
            await wait_state(a, "ringing")
            await a.click("#hangup")
            await wait_state(a, "registered")
            await wait_state(b, "registered")
            out["cancelled_callee"] = await text(b, "#status") + await text(b, "#error")
            await screenshot(b, "07-missed-call")

            # --- a call: audio both ways, DTMF, hold and resume, B hangs up
            await dial(a, "bob")
            await wait_state(b, "incoming")
            await b.click("#answer")
            await wait_state(b, "in-call")
            await wait_state(a, "in-call")
            await wic_audio(a, out, "a")
            await wic_audio(b, out, "b")
            await screenshot(a, "08-in-call-a")
            await screenshot(b, "09-in-call-b")
            await a.select_option("#dtmf-method", "info")
            await a.click('#dialpad button[data-key="1"]')
            await a.click('#dialpad button[data-key="#"]')
            await a.select_option("#dtmf-method", "rfc4733")
            await a.click('#dialpad button[data-key="5"]')
            await until(lambda: _equals(b, "#dtmf-received", "1#"), "the INFO digits at B")
            out["dtmf_sent"] = await text(a, "#dtmf-sent")
            out["dtmf_received"] = await text(b, "#dtmf-received")
            await a.click("#hold")
            await wait_state(a, "on-hold")
            await until(lambda: _contains(b, "#status", "hold"), "B sees the hold")
            out["b_sees_hold"] = await text(b, "#status")
            await screenshot(a, "10-on-hold")
            await a.click("#hold")
            await wait_state(a, "in-call")
            before = await stat(b, "#q-received")
            await until(lambda: _grows(b, "#q-received", before + 50), "audio at B after resume")
            out["resumed_packets"] = await stat(b, "#q-received") - before
            await b.click("#hangup")
            await wait_state(a, "registered")
            await wait_state(b, "registered")
            out["hangup_seen"] = await text(a, "#status")
            await screenshot(a, "11-after-call")

            # --- A calls the IMS phone (plain RTP; the gateway's IWF interworks)
            await dial(a, "phone")
            got = await phone.next_request("INVITE", timeout=20)
            offer = parse(got.request.body)
            out["phone_offer_proto"] = offer.media[0].proto
            answer = rtp.answer(offer, [PCMU, TELEPHONE_EVENT_8000])
            phone.respond(got, 180, to_tag="ph")
            phone.respond(got, 200, to_tag="ph", body=answer.to_bytes())
            await wait_state(a, "in-call")
            tone = asyncio.ensure_future(rtp.send_tone(6.0))
            await wic_audio(a, out, "a_phone")
            out["phone_received"] = rtp.recorder.count
            await screenshot(a, "12-in-call-with-phone")
            await a.click("#hangup")
            await phone.next_request("BYE", timeout=10)
            await wait_state(a, "registered")
            tone.cancel()

            # --- the phone calls A back (RTP offer: the lab MRF interworks for the WIC)
            rtp2 = RtpPeer(PortAllocator(38100, 38199))
            await rtp2.open()
            request, final, _ = await phone.invite(
                "sip:alice@ims.test", rtp2.offer([PCMU, TELEPHONE_EVENT_8000]).to_bytes()
            )
            await wait_state(a, "incoming")
            out["a_incoming_from"] = await text(a, "#incoming-from")
            await screenshot(a, "13-incoming-from-phone")
            await a.click("#answer")
            response = await asyncio.wait_for(final, 20)
            out["phone_call_status"] = response.status
            rtp2.take(parse(response.body))
            dialog = await phone.ack_and_dialog(request, response)
            tone2 = asyncio.ensure_future(rtp2.send_tone(6.0))
            await wic_audio(a, out, "a_from_phone")
            out["phone2_received"] = rtp2.recorder.count
            out["phone_bye"] = (await phone.send_in(dialog, "BYE")).status
            await wait_state(a, "registered")
            tone2.cancel()
            rtp2.close()
            await screenshot(a, "14-after-phone-call")
            out["csp"] = [*(await csp_violations(a)), *(await csp_violations(b))]
            out["page_errors"] = [e for w in watches for e in w.errors]
            return out
        except Exception:
            await print_pages((a, b), watches)
            raise
        finally:
            rtp.close()
            await phone.close()


async def _shown(page: Any, selector: str) -> bool:
    return bool((await text(page, selector)).strip()) and await page.is_visible(selector)


async def _equals(page: Any, selector: str, value: str) -> bool:
    return await text(page, selector) == value


async def _contains(page: Any, selector: str, value: str) -> bool:
    return value in await text(page, selector)


async def _grows(page: Any, selector: str, minimum: float) -> bool:
    return await stat(page, selector) >= minimum


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="webims-gw-call-") as tmp:
        environ = dict(os.environ)
        environ["WEBIMS_STATE__DIR"] = tmp
        config = load_config(None, environ=environ)
        async with running_demo(config) as demo:
            return await asyncio.wait_for(scenario(demo.url, demo.icscf, Path(tmp) / "profile"), 240)


if __name__ == "__main__":
    import uvloop

    result = uvloop.run(main())
    sys.stdout.write(json.dumps(result) + "\n")
