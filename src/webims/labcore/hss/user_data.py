"""The IMS subscription document carried in Cx User-Data (TS 29.228 Annex E, TS 29.229 §6.3.4).

::

    <IMSSubscription>
      <PrivateID>alice@ims.test</PrivateID>
      <ServiceProfile>                                   one per implicit registration set
        <PublicIdentity>
          <BarringIndication>1</BarringIndication>       optional, only when barred
          <Identity>sip:alice@ims.test</Identity>
          <Extension>
            <IdentityType>0</IdentityType>               Table E.1 tIdentityType
            <Extension>
              <DisplayName>Alice</DisplayName>
              <Extension><WildcardedIMPU>sip:!.*!@ims.test</WildcardedIMPU></Extension>
            </Extension>
          </Extension>
        </PublicIdentity>
        <InitialFilterCriteria>...</InitialFilterCriteria>   optional (kept verbatim)
      </ServiceProfile>
    </IMSSubscription>

Element order follows the Annex E schema (BarringIndication before Identity,
IdentityType first in the Extension), which is also what Kamailio's
``ims_registrar_scscf`` parser expects: it recognises children by their first
letter and takes the first ``I...`` child as the Identity.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from enum import IntEnum
from xml.sax.saxutils import escape

__all__ = [
    "MAX_USER_DATA",
    "IdentityType",
    "ImsSubscription",
    "PublicIdentity",
    "ServiceProfile",
    "UserDataError",
    "check_ifc_xml",
]

#: Largest User-Data document we parse (TS 29.229 leaves it open; keep Diameter messages small).
MAX_USER_DATA = 64 * 1024


class IdentityType(IntEnum):
    """tIdentityType, TS 29.228 Annex E Table E.1."""

    DISTINCT_PUBLIC_USER_IDENTITY = 0
    DISTINCT_PSI = 1
    WILDCARDED_PSI = 2
    NON_DISTINCT_IMPU = 3
    WILDCARDED_IMPU = 4


class UserDataError(ValueError):
    """A User-Data document or an iFC fragment that is not well-formed or not Annex E shaped."""


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    identity: str
    barred: bool = False
    identity_type: int = IdentityType.DISTINCT_PUBLIC_USER_IDENTITY
    wildcarded_impu: str | None = None
    display_name: str | None = None

    def to_xml(self) -> str:
        parts = ["<PublicIdentity>"]
        if self.barred:
            parts.append("<BarringIndication>1</BarringIndication>")
        parts.append(f"<Identity>{escape(self.identity)}</Identity>")
        parts.append(f"<Extension><IdentityType>{int(self.identity_type)}</IdentityType>")
        if self.display_name is not None or self.wildcarded_impu is not None:
            parts.append("<Extension>")
            if self.display_name is not None:
                parts.append(f"<DisplayName>{escape(self.display_name)}</DisplayName>")
            if self.wildcarded_impu is not None:
                parts.append(
                    f"<Extension><WildcardedIMPU>{escape(self.wildcarded_impu)}</WildcardedIMPU></Extension>"
                )
            parts.append("</Extension>")
        parts.append("</Extension></PublicIdentity>")
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class ServiceProfile:
    """One ServiceProfile: its public identities and (optional) InitialFilterCriteria XML."""

    public_identities: tuple[PublicIdentity, ...]
    ifc_xml: str = ""

    def to_xml(self) -> str:
        ids = "".join(p.to_xml() for p in self.public_identities)
        return f"<ServiceProfile>{ids}{self.ifc_xml}</ServiceProfile>"


@dataclass(frozen=True, slots=True)
class ImsSubscription:
    private_id: str
    service_profiles: tuple[ServiceProfile, ...]

    def to_xml(self) -> str:
        profiles = "".join(sp.to_xml() for sp in self.service_profiles)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<IMSSubscription><PrivateID>{escape(self.private_id)}</PrivateID>{profiles}</IMSSubscription>"
        )

    @property
    def identities(self) -> tuple[str, ...]:
        return tuple(p.identity for sp in self.service_profiles for p in sp.public_identities)

    @classmethod
    def from_xml(cls, data: str | bytes) -> ImsSubscription:
        """Parse a User-Data document; raises :class:`UserDataError` only."""
        if len(data) > MAX_USER_DATA:
            raise UserDataError(f"User-Data larger than {MAX_USER_DATA} bytes")
        try:
            root = ET.fromstring(data)
        except ET.ParseError as exc:
            raise UserDataError(f"User-Data is not well-formed XML: {exc}") from None
        if _local(root.tag) != "IMSSubscription":
            raise UserDataError(f"root element is {_local(root.tag)!r}, not IMSSubscription")
        first = _first_children(root)
        private_id = _text(first.get("PrivateID"))
        if not private_id:
            raise UserDataError("IMSSubscription without PrivateID")
        profiles = tuple(_profile(sp) for sp in _children(root, "ServiceProfile"))
        if not profiles:
            raise UserDataError("IMSSubscription without ServiceProfile")
        return cls(private_id, profiles)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(node: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in node if _local(c.tag) == name]


def _child(node: ET.Element | None, name: str) -> ET.Element | None:
    if node is None:
        return None
    found = _children(node, name)
    return found[0] if found else None


def _first_children(node: ET.Element | None) -> dict[str, ET.Element]:
    """The first child of each local name (what :func:`_child` finds), in one pass."""
    first: dict[str, ET.Element] = {}
    if node is not None:
        for c in node:
            first.setdefault(_local(c.tag), c)
    return first


def _text(node: ET.Element | None) -> str:
    return (node.text or "").strip() if node is not None else ""


def _profile(sp: ET.Element) -> ServiceProfile:
    ids = []
    for pi in _children(sp, "PublicIdentity"):
        # each element's children are looked at once (this runs for every first registration)
        f0 = _first_children(pi)
        identity = _text(f0.get("Identity"))
        if not identity:
            raise UserDataError("PublicIdentity without Identity")
        f1 = _first_children(f0.get("Extension"))
        f2 = _first_children(f1.get("Extension"))
        f3 = _first_children(f2.get("Extension"))
        itype = _text(f1.get("IdentityType")) or "0"
        if not itype.isdigit():
            raise UserDataError(f"IdentityType {itype!r} is not a number")
        barring = _text(f0.get("BarringIndication")).lower()
        display = f2.get("DisplayName")
        wildcard = f3.get("WildcardedIMPU")
        ids.append(
            PublicIdentity(
                identity=identity,
                barred=barring in ("1", "true"),
                identity_type=int(itype),
                wildcarded_impu=_text(wildcard) if wildcard is not None else None,
                display_name=_text(display) if display is not None else None,
            )
        )
    if not ids:
        raise UserDataError("ServiceProfile without PublicIdentity")
    ifc = "".join(ET.tostring(c, encoding="unicode") for c in _children(sp, "InitialFilterCriteria"))
    return ServiceProfile(tuple(ids), ifc)


def check_ifc_xml(fragment: str) -> str:
    """Check a sequence of ``<InitialFilterCriteria>`` elements (Annex E tInitialFilterCriteria).

    Each needs a Priority and an ApplicationServer with a ServerName. Returns the
    fragment stripped of surrounding whitespace; raises :class:`UserDataError`.
    """
    fragment = fragment.strip()
    if not fragment:
        return ""
    if len(fragment) > MAX_USER_DATA // 2:
        raise UserDataError("iFC XML too large")
    try:
        root = ET.fromstring(f"<r>{fragment}</r>")
    except ET.ParseError as exc:
        raise UserDataError(f"iFC XML is not well-formed: {exc}") from None
    for ifc in root:
        if _local(ifc.tag) != "InitialFilterCriteria":
            raise UserDataError(f"unexpected element {_local(ifc.tag)!r} (InitialFilterCriteria expected)")
        if not _text(_child(ifc, "Priority")).isdigit():
            raise UserDataError("InitialFilterCriteria needs a numeric Priority")
        if not _text(_child(_child(ifc, "ApplicationServer"), "ServerName")):
            raise UserDataError("InitialFilterCriteria needs ApplicationServer/ServerName")
    return fragment
