"""A WIC in headless Chromium calls a SIPp phone on the IMS side, and is called back by it.

Run by tests/gateway/test_sipp_browser.py inside a loopback-only network namespace
(webims.testing.netns), so Chromium's ICE candidates are on 127.0.0.1 only. The whole
system runs as ``webims demo`` runs it (:func:`webims.demo.running_demo`: the lab IMS
core, the authorization function, the client script server, the gateway with its
session B2BUA and the embedded media IWF on one HTTPS port), with the demo users.

- SIPp registers to the lab core as ``sip:phone@ims.test`` through the I-CSCF with
  an MD5 digest (sipp/phone_register.xml, ``-au phone@ims.test -ap phone-secret``);
  every later SIPp run uses the same local port, the registered contact;
- the tab logs in as alice through the real login page (web-token: PKCE at the
  authorization function, Bearer token on REGISTER);
- (a) alice calls phone, SIPp answers 486 Busy Here (sipp/phone_busy_uas.xml): the
  page shows it;
- (b) alice calls phone, SIPp answers and echoes the RTP (``-rtp_echo``,
  sipp/phone_echo_uas.xml): the browser hears its own fake-device tone back through
  the gateway's IWF (Opus <-> PCMU), alice hangs up;
- (c) SIPp calls alice (sipp/phone_calls_alice_uac.xml), offering PCMA only, and
  plays g711a.pcap once answered: the tab shows the call, answers, hears it, then
  tells SIPp by a DTMF INFO that it has, and SIPp hangs up.

Screenshots in test-artifacts/gateway/sipp-*.png. Prints one JSON object last.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "web")]

from wictest import (  # type: ignore[import-not-found]  # noqa: E402
    PageWatch,
    chromium,
    csp_violations,
    shown,
    text,
    wait_state,
    wic_audio,
)

from webims.config import load_config  # noqa: E402
from webims.demo import running_demo  # noqa: E402
from webims.testing.browser import Screenshots  # noqa: E402
from webims.testing.ports import free_port, free_port_block  # noqa: E402
from webims.testing.sipp import Sipp  # noqa: E402

SCENARIOS = HERE / "sipp"
ARTIFACTS = HERE.parents[1] / "test-artifacts" / "gateway"
PCAP = Path("/usr/share/sip-tester/g711a.pcap")
SIPP_SECONDS = 60  # each SIPp run's own bound (-timeout); the worker waits 10 s more


def sipp_run(work: Path, scenario: str, *, port: int, media_port: int, **options: Any) -> Sipp:
    """One bounded SIPp run (``-m 1``, ``-timeout``) of a scenario of tests/gateway/sipp/, as the phone."""
    extra = ("-t", "u1", *options.pop("extra", ()))
    return Sipp(
        work, Path(scenario).stem, SCENARIOS / scenario, service="phone", local_port=port,
        media_port=media_port, extra=extra, timeout=SIPP_SECONDS, wait_bound=True, **options,
    )  # fmt: skip


async def passed(run: Sipp) -> str:
    """SIPp's messages log; raises with its report unless it passed (exit status 0)."""
    result = await run.finish_async()
    if not result.ok:
        raise AssertionError(f"{run.name} failed:\n{result.report()}")
    return result.messages


screenshot = Screenshots(ARTIFACTS, prefix="sipp-")


async def until(page: Any, check: str, what: str, seconds: float = 20.0) -> None:
    """Wait until the JavaScript expression ``check`` is true on the page."""
    try:
        await page.wait_for_function(check, timeout=seconds * 1000)
    except Exception:
        raise AssertionError(f"not reached: {what}; page shows {await shown(page)}") from None


def sip_hostport(uri: str) -> tuple[str, int]:
    match = re.search(r"sip:(?:[^@;>]+@)?([0-9.]+)(?::([0-9]+))?", uri)
    if match is None:
        raise AssertionError(f"not a sip URI with an IPv4 host: {uri!r}")
    return match.group(1), int(match.group(2) or 5060)


async def scenario(url: str, icscf: str, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    port = free_port()  # the phone's SIP port: its registered contact, for every SIPp run
    media_first, _ = free_port_block(10, udp=True)
    icscf_at = sip_hostport(icscf)
    runs: list[Sipp] = []

    def sipp(scenario: str, **kwargs: Any) -> Sipp:
        run = sipp_run(work, scenario, port=port, **kwargs)
        runs.append(run)
        run.start()
        return run

    # --- SIPp registers as sip:phone@ims.test (MD5 digest) through the I-CSCF
    register = sipp(
        "phone_register.xml",
        remote=icscf_at,
        media_port=media_first,
        extra=("-au", "phone@ims.test", "-ap", "phone-secret"),
    )
    messages = await passed(register)
    routes = re.findall(r"^Service-Route:\s*(\S.*?)\s*$", messages, re.MULTILINE)
    assert routes, f"no Service-Route in the 200 to REGISTER:\n{messages[-3000:]}"
    out["service_route"] = routes[-1]
    out["register_challenge"] = "algorithm=MD5" in messages.replace('"', "")

    async with chromium(work / "profile") as browser:
        page = browser.pages[0] if browser.pages else await browser.new_page()
        watch = PageWatch(page)
        try:
            # --- alice logs in with her web account (PKCE, Bearer token on REGISTER)
            await page.goto(url)
            await wait_state(page, "login")
            await page.click("#web-login")
            await page.wait_for_url("**/authorize?*")
            await screenshot(page, "01-login-page")
            await page.fill("#username", "alice")
            await page.fill("#password", "alice")
            await page.click("button[type=submit]")
            await wait_state(page, "registered")
            out["identity"] = await text(page, "#identity")
            await screenshot(page, "02-registered")

            # --- (a) the phone is busy: 486 Busy Here, the page says so
            busy = sipp("phone_busy_uas.xml", remote=icscf_at, media_port=media_first)
            await page.fill("#target", "phone")
            await page.click("#call")
            await until(
                page,
                "() => !document.getElementById('error').hidden && "
                "document.getElementById('error').textContent.trim() !== ''",
                "the busy answer shown",
            )
            out["busy_error"] = await text(page, "#error")
            out["busy_error_visible"] = await page.is_visible("#error")
            await screenshot(page, "03-busy")
            await wait_state(page, "registered")
            await passed(busy)

            # --- (b) the phone answers and echoes: the browser hears its own tone back
            echo = sipp(
                "phone_echo_uas.xml", remote=icscf_at, media_port=media_first + 2, extra=("-rtp_echo",)
            )
            await page.fill("#target", "phone")
            await page.click("#call")
            await wait_state(page, "in-call", timeout=30_000)
            await wic_audio(page, out, "echo")
            await screenshot(page, "04-in-call-echo")
            await page.click("#hangup")
            await wait_state(page, "registered")
            out["echo_hangup_status"] = await text(page, "#status")
            await passed(echo)

            # --- (c) the phone calls alice back with PCMA and a recording; it hangs up
            route_at = sip_hostport(out["service_route"])
            callback = sipp(
                "phone_calls_alice_uac.xml", remote=route_at, media_port=media_first + 6,
                keys={"route": out["service_route"], "callee": "alice@ims.test"},
            )  # fmt: skip
            await wait_state(page, "incoming", timeout=30_000)
            out["incoming_from"] = await text(page, "#incoming-from")
            await screenshot(page, "05-incoming-from-phone")
            await page.click("#answer")
            await wait_state(page, "in-call", timeout=30_000)
            await wic_audio(page, out, "callback")
            await screenshot(page, "06-in-call-from-phone")
            await page.select_option("#dtmf-method", "info")
            await page.click('#dialpad button[data-key="#"]')  # "heard it": SIPp hangs up
            await wait_state(page, "registered", timeout=30_000)
            out["callback_end_status"] = await text(page, "#status")
            await screenshot(page, "07-phone-hung-up")
            callback_log = await passed(callback)
            out["callback_sipp_sent_bye"] = bool(re.search(r"^BYE sip:", callback_log, re.MULTILINE))
            out["csp"] = await csp_violations(page)
            out["page_errors"] = watch.errors
            return out
        except Exception:
            print(f"page shows: {await shown(page)}", file=sys.stderr)
            print(f"console: {watch.console[-40:]}", file=sys.stderr)
            for run in runs:
                print(f"--- {run.name} messages:\n{run.messages_log()[-4000:]}", file=sys.stderr)
            raise
        finally:
            for run in runs:
                run.stop()


async def main() -> dict[str, Any]:
    if not PCAP.exists():
        raise RuntimeError(f"{PCAP} is missing: apt-get install sip-tester")
    with tempfile.TemporaryDirectory(prefix="webims-sipp-browser-") as tmp:
        # in os.environ, not only in load_config's environ: running_demo reloads the
        # config from os.environ (webims.demo.demo_config)
        os.environ["WEBIMS_STATE__DIR"] = tmp
        config = load_config(None)
        async with running_demo(config) as demo:
            return await asyncio.wait_for(scenario(demo.url, demo.icscf, Path(tmp)), 200)


if __name__ == "__main__":
    import uvloop

    result = uvloop.run(main())
    sys.stdout.write(json.dumps(result) + "\n")
