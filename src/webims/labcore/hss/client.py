"""A Cx client over asyncio TCP: what an I-CSCF or S-CSCF uses to talk to the HSS.

::

    caps = Capabilities("scscf.ims.test", "ims.test", (ip_address("127.0.0.1"),))
    async with await CxClient.connect("127.0.0.1", 3868, caps) as cx:
        maa = await cx.request(build_mar(session_id=cx.session_id(), ...))

Requests get their Hop-by-Hop and End-to-End identifiers from the peer layer; several
may be in flight at once (:meth:`CxClient.send` returns a future). Requests from the
HSS (RTR, PPR) go to ``on_request``, whose answer is sent back; without a handler they
get DIAMETER_UNABLE_TO_COMPLY.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from webims.diameter import (
    Capabilities,
    DiameterError,
    DisconnectCause,
    Message,
    ResultCode,
    Role,
    SessionIdGenerator,
    error_answer,
)

from .connection import DiameterConnection


class CxClient:
    """An initiator Diameter connection with Cx advertised (see the module docstring)."""

    def __init__(self, connection: DiameterConnection, capabilities: Capabilities) -> None:
        self.connection = connection
        self.capabilities = capabilities
        self._sessions = SessionIdGenerator(capabilities.origin_host, time.time())

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        capabilities: Capabilities,
        *,
        on_request: Callable[[Message], Message | None] | None = None,
        timeout: float = 5.0,
        watchdog_interval: float = 30.0,
    ) -> CxClient:
        """Open TCP, exchange capabilities (CER/CEA); raises ConnectionError on refusal."""
        loop = asyncio.get_running_loop()

        def handle(conn: DiameterConnection, request: Message) -> Message | None:
            if on_request is not None:
                return on_request(request)
            err = DiameterError(ResultCode.DIAMETER_UNABLE_TO_COMPLY, "no handler", request=request)
            return error_answer(
                err, origin_host=capabilities.origin_host, origin_realm=capabilities.origin_realm
            )

        _, conn = await asyncio.wait_for(
            loop.create_connection(
                lambda: DiameterConnection(
                    capabilities, Role.INITIATOR, on_request=handle, watchdog_interval=watchdog_interval
                ),
                host,
                port,
            ),
            timeout,
        )
        try:
            await asyncio.wait_for(asyncio.shield(conn.opened), timeout)
        except BaseException:
            conn.abort()
            raise
        return cls(conn, capabilities)

    # --- requests -------------------------------------------------------------------------------------
    def session_id(self) -> str:
        """A fresh Session-Id (RFC 6733 §8.8) for a Cx request."""
        return self._sessions.next()

    def send(self, request: Message) -> asyncio.Future[Message]:
        """Send without waiting; the future resolves with the answer."""
        return self.connection.send_request(request)

    async def request(self, request: Message, timeout: float = 5.0) -> Message:
        return await self.connection.request(request, timeout)

    async def exchange(self, request: Message, timeout: float = 5.0) -> tuple[Message, Message]:
        """Send ``request``; return it as sent (Hop-by-Hop/End-to-End set) and its answer."""
        stamped, fut = self.connection.send_stamped(request)
        return stamped, await asyncio.wait_for(fut, timeout)

    @property
    def is_open(self) -> bool:
        return self.connection.is_open

    @property
    def peer_origin_host(self) -> str | None:
        return self.connection.peer_origin_host

    # --- closing ----------------------------------------------------------------------------------------
    async def close(self, cause: DisconnectCause = DisconnectCause.REBOOTING) -> None:
        """DPR, wait for the DPA, close (RFC 6733 §5.4)."""
        await self.connection.disconnect(cause)

    async def __aenter__(self) -> CxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
