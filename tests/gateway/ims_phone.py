"""A scripted IMS phone on UDP, registered to the lab core like a UE (digest), for session tests.

It answers what the test tells it to, keeps every request it got (with the
:class:`~webims.endpoint.IncomingRequest` to answer it later), and sends its own
requests on the Service-Route (originating) or within a dialog. It can answer
one INVITE several times with different To tags: what a forking proxy below it
would send (RFC 3261 §16.7, several 18x and 2xx).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from webims.endpoint import IncomingRequest, SipEndpoint, Target
from webims.labcore import LabCore
from webims.sip import Dialog, Request, Response, new_tag, parse_uri
from webims.sip.auth_header import parse_challenge
from webims.sip.digest import DigestClient
from webims.transport import Connection

RTP_SDP = (
    "v=0\r\no=- 7 {v} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\na=ptime:20\r\na={direction}\r\n"
)


def rtp_sdp(port: int = 30000, direction: str = "sendrecv", version: int = 1) -> bytes:
    return RTP_SDP.format(port=port, direction=direction, v=version).encode()


@dataclass
class Got:
    incoming: IncomingRequest

    @property
    def request(self) -> Request:
        return self.incoming.request


class ImsPhone:
    """One UE on the IMS side (module docstring)."""

    def __init__(
        self,
        core: LabCore,
        user: str,
        password: str,
        *,
        domain: str = "ims.test",
        contact_port: int | None = None,
    ) -> None:
        """``contact_port``: register that port as the contact (another UA there, e.g. SIPp)."""
        self.core = core
        self.user = user
        self.password = password
        self.domain = domain
        self.aor = f"sip:{user}@{domain}"
        self.endpoint = SipEndpoint(self._on_request)
        self.endpoint.on_ack = self._on_ack
        self.port = 0
        self.contact_port = contact_port
        self.service_route: list[str] = []
        self.inbox: list[Got] = []
        self.acks: list[Request] = []
        self._arrived = asyncio.Event()
        self.auto: dict[str, int] = {"BYE": 200, "ACK": 0, "INFO": 200, "MESSAGE": 200, "OPTIONS": 200}

    async def start(self) -> None:
        udp = await self.endpoint.transport.listen_udp("127.0.0.1", 0)
        self.port = udp.local[1]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.register(0)
        await self.endpoint.close()

    @property
    def contact(self) -> str:
        return f"<sip:{self.user}@127.0.0.1:{self.contact_port or self.port}>"

    def _target(self) -> Target:
        host, port = self.core.icscf_address
        return Target("UDP", host, port)

    async def register(self, expires: int = 600) -> Response:
        call_id, tag = f"{secrets.token_hex(8)}@phone", new_tag()
        client = DigestClient(f"{self.user}@{self.domain}", self.password)
        authorization: list[tuple[str, str]] = []
        for cseq in (1, 2):
            request = Request("REGISTER", f"sip:{self.domain}", [
                ("Max-Forwards", "70"), ("From", f"<{self.aor}>;tag={tag}"), ("To", f"<{self.aor}>"),
                ("Call-ID", call_id), ("CSeq", f"{cseq} REGISTER"), ("Contact", self.contact),
                ("Expires", str(expires)), *authorization,
            ])  # fmt: skip
            response = await self.endpoint.request(request, self._target())
            if response.status != 401:
                break
            challenge = parse_challenge(response.headers.get("WWW-Authenticate") or "")
            cred = client.authorize(challenge, "REGISTER", f"sip:{self.domain}")
            authorization = [("Authorization", cred.format())]
        if response.status == 200:
            self.service_route = response.headers.get_all("Service-Route")
        return response

    # ------------------------------------------------------------------ incoming
    async def _on_request(self, incoming: IncomingRequest) -> None:
        status = self.auto.get(incoming.request.method)
        if status:
            incoming.respond(status)
        self.inbox.append(Got(incoming))
        self._arrived.set()

    def _on_ack(self, request: Request, conn: object) -> None:
        self.acks.append(request)
        self._arrived.set()

    async def next_request(self, method: str, timeout: float = 10.0) -> Got:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            for got in self.inbox:
                if got.request.method == method:
                    self.inbox.remove(got)
                    return got
            self._arrived.clear()
            left = end - loop.time()
            if left <= 0:
                raise AssertionError(
                    f"no {method} within {timeout} s: {[g.request.method for g in self.inbox]}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    def respond(self, got: Got, status: int, *, to_tag: str | None = None, body: bytes = b"",
                headers: Sequence[tuple[str, str]] = ()) -> Response:  # fmt: skip
        hdrs = list(headers)
        if status < 300 and got.request.method in ("INVITE", "UPDATE"):
            hdrs.append(("Contact", self.contact))
            if not any(n.lower() == "allow" for n, _ in hdrs):  # (a test may give its own)
                hdrs.append(("Allow", "INVITE, ACK, CANCEL, BYE, UPDATE, PRACK, INFO"))
        if body:
            hdrs.append(("Content-Type", "application/sdp"))
        if to_tag is None and status > 100:
            to_tag = "phone-tag"
        response = got.request.response(status, to_tag=to_tag, headers=hdrs, body=body)
        got.incoming.final_sent = False  # several 2xx to one INVITE (forking below us)
        got.incoming.send(response)
        return response

    # ------------------------------------------------------------------ outgoing
    async def invite(
        self, target: str, body: bytes, headers: Sequence[tuple[str, str]] = ()
    ) -> tuple[Request, asyncio.Future[Response], list[Response]]:
        """An originating INVITE on the Service-Route: (request, final response future, provisionals)."""
        provisional: list[Response] = []
        request = Request("INVITE", target, [
            ("Max-Forwards", "70"), ("From", f"<{self.aor}>;tag={new_tag()}"), ("To", f"<{target}>"),
            ("Call-ID", f"{secrets.token_hex(8)}@phone"), ("CSeq", "1 INVITE"), ("Contact", self.contact),
            *[("Route", r) for r in self.service_route], ("P-Asserted-Identity", f"<{self.aor}>"),
            ("Allow", "INVITE, ACK, CANCEL, BYE, UPDATE, PRACK, INFO"), *headers,
            ("Content-Type", "application/sdp"),
        ], body)  # fmt: skip
        route = parse_uri(self.service_route[0].strip("<>").split(">")[0].split(";")[0])
        target_hop = Target("UDP", route.host, route.port or 5060)  # type: ignore[union-attr]
        final = asyncio.ensure_future(
            self.endpoint.request(request, target_hop, on_provisional=provisional.append)
        )
        return request, final, provisional

    async def ack_and_dialog(self, request: Request, response: Response) -> Dialog:
        dialog = Dialog.from_uac(request, response)
        ack = dialog.create_ack(request)
        conn = await self._connect(ack)
        self.endpoint.add_via(ack, conn)  # RFC 3261 §8.1.1.7: every request carries a Via
        self.endpoint.send_stateless(ack, conn)
        return dialog

    async def _connect(self, request: Request) -> Connection:
        routes = request.route
        uri = routes[0].uri if routes else request.uri
        return await self.endpoint.connect(Target("UDP", uri.host, uri.port or 5060))  # type: ignore[union-attr]

    async def send_in(self, dialog: Dialog, method: str, headers: Sequence[tuple[str, str]] = (),
                      body: bytes = b"") -> Response:  # fmt: skip
        hdrs = list(headers)
        if body and not any(n.lower() == "content-type" for n, _ in hdrs):
            hdrs.append(("Content-Type", "application/sdp"))
        request = dialog.create_request(method, headers=hdrs, body=body)
        conn = await self._connect(request)
        response = await self.endpoint.request(request, conn)
        if method == "INVITE" and 200 <= response.status < 300:
            ack = dialog.create_ack(request)
            self.endpoint.add_via(ack, conn)
            self.endpoint.send_stateless(ack, conn)
        return response

    def uas_dialog(self, got: Got, response: Response) -> Dialog:
        return Dialog.from_uas(got.request, response)
