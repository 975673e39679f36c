"""JsSIP (npm) in headless Debian Chromium registers through the gateway with the lab IMS core.

- ``ims-digest`` relay: JsSIP answers the S-CSCF's Digest challenge itself (``password``);
- ``web-token``: JsSIP's ``authorization_jwt`` puts ``Authorization: Bearer <token>`` on
  every request (RFC 8898); the gateway registers the user with TNA.

The page, JsSIP and the SIP WebSocket share one HTTPS port (the gateway mounted on the
web server's app), so the page's origin is the server's own. The tests fail, never
skip, when Chromium, playwright or JsSIP is missing (``scripts/setup.sh`` installs them).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import PASSWORDS, gateway_config, token_for
from test_gateway_modes import eventually
from wicclient import Wic, bearer

from webims.auth.service import AuthService
from webims.gateway.core import Gateway
from webims.gateway.run import running_gateway
from webims.labcore import LabCore
from webims.transport import server_context

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "transport"))
from test_jssip_browser import (  # type: ignore[import-not-found]  # noqa: E402
    CHROMIUM_ARGS,
    jssip_app,
)

from webims.testing.browser import chromium, first_page  # noqa: E402

PAGE = Path(__file__).with_name("web") / "jssip_gateway.html"


async def with_browser(
    gateway: Gateway,
    certs: tuple[Path, Path],
    profile: Path,
    steps: Callable[[Any, str], Awaitable[None]],
    app: web.Application | None = None,
) -> None:
    """``steps(page, wss_url)`` in Chromium on a page served by ``app`` (JsSIP's by default)."""
    app = jssip_app(PAGE) if app is None else app
    async with running_gateway(gateway, ssl_context=server_context(*certs), app=app) as server:
        origin = server.url.rsplit("/sip", 1)[0].replace("wss://", "https://")
        async with chromium(profile, args=CHROMIUM_ARGS, ignore_https_errors=True) as context:
            page = await first_page(context)
            await page.goto(f"{origin}/")
            await steps(page, server.url)


async def call(page: Any, expression: str, arg: object = None) -> Any:
    return await asyncio.wait_for(page.evaluate(expression, arg), 60)


def contacts(core: LabCore, impu: str) -> list[Any]:
    reg = core.scscf.registration(impu)
    return list(reg.bindings.values()) if reg is not None else []


@pytest.mark.browser
async def test_jssip_ims_digest_relay(
    core: LabCore, auth: AuthService, certs: tuple[Path, Path], tmp_path: Path
) -> None:
    gateway = Gateway(gateway_config(core.icscf_uri), auth=auth)

    async def steps(page: Any, url: str) -> None:
        state = await call(page, "a => window.startUA(a[0], a[1])", [url, {
            "uri": "sip:bob@ims.test", "authorization_user": "bob@ims.test", "password": PASSWORDS["bob"],
        }])  # fmt: skip
        assert state == "registered", await page.evaluate("window.events")
        (binding,) = list(gateway.bindings)
        assert binding.mode == "ims-digest" and binding.impu == "sip:bob@ims.test"
        (contact,) = contacts(core, "sip:bob@ims.test")
        assert contact.instance is not None and contact.reg_id == 1  # JsSIP uses RFC 5626 outbound
        assert await call(page, "() => window.unregister()", None) == "unregistered"
        await eventually(lambda: contacts(core, "sip:bob@ims.test") == [])

    await with_browser(gateway, certs, tmp_path / "profile", steps)


@pytest.mark.browser
async def test_jssip_web_token_with_authorization_jwt(
    core: LabCore, auth: AuthService, certs: tuple[Path, Path], tmp_path: Path
) -> None:
    gateway = Gateway(gateway_config(core.icscf_uri), auth=auth)
    token = token_for(auth, "dave")
    other = Wic  # a scripted WIC for erin, to exchange a MESSAGE with the browser

    async def steps(page: Any, url: str) -> None:
        state = await call(page, "a => window.startUA(a[0], a[1])", [url, {
            "uri": "sip:dave@ims.test", "authorization_jwt": f"Bearer {token}",
        }])  # fmt: skip
        assert state == "registered", await page.evaluate("window.events")
        (binding,) = list(gateway.bindings)
        assert (binding.mode, binding.sub) == ("web-token", "dave")
        assert contacts(core, "sip:dave@ims.test")
        assert await page.evaluate("window.associated") == ["<sip:dave@ims.test>"]
        origin = url.rsplit("/sip", 1)[0].replace("wss://", "https://")
        erin = other(url, origin=origin, user="erin")
        await erin.connect()
        try:
            assert (await erin.register(headers=[bearer(token_for(auth, "erin"))])).status == 200
            assert (
                await call(page, "a => window.sendMessage(a[0], a[1])", ["sip:erin@ims.test", "hi erin"])
                == 200
            )
            got = await erin.wait_request("MESSAGE")
            assert got.body == b"hi erin" and got.headers.get("P-Asserted-Identity") == "<sip:dave@ims.test>"
            assert got.headers.get("Authorization") is None  # the Bearer token stays at the gateway
            reply = await erin.request(
                "MESSAGE", "sip:dave@ims.test", [("Content-Type", "text/plain")], b"hi dave"
            )
            assert reply.status == 200
            for _ in range(100):
                if await page.evaluate("window.messages") == ["hi dave"]:
                    break
                await asyncio.sleep(0.05)
            assert await page.evaluate("window.messages") == ["hi dave"]
        finally:
            await erin.close()

    await with_browser(gateway, certs, tmp_path / "profile", steps)
