"""The AVP dictionary: codes, vendors, data formats and M-bit rules.

Sources, checked against each other (DESIGN.md warns that one library's Cx
classes carry wrong codes):

* base protocol: RFC 6733 §4.5 (table of base AVPs), §5, §6, §7, §8;
* Cx: TS 29.229 §6.3 (Table 6.3.1, "Must/May/Must not" columns), cross-checked with
  Kamailio ``src/modules/cdp/diameter_ims_code_avp.h`` and the Erlang/OTP ``diameter``
  Cx dictionary. Note: 638 is Loose-Route-Indication and LIA-Flags is 653;
  Path is 640 and Contact is 641;
* the Digest AVPs of RFC 4590 (codes 103-122, vendor 0) that TS 29.229 reuses in
  SIP-Digest-Authenticate;
* the ETSI TS 183 033 AVPs (vendor 13019) that Kamailio's S-CSCF puts inside
  SIP-Auth-Data-Item of every MAR (``ims_auth/cxdx_avp.c``), with the M bit set: an HSS
  that did not know them would have to reject Kamailio's MAR with 5001.

``mandatory`` is the M-bit rule used when *we* send the AVP. On receipt the M bit of
known AVPs is not checked: Kamailio sends Origin-Host, Origin-Realm and Session-Id
without it (``cdp/diameter_msg.c``), and RFC 6733 §4.1 only asks to reject unknown
AVPs that carry it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum

from .constants import AVP_FLAG_MANDATORY, AVP_FLAG_VENDOR, VENDOR_3GPP, VENDOR_ETSI
from .datatypes import FIXED_LENGTH, INT_FORMAT, AvpType


class MRule(Enum):
    """The M-bit columns of the AVP tables (RFC 6733 §4.5, TS 29.229 Table 6.3.1)."""

    MUST = "must"
    MAY = "may"
    MUST_NOT = "must not"


@dataclass(frozen=True, slots=True)
class AvpDef:
    name: str
    code: int
    vendor_id: int
    type: AvpType
    mandatory: MRule
    #: ``(code, vendor_id)``, the identity of the AVP on the wire.
    key: tuple[int, int] = field(init=False, compare=False)
    # Derived once, for the codec's fast paths (see webims.diameter.avp):
    #: the flags byte we send (V when vendor-specific, M when the rule is "must").
    send_flags: int = field(init=False, compare=False, repr=False)
    #: payload length of a fixed-size format, else -1.
    fixed_length: int = field(init=False, compare=False, repr=False)
    #: struct of an integer format (Integer32/64, Unsigned32/64, Enumerated, Time), else None.
    int_struct: struct.Struct | None = field(init=False, compare=False, repr=False)
    #: how a text view decodes the payload: "utf-8" (UTF8String, OctetString) or "ascii".
    text_encoding: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        fmt = INT_FORMAT.get(self.type)
        derived = {
            "key": (self.code, self.vendor_id),
            "send_flags": (AVP_FLAG_VENDOR if self.vendor_id else 0)
            | (AVP_FLAG_MANDATORY if self.mandatory is MRule.MUST else 0),
            "fixed_length": FIXED_LENGTH.get(self.type, -1),
            "int_struct": struct.Struct(fmt) if fmt is not None else None,
            "text_encoding": "utf-8" if self.type in (AvpType.UTF8_STRING, AvpType.OCTET_STRING) else "ascii",
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)


_O = AvpType.OCTET_STRING
_I32 = AvpType.INTEGER32
_U32 = AvpType.UNSIGNED32
_U64 = AvpType.UNSIGNED64
_G = AvpType.GROUPED
_ADDR = AvpType.ADDRESS
_TIME = AvpType.TIME
_UTF8 = AvpType.UTF8_STRING
_ID = AvpType.DIAMETER_IDENTITY
_URI = AvpType.DIAMETER_URI
_ENUM = AvpType.ENUMERATED
_M = MRule.MUST
_MAY = MRule.MAY
_NOT = MRule.MUST_NOT

# (name, code, type, M rule), vendor 0. RFC 6733 §4.5 and the RADIUS attributes Cx reuses.
_BASE: tuple[tuple[str, int, AvpType, MRule], ...] = (
    ("User-Name", 1, _UTF8, _M),
    ("Framed-IP-Address", 8, _O, _M),  # RFC 7155, in SIP-Auth-Data-Item (NASS-bundled)
    ("Class", 25, _O, _M),
    ("Session-Timeout", 27, _U32, _M),
    ("Proxy-State", 33, _O, _M),
    ("Acct-Session-Id", 44, _O, _M),
    ("Acct-Multi-Session-Id", 50, _UTF8, _M),
    ("Event-Timestamp", 55, _TIME, _M),
    ("Acct-Interim-Interval", 85, _U32, _M),
    ("Framed-Interface-Id", 96, _U64, _M),  # RFC 7155
    ("Framed-IPv6-Prefix", 97, _O, _M),  # RFC 7155
    ("Host-IP-Address", 257, _ADDR, _M),
    ("Auth-Application-Id", 258, _U32, _M),
    ("Acct-Application-Id", 259, _U32, _M),
    ("Vendor-Specific-Application-Id", 260, _G, _M),
    ("Redirect-Host-Usage", 261, _ENUM, _M),
    ("Redirect-Max-Cache-Time", 262, _U32, _M),
    ("Session-Id", 263, _UTF8, _M),
    ("Origin-Host", 264, _ID, _M),
    ("Supported-Vendor-Id", 265, _U32, _M),
    ("Vendor-Id", 266, _U32, _M),
    ("Firmware-Revision", 267, _U32, _NOT),
    ("Result-Code", 268, _U32, _M),
    ("Product-Name", 269, _UTF8, _NOT),
    ("Session-Binding", 270, _U32, _M),
    ("Session-Server-Failover", 271, _ENUM, _M),
    ("Multi-Round-Time-Out", 272, _U32, _M),
    ("Disconnect-Cause", 273, _ENUM, _M),
    ("Auth-Request-Type", 274, _ENUM, _M),
    ("Auth-Grace-Period", 276, _U32, _M),
    ("Auth-Session-State", 277, _ENUM, _M),
    ("Origin-State-Id", 278, _U32, _M),
    ("Failed-AVP", 279, _G, _M),
    ("Proxy-Host", 280, _ID, _M),
    ("Error-Message", 281, _UTF8, _NOT),
    ("Route-Record", 282, _ID, _M),
    ("Destination-Realm", 283, _ID, _M),
    ("Proxy-Info", 284, _G, _M),
    ("Re-Auth-Request-Type", 285, _ENUM, _M),
    ("Accounting-Sub-Session-Id", 287, _U64, _M),
    ("Authorization-Lifetime", 291, _U32, _M),
    ("Redirect-Host", 292, _URI, _M),
    ("Destination-Host", 293, _ID, _M),
    ("Error-Reporting-Host", 294, _ID, _NOT),
    ("Termination-Cause", 295, _ENUM, _M),
    ("Origin-Realm", 296, _ID, _M),
    ("Experimental-Result", 297, _G, _M),
    ("Experimental-Result-Code", 298, _U32, _M),
    ("Inband-Security-Id", 299, _U32, _M),
    ("Accounting-Record-Type", 480, _ENUM, _M),
    ("Accounting-Realtime-Required", 483, _ENUM, _M),
    ("Accounting-Record-Number", 485, _U32, _M),
    # RFC 4590 Digest attributes; TS 29.229 Table 6.3.1: M must, V must not.
    ("Digest-Response", 103, _UTF8, _M),
    ("Digest-Realm", 104, _UTF8, _M),
    ("Digest-Nonce", 105, _UTF8, _M),
    ("Digest-Response-Auth", 106, _UTF8, _M),
    ("Digest-Nextnonce", 107, _UTF8, _M),
    ("Digest-Method", 108, _UTF8, _M),
    ("Digest-URI", 109, _UTF8, _M),
    ("Digest-QoP", 110, _UTF8, _M),
    ("Digest-Algorithm", 111, _UTF8, _M),
    ("Digest-Entity-Body-Hash", 112, _UTF8, _M),
    ("Digest-CNonce", 113, _UTF8, _M),
    ("Digest-Nonce-Count", 114, _UTF8, _M),
    ("Digest-Username", 115, _UTF8, _M),
    ("Digest-Opaque", 116, _UTF8, _M),
    ("Digest-Auth-Param", 117, _UTF8, _M),
    ("Digest-AKA-Auts", 118, _O, _M),
    ("Digest-Domain", 119, _UTF8, _M),
    ("Digest-Stale", 120, _UTF8, _M),
    ("Digest-HA1", 121, _UTF8, _M),
    ("SIP-AOR", 122, _UTF8, _M),
)

# Cx, vendor 10415: TS 29.229 Table 6.3.1.
_CX: tuple[tuple[str, int, AvpType, MRule], ...] = (
    ("Visited-Network-Identifier", 600, _O, _M),
    ("Public-Identity", 601, _UTF8, _M),
    ("Server-Name", 602, _UTF8, _M),
    ("Server-Capabilities", 603, _G, _M),
    ("Mandatory-Capability", 604, _U32, _M),
    ("Optional-Capability", 605, _U32, _M),
    ("User-Data", 606, _O, _M),
    ("SIP-Number-Auth-Items", 607, _U32, _M),
    ("SIP-Authentication-Scheme", 608, _UTF8, _M),
    ("SIP-Authenticate", 609, _O, _M),
    ("SIP-Authorization", 610, _O, _M),
    ("SIP-Authentication-Context", 611, _O, _M),
    ("SIP-Auth-Data-Item", 612, _G, _M),
    ("SIP-Item-Number", 613, _U32, _M),
    ("Server-Assignment-Type", 614, _ENUM, _M),
    ("Deregistration-Reason", 615, _G, _M),
    ("Reason-Code", 616, _ENUM, _M),
    ("Reason-Info", 617, _UTF8, _M),
    ("Charging-Information", 618, _G, _M),
    ("Primary-Event-Charging-Function-Name", 619, _URI, _M),
    ("Secondary-Event-Charging-Function-Name", 620, _URI, _M),
    ("Primary-Charging-Collection-Function-Name", 621, _URI, _M),
    ("Secondary-Charging-Collection-Function-Name", 622, _URI, _M),
    ("User-Authorization-Type", 623, _ENUM, _M),
    ("User-Data-Already-Available", 624, _ENUM, _M),
    ("Confidentiality-Key", 625, _O, _M),
    ("Integrity-Key", 626, _O, _M),
    ("Supported-Features", 628, _G, _MAY),
    ("Feature-List-ID", 629, _U32, _NOT),
    ("Feature-List", 630, _U32, _NOT),
    ("Supported-Applications", 631, _G, _NOT),
    ("Associated-Identities", 632, _G, _NOT),
    ("Originating-Request", 633, _ENUM, _M),
    ("Wildcarded-Public-Identity", 634, _UTF8, _NOT),
    ("SIP-Digest-Authenticate", 635, _G, _NOT),
    ("Wildcarded-IMPU", 636, _UTF8, _NOT),
    ("UAR-Flags", 637, _U32, _NOT),
    ("Loose-Route-Indication", 638, _ENUM, _NOT),
    ("SCSCF-Restoration-Info", 639, _G, _NOT),
    ("Path", 640, _O, _NOT),
    ("Contact", 641, _O, _NOT),
    ("Subscription-Info", 642, _G, _NOT),
    ("Call-ID-SIP-Header", 643, _O, _NOT),
    ("From-SIP-Header", 644, _O, _NOT),
    ("To-SIP-Header", 645, _O, _NOT),
    ("Record-Route", 646, _O, _NOT),
    ("Associated-Registered-Identities", 647, _G, _NOT),
    ("Multiple-Registration-Indication", 648, _ENUM, _NOT),
    ("Restoration-Info", 649, _G, _NOT),
    ("Session-Priority", 650, _ENUM, _NOT),
    ("Identity-with-Emergency-Registration", 651, _G, _NOT),
    ("Priviledged-Sender-Indication", 652, _ENUM, _NOT),
    ("LIA-Flags", 653, _U32, _NOT),
    ("Initial-CSeq-Sequence-Number", 654, _U32, _NOT),
    ("SAR-Flags", 655, _U32, _NOT),
    # WebRTC additions (TS 29.229 Rel-12+, TS 23.228 Annex U): WAF/WWSF identities.
    ("Allowed-WAF-WWSF-Identities", 656, _G, _NOT),
    ("WebRTC-Authentication-Function-Name", 657, _UTF8, _NOT),
    ("WebRTC-Web-Server-Function-Name", 658, _UTF8, _NOT),
    ("RTR-Flags", 659, _U32, _NOT),
)

# ETSI TS 183 033 / ES 283 035, vendor 13019 (Kamailio cdp: AVP_ETSI_*).
_ETSI: tuple[tuple[str, int, AvpType, MRule], ...] = (
    ("ETSI-Line-Identifier", 500, _O, _NOT),
    ("ETSI-SIP-Authenticate", 501, _G, _M),
    ("ETSI-SIP-Authorization", 502, _G, _M),
    ("ETSI-SIP-Authentication-Info", 503, _G, _M),
    ("ETSI-Digest-Realm", 504, _UTF8, _M),
    ("ETSI-Digest-Nonce", 505, _UTF8, _M),
    ("ETSI-Digest-Domain", 506, _UTF8, _M),
    ("ETSI-Digest-Opaque", 507, _UTF8, _M),
    ("ETSI-Digest-Stale", 508, _UTF8, _M),
    ("ETSI-Digest-Algorithm", 509, _UTF8, _M),
    ("ETSI-Digest-QoP", 510, _UTF8, _M),
    ("ETSI-Digest-HA1", 511, _UTF8, _M),
    ("ETSI-Digest-Auth-Param", 512, _UTF8, _M),
    ("ETSI-Digest-Username", 513, _UTF8, _M),
    ("ETSI-Digest-URI", 514, _UTF8, _M),
    ("ETSI-Digest-Response", 515, _UTF8, _M),
    ("ETSI-Digest-CNonce", 516, _UTF8, _M),
    ("ETSI-Digest-Nonce-Count", 517, _UTF8, _M),
    ("ETSI-Digest-Method", 518, _UTF8, _M),
    ("ETSI-Digest-Entity-Body-Hash", 519, _UTF8, _M),
    ("ETSI-Digest-Nextnonce", 520, _UTF8, _M),
    ("ETSI-Digest-Response-Auth", 521, _UTF8, _M),
)


def _build() -> tuple[dict[str, AvpDef], dict[tuple[int, int], AvpDef]]:
    by_name: dict[str, AvpDef] = {}
    by_key: dict[tuple[int, int], AvpDef] = {}
    for vendor, table in ((0, _BASE), (VENDOR_3GPP, _CX), (VENDOR_ETSI, _ETSI)):
        for name, code, avp_type, rule in table:
            d = AvpDef(name, code, vendor, avp_type, rule)
            if name in by_name or d.key in by_key:
                raise RuntimeError(f"duplicate dictionary entry {name} {d.key}")
            by_name[name] = d
            by_key[d.key] = d
    return by_name, by_key


AVP_BY_NAME, AVP_BY_CODE = _build()


def avp_def(name: str) -> AvpDef:
    """The definition of the AVP called ``name`` (KeyError for an unknown name)."""
    return AVP_BY_NAME[name]


def lookup(code: int, vendor_id: int = 0) -> AvpDef | None:
    """The definition of AVP ``code`` from ``vendor_id``, or ``None`` if we do not know it."""
    return AVP_BY_CODE.get((code, vendor_id))
