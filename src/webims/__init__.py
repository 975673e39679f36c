"""webims: WebRTC access to IMS (TS 23.228 Annex U, TS 24.371)."""

__version__ = "0.1.0"
