"""A scripted WIC: real SIP bytes over a real WSS connection (aiohttp client), for the gateway tests.

It writes requests the way a browser WIC does (RFC 7118 §5.2: Via ``SIP/2.0/WSS
<random>.invalid``; RFC 5626 outbound Contact with ``+sip.instance`` and ``reg-id``),
matches responses by Via branch, answers requests the gateway delivers (200 by
default) and keeps everything it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import uuid
from collections.abc import Sequence

import aiohttp

from webims.aka import Usim
from webims.sip import Request, Response, parse
from webims.sip.auth_header import parse_challenge
from webims.sip.digest import DigestClient


def insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class WicClosed(Exception):
    pass


class Wic:
    """One WIC on one WebSocket (``connect`` again for a new one, keeping the instance)."""

    def __init__(
        self,
        url: str,
        *,
        origin: str | None,
        user: str = "alice",
        domain: str = "ims.test",
        instance: str | None = None,
        cookie: str | None = None,
        reg_id: int | None = 1,
    ) -> None:
        self.url = url
        self.origin = origin
        self.user = user
        self.domain = domain
        self.aor = f"sip:{user}@{domain}"
        self.instance = instance or f"urn:uuid:{uuid.uuid4()}"
        self.reg_id = reg_id
        self.cookie = cookie
        self.host = f"{secrets.token_hex(6)}.invalid"
        self.contact_user = secrets.token_hex(4)
        self.call_id = f"{secrets.token_hex(8)}@{self.host}"
        self.tag = secrets.token_hex(4)
        self.cseq = 0
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.pending: dict[str, asyncio.Future[Response]] = {}
        self.responses: list[Response] = []
        self.requests: list[Request] = []
        self.raw: list[bytes] = []
        self.answer_status = 200
        self.closed = asyncio.Event()
        self.close_code: int | None = None

    # ------------------------------------------------------------------ connection
    async def connect(self) -> None:
        headers = {}
        if self.origin is not None:
            headers["Origin"] = self.origin
        if self.cookie is not None:
            headers["Cookie"] = f"webims_session={self.cookie}"
        self.session = aiohttp.ClientSession()
        self.closed = asyncio.Event()
        self.ws = await self.session.ws_connect(
            self.url, protocols=("sip",), headers=headers, ssl=insecure_context(), autoping=True
        )
        self.reader = asyncio.ensure_future(self._read())

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
                    fut = self.pending.pop(message.top_via.branch or "", None)
                    if fut is not None and not fut.done() and message.status >= 200:
                        fut.set_result(message)
                    elif fut is not None and message.status < 200:
                        self.pending[message.top_via.branch or ""] = fut
                else:
                    self.requests.append(message)
                    if message.method != "ACK":
                        await self.send(bytes(message.response(self.answer_status, to_tag="wic-tag")))
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(WicClosed("WebSocket closed"))
            self.pending.clear()

    async def send(self, data: bytes | str) -> None:
        assert self.ws is not None
        await self.ws.send_str(data if isinstance(data, str) else data.decode())

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await self.reader
        if self.session is not None:
            await self.session.close()

    # ------------------------------------------------------------------ requests
    def contact(self, expires: int | None = None) -> str:
        value = f"<sip:{self.contact_user}@{self.host};transport=ws>"
        if self.reg_id is not None:
            value += f';reg-id={self.reg_id};+sip.instance="<{self.instance}>"'
        if expires is not None:
            value += f";expires={expires}"
        return value

    def build(
        self,
        method: str,
        uri: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        to: str | None = None,
        cseq: int | None = None,
        call_id: str | None = None,
        from_uri: str | None = None,
    ) -> tuple[str, bytes]:
        branch = f"z9hG4bK{secrets.token_hex(6)}"
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/WSS {self.host};branch={branch}",
            "Max-Forwards: 70",
            f"From: <{from_uri or self.aor}>;tag={self.tag}",
            f"To: <{to or uri}>",
            f"Call-ID: {call_id or self.call_id}",
            f"CSeq: {cseq} {method}",
        ]
        lines += [f"{n}: {v}" for n, v in headers]
        lines += [f"Content-Length: {len(body)}", "", ""]
        return branch, "\r\n".join(lines).encode() + body

    async def request(
        self,
        method: str,
        uri: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        timeout: float = 20.0,
        **kw: object,
    ) -> Response:
        branch, data = self.build(method, uri, headers, body, **kw)  # type: ignore[arg-type]
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.pending[branch] = fut
        await self.send(data)
        return await asyncio.wait_for(fut, timeout)

    async def register(
        self,
        expires: int = 600,
        headers: Sequence[tuple[str, str]] = (),
        *,
        contact: str | None = None,
        timeout: float = 20.0,
    ) -> Response:
        hdrs = [
            ("Contact", contact if contact is not None else self.contact()),
            ("Expires", str(expires)),
            ("Supported", "path, outbound, gruu"),
            *headers,
        ]
        return await self.request("REGISTER", f"sip:{self.domain}", hdrs, to=self.aor, timeout=timeout)

    async def register_digest(
        self,
        password: str,
        expires: int = 600,
        *,
        impi: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> tuple[Response, Response]:
        """REGISTER, then answer the Digest challenge (ims-digest relay)."""
        first = await self.register(expires, headers)
        if first.status != 401:
            return first, first
        challenge = parse_challenge(first.headers.get("WWW-Authenticate") or "")
        client = DigestClient(impi or f"{self.user}@{self.domain}", password)
        cred = client.authorize(challenge, "REGISTER", f"sip:{self.domain}")
        second = await self.register(expires, [("Authorization", cred.format()), *headers])
        return first, second

    async def register_aka(
        self,
        usim: Usim,
        expires: int = 600,
        *,
        impi: str | None = None,
    ) -> tuple[Response, Response]:
        """TS 24.229 initial REGISTER with an empty AKA Authorization, then the USIM's answer."""
        who = impi or f"{self.user}@{self.domain}"
        uri = f"sip:{self.domain}"
        initial = (
            f'Digest username="{who}", realm="{self.domain}", uri="{uri}", nonce="", response="", '
            "algorithm=AKAv1-MD5"
        )
        first = await self.register(expires, [("Authorization", initial)])
        if first.status != 401:
            return first, first
        challenge = parse_challenge(first.headers.get("WWW-Authenticate") or "")
        answer = DigestClient(who).authorize_aka(challenge, "REGISTER", uri, usim)
        second = await self.register(expires, [("Authorization", answer.credentials.format())])
        return first, second

    async def wait_request(self, method: str, timeout: float = 10.0) -> Request:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            for r in self.requests:
                if r.method == method:
                    self.requests.remove(r)
                    return r
            if loop.time() > end:
                raise AssertionError(
                    f"no {method} within {timeout} s (got {[r.method for r in self.requests]})"
                )
            await asyncio.sleep(0.02)


def bearer(token: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token}")


def password_header(impi: str, password: str) -> tuple[str, str]:
    return ("Authorization", f'WebIMS-Password username="{impi}", password="{password}"')
