"""Running the gateway: ``webims serve gateway`` and :func:`running_gateway` for tests and the demo.

``serve(config)`` runs the gateway in this process: the WIC side on its own aiohttp
server (``[transport]``: ``host``, ``wss_port`` — or ``ws_port`` when only ``ws`` is
enabled —, ``ws_path``, ``allowed_origins``, TLS certificate or a self-signed one in
the state directory), the IMS side on ``[gateway] mw_host:mw_port``, the registration
state in the ``[state]`` SQLite database, and tokens/sessions verified against the
``[auth]`` store of the same database (``token_auth = "embedded"``) or a remote issuer's
JWKS (``token_auth = "remote"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import resource
import signal
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from webims.config import Config, StateConfig, TransportConfig
from webims.sip import DEFAULT_LIMITS
from webims.store import Store
from webims.transport import ConnectionLimits, ensure_self_signed, server_context
from webims.transport.loop import GcPolicy
from webims.transport.loop import run as run_loop

from .core import Gateway
from .settings import GatewayConfig
from .state import MemoryRegistrationStore, RegistrationStore, SqliteRegistrationStore

if TYPE_CHECKING:
    from webims.auth.service import AuthService
    from webims.auth.verify import TokenVerifier

__all__ = ["GatewayServer", "build_gateway", "running_gateway", "serve"]

log = logging.getLogger("webims.gateway")


@dataclass
class GatewayServer:
    """A started gateway with its own WSS (or WS) server."""

    gateway: Gateway
    runner: web.AppRunner
    url: str

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.gateway.close()


@contextlib.asynccontextmanager
async def running_gateway(
    gateway: Gateway,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    path: str = "/sip",
    origins: Iterable[str] = (),
    allow_missing_origin: bool = False,
    app: web.Application | None = None,
) -> AsyncIterator[GatewayServer]:
    """Mount ``gateway`` on ``app`` (or a new one), start it, then serve it on ``host:port``
    (so that no WIC gets in before the gateway is ready); stop both on exit."""
    app = app if app is not None else web.Application()
    gateway.mount(
        app, path=path, origins=origins, allow_same_origin=True, allow_missing_origin=allow_missing_origin
    )
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await gateway.start()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        await gateway.close()
        raise
    name = runner.addresses[0]
    scheme = "wss" if ssl_context is not None else "ws"
    shown = f"[{name[0]}]" if ":" in str(name[0]) else str(name[0])
    server = GatewayServer(gateway, runner, f"{scheme}://{shown}:{name[1]}{path}")
    try:
        yield server
    finally:
        await server.close()


def build_gateway(config: Config, *, store: Store | None = None, auth: AuthService | None = None) -> Gateway:
    """A :class:`Gateway` from a full config (state store, token verification, limits)."""
    cfg = config.get(GatewayConfig)
    transport = config.get(TransportConfig)
    state = config.get(StateConfig)
    registrations: RegistrationStore
    if cfg.state_backend == "memory":
        registrations = MemoryRegistrationStore()
    else:
        store = store if store is not None else Store(state.db_path)
        registrations = SqliteRegistrationStore(store, flush_interval=cfg.flush_interval)
    verifier: TokenVerifier | None = None
    if cfg.token_auth == "embedded" and auth is None:
        from webims.auth.config import AuthConfig
        from webims.auth.service import AuthService, ServiceSettings

        db = store if store is not None else Store(state.db_path)
        auth = AuthService(db, ServiceSettings.from_config(config.get(AuthConfig)), register_wic=False)
    elif cfg.token_auth == "remote":
        from webims.auth.verify import RemoteJWKS, TokenVerifier, TrustedIssuer

        verifier = TokenVerifier([TrustedIssuer(cfg.issuer, RemoteJWKS(cfg.jwks_url), (cfg.audience,))])
    elif cfg.token_auth == "off":
        auth = None
    limits = transport.limits
    need = descriptors_needed(cfg, limits.max_connections)  # (serve and demo both come here)
    have = raise_nofile(need)
    max_connections = limits.max_connections
    if have < need:  # fewer WICs, so that the state store, DNS and logs keep their descriptors
        max_connections = connections_that_fit(cfg, have)
        log.warning(
            "open-file limit %d is below the %d that max_connections = %d asks for: at most %d WICs",
            have, need, limits.max_connections, max_connections,
        )  # fmt: skip
    sip_limits = dataclasses.replace(
        DEFAULT_LIMITS, max_message_bytes=limits.max_message_bytes, max_headers=limits.max_headers
    )
    gateway = Gateway(
        cfg, store=registrations, auth=auth, verifier=verifier, limits=sip_limits,
        connection_limits=ConnectionLimits(
            max_connections=max_connections,
            max_connections_per_source=limits.max_connections_per_source,
            idle_timeout=limits.idle_timeout,
        ),
    )  # fmt: skip
    # issue 7: the session B2BUA ([sessions]; it sets gateway.sessions)
    from .session_settings import SessionConfig
    from .sessions import SessionManager

    SessionManager(gateway, config.get(SessionConfig))
    return gateway


def descriptors_per_wic(config: GatewayConfig) -> int:
    """Open files per WIC: its WebSocket; behind a P-CSCF (:mod:`.ueflow`: seed 004, TS 24.229
    §5.2.6.3.1) its registration's Mw flow too: a UDP socket, or over TCP a connection, the
    listener on its port and the connection a P-CSCF that does not reuse the UE's may open
    there."""
    if config.topology == "p-cscf":
        return 1
    return 4 if config.mw_transport == "tcp" else 2


def descriptors_needed(config: GatewayConfig, max_connections: int) -> int:
    """File descriptors for ``max_connections`` WICs (:func:`descriptors_per_wic`), plus a
    margin for listeners, the state store, DNS and the IMS connections."""
    return max_connections * descriptors_per_wic(config) + 1024


def connections_that_fit(config: GatewayConfig, descriptors: int) -> int:
    """How many WICs ``descriptors`` open files carry (:func:`descriptors_needed` inverted)."""
    return max(1, (descriptors - 1024) // descriptors_per_wic(config))


def raise_nofile(want: int) -> int:
    """Raise the soft RLIMIT_NOFILE to ``want``; the soft limit now. Above the hard limit only
    when the process may raise that too (CAP_SYS_RESOURCE, e.g. root; up to ``fs.nr_open``),
    else up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < want and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            pass  # not privileged: within the hard limit below
    target = max(soft, want) if hard == resource.RLIM_INFINITY else min(hard, max(soft, want))
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit to %d: %s", target, exc)
            return soft
    return target


def _tls(transport: TransportConfig, state: StateConfig) -> ssl.SSLContext | None:
    if "wss" not in transport.enabled:
        return None
    if transport.tls_cert is not None and transport.tls_key is not None:
        return server_context(transport.tls_cert, transport.tls_key)
    cert, key = ensure_self_signed(state.tls_dir)
    return server_context(cert, key)


async def _main(config: Config, stop: asyncio.Event) -> None:
    transport = config.get(TransportConfig)
    state = config.get(StateConfig)
    gateway = build_gateway(config)
    context = _tls(transport, state)
    port = transport.wss_port if context is not None else transport.ws_port
    async with running_gateway(
        gateway,
        host=transport.host,
        port=port,
        ssl_context=context,
        path=transport.ws_path,
        origins=transport.allowed_origins,
    ) as server:
        log.info(
            "gateway: WICs on %s, IMS side on %s (%s topology)",
            server.url,
            gateway.ims.uri(),
            gateway.config.topology,
        )
        print(f"webims gateway: {server.url} -> {gateway.ims.next_hop}", flush=True)
        await stop.wait()


def serve(config: Config) -> int:
    """``webims serve gateway``: run until SIGINT/SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await _main(config, stop)

    run_loop(main(), gc_policy=GcPolicy())  # 10,000 WICs: collector and allocator settings
    return 0
