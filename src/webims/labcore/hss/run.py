"""Running the HSS from a :class:`webims.config.Config` (``webims serve labcore``, ``webims demo``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from webims.config import Config, StateConfig
from webims.store import Store
from webims.transport.loop import run as run_loop
from webims.transport.loop import stop_on_signals

from .admin import AdminServer
from .server import HssServer
from .settings import HssConfig
from .store import SubscriberStore

log = logging.getLogger("webims.labcore.hss")


def open_subscribers(config: Config) -> SubscriberStore:
    """The subscriber store on the database file of ``[state]`` (created and migrated if needed)."""
    hss = config.get(HssConfig)
    return SubscriberStore(Store(config.get(StateConfig).db_path), default_realm=hss.realm)


@contextlib.asynccontextmanager
async def running_hss(
    config: Config,
    *,
    subscribers: SubscriberStore | None = None,
    rand_source: Callable[[], bytes] | None = None,
) -> AsyncIterator[tuple[HssServer, AdminServer | None]]:
    """Start the HSS (and its admin endpoint unless ``admin_port = 0``); stop both on exit."""
    settings = config.get(HssConfig)
    owned = subscribers is None
    subs = subscribers if subscribers is not None else open_subscribers(config)
    hss = HssServer(settings, subs, rand_source=rand_source)
    admin: AdminServer | None = None
    await hss.start()
    try:
        if settings.admin_port:
            admin = AdminServer(hss, settings.admin_host, settings.admin_port, settings.admin_token)
            await admin.start()
            log.info("HSS admin endpoint on %s", admin.url)
        yield hss, admin
    finally:
        if admin is not None:
            await admin.stop()
        await hss.stop()
        if owned:
            subs.store.close()


async def run_hss(config: Config, stop: asyncio.Event) -> None:
    async with running_hss(config):
        await stop.wait()


def serve(config: Config) -> int:
    """Run the HSS until SIGINT/SIGTERM; returns the exit status."""

    async def main() -> None:
        stop = stop_on_signals()
        await run_hss(config, stop)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency
        run_loop(main())
    return 0
