"""Helpers of the WIC tests: the client script server on loopback HTTPS (with a test
registrar on its SIP WebSocket route), headless Chromium, screenshots.

Chromium runs as the project's browser tests do (:mod:`webims.testing.browser`):
Debian's /usr/bin/chromium driven by Python playwright, a fresh profile per test,
fake audio devices.  A missing browser, playwright or npm package fails the test
(never a skip): ``scripts/setup.sh`` installs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from webims.endpoint import IncomingRequest, SipEndpoint
from webims.testing import browser
from webims.transport import mount_websocket, server_context
from webims.web.app import create_app
from webims.web.bundle import Assets
from webims.web.metrics import Metrics
from webims.web.settings import WebConfig

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
ARTIFACTS = ROOT / "test-artifacts" / "web"
#: The media flags, and: the loopback servers use a self-signed certificate (WSS included).
WIC_ARGS = (*browser.MEDIA_ARGS, "--ignore-certificate-errors")
#: Records every CSP violation the page sees (runs before the page's own scripts).
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def require_browser() -> None:
    why = browser.missing_chromium()
    if why is not None:
        pytest.fail(why, pytrace=False)
    needed = (NODE_MODULES / "jssip" / "package.json", NODE_MODULES / ".bin" / "esbuild")
    if not all(path.exists() for path in needed):
        pytest.fail(f"JsSIP or esbuild missing in {NODE_MODULES}: run scripts/setup.sh (npm install)",
                    pytrace=False)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclasses.dataclass
class Stack:
    """The WWSF on https://127.0.0.1:<port>/, the SIP WebSocket route at /sip."""

    origin: str
    port: int
    settings: WebConfig
    app: web.Application
    runner: web.AppRunner
    endpoint: SipEndpoint | None
    metrics: Metrics

    @property
    def wss_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/sip"


@contextlib.asynccontextmanager
async def web_stack(
    certs: tuple[Path, Path],
    assets: Assets,
    *,
    on_register: Callable[[IncomingRequest, float], Awaitable[None]] | None = None,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """Serve the WIC; with ``on_register``, a SipEndpoint on the same port at /sip."""
    sock = free_socket()
    port = sock.getsockname()[1]
    origin = f"https://127.0.0.1:{port}"
    values: dict[str, Any] = {
        "host": "127.0.0.1", "port": port, "public_url": origin, "wss_url": f"wss://127.0.0.1:{port}/sip",
        "login_modes": ("ims-digest", "ims-aka"),
    }
    values.update(overrides)
    settings = WebConfig(**values)
    metrics = Metrics()
    app = create_app(settings, assets, metrics=metrics)
    endpoint: SipEndpoint | None = None
    if on_register is not None:
        loop = asyncio.get_running_loop()
        handler = on_register

        async def on_request(incoming: IncomingRequest) -> None:
            await handler(incoming, loop.time())

        endpoint = SipEndpoint(on_request)
        mount_websocket(app, endpoint.transport, path="/sip", origins=[origin], allow_same_origin=False)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=server_context(*certs)).start()
    try:
        yield Stack(origin, port, settings, app, runner, endpoint, metrics)
    finally:
        await runner.cleanup()
        if endpoint is not None:
            await endpoint.close()


@contextlib.asynccontextmanager
async def chromium(profile: Path, *, viewport: dict[str, int] | None = None) -> AsyncIterator[Any]:
    """A fresh headless Chromium profile (a persistent context: its own --user-data-dir)."""
    require_browser()
    async with browser.chromium(
        profile, args=WIC_ARGS, ignore_https_errors=True, viewport=viewport or {"width": 1100, "height": 900},
        permissions=["microphone"],
    ) as context:
        await context.add_init_script(CSP_WATCH)
        yield context


class PageWatch:
    """Console errors, page errors and CSP messages of one page."""

    def __init__(self, page: Any) -> None:
        self.console: list[str] = []
        self.errors: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    @property
    def csp_messages(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m or "Content-Security-Policy" in m
                or "Trusted Type" in m or "Refused to" in m]


async def new_page(context: Any) -> tuple[Any, PageWatch]:
    page = await browser.first_page(context)
    return page, PageWatch(page)


async def shown(page: Any) -> list[str]:
    """What the WIC page shows: its state, status line, error line and log."""
    return list(await page.evaluate(
        "() => [document.body.dataset.state, document.getElementById('status').textContent, "
        "document.getElementById('error').textContent, "
        "Array.from(document.querySelectorAll('#log li')).map(li => li.textContent).join(' | ')]"))


async def print_pages(pages: Iterable[Any], watches: Iterable[PageWatch], console: int = 30) -> None:
    """On a failure: what each page shows and the last ``console`` lines of each, on stderr."""
    for page in pages:
        print(f"page state: {await shown(page)}", file=sys.stderr)
    print(f"console: {[w.console[-console:] for w in watches]}", file=sys.stderr)


async def wait_state(page: Any, state: str, timeout: float = 20_000) -> None:
    """Wait for body[data-state=state]; on timeout, fail with what the page shows."""
    try:
        await page.wait_for_selector(f'body[data-state="{state}"]', timeout=timeout)
    except Exception:
        raise AssertionError(f"page did not reach state {state!r}: {await shown(page)}") from None


#: ``await screenshot(page, name)``: test-artifacts/web/<name>.png (gitignored); returns its path.
screenshot = browser.Screenshots(ARTIFACTS)


async def csp_violations(page: Any) -> list[str]:
    return list(await page.evaluate("() => window.__cspViolations || []"))


async def text(page: Any, selector: str) -> str:
    return str(await page.text_content(selector) or "")


async def stat(page: Any, element: str) -> float:
    """A number of the WIC's call-quality panel (its ``data-value``)."""
    value = await page.get_attribute(element, "data-value")
    return float(value) if value else 0.0


async def wic_audio(
    page: Any, out: dict[str, Any], name: str, minimum: int = 100, seconds: float = 30.0
) -> None:
    """At least ``minimum`` packets each way at this WIC (its quality panel shows its getStats),
    then its counters, audio energy (totalAudioEnergy) and codec into ``out["<name>_..."]``."""
    try:
        await page.wait_for_function(
            f"() => Number(document.getElementById('q-received').dataset.value || 0) >= {minimum} && "
            f"Number(document.getElementById('q-sent').dataset.value || 0) >= {minimum}",
            timeout=seconds * 1000,
        )
    except Exception:
        shown = await text(page, "#quality")
        raise AssertionError(f"fewer than {minimum} packets at {name}: {shown}") from None
    out[f"{name}_received"] = await stat(page, "#q-received")
    out[f"{name}_sent"] = await stat(page, "#q-sent")
    out[f"{name}_energy"] = float(await page.get_attribute("#q-level", "data-energy") or 0)
    out[f"{name}_codec"] = await text(page, "#q-codec")
