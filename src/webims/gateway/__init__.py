"""webims.gateway: the Web Signalling Translator (seed 004) / WebRTC Signalling Function, eP-CSCF (seed 000).

SIP over WebSocket from WICs (:mod:`.wic`) <-> SIP over Mw toward the I-CSCF, or as a
UE toward an operator P-CSCF (:mod:`.ims`), with every registration mode of
DESIGN.md §2 (:mod:`.modes`, :mod:`.registrar`, :mod:`.pool`), chosen per WIC by
policy (:mod:`.policy`); per-WIC flow and identity state in one place
(:mod:`.state`); reg-event subscriptions (:mod:`.regevent`); requests other than
REGISTER (:mod:`.proxy`); rate limits (:mod:`.ratelimit`); RFC 3263 next-hop
resolution (:mod:`.resolver`). ``webims serve gateway`` runs :func:`serve`.

    from webims.gateway import Gateway, GatewayConfig, running_gateway
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webims.config import Config

__all__ = [
    "Binding",
    "Gateway",
    "GatewayConfig",
    "MemoryRegistrationStore",
    "RegistrationStore",
    "SqliteRegistrationStore",
    "build_gateway",
    "running_gateway",
    "serve",
]

_LAZY = {
    "Gateway": ".core",
    "GatewayConfig": ".settings",
    "Binding": ".state",
    "MemoryRegistrationStore": ".state",
    "RegistrationStore": ".state",
    "SqliteRegistrationStore": ".state",
    "build_gateway": ".run",
    "running_gateway": ".run",
}


def __getattr__(name: str) -> Any:
    """Lazy imports keep ``import webims.gateway.settings`` (config discovery) light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'webims.gateway' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)


def serve(config: Config) -> int:
    """``webims serve gateway``."""
    from .run import serve as _serve

    return _serve(config)
