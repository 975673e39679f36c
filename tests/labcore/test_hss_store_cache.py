"""The HSS's row cache (webims.labcore.hss.store.runtime): batches of Cx requests read rows
from memory, yet see every change another connection or another SubscriberStore made."""

from __future__ import annotations

from pathlib import Path

import pytest
from hss_harness import ALICE, BOB, ICSCF_CAPS, SCSCF, connect, running, sar, subscriber_store, uar

from webims.diameter import (
    ExperimentalResultCode,
    ResultCode,
    ServerAssignmentType,
    UserAuthorizationAnswer,
    UserAuthorizationType,
)
from webims.labcore.hss import RegState, SubscriberChanges, SubscriberSpec, SubscriberStore
from webims.labcore.hss.store import AkaState, runtime
from webims.store import Store

ALICE_IMPU = "sip:alice@ims.test"
X = ExperimentalResultCode


def test_a_batch_reads_one_snapshot_and_the_next_sees_other_connections(tmp_path: Path) -> None:
    db = tmp_path / "hss.sqlite3"
    with subscriber_store(db, ALICE) as subs, Store(db) as other_store:
        other = SubscriberStore(other_store)  # e.g. `webims subscriber set` in another process
        subs.begin_batch()
        assert not subs.user("alice@ims.test", ALICE_IMPU).match.record.barred  # type: ignore[union-attr]
        other.update("alice@ims.test", SubscriberChanges(barred=(ALICE_IMPU,)))
        # Within the batch: the rows read at its start (one snapshot).
        assert not subs.user("alice@ims.test", ALICE_IMPU).match.record.barred  # type: ignore[union-attr]
        subs.end_batch()
        subs.begin_batch()  # PRAGMA data_version moved: everything is read again
        assert subs.user("alice@ims.test", ALICE_IMPU).match.record.barred  # type: ignore[union-attr]
        assert subs.impu(ALICE_IMPU).barred  # type: ignore[union-attr]
        subs.end_batch()


def test_registration_changes_of_a_batch_are_stored_at_its_end(tmp_path: Path) -> None:
    db = tmp_path / "hss.sqlite3"
    with subscriber_store(db, ALICE) as subs, Store(db) as other_store:
        other = SubscriberStore(other_store)
        subs.begin_batch()
        before = subs.implicit_set(ALICE_IMPU)
        subs.set_registration(
            [r.impu for r in before], RegState.REGISTERED, scscf_name=SCSCF, scscf_host="scscf.ims.test"
        )
        # The batch sees its own change at once, in every view of the rows...
        rec = subs.impu(ALICE_IMPU)
        assert rec is not None and (rec.reg_state, rec.scscf_name) == (RegState.REGISTERED, SCSCF)
        found = subs.user("alice@ims.test", "tel:+15551000")
        assert found.match is not None and found.match.record.reg_state is RegState.REGISTERED
        assert {r.reg_state for r in subs.implicit_set(ALICE_IMPU)} == {RegState.REGISTERED}
        assert {r.scscf_name for r in subs.impus_of("alice@ims.test")} == {SCSCF}
        # ...the database only when the batch ends (one transaction).
        assert other.impu(ALICE_IMPU).reg_state is RegState.NOT_REGISTERED  # type: ignore[union-attr]
        subs.end_batch()
        rec = other.impu(ALICE_IMPU)
        assert rec is not None and (rec.reg_state, rec.scscf_host) == (RegState.REGISTERED, "scscf.ims.test")
        assert other.impu("tel:+15551000").reg_state is RegState.REGISTERED  # type: ignore[union-attr]


def test_changes_made_outside_batches_reach_the_cache(tmp_path: Path) -> None:
    db = tmp_path / "hss.sqlite3"
    with subscriber_store(db, ALICE, BOB) as subs:
        same_store = SubscriberStore(subs.store)  # shares the connection: data_version does not move
        subs.begin_batch()
        assert subs.impu(ALICE_IMPU).reg_state is RegState.NOT_REGISTERED  # type: ignore[union-attr]
        assert subs.is_linked("bob@ims.test", "sip:bob@ims.test")
        subs.end_batch()
        # Outside a batch (the admin's RTR path): written at once, the cached row dropped.
        subs.set_registration([ALICE_IMPU], RegState.REGISTERED, scscf_name=SCSCF)
        # Provisioning through another SubscriberStore of the same Store.
        same_store.update("bob@ims.test", SubscriberChanges(remove_impus=("sip:bob@ims.test",),
                                                            add_impus=("sip:robert@ims.test",)))  # fmt: skip
        subs.begin_batch()
        assert subs.impu(ALICE_IMPU).reg_state is RegState.REGISTERED  # type: ignore[union-attr]
        assert not subs.is_linked("bob@ims.test", "sip:bob@ims.test")
        assert subs.impu("sip:bob@ims.test") is None
        assert [r.impu for r in subs.impus_of("bob@ims.test")] == ["sip:robert@ims.test"]
        subs.end_batch()


def test_sqn_is_read_and_written_in_its_own_transaction_even_in_a_batch(tmp_path: Path) -> None:
    db = tmp_path / "hss.sqlite3"
    with subscriber_store(db, ALICE) as subs, Store(db) as other_store:
        other = SubscriberStore(other_store)
        seen: list[int] = []

        def step(state: AkaState) -> tuple[int, None]:
            seen.append(state.sqn)
            return state.sqn + 32, None

        subs.begin_batch()
        assert subs.impi("alice@ims.test").sqn == 32  # type: ignore[union-attr]
        subs.aka_update("alice@ims.test", step)  # committed at once
        assert other.impi("alice@ims.test").sqn == 64  # type: ignore[union-attr]
        other.aka_update("alice@ims.test", step)  # another HSS process hands out the next one
        subs.aka_update("alice@ims.test", step)
        assert subs.impi("alice@ims.test").sqn == 128  # type: ignore[union-attr]
        subs.end_batch()
        assert seen == [32, 64, 96]


async def test_hss_answers_from_the_cache_and_sees_provisioning_by_another_connection(tmp_path: Path) -> None:
    db = tmp_path / "hss.sqlite3"
    with subscriber_store(db, ALICE) as subs, Store(db) as cli_store:
        cli = SubscriberStore(cli_store)
        async with running(subs) as hss:
            icscf = await connect(hss, ICSCF_CAPS)
            scscf = await connect(hss)
            carol = ("carol@ims.test", "sip:carol@ims.test")
            ans = await icscf.request(uar(icscf, *carol, UserAuthorizationType.REGISTRATION))
            assert UserAuthorizationAnswer.from_message(ans).result.code == X.DIAMETER_ERROR_USER_UNKNOWN
            cli.add(SubscriberSpec(carol[0], (carol[1],), password="carol-secret"))
            ans = await icscf.request(uar(icscf, *carol, UserAuthorizationType.REGISTRATION))
            uaa = UserAuthorizationAnswer.from_message(ans)
            assert uaa.result.experimental_result_code == X.DIAMETER_FIRST_REGISTRATION
            # SAR REGISTRATION: stored before the SAA leaves the HSS.
            saa = await scscf.request(sar(scscf, carol[0], [carol[1]], ServerAssignmentType.REGISTRATION))
            assert saa.result_code == ResultCode.DIAMETER_SUCCESS
            rec = cli.impu(carol[1])
            assert rec is not None and (rec.reg_state, rec.scscf_name) == (RegState.REGISTERED, SCSCF)
            # The next UAR names the S-CSCF from the (cached) row that SAR changed.
            uaa = UserAuthorizationAnswer.from_message(await icscf.request(uar(icscf, *carol)))
            assert uaa.result.experimental_result_code == X.DIAMETER_SUBSEQUENT_REGISTRATION
            assert uaa.server_name == SCSCF
            # The operator removes the subscriber: the next request no longer finds it.
            cli.remove(carol[0])
            ans = await icscf.request(uar(icscf, *carol))
            assert UserAuthorizationAnswer.from_message(ans).result.code == X.DIAMETER_ERROR_USER_UNKNOWN
            await icscf.close()
            await scscf.close()


def test_the_cache_stays_bounded_and_keeps_unwritten_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "MAX_CACHED_ROWS", 8)
    db = tmp_path / "hss.sqlite3"
    with subscriber_store(db, ALICE, BOB) as subs, Store(db) as other_store:
        subs.begin_batch()
        subs.set_registration([ALICE_IMPU], RegState.REGISTERED, scscf_name=SCSCF)
        for i in range(50):  # requests for unknown users, e.g. a scan
            assert subs.user(f"nobody{i}@ims.test", f"sip:nobody{i}@ims.test").impi is None
        cache = runtime._CACHES[subs.store]
        assert max(len(cache.users), len(cache.impi), len(cache.impu)) <= 9
        # The unwritten change is still what this batch reads.
        assert subs.impu(ALICE_IMPU).reg_state is RegState.REGISTERED  # type: ignore[union-attr]
        assert subs.user("bob@ims.test", "sip:bob@ims.test").linked
        subs.end_batch()
        assert SubscriberStore(other_store).impu(ALICE_IMPU).reg_state is RegState.REGISTERED  # type: ignore[union-attr]
        subs.begin_batch()
        for i in range(50):
            subs.user(f"nobody{i}@ims.test", f"sip:nobody{i}@ims.test")
        assert len(runtime._CACHES[subs.store].users) <= 8  # nothing pending: it started over
        subs.end_batch()


def _views(subs: SubscriberStore) -> list[object]:
    """Every run-time read, for users that exist and ones that do not."""
    out: list[object] = []
    for impi, identity in (
        ("alice@ims.test", ALICE_IMPU),
        ("alice@ims.test", "tel:+15551000"),
        ("alice@ims.test", "sip:bob@ims.test"),  # both exist, not linked
        ("bob@ims.test", "sip:bob@ims.test"),
        ("nobody@ims.test", "sip:nobody@ims.test"),
        ("nobody@ims.test", ALICE_IMPU),
    ):
        out += [subs.user(impi, identity), subs.impi(impi), subs.impu(identity), subs.impus_of(impi)]
        out += [subs.implicit_set(identity), subs.impis_of(identity), subs.is_linked(impi, identity)]
    return out


def test_small_tables_are_read_whole_at_the_first_batch_and_answer_as_sqlite_does(tmp_path: Path) -> None:
    db = tmp_path / "hss.sqlite3"
    with subscriber_store(db, ALICE, BOB) as subs:
        outside = _views(subs)  # every call goes to SQLite
        statements: list[str] = []
        subs.store.read(lambda c: c.set_trace_callback(statements.append))
        subs.begin_batch()
        assert runtime._CACHES[subs.store].complete
        read_whole = len(statements)
        assert _views(subs) == outside
        # no row read one by one: only the wildcarded ranges are looked up (generation, list)
        assert all("generation" in q or "wildcard" in q for q in statements[read_whole:])
        subs.end_batch()
        # Written outside a batch (RTR from the admin, the SQN of AKA): the rows are read again.
        subs.set_registration([ALICE_IMPU], RegState.REGISTERED, scscf_name=SCSCF)
        subs.aka_update("alice@ims.test", lambda state: (state.sqn + 32, None))
        subs.begin_batch()
        assert runtime._CACHES[subs.store].complete
        assert subs.impu(ALICE_IMPU).reg_state is RegState.REGISTERED  # type: ignore[union-attr]
        assert subs.impi("alice@ims.test").sqn == 64  # type: ignore[union-attr]
        assert _views(subs)[1:] != outside[1:]  # the changed rows, as SQLite has them now
        subs.end_batch()
        assert _views(subs) == [*_views_in_batch(subs)]
        subs.store.read(lambda c: c.set_trace_callback(None))


def _views_in_batch(subs: SubscriberStore) -> list[object]:
    subs.begin_batch()
    try:
        return _views(subs)
    finally:
        subs.end_batch()


def test_tables_larger_than_the_limit_are_read_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        runtime, "MAX_CACHED_ROWS", 8
    )  # a quarter of it: 2 rows, fewer than ALICE's 2 + BOB's 1
    db = tmp_path / "hss.sqlite3"
    with subscriber_store(db, ALICE, BOB) as subs:
        outside = _views(subs)
        subs.begin_batch()
        assert not runtime._CACHES[subs.store].complete
        assert _views(subs) == outside
        subs.end_batch()
