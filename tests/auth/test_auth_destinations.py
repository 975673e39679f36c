"""Scopes and destination rules: the gateway's check_destination(claims, target_uri)."""

from __future__ import annotations

import pytest

from webims.auth.identity import DestinationRules, Identity, check_destination, normalize_target


@pytest.mark.parametrize(
    "uri, norm",
    [
        ("tel:+1-900-555-0100", "tel:+19005550100"),
        ("tel:+1 (900) 555.0100;phone-context=x", "tel:+19005550100"),
        ("sip:+19005550100@ims.test;user=phone", "tel:+19005550100"),
        ("<sip:+1-900-555-0100@ims.test>", "tel:+19005550100"),
        ("sip:5550100@ims.test;user=phone", "tel:5550100"),
        ("SIP:Bob@IMS.Test:5060;transport=tcp", "sip:Bob@ims.test"),
        ("sips:alice:secret@ims.test", "sip:alice@ims.test"),
        ("sip:ims.test", "sip:ims.test"),
        ("mailto:bob@example.com", None),
        ("tel:abc", None),
        ("garbage", None),
    ],
)
def test_normalize_target(uri: str, norm: str | None) -> None:
    assert normalize_target(uri) == norm


CLAIMS = {
    "iss": "https://waf",
    "sub": "alice",
    "exp": 2e9,
    "scope": "register call",
    "dest": {"deny": ["tel:+1900*", "international"], "allow": ["tel:*", "sip:*@ims.test"], "cc": "1"},
}


@pytest.mark.parametrize(
    "target, allowed, reason",
    [
        ("tel:+12025550100", True, "allowed by 'tel:*'"),
        ("sip:+12025550100@ims.test;user=phone", True, "allowed"),
        ("tel:+1-900-555-0100", False, "denied by rule 'tel:+1900*'"),
        ("sip:+19005550100@ims.test;user=phone", False, "denied by rule 'tel:+1900*'"),
        ("tel:+33123456789", False, "denied by rule international numbers"),
        ("tel:0033123456789", False, "international"),
        ("tel:5550100;phone-context=+1", True, "allowed"),
        ("sip:bob@ims.test", True, "allowed"),
        ("sip:bob@other.example", False, "matches no allowed pattern"),
        ("http://x", False, "not a sip:, sips: or tel: URI"),
    ],
)
def test_check_destination(target: str, allowed: bool, reason: str) -> None:
    decision = check_destination(CLAIMS, target, scope="call")
    assert bool(decision) is allowed and reason in decision.reason


def test_scope_is_needed() -> None:
    decision = check_destination(CLAIMS, "sip:bob@ims.test", scope="message")
    assert not decision and decision.reason == "token does not grant scope 'message'"
    ident = Identity.from_claims(CLAIMS)
    assert check_destination(ident, "sip:bob@ims.test", scope="call")


def test_international_without_home_cc_fails_closed() -> None:
    rules = DestinationRules(deny=("international",))
    assert not rules.check("tel:+12025550100") and rules.check("tel:5550100") and rules.check("sip:b@x")


def test_empty_rules_allow_everything_and_bad_patterns_refused() -> None:
    assert DestinationRules().check("tel:+19005550100")
    assert DestinationRules().to_claim() is None
    for bad in ("premium", "tel:+1 900", ""):
        with pytest.raises(ValueError, match="bad destination pattern"):
            DestinationRules(deny=(bad,))
    with pytest.raises(ValueError):
        DestinationRules.from_claim({"deny": "tel:*"})
