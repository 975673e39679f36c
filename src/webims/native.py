"""Compiled hot path: which modules mypyc compiles, and whether this process uses them.

``scripts/compile.py`` (run by ``scripts/setup.sh``) compiles :data:`COMPILED` with mypyc
into C extensions next to their sources and writes :data:`MANIFEST` (a hash of each
compiled source). On ``import webims``, :func:`install` checks the manifest: when an
extension exists but its source changed since (an edit not compiled again), or when
``WEBIMS_PURE`` is set, every module of :data:`COMPILED` is loaded from its ``.py`` source
instead, all of them together (compiled modules call each other directly, so a mix of
fresh source and stale extensions is never run).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["COMPILED", "MANIFEST", "compiled", "install", "manifest_for", "stale"]

#: The per-message path of the gateway and the lab core: SIP parsing, headers, URIs,
#: transactions, the endpoint, the transports, the gateway's registration path and the
#: lab core's CSCFs.
COMPILED: tuple[str, ...] = (
    "webims.sip.errors",
    "webims.sip.randomness",
    "webims.sip.uri",
    "webims.sip.headers",
    "webims.sip.message",
    "webims.sip.parser",
    "webims.sip.framing",
    "webims.sip.auth_header",
    "webims.sip.digest",
    "webims.sip.transaction",
    "webims.sip.transaction_layer",
    "webims.sip.dialog",
    "webims.transport.base",
    "webims.transport.via",
    "webims.transport.layer",
    "webims.transport.udp",
    "webims.transport.stream",
    "webims.transport.websocket",
    "webims.endpoint",
    # the gateway's registration path
    "webims.gateway.core",
    "webims.gateway.wic",
    "webims.gateway.regmsg",
    "webims.gateway.modes",
    "webims.gateway.registrar",
    "webims.gateway.regevent",
    "webims.gateway.ims",
    "webims.gateway.state",
    "webims.gateway.identity",
    "webims.gateway.policy",
    "webims.gateway.ratelimit",
    "webims.gateway.due",
    "webims.auth.verify",
    "webims.auth.identity",
    "webims.auth.tokens",
    # the lab core's SIP side (its HSS and Cx client stay interpreted)
    "webims.labcore.scscf",
    "webims.labcore.scscf_registrar",
    "webims.labcore.scscf_auth",
    "webims.labcore.scscf_routing",
    "webims.labcore.icscf",
    "webims.labcore.regevent",
    "webims.labcore.registrations",
    "webims.labcore.proxy",
    "webims.labcore.local_hop",
    "webims.labcore.flows",
    "webims.labcore.attached",
)
MANIFEST = "_compiled.json"
_SRC = Path(__file__).resolve().parent.parent
_state = {"compiled": False}


def _source(root: Path, module: str) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def manifest_for(root: Path) -> dict[str, object]:
    """What a compilation of the sources under ``root`` (the ``src`` directory) records."""
    modules: dict[str, dict[str, object]] = {}
    for module in COMPILED:
        path = _source(root, module)
        stat = path.stat()
        modules[module] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                           "mtime_ns": stat.st_mtime_ns, "size": stat.st_size}  # fmt: skip
    return {"python": sys.version.split()[0], "modules": modules}


def stale(manifest: object, root: Path) -> list[str]:
    """The modules whose source under ``root`` differs from what ``manifest`` compiled
    (all of them when the manifest is unreadable or for another module list or Python)."""
    if not isinstance(manifest, dict) or manifest.get("python") != sys.version.split()[0]:
        return list(COMPILED)
    recorded = manifest.get("modules")
    if not isinstance(recorded, dict) or sorted(recorded) != sorted(COMPILED):
        return list(COMPILED)
    changed = []
    for module in COMPILED:
        entry, path = recorded[module], _source(root, module)
        try:
            stat = path.stat()
            if (isinstance(entry, dict) and entry.get("mtime_ns") == stat.st_mtime_ns
                    and entry.get("size") == stat.st_size):  # fmt: skip
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if isinstance(entry, dict) and entry.get("sha256") == digest:
                continue
        except OSError:
            pass
        changed.append(module)
    return changed


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the modules of :data:`COMPILED` from their ``.py`` files (ahead of the
    extension modules the default path finder would prefer)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:  # fmt: skip
        if fullname not in COMPILED or path is None:
            return None
        name = fullname.rpartition(".")[2] + ".py"
        for entry in path:
            candidate = os.path.join(entry, name)
            if os.path.exists(candidate):
                return importlib.util.spec_from_file_location(fullname, candidate)
        return None


def _extension_exists(root: Path) -> bool:
    module = COMPILED[0]
    return any(_source(root, module).parent.glob(module.rsplit(".", 1)[1] + ".*.so"))


def install(root: Path = _SRC) -> bool:
    """Decide, once per process, whether the compiled modules are used; True if they are."""
    if any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        return False
    if not _extension_exists(root):
        return False
    reason = None
    if os.environ.get("WEBIMS_PURE"):
        reason = ""
    else:
        try:
            manifest = json.loads((root / "webims" / MANIFEST).read_text())
        except (OSError, ValueError):
            manifest = None
        changed = stale(manifest, root)
        if changed:
            reason = f"webims: {', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''} changed since " \
                     "compiled; running pure Python (scripts/compile.py compiles again)"  # fmt: skip
    if reason is not None:
        if reason:
            print(reason, file=sys.stderr)
        sys.meta_path.insert(0, _SourceFinder())
        return False
    _state["compiled"] = True
    return True


def compiled() -> bool:
    """True when this process runs the compiled modules (for benchmark reports)."""
    module = sys.modules.get(COMPILED[0])
    if module is None:
        return _state["compiled"]
    return not (getattr(module, "__file__", None) or "").endswith(".py")
