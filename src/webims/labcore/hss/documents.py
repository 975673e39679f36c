"""The User-Data documents the HSS sends (TS 29.228 Annex E, in SAA and PPR), remembered.

A document depends only on provisioned data (the IMPI's iFC, the identities of the
implicit registration set with their barring, wildcards and display names), never on
the registration state, so a user's every registration gets the same one: it is
built once, keyed by everything it is built from (no invalidation needed).
"""

from __future__ import annotations

from collections.abc import Sequence

from .store import ImpiRecord, ImpuRecord
from .user_data import MAX_USER_DATA, IdentityType, ImsSubscription, PublicIdentity, ServiceProfile

__all__ = ["MAX_DOCUMENTS", "UserDataDocuments", "build_user_data", "reads_back", "user_data_subscription"]

#: Documents remembered; the cache simply starts over when full.
MAX_DOCUMENTS = 10_000


def build_user_data(
    impi: ImpiRecord, rows: Sequence[ImpuRecord], specific_identity: str | None = None
) -> str:
    """The document of :func:`user_data_subscription`."""
    return user_data_subscription(impi, rows, specific_identity).to_xml()


def user_data_subscription(
    impi: ImpiRecord, rows: Sequence[ImpuRecord], specific_identity: str | None = None
) -> ImsSubscription:
    """The IMSSubscription of ``impi`` with one ServiceProfile listing ``rows`` (one implicit
    registration set, in provisioning order). ``specific_identity``: an identity that matched
    a wildcarded range; it is listed first as a NON_DISTINCT_IMPU carrying its WildcardedIMPU
    (so an S-CSCF that only reads Identity, like Kamailio's, still finds it)."""
    ids: list[PublicIdentity] = []
    for r in rows:
        if r.wildcard:
            if specific_identity is not None:
                ids.insert(
                    0,
                    PublicIdentity(
                        specific_identity,
                        r.barred,
                        IdentityType.NON_DISTINCT_IMPU,
                        wildcarded_impu=r.impu,
                        display_name=r.display_name,
                    ),
                )
            ids.append(
                PublicIdentity(
                    r.impu,
                    r.barred,
                    IdentityType.WILDCARDED_IMPU,
                    wildcarded_impu=r.impu,
                    display_name=r.display_name,
                )
            )
        else:
            ids.append(PublicIdentity(r.impu, r.barred, display_name=r.display_name))
    return ImsSubscription(impi.impi, (ServiceProfile(tuple(ids), impi.ifc_xml),))


def _plain(text: str | None) -> bool:
    return text is None or (text == text.strip() and text.isprintable())


def reads_back(subscription: ImsSubscription, document: str) -> bool:
    """Whether ``ImsSubscription.from_xml(document)`` (its :meth:`~ImsSubscription.to_xml`) gives
    ``subscription`` again, so that a reader in this process may take the object itself: no
    iFC (kept as re-serialised XML), texts that reading neither strips nor normalises (line
    ends) nor refuses, identities and a private identity to read, not too large."""
    if len(document) > MAX_USER_DATA or not subscription.private_id or not _plain(subscription.private_id):
        return False
    for profile in subscription.service_profiles:
        if profile.ifc_xml or not profile.public_identities:
            return False
        for p in profile.public_identities:
            if not p.identity or not _plain(p.identity) or not _plain(p.display_name):
                return False
            if not _plain(p.wildcarded_impu) or not 0 <= p.identity_type <= 9:
                return False
    return bool(subscription.service_profiles)


class UserDataDocuments:
    """:func:`build_user_data`, remembered (with the subscription when it :func:`reads_back`)."""

    def __init__(self, limit: int = MAX_DOCUMENTS) -> None:
        self.limit = limit
        self._documents: dict[tuple[object, ...], tuple[str, ImsSubscription | None]] = {}

    def document(
        self, impi: ImpiRecord, rows: Sequence[ImpuRecord], specific_identity: str | None = None
    ) -> str:
        return self.subscription(impi, rows, specific_identity)[0]

    def subscription(
        self, impi: ImpiRecord, rows: Sequence[ImpuRecord], specific_identity: str | None = None
    ) -> tuple[str, ImsSubscription | None]:
        """The document, and the subscription it is read as when it :func:`reads_back` (else None)."""
        key = (
            impi.impi,
            impi.ifc_xml,
            specific_identity,
            tuple((r.impu, r.barred, r.wildcard, r.display_name) for r in rows),
        )
        found = self._documents.get(key)
        if found is None:
            subscription = user_data_subscription(impi, rows, specific_identity)
            xml = subscription.to_xml()
            found = (xml, subscription if reads_back(subscription, xml) else None)
            if len(self._documents) >= self.limit:
                self._documents.clear()
            self._documents[key] = found
        return found
