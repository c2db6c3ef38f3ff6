"""Graph calls per post on a mixed workload (issue 12): 4 images, 4 reels that take 15-60 s to
process, an image story and a video story, all due at the same time an hour ahead, with the
shipped lead times and polling, on a clock that jumps. Counts are behaviour, not speed: at most
3.0 calls per post on average, at most 3 for an image post; every post published once, with
its permalink.

Calls about one post (its container, status checks, media_publish) count for that post; reads
about the account (the publishing quota, the media list that brings permalinks in bulk) are
shared by every post equally.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from scheduler.clock import FakeClock
from scheduler.config import StagingSettings
from scheduler.emulator import RunningEmulator
from scheduler.store import Store
from scheduler.store.schema import api_calls, posts
from tests.helpers import settings_for
from tests.kinds_support import (
    SHOP_ID,
    TOKENS,
    add_accounts,
    at_in,
    by_key,
    enqueue_yaml,
    media_url,
    run_daemon,
    warped_emulator,
)

ACCOUNT_READS = {"GET /{ig-user-id}/content_publishing_limit", "GET /{ig-user-id}/media",
                 "GET /{ig-user-id}/stories"}


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", TOKENS["shop"])
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_BRAND2", TOKENS["brand2"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[RunningEmulator]:
    with warped_emulator(clock) as e:
        add_accounts(e)
        yield e


def mixed_workload(emu: RunningEmulator, due_in_s: float) -> str:
    at = at_in(due_in_s)
    lines = ["account: shop", "posts:"]
    for i in range(4):
        lines.append(f"  - {{key: image-{i}, at: {at}, image: {media_url(emu, f'i{i}.jpg')}, caption: image {i}}}")
    for i, seconds in enumerate((15, 30, 45, 60)):
        url = media_url(emu, f"r{i}.mp4", emu_processing_s=seconds)
        lines.append(f"  - {{key: reel-{i}, at: {at}, reel: '{url}', caption: reel {i}}}")
    lines.append(f"  - {{key: story-image, at: {at}, story: {media_url(emu, 's.jpg')}}}")
    lines.append(f"  - {{key: story-video, at: {at}, story: '{media_url(emu, 's.mp4', emu_processing_s=15)}'}}")
    return "\n".join(lines) + "\n"


def calls_per_post(store: Store) -> tuple[dict[str, float], float, Counter[str]]:
    """(average calls per post by kind, with an equal share of the account reads; the overall
    average; calls by endpoint)."""
    with store.engine.connect() as c:
        kinds = dict(c.execute(sa.select(posts.c.id, posts.c.kind)).all())
        rows = c.execute(sa.select(api_calls.c.post_id, api_calls.c.endpoint)).all()
    by_endpoint = Counter(r.endpoint for r in rows)
    shared = sum(1 for r in rows if r.endpoint in ACCOUNT_READS)
    own: dict[int, int] = defaultdict(int)
    for r in rows:
        if r.endpoint not in ACCOUNT_READS:
            own[r.post_id] += 1
    share = shared / len(kinds)
    per_kind: dict[str, list[float]] = defaultdict(list)
    for post_id, kind in kinds.items():
        per_kind[kind].append(own[post_id] + share)
    averages = {kind: sum(v) / len(v) for kind, v in per_kind.items()}
    return averages, len(rows) / len(kinds), by_endpoint


def test_mixed_workload_spends_at_most_three_calls_per_post(
    db_url: str, emu: RunningEmulator, clock: FakeClock
) -> None:
    settings = settings_for(db_url, emu.base_url, staging=StagingSettings().model_dump())
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, mixed_workload(emu, 3700))

    run_daemon(settings, store, timeout_s=60, warp=clock)

    posts_now = by_key(store)
    assert {p.state for p in posts_now.values()} == {"published"}
    live = {m["id"]: m for m in emu.state.published_media()}
    assert len(live) == 10
    for p in posts_now.values():
        assert p.lateness_s is not None and 0 <= p.lateness_s < 1.0, p.key
        assert p.permalink == live[str(p.media_id)]["permalink"], p.key
    per_kind, overall, by_endpoint = calls_per_post(store)
    assert len(emu.state.requests) == sum(by_endpoint.values())  # every call is in the history
    print(f"\ncalls per post: {overall:.2f}; by kind: {per_kind}; by endpoint: {dict(by_endpoint)}")
    assert overall <= 3.0, (per_kind, by_endpoint)
    assert per_kind["image"] <= 3.0, (per_kind, by_endpoint)
    assert by_endpoint["POST /{ig-user-id}/media_publish"] == 10 and by_endpoint["POST /{ig-user-id}/media"] == 10


def test_a_nearly_full_quota_is_read_again_before_publishing(
    db_url: str, emu: RunningEmulator, clock: FakeClock
) -> None:
    """The quota is read once when the first post becomes ready. Then two posts are made
    elsewhere (the app, another tool). igsched's own count knows nothing of them; once it says
    the window is nearly full, Meta's figure is read again before the next publish, which is
    deferred instead of being sent to be refused with 2207042."""
    emu.state.set_quota(SHOP_ID, quota_total=4)
    emu.state.configure(default_processing_s={"image": 0.0, "video": 0.0})
    settings = settings_for(db_url, emu.base_url, staging=StagingSettings().model_dump(),
                            preflight={"enabled": False})
    store = Store(db_url, clock=clock)
    text = "account: shop\nposts:\n" + "".join(
        f"  - {{key: q{i}, at: {at_in(700 + i)}, image: {media_url(emu, f'q{i}.jpg')}, caption: q{i}}}\n"
        for i in range(3))
    enqueue_yaml(store, settings, text)
    run_daemon(settings, store, timeout_s=30, warp=clock,
               until=lambda: {p.state for p in by_key(store).values()} == {"ready"})
    assert sum(1 for r in emu.state.requests if r["endpoint"] == "content_publishing_limit") == 1

    for i in range(2):  # posted elsewhere, after igsched's read
        cid = emu.state.create_container(SHOP_ID, {"image_url": f"https://cdn.example.com/else{i}.jpg"}, "")["id"]
        emu.state.publish(SHOP_ID, {"creation_id": cid})
    run_daemon(settings, store, timeout_s=30, warp=clock,
               until=lambda: by_key(store)["q2"].state == "deferred")

    posts_now = by_key(store)
    assert posts_now["q0"].state == posts_now["q1"].state == "published"
    q2 = posts_now["q2"]
    # (4/4, or 5/4 when a publish landed at the very moment of the read: counted on top)
    assert (q2.reason or "").startswith("publishing quota full ("), q2.reason
    publishes = [r for r in emu.state.requests if r["endpoint"] == "media_publish"]
    assert len(publishes) == 2 and all(r["outcome"] == "ok" for r in publishes)
    assert sum(1 for r in emu.state.requests if r["endpoint"] == "content_publishing_limit") == 2
