"""webims configuration: one TOML file, every key overridable from the environment.

DESIGN.md §4: "one TOML file, every key overridable by environment variable; a bad
value is a clear error naming the key, at start-up".

A *section* is a frozen dataclass whose fields all have defaults, registered under a
name. A component declares its own section, e.g. in ``webims/gateway/settings.py``
(modules named ``settings`` in subpackages of ``webims`` are imported by
:meth:`SectionRegistry.discover`, so no central list needs editing)::

    from dataclasses import dataclass
    from webims.config import between, hostname, section, setting

    @section("gateway")
    @dataclass(frozen=True)
    class GatewayConfig:
        ims_domain: str = setting("ims.test", check=hostname())
        max_sessions: int = setting(1000, check=between(1, 1_000_000))

and reads it with ``load_config(path).get(GatewayConfig)``.

Values come from, lowest precedence first: the field default, the TOML file
(``[gateway]`` table, nested dataclasses as ``[gateway.sub]`` tables), the
environment (``WEBIMS_GATEWAY__IMS_DOMAIN``; a double underscore separates section,
nested tables and key). Supported field types: ``int``, ``float``, ``bool``,
``str``, ``Path``, ``tuple[str, ...]``/``list[str]`` (comma-separated or a JSON array
in the environment), ``Literal["a", "b"]`` (case-insensitive), ``X | None`` (empty
string means None) and nested frozen dataclasses. Relative paths in the file are
relative to the file's directory. Unknown sections/keys and bad values raise
:class:`ConfigError` naming the key and where the value came from. A section may
define ``validate(self) -> None`` raising :class:`Invalid` for cross-field rules.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import math
import os
import pkgutil
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from webims.config_checks import (
    Check,
    between,
    each,
    host_port,
    hostname,
    is_hostname,
    is_loopback,
    non_empty,
    one_of,
    origin,
    port,
    predicate,
    url_path,
)

__all__ = [
    "REGISTRY",
    "Check",
    "Config",
    "ConfigError",
    "Invalid",
    "LogConfig",
    "SectionRegistry",
    "StateConfig",
    "TransportConfig",
    "TransportLimits",
    "between",
    "check_tls_files",
    "each",
    "host_port",
    "hostname",
    "is_hostname",
    "is_loopback",
    "load_config",
    "non_empty",
    "one_of",
    "origin",
    "port",
    "predicate",
    "section",
    "setting",
    "url_path",
]

ENV_PREFIX = "WEBIMS_"
ENV_SEPARATOR = "__"
DEFAULT_SOURCE = "default"
MASK = "***"

T = TypeVar("T")

_META_CHECK = "webims.check"
_META_SECRET = "webims.secret"
_META_DOC = "webims.doc"
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the key and its source."""

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        text = message if key is None else f"{key}: {message}"
        if source is not None:
            text += f" (from {source})"
        super().__init__(text)
        self.key = key
        self.source = source


class Invalid(ValueError):
    """Raised by a section's ``validate()``: ``key`` is a field name (dotted for nested)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def check_tls_files(section: Any, *files: str) -> None:
    """For a section's ``validate()``: its ``tls_cert`` and ``tls_key`` are set together, and
    each of them and of the ``files`` fields that is set names an existing file."""
    if (section.tls_cert is None) != (section.tls_key is None):
        raise Invalid("tls_cert" if section.tls_key is None else "tls_key", "set both tls_cert and tls_key")
    for name in ("tls_cert", "tls_key", *files):
        file = getattr(section, name)
        if file is not None and not file.is_file():
            raise Invalid(name, f"file not found: '{file}'")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    check: Check | None = None,
    secret: bool = False,
    doc: str = "",
) -> Any:
    """A section field with a validation hook; ``secret=True`` masks it in summaries,
    error messages and logs."""
    metadata = {_META_CHECK: check, _META_SECRET: secret, _META_DOC: doc}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    if default is dataclasses.MISSING:
        raise TypeError("setting() needs a default or a factory")
    if isinstance(default, list | dict | set):
        raise TypeError("mutable default: use a tuple or factory=")
    return dataclasses.field(default=default, metadata=metadata)


# ---------------------------------------------------------------------------- types


@dataclasses.dataclass(frozen=True)
class _Spec:
    kind: str  # int float bool str path strs literal section
    phrase: str
    optional: bool = False
    container: type | None = None  # tuple or list for kind "strs"
    choices: tuple[str, ...] = ()
    nested: type | None = None


_SCALARS: dict[Any, tuple[str, str]] = {
    int: ("int", "an integer"),
    float: ("float", "a number"),
    bool: ("bool", "a boolean (true or false)"),
    str: ("str", "a string"),
    Path: ("path", "a file path"),
}


def _analyze(tp: Any, where: str) -> _Spec:
    origin_ = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin_ in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        inner = _analyze(next(a for a in args if a is not type(None)), where)
        if inner.kind == "section":
            raise TypeError(f"{where}: a nested section cannot be optional")
        return dataclasses.replace(inner, optional=True, phrase=inner.phrase + " (or empty for none)")
    if tp in _SCALARS:
        kind, phrase = _SCALARS[tp]
        return _Spec(kind, phrase)
    if origin_ is Literal and args and all(isinstance(a, str) for a in args):
        return _Spec("literal", "one of " + ", ".join(repr(a) for a in args), choices=args)
    if (origin_ is tuple and args == (str, ...)) or (origin_ is list and args == (str,)):
        return _Spec("strs", "a list of strings", container=origin_)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _Spec("section", "a table", nested=tp)
    raise TypeError(f"{where}: unsupported setting type {tp!r}")


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    spec: _Spec
    check: Check | None
    secret: bool


class _Bad(ValueError):
    pass


def _convert(f: _Field, raw: Any, *, from_env: bool, base_dir: Path | None) -> Any:
    spec = f.spec
    if spec.optional and raw == "":
        return None
    value: Any
    if spec.kind == "int":
        if from_env:
            try:
                value = int(raw.strip(), 10)
            except ValueError:
                raise _Bad from None
        elif isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        else:
            raise _Bad
    elif spec.kind == "float":
        if from_env:
            try:
                value = float(raw.strip())
            except ValueError:
                raise _Bad from None
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            value = float(raw)
        else:
            raise _Bad
        if not math.isfinite(value):
            raise _Bad
    elif spec.kind == "bool":
        if from_env and raw.strip().lower() in _TRUE | _FALSE:
            value = raw.strip().lower() in _TRUE
        elif not from_env and isinstance(raw, bool):
            value = raw
        else:
            raise _Bad
    elif spec.kind in ("str", "literal", "path"):
        if not isinstance(raw, str) or "\x00" in raw:
            raise _Bad
        value = raw
        if spec.kind == "literal":
            matches = [c for c in spec.choices if c.lower() == raw.strip().lower()]
            if not matches:
                raise _Bad
            value = matches[0]
        elif spec.kind == "path":
            if not raw:
                raise _Bad
            value = Path(raw).expanduser()
            if base_dir is not None and not value.is_absolute():
                value = base_dir / value
    elif spec.kind == "strs":
        if from_env and raw.lstrip().startswith("["):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise _Bad from None
        elif from_env:
            raw = [item.strip() for item in raw.split(",") if item.strip()]
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise _Bad
        value = (spec.container or tuple)(raw)
    else:  # pragma: no cover - _analyze admits nothing else
        raise _Bad
    if f.check is not None:
        try:
            value = f.check(value)
        except (ValueError, TypeError):
            raise _Bad from None
    return value


def _expected(f: _Field) -> str:
    return f.check.describe(f.spec.phrase) if f.check is not None else f.spec.phrase


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# ---------------------------------------------------------------------------- registry


class SectionRegistry:
    """Named config sections. Components register theirs with :func:`section`."""

    def __init__(self) -> None:
        self._sections: dict[str, type] = {}
        self._schemas: dict[type, dict[str, _Field]] = {}

    def register(self, name: str, cls: type) -> None:
        if not _NAME_RE.fullmatch(name) or ENV_SEPARATOR in name:
            raise ValueError(f"section name {name!r}: use lowercase letters, digits and single '_'")
        old = self._sections.get(name)
        if old is not None and old is not cls and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"section {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        self.schema(cls)
        self._sections[name] = cls

    def unregister(self, name: str) -> None:
        self._sections.pop(name, None)

    def section(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorate(cls: type[T]) -> type[T]:
            self.register(name, cls)
            return cls

        return decorate

    def names(self) -> list[str]:
        return list(self._sections)

    def __contains__(self, name: object) -> bool:
        return name in self._sections

    def __getitem__(self, name: str) -> type:
        return self._sections[name]

    def schema(self, cls: type) -> dict[str, _Field]:
        """Field specs of a section class (validated once, cached)."""
        cached = self._schemas.get(cls)
        if cached is not None:
            return cached
        where = f"{cls.__module__}.{cls.__qualname__}"
        params = getattr(cls, "__dataclass_params__", None)
        if not dataclasses.is_dataclass(cls) or params is None or not params.frozen:
            raise TypeError(f"{where}: a config section must be a frozen dataclass")
        hints = typing.get_type_hints(cls)
        out: dict[str, _Field] = {}
        for fld in dataclasses.fields(cls):
            if not fld.init:
                continue
            if not _NAME_RE.fullmatch(fld.name) or ENV_SEPARATOR in fld.name:
                raise TypeError(f"{where}.{fld.name}: use lowercase letters, digits and single '_'")
            if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                raise TypeError(f"{where}.{fld.name}: every setting needs a default")
            spec = _analyze(hints[fld.name], f"{where}.{fld.name}")
            if spec.nested is not None:
                self.schema(spec.nested)
            check = fld.metadata.get(_META_CHECK)
            out[fld.name] = _Field(fld.name, spec, check, bool(fld.metadata.get(_META_SECRET, False)))
        self._schemas[cls] = out
        return out

    def discover(self, package: str = "webims") -> list[str]:
        """Import ``<package>.<sub>.settings`` for every subpackage that has one."""
        pkg = importlib.import_module(package)
        imported = []
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.ispkg:
                continue
            for base in pkg.__path__:
                sub = Path(base) / info.name
                if (sub / "settings.py").is_file() or (sub / "settings" / "__init__.py").is_file():
                    name = f"{package}.{info.name}.settings"
                    importlib.import_module(name)
                    imported.append(name)
                    break
        return imported


REGISTRY = SectionRegistry()


def section(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator registering a section in the default registry."""
    return REGISTRY.section(name)


# ---------------------------------------------------------------------------- loading


@dataclasses.dataclass(frozen=True)
class Config:
    """The effective configuration: ``sections`` by name, ``sources`` by dotted key
    ("default", the file path, or the environment variable name)."""

    sections: Mapping[str, Any]
    sources: Mapping[str, str]
    path: Path | None
    registry: SectionRegistry = dataclasses.field(repr=False, compare=False)
    #: the ``WEBIMS_*`` variables this config was loaded with (to reload it with changes)
    environ: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def get(self, cls: type[T]) -> T:
        for value in self.sections.values():
            if type(value) is cls:
                return value
        raise KeyError(f"no config section of type {cls.__qualname__}")

    def __getitem__(self, name: str) -> Any:
        return self.sections[name]

    def _walk(self, obj: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], _Field, Any]]:
        for name, f in self.registry.schema(type(obj)).items():
            value = getattr(obj, name)
            if f.spec.kind == "section":
                yield from self._walk(value, (*path, name))
            else:
                yield (*path, name), f, value

    def secret_values(self) -> tuple[str, ...]:
        """Non-empty secret values, for the log redaction filter."""
        out = []
        for name, obj in self.sections.items():
            for _, f, value in self._walk(obj, (name,)):
                if f.secret and value:
                    out.append(str(value))
        return tuple(out)

    def summary(self) -> list[str]:
        """TOML-like lines of every effective value with its source, secrets masked."""
        lines: list[str] = []
        for name, obj in self.sections.items():
            current: tuple[str, ...] = ()
            for path, f, value in self._walk(obj, (name,)):
                table = path[:-1]
                if table != current:
                    lines.append(f"[{'.'.join(table)}]")
                    current = table
                shown = _toml_value(MASK if f.secret and value else value)
                lines.append(f"{path[-1]} = {shown}  # {self.sources.get('.'.join(path), DEFAULT_SOURCE)}")
        return lines


def _toml_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _shown(f: _Field, raw: Any) -> str:
    return "<secret>" if f.secret else repr(raw)


class _Loader:
    def __init__(self, registry: SectionRegistry, file_source: str, base_dir: Path | None) -> None:
        self.registry = registry
        self.file_source = file_source
        self.base_dir = base_dir
        self.env: dict[tuple[str, ...], tuple[str, str]] = {}
        self.sources: dict[str, str] = {}

    def read_env(self, environ: Mapping[str, str]) -> None:
        for var, value in environ.items():
            if not var.startswith(ENV_PREFIX):
                continue
            rest = var[len(ENV_PREFIX) :]
            if ENV_SEPARATOR not in rest:
                for name in self.registry.names():
                    if rest.lower().startswith(name + "_"):
                        fixed = f"{ENV_PREFIX}{name.upper()}{ENV_SEPARATOR}{rest[len(name) + 1 :]}"
                        raise ConfigError(
                            f"{var}: not a setting; did you mean {fixed}? "
                            "(a double underscore separates section and key)"
                        )
                continue  # WEBIMS_CONFIG and other non-setting variables
            parts = tuple(rest.lower().split(ENV_SEPARATOR))
            dotted = ".".join(parts)
            if "" in parts or len(parts) < 2:
                raise ConfigError("malformed setting name", key=dotted, source=var)
            if parts[0] not in self.registry:
                raise ConfigError(
                    f"unknown section {parts[0]!r}" + _suggest(parts[0], self.registry.names()),
                    key=dotted,
                    source=var,
                )
            cls = self.registry[parts[0]]
            for i, part in enumerate(parts[1:], start=1):
                schema = self.registry.schema(cls)
                f = schema.get(part)
                if f is None:
                    raise ConfigError(
                        "unknown key" + _suggest(part, list(schema)), key=".".join(parts[: i + 1]), source=var
                    )
                last = i == len(parts) - 1
                if f.spec.kind == "section":
                    if last:
                        raise ConfigError(
                            f"is a table; set its keys with {var}__<KEY>", key=dotted, source=var
                        )
                    assert f.spec.nested is not None
                    cls = f.spec.nested
                elif not last:
                    raise ConfigError(f"{part!r} is not a table", key=dotted, source=var)
            self.env[parts] = (var, value)

    def build(self, cls: type, path: tuple[str, ...], table: Mapping[str, Any]) -> Any:
        schema = self.registry.schema(cls)
        dotted = ".".join(path)
        for key in table:
            if key not in schema:
                raise ConfigError(
                    "unknown key" + _suggest(key, list(schema)),
                    key=f"{dotted}.{key}",
                    source=self.file_source,
                )
        kwargs: dict[str, Any] = {}
        for name, f in schema.items():
            full = (*path, name)
            key = ".".join(full)
            if f.spec.kind == "section":
                sub = table.get(name, {})
                if not isinstance(sub, dict):
                    raise ConfigError(f"expected a table, got {sub!r}", key=key, source=self.file_source)
                assert f.spec.nested is not None
                kwargs[name] = self.build(f.spec.nested, full, sub)
                continue
            if full in self.env:
                source, raw = self.env[full]
                from_env, base_dir = True, None
            elif name in table:
                source, raw, from_env, base_dir = self.file_source, table[name], False, self.base_dir
            else:
                self.sources[key] = DEFAULT_SOURCE
                continue
            try:
                kwargs[name] = _convert(f, raw, from_env=from_env, base_dir=base_dir)
            except _Bad:
                raise ConfigError(
                    f"expected {_expected(f)}, got {_shown(f, raw)}", key=key, source=source
                ) from None
            self.sources[key] = source
        obj = cls(**kwargs)
        validate = getattr(obj, "validate", None)
        if callable(validate):
            try:
                validate()
            except Invalid as exc:
                key = f"{dotted}.{exc.key}"
                raise ConfigError(
                    exc.message, key=key, source=self.sources.get(key, DEFAULT_SOURCE)
                ) from None
        return obj


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: not UTF-8 ({exc.reason})") from None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    registry: SectionRegistry = REGISTRY,
    discover: bool = True,
) -> Config:
    """Defaults < TOML file ``path`` (optional) < ``environ`` (default ``os.environ``).

    Raises :class:`ConfigError` for an unreadable file, an unknown section or key,
    or a value that fails its type or check.
    """
    if discover and registry is REGISTRY:
        registry.discover()
    data: dict[str, Any] = {}
    file_path = None if path is None else Path(path)
    if file_path is not None:
        data = read_toml(file_path)
    loader = _Loader(
        registry,
        str(file_path) if file_path is not None else "(no file)",
        file_path.absolute().parent if file_path is not None else None,
    )
    env = os.environ if environ is None else environ
    loader.read_env(env)
    for name, value in data.items():
        if name not in registry:
            raise ConfigError(
                "unknown section" + _suggest(name, registry.names()), key=name, source=loader.file_source
            )
        if not isinstance(value, dict):
            raise ConfigError(
                f"expected a table [{name}], got {value!r}", key=name, source=loader.file_source
            )
    sections = {name: loader.build(registry[name], (name,), data.get(name, {})) for name in registry.names()}
    own = {k: v for k, v in env.items() if k.startswith("WEBIMS_")}
    return Config(sections, dict(loader.sources), file_path, registry, own)


# ---------------------------------------------------------------------------- sections

TRANSPORTS = ("udp", "tcp", "tls", "ws", "wss")
PLAIN_TRANSPORTS = frozenset({"udp", "tcp", "ws"})
SECURE_TRANSPORTS = frozenset({"tls", "wss"})


@dataclasses.dataclass(frozen=True)
class TransportLimits:
    """Explicit limits (DESIGN.md §6.5); the SIP parser and the adapters enforce them."""

    max_message_bytes: int = setting(65535, check=between(512, 16 * 1024 * 1024))
    max_headers: int = setting(128, check=between(8, 10_000))
    max_connections: int = setting(10_000, check=between(1, 10_000_000))
    max_connections_per_source: int = setting(64, check=between(1, 1_000_000))
    idle_timeout: float = setting(300.0, check=between(1, 86_400), doc="seconds without traffic")


def _default_origins() -> tuple[str, ...]:
    return ("https://127.0.0.1:8443", "https://localhost:8443")


@section("transport")
@dataclasses.dataclass(frozen=True)
class TransportConfig:
    """SIP listeners toward clients (RFC 3261 §18, RFC 7118). Secure by default: WSS
    only; plain udp/tcp/ws need a loopback ``host`` or ``allow_insecure = true``."""

    host: str = setting("127.0.0.1", check=hostname())
    enabled: tuple[str, ...] = setting(("wss",), check=each(one_of(*TRANSPORTS)))
    udp_port: int = setting(5060, check=port())
    tcp_port: int = setting(5060, check=port())
    tls_port: int = setting(5061, check=port())
    ws_port: int = setting(5066, check=port())
    wss_port: int = setting(8443, check=port())
    ws_path: str = setting("/sip", check=url_path())
    tls_cert: Path | None = setting(None, doc="PEM; empty = self-signed into the state dir on first run")
    tls_key: Path | None = setting(None)
    tls_key_password: str = setting("", secret=True)
    allowed_origins: tuple[str, ...] = setting(factory=_default_origins, check=each(origin()))
    allow_insecure: bool = setting(False, doc="permit plain transports on non-loopback addresses")
    limits: TransportLimits = setting(factory=TransportLimits)

    def validate(self) -> None:
        if not self.enabled:
            raise Invalid("enabled", "expected at least one of " + ", ".join(TRANSPORTS) + ", got []")
        for name in self.enabled:
            if name in PLAIN_TRANSPORTS and not self.allow_insecure and not is_loopback(self.host):
                raise Invalid(
                    "enabled",
                    f"plain transport {name!r} on non-loopback host {self.host!r} needs "
                    "transport.allow_insecure = true (use tls or wss)",
                )
        stream_ports: dict[int, str] = {}
        for name in self.enabled:
            if name == "udp":
                continue
            number = getattr(self, f"{name}_port")
            if number in stream_ports:
                raise Invalid(f"{name}_port", f"port {number} is also used by {stream_ports[number]}")
            stream_ports[number] = name
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("tls_cert", "tls_key") if self.tls_key is None else ("tls_key", "tls_cert")
            raise Invalid(given, f"needs transport.{missing} too (leave both empty for a self-signed one)")
        if SECURE_TRANSPORTS & set(self.enabled):
            for key in ("tls_cert", "tls_key"):
                file = getattr(self, key)
                if file is not None and not file.is_file():
                    raise Invalid(key, f"file not found: '{file}'")

    @property
    def insecure_transports(self) -> tuple[str, ...]:
        return tuple(t for t in self.enabled if t in PLAIN_TRANSPORTS)


@section("log")
@dataclasses.dataclass(frozen=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    format: Literal["text", "json"] = "text"


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(base).expanduser() / "webims"


@section("state")
@dataclasses.dataclass(frozen=True)
class StateConfig:
    """Where webims keeps its files: self-signed certificates, the SQLite database."""

    dir: Path = setting(factory=_default_state_dir)
    db: Path | None = setting(None, doc="SQLite database; empty = <dir>/webims.sqlite3")

    @property
    def db_path(self) -> Path:
        return self.db if self.db is not None else self.dir / "webims.sqlite3"

    @property
    def tls_dir(self) -> Path:
        return self.dir / "tls"
