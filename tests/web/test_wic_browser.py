"""The WIC in headless Chromium against real servers on loopback.

Each test serves the WIC from the client script server (strict CSP, the bundle
built by esbuild), with a test registrar on the same port's SIP WebSocket route
(tests/web/sipcore.py), and drives the page as a person would: clicks, typing,
the keyboard.  Every test asserts that the page hit no CSP violation and raised
no error, and saves screenshots of the UI states under test-artifacts/web/.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sipcore import WicRegistrar
from wictest import (
    PageWatch,
    chromium,
    csp_violations,
    free_socket,
    new_page,
    screenshot,
    wait_state,
    web_stack,
)

from webims.aka import join_sqn
from webims.auth import InvalidToken
from webims.auth.server import create_app as create_auth_app
from webims.auth.service import AuthService, ServiceSettings
from webims.sip.digest import parse_credentials
from webims.store import Store
from webims.transport import server_context
from webims.web import allow_cors
from webims.web.bundle import Assets

pytestmark = pytest.mark.browser

# TS 35.208 test set 1's K and OPc: the subscriber of the AKA test
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
PHONE = {"width": 390, "height": 844}  # a phone-sized viewport (CSS pixels)


async def assert_clean(page: Any, watch: PageWatch) -> None:
    """No CSP violation (event or console) and no uncaught error on the page."""
    assert await csp_violations(page) == []
    assert watch.csp_messages == []
    assert watch.errors == []


async def text(page: Any, selector: str) -> str:
    return str(await page.text_content(selector) or "")


async def sign_in_digest(page: Any, impu: str, password: str) -> None:
    await page.click("#tab-ims-digest")
    await page.fill("#digest-impu", impu)
    await page.fill("#digest-password", password)
    await page.click("#panel-ims-digest button[type=submit]")


async def test_login_page_runs_under_the_strict_csp(
        certs: tuple[Path, Path], assets: Assets, tmp_path: Path) -> None:
    async with web_stack(certs, assets, login_modes=("web-token", "ims-digest", "ims-aka"),
                         auth_issuer="https://127.0.0.1:9") as stack, \
            chromium(tmp_path / "profile") as browser:
        page, watch = await new_page(browser)
        response = await page.goto(stack.origin + "/")
        assert response is not None and response.status == 200
        headers = await response.all_headers()
        assert "script-src 'self'" in headers["content-security-policy"]
        await wait_state(page, "login")
        tabs = await page.eval_on_selector_all('[role="tab"]:not([hidden])', "els => els.map(e => e.id)")
        assert tabs == ["tab-web-token", "tab-ims-digest", "tab-ims-aka"]
        assert await page.get_attribute("#tab-web-token", "aria-selected") == "true"
        await screenshot(page, "01-login-web-account")
        await page.click("#tab-ims-digest")
        assert await page.is_visible("#digest-impu") and not await page.is_visible("#web-login")
        await screenshot(page, "02-login-ims-password")
        await page.click("#tab-ims-aka")
        await screenshot(page, "03-login-software-usim")
        # every form control has a label
        unlabelled = await page.evaluate("""() => Array.from(document.querySelectorAll('input, select'))
            .filter(el => !el.labels || el.labels.length === 0).map(el => el.id)""")
        assert unlabelled == []
        # form validation: a bad K is reported on the field, nothing is sent
        await page.fill("#aka-impu", "sip:alice@ims.test")
        await page.fill("#aka-k", "00112233")
        await page.fill("#aka-opc", "00" * 16)
        await page.click("#panel-ims-aka button[type=submit]")
        assert "K must be 32 hexadecimal digits" in await text(page, "#error")
        assert await page.get_attribute("#aka-k", "aria-invalid") == "true"
        assert await page.evaluate("document.activeElement.id") == "aka-k"
        await page.set_viewport_size(PHONE)
        await page.click("#tab-ims-digest")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "the page scrolls sideways on a phone"
        await screenshot(page, "04-login-phone-size")
        await assert_clean(page, watch)
    assert "csp_violations_total{" not in stack.metrics.render()  # no CSP report reached the server


async def test_digest_registration_errors_and_call_failure_reasons(
        certs: tuple[Path, Path], assets: Assets, tmp_path: Path) -> None:
    registrar = WicRegistrar("digest", passwords={"alice@ims.test": "alice-secret"})
    async with web_stack(certs, assets, on_register=registrar.handle) as stack, \
            chromium(tmp_path / "profile") as browser:
        page, watch = await new_page(browser)
        await page.goto(stack.origin + "/")
        await wait_state(page, "login")
        await sign_in_digest(page, "sip:alice@ims.test", "wrong-password")
        await page.wait_for_selector('body[data-reg="failed"]')
        assert "Registration failed: 403 Forbidden (response does not match)" in await text(page, "#error")
        assert await page.get_attribute("#reg-badge", "data-reg") == "failed"
        await screenshot(page, "05-registration-failed")

        await page.fill("#digest-password", "alice-secret")
        await page.click("#panel-ims-digest button[type=submit]")
        await wait_state(page, "registered")
        assert await text(page, "#reg-text") == "Registered"
        assert await page.evaluate("document.activeElement.id") == "target"
        await screenshot(page, "06-registered")

        # a call to nobody: the registrar answers 480, the reason is shown
        await page.fill("#target", "bob")
        await page.press("#target", "Enter")
        await page.locator("#error").filter(has_text="480").wait_for(timeout=20_000)
        assert "Call failed: 480 Temporarily Unavailable" in await text(page, "#error")
        await wait_state(page, "registered")
        await screenshot(page, "07-call-failed-480")
        await assert_clean(page, watch)

        await page.click("#logout")
        await wait_state(page, "login")
    first, _, third = registrar.requests[:3]
    assert registrar.authorizations[0] is None  # JsSIP registers, gets challenged...
    creds = parse_credentials(registrar.authorizations[1] or "")
    assert (creds.username, creds.realm, creds.uri, creds.algorithm) == (
        "alice@ims.test", "ims.test", "sip:ims.test", "MD5")
    assert str(first.to.uri) == "sip:alice@ims.test"
    assert first.top_via.transport == "WSS"
    assert "+sip.instance" in (third.headers.get("contact") or "")
    last = registrar.requests[-1]  # log out: de-registration
    assert last.expires == 0 or "expires=0" in (last.headers.get("contact") or "")


async def test_software_usim_registers_with_aka_after_resynchronisation(
        certs: tuple[Path, Path], assets: Assets, tmp_path: Path) -> None:
    """The network's SQN is far ahead of the new USIM's (more than Annex C's delta): the
    USIM answers with AUTS, the registrar resynchronises, the next challenge passes."""
    registrar = WicRegistrar("aka", k=K, opc=OPC, sqn_he=join_sqn(1 << 30, 3))
    async with web_stack(certs, assets, on_register=registrar.handle) as stack, \
            chromium(tmp_path / "profile") as browser:
        page, watch = await new_page(browser)
        await page.goto(stack.origin + "/")
        await wait_state(page, "login")
        await page.click("#tab-ims-aka")
        await page.fill("#aka-impu", "sip:alice@ims.test")
        await page.fill("#aka-impi", "alice@ims.test")
        await page.fill("#aka-k", K.hex())
        await page.fill("#aka-opc", OPC.hex().upper())
        await page.click("#panel-ims-aka button[type=submit]")
        await wait_state(page, "registered")
        await screenshot(page, "08-registered-aka")
        log = await page.eval_on_selector_all("#log li", "els => els.map(e => e.textContent).join('\\n')")
        assert "resynchronising" in log
        await assert_clean(page, watch)
        # the USIM's sequence-number record survives in the browser profile
        seq = await page.evaluate("JSON.parse(localStorage.getItem('wic.usim.sqn.alice@ims.test'))")
        assert max(seq) > 0
    assert registrar.resyncs == 1
    initial = registrar.authorizations[0] or ""
    assert 'username="alice@ims.test"' in initial and 'nonce=""' in initial  # TS 24.229 §5.1.1.2.1
    sync = parse_credentials(registrar.authorizations[1] or "")
    assert sync.auts is not None and sync.algorithm == "AKAv1-MD5"
    final = parse_credentials(registrar.authorizations[2] or "")
    assert final.auts is None and final.algorithm == "AKAv1-MD5" and final.username == "alice@ims.test"
    assert len(registrar.bindings) == 1


@contextlib.asynccontextmanager
async def auth_server(tmp_path: Path, certs: tuple[Path, Path], sock: Any,
                      wic_origin: str) -> AsyncIterator[AuthService]:
    """webims.auth on its own origin, letting the WIC's origin read its token endpoint."""
    port = sock.getsockname()[1]
    service = AuthService(Store(tmp_path / "auth.sqlite3"), ServiceSettings(
        issuer=f"https://127.0.0.1:{port}", wic_redirect_uris=(wic_origin + "/",),
        password_time_cost=1, password_memory_kib=1024))
    service.users.add("alice", "alice-web-password")
    service.users.map("alice", impi="alice@ims.test", impus=["sip:alice@ims.test", "tel:+15550100"])
    app = create_auth_app(service)
    allow_cors(app, [wic_origin])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=server_context(*certs)).start()
    try:
        yield service
    finally:
        await runner.cleanup()
        service.store.close()


async def test_pkce_login_then_bearer_registration(
        certs: tuple[Path, Path], assets: Assets, tmp_path: Path) -> None:
    auth_sock = free_socket()
    issuer = f"https://127.0.0.1:{auth_sock.getsockname()[1]}"
    verified: list[Any] = []
    service_box: list[AuthService] = []

    async def check(token: str) -> str | None:
        try:
            identity = await service_box[0].verifier().verify(token, scope="register")
        except InvalidToken as exc:
            return str(exc)
        verified.append(identity)
        return None

    registrar = WicRegistrar("bearer", bearer_check=check)
    async with web_stack(certs, assets, on_register=registrar.handle, auth_issuer=issuer,
                         login_modes=("web-token", "ims-digest")) as stack, \
            auth_server(tmp_path, certs, auth_sock, stack.origin) as service, \
            chromium(tmp_path / "profile") as browser:
        service_box.append(service)
        page, watch = await new_page(browser)
        await page.goto(stack.origin + "/")
        await wait_state(page, "login")
        await page.click("#web-login")
        await page.wait_for_url(f"{issuer}/authorize?*")
        assert "code_challenge_method=S256" in page.url and "code_challenge=" in page.url
        await page.fill("#username", "alice")
        await page.fill("#password", "alice-web-password")
        await screenshot(page, "09-authorization-server-login")
        await page.click("button[type=submit]")
        await page.wait_for_url(stack.origin + "/*")
        await wait_state(page, "registered")
        assert page.url == stack.origin + "/"  # code and state removed from the address bar
        assert await page.get_attribute("body", "data-token") == "present"
        token = await page.evaluate("window.webimsWic.token.access_token")
        assert token.count(".") == 2  # an RFC 9068 JWT
        assert await text(page, "#identity") == "sip:alice@ims.test"
        await screenshot(page, "10-registered-web-token")
        await assert_clean(page, watch)
        # a reload keeps the tab's token (sessionStorage) and registers again without a login
        await page.reload()
        await wait_state(page, "registered")
        await assert_clean(page, watch)
    bearer = registrar.authorizations[0] or ""
    assert bearer == f"Bearer {token}"  # RFC 8898 Authorization: Bearer on REGISTER
    assert verified and verified[0].sub == "alice" and "sip:alice@ims.test" in verified[0].impus
    assert str(registrar.requests[0].to.uri) == "sip:alice@ims.test"


async def test_keyboard_only_use_of_the_main_controls(
        certs: tuple[Path, Path], assets: Assets, tmp_path: Path) -> None:
    registrar = WicRegistrar("digest", passwords={"carol@ims.test": "carol-secret"})
    async with web_stack(certs, assets, on_register=registrar.handle) as stack, \
            chromium(tmp_path / "profile") as browser:
        page, watch = await new_page(browser)
        await page.goto(stack.origin + "/")
        await wait_state(page, "login")

        async def tab_to(element_id: str, limit: int = 25) -> list[str]:
            seen = []
            for _ in range(limit):
                await page.keyboard.press("Tab")
                focused = await page.evaluate("document.activeElement.id || document.activeElement.tagName")
                seen.append(focused)
                if focused == element_id:
                    return seen
            raise AssertionError(f"Tab never reached #{element_id}: {seen}")

        seen = await tab_to("tab-ims-digest")
        assert seen[0] == "" or seen[0] in ("A", "main")  # the skip link comes first
        # tabs: arrow keys move between them (roving tabindex), one Tab stop for the list
        await page.keyboard.press("ArrowRight")
        assert await page.evaluate("document.activeElement.id") == "tab-ims-aka"
        await page.keyboard.press("ArrowLeft")
        assert await page.get_attribute("#tab-ims-digest", "aria-selected") == "true"
        await tab_to("digest-impu")
        await page.keyboard.type("carol@ims.test")  # without sip: the WIC adds it
        await tab_to("digest-password")
        await page.keyboard.type("carol-secret")
        await page.keyboard.press("Enter")
        await wait_state(page, "registered")
        assert await page.evaluate("document.activeElement.id") == "target"  # focus moved to the dialer
        await page.keyboard.type("+1555")
        order = await tab_to("call")
        assert order[:2] == ["backspace", ""] or order[0] == "backspace"
        keys = await page.eval_on_selector_all("#dialpad button", "els => els.map(e => e.dataset.key)")
        assert keys == list("123456789*0#")
        await page.focus('#dialpad button[data-key="0"]')
        await page.keyboard.press("Enter")
        await page.keyboard.press("Space")
        assert await page.input_value("#target") == "+155500"
        await page.focus("#backspace")
        await page.keyboard.press("Enter")
        assert await page.input_value("#target") == "+15550"
        await page.focus("#call")
        await page.keyboard.press("Enter")  # a call that fails with 480: the reason is announced
        await page.locator("#error").filter(has_text="480").wait_for(timeout=20_000)
        assert await page.get_attribute("#error", "role") == "alert"
        assert await page.get_attribute("#status", "aria-live") == "polite"
        await screenshot(page, "11-keyboard-focus")
        await assert_clean(page, watch)
    assert str(registrar.requests[0].to.uri) == "sip:carol@ims.test"
