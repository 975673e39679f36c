"""A scripted WIC that makes and takes calls: real SIP bytes over real WSS, like JsSIP sends them.

Builds on :class:`wicclient.Wic` (registration in every mode). Requests the gateway
delivers are kept for the test to answer (:meth:`SessionWic.answer`), except what
the WIC answers by itself: ACK (nothing), CANCEL (200, then 487 for the INVITE, as
RFC 3261 §9.2), and requests matched by :attr:`SessionWic.auto` (method -> status).
Provisional responses to our requests are kept with the final one (:class:`Sent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from wicclient import Wic, WicClosed

from webims.sip import Request, Response, parse

FIXTURES = Path(__file__).resolve().parents[1] / "sdp" / "fixtures"


def chrome_offer(direction: str = "sendrecv", *, version: int = 2) -> bytes:
    """Chrome's audio offer (tests/sdp/fixtures), on loopback, with ``direction``."""
    text = (FIXTURES / "chrome_offer_audio.sdp").read_text()
    text = text.replace("203.0.113.77", "127.0.0.1").replace("192.168.1.23", "127.0.0.1")
    text = text.replace("a=sendrecv", f"a={direction}").replace(" 2 IN IP4", f" {version} IN IP4")
    return text.replace("\n", "\r\n").encode()


def chrome_answer(direction: str = "sendrecv", *, version: int = 2) -> bytes:
    text = (FIXTURES / "chrome_answer_audio.sdp").read_text()
    text = text.replace("a=sendrecv", f"a={direction}").replace(" 2 IN IP4", f" {version} IN IP4")
    return text.replace("\n", "\r\n").encode()


def direction_of(body: bytes) -> str:
    for d in ("sendonly", "recvonly", "inactive", "sendrecv"):
        if f"a={d}".encode() in body:
            return d
    return "sendrecv"


@dataclass
class Sent:
    """One request we sent and what came back."""

    request: Request
    branch: str
    provisional: list[Response] = field(default_factory=list)
    final: asyncio.Future[Response] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class Dialog:
    """The WIC's view of a dialog (enough for in-dialog requests)."""

    call_id: str
    local: str  # From within the dialog (with our tag)
    remote: str  # To within the dialog (with their tag)
    target: str  # remote target
    routes: list[str]
    cseq: int


class SessionWic(Wic):
    """A WIC with calls (module docstring)."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.sent: dict[str, Sent] = {}
        self.auto: dict[str, int] = {"OPTIONS": 200, "MESSAGE": 200, "INFO": 200, "BYE": 200, "UPDATE": 200}
        self.inbox: list[Request] = []
        self._arrived = asyncio.Event()
        self.seen: list[Request] = []
        self.cancelled: list[Request] = []

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                data = msg.data.encode() if isinstance(msg.data, str) else msg.data
                self.raw.append(data)
                if data.strip(b"\r\n") == b"":
                    continue
                message = parse(data)
                if isinstance(message, Response):
                    self.responses.append(message)
                    self._response(message)
                else:
                    await self._request(message)
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            for sent in self.sent.values():
                if not sent.final.done():
                    sent.final.set_exception(WicClosed("WebSocket closed"))
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(WicClosed("WebSocket closed"))

    def _response(self, message: Response) -> None:
        branch = message.top_via.branch or ""
        fut = self.pending.pop(branch, None)
        if fut is not None:  # registration etc. (the base class's requests)
            if message.status >= 200:
                if not fut.done():
                    fut.set_result(message)
            else:
                self.pending[branch] = fut
            return
        sent = self.sent.get(branch)
        if sent is None or message.cseq.method != sent.request.method:
            return  # (the 200 to our CANCEL shares the INVITE's branch)
        if message.status < 200:
            sent.provisional.append(message)
        elif not sent.final.done():
            sent.final.set_result(message)

    async def _request(self, request: Request) -> None:
        self.seen.append(request)
        if request.method == "ACK":
            return
        if request.method == "CANCEL":
            await self.send(bytes(request.response(200)))
            for r in self.seen:
                if r.method == "INVITE" and r.call_id == request.call_id and r.cseq.seq == request.cseq.seq:
                    self.cancelled.append(r)
                    await self.send(bytes(r.response(487, to_tag="wic-tag")))
            return
        status = self.auto.get(request.method)
        if status is not None and (request.method != "UPDATE" or not request.body):
            await self.send(bytes(request.response(status, to_tag=request.to.tag or "wic-tag")))
        self.inbox.append(request)
        self._arrived.set()

    async def next_request(self, method: str, timeout: float = 10.0) -> Request:
        """The oldest unread request of ``method`` (waiting for one)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            for request in self.inbox:
                if request.method == method:
                    self.inbox.remove(request)
                    return request
            self._arrived.clear()
            left = end - loop.time()
            if left <= 0:
                raise AssertionError(f"no {method} within {timeout} s: {[r.method for r in self.inbox]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    def got(self, method: str) -> list[Request]:
        return [r for r in self.seen if r.method == method]

    # ------------------------------------------------------------------ requests
    async def send_request(
        self,
        method: str,
        uri: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        **kw: object,
    ) -> Sent:
        branch, data = self.build(method, uri, headers, body, **kw)  # type: ignore[arg-type]
        sent = Sent(parse(data), branch)  # type: ignore[arg-type]
        self.sent[branch] = sent
        await self.send(data)
        return sent

    async def invite(self, target: str, body: bytes | None = None, headers: Sequence[tuple[str, str]] = (),
                     *, call_id: str | None = None) -> Sent:  # fmt: skip
        """An initial INVITE as JsSIP writes it (Contact with ob, Supported, offer)."""
        self.tag = secrets.token_hex(4)
        hdrs = [
            ("Contact", f"<sip:{self.contact_user}@{self.host};transport=ws;ob>"),
            ("Allow", "INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY"),
            ("Supported", "timer,ice,replaces,outbound"),
            ("Content-Type", "application/sdp"),
            *headers,
        ]
        return await self.send_request(
            "INVITE", target, hdrs, chrome_offer() if body is None else body,
            call_id=call_id or f"{secrets.token_hex(8)}@{self.host}",
        )  # fmt: skip

    async def final(self, sent: Sent, timeout: float = 15.0) -> Response:
        return await asyncio.wait_for(asyncio.shield(sent.final), timeout)

    def dialog_from(self, sent: Sent, response: Response) -> Dialog:
        contact = response.contact[0].uri if response.contact else sent.request.uri
        routes = [str(r) for r in reversed(response.record_route)]
        req = sent.request
        return Dialog(req.call_id, str(req.from_), str(response.to), str(contact), routes, req.cseq.seq)

    def dialog_as_uas(self, request: Request, to_tag: str) -> Dialog:
        contact = request.contact[0].uri if request.contact else request.uri
        local = f"{request.headers.get('To')};tag={to_tag}"
        return Dialog(request.call_id, local, str(request.from_), str(contact),
                      [str(r) for r in request.record_route], 0)  # fmt: skip

    async def ack(self, dialog: Dialog, body: bytes = b"") -> None:
        lines = [
            f"ACK {dialog.target} SIP/2.0",
            f"Via: SIP/2.0/WSS {self.host};branch=z9hG4bK{secrets.token_hex(6)}",
            "Max-Forwards: 70",
            f"From: {dialog.local}",
            f"To: {dialog.remote}",
            f"Call-ID: {dialog.call_id}",
            f"CSeq: {dialog.cseq} ACK",
            *[f"Route: {r}" for r in dialog.routes],
            *(["Content-Type: application/sdp"] if body else []),  # the answer to a late offer (RFC 3264 §5)
            f"Content-Length: {len(body)}",
            "",
            "",
        ]
        await self.send("\r\n".join(lines).encode() + body)

    async def in_dialog(self, dialog: Dialog, method: str, headers: Sequence[tuple[str, str]] = (),
                        body: bytes = b"") -> Sent:  # fmt: skip
        dialog.cseq += 1
        branch = f"z9hG4bK{secrets.token_hex(6)}"
        lines = [
            f"{method} {dialog.target} SIP/2.0",
            f"Via: SIP/2.0/WSS {self.host};branch={branch}",
            "Max-Forwards: 70",
            f"From: {dialog.local}",
            f"To: {dialog.remote}",
            f"Call-ID: {dialog.call_id}",
            f"CSeq: {dialog.cseq} {method}",
            *[f"Route: {r}" for r in dialog.routes],
            *[f"{n}: {v}" for n, v in headers],
        ]
        if method in ("INVITE", "UPDATE"):
            lines.append(f"Contact: <sip:{self.contact_user}@{self.host};transport=ws;ob>")
        lines += [f"Content-Length: {len(body)}", "", ""]
        data = "\r\n".join(lines).encode() + body
        sent = Sent(parse(data), branch)  # type: ignore[arg-type]
        self.sent[branch] = sent
        await self.send(data)
        return sent

    async def reinvite(self, dialog: Dialog, body: bytes) -> Response:
        sent = await self.in_dialog(dialog, "INVITE", [("Content-Type", "application/sdp")], body)
        response = await self.final(sent)
        if 200 <= response.status < 300:
            saved = dialog.cseq
            await self.ack(dialog)
            dialog.cseq = saved
        return response

    async def answer(self, request: Request, status: int, *, to_tag: str = "wic-tag", body: bytes = b"",
                     headers: Sequence[tuple[str, str]] = ()) -> None:  # fmt: skip
        hdrs = list(headers)
        if body:
            hdrs.append(("Content-Type", "application/sdp"))
        if status < 300 and request.method == "INVITE":
            hdrs.append(("Contact", f"<sip:{self.contact_user}@{self.host};transport=ws;ob>"))
            hdrs.append(("Allow", "INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY"))
        await self.send(bytes(request.response(status, to_tag=to_tag, headers=hdrs, body=body)))

    async def cancel(self, sent: Sent) -> None:
        req = sent.request
        lines = [
            f"CANCEL {req.uri} SIP/2.0",
            f"Via: SIP/2.0/WSS {self.host};branch={sent.branch}",
            "Max-Forwards: 70",
            f"From: {req.headers.get('From')}",
            f"To: {req.headers.get('To')}",
            f"Call-ID: {req.call_id}",
            f"CSeq: {req.cseq.seq} CANCEL",
            "Content-Length: 0",
            "",
            "",
        ]
        await self.send("\r\n".join(lines).encode())


async def registered(wic: SessionWic, password: str) -> SessionWic:
    await wic.connect()
    _, ok = await wic.register_digest(password)
    assert ok.status == 200, ok
    return wic


async def closing(*wics: SessionWic) -> None:
    for wic in wics:
        with contextlib.suppress(Exception):
            await wic.close()
