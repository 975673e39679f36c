"""``webims demo``: everything that exists, in one process, with embedded defaults.

DESIGN.md §4: web page and SIP over WebSocket at https://127.0.0.1:8443/ and
wss://127.0.0.1:8443/sip (self-signed certificate made on first run in the state
directory).  What runs today: the SIP transports of the configuration (WSS by
default, plus UDP/TCP/TLS when enabled) in front of a small in-memory registrar
that answers REGISTER (RFC 3261 §10.3, bindings with expiry), OPTIONS and
nothing else, so that a SIP-over-WebSocket client can connect and register.
Components of later issues (lab IMS core, gateway, web client) join here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from .config import Config, StateConfig, TransportConfig
from .endpoint import IncomingRequest, SipEndpoint
from .sip import new_tag
from .transport import ConnectionLimits, ensure_self_signed, mount_websocket, server_context
from .transport.loop import run as run_loop
from .transport.loop import stop_on_signals

__all__ = ["Registrar", "run"]

log = logging.getLogger("webims.demo")

DEFAULT_EXPIRES = 600
MIN_EXPIRES = 60
MAX_EXPIRES = 3600


@dataclass
class Registrar:
    """An in-memory registrar (RFC 3261 §10.3): address-of-record -> contact -> expiry."""

    bindings: dict[str, dict[str, float]] = field(default_factory=dict)

    async def handle(self, incoming: IncomingRequest, now: float) -> None:
        request = incoming.request
        if request.method == "OPTIONS":
            incoming.respond(200, headers=[("Allow", "REGISTER, OPTIONS"), ("Accept", "application/sdp")],
                             to_tag=new_tag())
            return
        if request.method != "REGISTER":
            incoming.respond(405, headers=[("Allow", "REGISTER, OPTIONS")])
            return
        aor = request.to.uri
        key = getattr(aor, "aor", str(aor))
        contacts = self.bindings.setdefault(key, {})
        default = request.expires if request.expires is not None else DEFAULT_EXPIRES
        if request.contact_star:  # §10.3 step 6: remove all bindings
            if default != 0:
                incoming.respond(400, "Contact * needs Expires: 0")
                return
            contacts.clear()
        for contact in request.contact:
            expires = contact.expires if contact.expires is not None else default
            if 0 < expires < MIN_EXPIRES:
                incoming.respond(423, headers=[("Min-Expires", str(MIN_EXPIRES))])
                return
            uri = str(contact.uri)
            if expires == 0:
                contacts.pop(uri, None)
            else:
                contacts[uri] = now + min(expires, MAX_EXPIRES)
        for uri, until in list(contacts.items()):
            if until <= now:
                del contacts[uri]
        headers = [
            ("Contact", f"<{uri}>;expires={int(until - now)}")
            for uri, until in contacts.items()
        ]
        incoming.respond(200, headers=headers, to_tag=new_tag())


async def serve(config: Config, *, ready: asyncio.Event | None = None) -> None:
    transport = config.get(TransportConfig)
    state = config.get(StateConfig)
    registrar = Registrar()
    loop = asyncio.get_running_loop()

    async def on_request(incoming: IncomingRequest) -> None:
        await registrar.handle(incoming, loop.time())

    limits = transport.limits
    endpoint = SipEndpoint(
        on_request,
        connection_limits=ConnectionLimits(
            max_connections=limits.max_connections,
            max_connections_per_source=limits.max_connections_per_source,
            idle_timeout=limits.idle_timeout,
        ),
    )
    urls: list[str] = []
    host = transport.host
    if "udp" in transport.enabled:
        await endpoint.transport.listen_udp(host, transport.udp_port)
        urls.append(f"sip:{host}:{transport.udp_port};transport=udp")
    if "tcp" in transport.enabled:
        await endpoint.transport.listen_tcp(host, transport.tcp_port)
        urls.append(f"sip:{host}:{transport.tcp_port};transport=tcp")
    cert, key = (transport.tls_cert, transport.tls_key)
    if cert is None or key is None:
        cert, key = ensure_self_signed(state.dir / "tls")
    if "tls" in transport.enabled:
        await endpoint.transport.listen_tls(host, transport.tls_port, server_context(cert, key))
        urls.append(f"sips:{host}:{transport.tls_port}")
    runners: list[web.AppRunner] = []
    for name, port in (("wss", transport.wss_port), ("ws", transport.ws_port)):
        if name not in transport.enabled:
            continue
        app = web.Application()
        scheme = "https" if name == "wss" else "http"
        page = (
            f"webims demo: SIP over WebSocket at {name}://{host}:{port}{transport.ws_path} "
            "(subprotocol sip)\n"
        )
        app.router.add_get("/", _text_handler(page))
        origins = list(transport.allowed_origins)
        mount_websocket(app, endpoint.transport, path=transport.ws_path, origins=origins)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        ssl_ctx = server_context(cert, key) if name == "wss" else None
        await web.TCPSite(runner, host, port, ssl_context=ssl_ctx).start()
        runners.append(runner)
        urls.append(f"{scheme}://{host}:{port}/  and  {name}://{host}:{port}{transport.ws_path}")
    print("webims demo is running:", flush=True)
    for url in urls:
        print(f"  {url}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    stop = stop_on_signals()
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()
        await endpoint.close()


def _text_handler(text: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(text=text)

    return handler


def run(config: Config) -> int:
    """Entry point of ``webims demo``."""
    run_loop(serve(config))
    return 0
