"""Fixtures for the Kamailio I-CSCF/S-CSCF harness tests.

One Kamailio pair and one stand-in HSS per module (starting Kamailio costs a couple of
seconds of CPU); each test uses its own users. A missing kamailio or sipp makes the
tests fail (KamailioNotInstalled / a fixture error), never skip. When a test fails,
both Kamailio logs and the Cx requests the HSS saw are added to its report.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from kamailio_env import REALM, TRUSTED, subscribers
from kamailio_hss_standin import StandinHss, ThreadedHss, describe

from webims.testing.kamailio import KamailioIms, log_sections


def require_tools() -> None:
    missing = [tool for tool in ("kamailio", "sipp", "kamcmd") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"missing {missing}: apt-get install kamailio kamailio-ims-modules kamailio-presence-modules "
            "kamailio-sqlite-modules sip-tester (scripts/packages.txt)"
        )


@pytest.fixture(scope="module")
def hss_thread() -> Iterator[ThreadedHss]:
    with ThreadedHss(StandinHss(realm=REALM, subscribers=subscribers())) as runner:
        yield runner


@pytest.fixture(scope="module")
def hss(hss_thread: ThreadedHss) -> StandinHss:
    return hss_thread.hss


@pytest.fixture(scope="module")
def ims(hss: StandinHss, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioIms]:
    require_tools()
    workdir = tmp_path_factory.mktemp("kamailio")
    with KamailioIms(
        "127.0.0.1", hss.port, realm=REALM, trusted_addresses=[TRUSTED], workdir=workdir
    ) as pair:
        pair.wait_diameter_open()
        yield pair


@pytest.fixture
def sipp_dir(tmp_path: Path) -> Path:
    require_tools()
    return tmp_path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test's report gets both Kamailio logs and the last Cx requests."""
    report = yield
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {})
        report.sections.extend(log_sections(funcargs))
        server = funcargs.get("hss")
        if isinstance(server, StandinHss):
            dump = "\n".join(
                f"=== {m.command_code}\n" + "\n".join(describe(m)) for m in server.requests[-12:]
            )
            report.sections.append(("Cx requests seen by the stand-in HSS (last 12)", dump))
    return report
