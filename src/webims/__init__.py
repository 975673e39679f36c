"""webims: WebRTC access to IMS (TS 23.228 Annex U, TS 24.371)."""

from webims.native import install as _install_native

__version__ = "0.1.0"

_install_native()  # compiled hot path, unless a source changed since (webims.native)
