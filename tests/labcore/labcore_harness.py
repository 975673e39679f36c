"""Shared pieces for the I-CSCF / S-CSCF tests: a lab core on loopback and Python UEs.

The core is the real one (:func:`webims.labcore.start_labcore`: embedded HSS on an
SQLite file, I-CSCF and S-CSCF on UDP+TCP, Cx over TCP). A :class:`Ue` is a SIP user
agent on :class:`webims.endpoint.SipEndpoint`, playing UE + P-CSCF on Mw: it
registers through the I-CSCF (answering Digest and AKA challenges with
:class:`webims.sip.digest.DigestClient`), sends originating requests on its
Service-Route, and answers what the S-CSCF delivers to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webims.aka import Usim, compute_opc
from webims.config import Config, load_config
from webims.endpoint import IncomingRequest, SipEndpoint, Target
from webims.labcore import LabCore, start_labcore
from webims.labcore.hss import SubscriberSpec, SubscriberStore
from webims.media.api import MediaIWF
from webims.sip import Dialog, Request, Response, new_tag
from webims.sip.digest import DigestClient, parse_challenge
from webims.store import Store

REALM = "ims.test"
TRUSTED = "127.0.0.2"
UNTRUSTED = "127.0.0.3"
# SIPp 3.6.1 takes aka_K / aka_OP / aka_AMF as raw text (16 / 16 / 2 characters)
AKA_K = b"webims-test-k001"
AKA_OP = b"webims-operator!"
AKA_AMF = b"00"
PASSWORDS = {
    name: f"{name}-secret"
    for name in ("alice", "bob", "dave", "erin", "frank", "gina", "hank", "ivan", "judy", "kim", "lee")
}

SDP_PCMU = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def subscriber_specs() -> list[SubscriberSpec]:
    specs = [
        SubscriberSpec(impi=f"{name}@{REALM}", impus=(f"sip:{name}@{REALM}",), password=password)
        for name, password in PASSWORDS.items()
        if name not in ("alice", "bob")
    ]
    specs += [
        SubscriberSpec(
            impi=f"alice@{REALM}", impus=(f"sip:alice@{REALM}", "tel:+15551000"), password=PASSWORDS["alice"]
        ),
        SubscriberSpec(
            impi=f"bob@{REALM}", impus=(f"sip:bob@{REALM}", "tel:+15552000"), password=PASSWORDS["bob"]
        ),
        SubscriberSpec(
            impi=f"carol@{REALM}", impus=(f"sip:carol@{REALM}",), k=AKA_K, op=AKA_OP, amf=AKA_AMF, sqn=64
        ),
        SubscriberSpec(
            impi=f"walt@{REALM}", impus=(f"sip:walt@{REALM}",), k=AKA_K, op=AKA_OP, amf=AKA_AMF, sqn=64
        ),
        SubscriberSpec(
            impi=f"barry@{REALM}",
            impus=(f"sip:barry@{REALM}", f"sip:barry-old@{REALM}"),
            password="barry-secret",
            barred=frozenset({f"sip:barry-old@{REALM}"}),
        ),
        SubscriberSpec(
            impi=f"pool@{REALM}",
            impus=(f"sip:pool@{REALM}", f"sip:pool-!\\d+!@{REALM}"),
            password="pool-secret",
        ),
        # known to the HSS, never registered in these tests
        SubscriberSpec(impi=f"olga@{REALM}", impus=(f"sip:olga@{REALM}",), password="olga-secret"),
    ]
    return specs


def usim(sqn_ahead: int = 0) -> Usim:
    u = Usim(AKA_K, compute_opc(AKA_K, AKA_OP))
    if sqn_ahead:
        u.sqn_state.accept(sqn_ahead)
    return u


def core_config(tmp_path: Path, **labcore: Any) -> Config:
    env: dict[str, str] = {
        "WEBIMS_STATE__DIR": str(tmp_path),
        "WEBIMS_HSS__LISTEN_PORT": "0",
        "WEBIMS_HSS__ADMIN_PORT": "0",
        "WEBIMS_LABCORE__ICSCF_PORT": "0",
        "WEBIMS_LABCORE__SCSCF_PORT": "0",
        "WEBIMS_LABCORE__MEDIA_INTERWORKING": "off",
        "WEBIMS_LABCORE__TRUSTED_NODES": TRUSTED,
    }
    for key, value in labcore.items():
        env[f"WEBIMS_LABCORE__{key.upper()}"] = ",".join(value) if isinstance(value, tuple) else str(value)
    return load_config(None, environ=env)


@contextlib.asynccontextmanager
async def running_core(
    tmp_path: Path, *, iwf: MediaIWF | None = None, specs: Iterable[SubscriberSpec] = (), **labcore: Any
) -> AsyncIterator[LabCore]:
    store = Store(tmp_path / "hss.sqlite3")
    subs = SubscriberStore(store, default_realm=REALM)
    for spec in (*subscriber_specs(), *specs):
        subs.add(spec)
    core = await start_labcore(core_config(tmp_path, **labcore), subscribers=subs, iwf=iwf)
    try:
        assert core.icscf_cx.is_open and core.scscf_cx.is_open, "Cx to the HSS did not open"
        yield core
    finally:
        await core.stop()
        store.close()


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``check`` until it returns something truthy (state reached asynchronously)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"condition not reached within {timeout} s: {check}")
        await asyncio.sleep(0.02)


@dataclass
class Call:
    """An outgoing INVITE and what came back."""

    invite: Request
    provisional: list[Response] = field(default_factory=list)
    final: Response | None = None
    dialog: Dialog | None = None


class Ue:
    """A UE (with its P-CSCF role on Mw) for the lab core tests.

    ``answer``: how INVITEs are answered: a list of (status, body) steps (default 180,
    then 200 with a PCMU offer); an empty list leaves them to the test (``self.incoming``).
    ``auto``: answer BYE, MESSAGE and the like with 200 (else queue them too).
    """

    def __init__(
        self,
        core: LabCore,
        user: str,
        *,
        password: str | None = None,
        usim: Usim | None = None,
        impi: str | None = None,
        host: str = "127.0.0.1",
        transport: str = "UDP",
        path: str | None = None,
        contact_params: str = "",
        answer: list[tuple[int, bytes]] | None = None,
        auto: bool = True,
    ) -> None:
        self.core = core
        self.user = user
        self.impu = f"sip:{user}@{REALM}"
        self.impi = impi or f"{user}@{REALM}"
        self.password = password if password is not None else PASSWORDS.get(user)
        self.usim = usim
        self.host = host
        self.transport = transport
        self.path = path
        self.contact_params = contact_params
        self.answer = [(180, b""), (200, SDP_PCMU)] if answer is None else answer
        self.auto = auto  # answer BYE, MESSAGE, OPTIONS, UPDATE, INFO with 200
        self.endpoint = SipEndpoint(self._on_request)
        self.endpoint.on_ack = self._on_ack
        self.digest = DigestClient(self.impi, self.password)
        self.port = 0
        self.call_id = f"{new_tag()}@{host}"
        self.cseq = 0
        self.tag = new_tag()
        self.service_route: list[str] = []
        self.last_register: Response | None = None
        self.incoming: asyncio.Queue[IncomingRequest] = asyncio.Queue()
        self.received: list[Request] = []
        self.acks: list[Request] = []
        self.notifies: list[Request] = []
        self.invites: list[IncomingRequest] = []

    async def __aenter__(self) -> Ue:
        listen = (
            self.endpoint.transport.listen_udp
            if self.transport == "UDP"
            else self.endpoint.transport.listen_tcp
        )
        listener = await listen(self.host, 0)
        self.port = listener.local[1]
        if self.transport != "UDP":
            await self.endpoint.transport.listen_udp(self.host, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.endpoint.close()

    # ------------------------------------------------------------------ addresses
    @property
    def contact_uri(self) -> str:
        transport = f";transport={self.transport.lower()}" if self.transport != "UDP" else ""
        return f"sip:{self.user}@{self.host}:{self.port}{transport}"

    @property
    def contact(self) -> str:
        return f"<{self.contact_uri}>{self.contact_params}"

    def icscf(self) -> Target:
        host, port = self.core.icscf_address
        return Target(self.transport, host, port)

    def scscf(self) -> Target:
        host, port = self.core.scscf_address
        return Target(self.transport, host, port)

    # ------------------------------------------------------------------ REGISTER
    def register_request(
        self,
        expires: int | None = 600,
        *,
        authorization: str | None = None,
        contact: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        self.cseq += 1
        hdrs = [
            ("Max-Forwards", "70"),
            ("From", f"<{self.impu}>;tag={self.tag}"),
            ("To", f"<{self.impu}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("Contact", contact if contact is not None else self.contact),
        ]
        if expires is not None:
            hdrs.append(("Expires", str(expires)))
        if self.path is not None:
            hdrs += [("Path", f"<{self.path}>"), ("Supported", "path")]
        hdrs.append(("P-Visited-Network-ID", f'"{REALM}"'))
        if authorization is None:
            authorization = (
                f'Digest username="{self.impi}", realm="{REALM}", nonce="", uri="sip:{REALM}", response=""'
            )
        if authorization:
            hdrs.append(("Authorization", authorization))
        hdrs += list(headers)
        return Request("REGISTER", f"sip:{REALM}", hdrs)

    async def register(
        self,
        expires: int | None = 600,
        *,
        authenticate: bool = True,
        contact: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        authorization: str | None = None,
        target: Target | None = None,
    ) -> Response:
        """REGISTER through the I-CSCF; a 401 is answered (Digest or AKA) when ``authenticate``."""
        target = target or self.icscf()
        response = await self._send(
            self.register_request(expires, authorization=authorization, contact=contact, headers=headers),
            target,
        )
        rounds = 0
        while response.status == 401 and authenticate and rounds < 3:
            rounds += 1
            challenge = parse_challenge(response.headers.get("www-authenticate") or "")
            if self.usim is not None and (challenge.algorithm or "").upper().startswith("AKA"):
                creds = self.digest.authorize_aka(
                    challenge, "REGISTER", f"sip:{REALM}", self.usim
                ).credentials
            else:
                creds = self.digest.authorize(challenge, "REGISTER", f"sip:{REALM}")
            response = await self._send(
                self.register_request(
                    expires, authorization=creds.format(), contact=contact, headers=headers
                ),
                target,
            )
        if response.status == 200:
            self.service_route = response.headers.get_all("service-route")
        self.last_register = response
        return response

    async def _send(self, request: Request, target: Target) -> Response:
        return await asyncio.wait_for(self.endpoint.request(request, target), 40)

    # ------------------------------------------------------------------ originating requests
    def request(
        self,
        method: str,
        uri: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        route: bool = True,
    ) -> Request:
        hdrs = [("Route", r) for r in self.service_route] if route else []
        hdrs += [
            ("Max-Forwards", "70"),
            ("From", f"<{self.impu}>;tag={new_tag()}"),
            ("To", f"<{uri}>"),
            ("Call-ID", f"{new_tag()}@{self.host}"),
            ("CSeq", f"1 {method}"),
            ("Contact", f"<{self.contact_uri}>"),
            ("P-Asserted-Identity", f"<{self.impu}>"),
        ]
        if content_type is not None:
            hdrs.append(("Content-Type", content_type))
        hdrs += list(headers)
        return Request(method, uri, hdrs, body)

    async def send(
        self,
        request: Request,
        target: Target | None = None,
        on_provisional: Callable[[Response], None] | None = None,
    ) -> Response:
        return await asyncio.wait_for(
            self.endpoint.request(request, target or self.scscf(), on_provisional=on_provisional), 40
        )

    async def call(
        self,
        uri: str,
        body: bytes = SDP_PCMU,
        *,
        content_type: str = "application/sdp",
        ack: bool = True,
        headers: Iterable[tuple[str, str]] = (),
        target: Target | None = None,
        route: bool = True,
    ) -> Call:
        """An INVITE on the Service-Route to the S-CSCF (``target``: elsewhere, e.g. the
        I-CSCF, without Route unless ``route``)."""
        invite = self.request(
            "INVITE", uri, body=body, content_type=content_type, headers=headers, route=route
        )
        call = Call(invite)
        final = await self.send(invite, target, on_provisional=call.provisional.append)
        call.final = final
        if 200 <= final.status < 300:
            call.dialog = Dialog.from_uac(invite, final)
            if ack:
                await self.send_in_dialog(call.dialog.create_ack(invite))
        return call

    async def send_in_dialog(self, request: Request) -> Response | None:
        """Send a request built by a Dialog: ACK statelessly, others in a transaction."""
        target = self.endpoint.next_hop(request)
        if request.method == "ACK":
            conn = await self.endpoint.connect(target)
            SipEndpoint.add_via(request, conn)
            self.endpoint.send_stateless(request, conn)
            return None
        return await self.send(request, target)

    # ------------------------------------------------------------------ incoming
    def _on_ack(self, request: Request, conn: Any) -> None:
        self.acks.append(request)

    async def _on_request(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        self.received.append(request)
        method = request.method
        if method == "NOTIFY":
            self.notifies.append(request)
            incoming.respond(200)
        elif method == "INVITE":
            self.invites.append(incoming)
            if not self.answer:
                await self.incoming.put(incoming)
                return
            tag = new_tag()
            contact = [("Contact", f"<{self.contact_uri}>")]
            for status, body in self.answer:
                headers = contact + ([("Content-Type", "application/sdp")] if body else [])
                incoming.respond(status, to_tag=tag, headers=headers, body=body)
                if status < 200:
                    await asyncio.sleep(0.01)
        elif method in ("BYE", "MESSAGE", "OPTIONS", "UPDATE", "INFO") and self.auto:
            incoming.respond(200, to_tag=new_tag() if request.to.tag is None else None)
        else:
            await self.incoming.put(incoming)


def reginfo_of_notify(notify: Request) -> Any:
    from webims.labcore.regevent import parse_reginfo

    assert notify.content_type == "application/reginfo+xml", notify.content_type
    return parse_reginfo(notify.body)


def header_map(response: Response) -> Mapping[str, list[str]]:
    return {name.lower(): response.headers.get_all(name) for name, _ in response.headers}


async def registered(core: LabCore, user: str, **options: object) -> Ue:
    """A :class:`Ue` of ``user``, open and registered (200) at ``core``; close it with ``__aexit__``."""
    ue = Ue(core, user, **options)  # type: ignore[arg-type]
    await ue.__aenter__()
    response = await ue.register()
    assert response.status == 200, response
    return ue
