"""webims.config: TOML file + WEBIMS_<SECTION>__<KEY> environment, typed, validated."""

from __future__ import annotations

import dataclasses
import sys
import tomllib
from pathlib import Path
from typing import Literal

import pytest

from webims.config import (
    REGISTRY,
    Config,
    ConfigError,
    Invalid,
    LogConfig,
    SectionRegistry,
    StateConfig,
    TransportConfig,
    TransportLimits,
    between,
    each,
    host_port,
    load_config,
    one_of,
    origin,
    section,
    setting,
)


def write(tmp_path: Path, text: str, name: str = "webims.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path | None = None, env: dict[str, str] | None = None, **kw: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=env or {}, **kw)  # type: ignore[arg-type]
    return str(info.value)


# --------------------------------------------------------------------- the real sections


def test_defaults_are_secure() -> None:
    config = load_config(environ={})
    transport = config.get(TransportConfig)
    assert transport.enabled == ("wss",)
    assert transport.host == "127.0.0.1"
    assert (transport.udp_port, transport.tcp_port, transport.tls_port) == (5060, 5060, 5061)
    assert transport.wss_port == 8443 and transport.ws_path == "/sip"
    assert transport.tls_cert is None and transport.tls_key is None
    assert transport.allow_insecure is False
    assert transport.limits == TransportLimits()
    assert config.get(LogConfig) == LogConfig()
    assert config.sources["transport.ws_port"] == "default"
    assert config.path is None
    assert config["log"] is config.get(LogConfig)


def test_state_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    state = load_config(environ={}).get(StateConfig)
    assert state.dir == tmp_path / "webims"
    assert state.db_path == tmp_path / "webims" / "webims.sqlite3"
    assert state.tls_dir == tmp_path / "webims" / "tls"


def test_file_values_and_their_source(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[transport]
ws_port = 6000
enabled = ["wss", "ws"]
allowed_origins = ["https://app.example.com", "https://[::1]:8443"]

[transport.limits]
idle_timeout = 30          # an integer is a fine float

[log]
level = "DEBUG"
format = "json"

[state]
dir = "state"              # relative to the file's directory
""",
    )
    config = load_config(path, environ={})
    transport = config.get(TransportConfig)
    assert transport.ws_port == 6000
    assert transport.enabled == ("wss", "ws")
    assert transport.allowed_origins == ("https://app.example.com", "https://[::1]:8443")
    assert transport.limits.idle_timeout == 30.0 and isinstance(transport.limits.idle_timeout, float)
    assert config.get(LogConfig).level == "debug"
    assert config.get(LogConfig).format == "json"
    assert config.get(StateConfig).dir == tmp_path / "state"
    assert config.sources["transport.ws_port"] == str(path)
    assert config.sources["transport.limits.idle_timeout"] == str(path)
    assert config.sources["transport.wss_port"] == "default"
    assert config.path == path


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[transport]\nws_port = 6000\nwss_port = 6001\n")
    env = {
        "WEBIMS_TRANSPORT__WS_PORT": "7000",
        "WEBIMS_TRANSPORT__LIMITS__MAX_HEADERS": " 64 ",
        "WEBIMS_LOG__LEVEL": "warning",
        "WEBIMS_CONFIG": "/not/a/setting.toml",  # no "__": not a setting, ignored
        "HOME": "/root",
    }
    config = load_config(path, environ=env)
    transport = config.get(TransportConfig)
    assert transport.ws_port == 7000
    assert transport.wss_port == 6001
    assert transport.limits.max_headers == 64
    assert config.sources["transport.ws_port"] == "WEBIMS_TRANSPORT__WS_PORT"
    assert config.sources["transport.wss_port"] == str(path)
    assert config.get(LogConfig).level == "warning"


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBIMS_TRANSPORT__WSS_PORT", "9443")
    assert load_config().get(TransportConfig).wss_port == 9443


def test_env_list_forms() -> None:
    comma = load_config(environ={"WEBIMS_TRANSPORT__ENABLED": "wss, tls"})
    assert comma.get(TransportConfig).enabled == ("wss", "tls")
    as_json = load_config(environ={"WEBIMS_TRANSPORT__ALLOWED_ORIGINS": '["https://a.example"]'})
    assert as_json.get(TransportConfig).allowed_origins == ("https://a.example",)
    empty = load_config(environ={"WEBIMS_TRANSPORT__ALLOWED_ORIGINS": ""})
    assert empty.get(TransportConfig).allowed_origins == ()


# --------------------------------------------------------------------- error messages


def test_bad_env_value_message() -> None:
    assert error_of(env={"WEBIMS_TRANSPORT__WS_PORT": "abc"}) == (
        "transport.ws_port: expected an integer between 1 and 65535, got 'abc' "
        "(from WEBIMS_TRANSPORT__WS_PORT)"
    )


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('ws_port = "5066"', "transport.ws_port: expected an integer between 1 and 65535, got '5066'"),
        ("ws_port = 70000", "transport.ws_port: expected an integer between 1 and 65535, got 70000"),
        ("ws_port = true", "transport.ws_port: expected an integer between 1 and 65535, got True"),
        ("ws_port = 1.5", "transport.ws_port: expected an integer between 1 and 65535, got 1.5"),
        ('enabled = "wss"', "transport.enabled: expected a list whose items are each one of 'udp'"),
        ('enabled = ["wss", "sctp"]', "transport.enabled: expected a list whose items are each one of"),
        ("enabled = [5]", "transport.enabled: expected a list whose items"),
        ('host = "bad host!"', "transport.host: expected a host name or IP address, got 'bad host!'"),
        ('ws_path = "sip"', "transport.ws_path: expected a URL path starting with '/', got 'sip'"),
        ('allowed_origins = ["https://a.example/path"]', "transport.allowed_origins: expected a list"),
        ("allow_insecure = 1", "transport.allow_insecure: expected a boolean (true or false), got 1"),
        ("ws_prot = 5066", "transport.ws_prot: unknown key; did you mean 'ws_port'?"),
        ("limits = 3", "transport.limits: expected a table, got 3"),
        ("[transport.limits]\nidle_timeout = 0.5", "transport.limits.idle_timeout: expected a number"),
        (
            "[transport.limits]\nmax_conections = 5",
            "transport.limits.max_conections: unknown key; did you mean 'max_connections'?",
        ),
    ],
)
def test_bad_file_values_name_key_and_file(tmp_path: Path, toml: str, expected: str) -> None:
    path = write(tmp_path, "[transport]\n" + toml + "\n")
    message = error_of(path)
    assert message.startswith(expected), message
    assert message.endswith(f"(from {path})")


def test_unknown_section_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[transprt]\nws_port = 1\n")
    assert error_of(path) == f"transprt: unknown section; did you mean 'transport'? (from {path})"


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, "log = 'debug'\n")
    assert error_of(path) == f"log: expected a table [log], got 'debug' (from {path})"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"WEBIMS_TRANSPORT__WS_PROT": "1"},
            "transport.ws_prot: unknown key; did you mean 'ws_port'? (from WEBIMS_TRANSPORT__WS_PROT)",
        ),
        (
            {"WEBIMS_TRANSPOTR__WS_PORT": "1"},
            "transpotr.ws_port: unknown section 'transpotr'; did you mean 'transport'? "
            "(from WEBIMS_TRANSPOTR__WS_PORT)",
        ),
        (
            {"WEBIMS_TRANSPORT_WS_PORT": "1"},
            "WEBIMS_TRANSPORT_WS_PORT: not a setting; did you mean WEBIMS_TRANSPORT__WS_PORT? "
            "(a double underscore separates section and key)",
        ),
        (
            {"WEBIMS_TRANSPORT__LIMITS": "1"},
            "transport.limits: is a table; set its keys with WEBIMS_TRANSPORT__LIMITS__<KEY> "
            "(from WEBIMS_TRANSPORT__LIMITS)",
        ),
        (
            {"WEBIMS_TRANSPORT__WS_PORT__X": "1"},
            "transport.ws_port.x: 'ws_port' is not a table (from WEBIMS_TRANSPORT__WS_PORT__X)",
        ),
        ({"WEBIMS_LOG____LEVEL": "x"}, "log..level: malformed setting name (from WEBIMS_LOG____LEVEL)"),
        (
            {"WEBIMS_LOG__LEVEL": "loud"},
            "log.level: expected one of 'debug', 'info', 'warning', 'error', 'critical', got 'loud' "
            "(from WEBIMS_LOG__LEVEL)",
        ),
        (
            {"WEBIMS_TRANSPORT__ALLOW_INSECURE": "maybe"},
            "transport.allow_insecure: expected a boolean (true or false), got 'maybe' "
            "(from WEBIMS_TRANSPORT__ALLOW_INSECURE)",
        ),
        (
            {"WEBIMS_TRANSPORT__LIMITS__IDLE_TIMEOUT": "inf"},
            "transport.limits.idle_timeout: expected a number between 1 and 86400, got 'inf' "
            "(from WEBIMS_TRANSPORT__LIMITS__IDLE_TIMEOUT)",
        ),
        (
            {"WEBIMS_TRANSPORT__ENABLED": '["wss", 1]'},
            "transport.enabled: expected a list whose items are each one of 'udp', 'tcp', 'tls', 'ws', "
            "'wss', got '[\"wss\", 1]' (from WEBIMS_TRANSPORT__ENABLED)",
        ),
    ],
)
def test_bad_env(env: dict[str, str], expected: str) -> None:
    assert error_of(env=env) == expected


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert error_of(missing) == f"{missing}: cannot read config file: No such file or directory"
    broken = write(tmp_path, "[transport\nws_port = 1\n")
    assert error_of(broken).startswith(f"{broken}: invalid TOML: ")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b"[log]\nlevel = '\xe9'\n")
    assert error_of(latin1).startswith(f"{latin1}: invalid TOML")


# --------------------------------------------------------------------- cross-field rules


def test_plain_transports_need_loopback_or_allow_insecure(tmp_path: Path) -> None:
    path = write(tmp_path, '[transport]\nhost = "0.0.0.0"\nenabled = ["wss", "ws"]\n')
    assert error_of(path) == (
        "transport.enabled: plain transport 'ws' on non-loopback host '0.0.0.0' needs "
        f"transport.allow_insecure = true (use tls or wss) (from {path})"
    )
    insecure = load_config(path, environ={"WEBIMS_TRANSPORT__ALLOW_INSECURE": "yes"})
    assert insecure.get(TransportConfig).insecure_transports == ("ws",)
    for host in ("127.0.0.1", "::1", "localhost", "127.8.9.10"):
        env = {"WEBIMS_TRANSPORT__HOST": host}
        assert load_config(path, environ=env).get(TransportConfig).enabled == ("wss", "ws")
    env = {"WEBIMS_TRANSPORT__HOST": "0.0.0.0", "WEBIMS_TRANSPORT__ENABLED": "tls,wss"}
    secure = load_config(environ=env)
    assert secure.get(TransportConfig).insecure_transports == ()


def test_tls_files_must_exist_when_tls_is_on(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    good = write(tmp_path, '[transport]\ntls_cert = "cert.pem"\ntls_key = "key.pem"\n')
    transport = load_config(good, environ={}).get(TransportConfig)
    assert transport.tls_cert == tmp_path / "cert.pem"
    assert transport.tls_key == tmp_path / "key.pem"

    env = {"WEBIMS_TRANSPORT__TLS_KEY": str(tmp_path / "missing.pem")}
    assert error_of(good, env) == (
        f"transport.tls_key: file not found: '{tmp_path / 'missing.pem'}' (from WEBIMS_TRANSPORT__TLS_KEY)"
    )
    # plain transports only (loopback): the files are not used, so not required
    env["WEBIMS_TRANSPORT__ENABLED"] = "tcp"
    assert load_config(good, environ=env).get(TransportConfig).enabled == ("tcp",)

    half = write(tmp_path, '[transport]\ntls_cert = "cert.pem"\n', "half.toml")
    assert error_of(half) == (
        "transport.tls_cert: needs transport.tls_key too (leave both empty for a self-signed one) "
        f"(from {half})"
    )


def test_stream_ports_must_differ(tmp_path: Path) -> None:
    env = {"WEBIMS_TRANSPORT__ENABLED": "tcp,tls", "WEBIMS_TRANSPORT__TLS_PORT": "5060"}
    assert error_of(env=env) == (
        "transport.tls_port: port 5060 is also used by tcp (from WEBIMS_TRANSPORT__TLS_PORT)"
    )
    # UDP and TCP may share 5060 (RFC 3261 §18)
    both = load_config(environ={"WEBIMS_TRANSPORT__ENABLED": "udp,tcp"})
    assert both.get(TransportConfig).udp_port == both.get(TransportConfig).tcp_port == 5060


def test_at_least_one_transport() -> None:
    message = error_of(env={"WEBIMS_TRANSPORT__ENABLED": ""})
    assert message.startswith("transport.enabled: expected at least one of udp, tcp, tls, ws, wss, got []")


# --------------------------------------------------------------------- a component's own section

REG = SectionRegistry()


@dataclasses.dataclass(frozen=True)
class Inner:
    depth: int = setting(1, check=between(0, 9))
    names: list[str] = setting(factory=lambda: ["a"])


@REG.section("demo_part")
@dataclasses.dataclass(frozen=True)
class DemoPart:
    ratio: float = 0.5
    verbose: bool = False
    title: str = "hello"
    mode: Literal["fast", "safe"] = "safe"
    store: Path = Path("/var/lib/demo")
    maybe: Path | None = None
    limit: int | None = None
    peers: tuple[str, ...] = setting((), check=each(host_port()))
    colour: str = setting("red", check=one_of("red", "green"))
    site: str = setting("https://example.com", check=origin())
    pin: int = setting(0, secret=True)
    api_password: str = setting("", secret=True)
    inner: Inner = setting(factory=Inner)

    def validate(self) -> None:
        if self.mode == "fast" and self.verbose:
            raise Invalid("verbose", "cannot be true when mode is 'fast'")
        if self.inner.depth == 7:
            raise Invalid("inner.depth", "7 is unlucky")


def test_component_section_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[demo_part]
ratio = 2
mode = "FAST"
store = "~/data"
maybe = "rel/file"
peers = ["127.0.0.1:5060", "[::1]:5061", "pcscf.ims.test:5060"]

[demo_part.inner]
names = ["x", "y"]
""",
    )
    env = {
        "WEBIMS_DEMO_PART__TITLE": "  spaced  ",
        "WEBIMS_DEMO_PART__INNER__DEPTH": "3",
        "WEBIMS_DEMO_PART__LIMIT": "",
        "WEBIMS_DEMO_PART__COLOUR": "green",
    }
    part = load_config(path, environ=env, registry=REG).get(DemoPart)
    assert part.ratio == 2.0
    assert part.mode == "fast"
    assert part.store == Path.home() / "data"
    assert part.maybe == tmp_path / "rel" / "file"
    assert part.limit is None
    assert part.peers == ("127.0.0.1:5060", "[::1]:5061", "pcscf.ims.test:5060")
    assert part.title == "  spaced  "
    assert part.colour == "green"
    assert part.inner == Inner(depth=3, names=["x", "y"])
    assert isinstance(part.inner.names, list)


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("VERBOSE", "TRUE", True),
        ("VERBOSE", "off", False),
        ("VERBOSE", "1", True),
        ("RATIO", "1e-3", 0.001),
        ("LIMIT", "-4", -4),
        ("MAYBE", "some/where", Path("some/where")),
        ("STORE", "/abs", Path("/abs")),
        ("PEERS", "a.test:1, b.test:2,", ("a.test:1", "b.test:2")),
        ("PEERS", '["[2001:db8::1]:5060"]', ("[2001:db8::1]:5060",)),
        ("INNER__NAMES", "p,q", ["p", "q"]),
    ],
)
def test_env_conversions(var: str, value: str, expected: object) -> None:
    part = load_config(environ={f"WEBIMS_DEMO_PART__{var}": value}, registry=REG).get(DemoPart)
    obj: object = part
    for name in var.lower().split("__"):
        obj = getattr(obj, name)
    assert obj == expected


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("STORE", "", "demo_part.store: expected a file path, got ''"),
        ("LIMIT", "ten", "demo_part.limit: expected an integer (or empty for none), got 'ten'"),
        ("PEERS", "2001:db8::1:5060", "demo_part.peers: expected a list whose items are each host:port"),
        ("PEERS", "[not json", "demo_part.peers: expected a list"),
        ("PEERS", '{"a": 1}', "demo_part.peers: expected a list"),
        ("COLOUR", "blue", "demo_part.colour: expected one of 'red', 'green', got 'blue'"),
        ("SITE", "ftp://x", "demo_part.site: expected an origin such as 'https://example.com:8443'"),
        ("MODE", "slow", "demo_part.mode: expected one of 'fast', 'safe', got 'slow'"),
        ("INNER__DEPTH", "10", "demo_part.inner.depth: expected an integer between 0 and 9, got '10'"),
        ("TITLE", "a\x00b", "demo_part.title: expected a string"),
    ],
)
def test_env_conversion_errors(var: str, value: str, expected: str) -> None:
    name = f"WEBIMS_DEMO_PART__{var}"
    message = error_of(env={name: value}, registry=REG)
    assert message.startswith(expected), message
    assert message.endswith(f"(from {name})")


def test_section_validate_hook_names_key_and_source(tmp_path: Path) -> None:
    path = write(tmp_path, '[demo_part]\nmode = "fast"\n')
    env = {"WEBIMS_DEMO_PART__VERBOSE": "true"}
    assert error_of(path, env, registry=REG) == (
        "demo_part.verbose: cannot be true when mode is 'fast' (from WEBIMS_DEMO_PART__VERBOSE)"
    )
    deep = {"WEBIMS_DEMO_PART__INNER__DEPTH": "7"}
    assert error_of(env=deep, registry=REG) == (
        "demo_part.inner.depth: 7 is unlucky (from WEBIMS_DEMO_PART__INNER__DEPTH)"
    )


def test_secrets_are_masked_in_errors_and_summary(tmp_path: Path) -> None:
    message = error_of(env={"WEBIMS_DEMO_PART__PIN": "12ab34"}, registry=REG)
    assert message == "demo_part.pin: expected an integer, got <secret> (from WEBIMS_DEMO_PART__PIN)"
    path = write(tmp_path, '[demo_part]\napi_password = "correct horse"\npin = 4321\n')
    config = load_config(path, environ={}, registry=REG)
    assert config.get(DemoPart).api_password == "correct horse"
    text = "\n".join(config.summary())
    assert "correct horse" not in text and "4321" not in text
    assert f'api_password = "***"  # {path}' in text
    assert 'title = "hello"  # default' in text
    assert set(config.secret_values()) == {"correct horse", "4321"}


def test_summary_is_toml_that_loads_back(tmp_path: Path) -> None:
    env = {"WEBIMS_TRANSPORT__WS_PORT": "7000", "WEBIMS_TRANSPORT__ENABLED": "wss,ws"}
    config = load_config(environ=env)
    lines = config.summary()
    assert "[transport.limits]" in lines
    assert "ws_port = 7000  # WEBIMS_TRANSPORT__WS_PORT" in lines
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text)["transport"]["enabled"] == ["wss", "ws"]
    again = load_config(write(tmp_path, text), environ={})
    assert again.sections == config.sections


# --------------------------------------------------------------------- the registry


def test_registry_refuses_bad_sections() -> None:
    reg = SectionRegistry()

    @dataclasses.dataclass
    class Mutable:
        x: int = 1

    @dataclasses.dataclass(frozen=True)
    class NoDefault:
        x: int

    @dataclasses.dataclass(frozen=True)
    class BadType:
        x: dict[str, int] = dataclasses.field(default_factory=dict)

    with pytest.raises(TypeError, match="frozen dataclass"):
        reg.register("mutable", Mutable)
    with pytest.raises(TypeError, match="needs a default"):
        reg.register("nodefault", NoDefault)
    with pytest.raises(TypeError, match="unsupported setting type"):
        reg.register("badtype", BadType)
    with pytest.raises(ValueError, match="lowercase"):
        reg.register("Bad-Name", Inner)
    with pytest.raises(ValueError, match="lowercase"):
        reg.register("a__b", Inner)
    reg.register("inner", Inner)
    reg.register("inner", Inner)  # same class again: fine (module re-import)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("inner", DemoPart)
    with pytest.raises(TypeError, match="mutable default"):
        setting(["a"])


def test_unknown_section_lists_only_registered(tmp_path: Path) -> None:
    path = write(tmp_path, "[demo_part]\nratio = 1.0\n")
    assert load_config(path, environ={}, registry=REG).get(DemoPart).ratio == 1.0
    assert error_of(path) == f"demo_part: unknown section (from {path})"  # not in the default registry


def test_discover_imports_settings_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "webims_fakepkg"
    (root / "comp").mkdir(parents=True)
    (root / "other").mkdir()
    (root / "__init__.py").write_text("")
    (root / "comp" / "__init__.py").write_text("")
    (root / "other" / "__init__.py").write_text("")
    (root / "comp" / "settings.py").write_text(
        "import dataclasses\n"
        "from webims.config import section, setting, between\n\n"
        "@section('fake_comp')\n"
        "@dataclasses.dataclass(frozen=True)\n"
        "class FakeComp:\n"
        "    workers: int = setting(2, check=between(1, 8))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert REGISTRY.discover("webims_fakepkg") == ["webims_fakepkg.comp.settings"]
        assert "webims_fakepkg.other" not in sys.modules
        config = load_config(environ={"WEBIMS_FAKE_COMP__WORKERS": "4"})
        assert config["fake_comp"].workers == 4
        assert error_of(env={"WEBIMS_FAKE_COMP__WORKERS": "9"}) == (
            "fake_comp.workers: expected an integer between 1 and 8, got '9' (from WEBIMS_FAKE_COMP__WORKERS)"
        )
    finally:
        REGISTRY.unregister("fake_comp")
        for name in [m for m in sys.modules if m.startswith("webims_fakepkg")]:
            del sys.modules[name]


def test_config_get_unknown_type() -> None:
    config: Config = load_config(environ={})
    with pytest.raises(KeyError):
        config.get(Inner)


def test_section_decorator_uses_the_default_registry() -> None:
    @section("test_global_section")
    @dataclasses.dataclass(frozen=True)
    class GlobalSection:
        n: int = 1

    try:
        assert "test_global_section" in REGISTRY
        assert load_config(environ={"WEBIMS_TEST_GLOBAL_SECTION__N": "5"}).get(GlobalSection).n == 5
    finally:
        REGISTRY.unregister("test_global_section")
