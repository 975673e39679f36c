"""Client script server (seed 004 "Client Script Server"; TS 23.228 Annex U WWSF).

Serves the WIC (``webclient/``, built with esbuild at start) over HTTPS with a
strict Content-Security-Policy, hands it its configuration at ``/config.json``
(SIP WebSocket URL, ICE servers with short-lived TURN credentials, the
authorization function's endpoints, the login modes offered) and publishes
Prometheus metrics at ``/metrics``.  Seed 004 §6.X.2.1: "the WIC is verified to
be one downloaded from an authorized Client Script Server (e.g. use of CORS
procedures in establishing WebSocket connection)": the gateway's WebSocket
Origin allowlist names this server's origin, and :func:`allow_cors` lets the WIC
call an authorization function on another origin.

Public API::

    from webims.web import WebConfig, build_assets, create_app, resolve_settings, allow_cors
    settings = resolve_settings(config)          # [web] with derived URLs filled in
    assets = build_assets(settings.webclient_dir)
    app = create_app(settings, assets)           # or create_app(..., app=existing_app)
    mount_websocket(app, gateway_transport, path="/sip")   # the gateway, same port

Modules: :mod:`.settings` (``[web]``), :mod:`.app` (routes, headers, config.json),
:mod:`.bundle` (esbuild), :mod:`.turn` (TURN REST credentials), :mod:`.metrics`
(Prometheus text format), :mod:`.cors`, :mod:`.run` (``webims serve web``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from webims.lazy import lazy_exports

if TYPE_CHECKING:
    from webims.config import Config

__all__ = [
    "WEB_APP",
    "Assets",
    "AuthEndpoints",
    "BuildError",
    "Metrics",
    "TurnCredentials",
    "WebApp",
    "WebConfig",
    "allow_cors",
    "build_assets",
    "create_app",
    "resolve_settings",
    "serve",
    "start_server",
    "turn_credentials",
]

_LAZY = {
    "WEB_APP": ".app",
    "AuthEndpoints": ".app",
    "WebApp": ".app",
    "create_app": ".app",
    "Assets": ".bundle",
    "BuildError": ".bundle",
    "build_assets": ".bundle",
    "Metrics": ".metrics",
    "TurnCredentials": ".turn",
    "turn_credentials": ".turn",
    "WebConfig": ".settings",
    "allow_cors": ".cors",
    "resolve_settings": ".run",
    "start_server": ".run",
}


# Lazy imports keep ``import webims.web.settings`` (config discovery) light.
__getattr__ = lazy_exports(__name__, _LAZY)


def serve(config: Config) -> int:
    """``webims serve web``."""
    from .run import serve as _serve

    return _serve(config)
