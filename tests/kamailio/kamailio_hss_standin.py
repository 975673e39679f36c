"""A minimal HSS stand-in for exercising Kamailio's I-CSCF/S-CSCF over Cx (tests only).

Not webims' HSS (webims.labcore.hss is built elsewhere): just enough of TS 29.228 /
TS 29.229 for Kamailio 5.6 to register and route users. It records every request it
receives so tests can assert on what Kamailio sends, and answers with the AVPs that
Kamailio was found to need (see the module docstring of webims.testing.kamailio).

Subscribers: SIP Digest (HA1 kept, MD5) or Digest-AKAv1-MD5 (K, OPc, AMF, SQN).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, TypeVar

from webims.aka import compute_opc, generate_vector, verify_auts
from webims.diameter import (
    AUTH_SCHEME_AKAV1_MD5,
    AUTH_SCHEME_SIP_DIGEST,
    AnswerReceived,
    Capabilities,
    CommandCode,
    DiameterPeer,
    ExperimentalResultCode,
    Group,
    Message,
    PeerOpened,
    RequestReceived,
    ResultCode,
    Role,
    ServerAssignmentType,
    ServerCapabilities,
    SipAuthDataItem,
    SipDigestAuthenticate,
    build_lia,
    build_maa,
    build_saa,
    build_uaa,
)

T = TypeVar("T")


@dataclass
class Subscriber:
    impi: str
    impus: tuple[str, ...]
    password: str | None = None  # SIP Digest (MD5)
    k: bytes | None = None  # AKA
    opc: bytes | None = None
    amf: bytes = b"\x80\x00"
    sqn: int = 32
    server_name: str | None = None
    registered: bool = False

    @classmethod
    def digest(cls, user: str, realm: str, password: str) -> Subscriber:
        return cls(f"{user}@{realm}", (f"sip:{user}@{realm}",), password=password)

    @classmethod
    def aka(cls, user: str, realm: str, k: bytes, op: bytes, amf: bytes = b"\x80\x00") -> Subscriber:
        return cls(f"{user}@{realm}", (f"sip:{user}@{realm}",), k=k, opc=compute_opc(k, op), amf=amf)


def user_data_xml(sub: Subscriber) -> str:
    """IMS subscription profile, TS 29.228 Annex E (the minimum Kamailio's parser accepts)."""
    identities = "".join(
        f"<PublicIdentity><BarringIndication>0</BarringIndication><Identity>{impu}</Identity>"
        "<Extension><IdentityType>0</IdentityType></Extension></PublicIdentity>"
        for impu in sub.impus
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><IMSSubscription>'
        f"<PrivateID>{sub.impi}</PrivateID><ServiceProfile>{identities}</ServiceProfile>"
        "</IMSSubscription>"
    )


@dataclass
class StandinHss:
    """Asyncio Diameter server answering CER/DWR/DPR, UAR, MAR, SAR and LIR."""

    realm: str
    origin_host: str = "hss.ims.test"
    host: str = "127.0.0.1"
    subscribers: list[Subscriber] = field(default_factory=list)
    #: UAA for a user with no S-CSCF assigned: Server-Capabilities (True) or nothing else.
    mandatory_capabilities: tuple[int, ...] = (0,)
    port: int = 0
    requests: list[Message] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    #: The CER of each peer that completed the capabilities exchange.
    cers: list[Message] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _peers: dict[str, tuple[DiameterPeer, asyncio.StreamWriter]] = field(default_factory=dict)
    _waiting: dict[int, asyncio.Future[Message]] = field(default_factory=dict)

    def find(self, identity: str) -> Subscriber | None:
        for sub in self.subscribers:
            if identity == sub.impi or identity in sub.impus:
                return sub
        return None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def commands(self, code: int) -> list[Message]:
        return [m for m in self.requests if m.command_code == code]

    async def request(self, origin_host: str, message: Message, timeout: float = 10.0) -> Message:
        """Send a request (RTR, PPR) to the connected peer ``origin_host``; its answer."""
        peer, writer = self._peers[origin_host]
        stamped = peer.send_request(message, time.monotonic())
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[stamped.hop_by_hop] = future
        writer.write(peer.data_to_send())
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(stamped.hop_by_hop, None)

    # --- connection ------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        caps = Capabilities(self.origin_host, self.realm, (ip_address(self.host),), product_name="standin")
        peer = DiameterPeer(caps, Role.RESPONDER, now=time.monotonic())
        try:
            while not peer.closed:
                deadline = peer.get_timer()
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    data = await asyncio.wait_for(reader.read(65536), timeout)
                except TimeoutError:
                    peer.handle_timer(time.monotonic())
                    writer.write(peer.data_to_send())
                    continue
                if not data:
                    peer.connection_lost(time.monotonic())
                    break
                for event in peer.receive_data(data, time.monotonic()):
                    if isinstance(event, PeerOpened):
                        self.opened.append(event.origin_host)
                        self.cers.append(event.capabilities)
                        self._peers[event.origin_host] = (peer, writer)
                    elif isinstance(event, RequestReceived):
                        self.requests.append(event.message)
                        peer.send_answer(self._answer(event.message))
                    elif isinstance(event, AnswerReceived):
                        waiting = self._waiting.get(event.request.hop_by_hop)
                        if waiting is not None and not waiting.done():
                            waiting.set_result(event.message)
                writer.write(peer.data_to_send())
                await writer.drain()
        finally:
            self._tasks.discard(task)
            for host, (_, w) in list(self._peers.items()):
                if w is writer:
                    del self._peers[host]
            writer.close()

    # --- Cx -------------------------------------------------------------------------------------------
    def _answer(self, m: Message) -> Message:
        code = m.command_code
        if code == CommandCode.USER_AUTHORIZATION:
            sub = self.find(m.require_str("Public-Identity"))
            if sub is None:
                return build_uaa(
                    m,
                    result=ExperimentalResultCode.DIAMETER_ERROR_USER_UNKNOWN,
                    origin_host=self.origin_host,
                    origin_realm=self.realm,
                )
            if sub.server_name is not None:
                return build_uaa(
                    m,
                    result=ExperimentalResultCode.DIAMETER_SUBSEQUENT_REGISTRATION,
                    server_name=sub.server_name,
                    origin_host=self.origin_host,
                    origin_realm=self.realm,
                )
            return build_uaa(
                m,
                result=ExperimentalResultCode.DIAMETER_FIRST_REGISTRATION,
                server_capabilities=ServerCapabilities(mandatory=self.mandatory_capabilities),
                origin_host=self.origin_host,
                origin_realm=self.realm,
            )
        if code == CommandCode.MULTIMEDIA_AUTH:
            return self._maa(m)
        if code == CommandCode.SERVER_ASSIGNMENT:
            return self._saa(m)
        if code == CommandCode.LOCATION_INFO:
            sub = self.find(m.require_str("Public-Identity"))
            if sub is None:
                return build_lia(
                    m,
                    result=ExperimentalResultCode.DIAMETER_ERROR_USER_UNKNOWN,
                    origin_host=self.origin_host,
                    origin_realm=self.realm,
                )
            if sub.server_name is not None:
                return build_lia(
                    m,
                    result=ResultCode.DIAMETER_SUCCESS,
                    server_name=sub.server_name,
                    origin_host=self.origin_host,
                    origin_realm=self.realm,
                )
            return build_lia(
                m,
                result=ExperimentalResultCode.DIAMETER_UNREGISTERED_SERVICE,
                server_capabilities=ServerCapabilities(mandatory=self.mandatory_capabilities),
                origin_host=self.origin_host,
                origin_realm=self.realm,
            )
        return build_uaa(
            m,
            result=ResultCode.DIAMETER_COMMAND_UNSUPPORTED,
            origin_host=self.origin_host,
            origin_realm=self.realm,
        )

    def _maa(self, m: Message) -> Message:
        sub = self.find(m.require_str("User-Name"))
        if sub is None or m.require_str("Public-Identity") not in sub.impus:
            return build_maa(
                m,
                result=ExperimentalResultCode.DIAMETER_ERROR_USER_UNKNOWN,
                origin_host=self.origin_host,
                origin_realm=self.realm,
            )
        if sub.server_name is None:
            sub.server_name = m.require_str("Server-Name")
        item = SipAuthDataItem.from_group(m.require_group("SIP-Auth-Data-Item"))
        if sub.password is not None:
            ha1 = hashlib.md5(f"{sub.impi}:{self.realm}:{sub.password}".encode()).hexdigest()
            answer = SipAuthDataItem(
                authentication_scheme=AUTH_SCHEME_SIP_DIGEST,
                digest=SipDigestAuthenticate(realm=self.realm, qop="auth", ha1=ha1),
            )
        else:
            assert sub.k is not None and sub.opc is not None
            if item.authorization:  # resynchronisation: RAND || AUTS (TS 33.203 §6.1.2)
                sub.sqn = verify_auts(sub.k, sub.opc, item.authorization[:16], item.authorization[16:]) + 32
            sub.sqn += 32
            av = generate_vector(sub.k, sub.opc, sub.amf, sub.sqn)
            # SIPp 3.6.1 takes RES as a C string for the digest: a RES holding a 0x00 byte
            # (about 3% of RANDs) gets a wrong response (403). Pick a RAND without that.
            while b"\0" in av.xres:
                av = generate_vector(sub.k, sub.opc, sub.amf, sub.sqn)
            answer = SipAuthDataItem(
                authentication_scheme=AUTH_SCHEME_AKAV1_MD5,
                item_number=1,
                authenticate=av.rand + av.autn,
                authorization=av.xres,
                confidentiality_key=av.ck,
                integrity_key=av.ik,
            )
        return build_maa(
            m,
            result=ResultCode.DIAMETER_SUCCESS,
            user_name=sub.impi,
            public_identity=m.require_str("Public-Identity"),
            sip_auth_data_items=[answer],
            origin_host=self.origin_host,
            origin_realm=self.realm,
        )

    def _saa(self, m: Message) -> Message:
        identities = m.get_all_str("Public-Identity")
        sub = self.find(m.get_str("User-Name") or "") or (self.find(identities[0]) if identities else None)
        if sub is None:
            return build_saa(
                m,
                result=ExperimentalResultCode.DIAMETER_ERROR_USER_UNKNOWN,
                origin_host=self.origin_host,
                origin_realm=self.realm,
            )
        sat = m.require_int("Server-Assignment-Type")
        if sat in (ServerAssignmentType.REGISTRATION, ServerAssignmentType.RE_REGISTRATION):
            sub.server_name = m.require_str("Server-Name")
            sub.registered = True
        elif sat == ServerAssignmentType.UNREGISTERED_USER:
            sub.server_name = m.require_str("Server-Name")
        elif sat in (
            ServerAssignmentType.USER_DEREGISTRATION,
            ServerAssignmentType.TIMEOUT_DEREGISTRATION,
            ServerAssignmentType.ADMINISTRATIVE_DEREGISTRATION,
        ):
            sub.registered = False
            sub.server_name = None
            return build_saa(
                m, result=ResultCode.DIAMETER_SUCCESS, origin_host=self.origin_host, origin_realm=self.realm
            )
        return build_saa(
            m,
            result=ResultCode.DIAMETER_SUCCESS,
            user_name=sub.impi,
            user_data=user_data_xml(sub),
            origin_host=self.origin_host,
            origin_realm=self.realm,
        )


_INT_TYPES = {"Integer32", "Integer64", "Unsigned32", "Unsigned64", "Enumerated"}


def describe(m: Message | Group, indent: str = "") -> list[str]:
    """One line per AVP (nested for Grouped), for failure reports and exploration."""
    lines: list[str] = []
    for a in m.avps:
        d = a.definition
        kind = d.type.value if d is not None else ""
        if kind == "Grouped":
            lines.append(f"{indent}{a.name}:")
            lines += describe(a.as_group(), indent + "  ")
        elif kind in _INT_TYPES:
            lines.append(f"{indent}{a.name} = {a.as_int()}")
        elif kind in ("UTF8String", "DiameterIdentity", "DiameterURI"):
            lines.append(f"{indent}{a.name} = {a.as_str()!r}")
        else:
            lines.append(f"{indent}{a.name} = {a.data!r}")
    return lines


class ThreadedHss:
    """A :class:`StandinHss` on its own event loop thread, for synchronous tests.

    Kamailio, SIPp and the harness are driven synchronously (blocking calls), so the
    HSS must not share the test's event loop.
    """

    def __init__(self, hss: StandinHss) -> None:
        self.hss = hss
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="standin-hss", daemon=True)

    def __enter__(self) -> ThreadedHss:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.hss.start(), self.loop).result(10)
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        """Run ``coro`` on the HSS's loop from the test's thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.hss.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
