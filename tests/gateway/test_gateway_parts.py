"""The gateway's parts on their own: flow tokens, rate limits, policy, reginfo, RFC 3263 DNS, state store."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from conftest import ORIGIN, LabFactory, token_for
from test_gateway_modes import core_bindings
from wicclient import Wic, bearer

from webims.gateway.policy import Policy, parse_rule
from webims.gateway.ratelimit import RateLimiter, TokenBucket
from webims.gateway.regevent import RegInfoError, parse_reginfo
from webims.gateway.regmsg import integrity_value, strip_keys
from webims.gateway.resolver import Resolver
from webims.gateway.state import Binding, MemoryRegistrationStore, SqliteRegistrationStore
from webims.gateway.wic import FlowTokens
from webims.labcore import LabCore
from webims.sip import ParseError, Request, Response, SipURI, parse_uri
from webims.store import Store

T = TypeVar("T")

# --------------------------------------------------------------------------- flow tokens


def test_flow_tokens_are_tamper_proof() -> None:
    tokens = FlowTokens(b"k" * 32)
    token = tokens.make("b", "abcdefghijklmnop")
    assert tokens.read(token) == ("b", "abcdefghijklmnop")
    assert len(token) == 29 and token.replace("-", "").replace("_", "").isalnum()  # a SIP URI user part
    for forged in (token[:-1] + ("A" if token[-1] != "A" else "B"), "c" + token[1:], token[:20], "", None):
        assert tokens.read(forged) is None
    assert FlowTokens(b"x" * 32).read(token) is None  # another gateway's key
    with pytest.raises(ValueError):
        tokens.make("b", "short")


def test_flow_token_macs_new_and_stored() -> None:
    """Tokens are made with keyed BLAKE2b; those a gateway up to bf21486 made with
    HMAC-SHA256 (kept in stored bindings and in the S-CSCF's Path) are still read."""
    key, body = b"k" * 32, "babcdefghijklmnop"
    blake = hashlib.blake2b(body.encode(), digest_size=9, key=key).digest()
    legacy = hmac.digest(key, body.encode(), "sha256")[:9]
    tokens = FlowTokens(key)
    assert tokens.make("b", "abcdefghijklmnop") == body + base64.urlsafe_b64encode(blake).decode()
    stored = body + base64.urlsafe_b64encode(legacy).decode()
    assert tokens.read(stored) == ("b", "abcdefghijklmnop")
    assert FlowTokens(b"x" * 32).read(stored) is None


# --------------------------------------------------------------------------- rate limits


def test_token_bucket_and_rate_limiter() -> None:
    bucket = TokenBucket(2.0, 3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) and not bucket.take(0.5)
    limiter = RateLimiter(
        register_rate=1,
        register_burst=2,
        source_register_rate=100,
        source_register_burst=3,
        request_rate=10,
        request_burst=10,
        max_violations=2,
    )
    assert limiter.check(1, "10.0.0.1", "REGISTER", 0.0).allowed
    assert limiter.check(1, "10.0.0.1", "REGISTER", 0.0).allowed
    first = limiter.check(1, "10.0.0.1", "REGISTER", 0.0)
    assert not first.allowed and first.retry_after == 1 and not first.close
    assert limiter.check(1, "10.0.0.1", "REGISTER", 0.0).close  # second violation in a row
    assert limiter.check(1, "10.0.0.1", "MESSAGE", 0.0).allowed  # other requests have their own bucket
    # per source: a second connection from the same address shares the source bucket
    assert limiter.check(2, "10.0.0.1", "REGISTER", 0.0).allowed  # the third REGISTER of that source
    assert not limiter.check(2, "10.0.0.1", "REGISTER", 0.0).allowed
    assert limiter.check(3, "10.0.0.2", "REGISTER", 0.0).allowed
    limiter.forget(1)
    assert limiter.check(1, "10.0.0.3", "REGISTER", 0.0).allowed


def test_rate_limiter_keeps_no_state_for_idle_connections() -> None:
    """Buckets that have filled up again are dropped at the next sweep (a new one would be
    the same); a connection with a violation, or a bucket still short, keeps its state."""
    limiter = RateLimiter(
        register_rate=1, register_burst=2, source_register_rate=1, source_register_burst=2,
        request_rate=1, request_burst=2, max_violations=3, sweep_interval=10.0,
    )  # fmt: skip
    assert limiter.check(1, "10.0.0.1", "REGISTER", 0.0).allowed  # registers once, then idle
    for _ in range(2):
        assert limiter.check(2, "10.0.0.2", "MESSAGE", 0.0).allowed
    assert not limiter.check(2, "10.0.0.2", "MESSAGE", 0.0).allowed  # a violation: kept
    assert limiter.tracked() == (2, 1)  # sources: for REGISTER only
    assert limiter.check(3, "10.0.0.3", "REGISTER", 9.5).allowed  # before the sweep: nothing dropped
    assert limiter.tracked() == (3, 2)
    for _ in range(2):  # at 10.0 the first sweep: 1 and its source have filled up, 3 has not
        assert limiter.check(4, "10.0.0.4", "MESSAGE", 10.0).allowed
    assert limiter.tracked() == (3, 1)
    assert not limiter.check(4, "10.0.0.4", "MESSAGE", 10.0).allowed  # 4 spent its burst: limited
    # what was dropped behaves as before: connection 1 has its full burst again
    assert [limiter.check(1, "10.0.0.1", "REGISTER", 10.0).allowed for _ in range(3)] == [True, True, False]
    assert limiter.check(2, "10.0.0.2", "MESSAGE", 10.0).allowed  # refilled; its violation is reset
    assert limiter.check(9, "10.0.0.9", "REGISTER", 30.0).allowed  # the next sweep
    assert limiter.tracked() == (3, 1)  # 1 and 4 keep their violations; 2 and 3 are full again: dropped


# --------------------------------------------------------------------------- policy


def test_mode_rules() -> None:
    policy = Policy(
        ("ims-aka", "ims-digest", "web-token", "pool"),
        ["origin=https://kiosk.example => pool", "impu=sip:*@corp.ims.test, source=10.0.0.0/8 => ims-aka",
         "* => web-token web-login"],
    )  # fmt: skip
    assert policy.allowed("https://kiosk.example:443", "sip:a@ims.test", "1.2.3.4") == ("pool",)
    assert policy.allowed(None, "sip:a@corp.ims.test", "10.1.2.3") == ("ims-aka",)
    assert policy.allowed(None, "sip:a@corp.ims.test", "11.1.2.3") == ("web-token",)  # web-login not offered
    assert Policy(("ims-digest",)).allowed(None, "sip:a@x", "1.1.1.1") == ("ims-digest",)
    for bad in ("web-token", "origin=x => web-token", "foo=bar => pool", "* => telepathy", "* =>"):
        with pytest.raises(ValueError):
            parse_rule(bad)


# --------------------------------------------------------------------------- messages


def test_integrity_protected_values_and_key_stripping() -> None:
    assert integrity_value("ims-aka", secure=True, bound=False) == "tls-pending"
    assert integrity_value("ims-digest", secure=True, bound=True) == "tls-yes"
    assert integrity_value("ims-digest", secure=False, bound=True) == "no"
    assert integrity_value("web-token", secure=True, bound=False) == "auth-done"
    assert integrity_value("web-login", secure=True, bound=False) == "auth-done"
    assert integrity_value("ims-digest-on-behalf", secure=True, bound=False) is None
    # TS 24.229 §5.4.1.2.1 example shape: the S-CSCF's challenge to the P-CSCF with ck/ik
    challenge = (
        'Digest realm="ims.test", nonce="A34Cm+Fva37UYWpGNB34JP", algorithm=AKAv1-MD5, '
        'ik="0123456789abcdeedcba9876543210", ck="9876543210abcdeedcba0123456789", qop="auth"'
    )
    stripped = strip_keys(challenge)
    assert "ck=" not in stripped and "ik=" not in stripped
    assert (
        stripped == 'Digest realm="ims.test", nonce="A34Cm+Fva37UYWpGNB34JP", algorithm=AKAv1-MD5, qop="auth"'
    )
    from webims.sip.auth_header import parse_challenge

    for value in (  # without keys (whatever the quoted values hold): relayed byte for byte
        'Digest realm="ims.test", nonce="ckik=x, ck=y", algorithm=MD5, qop="auth"',
        'Digest realm="ims.test",nonce="Zm9vY2s=",opaque="ik",algorithm=MD5',
    ):
        assert strip_keys(value) == value
        assert parse_challenge(value).without("ck", "ik").params == parse_challenge(value).params
    assert strip_keys("Digest CK=abc,realm=x") == "Digest realm=x"  # auth-param names are case-blind


# RFC 3680 §6 example (one registration, two contacts)
REGINFO = b"""<?xml version="1.0"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="1" state="partial">
  <registration aor="sip:joe@example.com" id="a7" state="active">
    <contact id="76" state="active" event="registered" duration-registered="0" expires="3600">
      <uri>sip:joe@pc887.example.com</uri>
    </contact>
    <contact id="77" state="terminated" event="deactivated" duration-registered="3600">
      <uri>sip:joe@university.example.com</uri>
    </contact>
  </registration>
</reginfo>"""


def test_parse_reginfo() -> None:
    (reg,) = parse_reginfo(REGINFO)
    assert (reg.aor, reg.state) == ("sip:joe@example.com", "active")
    assert [(c.uri, c.state, c.event, c.expires) for c in reg.contacts] == [
        ("sip:joe@pc887.example.com", "active", "registered", 3600),
        ("sip:joe@university.example.com", "terminated", "deactivated", None),
    ]
    for bad in (b"<reginfo", b"<other/>", b'<!DOCTYPE x [<!ENTITY a "b">]><reginfo/>'):
        with pytest.raises(RegInfoError):
            parse_reginfo(bad)


# --------------------------------------------------------------------------- state store


def sample_binding(bid: str = "abcdefghijklmnop") -> Binding:
    b = Binding(
        id=bid,
        mode="web-token",
        aor="sip:dave@ims.test",
        contact="<sip:x@y.invalid;transport=ws>",
        contact_uri="sip:x@y.invalid;transport=ws",
        instance="urn:uuid:1",
        reg_id=1,
        impu="sip:dave@ims.test",
        expires_at=4_000_000_000.0,
        call_id="c@webims",
        cseq=3,
        password="never stored",
    )
    return b


async def test_sqlite_store_write_behind_and_reload(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    try:
        regs = SqliteRegistrationStore(store, flush_interval=0.05)
        key = await regs.secret("k")
        assert key == await regs.secret("k") and len(key) == 32
        b = sample_binding()
        regs.put("binding", b.id, b.to_record(), b.expires_at)
        regs.put("binding", "gone", {"id": "gone"}, b.expires_at)
        regs.delete("binding", "gone")
        regs.put("binding", "old", {"id": "old"}, 1.0)  # expired: not loaded
        await regs.flush()
        assert regs.writes == 1  # one transaction for the batch
        again = SqliteRegistrationStore(store)
        (record,) = await again.load("binding", 100.0)
        assert "password" not in record
        loaded = Binding.from_record(record)
        assert (loaded.id, loaded.instance, loaded.cseq, loaded.password) == (b.id, "urn:uuid:1", 3, None)
    finally:
        store.close()
    memory = MemoryRegistrationStore()
    memory.put("binding", "a", {"id": "a"}, 10.0)
    assert await memory.load("binding", 5.0) == [{"id": "a"}] and await memory.load("binding", 11.0) == []


async def test_sqlite_store_writes_batches_larger_than_one_statement(tmp_path: Path) -> None:
    """More rows than one INSERT / DELETE statement carries: all written, updated and deleted."""
    store = Store(tmp_path / "s.sqlite3")
    try:
        regs = SqliteRegistrationStore(store, flush_interval=0.05)
        for i in range(450):
            regs.put("binding", f"b{i}", {"id": f"b{i}", "v": 1}, 1e10)
        await regs.flush()
        for i in range(450):
            if i % 3 == 0:
                regs.delete("binding", f"b{i}")
            else:
                regs.put("binding", f"b{i}", {"id": f"b{i}", "v": 2}, 1e10)
        regs.delete("binding", "never-written")
        await regs.flush()
        loaded = {r["id"]: r["v"] for r in await SqliteRegistrationStore(store).load("binding", 0.0)}
        assert loaded == {f"b{i}": 2 for i in range(450) if i % 3}
        assert regs.writes == 2
    finally:
        store.close()


class _TimedStore(Store):
    """The real store, noting when each write starts and ends; ``during`` runs inside the first."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.during: list[Callable[[], None]] = []

    async def awrite(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        self.starts.append(loop.time())
        while self.during:
            self.during.pop()()
        try:
            return await super().awrite(fn)
        finally:
            self.ends.append(loop.time())


async def test_sqlite_store_changes_during_a_write_wait_for_the_next_interval(tmp_path: Path) -> None:
    """Write-behind at one write per ``flush_interval`` under load: a change made while a write
    runs is written an interval after it, not straight away (each write is a hand-over to the
    store's thread)."""
    store = _TimedStore(tmp_path / "s.sqlite3")
    try:
        regs = SqliteRegistrationStore(store, flush_interval=0.1)
        store.during.append(lambda: regs.put("binding", "b", {"id": "b"}, 1e10))
        regs.put("binding", "a", {"id": "a"}, 1e10)
        for _ in range(300):
            if regs.writes == 2:
                break
            await asyncio.sleep(0.01)
        assert regs.writes == 2 and len(store.starts) == 2
        assert store.starts[1] - store.ends[0] >= 0.08  # the interval (libuv rounds to ms)
        loaded = await SqliteRegistrationStore(store).load("binding", 0.0)
        assert sorted(r["id"] for r in loaded) == ["a", "b"]
    finally:
        store.close()


async def test_sqlite_store_keeps_changes_of_a_failed_write_and_retries(tmp_path: Path) -> None:
    """A write that fails (a locked or full disk) loses nothing: ``flush`` returns (it does not
    wait for the disk), and the change is written by the retry a second later."""
    store = _TimedStore(tmp_path / "s.sqlite3")

    def locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    try:
        regs = SqliteRegistrationStore(store, flush_interval=0.05)
        store.during.append(locked)
        regs.put("binding", "a", {"id": "a"}, 1e10)
        await regs.flush()
        assert regs.writes == 0 and len(store.starts) == 1
        for _ in range(300):
            if regs.writes == 1:
                break
            await asyncio.sleep(0.01)
        assert regs.writes == 1 and store.starts[1] - store.starts[0] >= 0.9  # retried after 1 s
        (record,) = await SqliteRegistrationStore(store).load("binding", 0.0)
        assert record == {"id": "a"}
    finally:
        store.close()


# --------------------------------------------------------------------------- RFC 3263, DNS server on loopback

ZONE = {
    ("ims.test.", "NAPTR"): [
        '10 50 "s" "SIP+D2T" "" _sip._tcp.ims.test.',
        '20 50 "s" "SIP+D2U" "" _sip._udp.ims.test.',
        '5 50 "s" "SIPS+D2T" "" _sips._tcp.ims.test.',
    ],
    ("_sip._tcp.ims.test.", "SRV"): ["10 60 5070 icscf1.ims.test.", "20 0 5071 icscf2.ims.test."],
    ("_sip._udp.ims.test.", "SRV"): ["10 0 5072 icscf1.ims.test."],
    ("icscf1.ims.test.", "A"): ["127.0.0.1"],
    ("icscf2.ims.test.", "A"): ["127.0.0.2"],
    ("icscf2.ims.test.", "AAAA"): ["::1"],
    ("_sip._udp.srv-only.test.", "SRV"): ["0 0 6000 icscf2.ims.test."],
    ("plain.test.", "A"): ["127.0.0.3"],
}


class DnsServer(asyncio.DatagramProtocol):
    def __init__(self, zone: dict[tuple[str, str], list[str]]) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None
        self.questions: list[tuple[str, str]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name, rdtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
        self.questions.append((name, rdtype))
        records = self.zone.get((name, rdtype))
        if records:
            response.answer.append(dns.rrset.from_text(name, 60, dns.rdataclass.IN, rdtype, *records))
        elif not any(n == name for n, _ in self.zone):
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@contextlib.asynccontextmanager
async def dns_server(zone: dict[tuple[str, str], list[str]]) -> AsyncIterator[tuple[DnsServer, int]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: DnsServer(zone), local_addr=("127.0.0.1", 0)
    )
    try:
        yield protocol, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


def uri(text: str) -> SipURI:
    value = parse_uri(text)
    assert isinstance(value, SipURI)
    return value


async def test_rfc3263_naptr_srv_a() -> None:
    async with dns_server(ZONE) as (server, port):
        resolver = Resolver([f"127.0.0.1:{port}"], transports=("UDP", "TCP"))
        targets = await resolver.resolve(uri("sip:ims.test"))
        # NAPTR order: SIP+D2T (10) before SIP+D2U (20); SIPS is not ours; SRV priority 10 before 20
        assert [(t.transport, t.host, t.port) for t in targets] == [
            ("TCP", "127.0.0.1", 5070),
            ("TCP", "127.0.0.2", 5071),
            ("TCP", "::1", 5071),
            ("UDP", "127.0.0.1", 5072),
        ]
        asked = len(server.questions)
        assert (
            await resolver.resolve(uri("sip:ims.test")) == targets and len(server.questions) == asked
        )  # cached
        udp = await resolver.resolve(uri("sip:ims.test;transport=udp"))
        assert [(t.transport, t.port) for t in udp] == [("UDP", 5072)]
        srv_only = await resolver.resolve(uri("sip:srv-only.test"))
        assert [(t.transport, t.host, t.port) for t in srv_only][:1] == [("UDP", "127.0.0.2", 6000)]
        plain = await resolver.resolve(uri("sip:plain.test"))
        assert [(t.transport, t.host, t.port) for t in plain] == [("UDP", "127.0.0.3", 5060)]
        explicit = await resolver.resolve(uri("sip:plain.test:5999;transport=tcp"))
        assert [(t.transport, t.host, t.port) for t in explicit] == [("TCP", "127.0.0.3", 5999)]
        numeric = await resolver.resolve(uri("sip:10.1.2.3"))
        assert [(t.transport, t.host, t.port) for t in numeric] == [("UDP", "10.1.2.3", 5060)]


async def test_gateway_finds_the_icscf_by_dns(core: LabCore, make_lab: LabFactory) -> None:
    host, icscf_port = core.icscf_address
    zone = {
        ("ims.test.", "NAPTR"): ['10 50 "s" "SIP+D2U" "" _sip._udp.ims.test.'],
        ("_sip._udp.ims.test.", "SRV"): [f"10 0 {icscf_port} icscf.ims.test."],
        ("icscf.ims.test.", "A"): [host],
    }
    async with (
        dns_server(zone) as (_, port),
        make_lab(icscf="sip:ims.test", dns_servers=(f"127.0.0.1:{port}",)) as lab,
    ):
        wic = Wic(lab.url, origin=ORIGIN, user="dave")
        await wic.connect()
        try:
            assert (await wic.register(headers=[bearer(token_for(lab.auth, "dave"))])).status == 200
            assert core_bindings(lab, "sip:dave@ims.test")
        finally:
            await wic.close()


def test_register_builder_as_pcscf_and_as_ue() -> None:
    from webims.gateway.regmsg import RegisterBuilder, tna_credentials
    from webims.sip import parse

    common = dict(
        request_uri="sip:ims.test", aor="sip:dave@ims.test", call_id="c1@webims", from_tag="t1", cseq=7,
        contact='<sip:x@y.invalid;transport=ws>;reg-id=1;+sip.instance="<urn:uuid:1>"', expires=600,
        path="<sip:bTOKEN@127.0.0.2:5064;lr;ob>", wic_ip="192.0.2.7", outbound=True,
        authorization=tna_credentials("dave@ims.test", "ims.test", "sip:ims.test"),
    )  # fmt: skip
    pcscf = RegisterBuilder(
        as_pcscf=True,
        pvni="ims.test",
        generated_at="127.0.0.2",
        access_network_info='IEEE-802.11; network-provided; "ue-ip={ip}"',
    )

    def wire(built: Request) -> Request:  # the endpoint adds our Via when it sends
        built.headers.add("Via", "SIP/2.0/UDP 127.0.0.2:5064;branch=z9hG4bK1", first=True)
        parsed = parse(bytes(built))
        assert isinstance(parsed, Request)
        return parsed

    request = wire(pcscf.build(**common))  # type: ignore[arg-type]
    assert request.headers.get("Path") == "<sip:bTOKEN@127.0.0.2:5064;lr;ob>"
    assert {"path", "outbound"} <= request.option_tags("supported")
    assert request.headers.get("P-Visited-Network-ID") == '"ims.test"'
    assert "icid-value=" in (request.headers.get("P-Charging-Vector") or "")
    assert request.headers.get("P-Access-Network-Info") == 'IEEE-802.11; network-provided; "ue-ip=192.0.2.7"'
    assert 'integrity-protected="auth-done"' in (request.headers.get("Authorization") or "")
    assert request.contact[0].expires == 600 and request.cseq.seq == 7
    ue = RegisterBuilder(as_pcscf=False, pvni="ims.test", generated_at="127.0.0.2", access_network_info="x")
    plain = wire(ue.build(**{**common, "path": None}))  # type: ignore[arg-type]
    for name in ("Path", "P-Visited-Network-ID", "P-Charging-Vector", "P-Access-Network-Info"):
        assert name not in plain.headers


def test_config_errors_name_the_key() -> None:
    from webims.config import ConfigError, load_config
    from webims.gateway.settings import GatewayConfig

    cfg = load_config(None, environ={"WEBIMS_GATEWAY__MODES": "web-token,pool"}).get(GatewayConfig)
    assert cfg.modes == ("web-token", "pool") and cfg.pvni == "ims.test"
    for env, key in (
        ({"WEBIMS_GATEWAY__MODE_RULES": '["* => telepathy"]'}, "gateway.mode_rules"),
        ({"WEBIMS_GATEWAY__MODES": "web-token,carrier-pigeon"}, "gateway.modes"),
        ({"WEBIMS_GATEWAY__POOLS": "web"}, "gateway.pool_passwords"),
        ({"WEBIMS_GATEWAY__TOPOLOGY": "behind-p-cscf"}, "gateway.pcscf"),
        ({"WEBIMS_GATEWAY__GRACE_PERIOD": "-1"}, "gateway.grace_period"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(None, environ=env)


# --------------------------------------------------------------------------- token fast paths


def test_bearer_fast_path_agrees_with_the_parser() -> None:
    """The WIC's ``Authorization: Bearer`` is read without the generic auth-header parser; it
    must find what that parser finds (RFC 6750 §2.1 b64token) and leave the rest to it."""
    import dataclasses

    from webims.auth.identity import Identity
    from webims.gateway.core import _BEARER, _without_claims
    from webims.sip.auth_header import parse_credentials

    values = [
        "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "bearer abc-._~+/==", "BEARER  x",
        "Bearer abc def", 'Bearer realm="x"', "Bearer", "Bearerx abc", "Digest username=\"a\"", "Bearer a=b",
    ]  # fmt: skip
    for value in values:
        fast = _BEARER.fullmatch(value)
        try:
            cred = parse_credentials(value)
            slow = cred.token if cred.is_bearer and cred.token else None
        except ParseError:
            slow = None
        assert (fast.group(1) if fast else None) in (slow, None), value
        if fast is None and slow is not None:
            raise AssertionError(f"fast path misses {value!r}")
    identity = Identity("s", "https://i", 1.0, frozenset({"register"}), "c", "i@x", ("sip:a@x",), jti="j",
                        claims={"sub": "s"})  # fmt: skip
    assert _without_claims(identity) == dataclasses.replace(identity, claims={})
    assert {f.name for f in dataclasses.fields(Identity)} == {
        "sub", "issuer", "expires_at", "scopes", "client_id", "impi", "impus", "pool", "allocation", "jti",
        "dest", "source", "claims",
    }  # a new Identity field must be copied by _without_claims too  # fmt: skip


def test_granted_expires_from_echoed_and_rewritten_contacts() -> None:
    """RFC 3261 §10.2.4: our contact's ``expires`` in the 2xx. A registrar that echoes the
    Contact as sent is read from its text; one that rewrites it (Kamailio: another order,
    other case) is parsed; neither lets another contact's expiry count for ours."""
    from webims.gateway.regmsg import granted_expires
    from webims.sip import Response, parse

    ours = '<sip:x@y.invalid;transport=ws>;reg-id=1;+sip.instance="<urn:uuid:1>"'

    def ok(*contacts: str, expires: str | None = None) -> Response:
        head = (
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.2:5064;branch=z9hG4bK1\r\n"
            "From: <sip:dave@ims.test>;tag=a\r\nTo: <sip:dave@ims.test>;tag=b\r\nCall-ID: c1\r\n"
            "CSeq: 2 REGISTER\r\n" + "".join(f"Contact: {c}\r\n" for c in contacts)
            + (f"Expires: {expires}\r\n" if expires else "") + "Content-Length: 0\r\n\r\n"
        )  # fmt: skip
        response = parse(head.encode())
        assert isinstance(response, Response)
        return response

    uri = "sip:x@y.invalid;transport=ws"
    cases = [
        (ok(f"{ours};expires=3240"), 3240),  # echoed as sent
        (ok(f"{ours};expires=3240;received=x"), 3240),
        (ok(f"<sip:other@y.invalid>;expires=5, {ours};expires=77"), 77),  # ours second on one line
        (ok(f'<{uri}>;+sip.instance="<urn:uuid:1>";EXPIRES=120;reg-id=1'), 120),  # rewritten
        (ok(f"{ours};expires=12x"), 600),  # not a number after all: parsed, unusable -> default
        (ok("<sip:other@y.invalid>;expires=5", expires="900"), 900),  # not ours: the Expires header
        (ok("<sip:other@y.invalid>;expires=5"), 600),
    ]
    for response, want in cases:
        assert granted_expires(response, uri, 600, registered=ours) == want, response.headers.get("Contact")
        assert granted_expires(response, uri, 600) == want  # the parsing path agrees


async def test_verified_tokens_are_cached_but_rechecked_on_each_use() -> None:
    """A token verified once is not verified again (its signing key can even be gone), yet
    each use re-checks scope (TS 24.371 §7.2.1), revocation and expiry."""
    import time

    from joserfc import jwt
    from joserfc.jwk import ECKey

    from webims.auth.errors import InsufficientScope, InvalidToken
    from webims.auth.verify import TokenVerifier, TrustedIssuer
    from webims.gateway.core import Gateway
    from webims.gateway.settings import GatewayConfig

    key = ECKey.generate_key("P-256", parameters={"kid": "k", "use": "sig"})
    known: dict[str, ECKey] = {"k": ECKey.import_key(key.as_dict(private=False))}

    class Keys:  # a KeySource whose keys the test removes
        def find(self, kid: str) -> ECKey | None:
            return known.get(kid)

        def needs_refresh(self) -> bool:
            return False

        async def refresh(self) -> bool:
            return False

    keys = Keys()
    revoked: set[str] = set()
    clock = [time.time()]
    verifier = TokenVerifier(
        [TrustedIssuer("https://i", keys, ("webims",))], revoked=revoked.__contains__, clock=lambda: clock[0]
    )
    gw = Gateway(GatewayConfig(icscf="sip:127.0.0.1:5060", domain="ims.test"), verifier=verifier)

    def token(jti: str, scope: str = "register call") -> str:
        claims = {"iss": "https://i", "aud": "webims", "sub": "alice", "exp": int(clock[0]) + 600,
                  "jti": jti, "scope": scope, "impu": ["sip:alice@ims.test"]}  # fmt: skip
        return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "k"}, claims, key)

    first, second = token("j1"), token("j2")
    assert (await gw.verify_token(first, scope="register")).sub == "alice"
    known.clear()  # the signing key is gone: only a cached verification can pass now
    assert (await gw.verify_token(first, scope="call")).impus == ("sip:alice@ims.test",)
    with pytest.raises(InvalidToken, match="unknown signing key"):
        await gw.verify_token(second, scope="register")  # never verified: checked in full
    with pytest.raises(InsufficientScope):
        await gw.verify_token(first, scope="message")  # the scope, on every use
    revoked.add("j1")
    with pytest.raises(InvalidToken, match="revoked"):
        await gw.verify_token(first, scope="register")
    revoked.clear()
    clock[0] += 700  # past exp + leeway
    with pytest.raises(InvalidToken, match="expired"):
        await gw.verify_token(first, scope="register")


def _response(*lines: str, status: str = "401 Unauthorized") -> Response:
    from webims.sip import parse

    head = (
        f"SIP/2.0 {status}\r\nVia: SIP/2.0/UDP 127.0.0.2:5064;branch=z9hG4bK1\r\n"
        "From: <sip:dave@ims.test>;tag=a\r\nTo: <sip:dave@ims.test>;tag=b\r\nCall-ID: c1\r\n"
        "CSeq: 1 REGISTER\r\n" + "".join(f"{line}\r\n" for line in lines) + "Content-Length: 0\r\n\r\n"
    )
    response = parse(head.encode())
    assert isinstance(response, Response)
    return response


def test_challenge_mode_read_from_the_text_agrees_with_the_parser() -> None:
    """A 401's mode (TS 24.229 §5.2.2.1: AKA or digest), read from a plain challenge's text,
    is what the parsed challenge says; quoted strings and odd challenges go to the parser."""
    from webims.gateway.regmsg import aka_algorithm, challenge_mode, first_digest_challenge

    cases = [
        ('WWW-Authenticate: Digest realm="ims.test", nonce="bm9uY2U=", algorithm=AKAv1-MD5', "ims-aka"),
        ('WWW-Authenticate: Digest realm="ims.test", nonce="bm9uY2U=", algorithm="AKAv2-MD5"', "ims-aka"),
        ('WWW-Authenticate: Digest realm="ims.test", nonce="n", algorithm=MD5, qop="auth"', "ims-digest"),
        ('WWW-Authenticate: Digest realm="ims.test", nonce="n", qop="auth"', "ims-digest"),  # MD5
        ('WWW-Authenticate: Digest realm="x, algorithm=AKAv1-MD5", nonce="n"', "ims-digest"),  # quoted
        ('WWW-Authenticate: Digest realm="algorithm", nonce="n", algorithm=AKAv1-MD5', "ims-aka"),
        ('WWW-Authenticate: Digest realm="a\\"b", nonce="n", algorithm=AKAv1-MD5', "ims-aka"),
        ('WWW-Authenticate: DIGEST nonce="n",algorithm=akav1-md5', "ims-aka"),
        ('Proxy-Authenticate: Digest realm="ims.test", nonce="n", algorithm=AKAv1-MD5', "ims-aka"),
        ('WWW-Authenticate: Bearer realm="ims.test"', "ims-digest"),
    ]
    for line, want in cases:
        response = _response(line)
        assert challenge_mode(response) == want, line
        challenge = first_digest_challenge(response)
        parsed = "ims-aka" if challenge is not None and aka_algorithm(challenge.algorithm) else "ims-digest"
        assert parsed == want, line


def test_notify_without_news_is_not_parsed_but_any_change_is() -> None:
    """RFC 3680 §5.3: a reginfo document with nothing terminated or shortened changes no binding
    (read without an XML parse); one that could is always parsed, so nothing is missed."""
    from webims.gateway.regevent import _no_news

    active = REGINFO.replace(b' state="terminated" event="deactivated"', b' state="active" event="created"')
    assert _no_news(active) and not _no_news(REGINFO)
    assert _no_news(active + b"\n")
    instance = b'<unknown-param name="+sip.instance">&quot;&lt;urn:uuid:1&gt;&quot;</unknown-param></contact>'
    assert _no_news(active.replace(b"</contact>", instance, 1))  # predefined entities spell nothing
    shortened = active.replace(b'event="created"', b'event="shortened"')
    assert not _no_news(shortened)
    for sneaky in (
        active.replace(b'state="active" event="created"', b'state="&#116;erminated" event="expired"'),
        active.replace(b'state="active" event="created"', b'state="&#x74;erminated" event="expired"'),
        active.replace(b"<registration", b"<!-- x --><registration"),
        active[:-3],  # not a whole document: parsed, and refused
        active.replace(b"<reginfo", b"<!DOCTYPE reginfo><reginfo"),
    ):
        assert not _no_news(sneaky)
    with pytest.raises(RegInfoError):
        parse_reginfo(active[:-3])


def test_plain_contact_of_a_notifier() -> None:
    """The remote target of a reg-event subscription (RFC 6665 §4.1.2.4) from a lone
    ``Contact: <uri>`` is read from the text; anything else is left to the parser."""
    from webims.gateway.regevent import _plain_contact

    target = "sip:scscf@127.0.0.2:5064;transport=tcp"
    assert _plain_contact([f"<{target}>"]) == target
    for values in (
        [],
        ["<sip:a@x>", "<sip:b@x>"],
        ["<sip:a@x>;expires=60"],
        ['"S-CSCF" <sip:a@x>'],
        ["sip:a@x"],
        ["<tel:+1234>"],
    ):
        assert _plain_contact(values) is None, values
