"""The lab HSS (TS 29.228 / TS 29.229 Cx over RFC 6733 Diameter), for the demo, the tests and Kamailio.

* :class:`SubscriberStore` — subscribers in SQLite (``store/subscribers.py``);
* :class:`CxHandlers` — UAR, MAR, SAR, LIR answers; RTR/PPR construction;
* :class:`HssServer` — the asyncio Diameter server; :class:`CxClient` — a Cx client;
* :class:`AdminServer` — the HTTP admin endpoint for RTR/PPR commands;
* :func:`running_hss` / :func:`serve` — run it from a config.
"""

from .admin import REASONS, AdminClientError, AdminServer, admin_call
from .client import CxClient
from .connection import ConnectionClosed, DiameterConnection
from .cx_handlers import CxHandlers
from .cx_outcomes import Deregistration
from .run import open_subscribers, run_hss, running_hss, serve
from .server import AdminError, AdminResult, HssServer
from .settings import HssConfig
from .store import (
    ImpiRecord,
    ImpuMatch,
    ImpuRecord,
    ProvisioningError,
    RegState,
    Subscriber,
    SubscriberChanges,
    SubscriberSpec,
    SubscriberStore,
)
from .user_data import IdentityType, ImsSubscription, PublicIdentity, ServiceProfile, UserDataError
from .wildcard import WildcardError, WildcardIndex, compile_wildcard, is_wildcarded, wildcard_matches

__all__ = [
    "REASONS",
    "AdminClientError",
    "AdminError",
    "AdminResult",
    "AdminServer",
    "ConnectionClosed",
    "CxClient",
    "CxHandlers",
    "Deregistration",
    "DiameterConnection",
    "HssConfig",
    "HssServer",
    "IdentityType",
    "ImpiRecord",
    "ImpuMatch",
    "ImpuRecord",
    "ImsSubscription",
    "ProvisioningError",
    "PublicIdentity",
    "RegState",
    "ServiceProfile",
    "Subscriber",
    "SubscriberChanges",
    "SubscriberSpec",
    "SubscriberStore",
    "UserDataError",
    "WildcardError",
    "WildcardIndex",
    "admin_call",
    "compile_wildcard",
    "is_wildcarded",
    "open_subscribers",
    "run_hss",
    "running_hss",
    "serve",
    "wildcard_matches",
]
