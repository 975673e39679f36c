"""Shared settings of the Kamailio harness tests: realm, addresses, subscribers."""

from __future__ import annotations

from kamailio_hss_standin import Subscriber

REALM = "ims.test"
#: Trusted Node Authentication is accepted from this source address only (the "gateway").
TRUSTED = "127.0.0.2"
UNTRUSTED = "127.0.0.3"
#: SIPp 3.6.1 takes aka_K / aka_OP / aka_AMF as raw text: 16 / 16 / 2 characters.
AKA_K = "webims-test-k001"
AKA_OP = "webims-operator!"
AKA_AMF = "00"

PASSWORDS = {name: f"{name}-secret" for name in ("alice", "bob", "dave", "erin", "frank", "gina", "hank")}


def subscribers() -> list[Subscriber]:
    subs = [Subscriber.digest(name, REALM, password) for name, password in PASSWORDS.items()]
    subs.append(Subscriber.aka("carol", REALM, AKA_K.encode(), AKA_OP.encode(), AKA_AMF.encode()))
    return subs
