"""The WIC's files: ``webclient/`` built into one script with esbuild, held in memory.

``webclient/src/main.js`` (ES modules importing JsSIP from npm) is bundled by the
``esbuild`` of ``node_modules`` (root ``package.json`` devDependencies, installed by
``scripts/setup.sh``) when the server starts: nothing built is committed.  A
prebuilt bundle can be served instead (``[web] bundle``) where Node.js is absent.

``index.html`` carries placeholders filled here: the Subresource Integrity
hashes (W3C SRI) of the script and the stylesheet it loads.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Asset", "Assets", "BuildError", "build_assets", "default_webclient_dir", "find_esbuild", "run_esbuild",
]  # fmt: skip

JS_SRI = "__WIC_JS_SRI__"
CSS_SRI = "__WIC_CSS_SRI__"
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".html": "text/html",
}
#: esbuild's targets: the browsers the WIC supports (WebRTC, WebCrypto, ES2020).
TARGETS = "es2020,chrome100,firefox102,safari15"


class BuildError(Exception):
    """The WIC could not be built; the message says what to install or fix."""


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str = field(init=False)
    integrity: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"')
        digest = base64.b64encode(hashlib.sha384(self.body).digest()).decode()
        object.__setattr__(self, "integrity", "sha384-" + digest)


@dataclass(frozen=True)
class Assets:
    """index.html and the files under ``/wic/`` (name -> asset)."""

    index: Asset
    files: dict[str, Asset]

    @property
    def size(self) -> int:
        return len(self.index.body) + sum(len(a.body) for a in self.files.values())


def default_webclient_dir() -> Path:
    """``webclient/`` of the checkout this package runs from (editable install)."""
    return Path(__file__).resolve().parents[3] / "webclient"


def find_esbuild(webclient: Path) -> Path:
    """The esbuild of the nearest ``node_modules/.bin`` above ``webclient``, else on PATH."""
    for parent in (webclient, *webclient.parents):
        candidate = parent / "node_modules" / ".bin" / "esbuild"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("esbuild")
    if found is None:
        raise BuildError(
            "esbuild not found: run scripts/setup.sh (npm install) in the checkout, "
            "or set web.bundle to a prebuilt wic.js"
        )
    return Path(found)


def run_esbuild(tool: Path, entry: Path, options: Sequence[str], *, cwd: Path | None = None) -> None:
    """Bundle ``entry`` for the browser with esbuild and ``options`` (the output among them).
    Raises :class:`BuildError` with esbuild's message when it cannot run or fails."""
    args = [str(tool), str(entry), "--bundle", "--platform=browser", "--log-level=warning", *options]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"esbuild failed to run: {exc}") from None
    if proc.returncode != 0:
        raise BuildError(f"esbuild failed building {entry}:\n{proc.stderr.strip()}")


def _esbuild(webclient: Path, *, minify: bool, esbuild: Path | None) -> tuple[bytes, bytes]:
    tool = esbuild or find_esbuild(webclient)
    entry = webclient / "src" / "main.js"
    if not entry.is_file():
        raise BuildError(f"the WIC entry point {entry} is missing")
    with tempfile.TemporaryDirectory(prefix="webims-wic-") as out:
        outfile = Path(out) / "wic.js"
        options = [
            "--format=iife", f"--target={TARGETS}", "--charset=utf8", "--legal-comments=none",
            "--sourcemap=external", "--sources-content=true", f"--outfile={outfile}",
        ]  # fmt: skip
        if minify:
            options.append("--minify")
        run_esbuild(tool, entry, options, cwd=webclient)
        js = outfile.read_bytes()
        source_map = outfile.with_name("wic.js.map").read_bytes()
    return js, source_map


def build_assets(
    webclient: Path | None = None,
    *,
    bundle: Path | None = None,
    minify: bool = True,
    esbuild: Path | None = None,
) -> Assets:
    """Build (or load) the WIC.  Raises :class:`BuildError` with a clear message."""
    root = webclient or default_webclient_dir()
    index_file = root / "index.html"
    if not index_file.is_file():
        raise BuildError(f"the WIC is missing: no {index_file} (set web.webclient_dir)")
    files: dict[str, Asset] = {}
    if bundle is not None:
        files["wic.js"] = Asset(bundle.read_bytes(), _TYPES[".js"])
    else:
        js, source_map = _esbuild(root, minify=minify, esbuild=esbuild)
        files["wic.js"] = Asset(js, _TYPES[".js"])
        files["wic.js.map"] = Asset(source_map, _TYPES[".map"])
    for path in sorted((root / "static").glob("*")):
        content_type = _TYPES.get(path.suffix)
        if path.is_file() and content_type is not None:
            files[path.name] = Asset(path.read_bytes(), content_type)
    if "wic.css" not in files:
        raise BuildError(f"the WIC stylesheet {root / 'static' / 'wic.css'} is missing")
    html = index_file.read_text(encoding="utf-8")
    html = html.replace(JS_SRI, files["wic.js"].integrity).replace(CSS_SRI, files["wic.css"].integrity)
    return Assets(Asset(html.encode("utf-8"), "text/html"), files)
