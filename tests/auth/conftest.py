from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from auth_helpers import Browser, Server, Tls, make_tls, provision, start


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def server(tmp_path: Path, tls: Tls) -> AsyncIterator[Server]:
    srv = await start(tmp_path / "webims.sqlite3", tls)
    provision(srv.service)
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def browser(server: Server) -> AsyncIterator[Browser]:
    b = Browser(server)
    try:
        yield b
    finally:
        await b.close()
