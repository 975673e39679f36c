"""``webims demo``: the whole system in one process, with demo subscribers.

DESIGN.md §4: the web client and the authorization function at
https://127.0.0.1:8443/, SIP over WebSocket at wss://127.0.0.1:8443/sip (the
gateway shares the web server's port), a self-signed certificate made on first run
in the state directory, IMS domain ``ims.test``.  Behind the gateway runs the lab
IMS core (HSS, I-CSCF on 127.0.0.1:5070, S-CSCF on 127.0.0.1:6060, UDP and TCP)
so SIP phones such as baresip can register and call browser users.

Demo values are defaults only: a key set in the config file or the environment
wins.  Provisioning (subscribers in the HSS, web users and the IMPU pool in the
authorization function) is idempotent and kept in the state directory.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import Config, StateConfig, TransportConfig, load_config
from .transport import ensure_self_signed, server_context
from .transport.loop import GcPolicy, stop_on_signals
from .transport.loop import run as run_loop

if TYPE_CHECKING:
    from aiohttp import web

    from .auth.service import AuthService
    from .gateway.core import Gateway
    from .labcore import LabCore

__all__ = ["DEMO_DEFAULTS", "DEMO_USERS", "Demo", "demo_config", "run", "running_demo"]

log = logging.getLogger("webims.demo")

DOMAIN = "ims.test"
GATEWAY_MW_HOST = "127.0.0.2"  # the one address the lab S-CSCF trusts for auth-done (TNA)

#: Demo settings, as environment-style keys; each applies only where neither the
#: config file nor the environment set that key.
DEMO_DEFAULTS: dict[str, str] = {
    "WEBIMS_TRANSPORT__ENABLED": "wss",
    "WEBIMS_LABCORE__TRUSTED_NODES": GATEWAY_MW_HOST,
    # the gateway drives the embedded media IWF itself ("external" placement); the lab
    # S-CSCF's MRF would interwork WebRTC-to-WebRTC calls a second time
    "WEBIMS_LABCORE__MEDIA_INTERWORKING": "off",
    "WEBIMS_GATEWAY__MW_HOST": GATEWAY_MW_HOST,
    "WEBIMS_GATEWAY__POOLS": "guests",
    "WEBIMS_GATEWAY__POOL_PASSWORDS": "guests=guest-pool-secret",
}


@dataclass(frozen=True)
class DemoUser:
    """A demo identity: its IMS subscription and, for web users, its web login."""

    name: str
    password: str
    note: str


#: Printed at start-up (they are demo credentials, not secrets).
DEMO_USERS = (
    DemoUser("alice", "alice", "web login (token) -> sip:alice@ims.test"),
    DemoUser("bob", "bob-secret", "IMS digest: IMPU sip:bob@ims.test, IMPI bob@ims.test"),
    DemoUser("guest", "guest", "web login (token) -> an IMPU from the pool sip:guest-{00..19}@ims.test"),
    DemoUser("phone", "phone-secret", "a SIP phone at the lab I-CSCF: sip:phone@ims.test"),
)
AKA_K = "465b5ce8b199b49faa5f0a2ee238a6bc"  # TS 35.208 test set 1
AKA_OPC = "cd63cb71954a9f4e48a5994e37a02baf"


def demo_config(config: Config) -> Config:
    """``config`` with the demo defaults filled in where the user set nothing.

    The web client, the authorization function and the gateway share one HTTPS
    port (``transport.wss_port``), and the gateway's next hop is the lab I-CSCF, so
    those keys follow the ones they depend on unless set explicitly."""
    from .labcore.settings import LabCoreConfig

    transport = config.get(TransportConfig)
    labcore = config.get(LabCoreConfig)
    defaults = dict(DEMO_DEFAULTS)
    defaults["WEBIMS_AUTH__PORT"] = str(transport.wss_port)
    defaults["WEBIMS_WEB__PORT"] = str(transport.wss_port)
    defaults["WEBIMS_GATEWAY__ICSCF"] = f"sip:{labcore.host}:{labcore.icscf_port}"
    environ = dict(config.environ)
    for key, value in defaults.items():
        dotted = key.removeprefix("WEBIMS_").lower().replace("__", ".")
        if config.sources.get(dotted, "default") == "default":
            environ[key] = value
    return load_config(config.path, environ=environ)


def provision(config: Config) -> None:
    """Demo subscribers in the HSS and web users/pool in the WAF (idempotent)."""
    from .auth.config import AuthConfig
    from .auth.service import AuthService, ServiceSettings
    from .labcore.hss import SubscriberSpec, SubscriberStore
    from .store import Store

    store = Store(config.get(StateConfig).db_path)
    try:
        subscribers = SubscriberStore(store, default_realm=DOMAIN)
        specs = [
            SubscriberSpec(impi=f"alice@{DOMAIN}", impus=(f"sip:alice@{DOMAIN}", "tel:+15550100"),
                           password="alice-ims-secret"),
            SubscriberSpec(impi=f"bob@{DOMAIN}", impus=(f"sip:bob@{DOMAIN}", "tel:+15550101"),
                           password="bob-secret"),
            SubscriberSpec(impi=f"carol@{DOMAIN}", impus=(f"sip:carol@{DOMAIN}",),
                           k=bytes.fromhex(AKA_K), opc=bytes.fromhex(AKA_OPC), sqn=32),
            SubscriberSpec(impi=f"phone@{DOMAIN}", impus=(f"sip:phone@{DOMAIN}", "tel:+15550199"),
                           password="phone-secret"),
        ]
        guests = tuple(f"sip:guest-{i:02d}@{DOMAIN}" for i in range(20))
        specs.append(SubscriberSpec(impi=f"guests@{DOMAIN}", impus=guests, password="guest-pool-secret",
                                    implicit_sets=tuple((u,) for u in guests)))
        for spec in specs:
            if subscribers.get(spec.impi) is None:
                subscribers.add(spec)
        auth = AuthService(store, ServiceSettings.from_config(config.get(AuthConfig)))
        if "guests" not in {pool.name for pool in auth.pools.list()}:
            auth.pools.add("guests", members=[f"sip:guest-{{00..19}}@{DOMAIN}"], impi=f"guests@{DOMAIN}")
        if auth.users.find("alice") is None:
            auth.users.add("alice", "alice")
            auth.users.map("alice", impi=f"alice@{DOMAIN}", impus=[f"sip:alice@{DOMAIN}", "tel:+15550100"])
        if auth.users.find("guest") is None:
            auth.users.add("guest", "guest")
            auth.users.map("guest", pool="guests")
    finally:
        store.close()


@dataclass
class Demo:
    url: str
    wss_url: str
    icscf: str
    gateway: Gateway
    core: LabCore
    auth: AuthService


@contextlib.asynccontextmanager
async def running_demo(
    config: Config, *, routes: Callable[[web.Application], object] | None = None
) -> AsyncIterator[Demo]:
    """Start everything; yields the URLs and the running parts; stops everything on exit.
    ``routes`` adds to the HTTPS app before it serves (tests add their own pages)."""
    from .auth.run import build_service
    from .auth.server import create_app as create_auth_app
    from .gateway.run import build_gateway, running_gateway
    from .labcore import start_labcore
    from .store import Store
    from .web.app import create_app as create_web_app
    from .web.run import build, resolve_settings

    config = demo_config(config)
    provision(config)
    transport = config.get(TransportConfig)
    state = config.get(StateConfig)
    cert, key = (transport.tls_cert, transport.tls_key)
    if cert is None or key is None:
        cert, key = ensure_self_signed(state.tls_dir)
    core = await start_labcore(config)
    store = Store(state.db_path)
    try:
        auth = build_service(config, store)
        app = create_auth_app(auth)
        settings = resolve_settings(config)
        create_web_app(settings, build(settings), app=app)
        gateway = build_gateway(config, store=store, auth=auth)
        if routes is not None:
            routes(app)
        async with running_gateway(
            gateway, host=transport.host, port=transport.wss_port, ssl_context=server_context(cert, key),
            path=transport.ws_path, origins=transport.allowed_origins, app=app,
        ) as server:  # fmt: skip
            yield Demo(url=settings.origin + "/", wss_url=server.url, icscf=core.icscf_uri,
                       gateway=gateway, core=core, auth=auth)  # fmt: skip
    finally:
        await core.stop()
        store.close()


async def serve(config: Config) -> None:
    async with running_demo(config) as demo:
        print("webims demo is running:", flush=True)
        print(f"  web client and login:   {demo.url}", flush=True)
        print(f"  SIP over WebSocket:     {demo.wss_url}", flush=True)
        print(f"  lab IMS core (I-CSCF):  {demo.icscf} (UDP and TCP, domain {DOMAIN})", flush=True)
        print("  demo users (name / password):", flush=True)
        for user in DEMO_USERS:
            print(f"    {user.name:6} / {user.password:13} {user.note}", flush=True)
        print(f"    carol  (software USIM) K={AKA_K} OPc={AKA_OPC}", flush=True)
        print("The certificate is self-signed: accept it once in the browser. Press Ctrl-C to stop.",
              flush=True)
        await stop_on_signals().wait()


def run(config: Config) -> int:
    """Entry point of ``webims demo``."""
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(serve(config), gc_policy=GcPolicy())
    return 0
