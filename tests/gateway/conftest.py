"""Fixtures for the gateway tests: the lab IMS core, the authorization function, the gateway on WSS.

Everything is real and on loopback: the lab core (HSS + I-CSCF + S-CSCF,
:func:`webims.labcore.start_labcore`), an :class:`~webims.auth.AuthService` on its own
SQLite file, the gateway with its WSS server (self-signed certificate) and its Mw
side on 127.0.0.2 (the address the core trusts for Trusted Node Authentication).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt

from webims.aka import Usim, compute_opc
from webims.auth.service import AuthService, ServiceSettings
from webims.config import load_config
from webims.gateway.core import Gateway
from webims.gateway.run import GatewayServer, running_gateway
from webims.gateway.settings import GatewayConfig
from webims.gateway.state import MemoryRegistrationStore, RegistrationStore
from webims.labcore import LabCore, start_labcore
from webims.labcore.hss import SubscriberSpec, SubscriberStore
from webims.store import Store
from webims.transport import ensure_self_signed, server_context

REALM = "ims.test"
GATEWAY_HOST = "127.0.0.2"
ORIGIN = "https://wic.example.com"
ISSUER = "https://127.0.0.1:9443"
AKA_K = b"webims-test-k001"
AKA_OP = b"webims-operator!"
AKA_AMF = b"00"
PASSWORDS = {name: f"{name}-secret" for name in ("alice", "bob", "dave", "erin", "frank", "gina", "hank")}
POOL_PASSWORD = "webpool-secret"
WEB_PASSWORD = "web-password-1"


def subscriber_specs() -> list[SubscriberSpec]:
    specs = [
        SubscriberSpec(impi=f"{name}@{REALM}", impus=(f"sip:{name}@{REALM}",), password=pw)
        for name, pw in PASSWORDS.items() if name != "alice"
    ]  # fmt: skip
    specs.append(
        SubscriberSpec(
            impi=f"alice@{REALM}", impus=(f"sip:alice@{REALM}", "tel:+15551000"), password=PASSWORDS["alice"]
        )
    )
    for name in ("carol", "walt"):
        specs.append(
            SubscriberSpec(
                impi=f"{name}@{REALM}",
                impus=(f"sip:{name}@{REALM}",),
                k=AKA_K,
                op=AKA_OP,
                amf=AKA_AMF,
                sqn=64,
            )
        )
    web = tuple(f"sip:web-{i}@{REALM}" for i in range(1, 4))  # one implicit registration set each
    specs.append(
        SubscriberSpec(
            impi=f"webpool@{REALM}", impus=web, password=POOL_PASSWORD, implicit_sets=tuple((u,) for u in web)
        )
    )
    specs.append(
        SubscriberSpec(
            impi=f"wild@{REALM}",
            impus=(f"sip:wild@{REALM}", f"sip:wild-!\\d+!@{REALM}"),
            password=POOL_PASSWORD,
        )
    )
    for i in range(40):
        specs.append(
            SubscriberSpec(impi=f"u{i}@{REALM}", impus=(f"sip:u{i}@{REALM}",), password=f"u{i}-secret")
        )
    return specs


def usim() -> Usim:
    return Usim(AKA_K, compute_opc(AKA_K, AKA_OP))


def provision_auth(service: AuthService) -> None:
    """Web users: dave and erin map to their IMS identities; pooled users map to pools."""
    service.clients.put("wic", redirect_uris=["https://wic.example.com/cb"])
    for name in ("dave", "erin", "frank", "gina"):
        service.users.add(name, WEB_PASSWORD)
        service.users.map(name, impi=f"{name}@{REALM}", impus=[f"sip:{name}@{REALM}"])
    for i in range(40):
        service.users.add(f"web{i}", WEB_PASSWORD)
        service.users.map(f"web{i}", impi=f"u{i}@{REALM}", impus=[f"sip:u{i}@{REALM}"])
    service.users.add("limited", WEB_PASSWORD, scopes=("call",))
    service.users.map("limited", impi=f"hank@{REALM}", impus=[f"sip:hank@{REALM}"])
    service.pools.add("web", members=[f"sip:web-{{1..3}}@{REALM}"], impi=f"webpool@{REALM}")
    service.pools.add("wild", wildcard=f"sip:wild-!\\d+!@{REALM}", impi=f"wild@{REALM}", capacity=5)
    for name in ("pat", "quinn", "ros", "sam"):
        service.users.add(name, WEB_PASSWORD)
        service.users.map(name, pool="web")
    service.users.add("wendy", WEB_PASSWORD)
    service.users.map("wendy", pool="wild")


def token_for(service: AuthService, user: str, *, scope: str | None = None, now: float | None = None) -> str:
    return service.tokens.issue_for_user(user, client_id="wic", scope=scope, now=now).access_token


def forged_token(service: AuthService, **claims: Any) -> str:
    """A token signed with the service's real key, with claims of our choosing (wrong audience...)."""
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "sub": "dave",
        "aud": "webims",
        "exp": now + 600,
        "iat": now,
        "jti": "forged-1",
        "scope": "register call message",
        "impi": f"dave@{REALM}",
        "impu": [f"sip:dave@{REALM}"],
        "client_id": "wic",
    }
    base.update(claims)
    key = service.keys.signing_key()
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, base, key, algorithms=["ES256"])


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ensure_self_signed(tmp_path_factory.mktemp("tls"))


@dataclasses.dataclass
class Lab:
    core: LabCore
    auth: AuthService
    server: GatewayServer
    tmp: Path

    @property
    def gateway(self) -> Gateway:
        return self.server.gateway

    @property
    def url(self) -> str:
        return self.server.url


def gateway_config(core_icscf: str, **overrides: Any) -> GatewayConfig:
    base: dict[str, Any] = dict(
        icscf=core_icscf, domain=REALM, mw_host=GATEWAY_HOST, mw_port=0, ims_timeout=4.0, grace_period=1.0,
        restart_grace=5.0, retry_after=7, register_rate=50.0, register_burst=50, request_rate=50.0,
        request_burst=100, pools=(), pool_passwords=(), flush_interval=0.0,
    )  # fmt: skip
    base.update(overrides)
    return GatewayConfig(**base)


def core_config(tmp: Path, **labcore: str) -> Any:
    env = {
        "WEBIMS_STATE__DIR": str(tmp),
        "WEBIMS_HSS__LISTEN_PORT": "0",
        "WEBIMS_HSS__ADMIN_PORT": "0",
        "WEBIMS_LABCORE__ICSCF_PORT": "0",
        "WEBIMS_LABCORE__SCSCF_PORT": "0",
        "WEBIMS_LABCORE__MEDIA_INTERWORKING": "off",
        "WEBIMS_LABCORE__TRUSTED_NODES": GATEWAY_HOST,
        "WEBIMS_LABCORE__MIN_EXPIRES": "10",
    }
    env.update({f"WEBIMS_LABCORE__{k.upper()}": v for k, v in labcore.items()})
    return load_config(None, environ=env)


@contextlib.asynccontextmanager
async def running_core(tmp: Path, **labcore: str) -> AsyncIterator[tuple[LabCore, Store]]:
    store = Store(tmp / "hss.sqlite3")
    subs = SubscriberStore(store, default_realm=REALM)
    for spec in subscriber_specs():
        subs.add(spec)
    core = await start_labcore(core_config(tmp, **labcore), subscribers=subs, iwf=None)
    try:
        yield core, store
    finally:
        await core.stop()
        store.close()


def make_auth(tmp: Path) -> AuthService:
    service = AuthService(
        Store(tmp / "auth.sqlite3"),
        ServiceSettings(issuer=ISSUER, password_time_cost=1, password_memory_kib=1024),
    )
    provision_auth(service)
    return service


@contextlib.asynccontextmanager
async def gateway_on(
    core_icscf: str,
    auth: AuthService | None,
    certs: tuple[Path, Path],
    *,
    store: RegistrationStore | None = None,
    **overrides: Any,
) -> AsyncIterator[GatewayServer]:
    gateway = Gateway(
        gateway_config(core_icscf, **overrides), store=store or MemoryRegistrationStore(), auth=auth
    )
    async with running_gateway(gateway, ssl_context=server_context(*certs), origins=[ORIGIN]) as server:
        yield server


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[LabCore]:
    async with running_core(tmp_path) as (lab_core, _):
        yield lab_core


@pytest.fixture
async def auth(tmp_path: Path) -> AsyncIterator[AuthService]:
    service = make_auth(tmp_path)
    try:
        yield service
    finally:
        service.store.close()


LabFactory = Callable[..., contextlib.AbstractAsyncContextManager[Lab]]


@pytest.fixture
def make_lab(core: LabCore, auth: AuthService, certs: tuple[Path, Path], tmp_path: Path) -> LabFactory:
    """``async with make_lab(**gateway_overrides) as lab``: a gateway on the shared core and auth."""

    @contextlib.asynccontextmanager
    async def factory(*, store: RegistrationStore | None = None, **overrides: Any) -> AsyncIterator[Lab]:
        async with gateway_on(core.icscf_uri, auth, certs, store=store, **overrides) as server:
            yield Lab(core, auth, server, tmp_path)

    return factory


@pytest.fixture
async def lab(make_lab: LabFactory) -> AsyncIterator[Lab]:
    async with make_lab() as lab_:
        yield lab_


@pytest.fixture
def sqlite_state(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "gateway.sqlite3")
    yield store
    store.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test that used Kamailio gets its logs in the report."""
    report = yield
    if report.when == "call" and report.failed:
        from webims.testing.kamailio import log_sections

        report.sections.extend(log_sections(getattr(item, "funcargs", {})))
    return report
