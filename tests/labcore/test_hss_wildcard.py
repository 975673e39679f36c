"""Wildcarded public identities (TS 23.003 §13.5) and the User-Data document (TS 29.228 Annex E)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from webims.labcore.hss import (
    IdentityType,
    ImsSubscription,
    PublicIdentity,
    ServiceProfile,
    UserDataError,
    WildcardError,
    WildcardIndex,
    compile_wildcard,
    is_wildcarded,
    wildcard_matches,
)
from webims.labcore.hss.user_data import check_ifc_xml
from webims.labcore.hss.wildcard import MAX_IDENTITY_LENGTH, MAX_PATTERN_LENGTH


@pytest.mark.parametrize(
    ("pattern", "identity", "matches"),
    [
        ("sip:chatlist!.*!@example.com", "sip:chatlist1@example.com", True),  # TS 23.003 §13.5 example
        ("sip:chatlist!.*!@example.com", "sip:chatlist@example.com", True),
        ("sip:chatlist!.*!@example.com", "sip:chatlist1@example.org", False),
        ("sip:user-!\\d{4}!@ims.test", "sip:user-0042@ims.test", True),
        ("sip:user-!\\d{4}!@ims.test", "sip:user-42@ims.test", False),
        ("sip:user-!\\d{4}!@ims.test", "sip:user-00421@ims.test", False),  # whole-identity match
        ("sip:user-!\\d{4}!@ims.test", "xsip:user-0042@ims.test", False),
        ("tel:+1555!\\d*!", "tel:+15551234", True),
        ("sip:a.b!x!@c", "sip:aXbx@c", False),  # literal parts are literal ('.' is no wildcard)
        ("sip:!a|b!@c", "sip:a@c", True),  # the alternation stays inside its part
        ("sip:!a|b!@c", "sip:b@c", True),
        ("sip:!a|b!@c", "sip:x@c", False),
    ],
)
def test_matching(pattern: str, identity: str, matches: bool) -> None:
    assert is_wildcarded(pattern)
    assert wildcard_matches(pattern, identity) is matches


@pytest.mark.parametrize(
    "pattern",
    [
        "sip:no-regex@ims.test",
        "sip:!unclosed@ims.test",
        "sip:!!@ims.test",
        "sip:!(a+)+!@x",
        "sip:!(a|aa)*!@x",
        "sip:!(a*)*!@x",
        "sip:!(\\w+\\s?)*!@x",
        "sip:!.*.*.*!@x",
        "sip:!a+b+c+!@x",
        "sip:!x{1,}y{2,}z{3,}!@x",
        "sip:!(a)\\1!@x",
        "sip:!(?=a)a!@x",
        "sip:!(?i)a!@x",
        "sip:![a-!@x",
        "sip:!(a!@x",
        "sip:!a)!@x",
        "sip:!" + "a" * MAX_PATTERN_LENGTH + "!@x",
    ],
)
def test_unsafe_or_broken_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(WildcardError):
        compile_wildcard(pattern)


def test_compiled_once_and_length_limit() -> None:
    assert compile_wildcard("sip:!.*!@ims.test") is compile_wildcard("sip:!.*!@ims.test")
    long_identity = "sip:" + "a" * MAX_IDENTITY_LENGTH + "@ims.test"
    assert not wildcard_matches("sip:!.*!@ims.test", long_identity)
    # The worst allowed pattern on the longest identity stays quick (two unbounded parts).
    assert not wildcard_matches("sip:!a*a*!@ims.test", "sip:" + "a" * 400 + "b@ims.test")


def test_index_prefers_the_most_specific_range() -> None:
    index = WildcardIndex(
        ["sip:!.*!@ims.test", "sip:user-!.*!@ims.test", "sip:user-!\\d+!@ims.test", "sip:!(a+)+!@x"]
    )
    assert index.rejected == ["sip:!(a+)+!@x"]
    assert len(index) == 3
    assert index.match("sip:user-12@ims.test") == "sip:user-!\\d+!@ims.test"
    assert index.match("sip:user-ab@ims.test") == "sip:user-!.*!@ims.test"
    assert index.match("sip:bob@ims.test") == "sip:!.*!@ims.test"
    assert index.match("sip:bob@other.test") is None


# --- User-Data (TS 29.228 Annex E) ------------------------------------------------------------------

IFC = (
    "<InitialFilterCriteria><Priority>0</Priority><TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF>"
    "<SPT><ConditionNegated>0</ConditionNegated><Group>0</Group><Method>INVITE</Method></SPT></TriggerPoint>"
    "<ApplicationServer><ServerName>sip:as.ims.test</ServerName><DefaultHandling>0</DefaultHandling>"
    "</ApplicationServer></InitialFilterCriteria>"
)


def test_user_data_document_shape() -> None:
    doc = ImsSubscription(
        "alice@ims.test",
        (
            ServiceProfile(
                (
                    PublicIdentity("sip:alice@ims.test", display_name="Alice & Co"),
                    PublicIdentity("tel:+15551000", barred=True),
                    PublicIdentity(
                        "sip:!.*!@pool.ims.test",
                        identity_type=IdentityType.WILDCARDED_IMPU,
                        wildcarded_impu="sip:!.*!@pool.ims.test",
                    ),
                ),
                IFC,
            ),
        ),
    )
    xml = doc.to_xml()
    root = ET.fromstring(xml)
    assert root.tag == "IMSSubscription"
    assert [c.tag for c in root] == ["PrivateID", "ServiceProfile"]
    sp = root.find("ServiceProfile")
    assert sp is not None
    assert [c.tag for c in sp] == ["PublicIdentity"] * 3 + ["InitialFilterCriteria"]
    first, barred, wild = sp.findall("PublicIdentity")
    # Annex E order: BarringIndication?, Identity, Extension(IdentityType, Extension(DisplayName, ...)).
    assert [c.tag for c in first] == ["Identity", "Extension"]
    assert first.findtext("Extension/Extension/DisplayName") == "Alice & Co"
    assert [c.tag for c in barred] == ["BarringIndication", "Identity", "Extension"]
    assert barred.findtext("BarringIndication") == "1"
    assert wild.findtext("Extension/IdentityType") == "4"
    assert wild.findtext("Extension/Extension/Extension/WildcardedIMPU") == "sip:!.*!@pool.ims.test"
    # Kamailio's parser takes the first child whose name starts with 'I' as the Identity.
    assert all(
        next(c for c in pi if c.tag[0] == "I").tag == "Identity" for pi in sp.findall("PublicIdentity")
    )
    assert ImsSubscription.from_xml(xml) == doc


@pytest.mark.parametrize(
    "data",
    [
        "<IMSSubscription>",
        "<Other/>",
        "<IMSSubscription><ServiceProfile/></IMSSubscription>",
        "<IMSSubscription><PrivateID>a</PrivateID></IMSSubscription>",
        "<IMSSubscription><PrivateID>a</PrivateID><ServiceProfile><PublicIdentity/></ServiceProfile></IMSSubscription>",
        "x" * 70000,
    ],
)
def test_bad_user_data(data: str) -> None:
    with pytest.raises(UserDataError):
        ImsSubscription.from_xml(data)


def test_ifc_fragment_check() -> None:
    assert check_ifc_xml("  " + IFC + " ") == IFC
    assert check_ifc_xml("") == ""
    for bad in (
        "<InitialFilterCriteria>",
        "<Foo/>",
        "<InitialFilterCriteria><Priority>x</Priority></InitialFilterCriteria>",
        "<InitialFilterCriteria><Priority>1</Priority></InitialFilterCriteria>",
    ):
        with pytest.raises(UserDataError):
            check_ifc_xml(bad)
