"""The HSS subscriber store: provisioning rules, HA1 only, OPc, implicit sets, persistence."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from hss_harness import ALICE, BOB, K1, OP1, OPC1, subscriber_store

from webims.aka import next_sqn
from webims.labcore.hss import ProvisioningError, RegState, SubscriberChanges, SubscriberSpec, SubscriberStore
from webims.store import Store


def test_password_is_kept_only_as_ha1(tmp_path: Path) -> None:
    db = tmp_path / "hss.sqlite3"
    with subscriber_store(db, ALICE) as subs:
        rec = subs.impi("alice@ims.test")
        assert rec is not None
        # RFC 7616 §3.4.2: HA1 = H(username ":" realm ":" password), realm from the IMPI (TS 23.003 §13.3).
        assert rec.realm == "ims.test"
        assert rec.ha1_md5 == hashlib.md5(b"alice@ims.test:ims.test:alice-secret").hexdigest()
        assert rec.ha1_sha256 == hashlib.sha256(b"alice@ims.test:ims.test:alice-secret").hexdigest()
        assert rec.ha1("SHA-256") == rec.ha1_sha256 and rec.ha1() == rec.ha1_md5
        # OP is turned into OPc (TS 35.208 set 1) and not kept.
        assert (rec.k, rec.opc, rec.amf, rec.sqn) == (K1, OPC1, b"\x80\x00", 32)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"alice-secret" not in raw
    assert OP1 not in raw


def test_realm_default_and_explicit(tmp_path: Path) -> None:
    with Store(tmp_path / "db") as store:
        subs = SubscriberStore(store, default_realm="home.test")
        subs.add(SubscriberSpec("plainuser", ("sip:plain@home.test",), password="p"))
        subs.add(SubscriberSpec("x@ims.test", ("sip:x@ims.test",), password="p", realm="other.realm"))
        assert subs.impi("plainuser").realm == "home.test"  # type: ignore[union-attr]
        assert subs.impi("x@ims.test").ha1_md5 == hashlib.md5(b"x@ims.test:other.realm:p").hexdigest()  # type: ignore[union-attr]
        with pytest.raises(ProvisioningError, match="give the password again"):
            subs.update("x@ims.test", SubscriberChanges(realm="new.realm"))
        subs.update("x@ims.test", SubscriberChanges(realm="new.realm", password="q"))
        assert subs.impi("x@ims.test").ha1_md5 == hashlib.md5(b"x@ims.test:new.realm:q").hexdigest()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SubscriberSpec("a@b", ()), "at least one public identity"),
        (SubscriberSpec("a@b", ("alice@ims.test",)), "sip:, sips: or tel:"),
        (SubscriberSpec("a b@c", ("sip:a@b",)), "invalid private identity"),
        (SubscriberSpec("a@b", ("sip:a@b", "sip:a@b")), "duplicate"),
        (SubscriberSpec("a@b", ("sip:a@b",), k=b"short", op=OP1), "K must be 16 bytes"),
        (SubscriberSpec("a@b", ("sip:a@b",), k=K1), "K needs OP or OPc"),
        (SubscriberSpec("a@b", ("sip:a@b",), k=K1, op=OP1, opc=OPC1), "OP or OPc, not both"),
        (SubscriberSpec("a@b", ("sip:a@b",), opc=OPC1), "without K"),
        (SubscriberSpec("a@b", ("sip:a@b",), amf=b"\x80"), "AMF must be 2 bytes"),
        (SubscriberSpec("a@b", ("sip:a@b",), sqn=1 << 48), "48-bit"),
        (SubscriberSpec("a@b", ("sip:a@b",), barred=frozenset({"sip:c@b"})), "barred"),
        (SubscriberSpec("a@b", ("sip:a@b",), implicit_sets=(("sip:x@b",),)), "implicit set"),
        (SubscriberSpec("a@b", ("sip:!(a+)+!@b",)), "repeated group"),
        (SubscriberSpec("a@b", ("sip:a@b",), ifc_xml="<Foo/>"), "InitialFilterCriteria"),
    ],
)
def test_invalid_specs_are_refused(tmp_path: Path, spec: SubscriberSpec, message: str) -> None:
    with subscriber_store(tmp_path / "db") as subs:
        with pytest.raises(ProvisioningError, match=message):
            subs.add(spec)
        assert subs.list() == []


def test_duplicate_impi_refused_and_shared_impu(tmp_path: Path) -> None:
    with subscriber_store(tmp_path / "db", ALICE) as subs:
        with pytest.raises(ProvisioningError, match="already exists"):
            subs.add(ALICE)
        # A second IMPI sharing an IMPU (TS 23.228 §4.3.3.4): linked, not duplicated.
        subs.add(SubscriberSpec("alice-tablet@ims.test", ("sip:alice@ims.test",), password="t"))
        assert subs.impis_of("sip:alice@ims.test") == ["alice@ims.test", "alice-tablet@ims.test"]
        assert subs.remove("alice@ims.test")
        assert subs.impu("sip:alice@ims.test") is not None  # still used by the tablet
        assert subs.impu("tel:+15551000") is None
        assert not subs.remove("alice@ims.test")


def test_implicit_sets_barring_and_updates(tmp_path: Path) -> None:
    spec = SubscriberSpec(
        "h@ims.test",
        ("sip:h@ims.test", "tel:+1555", "sip:h.work@ims.test", "sip:h.home@ims.test"),
        password="p",
        implicit_sets=(("sip:h.work@ims.test", "sip:h.home@ims.test"),),
        barred=frozenset({"tel:+1555"}),
        display_names=(("sip:h@ims.test", "H"),),
    )
    with subscriber_store(tmp_path / "db", spec) as subs:
        sets = {u.impu: u.irs for u in subs.impus_of("h@ims.test")}
        assert sets == {
            "sip:h@ims.test": "sip:h@ims.test",
            "tel:+1555": "sip:h@ims.test",
            "sip:h.work@ims.test": "sip:h.work@ims.test",
            "sip:h.home@ims.test": "sip:h.work@ims.test",
        }
        assert [u.impu for u in subs.implicit_set("sip:h.work@ims.test")] == [
            "sip:h.work@ims.test",
            "sip:h.home@ims.test",
        ]
        assert subs.impu("tel:+1555").barred  # type: ignore[union-attr]
        assert subs.impu("sip:h@ims.test").display_name == "H"  # type: ignore[union-attr]
        subs.update(
            "h@ims.test",
            SubscriberChanges(
                unbarred=("tel:+1555",),
                add_impus=("sip:h2@ims.test",),
                remove_impus=("sip:h.home@ims.test",),
                unreg_services=("sip:h@ims.test",),
                sqn=12345,
                visited_networks=("v.net",),
            ),
        )
        sub = subs.get("h@ims.test")
        assert sub is not None
        assert [u.impu for u in sub.impus] == [
            "sip:h@ims.test",
            "tel:+1555",
            "sip:h.work@ims.test",
            "sip:h2@ims.test",
        ]
        assert not subs.impu("tel:+1555").barred  # type: ignore[union-attr]
        assert subs.impu("sip:h@ims.test").unreg_services  # type: ignore[union-attr]
        assert subs.impu("sip:h2@ims.test").irs == "sip:h2@ims.test"  # type: ignore[union-attr]
        assert (sub.impi.sqn, sub.impi.visited_networks) == (12345, ("v.net",))
        with pytest.raises(ProvisioningError, match="at least one"):
            subs.update("h@ims.test", SubscriberChanges(remove_impus=tuple(u.impu for u in sub.impus)))
        with pytest.raises(ProvisioningError, match="no subscriber"):
            subs.update("nobody@ims.test", SubscriberChanges(sqn=1))
        subs.update("h@ims.test", SubscriberChanges(clear_password=True, k=K1, opc=OPC1))
        rec = subs.impi("h@ims.test")
        assert rec is not None and not rec.has_digest and rec.has_aka


def test_wildcard_lookup_follows_provisioning_changes(tmp_path: Path) -> None:
    with subscriber_store(tmp_path / "db", BOB) as subs:
        assert subs.lookup_impu("sip:user-1@ims.test") is None
        subs.update("bob@ims.test", SubscriberChanges(add_impus=("sip:user-!\\d+!@ims.test",)))
        match = subs.lookup_impu("sip:user-1@ims.test")
        assert match is not None and match.wildcard == "sip:user-!\\d+!@ims.test"
        assert match.record.wildcard
        exact = subs.lookup_impu("sip:bob@ims.test")
        assert exact is not None and exact.wildcard is None
        # A change made by another process (another Store on the same file) is seen too.
        with Store(tmp_path / "db") as other:
            SubscriberStore(other).update(
                "bob@ims.test", SubscriberChanges(remove_impus=("sip:user-!\\d+!@ims.test",))
            )
        assert subs.lookup_impu("sip:user-1@ims.test") is None


def test_sqn_update_is_atomic_and_persistent(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with subscriber_store(db, ALICE) as subs:
        seen = subs.aka_update("alice@ims.test", lambda st: (next_sqn(st.sqn), st.sqn))
        assert seen == 32
        assert subs.aka_update("bob@ims.test", lambda st: (0, 0)) is None
        with pytest.raises(RuntimeError):
            subs.aka_update("alice@ims.test", lambda st: (_ for _ in ()).throw(RuntimeError("boom")))
        subs.set_registration(["sip:alice@ims.test"], RegState.REGISTERED, scscf_name="sip:s", scscf_host="s")
    with subscriber_store(db) as subs:
        assert subs.impi("alice@ims.test").sqn == next_sqn(32)  # type: ignore[union-attr]
        rec = subs.impu("sip:alice@ims.test")
        assert rec is not None and rec.reg_state is RegState.REGISTERED and rec.scscf_host == "s"
    # The schema is versioned in the shared store (webims.store migrations).
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT version FROM schema_version WHERE component = 'hss'").fetchone() == (1,)
