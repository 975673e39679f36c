"""Fixtures of the web client / client script server tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import uvloop

from webims.transport import ensure_self_signed
from webims.web.bundle import Assets, build_assets


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 / localhost / ::1."""
    return ensure_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def assets() -> Assets:
    """The WIC built once with esbuild (a missing esbuild fails with the setup hint)."""
    return build_assets(minify=False)
