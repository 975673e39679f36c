"""The User-Data documents the HSS sends (TS 29.228 Annex E, in SAA and PPR), remembered.

A document depends only on provisioned data (the IMPI's iFC, the identities of the
implicit registration set with their barring, wildcards and display names), never on
the registration state, so a user's every registration gets the same one: it is
built once, keyed by everything it is built from (no invalidation needed).
"""

from __future__ import annotations

from collections.abc import Sequence

from .store import ImpiRecord, ImpuRecord
from .user_data import IdentityType, ImsSubscription, PublicIdentity, ServiceProfile

__all__ = ["MAX_DOCUMENTS", "UserDataDocuments", "build_user_data"]

#: Documents remembered; the cache simply starts over when full.
MAX_DOCUMENTS = 10_000


def build_user_data(
    impi: ImpiRecord, rows: Sequence[ImpuRecord], specific_identity: str | None = None
) -> str:
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
    return ImsSubscription(impi.impi, (ServiceProfile(tuple(ids), impi.ifc_xml),)).to_xml()


class UserDataDocuments:
    """:func:`build_user_data`, remembered."""

    def __init__(self, limit: int = MAX_DOCUMENTS) -> None:
        self.limit = limit
        self._documents: dict[tuple[object, ...], str] = {}

    def document(
        self, impi: ImpiRecord, rows: Sequence[ImpuRecord], specific_identity: str | None = None
    ) -> str:
        key = (
            impi.impi,
            impi.ifc_xml,
            specific_identity,
            tuple((r.impu, r.barred, r.wildcard, r.display_name) for r in rows),
        )
        xml = self._documents.get(key)
        if xml is None:
            xml = build_user_data(impi, rows, specific_identity)
            if len(self._documents) >= self.limit:
                self._documents.clear()
            self._documents[key] = xml
        return xml
