"""End to end over real HTTP, on SQLite and PostgreSQL: every post kind with every option, from
queue-file YAML to the parameters the fake Graph API received (issue 3).

Each test parses YAML text with `parse_queue_text`, enqueues it, runs the daemon in-process
against the emulator and asserts on the emulator's request log and objects, and on the rows.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from scheduler.clock import FakeClock
from scheduler.emulator import RunningEmulator
from scheduler.problems import InvalidInput
from scheduler.store import Store
from tests.helpers import settings_for
from tests.kinds_support import (
    BRAND2_ID,
    SHOP_ID,
    TOKENS,
    add_accounts,
    at_in,
    by_key,
    count,
    created,
    enqueue_yaml,
    events_text,
    media_url,
    parse,
    run_daemon,
    write_video,
)


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", TOKENS["shop"])
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_BRAND2", TOKENS["brand2"])


@pytest.fixture
def emu(emulator: RunningEmulator) -> RunningEmulator:
    add_accounts(emulator)
    return emulator


def _tags(*tags: dict[str, Any]) -> str:
    return json.dumps(list(tags), separators=(",", ":"))


def test_every_kind_with_every_option(db_url: str, clock: FakeClock, emu: RunningEmulator, tmp_path: Path) -> None:
    """Seven posts (image, reel by URL, reel from a local file, image story, video story, local
    video story, a mixed four-item carousel with a local video) all go live within 1 s of
    their time, and the API received exactly the documented parameters at the right level."""
    u = {name: media_url(emu, name) for name in
         ("teaser.jpg", "teaser.mp4", "cover.jpg", "story.jpg", "story.mp4", "1.jpg", "2.mp4", "3.jpg")}
    sha = {name: write_video(tmp_path / name, size) for name, size in
           (("clip.mp4", 300_000), ("story-clip.mp4", 120_000), ("look-4.mp4", 200_000))}
    text = f"""
account: shop
timezone: Europe/Berlin
posts:
  - key: img
    at: {at_in(6)}
    image: {u["teaser.jpg"]}
    alt_text: A bottle on a sunny table
    caption: "Spring is coming. #launch @partner"
    location_id: "110123456789"
    user_tags: [{{username: partner, x: 0.5, y: 0.4}}]
    collaborators: ["@partner", friend.shop]
    first_comment: More at the link in bio
  - key: reel-url
    at: {at_in(7)}
    reel: {u["teaser.mp4"]}
    cover: {u["cover.jpg"]}
    share_to_feed: true
    audio_name: Original sound
    caption: Behind the scenes
    location_id: 110123456789
    user_tags: [{{username: partner}}]
    collaborators: [partner]
    first_comment: Thanks for watching
    trial: {{graduation: SS_PERFORMANCE}}
  - key: reel-local
    at: {at_in(7.5)}
    reel: clip.mp4
    thumb_offset_ms: 1500
    share_to_feed: false
    trial: {{graduation: manual}}
  - key: story-img
    at: {at_in(8)}
    story: {u["story.jpg"]}
    user_tags: [{{username: partner, x: 0.2, y: 0.3}}]
  - key: story-vid
    at: {at_in(8.5)}
    story: {{video: "{u["story.mp4"]}"}}
  - key: story-local
    at: {at_in(9)}
    story: story-clip.mp4
  - key: carousel
    at: {at_in(10)}
    carousel:
      - {u["1.jpg"]}
      - {{video: "{u["2.mp4"]}"}}
      - {{image: "{u["3.jpg"]}", alt_text: Close-up, user_tags: [{{username: a, x: 0.1, y: 0.9}}]}}
      - look-4.mp4
    caption: Three looks
    location_id: "110123456789"
    collaborators: [partner]
    first_comment: Which one?
"""
    settings = settings_for(db_url, emu.base_url)
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, text, base_dir=tmp_path)

    run_daemon(settings, store, timeout_s=60)

    posts = by_key(store)
    assert {k: p.state for k, p in posts.items()} == dict.fromkeys(posts, "published")
    assert len(posts) == 7
    for p in posts.values():
        assert p.lateness_s is not None and 0 <= p.lateness_s < 1.0, (p.key, p.lateness_s, events_text(store, p))
        assert p.media_id and p.permalink, p.key
        # the media check fetched every URL; local videos get a warning only without ffprobe
        assert p.preflight in ("ok", "warnings"), p.key
        if p.key in ("img", "story-img"):
            assert p.preflight == "ok", (p.key, events_text(store, p))

    # --- what the API received, container by container --------------------------------
    containers = emu.state.containers

    def params_of(container_id: str | None) -> dict[str, str]:
        assert container_id is not None
        return containers[container_id]["params"]

    def single(key: str) -> dict[str, str]:
        (m,) = store.media(posts[key].id)
        assert m.container_id == posts[key].container_id
        return params_of(m.container_id)

    expected: dict[str, dict[str, str]] = {
        "img": {
            "image_url": u["teaser.jpg"], "alt_text": "A bottle on a sunny table",
            "caption": "Spring is coming. #launch @partner", "location_id": "110123456789",
            "user_tags": _tags({"username": "partner", "x": 0.5, "y": 0.4}),
            "collaborators": '["partner", "friend.shop"]',
        },
        "reel-url": {
            "media_type": "REELS", "video_url": u["teaser.mp4"], "cover_url": u["cover.jpg"],
            "share_to_feed": "true", "audio_name": "Original sound", "caption": "Behind the scenes",
            "location_id": "110123456789", "user_tags": _tags({"username": "partner"}),
            "collaborators": '["partner"]', "trial_params": '{"graduation_strategy": "SS_PERFORMANCE"}',
        },
        "reel-local": {
            "media_type": "REELS", "upload_type": "resumable", "thumb_offset": "1500",
            "share_to_feed": "false", "trial_params": '{"graduation_strategy": "MANUAL"}',
        },
        "story-img": {
            "media_type": "STORIES", "image_url": u["story.jpg"],
            "user_tags": _tags({"username": "partner", "x": 0.2, "y": 0.3}),
        },
        "story-vid": {"media_type": "STORIES", "video_url": u["story.mp4"]},
        "story-local": {"media_type": "STORIES", "upload_type": "resumable"},
    }  # fmt: skip
    for key, want in expected.items():
        assert single(key) == want, key

    items = store.media(posts["carousel"].id)
    assert [m.position for m in items] == [1, 2, 3, 4]
    child_ids = [m.container_id for m in items]
    want_children = [
        {"is_carousel_item": "true", "image_url": u["1.jpg"]},
        {"is_carousel_item": "true", "media_type": "VIDEO", "video_url": u["2.mp4"]},
        {"is_carousel_item": "true", "image_url": u["3.jpg"], "alt_text": "Close-up",
         "user_tags": _tags({"username": "a", "x": 0.1, "y": 0.9})},
        {"is_carousel_item": "true", "media_type": "VIDEO", "upload_type": "resumable"},
    ]  # fmt: skip
    assert [params_of(c) for c in child_ids] == want_children
    want_parent = {
        "media_type": "CAROUSEL", "children": ",".join(str(c) for c in child_ids),
        "caption": "Three looks", "location_id": "110123456789", "collaborators": '["partner"]',
    }  # fmt: skip
    assert params_of(posts["carousel"].container_id) == want_parent
    assert containers[str(posts["carousel"].container_id)]["children"] == child_ids

    # the request log holds exactly these creations: nothing else, nothing twice
    sent = Counter(json.dumps(r["params"], sort_keys=True) for r in created(emu))
    wanted = Counter(json.dumps(p, sort_keys=True) for p in [*expected.values(), *want_children, want_parent])
    assert sent == wanted
    assert all(r["outcome"] == "ok" for r in created(emu))

    # every child FINISHED before the parent was created
    parent_created = containers[str(posts["carousel"].container_id)]["created_at"]
    assert all(containers[str(c)]["ready_at"] <= parent_created for c in child_ids)

    # local files went up through the resumable upload, byte for byte
    uploads = [r for r in emu.state.requests if r["endpoint"] == "upload"]
    assert len(uploads) == 3 and all(r["outcome"] == "ok" for r in uploads)
    for key, name in (("reel-local", "clip.mp4"), ("story-local", "story-clip.mp4")):
        c = containers[str(posts[key].container_id)]
        assert c["resumable"] and c["upload_sha256"] == sha[name], key
    c4 = containers[str(child_ids[3])]
    assert c4["resumable"] and c4["upload_sha256"] == sha["look-4.mp4"]
    assert sorted(int(r["params"]["file_size"]) for r in uploads) == [120_000, 200_000, 300_000]
    assert all(r["params"]["offset"] == "0" and r["params"]["bytes"] == int(r["params"]["file_size"])
               for r in uploads)

    # published once each, as the right product
    assert count(emu, "media_publish", "POST") == 7
    live = {m["id"]: m for m in emu.state.published_media(SHOP_ID)}
    assert set(live) == {p.media_id for p in posts.values()}
    product = {k: (live[str(p.media_id)]["media_product_type"], live[str(p.media_id)]["media_type"])
               for k, p in posts.items()}  # fmt: skip
    assert product == {
        "img": ("FEED", "IMAGE"), "reel-url": ("REELS", "VIDEO"), "reel-local": ("REELS", "VIDEO"),
        "story-img": ("STORY", "IMAGE"), "story-vid": ("STORY", "VIDEO"), "story-local": ("STORY", "VIDEO"),
        "carousel": ("FEED", "CAROUSEL_ALBUM"),
    }  # fmt: skip
    assert len(live[str(posts["carousel"].media_id)]["children"]) == 4
    for p in posts.values():
        assert p.permalink == live[str(p.media_id)]["permalink"]

    # first comments: once each, by the account itself
    for key, text_ in (("img", "More at the link in bio"), ("reel-url", "Thanks for watching"),
                       ("carousel", "Which one?")):
        comments = emu.state.comments(posts[key].media_id)
        assert [(c["text"], c["username"]) for c in comments] == [(text_, "shop")], key
        assert posts[key].comment_state == "posted" and posts[key].comment_id == comments[0]["id"]
    assert count(emu, "comments", "POST") == 3

    # no token anywhere in the rows
    with store.engine.connect() as conn:
        dump = repr(conn.execute(sa.text("SELECT * FROM api_calls")).all())
        dump += repr(conn.execute(sa.text("SELECT * FROM post_events")).all())
        dump += repr(conn.execute(sa.text("SELECT * FROM posts")).all())
    assert TOKENS["shop"] not in dump


def test_carousel_with_a_failing_child_fails_with_its_reason_and_publishes_nothing(
    db_url: str, clock: FakeClock, emu: RunningEmulator
) -> None:
    """Item 2 ends in ERROR (Meta could not fetch it): the post fails with that item's reason;
    no parent container is made, nothing is published."""
    bad = media_url(emu, "2.mp4", emu_fail=2207052, emu_processing_s=1)
    text = f"""
account: shop
posts:
  - key: broken-carousel
    at: {at_in(6)}
    carousel:
      - {media_url(emu, "1.jpg")}
      - {{video: "{bad}"}}
      - {media_url(emu, "3.jpg")}
    caption: Three looks
    first_comment: never posted
"""
    settings = settings_for(db_url, emu.base_url)
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, text)

    run_daemon(settings, store, timeout_s=30)

    post = by_key(store)["broken-carousel"]
    assert post.state == "failed"
    assert post.reason is not None
    assert "carousel item 2" in post.reason and bad in post.reason and "2207052" in post.reason, post.reason
    items = store.media(post.id)
    assert [(m.position, m.status_code) for m in items][1] == (2, "ERROR")
    assert items[1].error and "2207052" in items[1].error
    # three children were created, the parent never was, nothing was published
    sent = created(emu)
    assert len(sent) == 3 and all(r["params"]["is_carousel_item"] == "true" for r in sent)
    assert not any(r["params"].get("media_type") == "CAROUSEL" for r in sent)
    assert post.container_id is None
    assert count(emu, "media_publish") == 0 and emu.state.published_media() == []
    assert count(emu, "comments") == 0 and post.comment_state == "pending"


def test_first_comment_is_posted_once_when_the_api_answers_an_error_after_creating_it(
    db_url: str, clock: FakeClock, emu: RunningEmulator
) -> None:
    """Meta creates the comment and answers with an error: 20/1772107 (HTTP 400) for one
    account, code 2 with HTTP 500 for the other. The retry looks for the account's own
    comment first and finds it: one comment each, recorded as posted."""
    emu.state.inject("comments", 20, 1772107, method="POST", after=True, account=SHOP_ID)
    emu.state.inject("comments", 2, http_status=500, method="POST", after=True, account=BRAND2_ID)
    text = f"""
posts:
  - key: c-shop
    account: shop
    at: {at_in(4)}
    image: {media_url(emu, "a.jpg")}
    caption: first
    first_comment: Link in bio
  - key: c-brand2
    account: brand2
    at: {at_in(4.5)}
    reel: {media_url(emu, "b.mp4")}
    first_comment: Link in bio
"""
    settings = settings_for(db_url, emu.base_url)
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, text)

    run_daemon(settings, store, timeout_s=30)

    posts = by_key(store)
    for key, username, account_id in (("c-shop", "shop", SHOP_ID), ("c-brand2", "brand2", BRAND2_ID)):
        p = posts[key]
        assert p.state == "published" and p.lateness_s is not None and p.lateness_s < 1.0
        comments = emu.state.comments(p.media_id)
        assert [(c["text"], c["username"]) for c in comments] == [("Link in bio", username)], key
        assert p.comment_state == "posted" and p.comment_id == comments[0]["id"] and p.comment_error is None
        tries = [r for r in emu.state.requests if r["endpoint"] == "comments" and r["account"] == account_id]
        assert [(r["method"], r["outcome"]) for r in tries] == [("POST", "error"), ("GET", "ok")], key
        assert "first comment posted (found after an error answer)" in events_text(store, p)
    # the error answers were the injected ones
    errors = [(r["error_code"], r["error_subcode"], r["status"]) for r in emu.state.requests
              if r["endpoint"] == "comments" and r["outcome"] == "error"]  # fmt: skip
    assert sorted(errors, key=str) == sorted([(20, 1772107, 400), (2, None, 500)], key=str)


def test_local_video_missing_at_enqueue_is_a_validation_error(tmp_path: Path, emu: RunningEmulator) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'x.db'}", emu.base_url)
    text = f"""
account: shop
posts:
  - {{at: {at_in(600)}, reel: nowhere.mp4}}
  - {{at: {at_in(600)}, story: gone.mov}}
  - at: {at_in(600)}
    carousel: [{media_url(emu, "1.jpg")}, {{video: missing.mp4}}]
"""
    with pytest.raises(InvalidInput) as info:
        parse(text, settings, base_dir=tmp_path)
    found = [(p.field, p.message) for p in info.value.problems]
    assert [f for f, _ in found] == ["reel", "story", "carousel[1].video"]
    assert all("does not exist" in m and str(tmp_path) in m for _, m in found), found


def test_local_video_gone_after_enqueue_fails_before_any_container(
    db_url: str, clock: FakeClock, emu: RunningEmulator, tmp_path: Path
) -> None:
    """Readable at enqueue, deleted before staging: the post fails with the file's name and
    no container is created for it."""
    video = tmp_path / "later.mp4"
    write_video(video)
    text = f"""
account: shop
posts:
  - {{key: vanishing, at: {at_in(8)}, reel: later.mp4}}
"""
    settings = settings_for(db_url, emu.base_url, preflight={"enabled": False})
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, text, base_dir=tmp_path)
    video.unlink()

    run_daemon(settings, store, timeout_s=30)

    post = by_key(store)["vanishing"]
    assert post.state == "failed" and str(video) in (post.reason or "") and "gone" in (post.reason or "")
    assert created(emu) == [] and count(emu, "upload") == 0


def test_local_video_swapped_for_a_symlink_after_enqueue_is_never_uploaded(
    db_url: str, emu: RunningEmulator, tmp_path: Path
) -> None:
    """Checked at enqueue, replaced by a link to a secret before staging: nothing is read
    through the link, and the post fails saying why."""
    video = tmp_path / "swap.mp4"
    write_video(video)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"private key material")
    secret.chmod(0o600)
    text = f"""
account: shop
posts:
  - {{key: swapped, at: {at_in(8)}, reel: swap.mp4}}
"""
    settings = settings_for(db_url, emu.base_url, preflight={"enabled": False})
    store = Store(db_url)
    enqueue_yaml(store, settings, text, base_dir=tmp_path)
    video.unlink()
    video.symlink_to(secret)

    run_daemon(settings, store, timeout_s=30)

    post = by_key(store)["swapped"]
    assert post.state == "failed" and "has become a symbolic link" in (post.reason or "")
    assert created(emu) == [] and count(emu, "upload") == 0


def test_media_that_breaks_a_rule_fails_at_once_long_before_its_time(
    db_url: str, clock: FakeClock, emu: RunningEmulator, tmp_path: Path
) -> None:
    """The media check before staging fetches each file from the (emulated) CDN: a post whose
    media cannot succeed fails right after enqueue, an hour before its time, naming the rule,
    and no container is created. `validate --fetch` reports the same rules on demand."""
    text = f"""
account: shop
posts:
  - key: png-image
    at: {at_in(3600)}
    image: {media_url(emu, "photo.jpg", emu_format="png")}
  - key: missing-reel
    at: {at_in(3600)}
    reel: {media_url(emu, "gone.mp4", emu_status=404)}
  - key: huge-story
    at: {at_in(3600)}
    story: {media_url(emu, "big.mp4", emu_size=200_000_000)}
  - key: wide-item
    at: {at_in(3600)}
    carousel:
      - {media_url(emu, "ok.jpg")}
      - {media_url(emu, "wide.jpg", emu_w=2000, emu_h=500)}
"""
    expected_rules = {
        "png-image": "is served as image/png; a feed image must be image/jpeg",
        "missing-reel": "is not there (HTTP 404)",
        "huge-story": "the limit for a story video is 100 MB",
        "wide-item": "carousel[1]",
    }
    settings = settings_for(db_url, emu.base_url)
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, text)

    run_daemon(settings, store, timeout_s=20)

    posts = by_key(store)
    for key, rule in expected_rules.items():
        p = posts[key]
        assert p.state == "failed" and (p.reason or "").startswith("media check failed"), key
        assert rule in (p.reason or ""), (key, p.reason)
        assert (p.updated_at - p.created_at).total_seconds() < 10  # at once, not near its time
    assert "too wide" in (posts["wide-item"].reason or "")
    assert emu.state.requests == []  # not a single Graph call: nothing was staged

    # the same checks on demand
    from click.testing import CliRunner

    from scheduler.cli import main

    queue = tmp_path / "q.yaml"
    queue.write_text(text)
    config = tmp_path / "config.yaml"
    # the emulator serves the media on 127.0.0.1: fetched only because it is the configured API
    config.write_text(json.dumps({"database": {"url": db_url}, "graph": {"base_url": emu.base_url},
                                  "accounts": [
        {"name": "shop", "ig_user_id": SHOP_ID, "token_env": "IGSCHED_TEST_TOKEN_SHOP"}]}))
    result = CliRunner().invoke(main, ["--config", str(config), "validate", "--fetch", str(queue)])
    assert result.exit_code == 2, result.output
    for key, rule in expected_rules.items():
        assert rule in result.stderr + result.stdout, (key, result.stderr)


def test_story_published_without_an_answer_is_found_on_the_stories_edge(
    db_url: str, clock: FakeClock, emu: RunningEmulator
) -> None:
    """media_publish goes through but its answer is lost: verification sees PUBLISHED and
    looks the media up — a story on /{ig-user-id}/stories (it is not on /media), a feed
    image on /media. Each is published once and gets its media id and permalink."""
    emu.state.configure(drop_after_rate=1.0, fault_endpoints=["media_publish"])
    text = f"""
account: shop
posts:
  - {{key: lost-story, at: {at_in(4)}, story: {media_url(emu, "s.jpg")}}}
  - {{key: lost-image, at: {at_in(5)}, image: {media_url(emu, "i.jpg")}, caption: hello}}
"""
    settings = settings_for(db_url, emu.base_url, graph={"timeout_s": 2})
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, text)

    run_daemon(settings, store, timeout_s=40)

    posts = by_key(store)
    live = {m["id"]: m for m in emu.state.published_media()}
    assert len(live) == 2 and count(emu, "media_publish") == 2  # never published twice
    for key, product in (("lost-story", "STORY"), ("lost-image", "FEED")):
        p = posts[key]
        assert p.state == "published", (key, events_text(store, p))
        assert p.media_id in live and live[p.media_id]["media_product_type"] == product, key
        assert p.permalink == live[p.media_id]["permalink"]
        assert "verified: the container says PUBLISHED" in events_text(store, p)
    assert count(emu, "stories", "GET") == 1
    assert count(emu, "media_list", "GET") == 1


def test_a_failed_permalink_lookup_never_fails_a_live_post(db_url: str, clock: FakeClock, emu: RunningEmulator) -> None:
    """The media id comes from media_publish; the permalink is a later read, best effort: when
    it fails, the post stays published (without a permalink) and its first comment still goes."""
    # "object does not exist", for the bulk read of the account's media and the single read
    emu.state.inject("media_list", 100, 33, account=SHOP_ID)
    emu.state.inject("media_info", 100, 33, account=SHOP_ID)
    text = f"""
account: shop
posts:
  - key: no-permalink
    at: {at_in(4)}
    image: {media_url(emu, "a.jpg")}
    first_comment: still posted
"""
    settings = settings_for(db_url, emu.base_url)
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, text)

    run_daemon(settings, store, timeout_s=20)

    p = by_key(store)["no-permalink"]
    assert p.state == "published" and p.reason is None
    assert p.media_id == emu.state.published_media()[0]["id"] and p.permalink is None
    assert p.comment_state == "posted" and len(emu.state.comments(p.media_id)) == 1
    assert count(emu, "media_list", outcome="error") == 1 and count(emu, "media_info", outcome="error") == 1
