"""``webims serve web``: build the WIC, resolve the settings, serve over HTTPS."""

from __future__ import annotations

import dataclasses
import logging
import ssl
from urllib.parse import urlsplit

from aiohttp import web

from webims.config import Config, StateConfig, TransportConfig
from webims.transport import ensure_self_signed, server_context
from webims.transport.loop import run as run_loop
from webims.transport.loop import stop_on_signals

from .app import create_app
from .bundle import Assets, BuildError, build_assets
from .metrics import Metrics
from .settings import WebConfig

__all__ = ["WebServer", "build", "resolve_settings", "serve", "ssl_context_for", "start_server"]

log = logging.getLogger("webims.web")


def resolve_settings(config: Config) -> WebConfig:
    """``[web]`` with its empty defaults filled in from the other sections:
    ``public_url`` (https://host:port), ``wss_url`` (the web origin + ``[transport]
    ws_path``: the gateway shares the web server's port), ``auth_issuer``
    (``[auth]`` issuer, when ``web-token`` is offered)."""
    cfg = config.get(WebConfig)
    origin = cfg.origin
    wss_url = cfg.wss_url
    if not wss_url:
        netloc = urlsplit(origin).netloc
        wss_url = f"wss://{netloc}{config.get(TransportConfig).ws_path}"
    issuer = cfg.auth_issuer
    if not issuer and "web-token" in cfg.login_modes:
        from webims.auth.config import AuthConfig

        issuer = config.get(AuthConfig).issuer_url
    return dataclasses.replace(cfg, public_url=origin, wss_url=wss_url, auth_issuer=issuer)


def build(settings: WebConfig) -> Assets:
    """The WIC's files (esbuild at start, or the configured prebuilt bundle)."""
    return build_assets(settings.webclient_dir, bundle=settings.bundle, minify=settings.minify)


def ssl_context_for(settings: WebConfig, config: Config) -> ssl.SSLContext:
    """The configured PEM pair, else the self-signed one of the state dir (made on first run)."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        return server_context(settings.tls_cert, settings.tls_key)
    cert, key = ensure_self_signed(config.get(StateConfig).tls_dir)
    return server_context(cert, key)


@dataclasses.dataclass
class WebServer:
    runner: web.AppRunner
    app: web.Application
    port: int

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_server(app: web.Application, host: str, port: int, *,
                       ssl_context: ssl.SSLContext | None) -> WebServer:
    """Listen on ``host:port`` (0: any free port)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
    await site.start()
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    return WebServer(runner, app, bound)


def serve(config: Config) -> int:
    """Entry point of ``webims serve web``: runs until SIGINT/SIGTERM."""
    settings = resolve_settings(config)
    try:
        assets = build(settings)
    except BuildError as exc:
        print(f"webims web: {exc}", flush=True)
        return 1
    ssl_ctx = ssl_context_for(settings, config)
    app = create_app(settings, assets, metrics=Metrics())

    async def main() -> None:
        stop = stop_on_signals()
        server = await start_server(app, settings.host, settings.port, ssl_context=ssl_ctx)
        print(f"webims web: WIC at {settings.origin}/ (SIP over {settings.wss_url})", flush=True)
        try:
            await stop.wait()
        finally:
            await server.close()


    run_loop(main())
    return 0
