"""Checks shared by the call workers (tests/gateway/*_call_worker.py, baresip_worker.py):
waiting for a condition, and what the gateway still holds once its calls have ended."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from webims.gateway.core import Gateway
from webims.gateway.sessions import SessionManager


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 20.0) -> None:
    """Poll ``check`` every 0.1 s; AssertionError naming ``what`` after ``seconds``."""
    for _ in range(int(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not reached within {seconds:g} s: {what}")


async def left_in_gateway(gateway: Gateway, seconds: float = 10.0) -> dict[str, int]:
    """What the gateway still holds once its calls are gone (or after ``seconds``): calls,
    dialogs, INVITE transactions and media IWF sessions."""
    sessions = gateway.sessions
    assert isinstance(sessions, SessionManager), f"the gateway runs no session B2BUA: {sessions!r}"

    def held() -> dict[str, int]:
        iwf = sessions.iwf
        return {
            "calls": len(sessions.calls),
            "dialogs": len(sessions.dialogs),
            "invites": len(sessions.invites),
            "iwf_sessions": len(iwf.sessions()) if iwf is not None else 0,
        }

    async def empty() -> bool:
        return not any(held().values())

    with contextlib.suppress(AssertionError):
        await until(empty, "no call left in the gateway", seconds)
    return held()
