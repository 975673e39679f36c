"""A minimal CommonJS bundler: JsSIP's npm ``lib/`` as one browser script.

JsSIP >= 3.13 ships only CommonJS modules (``lib/*.js``, no ``dist/``).  Its
modules and dependencies (debug, events, ms, sdp-transform) use nothing but
static ``require('...')`` calls, so wrapping each file in a function and
resolving those calls (relative paths, package ``browser``/``main`` fields,
``.js``/``.json``/``index.js``) is enough to run it in a page as a global.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["bundle"]

_REQUIRE_RE = re.compile(r"""\brequire\(\s*(['"])([^'"]+)\1\s*\)""")


class BundleError(Exception):
    pass


def _file(base: Path) -> Path | None:
    for candidate in (base, base.with_name(base.name + ".js"), base.with_name(base.name + ".json"),
                      base / "index.js"):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _package_entry(package_dir: Path) -> Path:
    meta = json.loads((package_dir / "package.json").read_text())
    entry = meta.get("browser") if isinstance(meta.get("browser"), str) else None
    entry = entry or meta.get("main") or "index.js"
    found = _file(package_dir / entry)
    if found is None:
        raise BundleError(f"no entry file for {package_dir}")
    return found


def _resolve(node_modules: Path, from_file: Path, spec: str) -> Path:
    found = _file(from_file.parent / spec) if spec.startswith(".") else _package_entry(node_modules / spec)
    if found is None:
        raise BundleError(f"cannot resolve {spec!r} from {from_file}")
    return found


def bundle(node_modules: Path, package: str, global_name: str) -> str:
    """JavaScript that defines ``window[global_name]`` as ``require(package)``."""
    ids: dict[Path, int] = {}
    parts: list[str] = []
    pending = [_package_entry(node_modules / package)]
    ids[pending[0]] = 0
    while pending:
        path = pending.pop()
        source = path.read_text(encoding="utf-8")
        mapping: dict[str, int] = {}
        if path.suffix == ".json":
            body = f"module.exports = {source};"
        else:
            body = source
            for match in _REQUIRE_RE.finditer(source):
                spec = match.group(2)
                target = _resolve(node_modules, path, spec)
                if target not in ids:
                    ids[target] = len(ids)
                    pending.append(target)
                mapping[spec] = ids[target]
        parts.append(f"{ids[path]}: [function (module, exports, require) {{\n{body}\n}}, "
                     f"{json.dumps(mapping)}]")
    return (
        "(function () {\n'use strict';\n"
        "var defs = {\n" + ",\n".join(parts) + "\n};\n"
        "var cache = {};\n"
        "function load(id) {\n"
        "  if (cache[id]) return cache[id].exports;\n"
        "  var module = cache[id] = {exports: {}};\n"
        "  var def = defs[id];\n"
        "  def[0].call(module.exports, module, module.exports, function (spec) {\n"
        "    if (!(spec in def[1])) throw new Error('not bundled: ' + spec);\n"
        "    return load(def[1][spec]);\n"
        "  });\n"
        "  return module.exports;\n"
        "}\n"
        f"window[{json.dumps(global_name)}] = load(0);\n"
        "})();\n"
    )
