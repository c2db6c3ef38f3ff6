"""Meta's harder answers to publishing, run by the daemon over real HTTP on both databases, on
a clock that jumps (issue 12): nothing is published twice and no container is made again
until every earlier attempt is proven not live; a container in ERROR is retried, made again
or failed by the subcode in its status text; after a lost answer in a burst, the media id is
found however far back it is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from scheduler.clock import FakeClock
from scheduler.config import Settings
from scheduler.emulator import RunningEmulator
from scheduler.store import Store
from tests.helpers import image_spec, settings_for
from tests.kinds_support import (
    SHOP_ID,
    TOKENS,
    add_accounts,
    at_in,
    by_key,
    created,
    enqueue_yaml,
    events_text,
    media_url,
    run_daemon,
    warped_emulator,
)


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", TOKENS["shop"])
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_BRAND2", TOKENS["brand2"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()  # frozen between jumps


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[RunningEmulator]:
    with warped_emulator(clock) as e:
        add_accounts(e)
        yield e


def _settings(db_url: str, emu: RunningEmulator, **extra: Any) -> Settings:
    return settings_for(db_url, emu.base_url, preflight={"enabled": False},
                        graph={"base_url": emu.base_url, "timeout_s": 2},
                        staging={"lead_s": {"image": 600, "story": 600, "reel": 600, "carousel": 600}},
                        limits={"publish_settle_margin_s": 5}, **extra)


def _store(db_url: str, clock: FakeClock, settings: Settings) -> Store:
    store = Store(db_url, clock=clock)
    store.sync_accounts(settings.accounts)
    return store


def _publishes(emu: RunningEmulator) -> list[dict[str, Any]]:
    return [r for r in emu.state.requests if r["endpoint"] == "media_publish"]


def test_lost_answer_with_a_lagging_container_status_publishes_once(
    db_url: str, emu: RunningEmulator, clock: FakeClock
) -> None:
    """The answer is lost and the container still says FINISHED long after the request could
    have landed (longer than graph.timeout_s + the settle margin): the account's media proves
    it live, so there is no second media_publish and no new container."""
    emu.state.configure(republish_answer="2207008", published_status_lag_s=600)
    emu.state.inject_fault("media_publish", "drop_after", account=SHOP_ID)
    settings = _settings(db_url, emu)
    store = _store(db_url, clock, settings)
    store.enqueue([image_spec("lost", in_s=30, caption="answer lost")], "test")

    run_daemon(settings, store, timeout_s=30, warp=clock)

    post = store.get("lost")
    assert post is not None and post.state == "published", events_text(store, post) if post else None
    [media] = emu.state.published_media(SHOP_ID)
    assert post.media_id == media["id"] and post.permalink == media["permalink"]
    assert [r["outcome"] for r in _publishes(emu)] == ["dropped"]
    assert len(created(emu)) == 1
    history = events_text(store, post)
    assert f"its media {media['id']} is on the account (the container said FINISHED)" in history


def test_lost_answer_then_2207008_on_the_retry_publishes_once_without_a_new_container(
    db_url: str, emu: RunningEmulator, clock: FakeClock
) -> None:
    """The connection drops before Meta did anything; once the request has settled, the
    container (FINISHED) and the account's media (nothing) prove it not live, so it is
    published again; that retry gets 24/2207008: with an earlier attempt on record, it is
    proven not live again before the same container is tried once more. One post, one
    container."""
    emu.state.inject_fault("media_publish", "drop", account=SHOP_ID)
    emu.state.inject("media_publish", 24, 2207008, account=SHOP_ID)  # the attempt after the drop
    settings = _settings(db_url, emu)
    store = _store(db_url, clock, settings)
    store.enqueue([image_spec("retried", in_s=30, caption="dropped then expired id")], "test")

    run_daemon(settings, store, timeout_s=30, warp=clock)

    post = store.get("retried")
    assert post is not None and post.state == "published", events_text(store, post) if post else None
    [media] = emu.state.published_media(SHOP_ID)
    assert post.media_id == media["id"]
    assert [(r["outcome"], r["error_subcode"]) for r in _publishes(emu)] == [
        ("dropped", None), ("error", 2207008), ("ok", None)]
    assert len(created(emu)) == 1
    # proven twice: after the drop (once settled), and after 2207008 with an attempt before it
    lists = [r for r in emu.state.requests if r["endpoint"] == "media_list"]
    assert len(lists) >= 2
    history = events_text(store, post)
    assert "verified: not published (container FINISHED, no such media on the account)" in history


@pytest.mark.parametrize(("code", "subcode"), [(24, 2207006), (-2, 2207020), (-1, 2207032), (-1, 2207053)])
def test_a_recreate_answer_after_an_earlier_attempt_is_checked_before_a_new_container(
    db_url: str, emu: RunningEmulator, clock: FakeClock, code: int, subcode: int
) -> None:
    """An attempt whose connection dropped before Meta acted, then a re-create answer to the
    second: the post is proven not live again (container status, the account's media), then
    gets one new container and is published once."""
    emu.state.inject_fault("media_publish", "drop", account=SHOP_ID)
    emu.state.inject("media_publish", code, subcode, account=SHOP_ID)
    settings = _settings(db_url, emu)
    store = _store(db_url, clock, settings)
    store.enqueue([image_spec("remade", in_s=30, caption=f"remade after {subcode}")], "test")
    run_daemon(settings, store, timeout_s=30, warp=clock)
    post = store.get("remade")
    assert post is not None and post.state == "published", events_text(store, post) if post else None
    assert len(emu.state.published_media(SHOP_ID)) == 1
    assert [(r["outcome"], r["error_subcode"]) for r in _publishes(emu)] == [
        ("dropped", None), ("error", subcode), ("ok", None)]
    assert len(created(emu)) == 2
    calls = [r["endpoint"] for r in emu.state.requests]
    refused = max(i for i, r in enumerate(emu.state.requests) if r["error_subcode"] == subcode)
    # between the refusal and the new container: the container's status and the media list
    new_container = max(i for i, r in enumerate(emu.state.requests) if r["endpoint"] == "media")
    assert {"container_status", "media_list"} <= set(calls[refused + 1:new_container])


def test_container_error_is_retried_remade_or_failed_by_its_subcode(
    db_url: str, emu: RunningEmulator, clock: FakeClock
) -> None:
    """2207001 (server error): a new container after a backoff; 2207053 (upload error): a new
    container at once; 2207052 (cannot fetch): the post fails with Meta's words."""
    emu.state.add_media_rule("flaky", fail_subcode=2207001, times=1)
    emu.state.add_media_rule("remake", fail_subcode=2207053, times=1)
    emu.state.add_media_rule("broken", fail_subcode=2207052)
    text = f"""
account: shop
posts:
  - {{key: flaky, at: {at_in(300)}, image: {media_url(emu, "flaky.jpg")}, caption: flaky}}
  - {{key: remake, at: {at_in(300)}, reel: {media_url(emu, "remake.mp4")}, caption: remake}}
  - {{key: broken, at: {at_in(300)}, image: {media_url(emu, "broken.jpg")}, caption: broken}}
"""
    settings = _settings(db_url, emu)
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, text)

    run_daemon(settings, store, timeout_s=30, warp=clock)

    posts = by_key(store)
    by_url: dict[str, list[dict[str, Any]]] = {}
    for c in emu.state.containers.values():
        by_url.setdefault(str(c["url"]).rsplit("/", 1)[-1], []).append(c)
    for key, name in (("flaky", "flaky.jpg"), ("remake", "remake.mp4")):
        p = posts[key]
        assert p.state == "published", (key, events_text(store, p))
        assert [c["status_code"] for c in by_url[name]] == ["ERROR", "PUBLISHED"], key
        assert p.lateness_s is not None and p.lateness_s < 1.0
    assert "trying again in" in events_text(store, posts["flaky"])
    assert "making a new container" in events_text(store, posts["remake"])
    broken = posts["broken"]
    assert broken.state == "failed"
    assert broken.reason is not None
    assert "Error: Media upload has failed with error code 2207052" in broken.reason, broken.reason
    assert len(by_url["broken.jpg"]) == 1
    assert sorted(m["caption"] for m in emu.state.published_media()) == ["flaky", "remake"]


def test_a_container_error_to_recreate_after_the_due_time_fails_the_post(
    db_url: str, emu: RunningEmulator, clock: FakeClock
) -> None:
    """A reel still processing at its time that then ends in 2207053: no lead time is left,
    so the post fails with Meta's words rather than going out late by a new processing."""
    emu.state.add_media_rule("slow", processing_s=120, fail_subcode=2207053)
    text = f"""
account: shop
posts:
  - {{key: slow, at: {at_in(30)}, reel: {media_url(emu, "slow.mp4")}, caption: slow}}
"""
    settings = _settings(db_url, emu)
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, text)
    run_daemon(settings, store, timeout_s=30, warp=clock)
    p = by_key(store)["slow"]
    assert p.state == "failed" and "no lead time left" in (p.reason or ""), p.reason
    assert len(created(emu)) == 1


@pytest.mark.slow
def test_a_lost_answer_in_a_burst_finds_its_media_beyond_the_first_page(
    db_url: str, emu: RunningEmulator, clock: FakeClock
) -> None:
    """52 posts due at the same second; the first answer is lost and the container keeps
    saying FINISHED until every other post is live, so the lost one is the 52nd newest media:
    the lookup pages back (50 a page) to it, and every post has its own media id."""
    emu.state.configure(published_status_lag_s=600)
    emu.state.set_quota(SHOP_ID, quota_total=100)
    emu.state.inject_fault("media_publish", "drop_after", account=SHOP_ID)
    settings = _settings(db_url, emu, daemon={"identity": "test-daemon", "tick_s": 1, "lease_s": 5,
                                              "workers": 8})
    store = _store(db_url, clock, settings)
    n = 52
    store.enqueue([image_spec(f"b{i:02d}", in_s=60, caption=f"burst {i}") for i in range(n)], "test")

    run_daemon(settings, store, timeout_s=60, warp=clock)

    posts = by_key(store)
    live = {m["id"]: m for m in emu.state.published_media(SHOP_ID)}
    assert len(live) == n and len(_publishes(emu)) == n
    assert {p.state for p in posts.values()} == {"published"}
    assert {p.media_id for p in posts.values()} == set(live)
    for p in posts.values():
        assert live[str(p.media_id)]["caption"] == p.spec["caption"]
    [lost] = [p for p in posts.values() if "on the account" in events_text(store, p)]
    assert lost.published_at is not None and lost.lateness_s is not None and lost.lateness_s < 1.0
    pages = [r for r in emu.state.requests if r["endpoint"] == "media_list" and r["params"].get("after")]
    assert pages, "the lookup went past the first page"
    assert lost.published_at - min(p.due_at for p in posts.values()) < timedelta(seconds=1)
