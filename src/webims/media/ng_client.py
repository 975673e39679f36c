"""asyncio UDP adapter for rtpengine's ng protocol (the state machine is :mod:`webims.media.ng`).

::

    client = NgClient("127.0.0.1", 2223)
    await client.start()
    answer = await client.request("offer", {"call-id": ..., "from-tag": ..., "sdp": ...})
    await client.close()

``request`` returns the answer's dictionary or raises an :class:`~webims.media.ng.NgError`:
:class:`~webims.media.ng.NgErrorReply` (rtpengine refused), :class:`~webims.media.ng.NgTimeout`
(no answer within the retransmission policy; an ICMP "port unreachable" seen meanwhile is
named in the reason), :class:`~webims.media.ng.NgDecodeError` (garbage answer) or
:class:`NgClosed`.  The socket is connected to rtpengine's address, so only its
datagrams arrive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from .ng import Bencodable, NgConnection, NgError, NgEvent, NgFailure, NgReply, NgTimeout, RetransmitPolicy

__all__ = ["NgClient", "NgClosed"]

log = logging.getLogger(__name__)


class NgClosed(NgError):
    """The client was closed while the request was pending (or before it was sent)."""


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, client: NgClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.client._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable etc. on the connected socket: keep retransmitting (the
        # daemon may be restarting) but remember it for the timeout's reason.
        self.client.last_error = exc

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._on_lost(exc)


class NgClient:
    """One UDP socket toward one rtpengine ng port, with any number of concurrent requests."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        policy: RetransmitPolicy | None = None,
        cookie_prefix: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._ng = NgConnection(policy or RetransmitPolicy())
        if cookie_prefix is not None:
            self._ng.cookie_prefix = cookie_prefix
        self._transport: asyncio.DatagramTransport | None = None
        self._waiters: dict[str, asyncio.Future[dict[str, Bencodable]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: The last socket error (e.g. ConnectionRefusedError from ICMP), if any.
        self.last_error: Exception | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def policy(self) -> RetransmitPolicy:
        return self._ng.policy

    async def start(self) -> None:
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), remote_addr=(self.host, self.port)
        )
        self._transport = transport
        self._closed = False

    async def close(self) -> None:
        """Close the socket; pending requests fail with :class:`NgClosed`."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._dispatch(self._ng.fail_all(lambda command: NgClosed("ng client closed", command)))
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def request(
        self, command: str, params: Mapping[str, Bencodable] | None = None
    ) -> dict[str, Bencodable]:
        """Send ``command`` with ``params``; return rtpengine's answer (``result`` ok/pong)."""
        if self._closed or self._transport is None:
            raise NgClosed("ng client not started", command)
        loop = asyncio.get_running_loop()
        cookie = self._ng.send(command, params or {}, loop.time())
        future: asyncio.Future[dict[str, Bencodable]] = loop.create_future()
        self._waiters[cookie] = future
        self._flush()
        try:
            return await future
        except asyncio.CancelledError:
            self._ng.cancel(cookie)
            self._waiters.pop(cookie, None)
            raise
        except NgTimeout as exc:
            detail = f"; last socket error: {self.last_error}" if self.last_error else ""
            raise NgTimeout(
                f"rtpengine at {self.address} did not answer {command!r}: {exc.reason}{detail}",
                exc.attempts,
                exc.elapsed,
                command,
            ) from None

    async def ping(self) -> None:
        """ng ``ping``; raises :class:`~webims.media.ng.NgError` unless rtpengine answers ``pong``."""
        await self.request("ping")

    # -- internals -------------------------------------------------------------------------

    def _flush(self) -> None:
        transport = self._transport
        for datagram in self._ng.datagrams_to_send():
            if transport is not None:
                transport.sendto(datagram)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self._ng.get_timer()
        if when is not None and not self._closed:
            self._timer = asyncio.get_running_loop().call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        events = self._ng.handle_timer(asyncio.get_running_loop().time())
        self._flush()
        self._dispatch(events)

    def _on_datagram(self, data: bytes) -> None:
        self.last_error = None
        events = self._ng.receive_datagram(data, asyncio.get_running_loop().time())
        self._arm()
        self._dispatch(events)

    def _on_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.last_error = exc
        self._dispatch(self._ng.fail_all(lambda command: NgClosed(f"ng socket lost: {exc}", command)))

    def _dispatch(self, events: list[NgEvent]) -> None:
        for event in events:
            future = self._waiters.pop(event.cookie, None)
            if future is None or future.done():
                continue
            if isinstance(event, NgReply):
                if event.warning:
                    log.warning("rtpengine %s warning on %s: %s", self.address, event.command, event.warning)
                future.set_result(event.body)
            elif isinstance(event, NgFailure):
                future.set_exception(event.error)
