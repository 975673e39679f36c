"""The ``webims`` command, run as a real subprocess (``python -m webims`` and the
installed console script)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import webims

CONSOLE_SCRIPT = Path(sys.executable).parent / "webims"


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def clean_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBIMS_")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"))
    env.update(extra or {})
    return env


def webims_cmd(home: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "webims", *args],
        capture_output=True,
        text=True,
        env=clean_env(home, env),
        cwd=home,
        timeout=120,
    )
    return Run(proc)


def python_c(home: Path, code: str) -> Run:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=clean_env(home),
        cwd=home,
        timeout=120,
    )
    return Run(proc)


def test_help_lists_the_subcommands(home: Path) -> None:
    r = webims_cmd(home, "--help")
    assert r.rc == 0, r.err
    for name in ("check-config", "demo", "serve", "--version", "--debug"):
        assert name in r.out


def test_version_from_module_and_console_script(home: Path) -> None:
    r = webims_cmd(home, "--version")
    assert (r.rc, r.out.strip()) == (0, f"webims {webims.__version__}")
    proc = subprocess.run(
        [str(CONSOLE_SCRIPT), "--version"], capture_output=True, text=True, env=clean_env(home), timeout=120
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, f"webims {webims.__version__}")


def test_no_subcommand_is_a_usage_error(home: Path) -> None:
    r = webims_cmd(home)
    assert r.rc == 2
    assert r.err.startswith("usage: webims")


def test_check_config_ok_with_env_override_and_masked_secret(home: Path) -> None:
    conf = home / "webims.toml"
    conf.write_text(
        '[transport]\nws_port = 6000\nwss_port = 6443\ntls_key_password = "Tr0ub4dor&3"\n'
        '[log]\nlevel = "debug"\n'
    )
    r = webims_cmd(home, "check-config", str(conf), env={"WEBIMS_TRANSPORT__WS_PORT": "7000"})
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == f"OK: {conf}"
    assert "ws_port = 7000  # WEBIMS_TRANSPORT__WS_PORT" in lines
    assert f"wss_port = 6443  # {conf}" in lines
    assert "udp_port = 5060  # default" in lines
    assert f'tls_key_password = "***"  # {conf}' in lines
    assert "[transport.limits]" in lines
    assert "Tr0ub4dor" not in r.out + r.err


def test_check_config_bad_env_value(home: Path) -> None:
    conf = home / "webims.toml"
    conf.write_text("[transport]\nws_port = 6000\n")
    r = webims_cmd(home, "check-config", str(conf), env={"WEBIMS_TRANSPORT__WS_PORT": "abc"})
    assert r.rc == 2
    assert r.out == ""
    assert r.err == (
        "webims check-config: config error: transport.ws_port: expected an integer between 1 and 65535, "
        "got 'abc' (from WEBIMS_TRANSPORT__WS_PORT)\n"
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[transport]\nws_prot = 5066\n",
            "transport.ws_prot: unknown key; did you mean 'ws_port'? (from {conf})",
        ),
        (
            "[transport]\nws_port = 0\n",
            "transport.ws_port: expected an integer between 1 and 65535, got 0 (from {conf})",
        ),
        ("[nosuchsection]\nx = 1\n", "nosuchsection: unknown section (from {conf})"),
        (
            '[log]\nlevel = "loud"\n',
            "log.level: expected one of 'debug', 'info', 'warning', 'error', 'critical'",
        ),
        ("[log\n", "{conf}: invalid TOML: "),
    ],
)
def test_check_config_bad_file(home: Path, toml: str, message: str) -> None:
    conf = home / "webims.toml"
    conf.write_text(toml)
    r = webims_cmd(home, "check-config", str(conf))
    assert r.rc == 2
    assert r.err.startswith("webims check-config: config error: " + message.format(conf=conf)), r.err
    assert len(r.err.splitlines()) == 1
    assert "Traceback" not in r.err and r.out == ""


def test_check_config_missing_file_and_argument(home: Path) -> None:
    r = webims_cmd(home, "check-config", "nope.toml")
    assert (r.rc, r.err) == (
        2,
        "webims check-config: config error: nope.toml: cannot read config file: No such file or directory\n",
    )
    r = webims_cmd(home, "check-config")
    assert r.rc == 2 and "the following arguments are required: FILE" in r.err


def test_debug_flag_after_the_subcommand(home: Path) -> None:
    conf = home / "webims.toml"
    conf.write_text("")
    r = webims_cmd(home, "check-config", "--debug", str(conf))
    assert r.rc == 0 and r.out.startswith("OK: ")


def test_demo_refuses_a_bad_config_before_starting(home: Path) -> None:
    r = webims_cmd(home, "demo", env={"WEBIMS_TRANSPORT__HOST": "0.0.0.0", "WEBIMS_TRANSPORT__ENABLED": "ws"})
    assert r.rc == 2
    assert r.err.startswith(
        "webims demo: config error: transport.enabled: plain transport 'ws' on non-loopback"
    )
    conf = home / "bad.toml"
    conf.write_text("[transport]\nwss_port = 99999\n")
    r = webims_cmd(home, "demo", "--config", str(conf))
    assert (r.rc, r.err.split(": ")[:3]) == (2, ["webims demo", "config error", "transport.wss_port"])
    r = webims_cmd(home, "demo", env={"WEBIMS_CONFIG": str(conf)})  # the default --config
    assert r.rc == 2 and "transport.wss_port" in r.err


def test_demo_without_its_module_is_a_clear_error(home: Path) -> None:
    r = python_c(
        home,
        """
        import sys
        sys.modules["webims.demo"] = None  # as if src/webims/demo.py did not exist
        from webims.cli import main
        sys.exit(main(["demo"]))
        """,
    )
    assert r.rc == 1
    assert r.err == "webims demo: the demo is not available: module webims.demo does not exist\n"


def test_serve_unknown_component(home: Path) -> None:
    r = webims_cmd(home, "serve", "nosuchcomponent")
    assert r.rc == 2
    assert r.err.startswith(
        "webims serve: component 'nosuchcomponent' is not available: module webims.nosuchcomponent "
        "does not exist (components: "
    )
    r = webims_cmd(home, "serve", "sip")  # a package, but not a component
    assert r.rc == 2 and "webims.sip has no function serve()" in r.err
    r = webims_cmd(home, "serve", "../etc")
    assert (r.rc, r.err) == (2, "webims serve: invalid component name '../etc'\n")


BOOM = """
    import sys
    from webims.cli import command, main

    @command("boom", help="fail")
    def boom(args):
        raise RuntimeError("kaboom\\nsecond line")

    sys.exit(main(sys.argv[1:]))
"""


def test_unexpected_exception_is_one_line_without_traceback(home: Path) -> None:
    code = BOOM.replace("sys.argv[1:]", "['boom']")
    r = python_c(home, code)
    assert r.rc == 1
    assert r.err == "webims boom: error: RuntimeError: kaboom second line (--debug for a traceback)\n"


def test_debug_shows_the_traceback(home: Path) -> None:
    r = python_c(home, BOOM.replace("sys.argv[1:]", "['--debug', 'boom']"))
    assert r.rc == 1
    assert "Traceback (most recent call last)" in r.err and "RuntimeError: kaboom" in r.err
