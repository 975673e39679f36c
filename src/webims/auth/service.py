"""The web authorization function assembled from its parts (no HTTP here).

:class:`AuthService` owns the users, clients, pools, signing keys, token service,
web sessions and login limiter over one :class:`~webims.store.Store`. The HTTP
server (:mod:`webims.auth.server`), the CLI and an in-process gateway all use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from webims.store import Store

from . import schema
from .identity import Identity
from .keys import KeyRing
from .oidc import ProviderConfig
from .passwords import PasswordHasher
from .pools import PoolManager
from .ratelimit import LoginLimiter
from .sessions import SessionManager
from .tokens import TokenPolicy, TokenService
from .users import Clients, Users
from .verify import CallableKeys, TokenVerifier, TrustedIssuer

__all__ = ["AuthService", "ServiceSettings"]


@dataclass(frozen=True)
class ServiceSettings:
    """What :class:`AuthService` needs; :meth:`from_config` maps ``[auth]`` onto it."""

    issuer: str
    audience: str = "webims"
    access_ttl: int = 600
    refresh_ttl: int = 86_400
    code_ttl: int = 60
    session_ttl: int = 43_200
    leeway: int = 30
    key_rotation_interval: int = 7 * 86_400
    admin_token: str = ""
    wic_client_id: str = "wic"
    wic_redirect_uris: tuple[str, ...] = ()
    home_country_code: str = ""
    digest_realm: str = "webims"
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    max_failures_per_user: int = 5
    max_failures_per_ip: int = 20
    login_window: float = 300.0
    password_time_cost: int = 2
    password_memory_kib: int = 19_456
    password_parallelism: int = 1
    providers: tuple[ProviderConfig, ...] = ()
    secure_cookies: bool = True

    @classmethod
    def from_config(cls, cfg: Any, providers: Sequence[ProviderConfig] = ()) -> ServiceSettings:
        """From an :class:`~webims.auth.config.AuthConfig`."""
        return cls(
            issuer=cfg.issuer_url,
            audience=cfg.audience,
            access_ttl=cfg.access_token_ttl,
            refresh_ttl=cfg.refresh_token_ttl,
            code_ttl=cfg.code_ttl,
            session_ttl=cfg.session_ttl,
            leeway=cfg.leeway,
            key_rotation_interval=cfg.key_rotation_interval,
            admin_token=cfg.admin_token,
            wic_client_id=cfg.wic_client_id,
            wic_redirect_uris=tuple(cfg.wic_redirect_uris),
            home_country_code=cfg.home_country_code,
            digest_realm=cfg.digest_realm,
            digest_algorithms=tuple(cfg.digest_algorithms),
            max_failures_per_user=cfg.login.max_failures_per_user,
            max_failures_per_ip=cfg.login.max_failures_per_ip,
            login_window=cfg.login.window,
            password_time_cost=cfg.password.time_cost,
            password_memory_kib=cfg.password.memory_kib,
            password_parallelism=cfg.password.parallelism,
            providers=tuple(providers),
            secure_cookies=not cfg.plain_http,
        )


class AuthService:
    """Users, clients, pools, keys, tokens and sessions over one store."""

    def __init__(
        self,
        store: Store,
        settings: ServiceSettings,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        register_wic: bool = True,
    ) -> None:
        """``register_wic``: (re)register the WIC's public client from the settings (the
        server does; provisioning commands only create it when missing)."""
        schema.install(store)
        self.store = store
        self.settings = settings
        self.clock = clock
        self.hasher = PasswordHasher(
            time_cost=settings.password_time_cost,
            memory_kib=settings.password_memory_kib,
            parallelism=settings.password_parallelism,
        )
        self.users = Users(store, self.hasher)
        self.clients = Clients(store)
        self.pools = PoolManager(store)
        self.keys = KeyRing(
            store,
            rotation_interval=settings.key_rotation_interval,
            keep_for=settings.access_ttl + settings.leeway + 60,
        )
        self.tokens = TokenService(
            store,
            self.keys,
            self.users,
            self.clients,
            self.pools,
            TokenPolicy(
                issuer=settings.issuer,
                audience=settings.audience,
                access_ttl=settings.access_ttl,
                refresh_ttl=settings.refresh_ttl,
                code_ttl=settings.code_ttl,
                cc=settings.home_country_code,
            ),
            clock=clock,
        )
        self.sessions = SessionManager(
            store, self.users, self.pools, issuer=settings.issuer, ttl=settings.session_ttl, clock=clock
        )
        self.limiter = LoginLimiter(
            per_user=settings.max_failures_per_user,
            per_ip=settings.max_failures_per_ip,
            window=settings.login_window,
            clock=monotonic,
        )
        if register_wic:
            self.register_wic_client()

    def register_wic_client(self) -> None:
        """Create or update the public client of the web client (``auth.wic_*`` settings)."""
        if self.settings.wic_redirect_uris:
            self.clients.put(
                self.settings.wic_client_id,
                redirect_uris=self.settings.wic_redirect_uris,
                grant_types=("authorization_code", "refresh_token"),
                replace=True,
            )

    def verifier(self, *, remote_ssl: Any = True, **jwks_options: Any) -> TokenVerifier:
        """A :class:`TokenVerifier` for an in-process gateway: this server's keys (read from
        the store), its revocation list and pool leases, plus the external providers."""
        issuers = [
            TrustedIssuer(self.settings.issuer, CallableKeys(self.keys.jwks), (self.settings.audience,)),
            *(
                TrustedIssuer.from_provider(p, ssl=remote_ssl, **jwks_options)
                for p in self.settings.providers
            ),
        ]
        return TokenVerifier(
            issuers,
            leeway=self.settings.leeway,
            revoked=self.tokens.is_revoked,
            allocation_active=lambda alc: self.pools.is_active(alc, now=self.clock()),
            user_lookup=self.users.find,
            clock=self.clock,
        )

    def verify_session(self, cookie_value: str | None, *, scope: str | None = None) -> Identity:
        """Seed 000 §6.2.2.4.2: the identity behind a ``webims_session`` cookie value."""
        return self.sessions.verify_session(cookie_value, scope=scope)

    def upkeep(self) -> None:
        """Periodic work: signing-key rotation when due, expired rows."""
        self.keys.rotate_if_due()
        self.tokens.housekeeping()

    def rotate_keys(self) -> str:
        return self.keys.rotate()
