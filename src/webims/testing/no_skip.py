"""pytest plugin: a run in which any test was skipped or xfailed fails.

``make test`` loads it with ``-p webims.testing.no_skip``, so the full suite can
only pass if every collected test really ran (a missing Debian package, browser or
npm module must be installed by scripts/setup.sh, not silently skipped). Ad-hoc
``pytest`` runs without ``-p`` are unaffected.

Counted: skips at collection (module-level ``pytest.skip``/``importorskip``) and at
run time (``skip``/``skipif`` marks, ``pytest.skip()``), and every xfail/xpass.
The run's exit status becomes 1 (TESTS_FAILED) and a "no-skip rule" section lists
the offenders with their reasons.
"""

from __future__ import annotations

import pytest


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None:
        return f"xfail: {wasxfail}" if wasxfail else "xfail"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


class NoSkip:
    def __init__(self) -> None:
        self.offenders: list[str] = []

    def _note(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped or hasattr(report, "wasxfail"):
            self.offenders.append(f"{report.nodeid or '<collection>'}: {_reason(report)}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.skipped:
            self._note(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:
            self._note(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.offenders and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.offenders:
            terminalreporter.section("no-skip rule (webims.testing.no_skip)", red=True)
            terminalreporter.line(f"{len(self.offenders)} test(s) did not run; every test must run:")
            for line in self.offenders:
                terminalreporter.line(f"  {line}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(NoSkip(), "webims-no-skip")
