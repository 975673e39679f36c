"""Fixtures for the session tests: the gateway (with its session B2BUA) on the lab IMS core."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

from conftest import ORIGIN, PASSWORDS, Lab, LabFactory
from ims_phone import ImsPhone, rtp_sdp
from session_wic import Dialog as WicDialog
from session_wic import SessionWic, closing, registered

from webims.gateway.session_settings import SessionConfig
from webims.gateway.sessions import SessionManager
from webims.media.api import MediaIWF
from webims.sip import Dialog, Request, Response


@contextlib.asynccontextmanager
async def session_lab(
    make_lab: LabFactory,
    *,
    iwf: MediaIWF | None = None,
    gateway: dict[str, Any] | None = None,
    **sessions: Any,
) -> AsyncIterator[tuple[Lab, SessionManager]]:
    """A gateway on the lab core with a :class:`SessionManager` (``media="ims"`` unless given)."""
    sessions.setdefault("media", "ims")
    async with make_lab(**(gateway or {})) as lab:
        manager = SessionManager(lab.gateway, SessionConfig(**sessions), iwf=iwf)
        await manager.start()
        try:
            yield lab, manager
        finally:
            await manager.close()


async def wics(lab: Lab, *users: str) -> list[SessionWic]:
    out = []
    for user in users:
        out.append(await registered(SessionWic(lab.url, origin=ORIGIN, user=user), PASSWORDS[user]))
    return out


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"condition not reached within {timeout} s")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def phone(lab: Lab, user: str = "bob") -> AsyncIterator[ImsPhone]:
    """A SIP phone registered to the lab core as ``user`` (closed on exit)."""
    p = ImsPhone(lab.core, user, PASSWORDS[user])
    await p.start()
    assert (await p.register()).status == 200
    try:
        yield p
    finally:
        await p.close()


@contextlib.asynccontextmanager
async def wic_and_phone(
    make_lab: LabFactory, **options: Any
) -> AsyncIterator[tuple[SessionManager, SessionWic, ImsPhone]]:
    """:func:`session_lab` with the WIC ``alice`` registered through the gateway and the IMS
    phone ``bob`` registered to the lab core; both closed on exit."""
    async with session_lab(make_lab, **options) as (lab, mgr):
        (alice,) = await wics(lab, "alice")
        async with phone(lab) as bob:
            try:
                yield mgr, alice, bob
            finally:
                await closing(alice)


class Answered(NamedTuple):
    """A call from a WIC that the IMS phone answered and the WIC acknowledged."""

    dialog: WicDialog  # the WIC's
    phone_dialog: Dialog  # the phone's
    invite: Request  # the INVITE as the phone got it
    final: Response  # the 200 as the WIC got it


async def answered_call(
    wic: SessionWic, bob: ImsPhone, *, answer_headers: tuple[tuple[str, str], ...] = ()
) -> Answered:
    """``wic`` calls bob's phone, which answers 200 with its SDP; the WIC ACKs, the phone gets it."""
    sent = await wic.invite("sip:bob@ims.test")
    got = await bob.next_request("INVITE")
    ok = bob.respond(got, 200, to_tag="ph1", body=rtp_sdp(), headers=answer_headers)
    final = await wic.final(sent)
    assert final.status == 200, final
    dialog = wic.dialog_from(sent, final)
    await wic.ack(dialog)
    await eventually(lambda: bob.acks)
    return Answered(dialog, bob.uas_dialog(got, ok), got.request, final)
