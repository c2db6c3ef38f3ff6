"""Meta's answers that are about the account, not the post, over real HTTP (issue 12).

25/2207050 (restricted or checkpointed: a person must act in the Instagram app) and 368
(temporarily blocked for policy reasons) pause the account instead of failing the post: no
call goes to it while paused, the other account carries on, and afterwards every post is
published exactly once. The pauses have their shipped lengths: the clock jumps over them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scheduler.clock import FakeClock
from scheduler.config import Settings
from scheduler.emulator import RunningEmulator
from scheduler.store import Store
from tests.e2e.test_faults import (
    BRAND2,
    SHOP,
    add_accounts,
    all_posts,
    fast_settings,
    per_caption,
    start,
    tokens,  # noqa: F401 - the autouse fixture that puts the tokens in the environment
)
from tests.helpers import image_spec
from tests.kinds_support import run_daemon, warped_emulator


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()  # frozen between jumps: pauses pass in a jump, not in real time


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[RunningEmulator]:
    with warped_emulator(clock) as e:
        yield e


def new_store(settings: Settings, clock: FakeClock) -> Store:
    store = Store(settings.database.url, clock=clock)
    store.sync_accounts(settings.accounts)
    return store


def _shop_calls(emu: Any) -> list[dict[str, Any]]:
    return [r for r in emu.state.requests if r["account"] == SHOP]


def _enqueue_three(store: Any, settings: Any) -> None:
    store.enqueue([image_spec("s1", in_s=2.5, caption="shop one"),
                   image_spec("s2", in_s=2.7, caption="shop two"),
                   image_spec("b1", in_s=2.5, caption="brand one", account="brand2")], "test")


def _refusal(emu: Any, code: int) -> tuple[int, dict[str, Any]]:
    shop = _shop_calls(emu)
    [(i, refused)] = [(i, r) for i, r in enumerate(shop) if r["error_code"] == code]
    assert refused["endpoint"] == "media_publish"
    return i, refused


def test_account_restricted_pauses_the_account_until_a_person_acts(db_url: str, emulator: Any, clock: FakeClock) -> None:
    emu = emulator
    add_accounts(emu)
    emu.state.inject("media_publish", 25, 2207050, account=SHOP)  # once: then the person has acted
    pause_s = 300.0  # the shipped limits.reauth_check_s: a jump on the fake clock
    settings = fast_settings(db_url, emu.base_url, limits={"reauth_check_s": pause_s})
    store = new_store(settings, clock)
    _enqueue_three(store, settings)

    def restricted_seen() -> bool:
        a = store.account("shop")
        return a is not None and a.needs_reauth

    run_daemon(settings, store, timeout_s=30, until=restricted_seen, warp=clock)
    account = store.account("shop")
    assert account is not None and account.needs_reauth
    assert "Instagram app" in (account.reauth_reason or ""), account.reauth_reason
    waiting = [p for p in all_posts(store).values() if p.state == "waiting"]
    assert [p.key for p in waiting] in (["s1"], ["s2"])
    assert "a person must act in the Instagram app" in (waiting[0].reason or ""), waiting[0].reason
    assert "2207050" in (waiting[0].reason or "")

    run_daemon(settings, store, timeout_s=30, warp=clock)
    posts = all_posts(store)
    assert {k: p.state for k, p in posts.items()} == {"s1": "published", "s2": "published", "b1": "published"}
    assert sorted(per_caption(emu).items()) == [("brand one", 1), ("shop one", 1), ("shop two", 1)]
    # the refused post never failed and kept its container: one container per post
    assert len([r for r in _shop_calls(emu) if r["endpoint"] == "media"]) == 2
    assert len([r for r in _shop_calls(emu) if r["endpoint"] == "media_publish"]) == 3
    # nothing went to shop while it was paused
    i, refused = _refusal(emu, 25)
    after = _shop_calls(emu)[i + 1:]
    assert after and start(after[0]) - refused["t"] >= pause_s * 0.9
    account = store.account("shop")
    assert account is not None and not account.needs_reauth
    assert "Instagram app" in (account.pause_reason or ""), account.pause_reason
    # brand2 never waited for shop
    b1 = posts["b1"]
    assert b1.lateness_s is not None and b1.lateness_s < pause_s


@pytest.mark.parametrize("subcode", [None, 1390008])
def test_policy_block_pauses_the_account_with_a_backoff(db_url: str, emulator: Any, clock: FakeClock, subcode: int | None) -> None:
    emu = emulator
    add_accounts(emu)
    emu.state.inject("media_publish", 368, subcode, account=SHOP)
    backoff_s = 600.0  # the shipped limits.throttle_backoff_s
    settings = fast_settings(db_url, emu.base_url, limits={"throttle_backoff_s": backoff_s})
    store = new_store(settings, clock)
    _enqueue_three(store, settings)
    run_daemon(settings, store, timeout_s=30, warp=clock)
    posts = all_posts(store)
    assert {k: p.state for k, p in posts.items()} == {"s1": "published", "s2": "published", "b1": "published"}
    assert sorted(per_caption(emu).items()) == [("brand one", 1), ("shop one", 1), ("shop two", 1)]
    assert len([r for r in _shop_calls(emu) if r["endpoint"] == "media"]) == 2
    assert len([r for r in _shop_calls(emu) if r["endpoint"] == "media_publish"]) == 3
    i, refused = _refusal(emu, 368)
    after = _shop_calls(emu)[i + 1:]
    assert after and start(after[0]) - refused["t"] >= backoff_s * 0.9
    account = store.account("shop")
    assert account is not None and not account.needs_reauth
    assert "policy" in (account.pause_reason or ""), account.pause_reason
    # the refused post waited as deferred, saying why
    reasons = [e["reason"] or "" for p in posts.values() for e in store.events(p.id) if e["to_state"] == "deferred"]
    assert any("policy reasons" in r and "368" in r for r in reasons), reasons
    assert [r for r in emu.state.requests if r["account"] == BRAND2 and r["error_code"]] == []


def test_policy_block_on_the_first_comment_waits_and_posts_it_once(db_url: str, emulator: Any, clock: FakeClock) -> None:
    emu = emulator
    add_accounts(emu)
    emu.state.inject("comments", 368, account=SHOP, method="POST")
    backoff_s = 600.0
    settings = fast_settings(db_url, emu.base_url, limits={"throttle_backoff_s": backoff_s})
    store = new_store(settings, clock)
    store.enqueue([image_spec("c1", in_s=2.5, caption="with comment", first_comment="first!")], "test")
    run_daemon(settings, store, timeout_s=30, warp=clock)
    post = store.get("c1")
    assert post is not None and post.state == "published" and post.comment_state == "posted", post
    posts = [r for r in _shop_calls(emu) if r["endpoint"] == "comments" and r["method"] == "POST"]
    assert [r["error_code"] for r in posts] == [368, None]
    assert start(posts[1]) - posts[0]["t"] >= backoff_s * 0.9
    assert [c["text"] for c in emu.state.comments()] == ["first!"]
