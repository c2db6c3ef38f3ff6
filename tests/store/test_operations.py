"""Store conformance, one operation at a time, on SQLite and PostgreSQL, with a clock the
test controls: claims and leases, media rows, accounts, pauses, quota and the call history."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from scheduler.clock import FakeClock, to_aware
from scheduler.config import AccountSettings
from scheduler.graph.client import CallRecord
from scheduler.graph.endpoints import CREATE_CONTAINER
from scheduler.graph.usage import Usage, UsageFigures
from scheduler.lifecycle import Hold, PostMove, State
from scheduler.store import LeaseLost, Store
from scheduler.store import UsageFigures as StoredUsage
from tests.helpers import image_spec, settings_for


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Store:
    s = Store(db_url, clock=clock)
    s.sync_accounts(settings_for(db_url).accounts)
    return s


def _enqueue(store: Store, db_url: str, *keys: str, in_s: float = 0.0) -> None:
    store.enqueue([image_spec(k, in_s=in_s) for k in keys], "t")


def _call(clock: FakeClock, account: str = "shop", endpoint: str = CREATE_CONTAINER, outcome: str = "ok",
          post_id: int | None = None, usage: Usage | None = None) -> CallRecord:
    return CallRecord(
        method=endpoint.split()[0], endpoint=endpoint, path="/v23.0/x/media", http_status=200,
        duration_ms=12.5, error_code=None, error_subcode=None, error_message=None, fbtrace_id="f",
        usage=usage or Usage(), outcome=outcome, account=account, post_id=post_id,
        started_at=to_aware(clock.now()),
    )


def test_now_follows_the_injected_clock(store: Store, clock: FakeClock) -> None:
    before = store.now()
    clock.advance(7 * 86400)
    assert (store.now() - before).total_seconds() == 7 * 86400


def test_next_action_at_follows_active_posts_and_leases(store: Store, db_url: str, clock: FakeClock) -> None:
    assert store.next_action_at() is None
    _enqueue(store, db_url, "a", "b")
    first = store.next_action_at()
    assert first is not None and first <= clock.now()
    [a, b] = store.claim_due("w", 30, 2)
    # both leased: the earliest lease end is the next thing to look at
    assert store.next_action_at() == clock.now() + timedelta(seconds=30)
    store.update(a, "w", next_action_at=clock.now() + timedelta(hours=2))
    assert store.next_action_at() == clock.now() + timedelta(seconds=30)
    store.transition(b, PostMove.FAIL, "w", "gone", reason="gone")
    assert store.next_action_at() == clock.now() + timedelta(hours=2)
    [a2] = store.claim_due("w", 30, 1) or [None]  # not due yet
    assert a2 is None
    clock.advance(7200)
    [a2] = store.claim_due("w", 30, 1)
    store.transition(a2, PostMove.MARK_PUBLISHED, "w", followup_pending=False, next_action_at=clock.now())
    assert store.next_action_at() is None  # published, nothing left to do


def test_a_week_ahead_post_is_claimed_only_when_its_time_comes(store: Store, db_url: str,
                                                              clock: FakeClock) -> None:
    _enqueue(store, db_url, "later", in_s=7 * 86400)
    [p] = store.claim_due("w", 30, 1)  # the media check runs at once
    store.update(p, "w", preflight="ok", next_action_at=p.due_at - timedelta(seconds=3))
    assert store.claim_due("w", 30, 1) == []
    clock.advance(7 * 86400 - 60)
    assert store.claim_due("w", 30, 1) == []
    clock.advance(60)
    assert [q.key for q in store.claim_due("w", 30, 1)] == ["later"]


def test_renew_extends_only_a_lease_still_held(store: Store, db_url: str, clock: FakeClock) -> None:
    _enqueue(store, db_url, "r")
    [mine] = store.claim_due("w1", 10, 1)
    clock.advance(8)
    assert store.renew(mine, 10)
    clock.advance(8)  # 16 s after the claim, but renewed at 8 s: still ours
    assert store.claim_due("w2", 10, 1) == []
    clock.advance(11)
    [theirs] = store.claim_due("w2", 10, 1)
    assert not store.renew(mine, 10)
    assert store.renew(theirs, 10)


def test_release_own_leases_takes_back_only_this_identity(store: Store, db_url: str) -> None:
    _enqueue(store, db_url, "a", "b")
    store.claim_due("host-a", 300, 1)
    store.claim_due("host-b", 300, 1)
    assert store.release_own_leases("host-a") == 1
    assert [p.key for p in store.claim_due("host-c", 300, 5)] == ["a"]


def test_update_media_and_reset_containers_are_fenced(store: Store, db_url: str, clock: FakeClock) -> None:
    _enqueue(store, db_url, "m")
    [post] = store.claim_due("w", 30, 1)
    [media] = store.media(post.id)
    store.update_media(post, media.id, container_id="c1", container_created_at=clock.now(),
                       status_code="IN_PROGRESS")
    store.update(post, "w", release=False, container_id="c1", container_created_at=clock.now())
    assert store.media(post.id)[0].container_id == "c1"
    store.reset_containers(post)
    [media] = store.media(post.id)
    assert (media.container_id, media.status_code) == (None, None)
    assert store.get_by_id(post.id).container_id is None  # type: ignore[union-attr]
    store.update(post, "w")  # releases the lease
    with pytest.raises(LeaseLost):
        store.update_media(post, media.id, container_id="c2")
    with pytest.raises(LeaseLost):
        store.reset_containers(post)


def test_a_new_reason_ends_a_hold(store: Store, db_url: str) -> None:
    _enqueue(store, db_url, "h")
    [post] = store.claim_due("w", 30, 1)
    store.update(post, "w", release=False, reason="container limit: …", hold=Hold.CONTAINER_BUDGET)
    assert store.get("h").hold == Hold.CONTAINER_BUDGET  # type: ignore[union-attr]
    store.update(post, "w", release=False, next_action_at=store.now())  # reason untouched: held
    assert store.get("h").hold == Hold.CONTAINER_BUDGET  # type: ignore[union-attr]
    store.update(post, "w", reason=None)
    assert store.get("h").hold is None  # type: ignore[union-attr]


def test_set_reauth_and_sync_accounts(store: Store, db_url: str) -> None:
    store.set_reauth("shop", True, "token expired")
    a = store.account("shop")
    assert a is not None and a.needs_reauth and a.reauth_reason == "token expired"
    store.set_reauth("shop", False, "ignored")
    a = store.account("shop")
    assert a is not None and not a.needs_reauth and a.reauth_reason is None
    store.update_quota("shop", 3, 50, 86400)
    # a new ig_user_id for the same name: Meta's quota figures no longer apply
    store.sync_accounts([AccountSettings(name="shop", ig_user_id="999", token_env="X"),
                         AccountSettings(name="third", ig_user_id="3", token_env="Y")])
    a = store.account("shop")
    assert a is not None and a.ig_user_id == "999" and a.quota_usage is None
    assert [x.name for x in store.accounts()] == ["brand2", "shop", "third"]


def test_pauses_are_extended_never_shortened_and_expire(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    store.record_activity([], {}, [("shop", now + timedelta(minutes=10), "throttled")],
                          [(now + timedelta(minutes=5), "app throttled")])
    store.record_activity([], {}, [("shop", now + timedelta(minutes=2), "shorter")],
                          [(now + timedelta(minutes=1), "shorter")])
    app, shop = store.pause_state("shop")
    assert app == (now + timedelta(minutes=5), "app throttled")
    assert shop is not None and shop.paused_until == now + timedelta(minutes=10)
    assert store.app_pause() == app
    clock.advance(301)
    assert store.app_pause() is None and store.pause_state("shop")[0] is None


def test_record_activity_writes_calls_and_usage(store: Store, db_url: str, clock: FakeClock) -> None:
    _enqueue(store, db_url, "c")
    post = store.get("c")
    assert post is not None
    usage = Usage(app=UsageFigures(call_count=40, total_cputime=10, total_time=20))
    store.record_activity([_call(clock, post_id=post.id, usage=usage), _call(clock, outcome="error")],
                          {"shop": StoredUsage(40, 85, 120.0)}, [], [])
    [call] = store.calls(post.id)
    assert (call["endpoint"], call["outcome"], call["app_call_count"]) == (CREATE_CONTAINER, "ok", 40)
    shop = store.account("shop")
    assert shop is not None and (shop.usage_app_pct, shop.usage_buc_pct, shop.usage_regain_s) == (40, 85, 120.0)
    assert shop.usage_at == clock.now()


def test_containers_created_since_counts_successful_creations(store: Store, clock: FakeClock) -> None:
    start = clock.now()
    store.record_activity([_call(clock), _call(clock, outcome="error"), _call(clock, account="brand2"),
                           _call(clock, endpoint="GET /{container-id}")], {}, [], [])
    clock.advance(3600)
    store.record_activity([_call(clock)], {}, [], [])
    assert len(store.containers_created_since("shop", start)) == 2
    assert store.containers_created_since("shop", start + timedelta(minutes=30)) == [clock.now()]


def test_recent_processing_s_reads_finished_containers(store: Store, db_url: str, clock: FakeClock) -> None:
    _enqueue(store, db_url, "v1", "v2")
    for seconds, post in zip((4.0, 6.0), store.claim_due("w", 30, 2), strict=True):
        [m] = store.media(post.id)
        store.update_media(post, m.id, container_id=f"c-{post.key}", container_created_at=clock.now(),
                           status_code="FINISHED",
                           status_checked_at=clock.now() + timedelta(seconds=seconds))
    assert sorted(store.recent_processing_s("shop", "image", 20)) == [4.0, 6.0]
    assert store.recent_processing_s("shop", "video", 20) == []
    assert len(store.recent_processing_s("shop", "image", 1)) == 1


def test_quota_report_counts_own_publishes_meta_and_pauses(store: Store, db_url: str, clock: FakeClock) -> None:
    _enqueue(store, db_url, "q1", "q2")
    store.update_quota("shop", 1, 50, 86400)
    clock.advance(1)
    for post in store.claim_due("w", 30, 2):
        store.transition(post, PostMove.MARK_PUBLISHED, "w", published_at=clock.now())
    store.record_activity([], {}, [("shop", clock.now() + timedelta(minutes=3), "throttled")], [])
    rows = {r["account"]: r for r in store.quota_report()}
    shop = rows["shop"]
    assert (shop["quota_used"], shop["quota_total"], shop["published_by_igsched"]) == (3, 50, 2)
    assert shop["paused"] and shop["pause_reason"] == "throttled"
    assert shop["paused_until"] == (clock.now() + timedelta(minutes=3)).replace(tzinfo=UTC).isoformat()
    assert not rows["brand2"]["paused"] and rows["brand2"]["quota_used"] == 0
    clock.advance(86400)  # the rolling window has passed
    shop = {r["account"]: r for r in store.quota_report()}["shop"]
    assert shop["published_by_igsched"] == 0 and not shop["paused"]


def test_list_posts_filters_and_orders(store: Store, db_url: str, clock: FakeClock) -> None:
    _enqueue(store, db_url, "x", "y")
    store.enqueue([image_spec("z", account="brand2", in_s=0)], "t")
    assert [p.key for p in store.list_posts([State.PLANNED])] == ["x", "y", "z"]
    assert [p.key for p in store.list_posts([State.PLANNED], account="brand2")] == ["z"]
    clock.advance(10)
    store.cancel("y", "t")
    assert [p.key for p in store.list_posts([State.CANCELLED], since=clock.now())] == ["y"]
    assert [p.key for p in store.list_posts([State.PLANNED, State.CANCELLED], newest_first=True, limit=1)] == ["y"]
