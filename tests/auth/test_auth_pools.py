"""IMPU pools (seed 004 §6.X.2.2.4/§6.X.2.2.5): patterns, wildcarded IMPUs, exhaustion,
release and reuse, restart, and concurrent allocation without double allocation."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from auth_helpers import Browser, Server, Tls, new_verifier, provision, start

from webims.auth import schema
from webims.auth.errors import InvalidToken, NotFound, PoolError, PoolExhausted
from webims.auth.pools import PoolManager, expand_pattern, wildcard_regex
from webims.store import Store


def test_expand_patterns() -> None:
    block = expand_pattern("sip:web-{000..999}@ims.test")
    assert len(block) == 1000 and block[0] == "sip:web-000@ims.test" and block[-1] == "sip:web-999@ims.test"
    assert expand_pattern("sip:u{1..3}@ims.test") == ["sip:u1@ims.test", "sip:u2@ims.test", "sip:u3@ims.test"]
    assert expand_pattern("tel:+1555{08..10}") == ["tel:+155508", "tel:+155509", "tel:+155510"]
    assert expand_pattern("sip:{a,b}-{1..2}@x") == ["sip:a-1@x", "sip:a-2@x", "sip:b-1@x", "sip:b-2@x"]
    assert expand_pattern("sip:plain@ims.test") == ["sip:plain@ims.test"]
    for bad in ("sip:{9..1}@x", "sip:{abc}@x", "sip:{1..2@x", "sip:{0..9}{0..9}{0..9}@x"):
        with pytest.raises(PoolError):
            expand_pattern(bad, limit=500)


def test_wildcarded_impu_regex() -> None:
    rx = wildcard_regex("sip:web-!.*!@ims.test")
    assert rx.fullmatch("sip:web-x7@ims.test") and not rx.fullmatch("sip:web-x7@other.test")
    assert wildcard_regex("sip:+1555!\\d{4}!@ims.test").fullmatch("sip:+15550123@ims.test")
    for bad in ("sip:web-@ims.test", "sip:!a!!b!@x", "sip:web-!(!@ims.test"):
        with pytest.raises(PoolError):
            wildcard_regex(bad)


@pytest.fixture
def pools(tmp_path: Path) -> PoolManager:
    store = Store(tmp_path / "p.sqlite3")
    schema.install(store)
    return PoolManager(store)


def test_wildcard_pool_generates_distinct_identities(pools: PoolManager) -> None:
    pools.add("wild", wildcard="sip:web-!.*!@ims.test", capacity=5)
    got = [pools.allocate("wild", f"u{i}", lease=60).impu for i in range(5)]
    rx = wildcard_regex("sip:web-!.*!@ims.test")
    assert len(set(got)) == 5 and all(rx.fullmatch(i) for i in got)
    with pytest.raises(PoolExhausted, match="pool 'wild' has no free IMS identity"):
        pools.allocate("wild", "u6", lease=60)
    digits = pools.add("digits", wildcard="sip:+1555!\\d{6,}!@ims.test", capacity=2)
    assert digits.capacity == 2
    assert pools.allocate("digits", "x", lease=60).impu.startswith("sip:+1555")
    with pytest.raises(PoolError, match="cannot generate"):
        pools.add("odd", wildcard="sip:!x{3}!@ims.test", capacity=1)
    with pytest.raises(PoolError, match="needs a capacity"):
        pools.add("nocap", wildcard="sip:w-!.*!@ims.test")
    with pytest.raises(PoolError, match="not covered"):
        pools.add("mixed", members=["sip:other@ims.test"], wildcard="sip:web-!.*!@ims.test")


def test_lease_expiry_release_renew(pools: PoolManager) -> None:
    pools.add("p", members=["sip:a@ims.test", "sip:b@ims.test"])
    a = pools.allocate("p", "alice", lease=10, now=1000.0)
    b = pools.allocate("p", "bob", lease=10, now=1000.0)
    assert {a.impu, b.impu} == {"sip:a@ims.test", "sip:b@ims.test"}
    with pytest.raises(PoolExhausted):
        pools.allocate("p", "carol", lease=10, now=1005.0)
    pools.renew(a.id, lease=100, now=1005.0)  # alice's WIC stays registered
    c = pools.allocate("p", "carol", lease=10, now=1011.0)  # bob's token expired: his IMPU is reclaimed
    assert c.impu == b.impu and pools.is_active(a.id, now=1011.0) and not pools.is_active(b.id, now=1011.0)
    with pytest.raises(NotFound, match="not active"):
        pools.renew(b.id, lease=10, now=1011.0)
    released = pools.release(a.id, now=1012.0)
    assert released is not None and (released.id, released.impu, released.expires_at) == (
        a.id,
        a.impu,
        1105.0,
    )
    assert pools.release(a.id, now=1012.0) is None  # idempotent
    assert pools.allocate("p", "dave", lease=10, now=1013.0).impu == a.impu
    assert [x.holder for x in pools.allocations("p", now=1013.0)] == ["dave", "carol"]


def test_concurrent_allocations_never_double_allocate(tmp_path: Path) -> None:
    """Sixteen connections (as if sixteen processes) race for 40 IMPUs, 100 attempts."""
    db = tmp_path / "race.sqlite3"
    first = Store(db)
    schema.install(first)
    PoolManager(first).add("race", members=["sip:r{00..39}@ims.test"])
    results: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker(n: int) -> None:
        store = Store(db)
        mgr = PoolManager(store)
        barrier.wait()
        for i in range(n, 100, 16):
            try:
                impu = mgr.allocate("race", f"wic{i}", lease=300).impu
                with lock:
                    results.append(impu)
            except PoolExhausted:
                with lock:
                    refused.append(f"wic{i}")
        store.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 40 and len(set(results)) == 40 and len(refused) == 60
    assert PoolManager(first).get("race").allocated == 40
    first.close()


async def _login(browser: Browser, user: str) -> tuple[int, dict[str, object]]:
    verifier = new_verifier()
    code = await browser.login_for_code(user, f"{user}-password-1", verifier)
    status, body = await browser.code_for_tokens(code, verifier)
    return status, dict(body)


async def test_more_wics_than_impus(server: Server) -> None:
    browsers = [Browser(server) for _ in range(4)]
    try:
        got = [await _login(b, u) for b, u in zip(browsers, ("bob", "carol", "dave", "erin"), strict=True)]
        ok = [body for status, body in got if status == 200]
        assert len(ok) == 3
        status, err = got[3]
        assert status == 503 and err["error"] == "temporarily_unavailable"
        assert "pool 'web' has no free IMS identity (all 3 allocated)" in str(err["error_description"])
        assert "access_token" not in err
        verifier = server.service.verifier()
        idents = [verifier.verify_cached(str(b["access_token"])) for b in ok]
        assert sorted(i.impus[0] for i in idents) == [f"sip:web-{n}@ims.test" for n in (1, 2, 3)]
        assert all(i.pool == "web" and i.impi == "webpool@ims.test" and i.allocation for i in idents)

        # release on revocation (logout of bob's WIC) -> erin gets that IMPU
        bob = idents[0]
        status, _, _ = await browsers[0].post_form(
            "/revoke", {"token": str(ok[0]["refresh_token"]), "client_id": "wic"}
        )
        assert status == 200
        status, body = await _login(browsers[3], "erin")
        assert status == 200
        assert verifier.verify_cached(str(body["access_token"])).impus == bob.impus

        # the gateway releases carol's IMPU when her WIC disconnects (holder token)
        carol = idents[1]
        status, _res, _ = await browsers[1].post_form(
            "/pool/release", {"allocation": carol.allocation or ""}, bearer=str(ok[1]["access_token"])
        )
        assert status == 415  # JSON body needed
        resp = await browsers[1].session.post(
            browsers[1].url("/pool/release"),
            json={"allocation": carol.allocation},
            headers={"Authorization": f"Bearer {ok[1]['access_token']}"},
        )
        assert resp.status == 200 and (await resp.json()) == {"released": True}
        with pytest.raises(InvalidToken, match="released"):
            verifier.verify_cached(str(ok[1]["access_token"]))
        # carol's WIC refreshes: it gets a (new) lease again
        status, fresh = await browsers[1].token(
            {"grant_type": "refresh_token", "refresh_token": str(ok[1]["refresh_token"]), "client_id": "wic"}
        )
        assert status == 200
        again = verifier.verify_cached(fresh["access_token"])
        assert again.allocation != carol.allocation and again.impus == carol.impus
        # someone else's token cannot release dave's lease
        dave = idents[2]
        resp = await browsers[1].session.post(
            browsers[1].url("/pool/release"),
            json={"allocation": dave.allocation},
            headers={"Authorization": f"Bearer {fresh['access_token']}"},
        )
        assert resp.status == 401
        assert server.service.pools.is_active(dave.allocation or "")
    finally:
        for b in browsers:
            await b.close()


async def test_pool_state_survives_restart(tmp_path: Path, tls: Tls) -> None:
    db = tmp_path / "persist.sqlite3"
    srv = await start(db, tls)
    provision(srv.service)
    b = Browser(srv)
    status, body = await _login(b, "bob")
    assert status == 200
    await b.close()
    port = srv.port
    await srv.stop()

    srv2 = await start(db, tls, port=port)  # a new server instance on the same file
    b2 = Browser(srv2)
    try:
        ident = srv2.service.verifier().verify_cached(str(body["access_token"]))  # keys persisted
        assert ident.sub == "bob"
        allocations = srv2.service.pools.allocations("web")
        assert [(a.holder, a.impu, a.id) for a in allocations] == [("bob", ident.impus[0], ident.allocation)]
        status, fresh = await b2.token(
            {"grant_type": "refresh_token", "refresh_token": str(body["refresh_token"]), "client_id": "wic"}
        )
        assert (
            status == 200
            and srv2.service.verifier().verify_cached(fresh["access_token"]).impus == ident.impus
        )
        got = [await _login(b2, u) for u in ("carol", "dave", "erin")]
        assert [s for s, _ in got] == [200, 200, 503]
    finally:
        await b2.close()
        await srv2.stop()


async def test_many_simultaneous_logins(tmp_path: Path, tls: Tls) -> None:
    srv = await start(tmp_path / "many.sqlite3", tls, max_failures_per_ip=1000)
    srv.service.pools.add("small", members=["sip:s{1..5}@ims.test"])
    names = [f"user{i}" for i in range(12)]
    for n in names:
        srv.service.users.add(n, f"{n}-password-1")
        srv.service.users.map(n, pool="small")
    browsers = [Browser(srv) for _ in names]
    try:
        got = await asyncio.gather(*(_login(b, n) for b, n in zip(browsers, names, strict=True)))
        ok = [body for status, body in got if status == 200]
        assert len(ok) == 5 and sorted(s for s, _ in got) == [200] * 5 + [503] * 7
        impus = {srv.service.verifier().verify_cached(str(b["access_token"])).impus[0] for b in ok}
        assert impus == {f"sip:s{i}@ims.test" for i in range(1, 6)}
    finally:
        for b in browsers:
            await b.close()
        await srv.stop()
