"""HSS subscriber storage (tables ``hss_*`` in the shared :class:`webims.store.Store`).

:mod:`.subscribers` (provisioning), :mod:`.runtime` (the reads and writes of Cx
requests, with a row cache), :mod:`.records` (rows as records, SQL).
"""

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
