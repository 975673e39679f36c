"""``webims serve auth``: build the service from the config and run the HTTPS server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from webims.config import Config, StateConfig
from webims.store import Store
from webims.transport.loop import run as run_loop
from webims.transport.loop import stop_on_signals
from webims.transport.tls import ensure_self_signed, server_context

from .config import AuthConfig
from .oidc import load_providers
from .server import bound_port, start_server
from .service import AuthService, ServiceSettings

__all__ = ["build_service", "run", "serve", "ssl_context_for"]

log = logging.getLogger("webims.auth")
UPKEEP_INTERVAL = 60.0


def build_service(config: Config, store: Store | None = None) -> AuthService:
    """The :class:`AuthService` of a config (opens ``state.db`` unless ``store`` is given)."""
    cfg = config.get(AuthConfig)
    providers = load_providers(cfg.providers_file) if cfg.providers_file is not None else []
    if store is None:
        store = Store(config.get(StateConfig).db_path)
    return AuthService(store, ServiceSettings.from_config(cfg, providers))


def ssl_context_for(config: Config) -> ssl.SSLContext | None:
    """None for ``plain_http``; the configured PEM files; else a self-signed pair in the state dir."""
    cfg = config.get(AuthConfig)
    if cfg.plain_http:
        return None
    if cfg.tls_cert is not None and cfg.tls_key is not None:
        return server_context(cfg.tls_cert, cfg.tls_key)
    # The one self-signed pair of the state directory, shared with the WWSF and the
    # gateway (same origin in the demo); made on first run.
    hosts = dict.fromkeys((cfg.host, "localhost", "127.0.0.1", "::1"))
    cert, key = ensure_self_signed(config.get(StateConfig).tls_dir, hosts)
    return server_context(cert, key)


async def run(
    service: AuthService, cfg: AuthConfig, ssl_ctx: ssl.SSLContext | None, stop: asyncio.Event
) -> None:
    """Serve until ``stop`` is set, with periodic upkeep (key rotation, expired rows)."""
    await service.store.call(service.upkeep)
    runner = await start_server(service, cfg.host, cfg.port, ssl_context=ssl_ctx)
    log.info(
        "auth: listening on %s://%s:%d, issuer %s",
        "https" if ssl_ctx else "http",
        cfg.host,
        bound_port(runner),
        service.settings.issuer,
    )
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), UPKEEP_INTERVAL)
            if not stop.is_set():
                try:
                    await service.store.call(service.upkeep)
                except Exception:  # keep serving; the log says why
                    log.exception("auth: upkeep failed")
    finally:
        await runner.cleanup()


def serve(config: Config) -> int:
    """Entry point of ``webims serve auth``: runs until SIGINT/SIGTERM."""
    cfg = config.get(AuthConfig)
    service = build_service(config)
    ssl_ctx = ssl_context_for(config)
    print(f"webims auth: issuer {service.settings.issuer}", flush=True)

    async def main() -> None:
        stop = stop_on_signals()
        await run(service, cfg, ssl_ctx, stop)

    try:
        run_loop(main())
    finally:
        service.store.close()
    return 0
