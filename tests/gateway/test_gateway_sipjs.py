"""SIP.js (npm ``sip.js`` 0.21.2) in headless Debian Chromium registers through the gateway
with the lab IMS core.

- ``ims-digest`` relay: the ``UserAgent``'s ``authorizationUsername`` /
  ``authorizationPassword`` answer the S-CSCF's Digest challenge (RFC 3261 §22.2);
  the ``Registerer``'s ``regId`` with the UA's ``instanceId`` make an RFC 5626 outbound
  Contact (SIP.js sends neither by default: ``regId`` 0, see the web-token test);
- ``web-token``: ``Authorization: Bearer <token>`` (RFC 8898 §2.2) in the Registerer's
  ``extraHeaders``; the gateway registers the user with Trusted Node Authentication;
- a bad token (expired, forged signature, another user's): the gateway's 401/403 with
  a reason reaches SIP.js's ``onReject`` and nothing is registered anywhere;
- MESSAGE (RFC 3428) both ways with a scripted WIC, and flow recovery (RFC 5626) when
  SIP.js reconnects and registers again on a new WebSocket.

SIP.js 0.21 ships ES modules only (``lib/*.js``, ``"type": "module"``): the page gets
them bundled by the checkout's esbuild (root ``package.json``) as the global ``SIP``.
The page records every message SIP.js wrote on and read from the WebSocket (its
``traceSip`` log), so the tests check the REGISTER bytes the gateway received. The page,
SIP.js and the SIP WebSocket share one HTTPS port (the gateway mounted on the web
server's app). The tests fail, never skip, when Chromium, playwright, esbuild or
sip.js is missing (``scripts/setup.sh`` installs them).
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import PASSWORDS, gateway_config, token_for
from test_gateway_jssip import call, with_browser
from test_gateway_modes import eventually
from test_jssip_browser import script_app  # type: ignore[import-not-found]  # tests/transport, on the path
from wicclient import Wic
from wicclient import bearer as bearer_header

from webims.auth.service import AuthService
from webims.gateway.core import Gateway
from webims.labcore import LabCore
from webims.sip import Request, Response, parse
from webims.sip.auth_header import parse_challenge, parse_credentials
from webims.testing.browser import missing_chromium
from webims.web.bundle import BuildError, find_esbuild, run_esbuild

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
PAGE = Path(__file__).with_name("web") / "sipjs_gateway.html"
TRACE = PAGE.with_name("sipjs_trace.js")
INSTANCE = "3f9c1a52-6b0e-4d8a-9a57-0c1d2e3f4a5b"  # the UA's instanceId (RFC 4122 UUID)


@functools.cache
def sipjs_bundle() -> str:
    """sip.js's ES modules as one browser script defining ``window.SIP`` (esbuild IIFE),
    followed by the pages' SIP trace capture (web/sipjs_trace.js)."""
    entry = NODE_MODULES / "sip.js" / "lib" / "index.js"
    if not entry.is_file():
        pytest.fail(
            f"sip.js is missing in {NODE_MODULES}: run `npm install` in {ROOT} (scripts/setup.sh does)",
            pytrace=False,
        )
    with tempfile.TemporaryDirectory(prefix="webims-sipjs-") as out:
        outfile = Path(out) / "sip.js"
        try:
            run_esbuild(find_esbuild(ROOT), entry, ["--format=iife", "--global-name=SIP", "--target=es2020",
                                                    f"--outfile={outfile}"])  # fmt: skip
        except BuildError as exc:
            pytest.fail(str(exc), pytrace=False)
        script = outfile.read_text()
    assert "UserAgent" in script, "esbuild's sip.js bundle has no UserAgent"
    return script + "\n" + TRACE.read_text()


def sipjs_app() -> web.Application:
    """An app serving the page at / and the SIP.js bundle at /sip.js (fails when a tool is missing)."""
    why = missing_chromium()
    if why is not None:
        pytest.fail(why, pytrace=False)
    app: web.Application = script_app(PAGE, "/sip.js", sipjs_bundle())
    return app


async def with_sipjs(
    gateway: Gateway, certs: tuple[Path, Path], profile: Path, steps: Callable[[Any, str], Awaitable[None]]
) -> None:
    await with_browser(gateway, certs, profile, steps, app=sipjs_app())


async def start(page: Any, url: str, options: dict[str, Any]) -> None:
    state = await call(page, "a => window.startUA(a[0], a[1])", [url, options])
    assert state == "Connected", await page.evaluate("window.events")


async def register_with_bearer(page: Any, url: str, token: str, **options: Any) -> dict[str, Any]:
    """dave's SIP.js UA with ``Authorization: Bearer <token>`` in the Registerer's
    ``extraHeaders`` (RFC 8898) sends its REGISTER; the result SIP.js got."""
    extra = [f"Authorization: Bearer {token}"]
    await start(page, url, {"uri": "sip:dave@ims.test", "extraHeaders": extra, **options})
    result: dict[str, Any] = await call(page, "() => window.register()")
    return result


async def sent(page: Any, method: str) -> list[Request]:
    """The ``method`` requests SIP.js wrote on the WebSocket (what the gateway read), parsed by webims."""
    found = []
    for text in await page.evaluate("window.sent"):
        message = parse(text.encode())
        if isinstance(message, Request) and message.method == method:
            found.append(message)
    return found


async def challenges(page: Any) -> list[str]:
    """The Digest nonces of the 401s SIP.js read from the WebSocket."""
    nonces = []
    for text in await page.evaluate("window.received"):
        message = parse(text.encode())
        if isinstance(message, Response) and message.status == 401:
            challenge = parse_challenge(message.headers.get("WWW-Authenticate") or "")
            nonces.append(challenge.param("nonce") or "")
    return nonces


def contacts(core: LabCore, impu: str) -> list[Any]:
    reg = core.scscf.registration(impu)
    return list(reg.bindings.values()) if reg is not None else []


def registered(result: dict[str, Any], events: Any) -> None:
    """SIP.js took a 2xx to its REGISTER: the Registerer is Registered."""
    assert (result["status"], result["state"]) == (200, "Registered"), (result, events)


@pytest.mark.browser
async def test_sipjs_ims_digest_relay_with_outbound(
    core: LabCore, auth: AuthService, certs: tuple[Path, Path], tmp_path: Path
) -> None:
    gateway = Gateway(gateway_config(core.icscf_uri), auth=auth)
    instance = f"urn:uuid:{INSTANCE}"

    async def steps(page: Any, url: str) -> None:
        await start(page, url, {
            "uri": "sip:bob@ims.test", "authorizationUsername": "bob@ims.test",
            "authorizationPassword": PASSWORDS["bob"], "instanceId": INSTANCE, "regId": 1,
        })  # fmt: skip
        registered(await call(page, "() => window.register()"), await page.evaluate("window.events"))
        first, second = await sent(page, "REGISTER")  # unauthenticated, then the Digest answer
        assert first.headers.get("Authorization") is None
        assert (first.headers.get("User-Agent") or "").startswith("SIP.js/")
        cred = parse_credentials(second.headers.get("Authorization") or "")
        assert cred.is_digest and cred.param("username") == "bob@ims.test"
        assert cred.param("realm") == "ims.test"
        assert cred.param("nonce") == (await challenges(page))[0]  # the S-CSCF's challenge, relayed
        contact = second.headers.get("Contact") or ""
        assert f';reg-id=1;+sip.instance="<{instance}>";expires=600' in contact  # RFC 5626 §4.2
        (binding,) = list(gateway.bindings)
        assert (binding.mode, binding.impu) == ("ims-digest", "sip:bob@ims.test")
        assert binding.impi == "bob@ims.test"
        assert (binding.instance, binding.reg_id) == (instance, 1)
        (at_scscf,) = contacts(core, "sip:bob@ims.test")
        assert (at_scscf.impi, at_scscf.instance, at_scscf.reg_id) == ("bob@ims.test", instance, 1)
        result = await call(page, "() => window.unregister()")
        assert (result["status"], result["state"]) == (200, "Unregistered"), result
        last = (await sent(page, "REGISTER"))[-1]
        assert (last.headers.get("Contact") or "").endswith(";expires=0")
        # SIP.js first repeats its old Authorization; the S-CSCF challenges that, and the
        # gateway relays the new challenge, which SIP.js answers.
        nonce = parse_credentials(last.headers.get("Authorization") or "").param("nonce")
        assert nonce in await challenges(page)
        await eventually(lambda: contacts(core, "sip:bob@ims.test") == [])
        assert not list(gateway.bindings)

    await with_sipjs(gateway, certs, tmp_path / "profile", steps)


@pytest.mark.browser
async def test_sipjs_web_token_bearer_in_extra_headers(
    core: LabCore, auth: AuthService, certs: tuple[Path, Path], tmp_path: Path
) -> None:
    gateway = Gateway(gateway_config(core.icscf_uri), auth=auth)
    token = token_for(auth, "dave")

    async def steps(page: Any, url: str) -> None:
        result = await register_with_bearer(page, url, token)
        registered(result, await page.evaluate("window.events"))
        assert result["associated"] == ["<sip:dave@ims.test>"]  # from the token's mapping
        (register,) = await sent(page, "REGISTER")  # no challenge: the token is enough
        assert register.headers.get("Authorization") == f"Bearer {token}"
        contact = register.headers.get("Contact") or ""
        assert "+sip.instance" not in contact and "reg-id" not in contact  # SIP.js's default: regId 0
        (binding,) = list(gateway.bindings)
        assert (binding.mode, binding.sub, binding.impu) == ("web-token", "dave", "sip:dave@ims.test")
        assert (binding.impi, binding.instance, binding.reg_id) == ("dave@ims.test", None, None)
        (at_scscf,) = contacts(core, "sip:dave@ims.test")
        assert at_scscf.impi == "dave@ims.test"
        # A refresh (same Call-ID, CSeq + 1, the Bearer again) keeps the one binding.
        registered(await call(page, "() => window.register()"), await page.evaluate("window.events"))
        sent_auth = [r.headers.get("Authorization") for r in await sent(page, "REGISTER")]
        assert sent_auth == [f"Bearer {token}"] * 2
        assert [b.id for b in gateway.bindings] == [binding.id]
        assert len(contacts(core, "sip:dave@ims.test")) == 1
        # SIP.js's unregister() does not repeat the Registerer's extraHeaders: the gateway
        # takes the de-REGISTER on the flow that registered the contact.
        result = await call(page, "() => window.unregister()")
        assert (result["status"], result["state"]) == (200, "Unregistered"), result
        last = (await sent(page, "REGISTER"))[-1]
        assert (last.headers.get("Contact") or "").endswith(";expires=0")
        assert last.headers.get("Authorization") is None
        await eventually(lambda: contacts(core, "sip:dave@ims.test") == [])
        assert not list(gateway.bindings)

    await with_sipjs(gateway, certs, tmp_path / "profile", steps)


@pytest.mark.browser
@pytest.mark.parametrize(
    ("case", "status", "error", "reason"),
    [
        ("expired", 401, "invalid_token", "expired"),
        ("forged", 401, "invalid_token", "bad signature"),
        ("other-user", 403, None, "not mapped"),
    ],
)
async def test_sipjs_bad_token_is_refused_and_nothing_registers(
    core: LabCore, auth: AuthService, certs: tuple[Path, Path], tmp_path: Path,
    case: str, status: int, error: str | None, reason: str,
) -> None:  # fmt: skip
    gateway = Gateway(gateway_config(core.icscf_uri), auth=auth)
    if case == "expired":
        token = token_for(auth, "dave", now=time.time() - 3600)
    elif case == "forged":
        head, payload, sig = token_for(auth, "dave").split(".")
        token = f"{head}.{payload}.{sig[:-4]}AAAA"
    else:
        token = token_for(auth, "erin")  # a good token, for someone else

    async def steps(page: Any, url: str) -> None:
        result = await register_with_bearer(page, url, token)
        assert (result["status"], result["state"]) == (status, "Unregistered"), result
        assert reason in result["reason"] or any(reason in w for w in result["warnings"]), result
        if status == 401:
            (challenge,) = (parse_challenge(c) for c in result["challenges"])
            assert challenge.is_bearer and challenge.param("error") == error  # RFC 8898 §2.1
            assert reason in (challenge.param("error_description") or "")
        (register,) = await sent(page, "REGISTER")  # SIP.js does not answer a Bearer challenge
        assert register.headers.get("Authorization") == f"Bearer {token}"
        assert not list(gateway.bindings)
        assert core.scscf.registration("sip:dave@ims.test") is None
        assert core.scscf.registration("sip:erin@ims.test") is None

    await with_sipjs(gateway, certs, tmp_path / "profile", steps)


@pytest.mark.browser
async def test_sipjs_message_to_and_from_a_scripted_wic(
    core: LabCore, auth: AuthService, certs: tuple[Path, Path], tmp_path: Path
) -> None:
    """RFC 3428 MESSAGE both ways between SIP.js (dave, web-token) and a scripted WIC (erin)."""
    gateway = Gateway(gateway_config(core.icscf_uri), auth=auth)
    token = token_for(auth, "dave")

    async def steps(page: Any, url: str) -> None:
        bearer = f"Authorization: Bearer {token}"
        registered(await register_with_bearer(page, url, token), await page.evaluate("window.events"))
        origin = url.rsplit("/sip", 1)[0].replace("wss://", "https://")
        erin = Wic(url, origin=origin, user="erin")
        await erin.connect()
        try:
            assert (await erin.register(headers=[bearer_header(token_for(auth, "erin"))])).status == 200
            # SIP.js's Messager with the Bearer in its extraHeaders (TS 24.371 §7.2.1: checked
            # for the "message" scope, then removed).
            args = ["sip:erin@ims.test", "hi erin", [bearer]]
            assert await call(page, "a => window.sendMessage(a[0], a[1], a[2])", args) == 200
            (message,) = await sent(page, "MESSAGE")
            assert message.headers.get("Authorization") == f"Bearer {token}"
            got = await erin.wait_request("MESSAGE")
            assert got.body == b"hi erin" and got.headers.get("P-Asserted-Identity") == "<sip:dave@ims.test>"
            assert got.headers.get("Authorization") is None  # the token stays at the gateway
            reply = await erin.request(
                "MESSAGE", "sip:dave@ims.test", [("Content-Type", "text/plain")], b"hi dave"
            )
            assert reply.status == 200  # SIP.js's delegate accepted it
            assert await page.evaluate("window.messages") == ["hi dave"]
            (incoming,) = [
                m for m in map(parse, (t.encode() for t in await page.evaluate("window.received")))
                if isinstance(m, Request) and m.method == "MESSAGE"
            ]  # fmt: skip
            assert incoming.headers.get("P-Asserted-Identity") == "<sip:erin@ims.test>"
        finally:
            await erin.close()

    await with_sipjs(gateway, certs, tmp_path / "profile", steps)


@pytest.mark.browser
async def test_sipjs_reconnect_recovers_the_binding(
    core: LabCore, auth: AuthService, certs: tuple[Path, Path], tmp_path: Path
) -> None:
    """RFC 5626 flow recovery: SIP.js (regId 1) re-registers on a new WebSocket within the
    grace period and gets its binding back; the IMS registration is untouched."""
    gateway = Gateway(gateway_config(core.icscf_uri, grace_period=120.0), auth=auth)
    token = token_for(auth, "dave")

    async def steps(page: Any, url: str) -> None:
        result = await register_with_bearer(page, url, token, regId=1)
        registered(result, await page.evaluate("window.events"))
        (binding,) = list(gateway.bindings)
        first_flow = binding.connection
        assert first_flow is not None and binding.reg_id == 1
        (at_scscf,) = contacts(core, "sip:dave@ims.test")
        before = (at_scscf.id, at_scscf.call_id, at_scscf.cseq)
        assert await call(page, "() => window.disconnect()") == "Disconnected"
        await eventually(lambda: binding.connection is None)  # the gateway saw the flow end
        assert list(gateway.bindings) == [binding]  # kept for the grace period
        assert await call(page, "() => window.reconnect()") == "Connected"
        registered(await call(page, "() => window.register()"), await page.evaluate("window.events"))
        assert list(gateway.bindings) == [binding]
        assert binding.connection is not None and binding.connection is not first_flow
        assert binding.connection.id != first_flow.id
        (after,) = contacts(core, "sip:dave@ims.test")
        assert (after.id, after.call_id, after.cseq) == before  # no REGISTER reached the S-CSCF
        result = await call(page, "() => window.unregister()")
        assert (result["status"], result["state"]) == (200, "Unregistered"), result
        await eventually(lambda: contacts(core, "sip:dave@ims.test") == [])
        assert not list(gateway.bindings)

    await with_sipjs(gateway, certs, tmp_path / "profile", steps)
