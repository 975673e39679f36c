"""HSS subscriber storage (tables ``hss_*`` in the shared :class:`webims.store.Store`)."""

from .subscribers import (
    AkaState,
    DigestAlgorithmName,
    ImpiRecord,
    ImpuMatch,
    ImpuRecord,
    ProvisioningError,
    RegState,
    Subscriber,
    SubscriberChanges,
    SubscriberSpec,
    SubscriberStore,
    UserLookup,
)

__all__ = [
    "AkaState",
    "DigestAlgorithmName",
    "ImpiRecord",
    "ImpuMatch",
    "ImpuRecord",
    "ProvisioningError",
    "RegState",
    "Subscriber",
    "SubscriberChanges",
    "SubscriberSpec",
    "SubscriberStore",
    "UserLookup",
]
