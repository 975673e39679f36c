"""JsSIP (npm) in headless Debian Chromium registers over WSS and gets answers.

The page and JsSIP are served over HTTPS by a test aiohttp app that also carries
the SIP WebSocket route (the gateway shares the web server's port the same way).
The test fails, never skips, when Chromium, playwright or JsSIP is missing:
``scripts/setup.sh`` installs them.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from jsbundle import bundle
from sipwire import Responder

from webims.testing.browser import chromium, first_page, missing_chromium
from webims.transport import Source, TransportLayer, is_invalid_host, mount_websocket, server_context

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
PAGE = Path(__file__).with_name("web") / "jssip_page.html"
#: The test servers use a self-signed certificate (WSS included).
CHROMIUM_ARGS = ("--ignore-certificate-errors",)


def _require_browser() -> None:
    why = missing_chromium()
    if why is not None:
        pytest.fail(why, pytrace=False)
    if not (NODE_MODULES / "jssip" / "package.json").exists():
        pytest.fail(f"JsSIP is missing in {NODE_MODULES}: run `npm install` in {ROOT} "
                    "(scripts/setup.sh does)", pytrace=False)


def jssip_app(page: Path) -> web.Application:
    """An app serving ``page`` at / and the JsSIP bundle at /jssip.js (fails when a tool is missing)."""
    _require_browser()
    return script_app(page, "/jssip.js", bundle(NODE_MODULES, "jssip", "JsSIP"))


def script_app(page: Path, path: str, script: str) -> web.Application:
    """An app serving ``page`` at / and ``script`` (a SIP library's bundle) at ``path``."""
    page_html = page.read_text()

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page_html, content_type="text/html")

    async def library(request: web.Request) -> web.Response:
        return web.Response(text=script, content_type="application/javascript")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get(path, library)
    return app


class BrowserSetup:
    """An HTTPS aiohttp app serving the page, JsSIP and the SIP WebSocket route."""

    def __init__(self, certs: tuple[Path, Path], profile: Path) -> None:
        self.certs = certs
        self.profile = profile
        self.responder = Responder()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.origin = f"https://127.0.0.1:{self.port}"

    async def run(self, allowed_origins: list[str], steps: Any) -> None:
        app = jssip_app(PAGE)
        async with TransportLayer(self.responder) as layer:
            mount_websocket(app, layer, path="/sip", origins=allowed_origins, allow_same_origin=False)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.SockSite(runner, self.sock, ssl_context=server_context(*self.certs)).start()
            try:
                async with chromium(self.profile, args=CHROMIUM_ARGS, ignore_https_errors=True) as context:
                    page = await first_page(context)
                    await page.goto(f"{self.origin}/")
                    await steps(page)
            finally:
                await runner.cleanup()


async def _call(page: Any, expression: str, arg: object) -> Any:
    return await asyncio.wait_for(page.evaluate(expression, arg), 60)


@pytest.mark.browser
async def test_jssip_registers_and_sends_options_and_message_over_wss(
        certs: tuple[Path, Path], tmp_path: Path) -> None:
    setup = BrowserSetup(certs, tmp_path / "chromium-profile")

    async def steps(page: Any) -> None:
        state = await _call(page, "a => window.startUA(a[0], a[1])",
                            [f"wss://127.0.0.1:{setup.port}/sip", "sip:alice@ims.test"])
        assert state == "registered", await page.evaluate("window.events")
        assert await _call(page, "t => window.sendOptions(t)", "sip:bob@ims.test") == 200
        assert await _call(page, "a => window.sendMessage(a[0], a[1])",
                           ["sip:bob@ims.test", "hello from JsSIP"]) == 200
        events = await page.evaluate("window.events")
        assert events[:2] == ["connected", "registered 200"], events
        assert "options succeeded 200" in events and "message succeeded 200" in events

    await setup.run([setup.origin], steps)
    responder = setup.responder
    methods = [request.method for request, _ in responder.requests]
    assert methods == ["REGISTER", "OPTIONS", "MESSAGE"]
    register, conn = responder.requests[0]
    source: Source = conn.source
    assert (source.transport, source.origin, source.path) == ("WSS", setup.origin, "/sip")
    assert all(c is conn for _, c in responder.requests)  # one WebSocket carried everything
    via = register.top_via
    assert via.transport == "WSS" and is_invalid_host(via.host)  # RFC 7118 §5.2
    assert via.received == "127.0.0.1"  # §18.2.1 stamped by the transport
    assert responder.requests[2][0].body == b"hello from JsSIP"


@pytest.mark.browser
async def test_jssip_from_a_foreign_origin_is_refused(certs: tuple[Path, Path], tmp_path: Path) -> None:
    """The page's origin is not on the allowlist: Chromium's upgrade gets 403 and
    JsSIP never connects."""
    setup = BrowserSetup(certs, tmp_path / "chromium-profile")

    async def steps(page: Any) -> None:
        state = await _call(page, "a => window.startUA(a[0], a[1])",
                            [f"wss://127.0.0.1:{setup.port}/sip", "sip:alice@ims.test"])
        assert state == "disconnected"
        assert "connected" not in await page.evaluate("window.events")

    await setup.run(["https://wic.example.com"], steps)
    assert setup.responder.requests == [] and setup.responder.made == []
