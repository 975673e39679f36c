"""Two browser tabs call each other through the WWSF's SIP WebSocket and a minimal proxy.

Run by tests/web/test_wic_call.py inside a loopback-only network namespace
(webims.testing.netns), so that Chromium's ICE candidates are on 127.0.0.1 only.
Starts the client script server with the test registrar + proxy (sipcore.py) on
its /sip route and one headless Chromium with two tabs: alice and bob.  Scenario:
register both; alice calls bob, bob declines (603); alice calls, cancels before
the answer; alice calls, bob answers; audio flows both ways; hold and resume;
mute; DTMF as SIP INFO (shown at bob) and RFC 4733; bob hangs up.  Screenshots
of every state go to test-artifacts/web/.  Prints one JSON object on its last line.

    python call_worker.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from sipcore import WicProxy, WicRegistrar
from wictest import (
    PageWatch,
    chromium,
    csp_violations,
    print_pages,
    screenshot,
    text,
    wait_state,
    web_stack,
    wic_audio,
)

from webims.transport import ensure_self_signed
from webims.web.bundle import build_assets

PASSWORDS = {"alice@ims.test": "alice-secret", "bob@ims.test": "bob-secret"}


async def register(page: Any, origin: str, user: str) -> None:
    # WIC_DEBUG=1: JsSIP logs every SIP message to the console (printed on failure)
    await page.goto(origin + ("/?debug" if os.environ.get("WIC_DEBUG") else "/"))
    await wait_state(page, "login")
    await page.click("#tab-ims-digest")
    await page.fill("#digest-impu", f"sip:{user}@ims.test")
    await page.fill("#digest-password", PASSWORDS[f"{user}@ims.test"])
    await page.click("#panel-ims-digest button[type=submit]")
    await wait_state(page, "registered")


async def dial(page: Any, target: str) -> None:
    await page.fill("#target", target)
    await page.click("#call")


async def scenario(origin: str, profile: Path, proxy: WicProxy) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with chromium(profile) as browser:
        alice = browser.pages[0] if browser.pages else await browser.new_page()
        bob = await browser.new_page()
        watches = [PageWatch(alice), PageWatch(bob)]
        await register(alice, origin, "alice")
        await register(bob, origin, "bob")
        try:
            return await calls(alice, bob, watches, proxy, out)
        except Exception:
            await print_pages((alice, bob), watches, console=1000)
            raise


async def calls(alice: Any, bob: Any, watches: list[PageWatch], proxy: WicProxy,
                out: dict[str, Any]) -> dict[str, Any]:

    # 1. bob declines
    await dial(alice, "bob")
    await wait_state(bob, "incoming")
    out["incoming_focus"] = await bob.evaluate("document.activeElement.id")
    out["incoming_from"] = await text(bob, "#incoming-from")
    await wait_state(alice, "ringing")
    await screenshot(alice, "12-call-ringing")
    await screenshot(bob, "13-call-incoming")
    await bob.click("#reject")
    await wait_state(alice, "registered")
    out["declined"] = await text(alice, "#error")
    await screenshot(alice, "14-call-declined")

    # 2. alice cancels before bob answers
    await dial(alice, "bob")
    await wait_state(bob, "incoming")
    await wait_state(alice, "ringing")
    await alice.click("#hangup")
    await wait_state(alice, "registered")
    await wait_state(bob, "registered")
    out["cancelled_caller"] = await text(alice, "#status")
    out["cancelled_callee"] = await text(bob, "#status") + await text(bob, "#error")

    # 3. a call with audio, hold, mute, DTMF
    await dial(alice, "bob")
    await wait_state(bob, "incoming")
    await bob.keyboard.press("Enter")  # focus is on Answer
    await wait_state(bob, "in-call")
    await wait_state(alice, "in-call")
    await wic_audio(alice, out, "alice")
    await wic_audio(bob, out, "bob")
    await screenshot(alice, "15-in-call")
    await alice.select_option("#dtmf-method", "info")
    await alice.keyboard.press("1")  # focus is not in a text field: digits send DTMF
    await alice.click('#dialpad button[data-key="#"]')
    await alice.select_option("#dtmf-method", "rfc4733")
    await alice.click('#dialpad button[data-key="5"]')
    for _ in range(50):
        if await text(bob, "#dtmf-received") == "1#":
            break
        await asyncio.sleep(0.1)
    out["dtmf_sent"] = await text(alice, "#dtmf-sent")
    out["dtmf_received"] = await text(bob, "#dtmf-received")
    await alice.click("#mute")
    out["muted"] = await alice.get_attribute("#mute", "aria-pressed")
    await alice.click("#mute")
    await alice.click("#hold")
    await wait_state(alice, "on-hold")
    out["held_pressed"] = await alice.get_attribute("#hold", "aria-pressed")
    for _ in range(50):
        if "hold" in await text(bob, "#status"):
            break
        await asyncio.sleep(0.1)
    out["bob_sees_hold"] = await text(bob, "#status")
    await screenshot(alice, "16-on-hold")
    await alice.click("#hold")
    await wait_state(alice, "in-call")
    await screenshot(bob, "17-in-call-callee")
    await bob.set_viewport_size({"width": 390, "height": 844})
    await screenshot(bob, "18-in-call-phone-size")
    await bob.click("#hangup")
    await wait_state(alice, "registered")
    await wait_state(bob, "registered")
    out["hangup_seen"] = await text(alice, "#status")
    out["last_call"] = await text(alice, "#account-last")
    out["focus_after"] = await alice.evaluate("document.activeElement.id")
    await screenshot(alice, "19-after-call")
    out["csp"] = [*(await csp_violations(alice)), *(await csp_violations(bob))]
    out["console_csp"] = [m for w in watches for m in w.csp_messages]
    out["page_errors"] = [e for w in watches for e in w.errors]
    out["proxied"] = proxy.seen
    return out


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="webims-call-") as tmp:
        certs = ensure_self_signed(Path(tmp) / "tls")
        assets = build_assets(minify=True)
        registrar = WicRegistrar("digest", passwords=PASSWORDS)
        proxy = WicProxy(registrar)
        async with web_stack(certs, assets, on_register=proxy.handle) as stack:
            assert stack.endpoint is not None
            proxy.attach(stack.endpoint)
            return await asyncio.wait_for(scenario(stack.origin, Path(tmp) / "profile", proxy), 150)


if __name__ == "__main__":
    import uvloop

    result = uvloop.run(main())
    sys.stdout.write(json.dumps(result) + "\n")
