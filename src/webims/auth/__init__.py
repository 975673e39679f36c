"""Web authorization function (IMS-Web Authentication & Identity server; TS 23.228 Annex U WAF).

Seeds 004 §6.X.2.2.3 and §6.X.2.2.5, 000 §6.2.2.4.2: the WIC authenticates on the
web and gets a token; the gateway verifies it and maps the web identity onto IMS
identities (fixed IMPI/IMPUs, or one IMPU of a pool registered in advance).

Public API (what the gateway and the other components use)::

    from webims.auth import AuthService, ServiceSettings, TokenVerifier, Identity, check_destination
    from webims.store import Store

    service = AuthService(Store(path), ServiceSettings(issuer="https://127.0.0.1:8443"))
    verifier = service.verifier()        # in-process: the store's keys, revocation list, leases
    # -> Identity, or raises InvalidToken (401) / InsufficientScope (403):
    identity = await verifier.verify(token, scope="register")
    identity = service.verify_session(cookie_value)  # seed 000 variant: session cookie -> Identity
    decision = check_destination(identity, "tel:+19005550100", scope="call")  # truthy; .reason
    service.pools.renew(identity.allocation, lease=600)  # while the WIC stays registered
    service.pools.release(identity.allocation)           # when the WIC disconnects

A remote gateway builds ``TokenVerifier([TrustedIssuer(issuer, RemoteJWKS(url), (aud,))])``
and may fall back to :class:`Introspector`; it releases/renews leases with
``POST /pool/release`` / ``POST /pool/renew``.

Modules: :mod:`.service` (assembly), :mod:`.tokens` (grants, JWTs, revocation),
:mod:`.verify` (verification library), :mod:`.identity` (Identity, destination
rules), :mod:`.pools` (IMPU pools), :mod:`.users` (users, clients), :mod:`.keys`
(signing keys, JWKS), :mod:`.sessions` (web sessions, HTTP Digest login),
:mod:`.oidc` (external providers), :mod:`.server`/:mod:`.http_oauth`/:mod:`.http_admin`
(HTTP), :mod:`.cli` (``webims user|pool|client|token``), :mod:`.config` (``[auth]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from webims.lazy import lazy_exports

if TYPE_CHECKING:
    from webims.config import Config

__all__ = [
    "AuthService",
    "Identity",
    "InsufficientScope",
    "Introspector",
    "InvalidToken",
    "RemoteJWKS",
    "ServiceSettings",
    "TokenError",
    "TokenVerifier",
    "TrustedIssuer",
    "check_destination",
    "serve",
]

_LAZY = {
    "AuthService": ".service",
    "ServiceSettings": ".service",
    "Identity": ".identity",
    "check_destination": ".identity",
    "TokenVerifier": ".verify",
    "TrustedIssuer": ".verify",
    "RemoteJWKS": ".verify",
    "Introspector": ".verify",
    "TokenError": ".errors",
    "InvalidToken": ".errors",
    "InsufficientScope": ".errors",
}


# Lazy imports keep ``import webims.auth.settings`` (config discovery) light.
__getattr__ = lazy_exports(__name__, _LAZY)


def serve(config: Config) -> int:
    """``webims serve auth``."""
    from .run import serve as _serve

    return _serve(config)
